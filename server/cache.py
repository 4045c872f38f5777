"""Typing-through cache: while the user types what the ghost text already shows, answer without the model.

An empty answer is kept too, for a request at the very same place (greedy decoding would say nothing again):
the request after a prefetch or a cancelled generation that found nothing to suggest."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    prefix: str
    suffix: str
    text: str
    completion_id: str


@dataclass(frozen=True)
class Hit:
    text: str  # what is left of the suggestion after what was typed
    typed: int  # characters of the suggestion the user typed through
    entry: Entry


class TypingCache:
    def __init__(self, size: int = 16):
        self.size = size
        self._entries: OrderedDict[str, list[Entry]] = OrderedDict()

    def put(self, uri: str, prefix: str, suffix: str, text: str, completion_id: str) -> None:
        entries = [e for e in self._entries.pop(uri, []) if e.prefix != prefix][-3:]
        self._entries[uri] = entries + [Entry(prefix, suffix, text, completion_id)]
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, uri: str, prefix: str, suffix: str) -> Hit | None:
        for e in reversed(self._entries.get(uri, [])):
            if e.suffix != suffix or len(prefix) < len(e.prefix) or not prefix.startswith(e.prefix):
                continue
            typed = prefix[len(e.prefix):]
            if e.text.startswith(typed) and (len(typed) < len(e.text) or not e.text):
                self._entries.move_to_end(uri)
                return Hit(e.text[len(typed):], len(typed), e)
        return None

    def forget(self, uri: str) -> None:
        self._entries.pop(uri, None)
