"""Delayed calls on one thread (survival checks 30 s and 2 min after each accept): a heap of due times and a
condition to sleep on, rather than a thread per pending call."""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Timers:
    def __init__(self, name: str):
        self.name = name
        self._due: list[tuple[float, int, Callable[[], None]]] = []  # (monotonic time, order, call)
        self._order = itertools.count()  # ties run in the order they were asked for
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None  # started by the first call: none while telemetry is off
        self._closed = False

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                fn = heapq.heappop(self._due)[2]
            try:
                fn()
            except Exception:
                log.exception("%s: a delayed call failed", self.name)

    def close(self) -> None:
        """Drop the calls not yet due; one already running finishes."""
        with self._cond:
            self._closed = True
            self._due.clear()
            self._cond.notify()
