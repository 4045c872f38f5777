"""Fakes shared by the fast unit tests (the real model is exercised by the tests marked `model`)."""
from server.runtime import Cancelled, Generation
from server.templates import get_template


class ScriptedRuntime:
    template = get_template("qwen")
    model_id = "scripted"
    prompt_tokens_evaluated = 0

    def __init__(self, output: str):
        self.output = output
        self.prompts: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def generate(self, prompt, *, max_tokens, should_stop, cancel=None, chunk=64, forced=(), reuse_suffix=0):
        self.prompts.append(prompt)
        text = ""
        for ch in self.output:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            text += ch
            if should_stop(text, [], []):
                return Generation(text, 10, 0, len(text), 1.0, 1.0, "stop")
        return Generation(text, 10, 0, len(text), 1.0, 1.0, "eos")


class ManualTimers:
    """`server.telemetry.timers.Timers` with a clock the test moves: `advance` runs what falls due, in order,
    on the caller's thread (survival checks without sleeping)."""

    def __init__(self):
        self.now = 0.0
        self._due: list = []

    def call_later(self, delay, fn):
        self._due.append((self.now + delay, len(self._due), fn))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for item in sorted(d for d in self._due if d[0] <= self.now):
            self._due.remove(item)
            item[2]()

    def close(self):
        self._due.clear()


class FixedFilter:
    """A filter with fixed scores per stage (None: no model for it) and one threshold; pair it with
    `NO_EXPLORATION` unless a test is about exploration."""

    def __init__(self, before: float | None = None, after: float | None = None, threshold: float = 0.5,
                 name: str = "fixed@test"):
        self.scores = {"before": before, "after": after}
        self.limit, self.name = threshold, name

    def score(self, stage, features):
        return self.scores[stage]

    def threshold(self, stage, aggressiveness):
        return self.limit


def no_exploration():
    from server.filter import Exploration
    return Exploration(start=0.0, floor=0.0)
