"""Bad input gets an empty answer and a clear message; the server stays up."""
import json
import subprocess
import sys

import pytest
import pytest_lsp
from lsp_helpers import inline, insert, open_doc, ready, start, stats
from pytest_lsp import ClientServerConfig, LanguageClient

SERVER = [sys.executable, "-m", "server"]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


def messages(client: LanguageClient) -> str:
    return "\n".join(m.message for m in client.messages)


async def still_serving(client: LanguageClient, expected: str = "ready") -> None:
    """The server settles in the state it should be in and still answers requests."""
    await ready(client)
    s = await stats(client)
    assert s["state"] == expected and bool(s["error"]) == (expected == "error"), s


@pytest.mark.model
async def test_unknown_document(client: LanguageClient):
    result = await inline(client, "file:///nowhere/never-opened.py", 0, 0)
    assert not result.items
    assert "unknown document" in messages(client)
    await still_serving(client)


@pytest.mark.model
async def test_out_of_range_positions(client: LanguageClient, tmp_path):
    uri = (tmp_path / "short.py").as_uri()
    open_doc(client, uri, "x = 1\ny = 2\n", "python")
    assert not (await inline(client, uri, 40, 0)).items
    assert not (await inline(client, uri, 1, 99)).items
    assert not (await inline(client, uri, 50, 0)).items
    text = messages(client)
    assert "outside the document" in text and text.count("Ghostline:") == 1  # one pop-up per kind of problem
    await still_serving(client)


@pytest.mark.model
async def test_binary_document(client: LanguageClient, tmp_path):
    uri = (tmp_path / "blob.py").as_uri()
    open_doc(client, uri, "abc\x00\x01\x02def\n" * 10, "python")
    assert not (await inline(client, uri, 2, 3)).items
    assert "binary" in messages(client)
    await still_serving(client)


@pytest.mark.model
async def test_huge_document(client: LanguageClient, tmp_path):
    uri = (tmp_path / "huge.py").as_uri()
    open_doc(client, uri, "x = 1\n" * 250_000, "python")  # 1.5M characters
    assert not (await inline(client, uri, 1000, 0)).items
    assert "too large" in messages(client)
    await still_serving(client)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def missing_model_client(lsp_client: LanguageClient):
    await start(lsp_client, {"model": "/nonexistent/model.gguf"})
    yield
    await lsp_client.shutdown_session()


async def test_missing_model_says_so_and_keeps_serving(missing_model_client: LanguageClient, tmp_path):
    client = missing_model_client
    status = await ready(client)
    assert status["state"] == "error" and "not found" in status["message"]
    assert "Model file not found" in messages(client)
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "def f():\n    ", "python")
    assert not (await inline(client, uri, 1, 4)).items
    await still_serving(client, "error")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def corrupt_model_client(lsp_client: LanguageClient, tmp_path_factory):
    bad = tmp_path_factory.mktemp("models") / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00garbage" * 1000)
    await start(lsp_client, {"model": str(bad)})
    yield
    await lsp_client.shutdown_session()


async def test_corrupt_model_says_so_and_keeps_serving(corrupt_model_client: LanguageClient, tmp_path):
    client = corrupt_model_client
    status = await ready(client)
    assert status["state"] == "error"
    assert "could not load" in messages(client)
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "def f():\n    ", "python")
    assert not (await inline(client, uri, 1, 4)).items
    await still_serving(client, "error")


def _frame(obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def test_exits_when_parent_dies():
    parent = subprocess.Popen(["sleep", "1"])
    server = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        server.stdin.write(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                   "params": {"processId": parent.pid, "capabilities": {}}}))
        server.stdin.flush()  # stdin stays open: only the parent watch can end the server
        parent.wait()
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()


class RawClient:
    """Speaks the wire format by hand, to send what a well-behaved client library would refuse to."""

    def __init__(self):
        self.proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)

    def send_raw(self, body: bytes) -> None:
        self.proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.proc.stdin.flush()

    def send(self, obj: dict) -> None:
        self.send_raw(json.dumps(obj).encode())

    def read(self) -> dict:
        length = 0
        while (line := self.proc.stdout.readline().strip()):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def response(self, msg_id) -> dict:
        while (msg := self.read()).get("id") != msg_id or "method" in msg:
            pass
        return msg

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_malformed_messages_get_an_error_not_silence():
    c = RawClient()
    try:
        c.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
        assert "capabilities" in c.response(1)["result"]
        c.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        c.send({"jsonrpc": "2.0", "id": "bad", "method": "textDocument/inlineCompletion",
                "params": {"textDocument": 5, "position": "here"}})
        err = c.response("bad")["error"]
        assert err["code"] == -32602 and "textDocument/inlineCompletion" in err["message"]
        c.send_raw(b"{this is not json")
        c.send({"jsonrpc": "2.0", "method": "ghostline/outcome", "params": {"id": 5, "outcome": "??"}})
        c.send({"jsonrpc": "2.0", "id": 2, "method": "ghostline/stats", "params": {}})
        assert "requests" in c.response(2)["result"]  # still serving
    finally:
        c.close()


@pytest.mark.model
async def test_only_lsp_line_breaks_count_and_lone_surrogates_are_served(client: LanguageClient, tmp_path):
    """\\f, \\v, \\x85, \\u2028 ... are not line breaks in LSP: positions after them are valid and edits land
    where the client put them; a lone surrogate (VS Code can send one) does not break completion."""
    uri = (tmp_path / "odd.py").as_uri()
    open_doc(client, uri, "s = 'a\u2028b\x85c\fd'\ndef add(a, b):\n    return a + b\n", "python")
    await inline(client, uri, 2, 16)  # the end of `    return a + b`
    insert(client, uri, 2, 2, 16, "  # sum")
    await inline(client, uri, 2, 23)
    assert "past the end" not in messages(client) and "outside" not in messages(client)
    uri2 = (tmp_path / "surrogate.py").as_uri()
    open_doc(client, uri2, "s = '\ud800'\ndef f():\n    ", "python")
    result = await inline(client, uri2, 2, 4)
    assert result is not None and "rror" not in messages(client)  # was: InternalError with a traceback
    await still_serving(client)
