"""The JSON-RPC layer against the real server process, byte for byte: lifecycle, framing faults, odd ids.
No model is loaded (a missing model path), so these run fast; the one marked `model` loads the default."""
import time

import pytest
from wire import Wire


@pytest.fixture
def wire():
    w = Wire()
    yield w
    w.proc.kill()


def test_lifecycle_as_lsp_says(wire):
    wire.send({"id": 1, "method": "ghostline/stats", "params": {}})
    assert wire.response(1)["error"]["code"] == -32002  # before initialize
    wire.initialize()
    wire.send({"id": 2, "method": "ghostline/stats"})  # no params at all
    assert "result" in wire.response(2)
    wire.send({"id": 3, "method": "shutdown"})
    assert wire.response(3)["result"] is None
    wire.send({"id": 4, "method": "ghostline/stats", "params": {}})
    assert wire.response(4)["error"]["code"] == -32600  # after shutdown
    wire.send({"id": 5, "method": "shutdown"})
    assert wire.response(5)["error"]["code"] == -32600
    wire.send({"method": "exit"})
    assert wire.close() == 0


def test_exit_without_shutdown_exits_1(wire):
    wire.initialize()
    wire.send({"method": "exit"})
    assert wire.close() == 1


@pytest.mark.parametrize("fault", [
    b"Content-Length: abc\r\n\r\n{}", b"Content-Length: -5\r\n\r\n{}", b"Content-Type: x\r\n\r\n{}",
    b"Content-Length: 1000000000000\r\n\r\n", b"Content-Length: 5\n\n{\"jsonrpc\"", b"junk\r\n",
    b"Content-Length: 3\r\n\r\n[1]", b"Content-Length: 2\r\n\r\n{}",
])
def test_a_framing_fault_never_leaves_the_server_deaf(wire, fault):
    wire.initialize()
    wire.raw(fault)
    wire.send({"id": "after", "method": "ghostline/stats", "params": {}})
    assert "result" in wire.response("after")
    assert wire.proc.poll() is None


def test_bodies_that_are_not_json_rpc_get_errors_and_odd_ids_no_tracebacks(wire):
    wire.initialize()
    wire.raw(b"Content-Length: 9\r\n\r\nnot json!")
    assert wire.response(None)["error"]["code"] == -32700
    wire.send({"id": 7, "method": "ghostline/stats", "params": {"x": {"jsonrpc": "2.0", "id": 99, "result": 1}}})
    wire.send({"method": "$/cancelRequest", "params": {"id": [1, 2]}})
    wire.send({"id": 8, "method": "no/such/method", "params": {}})
    got = {r.get("id"): r for r in wire.responses()}
    assert set(got) == {7, 8} and "result" in got[7]  # nothing answered for the nested id 99
    assert got[8]["error"]["code"] == -32601
    wire.send({"id": 9, "method": "shutdown"})
    wire.response(9)
    wire.send({"method": "exit"})
    assert wire.close() == 0
    assert b"Traceback" not in wire.stderr()


def test_notifications_leave_nothing_behind():
    """pygls kept a future for every notification handled by a generator, so each didChange leaked one
    (RSS crept up in `python -m training.load`)."""
    import io
    import json

    from pygls.io_ import StdoutWriter

    from server.framing import Framer
    from server.lsp import create_server

    server = create_server()
    proto = server.protocol
    proto.set_writer(StdoutWriter(io.BytesIO()))
    framer = Framer()

    def send(msg):
        proto.receive(json.dumps({"jsonrpc": "2.0", **msg}).encode(), framer)
    send({"id": 1, "method": "initialize", "params": {"capabilities": {}, "processId": None,
                                                      "initializationOptions": {"model": "/nonexistent"}}})
    uri = "file:///leak.py"
    send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": ""}}})
    before = len(proto._request_futures)
    for i in range(300):
        send({"method": "textDocument/didChange", "params": {"textDocument": {"uri": uri, "version": i + 2},
              "contentChanges": [{"range": {"start": {"line": 0, "character": i}, "end": {"line": 0, "character": i}},
                                  "text": "x"}]}})
    assert server.documents[uri].text == "x" * 300
    assert len(proto._request_futures) <= before


@pytest.mark.model
def test_every_request_sent_while_the_model_loads_is_answered(wire):
    """llama-cpp-python quiet (verbose=False) points fd 1 at /dev/null while it loads a model: a response
    written meanwhile was lost, and the editor waited for it forever."""
    wire.initialize({})  # the default model
    ids = [f"s{i}" for i in range(60)]
    for i in ids:
        wire.send({"id": i, "method": "ghostline/stats"})
        time.sleep(0.02)
    states = [wire.response(i, timeout=60)["result"]["state"] for i in ids]
    assert states[0] == "loading" and states[-1] == "ready", states
