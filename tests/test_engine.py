"""The pipeline with a scripted runtime: fast checks of the plumbing around the model."""
import threading

import pytest
from fakes import FixedFilter, ScriptedRuntime, no_exploration

from server.engine import Admitted, Engine, InputError, Request, Result
from server.features import AFTER_NAMES, BEFORE_NAMES, History, extract, vectorize
from server.names import Reason
from server.options import Options
from server.runtime import Cancelled, Generation
from server.settings import Settings


def req(text: str, marker: str = "|", **kw) -> Request:
    i = text.index(marker)
    return Request("file:///t.py", text.replace(marker, ""), i, "python", **kw)


def test_pipeline_postprocesses_and_caches():
    rt = ScriptedRuntime("total = sum(xs)\n    return total\n\ndef g(): pass")
    engine = Engine(rt)
    r = engine.complete(req("def f(xs):\n    |\n\n\ndef g(): pass\n"))
    assert r.text == "total = sum(xs)\n    return total" and r.source == "model" and r.multiline
    assert "<|fim_prefix|>" in rt.prompts[0] and set(r.timings) >= {"prompt_ms", "generate_ms", "total_ms"}
    again = engine.complete(req("def f(xs):\n    total|\n\n\ndef g(): pass\n"))
    assert again.source == "cache" and again.text == " = sum(xs)\n    return total" and len(rt.prompts) == 1


def test_disabled_language_makes_no_model_call():
    rt = ScriptedRuntime("x")
    r = Engine(rt).complete(req("a = |"), Settings(languages={"python": False}))
    assert r.reason == "disabled" and r.text == "" and rt.prompts == []


def test_a_rejected_request_never_reaches_the_model():
    rt = ScriptedRuntime("x = 1")
    engine = Engine(rt, filt=FixedFilter(before=0.1), explore=no_exploration())
    got = engine.admit(req("a = |"))
    assert isinstance(got, Result) and got.reason is Reason.FILTERED and got.source == "none"
    assert got.decision.filter == "fixed@test" and got.decision.stage == "before" and rt.prompts == []
    assert got.features and got.decision.propensity == 0.0


def test_admitted_then_generated_is_one_request():
    rt = ScriptedRuntime("sum(xs)\n")
    engine = Engine(rt)
    r = req("total = |")
    admitted = engine.admit(r)
    assert isinstance(admitted, Admitted) and admitted.decision.show and rt.prompts == []
    out = engine.generate(r, admitted)
    assert out.id == admitted.id and out.text == "sum(xs)" and set(out.features) == set(AFTER_NAMES)
    assert out.features["stop=stop"] == 1.0 and out.features["parses"] == 1.0
    assert out.tokens_generated == len("sum(xs)\n") and out.timings["filter_ms"] == admitted.filter_ms
    assert out.timings["total_ms"] >= out.timings["wait_ms"] >= 0


def test_every_reason_is_a_member_of_the_enum():
    assert Engine(ScriptedRuntime("x")).complete(req("a = |"), Settings(languages={"python": False})).reason \
        is Reason.DISABLED
    assert Engine(ScriptedRuntime("   \n")).complete(req("a = |")).reason is Reason.EMPTY
    assert Engine(ScriptedRuntime("x"), filt=FixedFilter(before=0.0), explore=no_exploration()).complete(
        req("a = |")).reason is Reason.FILTERED


def test_empty_output_is_reported_as_empty():
    r = Engine(ScriptedRuntime("   \n")).complete(req("a = |"))
    assert r.text == "" and r.reason == "empty"


def test_cancelled_generation_raises():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        Engine(ScriptedRuntime("long output")).complete(req("a = |"), cancel=cancel)


def test_bad_inputs():
    engine = Engine(ScriptedRuntime("x"))
    with pytest.raises(InputError, match="binary"):
        engine.complete(Request("u", "a\x00b", 1))
    with pytest.raises(InputError, match="too large"):
        engine.complete(Request("u", "x" * 2_000_000, 5))
    with pytest.raises(InputError, match="outside"):
        engine.complete(Request("u", "abc", 10))


def test_snippets_from_other_documents_reach_the_prompt():
    rt = ScriptedRuntime("x")
    other = ("/w/lib/util.py", "def load_yaml(path):\n    return yaml.safe_load(open(path))\n")
    engine = Engine(rt, options=Options(snippets=True, path_header="relative"))
    engine.complete(req("data = load_yaml(path)\nresult = |", path="/w/main.py", root="/w", others=(other,)))
    assert "<|file_sep|>lib/util.py\ndef load_yaml" in rt.prompts[0]
    assert "<|file_sep|>main.py\n<|fim_prefix|>" in rt.prompts[0] and "/w/" not in rt.prompts[0]
    Engine(rt).complete(req("data = load_yaml(path)\nresult = |", path="/w/main.py", root="/w", others=(other,)))
    assert "load_yaml(path):" not in rt.prompts[1]  # snippets are off by default (docs/benchmarks.md)


def test_features_are_fixed_order_and_complete():
    f = extract("def f():\n    x.", "\n", "python", History(True, 2.0))
    assert f["lang=python"] == 1.0 and f["last_char=."] == 1.0 and f["last_accepted"] == 1.0
    assert len(vectorize(f)) == len(BEFORE_NAMES) == len(f)
    assert vectorize(f, ("lang=python", "unknown")) == [1.0, 0.0]


def test_branch_in_picks_the_least_certain_token_of_the_line():
    steps = [(1, -0.1, "self", 11, -3.0), (2, -2.0, ".token", 12, -2.2), (3, -0.3, "stack", 13, -1.5),
             (4, -5.0, " ", 14, -5.1), (5, -4.0, "\n", 15, -4.1)]
    gen = Generation("self.tokenstack \n", 10, 0, 5, 1.0, 1.0, "stop", [-2.0, 0.0], steps=steps)
    assert gen.branch_in(len("self.tokenstack")) == [(1, -0.1), (12, -2.2)]  # blank pieces never branch
    assert gen.branch_in(len("self")) == [(11, -3.0)]
    lone = Generation("x", 1, 0, 1, 1.0, 1.0, "stop", [0.0], steps=[(1, -1.0, "x", -1, float("-inf"))])
    assert lone.branch_in(1) is None


class BranchingRuntime(ScriptedRuntime):
    """First answer repeats the line below; a branch answers with `alternative`."""

    def __init__(self, output: str, alternative: str):
        super().__init__(output)
        self.alternative = alternative
        self.forced: list = []

    def generate(self, prompt, *, max_tokens, should_stop, cancel=None, chunk=64, forced=(), reuse_suffix=0):
        self.forced.append(list(forced))
        text = self.alternative if forced else self.output
        steps = [(i, -1.0 - (i == 1), ch, 100 + i, -3.0) for i, ch in enumerate(text)]
        per_line = [-2.0] * (text.count("\n") + 1)
        return Generation(text, 10, 0, len(text), 1.0, 1.0, "stop", per_line, per_line, steps)


def test_a_first_line_that_repeats_the_code_below_is_replaced_by_the_runner_up():
    doc = "class A:\n    |aliases = ['zone']\n"
    rt = BranchingRuntime("aliases = ['zone']\n", "name = 'Zone'\n")
    r = Engine(rt).complete(req(doc))
    assert r.text == "name = 'Zone'\n    " and r.branched and rt.forced[1] == [(0, -1.0), (101, -3.0)]
    rt = BranchingRuntime("aliases = ['zone']\n", "name = 'Zone'\n")
    r = Engine(rt, options=Options(avoid_repeat=False, line_start_one_line=False)).complete(req(doc))
    assert r.text == "" and not r.branched and len(rt.forced) == 1
    rt = BranchingRuntime("x = 1\n", "unused\n")  # a new line: no branch
    assert Engine(rt).complete(req("def f():\n    |\n    return x\n")).text == "x = 1" and len(rt.forced) == 1


def test_at_a_line_start_a_statement_over_several_lines_gives_way_to_a_one_line_runner_up():
    doc = "def f(x):\n    |return x\n"
    rt = BranchingRuntime("if x:\n        x = 1\n", "x = 2\n")
    r = Engine(rt).complete(req(doc))
    assert r.text == "x = 2\n    " and r.branched and rt.forced[1] == [(0, -1.0), (101, -3.0)]
    rt = BranchingRuntime("if x:\n        x = 1\n", "if y:\n        x = 3\n")  # no one-liner: keep the first
    assert Engine(rt).complete(req(doc)).text == "if x:\n        x = 1\n    " and len(rt.forced) == 2
    rt = BranchingRuntime("if x:\n        x = 1\n", "x = 2\n")
    r = Engine(rt, options=Options(line_start_one_line=False)).complete(req(doc))
    assert r.text == "if x:\n        x = 1\n    " and len(rt.forced) == 1
    rt = BranchingRuntime("x = 1\n", "unused\n")  # one line already: no branch
    assert Engine(rt).complete(req(doc)).text == "x = 1\n    " and len(rt.forced) == 1
