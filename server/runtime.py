"""The model runtime: llama-cpp-python with KV prefix reuse, cancellation between tokens, LoRA seam."""
from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import bake, trial
from .model_choice import gpu_offload, resolve_auto, serving_threads
from .models import ModelError, ResolvedModel, resolve
from .options import Options
from .registry import Adapter, promoted, resolve_adapter, shipped
from .templates import FimTemplate, get_template

log = logging.getLogger(__name__)

PROMPT_CHUNK = Options.prompt_chunk  # prompt tokens evaluated between cancellation checks
# An edit's first tokens after it are evaluated again even when the tail of the prompt after them is moved
# (_park_tail): in a FIM prompt the suffix's first tokens carry the model's idea of the gap, and kept from before
# the edit, they answer the old gap (30 edits of 1-7 characters in this repository's code: the next line agreed
# with a full evaluation 3 times with none evaluated again, 28 times with 16; docs/benchmarks.md).
FRESH_AFTER_EDIT = 16
MIN_MOVED = 16  # a shorter unchanged tail is evaluated again: moving it would save next to nothing


class Cancelled(Exception):
    pass


@dataclass
class Generation:
    text: str
    n_prompt: int
    n_reused: int
    n_generated: int
    prompt_ms: float
    generate_ms: float
    stop_reason: str  # eos | stop | length
    # The lowest token log-probability on each line of `text` (a token counts for the line its last
    # character is on, so the newline that starts a line counts for that line).
    line_logprobs: list[float] = field(default_factory=list)
    # Per line of `text`: the log-probability of the token that started it (the one carrying its newline: the
    # model's decision that the answer goes on for another line); 0 for the first line.
    line_start_logprobs: list[float] = field(default_factory=list)
    # Per generated token: (id, log-probability, text piece, runner-up id, runner-up log-probability).
    steps: list[tuple[int, float, str, int, float]] = field(default_factory=list)

    def outcome(self) -> dict:
        """What post-processing reads of a generation (as `finish` takes it)."""
        return {"raw": self.text, "line_logprobs": self.line_logprobs,
                "line_start_logprobs": self.line_start_logprobs, "stop_reason": self.stop_reason}

    def answer_logprobs(self, chars: int) -> list[float]:
        """The log-probabilities of the tokens that made the first `chars` characters of `text` (at least
        one token when there is any)."""
        out, pos = [], 0
        for _, logprob, piece, _, _ in self.steps:
            if pos >= chars and out:
                break
            out.append(logprob)
            pos += len(piece)
        return out

    def first_margin(self) -> float:
        """Log-probability of the first non-blank token minus its runner-up's (0 when there is none)."""
        for _, logprob, piece, alt, alt_logprob in self.steps:
            if piece.strip():
                return logprob - alt_logprob if alt >= 0 else 0.0
        return 0.0

    def branch_in(self, chars: int) -> list[tuple[int, float]] | None:
        """The tokens of a generation that leaves `text[:chars]` where the model was least sure of it: the
        tokens up to its least certain non-blank one there, then that step's runner-up (None if none)."""
        at, best, pos = None, 0.0, 0
        for i, (_, logprob, piece, alt, _) in enumerate(self.steps):
            if pos >= chars:
                break
            pos += len(piece)
            if piece.strip() and alt >= 0 and (at is None or logprob < best):
                at, best = i, logprob
        if at is None:
            return None
        return [(tok, lp) for tok, lp, *_ in self.steps[:at]] + [(self.steps[at][3], self.steps[at][4])]


class Trace:
    """A generation as it is decoded, token by token: its text and the per-line and per-token log-probabilities
    `Generation` carries (shared by the local runtime and the remote engine)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.line_logprobs = [0.0]  # per output line: the lowest token log-probability on it
        self.line_starts = [0.0]  # per output line: the log-probability of the token that started it
        self.steps: list[tuple[int, float, str, int, float]] = []

    def take(self, tok: int, piece: bytes, logprob: float, alt: int, alt_logprob: float) -> None:
        if new_lines := piece.count(b"\n"):
            self.line_logprobs.extend([0.0] * new_lines)
            self.line_starts.extend([0.0] * new_lines)
            self.line_starts[-1] = logprob
        self.line_logprobs[-1] = min(self.line_logprobs[-1], logprob)
        self.out.extend(piece)
        self.steps.append((tok, logprob, piece.decode("utf-8", errors="ignore"), alt, alt_logprob))

    def text(self) -> str:
        return self.out.decode("utf-8", errors="ignore")

    def generation(self, n_prompt: int, n_reused: int, n_generated: int, prompt_ms: float, generate_ms: float,
                   stop_reason: str) -> Generation:
        return Generation(self.out.decode("utf-8", errors="replace"), n_prompt, n_reused, n_generated, prompt_ms,
                          generate_ms, stop_reason, self.line_logprobs, self.line_starts, self.steps)


_LLAMA_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}  # ggml_log_level
# llama.cpp warnings about the shipped models that change nothing for the user (the vocabulary's control tokens;
# an adapter's matrices kept in plain CPU buffers, not the quantized weights' repacked layout): logged at INFO,
# so that editors which show every stderr line as an error (Neovim) stay quiet.
_BENIGN = ("load: control-looking token", "llama_adapter_lora_init_impl: lora for")
_llama_log = logging.getLogger("ghostline.llama")
_log_callback = None  # kept referenced: llama.cpp calls it from C


def _route_llama_logs(llama_cpp) -> None:
    """llama.cpp's own log lines go to Python logging (stderr, at its levels), once per process."""
    global _log_callback
    if _log_callback is not None:
        return
    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, _user) -> None:
        last[0] = _LLAMA_LEVELS.get(level, last[0])  # 5 continues the previous line's level
        line = text.decode("utf-8", "replace").rstrip()
        at = logging.INFO if last[0] == logging.WARNING and line.startswith(_BENIGN) else last[0]
        if _llama_log.isEnabledFor(at) and line.strip():
            _llama_log.log(at, "%s", line)
    _log_callback = callback
    llama_cpp.llama_log_set(callback, None)


@contextlib.contextmanager
def _spare_sequence():
    """Llama() with room for a second sequence in its one (unified) KV cache, where _park_tail parks a prompt's
    tail; Llama() takes no such argument, so its defaults are widened while it builds its context."""
    from llama_cpp import llama_cpp as lib  # the module llama_cpp.Llama reads its defaults from
    defaults = lib.llama_context_default_params

    def two_sequences():
        params = defaults()
        params.n_seq_max, params.kv_unified = 2, True
        return params
    lib.llama_context_default_params = two_sequences
    try:
        yield
    finally:
        lib.llama_context_default_params = defaults


class LlamaRuntime:
    """One loaded GGUF (optionally with a LoRA adapter, applied at run time or baked into the weights). Not
    thread-safe: one worker drives it."""

    def __init__(self, model: ResolvedModel, *, n_ctx: int = Options.context_tokens, adapter: Adapter | None = None,
                 n_threads: int | None = None, baked: Path | None = None):
        """`baked`: a file with `adapter` baked into `model`'s weights (server.bake), loaded in their place."""
        try:  # imported here, on the loader thread: numpy (OpenBLAS) imported on the server's main thread at
            # start-up left the LSP server unresponsive once the model had loaded (tests/test_lsp_bad_input)
            import llama_cpp
            import numpy as np
            from llama_cpp import Llama, llama_get_logits_ith
        except ImportError as e:
            raise ModelError(f"llama-cpp-python is not installed ({e}); run `make setup`") from e
        self.model = model
        self.template: FimTemplate = get_template(model.fim_template)
        threads = n_threads or serving_threads()
        t0 = time.perf_counter()
        _route_llama_logs(llama_cpp)
        try:
            # verbose=True: with False, llama-cpp-python points fds 1 and 2 at /dev/null while it loads, and fd 1
            # is the LSP channel: every message the server sent meanwhile was lost (a request never answered).
            # Its own verbose prints (sys.stderr, looked up when printing) are dropped instead; log lines are not.
            with contextlib.redirect_stderr(io.StringIO()), _spare_sequence():
                self.llm = Llama(model_path=str(baked or model.path), n_ctx=n_ctx, n_batch=512, n_threads=threads,
                                 n_threads_batch=threads, verbose=True, n_gpu_layers=-1 if gpu_offload() else 0,
                                 lora_path=str(adapter.path) if adapter and not baked else None)
            self.llm.verbose = False  # no per-call prints from here on
        except Exception as e:  # llama.cpp reports a bad file as a bare ValueError
            raise ModelError(f"could not load {baked or model.path}: {e}; the file may be corrupt — "
                             f"run `python -m server.models verify`") from e
        self.n_ctx = n_ctx
        self.adapter = adapter
        self.baked = baked
        # The adapters `use` switches between (server.trial's arms): name -> (Adapter or None, llama.cpp handle)
        self.arm = "new"
        self._arms: dict[str, tuple[Adapter | None, object]] = {"new": (adapter, self.llm._lora_adapter)}
        self.trial = None  # the server.trial.Trial whose arms are loaded, if any
        self.notice: str | None = None  # a problem worth telling the user, though the model serves
        self.chosen: str | None = None  # why `ghostline.model: auto` chose this model (server.model_choice)
        self.prompt_tokens_evaluated = 0  # over all calls, cancelled ones included (ghostline/stats)
        self.load_ms = (time.perf_counter() - t0) * 1000
        self.n_vocab = self.llm.n_vocab()
        self._prompt: list[int] = []  # the last prompt, while the KV cache holds all of it (for _park_tail)
        self._stale = 0  # tokens changed ahead of that prompt's tail since the tail was last evaluated
        self._can_shift = bool(llama_cpp.llama_memory_can_shift(self.llm._ctx.memory))

        def greedy() -> tuple[int, float, int, float]:
            """The two most likely next tokens after what was evaluated last, with their log-probabilities."""
            logits = np.ctypeslib.as_array(llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,))
            second, first = (int(i) for i in np.argpartition(logits, -2)[-2:])
            if logits[second] > logits[first]:
                first, second = second, first
            norm = float(np.log(np.exp(logits - logits[first]).sum()))
            return first, -norm, second, float(logits[second] - logits[first]) - norm
        self._greedy = greedy
        self.stop_ids = {self.llm.token_eos()}
        for s in self.template.stops:
            ids = self.llm.tokenize(s.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self.stop_ids.add(ids[0])
        log.info("loaded %s%s in %.0f ms (n_ctx=%d, threads=%d)", self.model_id, " (baked)" if baked else "",
                 self.load_ms, n_ctx, threads)

    @property
    def model_id(self) -> str:
        """The base model's identity, plus the adapter's when one is loaded: `name@sha8[+adapter@sha8]`."""
        return self.model.identity + (f"+{self.adapter.identity}" if self.adapter else "")

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=False)) if text else 0

    @property
    def promoted_adapter(self) -> Adapter | None:
        """The adapter this runtime was loaded to serve, whichever arm of a trial is in use now."""
        return self._arms["new"][0]

    def add_arm(self, arm: str, adapter: Adapter | None) -> None:
        """Load another adapter (None: none, the bare base) that `use(arm)` switches to between calls."""
        import llama_cpp
        if self.baked:
            raise ModelError(f"{self.adapter.name} is baked into these weights ({self.baked.name}): another arm "
                             "needs the base model's file")
        handle = None
        if adapter is not None:
            handle = llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(adapter.path).encode())
            if not handle:
                raise ModelError(f"could not load adapter {adapter.name} from {adapter.path}")
            self.llm._stack.callback(llama_cpp.llama_adapter_lora_free, handle)
        self._arms[arm] = (adapter, handle)

    def use(self, arm: str) -> None:
        """Serve the next calls with the adapter of `arm` (see add_arm). The KV cache was computed under the
        other weights, so a switch starts the next prompt cold."""
        if arm == self.arm:
            return
        import ctypes

        import llama_cpp
        adapter, handle = self._arms[arm]
        if handle is None:
            llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
        else:
            llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle),
                                              1, (ctypes.c_float * 1)(1.0))
        self.llm.n_tokens = 0
        self.adapter, self.arm = adapter, arm

    def reset(self) -> None:
        """Forget the KV cache: the next prompt is evaluated from scratch (cold, and reproducible)."""
        self.llm.reset()

    def generate(self, prompt: str, *, max_tokens: int, should_stop: Callable[[str, list[float], list[float]], bool],
                 cancel: threading.Event | None = None, chunk: int = PROMPT_CHUNK,
                 forced: Sequence[tuple[int, float]] = (), reuse_suffix: int = 0) -> Generation:
        """Greedy decoding after `prompt`; the output starts with the `forced` (token, log-probability)
        pairs (a branch of an earlier generation, see Generation.branch_in), then continues greedily.
        `reuse_suffix`: see Options.reuse_suffix (0: the prompt after the cached common prefix is evaluated)."""
        llm = self.llm
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        n_prompt = len(tokens)
        tokens += [tok for tok, _ in forced]
        if len(tokens) + 1 > self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens does not fit n_ctx={self.n_ctx}")
        max_tokens = min(max_tokens, self.n_ctx - n_prompt)
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        # Evaluate the new part of the prompt in small chunks so a newer request can cancel it.
        reused = 0
        for a, b in zip(llm.input_ids[:llm.n_tokens], tokens):
            if a != b:
                break
            reused += 1
        reused = min(reused, len(tokens) - 1)  # at least one token is evaluated: its logits come next
        moved, changed = self._park_tail(tokens, reused, reuse_suffix)
        old, self._prompt = self._prompt, []  # until this prompt is evaluated, no tail of it is cached
        if moved:  # tokens[-1 - moved:-1] wait in sequence 1: evaluate the edit ahead of them, then move them in
            end = len(tokens) - 1 - moved
            try:
                llm.n_tokens = reused
                for i in range(reused, end, chunk):
                    if cancel.is_set():
                        raise Cancelled()
                    self._decode(tokens[i:min(i + chunk, end)])
                shift = len(tokens) - len(old)
                mem = llm._ctx
                if shift:
                    mem.kv_cache_seq_shift(1, len(old) - 1 - moved, len(old) - 1, shift)
                mem.kv_cache_seq_cp(1, 0, end, end + moved)
                llm.input_ids[end:end + moved] = tokens[end:end + moved]
                llm.n_tokens = end + moved
            finally:
                llm._ctx.kv_cache_seq_rm(1, -1, -1)
            self._decode(tokens[-1:])
            self._stale += changed
        else:
            llm.n_tokens = reused
            for i in range(reused, len(tokens), chunk):
                if cancel.is_set():
                    raise Cancelled()
                batch = tokens[i:i + chunk]
                llm.eval(batch)
                self.prompt_tokens_evaluated += len(batch)
            self._stale = 0
        self._prompt = tokens[:n_prompt]  # a branch's forced tokens follow the prompt: its tail is still in place
        t1 = time.perf_counter()
        # Greedy decoding by hand (argmax of the logits llama.cpp leaves for the last token): the same
        # tokens as llama.cpp's top-1 sampler, plus each token's log-probability for free.
        trace = Trace()
        for tok, logprob in forced:  # already evaluated as part of the prompt
            trace.take(tok, llm.detokenize([tok]), logprob, -1, float("-inf"))
        reason = "length"
        n = 0
        while n < max_tokens - len(forced):
            if cancel.is_set():
                raise Cancelled()
            tok, logprob, alt, alt_logprob = self._greedy()
            if tok in self.stop_ids:
                reason = "eos"
                break
            trace.take(tok, llm.detokenize([tok]), logprob, alt, alt_logprob)
            n += 1
            if should_stop(trace.text(), trace.line_logprobs, trace.line_starts):
                reason = "stop"
                break
            llm.eval([tok])
        t2 = time.perf_counter()
        return trace.generation(n_prompt, min(reused + moved, n_prompt), n, (t1 - t0) * 1000, (t2 - t1) * 1000,
                                reason)

    def _park_tail(self, tokens: list[int], reused: int, limit: int) -> tuple[int, int]:
        """After an edit inside the prompt (typing at the end of the FIM prefix), the unchanged tail of the last
        prompt (the suffix) is still in the KV cache, only at the wrong positions: all of it but its first
        FRESH_AFTER_EDIT tokens can be moved where it now belongs (llama.cpp's K-shift, what llama.cpp's server
        does with --cache-reuse) instead of being evaluated again. Its entries were computed before the edit, so
        they are approximate; they are evaluated afresh once more than `limit` tokens changed ahead of them.
        llama.cpp decodes a sequence's positions in order only, so the tail waits in sequence 1 while what
        comes before it is evaluated. Returns how many tokens before the prompt's
        last wait there (0: none; the last token is always evaluated, its logits come next) and how many tokens
        the edit inserted and removed ahead of them."""
        old, llm = self._prompt, self.llm
        if not limit or len(old) <= reused + 1 or llm.n_tokens < len(old) or not self._can_shift:
            return 0, 0
        same = 0  # the longest common tail of the two prompts after `reused`, not counting their last tokens
        while same < min(len(old), len(tokens)) - reused - 1 and old[-2 - same] == tokens[-2 - same]:
            same += 1
        m = same - FRESH_AFTER_EDIT
        changed = _changed(old, tokens, reused, same)
        if m < MIN_MOVED or self._stale + changed > limit:
            return 0, 0
        mem, start = llm._ctx, len(old) - 1 - m  # where the tail starts in the old prompt
        mem.kv_cache_seq_cp(0, 1, start, len(old) - 1)
        mem.kv_cache_seq_rm(0, reused, -1)
        return m, changed

    def _decode(self, batch: list[int]) -> None:
        """Evaluate `batch` at the next positions of sequence 0, leaving the rest of the KV cache as it is
        (Llama.eval first drops every cached position from there on, in all sequences)."""
        llm = self.llm
        llm._batch.set_batch(batch=batch, n_past=llm.n_tokens, logits_all=False)
        llm._ctx.decode(llm._batch)
        llm.input_ids[llm.n_tokens:llm.n_tokens + len(batch)] = batch
        llm.n_tokens += len(batch)
        self.prompt_tokens_evaluated += len(batch)


def _changed(old: list[int], new: list[int], common: int, tail: int) -> int:
    """Tokens inserted plus tokens removed between a common head of `common` tokens and a common tail of `tail`
    tokens (each prompt's last token aside)."""
    return (len(new) - 1 - tail - common) + (len(old) - 1 - tail - common)


PROMOTED_ADAPTER = "promoted"
SHIPPED_ADAPTER = "shipped"


def load_runtime(model: str | None, adapter: str | Adapter | None = None, *,
                 n_ctx: int = Options.context_tokens, use_baked: bool = Options.bake) -> LlamaRuntime:
    """Resolve a model (manifest name, .gguf path, or the default) and an adapter trained for it, and load
    them; the context window is `n_ctx`, capped by what the model's manifest says it was trained for.
    `adapter`: a name in the registry, an Adapter not (yet) in it, None or "none" for none, PROMOTED_ADAPTER
    for the one promoted for this base (what the server serves: the user's, else the shipped one) or
    SHIPPED_ADAPTER for the one Ghostline ships for it (what a fresh install serves); one of those two that
    cannot be loaded leaves the base serving, with a warning. With `use_baked`, an adapter baked into the base's
    weights (server.bake) loads as that file, unless an online trial needs the bare weights for its other arm."""
    model, chosen = resolve_auto(model)
    base = resolve(model)
    lora, notice = None, None
    if adapter in (PROMOTED_ADAPTER, SHIPPED_ADAPTER):
        name = promoted(base.identity) if adapter == PROMOTED_ADAPTER else shipped(base.identity)
        try:
            lora = resolve_adapter(name, base) if name else None
        except ModelError as e:
            notice = f"serving {base.name} without its adapter: {e}"
            log.warning("%s", notice)
    elif isinstance(adapter, Adapter):
        lora = adapter
    elif adapter and adapter != "none":
        lora = resolve_adapter(adapter, base)
    running = trial.load(base.identity) if adapter == PROMOTED_ADAPTER else None
    compared = bool(running and not running.ended and running.new == (lora.name if lora else None))
    bakeable = lora is not None and use_baked and not compared
    baked = bake.find(base, lora) if bakeable else None
    if bakeable and baked is None and lora.name == shipped(base.identity):
        log.info("applying %s at run time: `python -m server.models pull` bakes it into the weights (faster)",
                 lora.identity)
    runtime = LlamaRuntime(base, adapter=lora, n_ctx=min(n_ctx, base.context_length or n_ctx), baked=baked)
    runtime.notice = notice
    runtime.chosen = chosen
    if compared:
        try:  # the version promoted before serves the trial's share of calls
            runtime.add_arm("old", resolve_adapter(running.old, base) if running.old else None)
            runtime.trial = running
        except ModelError as e:
            log.warning("not comparing %s with %s online: %s", running.new, running.old, e)
    return runtime

