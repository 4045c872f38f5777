"""The remote engine (server.remote): unit tests against a small stdlib HTTP server that speaks the streamed
completions API, and the real path: `python -m llama_cpp.server` on the default 0.5B, completed through by
RemoteRuntime and by the LSP server."""
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import pytest_lsp
from lsp_helpers import inline, open_doc, position_of, ready, start, stats
from pytest_lsp import ClientServerConfig, LanguageClient

from server.names import Reason, ServerState
from server.remote import RemoteError, RemoteRuntime
from server.runtime import Cancelled
from server.session import Session

NEVER = lambda text, lowest=(), starts=(): False  # noqa: E731


class Engine(BaseHTTPRequestHandler):
    """Streams `tokens` ((text, logprob, runner-up logprob) triples) for every completion; `delay` seconds
    before the first and `gap` between the others; `status` other than 200 answers an error instead."""
    tokens: ClassVar[list] = [("return", -0.3, -1.7), (" a", -0.01, -6.0), (" +", -0.03, -3.4), (" b", -0.001, -7.8),
                    ("\n", -0.4, -1.5), ("print", -2.5, -2.6)]
    finish_reason = "length"
    logprobs = True
    delay = 0.0
    gap = 0.0
    status = 200
    seen: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def _send_json(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send_json(200, {"object": "list", "data": [{"id": "fim-model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, dict(self.headers), body))
        if self.status != 200:
            return self._send_json(self.status, {"error": "out of memory"})
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for i, (text, lp, alt) in enumerate(self.tokens):
                if i:
                    time.sleep(self.gap)
                logprobs = {"tokens": [text], "token_logprobs": [lp],
                            "top_logprobs": [{text: lp, "other": alt}]} if self.logprobs else None
                self._event({"choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": None}]})
            self._event({"choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": self.finish_reason}]})
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            type(self).seen.append(("closed", {}, {}))

    def _event(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


@pytest.fixture
def engine():
    handler = type("Handler", (Engine,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streams_tokens_with_their_logprobs(engine):
    rt = RemoteRuntime(engine.url, api_key="s3cret", logprobs=True)
    assert rt.model_name == "fim-model" and rt.model_id == f"remote:fim-model@{engine.url.split('/')[2]}"
    gen = rt.generate("<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>", max_tokens=16,
                      should_stop=NEVER)
    assert gen.text == "return a + b\nprint" and gen.stop_reason == "length"
    assert gen.line_logprobs == [-0.3, -2.5] and gen.line_start_logprobs == [0.0, -0.4]
    assert [s[4] for s in gen.steps][:2] == [-1.7, -6.0]
    assert gen.branch_in(len("return")) is None  # no token ids from an engine: no runner-up branches
    path, headers, body = engine.seen[-1]
    assert path == "/v1/completions" and headers["Authorization"] == "Bearer s3cret"
    assert body["model"] == "fim-model" and body["temperature"] == 0 and body["stream"] is True
    assert "<|endoftext|>" in body["stop"] and body["logprobs"] == 2


def test_an_answer_that_is_done_closes_the_stream(engine):
    engine.gap = 0.2
    rt = RemoteRuntime(engine.url, model="fim-model")
    t = time.perf_counter()
    gen = rt.generate("x", max_tokens=16, should_stop=lambda text, *_: text.endswith("a"))
    assert gen.text == "return a" and gen.stop_reason == "stop"
    assert "logprobs" not in engine.seen[0][2]  # not asked for unless remoteLogprobs (the engine sent them anyway)
    assert time.perf_counter() - t < 0.2 * 4  # not the six tokens' 1 s
    time.sleep(1.0)
    assert engine.seen[-1][0] == "closed"  # the engine's next write found the connection gone


def test_end_of_text_and_engines_without_logprobs(engine):
    engine.logprobs, engine.finish_reason = False, "stop"
    gen = RemoteRuntime(engine.url).generate("x", max_tokens=16, should_stop=NEVER)
    assert gen.text == "return a + b\nprint" and gen.stop_reason == "eos"
    assert gen.line_logprobs == [0.0, 0.0]  # taken as certain


def test_cancel_while_the_engine_evaluates_the_prompt(engine):
    engine.delay = 3.0
    rt, cancel = RemoteRuntime(engine.url), threading.Event()
    threading.Timer(0.2, cancel.set).start()
    t = time.perf_counter()
    with pytest.raises(Cancelled):
        rt.generate("x", max_tokens=16, should_stop=NEVER, cancel=cancel)
    assert time.perf_counter() - t < 1.0


def test_errors_say_what_and_where(engine):
    engine.delay = 1.0
    with pytest.raises(RemoteError, match=r"no answer within 0.3 s \(ghostline.remoteTimeoutMs\)"):
        RemoteRuntime(engine.url, timeout_ms=300).generate("x", max_tokens=4, should_stop=NEVER)
    engine.status, engine.delay = 500, 0.0
    with pytest.raises(RemoteError, match=r"answered 500 .*out of memory"):
        RemoteRuntime(engine.url).generate("x", max_tokens=4, should_stop=NEVER)
    down = f"http://127.0.0.1:{free_port()}/v1"
    rt = RemoteRuntime(down, timeout_ms=500)
    assert rt.notice and "not reachable" in rt.notice and down in rt.notice  # loads; says so
    with pytest.raises(RemoteError, match="not reachable"):
        rt.generate("x", max_tokens=4, should_stop=NEVER)
    with pytest.raises(RemoteError, match="must look like"):
        RemoteRuntime("gpu-box:8000")
    with pytest.raises(ValueError, match="unknown FIM template"):
        RemoteRuntime(engine.url, template="nope")


def test_the_session_serves_through_the_remote_engine_and_survives_its_outage(engine):
    from server.engine import Request
    sent = []
    session = Session(notify=lambda kind, payload: sent.append((kind, payload)),
                      loader=lambda name: pytest.fail("the local model must not load"))
    session.configure({"remoteUrl": engine.url, "remoteTimeoutMs": 500})
    session.load_model()
    assert session.state is ServerState.READY and session.engine.runtime.model_id.startswith("remote:fim-model@")

    def complete(uri: str):  # a new document each time: no typing-through cache hit
        req = Request(uri, "def add(a, b):\n    \n", len("def add(a, b):\n    "), "python")
        return session.generate(req, session.admit(req), threading.Event())
    assert complete("file:///a.py").text == "return a + b"
    engine.status = 503
    for uri in ("file:///b.py", "file:///c.py"):
        result = complete(uri)
        assert result.text == "" and result.reason is Reason.UNAVAILABLE
    warnings = [p["text"] for k, p in sent if k == "message"]
    assert len(warnings) == 1 and "503" in warnings[0]  # said once, not on every keystroke
    assert sent[-1] == ("status", {"state": "error", "model": session.engine.runtime.model_id,
                                   "message": session.error})
    engine.status = 200
    assert complete("file:///d.py").text == "return a + b"
    assert session.state is ServerState.READY and session.error is None


# --- the real path: llama.cpp's own server on the default model -------------------------------------------

@pytest.fixture(scope="module")
def llama_server():
    from server.models import resolve
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(resolve(None).path),
                             "--port", str(port), "--n_ctx", "2048", "--model_alias", "qwen-0.5b"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/models", timeout=1).read()
                break
            assert proc.poll() is None, "llama_cpp.server exited"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.model
def test_a_real_llama_cpp_server_answers_as_the_local_runtime(llama_server):
    from server.runtime import load_runtime
    local, remote = load_runtime(None, "none"), RemoteRuntime(llama_server, timeout_ms=30000, logprobs=True)
    assert remote.model_name == "qwen-0.5b" and remote.notice is None
    for prompt in ("<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>",
                   "<|fim_prefix|>const xs = [1, 2, 3];\nconst doubled = xs.<|fim_suffix|>;\n<|fim_middle|>"):
        stop = lambda text, *_: "\n" in text.strip("\n")  # noqa: E731
        want = local.generate(prompt, max_tokens=24, should_stop=stop)
        got = remote.generate(prompt, max_tokens=24, should_stop=stop)
        assert got.text == want.text and got.text.strip()
        assert got.line_logprobs[0] == pytest.approx(want.line_logprobs[0], abs=0.5)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "server"]))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


@pytest.mark.model
async def test_the_server_completes_through_a_real_llama_cpp_server(client: LanguageClient, llama_server):
    await start(client, {"remoteUrl": llama_server, "remoteTimeoutMs": 30000})
    status = await ready(client)
    assert status["state"] == "ready" and status["model"].startswith("remote:qwen-0.5b@127.0.0.1:")
    text, line, char = position_of('def add(a, b):\n    """Return the sum of a and b."""\n    █\n')
    open_doc(client, "file:///tmp/remote_add.py", text, "python")
    result = await inline(client, "file:///tmp/remote_add.py", line, char)
    assert result.items and "a + b" in result.items[0].insert_text
    assert (await stats(client))["model_calls"] == 1


@pytest.mark.model
def test_the_benchmark_runs_the_pipeline_through_a_remote_engine(llama_server, tmp_path):
    """`training.evaluate --remote URL`: the same pipeline with the engine generating (its prompt cut by the
    token estimate, so its answers may differ from the local pipeline's: the runtime test above holds the
    generation itself to the local one)."""
    from training import evaluate
    assert evaluate.main(["--python", "6", "--javascript", "0", "--typescript", "0", "--out", str(tmp_path),
                          "--name", "r", "--remote", llama_server]) == 0
    rows = [json.loads(r) for r in (tmp_path / "r.rows.jsonl").read_text().splitlines()]
    system = f"remote:{llama_server}"
    assert len(rows) == 6 and all(system in r for r in rows)
    assert sum(bool(r[system]["text"]) for r in rows) >= 4 and all(r[system]["tokens"] > 0 for r in rows)
    assert not any(r[system]["branched"] for r in rows)
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]["all"]
    assert f"{system}_vs_pipeline" in summary
