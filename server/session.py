"""Server state without the protocol: settings, the loaded model, outcomes. Plain Python, unit-testable.

Talks to the client only through `notify(kind, payload)`: kind is "status", "message" or "log".
"""
from __future__ import annotations

import asyncio
import logging
import random
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import bake
from . import trial as trials
from .engine import Admitted, Engine, InputError, Request, Result
from .filter import Filter, NoFilter
from .filter_files import SHIPPED, FilterError, current_folder, load_filter, start_update, watch
from .models import ModelError
from .names import OUTCOMES, Reason, ServerState
from .options import Options
from .registry import adapters_dir, promoted, rollback
from .remote import RemoteError, RemoteRuntime
from .runtime import PROMOTED_ADAPTER, Cancelled, load_runtime
from .settings import MODEL_KEYS, Settings, parse_settings
from .telemetry import Accepted, Recorder, TelemetryStore
from .watch import watch_folder

log = logging.getLogger(__name__)

Notify = Callable[[str, dict], None]


def _first_time(seen: OrderedDict[str, None], key: str, bound: int) -> bool:
    """Whether `key` is new to `seen`, a set of the newest `bound` keys; it is added (the oldest may drop out)."""
    if key in seen:
        return False
    seen[key] = None
    while len(seen) > bound:
        seen.popitem(last=False)
    return True


class Session:
    def __init__(self, notify: Notify = lambda kind, payload: None,
                 loader: Callable[[str], Any] | None = None,
                 document_text: Callable[[str], str | None] = lambda uri: None,
                 store: TelemetryStore | None = None, options: Options = Options(),
                 accepted_at: Callable[[str, int, str], None] = lambda uri, offset, text: None):
        self.notify = notify
        # told (uri, offset, text) when the client reports that `text` was accepted at `offset` (prefetch)
        self.accepted_at = accepted_at
        self.options = options
        # the model with the adapter options.adapter names (tests give a loader of fakes)
        self.loader = loader or (lambda name: load_runtime(name, options.adapter, use_baked=options.bake))
        self._watch_adapters = loader is None and options.adapter == PROMOTED_ADAPTER
        store = store or TelemetryStore("off")
        store.on_problem = store.on_problem or self._telemetry_problem
        self.recorder = Recorder(store, document_text)
        self.settings = Settings()
        self.engine: Engine | None = None
        self.filter: Filter = NoFilter()
        self._unwatch: Callable[[], None] | None = None
        self._outcomes_since_update = 0
        self.updating: subprocess.Popen | None = None  # the background filter update, while it runs
        self.state = ServerState.LOADING
        self.error: str | None = None
        self._loaded = threading.Event()
        self._load_lock = threading.Lock()
        # Recent suggestions for outcomes: the result, its document, cursor line and offset (not the Request,
        # which would keep a copy of the whole document per suggestion alive).
        self.results: OrderedDict[str, tuple[Result, str, int, int]] = OrderedDict()
        self.seen_calls: OrderedDict[str, None] = OrderedDict()  # model calls whose answer was shown
        self.outcomes: list[dict] = []  # bounded log of what the client reported
        # The edit inserting a completion item counts as its accept (eglot 1.9 never runs the item's command;
        # a command that comes too is not counted twice). Off for clients that insert an item on selection.
        self.accepts_from_edits = False
        self.accepted_ids: OrderedDict[str, None] = OrderedDict()  # recent accepts, each counted once
        self.items: dict[str, tuple[str, str]] = {}  # uri -> (id, text) of the completion item offered last
        self.last_prompt_files: tuple[str, ...] = ()  # what the last model prompt named (ghostline/stats)
        self.trial: trials.Trial | None = None  # the online A/B of the promoted adapter, while it runs
        self.rng = random.Random()
        self._trial_shown: OrderedDict[str, None] = OrderedDict()  # ids of trial suggestions reported shown
        self.stats: dict[str, int] = {k: 0 for k in (
            "requests", "model_calls", "cache_hits", "cancelled", "superseded", "input_errors", "empty",
            "inflight_reuses", "filtered", "prefetches", "model_calls_seen")}

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    # --- settings and model ------------------------------------------------------------------
    def configure(self, raw: Any) -> None:
        old = self.settings
        self.settings, problems = parse_settings(raw, old)
        for p in problems:
            log.warning("%s", p)
            self.notify("message", {"level": "warning", "text": f"Ghostline: {p}"})
        self.recorder.configure(self.settings.telemetryLevel, self.settings.clientTelemetryEnabled)
        if any(getattr(self.settings, k) != getattr(old, k) for k in MODEL_KEYS) and self._loaded.is_set():
            self.load_model_async()
        elif self.settings.enable != old.enable and self._loaded.is_set():
            self.set_state(self._idle_state())

    def load_filter(self) -> None:
        """(Re)load the filter `options.filter` names; a missing or corrupt one leaves every suggestion shown,
        said once to the user."""
        choice = self.options.filter
        folder = None if choice == "off" else current_folder() if choice == "current" else Path(choice)
        try:
            filt: Filter = NoFilter() if folder is None or (folder == SHIPPED and not folder.is_dir()) \
                else load_filter(folder)
        except FilterError as e:
            log.error("%s", e)
            self.notify("message", {"level": "warning", "text": f"Ghostline: {e}; showing every suggestion"})
            filt = NoFilter()
        if filt.name == self.filter.name:  # the watcher also fires for filters written but not promoted
            return
        log.info("filter: %s", filt.name)
        self.filter = filt
        if self.engine is not None:
            self.engine.set_filter(filt)

    def _telemetry_problem(self, text: str) -> None:
        self.notify("message", {"level": "warning", "text": text})

    def _idle_state(self) -> ServerState:
        if self.error:
            return ServerState.ERROR
        return ServerState.READY if self.settings.enable else ServerState.DISABLED

    def set_state(self, state: ServerState, message: str | None = None) -> None:
        self.state = state
        runtime = self.engine.runtime if self.engine else None
        payload = {"state": state.value, "model": runtime.model_id if runtime else None}
        message = message or getattr(runtime, "chosen", None)  # why `ghostline.model: auto` chose it
        if message:
            payload["message"] = message
        self.notify("status", payload)

    def load_model_async(self) -> threading.Thread:
        self._loaded.clear()
        t = threading.Thread(target=self.load_model, name="ghostline-load", daemon=True)
        t.start()
        return t

    def load_model(self) -> None:
        with self._load_lock:
            name, s = self.settings.model, self.settings
            self.set_state(ServerState.LOADING, f"connecting to {s.remoteUrl}" if s.remoteUrl else
                           f"loading {name or 'default model'}")
            if self._unwatch is None:
                self.load_filter()
                # a newly promoted filter or adapter serves without a restart
                stops = [watch(self.load_filter) if self.options.filter == "current" else None]
                if self._watch_adapters:
                    stops.append(watch_folder(adapters_dir(), self._adapter_changed))
                self._unwatch = lambda: [stop() for stop in stops if stop]
            try:
                runtime = RemoteRuntime(s.remoteUrl, model=s.remoteModel, template=s.remoteTemplate,
                                        timeout_ms=s.remoteTimeoutMs, logprobs=s.remoteLogprobs) \
                    if s.remoteUrl else self.loader(name)
                self.engine = Engine(runtime, options=self.options, filt=self.filter)
                self._save_trial()
                self.trial = getattr(runtime, "trial", None)
                self.error = None
                log.info("model ready: %s", runtime.model_id)
                if getattr(runtime, "notice", None):
                    self.notify("message", {"level": "warning", "text": f"Ghostline: {runtime.notice}"})
            except (ModelError, ValueError, OSError) as e:
                self.engine = None
                self.error = str(e)
                log.error("model failed to load: %s", e)
                self.notify("message", {"level": "error", "text": f"Ghostline: {e}"})
            finally:
                self._loaded.set()
            self.set_state(self._idle_state(), self.error)

    def _adapter_changed(self) -> None:
        """The adapters folder changed: reload when another adapter is now promoted for the serving model."""
        engine = self.engine
        if engine is None or not self._loaded.is_set():
            return
        runtime = engine.runtime
        base = getattr(runtime, "model", None)  # none for a remote engine: it serves its own weights
        now = getattr(getattr(runtime, "promoted_adapter", None), "name", None)
        if base is not None and promoted(base.identity) != now:
            log.info("promoted adapter changed: reloading %s", base.identity)
            self.load_model_async()

    async def wait_loaded(self, timeout: float = 600) -> bool:
        return await asyncio.to_thread(self._loaded.wait, timeout)

    # --- completions ------------------------------------------------------------------------
    def admit(self, req: Request, *, free: bool = False) -> Result | Admitted | None:
        """`Engine.admit` plus the server's counters: None while the model is still loading (ask again once
        `wait_loaded` returns). Raises InputError for a request that cannot be completed. `free`: a running
        generation will answer it (see `Engine.admit`)."""
        engine = self.engine
        if engine is None and not self._loaded.is_set():
            return None
        self.count("requests")
        if engine is None:
            return Result("", "", "none", reason=Reason.NO_MODEL)
        try:
            got = engine.admit(req, self.settings, free=free)
        except InputError:
            self.count("input_errors")
            raise
        if isinstance(got, Result):
            if got.source == "cache":
                self.count("cache_hits")
            self._remember(got, req)
        return got

    def judge(self, req: Request, admitted: Admitted) -> Result | Admitted:
        """The filter's first stage for a request admitted as free whose generation did not answer it."""
        engine = self.engine
        if engine is None:
            return Result("", "", "none", reason=Reason.NO_MODEL)
        got = engine.judge(admitted, self.settings)
        if isinstance(got, Result):
            self._remember(got, req)
        return got

    def from_flight(self, req: Request) -> Result | None:
        """After waiting for a generation this request typed along with (in-flight reuse): its answer from the
        typing-through cache, where that generation left it; None when it ended inconsistent with the typing."""
        engine = self.engine
        got = engine.from_cache(req) if engine is not None else None
        if got is not None:
            self.count("cache_hits")
            self.count("inflight_reuses")
            self._remember(got, req)
        return got

    def generate(self, req: Request, admitted: Admitted, cancel: threading.Event,
                 progress: Callable[[str], None] | None = None) -> Result:
        """The model's part of one request, on the model worker."""
        engine = self.engine
        if engine is None:  # unloaded while queued
            return Result("", "", "none", reason=Reason.NO_MODEL)
        self.count("model_calls")
        self.set_state(ServerState.GENERATING)
        arm = self._arm(engine)
        try:
            result = engine.generate(req, admitted, self.settings, cancel, progress)
            result.arm = arm
            self.error = None  # a remote engine answers again
        except Cancelled:
            # recorded with its features: the filter learns which model calls end up thrown away
            self._remember(Result(admitted.id, "", "none", reason=Reason.CANCELLED, features=admitted.features,
                                  decision=admitted.decision, model_id=engine.runtime.model_id), req)
            raise
        except RemoteError as e:  # the engine elsewhere is down or slow: say so once, keep serving requests
            if self.error != str(e):
                log.error("%s", e)
                self.notify("message", {"level": "warning", "text": f"Ghostline: {e}"})
            self.error = str(e)
            return Result(admitted.id, "", "none", reason=Reason.UNAVAILABLE, model_id=engine.runtime.model_id)
        finally:
            self.set_state(self._idle_state(), self.error)
        self._remember(result, req)
        self.last_prompt_files = result.prompt_files
        if not result.text:
            self.count("empty")
        t = result.timings
        log.info("completion %s %s %d chars in %.0f ms (prompt %d tok, %d reused; %.0f+%.0f ms)%s",
                 result.id, req.language, len(result.text), t.get("total_ms", 0), result.prompt_tokens,
                 result.reused_tokens, t.get("prompt_ms", 0), t.get("generate_ms", 0),
                 f" [{result.reason.value}]" if result.reason else "")
        return result

    # --- the online trial of a promoted adapter (server.trial) -----------------------------------
    def _arm(self, engine: Engine) -> str:
        """The version that answers this model call: drawn while a trial runs and telemetry is on."""
        trial, counted = self.trial, self.trial is not None and self.recorder.enabled
        arm = trial.draw(self.rng) if counted else "new"
        # switched here, on the model worker, never while a generation runs (a trial that just ended goes back)
        if trial is not None or getattr(engine.runtime, "arm", "new") != "new":
            engine.runtime.use(arm)
        return arm if counted else ""

    def _observe(self, result: Result, kind: str, length: int | None) -> None:
        trial = self.trial
        if trial is None or not result.arm or not self.recorder.enabled:
            return
        if kind == "shown":
            if not _first_time(self._trial_shown, result.id, 512):
                return
            trial.shown(result.arm)
            if sum(s[0] for s in trial.stats.values()) % 20 == 0:  # kept across restarts, without a write each time
                trials.save(trial)
        elif kind in ("accepted", "partial") and result.id in self._trial_shown:
            del self._trial_shown[result.id]  # one accept per suggestion shown
            trial.accepted(result.arm, len(result.text) if kind == "accepted" or length is None else length)
        else:
            return
        verdict = trial.verdict()
        if verdict is None:
            return
        self.trial = None
        runtime = self.engine.runtime if self.engine else None
        if verdict == "old":
            text = f"Ghostline: adapter {trial.new} did worse than {trial.old or 'the base model'} on your " \
                   f"suggestions ({trial.describe()}); rolled back"
            trials.save(trial)
            rollback(runtime.model, f"rolled back: {trial.describe()}")  # the watcher swaps the model
        else:
            text = f"Ghostline: adapter {trial.new or 'none'} confirmed ({trial.describe()})"
            trials.end(trial, f"confirmed: {trial.describe()}")  # the next model call goes back to "new"
            adapter = getattr(runtime, "promoted_adapter", None)
            if self.options.bake and adapter is not None and bake.find(runtime.model, adapter):
                self.load_model_async()  # both arms ran on the bare weights; the baked copy serves faster
        log.info("%s", text)
        self.notify("message", {"level": "warning" if verdict == "old" else "info", "text": text})

    def _save_trial(self) -> None:
        if self.trial is not None and self.recorder.enabled:
            trials.save(self.trial)

    def _remember(self, result: Result, req: Request) -> None:
        if result.reason is Reason.FILTERED:
            self.count("filtered")
        self.recorder.request(result, req)
        if result.id and result.text:
            self.results[result.id] = (result, req.uri, req.text.count("\n", 0, req.offset), req.offset)
            while len(self.results) > 256:
                self.results.popitem(last=False)

    # --- outcomes ---------------------------------------------------------------------------
    def outcome(self, params: dict) -> bool:
        cid, kind = params.get("id"), params.get("outcome")
        if not isinstance(cid, str) or kind not in OUTCOMES:
            log.warning("ignoring malformed outcome %r", params)
            return False
        if kind == "accepted":
            if not _first_time(self.accepted_ids, cid, 256):  # the item's command after the edit that counted
                return True
        known = self.results.get(cid)
        length, reason = params.get("acceptedLength"), params.get("reason")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            length = None
        reason = reason if isinstance(reason, str) else None
        entry = {"id": cid, "outcome": kind, "known": known is not None, "t": time.time(),
                 "acceptedLength": length, "reason": reason}
        self.outcomes.append(entry)
        del self.outcomes[:-1000]
        if self.engine is not None and kind in ("accepted", "partial", "ignored"):
            self.engine.record_outcome(kind != "ignored")
            self._maybe_update_filter()
        if known is not None:
            self._observe(known[0], kind, length)
            if kind == "shown":
                self._seen(known[0])
        accepted = None
        if known is not None and kind in ("accepted", "partial"):
            result, uri, line, offset = known
            text = result.text if kind == "accepted" or length is None else result.text[:length]
            accepted = Accepted(cid, uri, line, text)
        self.recorder.outcome(cid, kind, length, reason, accepted)
        if accepted is not None:
            self.accepted_at(uri, offset, accepted.text)
        line = (f"ghostline: outcome {kind} id={cid}" + (f" acceptedLength={length}" if length is not None else "")
                + (f" reason={reason}" if reason else ""))
        # The client's log shows window/logMessage; stderr gets it only at debug level, so editors that
        # show both do not print every outcome twice.
        log.debug("%s%s", line, "" if known else " (unknown id)")
        self.notify("log", {"text": line})
        return True

    def _seen(self, result: Result) -> None:
        """Count the model call behind a suggestion shown (its own, or the one a cache hit continues) once."""
        if _first_time(self.seen_calls, result.parent_id or result.id, 1024):
            self.count("model_calls_seen")

    def _maybe_update_filter(self) -> None:
        every = self.options.filter_update_every
        self._outcomes_since_update += 1
        if (every <= 0 or self._outcomes_since_update < every or not self.recorder.enabled
                or self.options.filter != "current" or (self.updating and self.updating.poll() is None)):
            return
        self._outcomes_since_update = 0
        self.updating = start_update(self.recorder.store.db_path)
        log.info("updating the filter on the newest outcomes (pid %s)", self.updating and self.updating.pid)

    def offered_item(self, uri: str, completion_id: str, text: str) -> None:
        """A suggestion went out as a completion item that puts `text` in the document when accepted; unless the
        client inserts items on selection (`accepts_from_edits` off), the edit inserting it is the accept."""
        if self.accepts_from_edits:
            self.items[uri] = (completion_id, text.strip())

    def document_changed(self, uri: str, edits: list[tuple[int, int, int]], inserted: tuple[str, ...] = ()) -> None:
        """`edits`: (start line, end line, lines inserted) per content change, for survival tracking;
        `inserted`: the text each change inserted."""
        if self.engine is not None:
            self.engine.note_edit(uri)
        if self.recorder.enabled:
            self.recorder.document_changed(uri, edits)
        item = self.items.get(uri)
        if item is not None and any(t.strip() == item[1] for t in inserted):
            del self.items[uri]
            self.outcome({"id": item[0], "outcome": "accepted"})

    def document_closed(self, uri: str) -> None:
        self.items.pop(uri, None)
        self.recorder.document_closed(uri)
        if self.engine is not None:
            self.engine.forget(uri)

    def shutdown(self) -> None:
        self._save_trial()
        if self._unwatch is not None:
            self._unwatch()
        self.recorder.close()
