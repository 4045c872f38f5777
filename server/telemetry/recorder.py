"""What the server tells the telemetry store: one row per suggestion, its outcome events, and survival checks
of accepted text 30 s and 2 min later. Writes run on one background thread so neither the event loop nor
the model worker waits on SQLite, and the checks wait on one timer thread; at level `off` nothing is queued
at all.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from ..features import FEATURE_VERSION
from .schema import effective_level
from .store import TelemetryStore
from .survival import CHECK_DELAYS_S, similarity
from .timers import Timers

log = logging.getLogger(__name__)

MAX_PENDING = 1000  # writes queued beyond this are dropped (and counted) rather than piling up


@dataclass
class Accepted:
    """Where accepted text sits: its line moves with edits above it, so a check finds it again."""
    id: str
    uri: str
    line: int
    text: str


class Recorder:
    def __init__(self, store: TelemetryStore, document_text: Callable[[str], str | None] = lambda uri: None,
                 delays: tuple[float, ...] = CHECK_DELAYS_S, timers: Timers | None = None):
        self.store = store
        self.document_text = document_text
        self.delays = delays
        self.dropped = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ghostline-telemetry")
        self._pending = 0
        self._lock = threading.Lock()
        self._tracked: dict[str, list[Accepted]] = {}  # uri -> accepted texts awaiting survival checks
        self.timers = timers or Timers("ghostline-survival")  # tests pass one whose clock they move

    @property
    def enabled(self) -> bool:
        return self.store.enabled

    @property
    def pending(self) -> int:
        """Writes queued and not yet done (0 means everything asked for so far is on disk, or failed)."""
        with self._lock:
            return self._pending

    def configure(self, user_level: str, client_enabled: bool) -> None:
        level = effective_level(user_level, client_enabled)
        if level != self.store.level:
            log.info("telemetry level: %s (setting %s, editor telemetry %s)", level, user_level,
                     "on" if client_enabled else "off")
            self.store.set_level(level)
            if level != "off":
                self._submit(self.store.open)

    def _submit(self, fn: Callable, *args, **kw) -> None:
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return
            self._pending += 1

        def run() -> None:
            try:
                fn(*args, **kw)
            finally:
                with self._lock:
                    self._pending -= 1
        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending -= 1

    def request(self, result, req) -> None:
        if not self.enabled or not result.id:
            return
        d = result.decision
        # prefix/suffix are sliced on the telemetry thread, not on the caller's (the event loop or the model
        # worker): for a large document each slice is a copy.
        self._submit(lambda: self.store.record_request(
            result.id, language=req.language, model_id=result.model_id, prefix=req.prefix, suffix=req.suffix,
            completion=result.text, latency=result.timings, features=result.features, filter_score=d.score,
            exploration=d.exploration, propensity=d.propensity, path=req.path,
            status=result.reason.value if result.reason else result.source, parent_id=result.parent_id,
            stop_reason=result.stop_reason or None, tokens_generated=result.tokens_generated,
            feature_version=FEATURE_VERSION if result.features else None, filter_id=d.filter,
            filter_stage=d.stage or None))

    def outcome(self, cid: str, kind: str, accepted_length: int | None, reason: str | None,
                accepted: Accepted | None) -> None:
        if not self.enabled:
            return
        self._submit(self.store.record_outcome, cid, kind, accepted_length, reason)
        if accepted is not None and accepted.text.strip():
            with self._lock:
                self._tracked.setdefault(accepted.uri, []).append(accepted)
            for delay in self.delays:
                self.timers.call_later(delay, partial(self._check, accepted, delay))

    def document_changed(self, uri: str, edits: list[tuple[int, int, int]]) -> None:
        """`edits`: (start line, end line, lines inserted) per content change, in order; a full replacement
        comes as (0, 0, 0) and leaves tracked lines where they are."""
        with self._lock:
            for acc in self._tracked.get(uri, ()):
                for start, end, inserted in edits:
                    if end < acc.line:
                        acc.line += inserted - (end - start)
                    elif start < acc.line:  # the edit swallowed the start: search from where it began
                        acc.line = start

    def document_closed(self, uri: str) -> None:
        with self._lock:
            self._tracked.pop(uri, None)

    def _check(self, acc: Accepted, delay: float) -> None:
        with self._lock:
            last = delay == max(self.delays)
            if last and acc in self._tracked.get(acc.uri, []):
                self._tracked[acc.uri].remove(acc)
            line = acc.line
        text = self.document_text(acc.uri)
        if text is None:
            log.debug("survival %s: document %s is closed", acc.id, acc.uri)
            return
        offset = _line_offset(text, line)
        sim = similarity(acc.text, text, offset)
        log.debug("survival %s after %.0f s: %.2f", acc.id, delay, sim)
        self._submit(self.store.record_survival, acc.id, delay, sim)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until queued writes are done (tests, shutdown)."""
        self._pool.submit(lambda: None).result(timeout)

    def close(self) -> None:
        self.timers.close()
        self._pool.shutdown(wait=True)
        self.store.close()


def _line_offset(text: str, line: int) -> int:
    pos = 0
    for _ in range(max(0, line)):
        nxt = text.find("\n", pos)
        if nxt < 0:
            return len(text)
        pos = nxt + 1
    return pos
