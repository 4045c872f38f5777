"""The online A/B of a promoted adapter (server.trial): the verdict rule, its state on disk, promotion and
rollback starting and ending it, the session drawing arms and rolling a worse adapter back on its own, and
the real runtime switching adapters between calls."""
import json
import logging
import random
import threading

import pytest
from fakes import ScriptedRuntime

from server import registry, trial
from server.engine import Request
from server.models import ResolvedModel
from server.options import Options
from server.session import Session
from server.telemetry import TelemetryStore


@pytest.fixture
def base(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path / "models"))
    return ResolvedModel("base-a", tmp_path / "a.gguf", "qwen", "aa" * 32)


def run(t: trial.Trial, arm: str, shown: int, accepted: int, chars: int = 20) -> None:
    for i in range(shown):
        t.shown(arm)
        if i < accepted:
            t.accepted(arm, chars)


def test_no_verdict_until_both_arms_have_enough_suggestions():
    t = trial.Trial("b", "new", None)
    run(t, "new", 900, 0)
    run(t, "old", trial.MIN_SHOWN - 1, trial.MIN_SHOWN - 1)
    assert t.verdict() is None  # however lopsided


@pytest.mark.parametrize("new_rate,old_rate,expect", [(0.10, 0.40, "old"), (0.45, 0.20, "new"), (0.30, 0.28, None)])
def test_a_clear_difference_decides_and_a_small_one_waits(new_rate, old_rate, expect):
    t = trial.Trial("b", "new", "older")
    run(t, "new", 1800, int(1800 * new_rate))
    run(t, "old", 200, int(200 * old_rate))
    assert t.verdict() == expect
    assert (t.z() < 0) == (new_rate < old_rate)


def test_no_difference_over_the_old_arms_budget_confirms_the_new_one():
    t = trial.Trial("b", "new", None)
    run(t, "new", 9000, 2700)
    run(t, "old", trial.MAX_OLD_SHOWN, 300)
    assert abs(t.z()) < 1 and t.verdict() == "new"


def test_characters_accepted_not_only_accept_rate_decide():
    t = trial.Trial("b", "new", None)
    run(t, "new", 1000, 300, chars=4)  # as often accepted, a fifth of the text
    run(t, "old", 150, 45, chars=20)
    assert t.summary("new")[1] == t.summary("old")[1] == 0.3
    assert t.verdict() == "old"


def test_draws_serve_the_share_to_the_old_version():
    t, rng = trial.Trial("b", "new", None), random.Random(0)
    draws = [t.draw(rng) for _ in range(10_000)]
    assert abs(draws.count("old") / len(draws) - trial.SHARE) < 0.01
    assert t.propensity("old") == trial.SHARE and t.propensity("new") == 1 - trial.SHARE


def test_promotion_starts_a_trial_against_what_served_and_rollback_ends_it(tmp_path, base):
    for name in ("one", "two"):
        gguf = tmp_path / f"{name}.gguf"
        gguf.write_bytes(name.encode())
        registry.register_adapter(name, base, gguf)
    registry.promote("one", base)
    t = trial.load(base.identity)
    assert (t.new, t.old, t.ended) == ("one", None, None)  # against the bare base model
    registry.promote("two", base)
    t = trial.load(base.identity)
    assert (t.new, t.old, t.ended) == ("two", "one", None)
    run(t, "new", 3, 1)
    trial.save(t)
    assert trial.load(base.identity).stats == t.stats
    assert registry.rollback(base, "rolled back: worse") == "one"
    assert trial.load(base.identity).ended == "rolled back: worse"


def test_a_corrupt_trials_file_means_no_trial(base, caplog):
    path = registry.adapters_dir() / trial.TRIALS
    path.parent.mkdir(parents=True)
    path.write_text("{oops")
    with caplog.at_level(logging.WARNING):
        assert trial.load(base.identity) is None
    assert "ignoring" in caplog.text
    path.write_text(json.dumps({base.identity: {"base": base.identity, "what": 1}}))
    assert trial.load(base.identity) is None


class ArmedRuntime(ScriptedRuntime):
    """A scripted model with two arms: what `use` selects is what it says."""

    def __init__(self, model, t):
        super().__init__("")
        self.model, self.trial, self.arm = model, t, "new"
        self.answers = {"new": "xs_total = 0\n", "old": "return sum(xs)\n"}

    def use(self, arm):
        self.arm = arm

    @property
    def model_id(self):
        return f"{self.model.identity}+{self.arm}"

    def generate(self, prompt, **kw):
        self.output = self.answers[self.arm]
        return super().generate(prompt, **kw)


def armed_session(tmp_path, base, level="metrics"):
    for name in ("good",):
        gguf = tmp_path / f"{name}.gguf"
        gguf.write_bytes(name.encode())
        registry.register_adapter(name, base, gguf)
    registry.promote("good", base)
    sent = []
    store = TelemetryStore("off", tmp_path / "t.sqlite3", tmp_path / "t.key")
    s = Session(notify=lambda kind, payload: sent.append((kind, payload)), store=store,
                loader=lambda name: ArmedRuntime(base, trial.load(base.identity)), options=Options(filter="off"))
    s.configure({"telemetryLevel": level, "multiline": "never"})
    s.load_model()
    return s, sent


def suggest(s: Session, i: int):
    text = "def f(xs):\n    \n"
    req = Request(f"file:///w/f{i}.py", text, text.index("    \n") + 4, "python")
    return s.generate(req, s.admit(req), threading.Event())


def test_the_session_rolls_a_worse_adapter_back_by_itself(tmp_path, base):
    s, sent = armed_session(tmp_path, base)
    s.rng = random.Random(1)
    arms = []
    for i in range(3000):
        result = suggest(s, i)
        arms.append(result.arm)
        assert result.model_id.endswith("+" + result.arm)  # telemetry names the version that answered
        s.outcome({"id": result.id, "outcome": "shown"})
        if result.arm == "old":  # the user takes the previous version's suggestions, not the new one's
            s.outcome({"id": result.id, "outcome": "accepted"})
        if s.trial is None:
            break
    assert s.trial is None and registry.promoted(base.identity) is None  # rolled back to the bare base
    ended = trial.load(base.identity)
    assert ended.ended.startswith("rolled back") and ended.stats["old"][0] >= trial.MIN_SHOWN
    assert 0.05 < arms.count("old") / len(arms) < 0.2
    assert any(k == "message" and "did worse" in p["text"] for k, p in sent)
    s.shutdown()


def test_a_better_adapter_is_confirmed_and_then_serves_alone(tmp_path, base):
    s, sent = armed_session(tmp_path, base)
    s.rng = random.Random(2)
    for i in range(3000):
        result = suggest(s, i)
        s.outcome({"id": result.id, "outcome": "shown"})
        if result.arm == "new":
            s.outcome({"id": result.id, "outcome": "accepted"})
        if s.trial is None:
            break
    assert s.trial is None and registry.promoted(base.identity) == "good"
    assert trial.load(base.identity).ended.startswith("confirmed")
    assert any(k == "message" and "confirmed" in p["text"] for k, p in sent)
    s.engine.runtime.arm = "old"  # as if the verdict came while the old version was serving
    after = [suggest(s, 5000 + i) for i in range(5)]
    assert {r.arm for r in after} == {""} and s.engine.runtime.arm == "new"  # switched back on the worker
    s.shutdown()


def test_without_telemetry_the_new_version_serves_alone_and_nothing_is_counted(tmp_path, base):
    s, _ = armed_session(tmp_path, base, level="off")
    results = [suggest(s, i) for i in range(50)]
    assert {r.arm for r in results} == {""} and s.engine.runtime.arm == "new"
    for r in results:
        s.outcome({"id": r.id, "outcome": "shown"})
    assert s.trial.stats["new"][0] == s.trial.stats["old"][0] == 0
    s.shutdown()


@pytest.mark.model
def test_the_runtime_switches_adapters_between_calls(tmp_path, monkeypatch):
    """One llama.cpp context serves both arms: each answers as a runtime loaded with only its own adapter."""
    np = pytest.importorskip("numpy")
    from test_finetune import zero_lora

    from server.models import resolve
    from server.runtime import LlamaRuntime, load_runtime
    from training import finetune
    real = resolve(None).path
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path / "models"))
    model = resolve(str(real))
    rng = np.random.default_rng(0)
    tensors = {k: (rng.standard_normal(v.shape) * 0.05).astype(np.float32) for k, v in zero_lora(real, 2).items()}
    registry.register_adapter("noisy", model, finetune.export_gguf(tensors, tmp_path / "noisy.gguf", alpha=8.0))
    monkeypatch.setattr(registry, "shipped", lambda base: None)  # the bare base served before, not the shipped one
    registry.promote("noisy", model)  # a trial of "noisy" against the bare base starts
    prompt = "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"
    first_line = lambda text, *_: "\n" in text.strip("\n")  # noqa: E731

    def answer(rt):
        return rt.generate(prompt, max_tokens=16, should_stop=first_line).text
    served = load_runtime(str(real), "promoted")
    assert served.trial is not None and served.adapter.name == "noisy"
    tuned = answer(served)
    served.use("old")
    assert served.adapter is None and "+" not in served.model_id
    assert served.promoted_adapter.name == "noisy"  # what the server compares with the registry
    plain = answer(served)
    assert plain == answer(LlamaRuntime(model))  # the bare base's answer, not the cache's
    assert tuned != plain  # else the switch proves nothing
    served.use("new")
    assert answer(served) == tuned and served.model_id.endswith(served.adapter.identity)


@pytest.mark.model
def test_a_promotion_is_baked_tried_on_the_bare_weights_and_served_baked_once_confirmed(tmp_path, monkeypatch):
    """The whole loop on the real model: promote -> bake -> trial (both arms on the bare weights, in one context)
    -> the verdict -> the session reloads onto the baked copy."""
    import time

    from test_finetune import blank_adapter

    from server import bake
    from server.models import resolve
    real = resolve(None).path
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path / "models"))  # a registry of this test's own
    base = resolve(str(real))
    registry.register_adapter("tuned", base, blank_adapter(real, tmp_path / "blank.gguf"))
    registry.promote("tuned", base)  # bakes it and starts its trial against what served (the shipped adapter)
    tuned = registry.resolve_adapter("tuned", base)
    baked = bake.find(base, tuned)
    assert baked is not None and trial.load(base.identity).new == "tuned"
    sent: list = []
    store = TelemetryStore("off", tmp_path / "t.sqlite3", tmp_path / "t.key")
    s = Session(notify=lambda kind, payload: sent.append((kind, payload)), store=store, options=Options(filter="off"))
    s.configure({"model": str(real), "telemetryLevel": "metrics", "multiline": "never"})
    s.load_model()
    try:
        runtime = s.engine.runtime
        assert runtime.baked is None and s.trial is not None and s.trial.new == "tuned"
        # weeks of outcomes, as the trial's file would hold them: the next suggestion of the new arm shown decides
        s.trial.stats = {"new": [99, 60, 1200.0, 24000.0], "old": [100, 0, 0.0, 0.0]}
        for i in range(40):
            result = suggest(s, i)
            if result.arm == "new" and result.text:
                s.outcome({"id": result.id, "outcome": "shown"})
                break
        assert s.trial is None and trial.load(base.identity).ended.startswith("confirmed")
        assert any(k == "message" and "confirmed" in p["text"] for k, p in sent)
        end = time.monotonic() + 120
        while time.monotonic() < end and (s.engine is None or s.engine.runtime is runtime or not s._loaded.is_set()):
            time.sleep(0.1)
        served = s.engine.runtime
        assert served is not runtime and served.baked == baked and served.adapter == tuned
        assert suggest(s, 99).model_id == f"{base.identity}+{tuned.identity}"
    finally:
        s.shutdown()
