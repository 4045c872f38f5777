"""Property-based fuzzing of the real server over raw JSON-RPC (no model loaded, so it is fast).

Each example opens a document of odd text (every Unicode line-break look-alike, CRLF, lone surrogates,
astral characters) and sends edits (some out of range), full replacements, completion requests at valid
and invalid positions, wrong-typed params, odd cancel ids and self-contained framing faults. The
properties: every request gets an answer, the process stays up, and after every edit the server's copy
of the document equals the client's, computed here independently on UTF-16 code units as an editor would.

`make test` runs a fixed seed and a few hundred messages; `pytest tests/test_lsp_fuzz.py --fuzz-long`
runs 10,000+.
"""
import hashlib
from array import array

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from wire import Wire

PIECES = ["a", "b", "x = 1", " ", "\t", "\n", "\r\n", "\r", "\f", "\v", "\x1c", "\x85", "\u2028", "\u2029",
          "é", "€", "😀", "\ud800", "\udfff", "{", "}", "\x00"]
FAULTS = [b"Content-Length: abc\r\n\r\n{}", b"Content-Length: -1\r\n\r\n", b"Content-Type: x\r\n\r\n",
          b"Content-Length: 1000000000000\r\n\r\n", b"Content-Length: 7\r\n\r\n[1,2,3]", b"junk\r\n"]
BAD_PARAMS = [None, 5, "x", [], {"textDocument": 5}, {"textDocument": {"uri": 1}, "position": "here"},
              {"textDocument": {"uri": "file:///x.py"}, "position": {"line": -1, "character": 2 ** 40}}]


class ClientCopy:
    """The editor's copy: UTF-16 code units; lines end only at CR LF, CR or LF; positions clamp (LSP)."""

    def __init__(self, text: str):
        self.units = array("H", text.encode("utf-16-le", "surrogatepass"))

    def text_units(self) -> bytes:
        return self.units.tobytes()

    def line_starts(self) -> list[int]:
        units = self.units
        starts, i = [0], 0
        while i < len(units):
            if units[i] == 13 and i + 1 < len(units) and units[i + 1] == 10:
                i += 1
            if units[i] in (10, 13):
                starts.append(i + 1)
            i += 1
        return starts

    def offset(self, line: int, character: int) -> int:
        starts = self.line_starts()
        if line >= len(starts):
            return len(self.units)
        end = starts[line + 1] if line + 1 < len(starts) else len(self.units)
        content_end = end
        while content_end > starts[line] and self.units[content_end - 1] in (10, 13):
            content_end -= 1
        off = min(starts[line] + character, content_end)
        if 0 < off < len(self.units) and 0xD800 <= self.units[off - 1] <= 0xDBFF and \
                0xDC00 <= self.units[off] <= 0xDFFF:
            off += 1  # editors never split a surrogate pair
        return off

    def apply(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        a, b = self.offset(*start), self.offset(*end)
        b = max(a, b)
        self.units[a:b] = array("H", text.encode("utf-16-le", "surrogatepass"))

    def position(self, line: int, character: int) -> tuple[int, int]:
        """A position the editor would send (not inside a surrogate pair)."""
        starts = self.line_starts()
        if line >= len(starts):
            return line, character
        return line, self.offset(line, character) - starts[line]

    def sha256(self) -> str:
        return hashlib.sha256(self.text_units()).hexdigest()


texts = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)
positions = st.tuples(st.integers(0, 8), st.integers(0, 12))
ops = st.one_of(
    st.tuples(st.just("edit"), positions, positions, texts),
    st.tuples(st.just("replace"), texts),
    st.tuples(st.just("complete"), positions),
    st.tuples(st.just("bad"), st.sampled_from(["textDocument/inlineCompletion", "textDocument/completion",
                                               "textDocument/didChange", "ghostline/outcome"]),
              st.sampled_from(BAD_PARAMS)),
    st.tuples(st.just("cancel"), st.sampled_from([None, [1], {"a": 1}, 1.5, "nope", 10 ** 30])),
    st.tuples(st.just("fault"), st.sampled_from(FAULTS)),
)


@pytest.fixture(scope="module")
def wire():
    w = Wire()
    w.initialize()
    yield w
    w.proc.kill()


def fuzz_settings(config) -> settings:
    n = 2500 if config.getoption("--fuzz-long") else 80
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_fuzz_every_request_answered_and_documents_stay_in_sync(wire, request):
    counter = {"n": 0, "messages": 0}

    @fuzz_settings(request.config)
    @given(text=texts, script=st.lists(ops, max_size=16))
    def run(text, script):
        counter["n"] += 1
        uri = f"file:///fuzz/doc{counter['n']}.py"
        client = ClientCopy(text)
        wire.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}}})
        version, pending = 1, []

        def request(method, params):
            msg_id = f"r{counter['messages']}"
            counter["messages"] += 1
            wire.send({"id": msg_id, "method": method, "params": params})
            pending.append(msg_id)

        def check_sync():
            request("ghostline/stats", {"uri": uri})
            got = wire.response(pending.pop())
            assert got["result"]["document"]["sha256"] == client.sha256(), (text, script)

        for op in script:
            counter["messages"] += 1
            if op[0] == "edit":
                _, start, end, new = op
                start, end = sorted([client.position(*start), client.position(*end)])
                version += 1
                client.apply(start, end, new)
                wire.send({"method": "textDocument/didChange", "params": {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": {"line": start[0], "character": start[1]},
                                                  "end": {"line": end[0], "character": end[1]}}, "text": new}]}})
                check_sync()
            elif op[0] == "replace":
                version += 1
                client = ClientCopy(op[1])
                wire.send({"method": "textDocument/didChange", "params": {
                    "textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": op[1]}]}})
                check_sync()
            elif op[0] == "complete":
                line, character = op[1]
                request("textDocument/inlineCompletion", {
                    "textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                    "context": {"triggerKind": 2}})
            elif op[0] == "bad":
                request(op[1], op[2])
            elif op[0] == "cancel":
                wire.send({"method": "$/cancelRequest", "params": {"id": op[1]}})
            else:
                wire.raw(op[1])
        for msg_id in pending:  # every request is answered, result or error
            wire.response(msg_id, timeout=30)
        wire.send({"method": "textDocument/didClose", "params": {"textDocument": {"uri": uri}}})
        assert wire.proc.poll() is None

    run()
    print(f"fuzz: {counter['n']} documents, {counter['messages']} messages, "
          f"{len(wire.stderr().splitlines())} stderr lines")
    assert b"Traceback" not in wire.stderr()
