"""In-flight reuse: a request that types along with the running generation waits for it instead of cancelling it.

Cancelling on every keystroke throws the model's work away: most requests are overtaken by the next key.
When the new request's document differs from the running one's only by text typed at its cursor, and the
model's output so far agrees with that text (starts with it, or is still a start of it), the generation's
answer will likely still hold (minus what was typed): the new request waits for it and is answered from the
typing-through cache where it lands. If the output then parts from what was typed, the generation is
cancelled at once and the waiting request asks the model itself.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from .engine import Request


def agrees(output: str, typed: str) -> bool:
    return output.startswith(typed) or typed.startswith(output)


@dataclass
class Flight:
    """The generation under way for one document."""
    req: Request
    cancel: threading.Event  # the generation's cancel switch
    so_far: str = ""  # the model's output so far, written by the model worker after every token
    typed: str | None = None  # what the latest waiting request typed since `req`
    done: asyncio.Future = field(init=False)  # the generation's Result (set by whoever submits it)

    def progress(self, text: str) -> None:
        """Called by the model worker after every token."""
        self.so_far = text
        typed = self.typed
        if typed is not None and not agrees(text, typed):
            self.cancel.set()  # the answer can no longer serve the request waiting for it

    def serves(self, req: Request) -> bool:
        """Whether `req` only typed, at this generation's cursor (nothing else changed), text the model's
        output agrees with so far; if so, the generation now works for `req`."""
        old = self.req
        if req.uri != old.uri or req.offset < old.offset or req.suffix != old.suffix:
            return False
        if not req.prefix.startswith(old.prefix):
            return False
        typed = req.prefix[old.offset:]
        if not agrees(self.so_far, typed):
            return False
        self.typed = typed
        return True
