"""LSP's base protocol framing (`Content-Length` headers, then a JSON body), robust to a client that breaks it.

pygls's reader trusts the header: one malformed frame leaves it waiting for a body that never comes (deaf
for good), and a huge Content-Length is allocated as asked. Here a bad frame is reported and skipped: the
reader resynchronises at the next `Content-Length:` header, and no body may exceed MAX_BODY.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_BODY = 64 * 1024 * 1024  # far above any document the server accepts (server.engine limits them)
MAX_HEADER = 8192  # a header block longer than this is not a header
HEADER = b"content-length:"
CONTENT = b"content-"
HEADER_END = re.compile(rb"\r?\n\r?\n")
LENGTH = re.compile(rb"^\s*(\d{1,12})\s*$")


@dataclass(frozen=True)
class Frame:
    body: bytes | None  # the message body; None for a bad frame
    error: str = ""  # what was wrong with a bad frame


class Framer:
    """Feed bytes in as they arrive; take whole frames out."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need: int | None = None  # body length once a good header is read

    def feed(self, data: bytes) -> Iterator[Frame]:
        self.buf += data
        while True:
            if self.need is None:
                bad = self._header()
                if bad is not None:
                    yield bad
                    continue
                if self.need is None:
                    return  # the header has not all arrived
            if len(self.buf) < self.need:
                return
            body, self.buf, self.need = bytes(self.buf[:self.need]), self.buf[self.need:], None
            yield Frame(body)

    def unread(self, data: bytes) -> None:
        """Put bytes back in front (a body that did not parse may have swallowed the next frame)."""
        self.buf[:0] = data

    def _resync(self, start: int) -> int:
        """Drop bytes up to the next Content-Length header at or after `start`; with none yet, all but a
        tail that may be its beginning. Returns how many bytes were dropped."""
        low = self.buf.lower()
        at = low.find(HEADER, start)
        if at < 0:
            tail = next((k for k in range(min(len(low), len(HEADER) - 1), 0, -1) if low.endswith(HEADER[:k])), 0)
            at = max(start, len(low) - tail)
        del self.buf[:at]
        return at

    def _header(self) -> Frame | None:
        """Parse one header block and set self.need; a bad block is skipped and comes back as an error."""
        head = bytes(self.buf[:len(CONTENT)]).lower()
        if not CONTENT.startswith(head):  # not the start of Content-Length/Content-Type: junk
            dropped = self._resync(1)
            return Frame(None, f"{dropped} bytes outside any frame were skipped")
        m = HEADER_END.search(self.buf)
        if m is None:
            if len(self.buf) > MAX_HEADER:
                self._resync(1)
                return Frame(None, "a header block without an end was skipped")
            return None
        length = None
        for line in bytes(self.buf[:m.start()]).split(b"\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                ok = LENGTH.match(value)
                length = int(ok.group(1)) if ok else -1
        if length is None or length < 0 or length > MAX_BODY:
            self._resync(m.end())
            what = "a missing or malformed Content-Length" if length is None or length < 0 else \
                f"a Content-Length of {length} (over {MAX_BODY})"
            return Frame(None, f"a frame with {what} was skipped")
        del self.buf[:m.end()]
        self.need = length
        return None
