"""The completion pipeline as plain Python, in two steps per request:

  admit     (event loop)   input checks -> language switch -> typing-through cache -> features -> filter
  generate  (model worker) context -> prompt -> generation -> post-processing -> answer filter -> result

A request the filter rejects never reaches the model queue. The LSP layer, the CLI, the evaluator and the
simulator all call this."""
from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from . import features as feats
from .cache import TypingCache
from .context import build_context
from .filter import Decision, Exploration, Filter, NoFilter, decide
from .names import Reason
from .options import Options
from .postprocess import (
    block_confidence,
    confident_lines,
    decide_multiline,
    early_stop,
    finish,
    one_line_wanted,
    prefer_one_line,
    repeated_first_line,
)
from .runtime import Generation
from .settings import Settings
from .templates import FimTemplate

log = logging.getLogger(__name__)

MAX_DOC_CHARS = 1_000_000


class Runtime(Protocol):
    template: FimTemplate
    model_id: str
    prompt_tokens_evaluated: int  # over all calls, cancelled ones included

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompt: str, *, max_tokens: int, should_stop, cancel=None, chunk: int,
                 forced=(), reuse_suffix: int = 0) -> Generation:
        """Greedy; `should_stop(text, line_logprobs, line_start_logprobs)` is asked after every token."""


class InputError(ValueError):
    """The request cannot be completed as asked (binary, huge, bad position); the message says why, and
    `kind` names the problem (the user is told once per kind, not once per keystroke)."""

    def __init__(self, message: str, kind: str = "input"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Request:
    uri: str
    text: str
    offset: int
    language: str = ""
    path: str | None = None  # the file's path on disk, when it has one
    root: str | None = None  # the workspace folder holding it: prompts name files relative to it
    others: tuple[tuple[str, str], ...] = ()  # other open documents of the same language: (path, text)

    @property
    def prefix(self) -> str:
        return self.text[:self.offset]

    @property
    def suffix(self) -> str:
        return self.text[self.offset:]


@dataclass(frozen=True)
class Admitted:
    """A request `Engine.admit` let through to the model: what `Engine.generate` needs from admission."""
    id: str
    features: dict[str, float]
    decision: Decision
    t0: float  # perf_counter when the request was admitted: total_ms counts from here
    filter_ms: float


@dataclass
class Result:
    id: str
    text: str
    source: str  # model | cache | none
    reason: Reason | None = None  # why there is no text
    multiline: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)
    decision: Decision = field(default_factory=lambda: Decision(True))
    raw: str = ""
    model_id: str = ""
    prompt_tokens: int = 0
    reused_tokens: int = 0
    parent_id: str | None = None  # for cache hits: the suggestion this continues
    prompt_files: tuple[str, ...] = ()  # the file names the prompt carries: snippets', then this file's
    line_logprobs: list[float] = field(default_factory=list)  # of `raw`, per line: its least certain token
    line_start_logprobs: list[float] = field(default_factory=list)  # of `raw`, per line: the token starting it
    stop_reason: str = ""  # why generation ended: eos | stop | length
    tokens_generated: int = 0  # by every generation this answer took (a branch's included)
    branched: bool = False  # `raw` is the model's runner-up at a token of its first generation's first line
    arm: str = ""  # while an online trial runs (server.trial): "new" or "old", the version that answered
    # When the line-start one-line rule generated an alternative: both generations' `Generation.outcome()`
    # (the benchmark replays post-processing switches from them).
    one_line: dict | None = None


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def check_input(req: Request) -> None:
    if len(req.text) > MAX_DOC_CHARS:
        raise InputError(f"document is too large to complete ({len(req.text):,} characters; "
                         f"the limit is {MAX_DOC_CHARS:,})", "too-large")
    if "\x00" in req.text[max(0, req.offset - 4096):req.offset + 4096]:
        raise InputError("document looks binary (NUL bytes near the cursor); not completing it", "binary")
    if not 0 <= req.offset <= len(req.text):
        raise InputError(f"cursor offset {req.offset} is outside the document (length {len(req.text)})",
                         "position")


class Engine:
    def __init__(self, runtime: Runtime, *, options: Options = Options(), filt: Filter | None = None,
                 explore: Exploration | None = None):
        self.runtime = runtime
        self.options = options
        self.filter = filt or NoFilter()
        self.explore = explore or Exploration(options.exploration)
        self.cache = TypingCache()
        self.history = feats.History()
        self._last_decision_at: float | None = None
        self._edits: dict[str, deque[float]] = {}  # uri -> monotonic times of its recent edits (typing speed)
        self._lock = threading.Lock()

    def set_filter(self, filt: Filter) -> None:
        """A new filter (hot reload) explores from its start again: its own data is what is missing."""
        self.filter, self.explore = filt, Exploration(self.options.exploration, rng=self.explore.rng)

    def note_edit(self, uri: str) -> None:
        with self._lock:
            self._edits.setdefault(uri, deque(maxlen=8)).append(time.monotonic())

    def forget(self, uri: str) -> None:
        self.cache.forget(uri)
        with self._lock:
            self._edits.pop(uri, None)

    def _typing(self, uri: str, now: float) -> tuple[float | None, float | None]:
        """(median gap between the document's recent edits, time since its last edit)."""
        times = self._edits.get(uri)
        if not times:
            return None, None
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return (statistics.median(gaps) if gaps else None), now - times[-1]

    def from_cache(self, req: Request) -> Result | None:
        """Answer from the typing-through cache; cheap enough to run on the event loop."""
        hit = self.cache.get(req.uri, req.prefix, req.suffix)
        if hit is None:
            return None
        return Result(new_id(), hit.text, "cache", reason=None if hit.text else Reason.EMPTY,
                      multiline="\n" in hit.text, model_id=self.runtime.model_id,
                      parent_id=hit.entry.completion_id, timings={"total_ms": 0.0})

    def record_outcome(self, accepted: bool) -> None:
        with self._lock:
            self.history = feats.History(accepted, self.history.seconds_since_last)

    def admit(self, req: Request, settings: Settings = Settings(), *, free: bool = False) -> Result | Admitted:
        """Everything before the model, cheap enough for the event loop: input checks, the language switch,
        the typing-through cache, then features and the filter's decision with the history as it stands
        when the request arrives. A `Result` is the final answer; `Admitted` goes on to `generate`.
        `free`: the request types along with a running generation and will be answered by it (in-flight
        reuse); it costs no model call, so the filter does not judge it (`judge` does if it must generate)."""
        t0 = time.perf_counter()
        check_input(req)
        if not settings.enabled_for(req.language):
            return Result("", "", "none", reason=Reason.DISABLED)  # no id: nothing to record or refer to
        cached = self.from_cache(req)
        if cached is not None:
            return cached
        with self._lock:
            now = time.monotonic()
            since = now - self._last_decision_at if self._last_decision_at else None
            self._last_decision_at = now
            history = feats.History(self.history.last_accepted, since, *self._typing(req.uri, now))
        features = feats.extract(req.prefix, req.suffix, req.language, history)
        admitted = Admitted(new_id(), features, Decision(True), t0, (time.perf_counter() - t0) * 1000)
        return admitted if free else self.judge(admitted, settings)

    def judge(self, admitted: Admitted, settings: Settings = Settings()) -> Result | Admitted:
        """The filter's first stage: is this request worth a model call?"""
        t = time.perf_counter()
        decision = decide(self.filter, "before", admitted.features, settings.filterAggressiveness, self.explore)
        filter_ms = admitted.filter_ms + (time.perf_counter() - t) * 1000
        if not decision.show:
            return Result(admitted.id, "", "none", reason=Reason.FILTERED, features=admitted.features,
                          decision=decision, model_id=self.runtime.model_id,
                          timings={"filter_ms": filter_ms, "total_ms": filter_ms})
        return replace(admitted, decision=decision, filter_ms=filter_ms)

    def complete(self, req: Request, settings: Settings = Settings(),
                 cancel: threading.Event | None = None) -> Result:
        """`admit`, then `generate` at once (the CLI and the benchmark; the server queues `generate`)."""
        got = self.admit(req, settings)
        return got if isinstance(got, Result) else self.generate(req, got, settings, cancel)

    def generate(self, req: Request, admitted: Admitted, settings: Settings = Settings(),
                 cancel: threading.Event | None = None, progress: Callable[[str], None] | None = None) -> Result:
        """The model's part, on the model worker: context -> prompt -> generation -> post-processing.
        `progress` is told the model's output so far after every token."""
        t_start = time.perf_counter()
        prefix, suffix = req.prefix, req.suffix
        result = Result(admitted.id, "", "model", features=admitted.features, decision=admitted.decision,
                        model_id=self.runtime.model_id)
        opts = self.options
        ctx = build_context(prefix, suffix, count=self.runtime.count_tokens, options=opts,
                            path=req.path, root=req.root, language=req.language, others=req.others)
        prompt = self.runtime.template.render(ctx.prefix, ctx.suffix, path=ctx.path, snippets=ctx.snippets)
        result.prompt_files = tuple(s.path for s in ctx.snippets) + ((ctx.path,) if ctx.path else ())
        multiline = decide_multiline(prefix, suffix, settings.multiline, opts)
        t_ctx = time.perf_counter()

        def should_stop(text: str, lowest=(), starts=()) -> bool:
            if progress is not None:
                progress(text)
            if early_stop(text, prefix, suffix, multiline, opts, req.language):
                return True
            return multiline and confident_lines(text, block_confidence(lowest, starts, opts),
                                                 opts.block_min_prob) != text

        branches: list[Generation] = []  # generations after the first (their prompt is cached)

        def generate(forced=()) -> Generation:
            g = self.runtime.generate(prompt, max_tokens=settings.maxTokens, cancel=cancel,
                                      chunk=opts.prompt_chunk, should_stop=should_stop, forced=forced,
                                      reuse_suffix=opts.reuse_suffix)
            if forced:
                branches.append(g)
            return g

        post_ms = 0.0

        def answer(g: Generation) -> str:
            nonlocal post_ms
            t = time.perf_counter()
            out = finish(g.outcome(), prefix, suffix, multiline, opts, req.language)
            post_ms += (time.perf_counter() - t) * 1000
            return out
        gen = first = generate()
        repeat = repeated_first_line(gen.text, prefix, suffix) if opts.avoid_repeat else 0
        forced = gen.branch_in(repeat) if repeat else None
        if forced:
            gen = generate(forced)
        text = answer(gen)
        # At the start of a line with code, nothing or a statement over several lines: the model's runner-up
        # at its least certain token of the first line, when that gives one whole line.
        if not forced and one_line_wanted(text, prefix, suffix, opts):
            alt = gen.branch_in(len(gen.text.split("\n", 1)[0]))
            other = generate(alt) if alt else None
            if other is not None:
                result.one_line = {"first": gen.outcome(), "alternative": other.outcome()}
                chosen = prefer_one_line(text, answer(other))
                if chosen != text:
                    gen, text, forced = other, chosen, alt
        result.features = {**admitted.features, **feats.extract_answer(
            text, gen.text, prefix, suffix, req.language, token_logprobs=gen.answer_logprobs(len(text)),
            line_logprobs=gen.line_logprobs, stop_reason=gen.stop_reason, multiline=multiline,
            branched=bool(forced), first_word_logprobs=gen.answer_logprobs(feats.first_word_end(text)),
            first_margin=gen.first_margin())} if text else admitted.features
        # An answer the filter does not think worth showing is dropped; one explored at admission is shown
        # whatever this stage says (its outcome is the unbiased sample).
        if text and not admitted.decision.exploration:
            after = decide(self.filter, "after", result.features, settings.filterAggressiveness, self.explore)
            if after.stage:
                result.decision = after
                if not after.show:
                    result.reason, text = Reason.FILTERED, ""
        t_post = time.perf_counter()
        result.text, result.raw, result.multiline = text, gen.text, multiline
        result.line_logprobs, result.line_start_logprobs = gen.line_logprobs, gen.line_start_logprobs
        result.stop_reason, result.branched = gen.stop_reason, bool(forced)
        result.reason = result.reason or (None if text else Reason.EMPTY)
        result.prompt_tokens, result.reused_tokens = first.n_prompt, first.n_reused
        result.tokens_generated = first.n_generated + sum(b.n_generated for b in branches)
        result.timings = {
            "filter_ms": admitted.filter_ms, "wait_ms": (t_start - admitted.t0) * 1000 - admitted.filter_ms,
            "context_ms": (t_ctx - t_start) * 1000,
            "prompt_ms": first.prompt_ms,
            "generate_ms": first.generate_ms + sum(b.prompt_ms + b.generate_ms for b in branches),
            "post_ms": post_ms, "total_ms": (t_post - admitted.t0) * 1000,
        }
        if result.reason is not Reason.FILTERED:  # held back by the filter: a later request may be judged anew
            self.cache.put(req.uri, prefix, suffix, text, result.id)
        return result
