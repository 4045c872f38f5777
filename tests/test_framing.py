"""Framing survives every malformed header: the next good frame is always read."""
import json

from server.framing import MAX_BODY, Framer


def frame(obj, length=None, sep=b"\r\n") -> bytes:
    body = json.dumps(obj).encode()
    n = len(body) if length is None else length
    return b"Content-Length: " + str(n).encode() + sep + sep + body


GOOD = frame({"jsonrpc": "2.0", "id": 1, "method": "ping"})


def bodies(framer: Framer, data: bytes, step: int = 7):
    out = []
    for i in range(0, len(data), step):  # bytes arrive in small pieces
        out += list(framer.feed(data[i:i + step]))
    return out


def test_good_frames_with_content_type_and_lf_only_headers():
    typed = b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n" + GOOD
    got = bodies(Framer(), GOOD + typed + frame({"x": 1}, sep=b"\n"))
    assert [f.error for f in got] == ["", "", ""] and json.loads(got[2].body) == {"x": 1}


def test_bad_headers_are_skipped_and_the_next_frame_is_read():
    for bad in (b"Content-Length: abc\r\n\r\n{}", b"Content-Length: -5\r\n\r\n{}", b"X-Other: 1\r\n\r\n{}",
                b"Content-Length: 1000000000000\r\n\r\n{}", b"garbage without header",
                f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode()):
        got = bodies(Framer(), bad + GOOD)
        assert got[-1].body == GOOD.split(b"\r\n\r\n", 1)[1], bad
        assert any(f.error for f in got[:-1]), bad


def test_a_too_short_length_yields_a_bad_body_then_resyncs():
    body = GOOD.split(b"\r\n\r\n", 1)[1]
    f = Framer()
    got = bodies(f, frame({"jsonrpc": "2.0", "id": 1, "method": "ping"}, length=5) + GOOD)
    assert got[0].body == body[:5] and got[-1].body == body


def test_a_too_long_length_swallows_the_next_frame_which_unread_gives_back():
    body = GOOD.split(b"\r\n\r\n", 1)[1]
    f = Framer()
    data = frame({"a": 1}, length=len(b'{"a": 1}') + len(GOOD)) + GOOD + GOOD
    got = []
    for fr in f.feed(data):
        got.append(fr)
        if fr.body is not None and not fr.body.startswith(b"{\"jsonrpc"):  # did not parse: give back its tail
            at = fr.body.lower().find(b"content-length:")
            f.unread(fr.body[at:])
    assert got[-1].body == body and sum(fr.body == body for fr in got) == 2
