"""One model worker, latest request wins.

A new request for a document cancels the running generation for it between tokens and replaces any
request of that document still waiting. At most one waiting request per document, and a bounded number
of documents: nothing queues without limit.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class Superseded(Exception):
    """A newer request for the same document replaced this one before or while it ran."""


@dataclass
class Job:
    key: str
    fn: Callable[[threading.Event], Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future = field(default_factory=Future)


def _fail(job: Job, exc: BaseException) -> None:
    """Settle a job's future with `exc` unless it is already settled; the client's $/cancelRequest
    cancels futures from the event loop's thread at any moment."""
    job.cancel.set()
    try:
        job.future.set_exception(exc)
    except InvalidStateError:
        pass


class LatestWins:
    def __init__(self, max_waiting: int = 8, name: str = "ghostline-model"):
        self.max_waiting = max_waiting
        self._lock = threading.Condition()
        self._waiting: OrderedDict[str, Job] = OrderedDict()
        self._running: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: str, fn: Callable[[threading.Event], Any], cancel: threading.Event | None = None) -> Job:
        """Queue `fn(cancel)`; `cancel` (a new Event by default) is set when the job is superseded."""
        job = Job(key, fn, cancel or threading.Event())
        with self._lock:
            if self._running is not None and self._running.key == key:
                self._running.cancel.set()
            old = self._waiting.pop(key, None)
            if old is not None:
                _fail(old, Superseded())
            self._waiting[key] = job
            while len(self._waiting) > self.max_waiting:
                _, dropped = self._waiting.popitem(last=False)
                _fail(dropped, Superseded())
            self._lock.notify()
        return job

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                _, job = self._waiting.popitem(last=False)
                self._running = job
            try:
                if job.cancel.is_set():
                    raise Superseded()
                result = job.fn(job.cancel)
                try:
                    job.future.set_result(result)
                except InvalidStateError:  # cancelled by the client meanwhile
                    pass
            except BaseException as e:  # the worker must survive anything a job does
                _fail(job, e)
            finally:
                with self._lock:
                    self._running = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for job in self._waiting.values():
                _fail(job, Superseded())
            self._waiting.clear()
            if self._running:
                self._running.cancel.set()
            self._lock.notify_all()
