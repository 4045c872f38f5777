"""Open documents with LSP's own line model, in plain Python.

LSP breaks lines only at \\n, \\r\\n and \\r, and counts a position's character in UTF-16 code units.
Python's `splitlines` also breaks at \\f, \\v, \\x1c-\\x1e, \\x85, \\u2028 and \\u2029, which moves every
position after one of them; this module never uses it. Line starts are cached between edits so a large
document costs one scan per edit, not one per request.
"""
from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from dataclasses import dataclass, field

LINE_BREAK = re.compile(r"\r\n|\r|\n")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class PositionError(ValueError):
    """A position outside the document; the message says where it points and how big the document is."""


def utf16_len(text: str) -> int:
    """Code units in UTF-16. A lone surrogate (VS Code can send one) is one unit, as in the client."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _column(line: str, units: int) -> int:
    """The string index `units` UTF-16 code units into `line` (inside a surrogate pair: after it)."""
    if line.isascii():
        return min(units, len(line))
    seen = 0
    for i, ch in enumerate(line):
        if seen >= units:
            return i
        seen += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


@dataclass
class Document:
    uri: str
    text: str
    language_id: str = ""
    version: int | None = None
    _starts: list[int] | None = field(default=None, repr=False)
    _model_text: str | None = field(default=None, repr=False)

    @property
    def model_text(self) -> str:
        """The text as the model may see it: a lone UTF-16 surrogate (VS Code can send one; it cannot be
        encoded) becomes U+FFFD, one character for one, so offsets stay put. Cached between edits."""
        if self._model_text is None:
            self._model_text = self.text if self.text.isascii() else LONE_SURROGATE.sub("\ufffd", self.text)
        return self._model_text

    def line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in LINE_BREAK.finditer(self.text)]
        return self._starts

    @property
    def line_count(self) -> int:
        return len(self.line_starts())

    def line(self, n: int) -> str:
        """Line `n` without its line break."""
        starts = self.line_starts()
        end = starts[n + 1] if n + 1 < len(starts) else len(self.text)
        return self.text[starts[n]:end].rstrip("\r\n")

    def offset_at(self, line: int, character: int, *, clamp: bool = False) -> int:
        """The string index of an LSP position. `clamp` (for edits, as the protocol says): a character past
        the line's end means the end, a line past the last means the end of the document. Otherwise such a
        position is a PositionError."""
        if line < 0 or character < 0:
            raise PositionError(f"position {line}:{character} is negative")
        starts = self.line_starts()
        if line >= len(starts):
            if clamp:
                return len(self.text)
            raise PositionError(f"position {line}:{character} is outside the document ({len(starts)} lines)")
        text = self.line(line)
        if not clamp and character > utf16_len(text):
            raise PositionError(f"position {line}:{character} is past the end of the line "
                                f"({utf16_len(text)} UTF-16 units)")
        return starts[line] + _column(text, character)

    def digest(self) -> str:
        """SHA-256 of the text as UTF-16-LE code units (what the client holds), lone surrogates included."""
        return hashlib.sha256(self.text.encode("utf-16-le", "surrogatepass")).hexdigest()

    def position_at(self, offset: int) -> tuple[int, int]:
        """The LSP (line, character) of a string index."""
        starts = self.line_starts()
        n = bisect_right(starts, offset) - 1
        return n, utf16_len(self.text[starts[n]:offset])

    def apply(self, text: str, start: tuple[int, int] | None = None, end: tuple[int, int] | None = None) -> None:
        """One content change: the whole text (no range) or `text` in place of start..end."""
        if start is None or end is None:
            self.text = text
        else:
            a = self.offset_at(*start, clamp=True)
            b = max(a, self.offset_at(*end, clamp=True))
            self.text = self.text[:a] + text + self.text[b:]
        self._starts = self._model_text = None
