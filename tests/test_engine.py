"""The pipeline with a scripted runtime: fast checks of the plumbing around the model."""
import threading

import pytest

from server.engine import Engine, InputError, Request
from server.options import Options
from server.features import FEATURE_NAMES, History, extract, vectorize
from server.runtime import Cancelled, Generation
from server.settings import Settings
from server.templates import get_template


class ScriptedRuntime:
    template = get_template("qwen")
    model_id = "scripted"

    def __init__(self, output: str):
        self.output = output
        self.prompts: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def generate(self, prompt, *, max_tokens, should_stop, cancel=None, chunk=64):
        self.prompts.append(prompt)
        text = ""
        for ch in self.output:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            text += ch
            if should_stop(text, []):
                return Generation(text, 10, 0, len(text), 1.0, 1.0, "stop")
        return Generation(text, 10, 0, len(text), 1.0, 1.0, "eos")


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
    assert len(vectorize(f)) == len(FEATURE_NAMES) == len(f)
