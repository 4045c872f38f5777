"""Hot reload: call back when a folder of promoted artefacts (filters, adapters) changes (watchdog)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def watch_folder(folder: Path, on_change: Callable[[], None]) -> Callable[[], None] | None:
    """Call `on_change` once the folder has settled after a change (a promotion writes several files);
    returns a stop function, or None when the folder cannot be watched."""
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:
        return None
    timer: list[threading.Timer] = []

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return
            for t in timer:
                t.cancel()
            timer[:] = [threading.Timer(0.3, on_change)]
            timer[0].daemon = True
            timer[0].start()

    try:
        folder.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(Handler(), str(folder), recursive=True)
        observer.daemon = True
        observer.start()
    except OSError as e:
        log.warning("cannot watch %s: %s", folder, e)
        return None

    def stop() -> None:
        observer.stop()
        for t in timer:
            t.cancel()
    return stop
