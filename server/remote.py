"""A serving engine elsewhere (llama.cpp's server, vLLM, Ollama) over the OpenAI-compatible completions API.

Ghostline builds the FIM prompt and post-processes the answer exactly as it does for the local model; the
engine only generates. Nothing is sent anywhere unless the user set `ghostline.remoteUrl`. The stream is read
token by token and closed as soon as Ghostline has its answer or the request is cancelled. With
`ghostline.remoteLogprobs` each token comes with its log-probability and its runner-up's, so block confidence
works as it does locally; it is off by default because llama-cpp-python's own server spends ~100 ms a token
on them (vLLM and llama.cpp's llama-server do not), and on the quick benchmark the answers were as good
without them (docs/benchmarks.md). The engine's token ids are not known here, so the runner-up
branches of the local runtime (`avoid_repeat`, `line_start_one_line`) do not happen: every step's runner-up
is reported as none."""
from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from .context import estimate_tokens
from .models import ModelError
from .runtime import Cancelled, Generation, Trace
from .templates import FimTemplate, get_template

log = logging.getLogger(__name__)

API_KEY_ENV = "GHOSTLINE_REMOTE_API_KEY"  # sent as a bearer token when set (kept out of settings files)


class RemoteError(ModelError):
    """The engine could not be reached or did not answer as the API says; the message says which and where."""


class RemoteRuntime:
    """The `engine.Runtime` protocol over HTTP. Thread-safe as far as the server needs: one worker drives it."""

    def __init__(self, url: str, *, model: str = "", template: str = "qwen", timeout_ms: int = 5000,
                 api_key: str | None = None, logprobs: bool = False):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"remote engine URL {url!r} must look like http://host:port/v1")
        self.url = url.strip().rstrip("/")
        self._parts = parts
        self.template: FimTemplate = get_template(template)
        self.timeout = timeout_ms / 1000
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        self.model_name = model
        self.logprobs = logprobs  # ask for each token's log-probability and its runner-up's (block confidence)
        self.adapter = None
        self.notice: str | None = None
        self.prompt_tokens_evaluated = 0
        self.count_tokens: Callable[[str], int] = estimate_tokens  # the engine's tokenizer is not ours to call
        try:  # an engine that is down now may be up by the first request: say so, do not fail
            listed = [m.get("id", "") for m in self._get("/models").get("data", [])]
            if not self.model_name:
                self.model_name = next((m for m in listed if m), "")
            elif listed and self.model_name not in listed:
                self.notice = f"the remote engine at {self.url} lists {', '.join(listed)}, not {self.model_name}"
        except RemoteError as e:
            self.notice = str(e)
        if self.notice:
            log.warning("%s", self.notice)

    @property
    def model_id(self) -> str:
        return f"remote:{self.model_name or '?'}@{self._parts.netloc}"

    # --- HTTP ---------------------------------------------------------------------------------------
    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return cls(self._parts.hostname, self._parts.port, timeout=self.timeout)

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _open(self, method: str, path: str, body: dict | None = None, conn=None):
        """(connection, response) of one call (on `conn` when given); RemoteError for anything but a 2xx."""
        conn = conn or self._connect()
        try:
            conn.request(method, self._parts.path.rstrip("/") + path,
                         json.dumps(body).encode() if body is not None else None, self._headers())
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise RemoteError(f"the remote engine at {self.url} is not reachable: {_why(e, self.timeout)}") from e
        if not 200 <= resp.status < 300:
            detail = resp.read(500).decode("utf-8", "replace").strip()
            conn.close()
            raise RemoteError(f"the remote engine at {self.url} answered {resp.status} {resp.reason}"
                              + (f": {detail}" if detail else ""))
        return conn, resp

    def _get(self, path: str) -> dict:
        conn, resp = self._open("GET", path)
        try:
            return json.loads(resp.read())
        except (OSError, ValueError) as e:
            raise RemoteError(f"the remote engine at {self.url} sent an unreadable answer to {path}: {e}") from e
        finally:
            conn.close()

    # --- the Runtime protocol -----------------------------------------------------------------------
    def reset(self) -> None:
        """Nothing to forget here: the engine keeps its own cache."""

    def generate(self, prompt: str, *, max_tokens: int, should_stop, cancel: threading.Event | None = None,
                 chunk: int = 0, forced: Sequence[tuple[int, float]] = (), reuse_suffix: int = 0) -> Generation:
        """Greedy completion of `prompt`, streamed; `should_stop` is asked after every token as locally. The
        engine manages its own KV cache (`chunk` and `reuse_suffix` are the local runtime's)."""
        if forced:
            raise ValueError("a remote engine cannot continue from token ids")
        cancel = cancel or threading.Event()
        if cancel.is_set():
            raise Cancelled()
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                "stop": list(self.template.stops), **({"logprobs": 2} if self.logprobs else {})}
        if self.model_name:
            body["model"] = self.model_name
        t0 = time.perf_counter()
        n_prompt = self.count_tokens(prompt)
        conn, done = self._connect(), threading.Event()
        # Cancellation closes the connection: a read blocked on the answer fails at once and the engine sees
        # the connection go (llama.cpp's and vLLM's servers then stop generating).
        threading.Thread(target=_close_on_cancel, args=(conn, cancel, done), daemon=True,
                         name="ghostline-remote-cancel").start()
        trace, reason, t1 = Trace(), "length", None
        try:
            try:
                conn, resp = self._open("POST", "/completions", body, conn)
            except RemoteError:
                if cancel.is_set():
                    raise Cancelled() from None
                raise
            for event in _events(resp):
                if cancel.is_set():
                    raise Cancelled()
                choice = (event.get("choices") or [{}])[0]
                if t1 is None:
                    t1 = time.perf_counter()
                for piece, logprob, alt_logprob in _tokens(choice):
                    trace.take(-1, piece.encode(), logprob, -1, alt_logprob)
                    if should_stop(trace.text(), trace.line_logprobs, trace.line_starts):
                        reason = "stop"
                        break
                if reason == "stop":
                    break
                if choice.get("finish_reason") == "stop":  # end-of-text or one of the template's stops
                    reason = "eos"
                if choice.get("finish_reason"):
                    break
        except (OSError, http.client.HTTPException, ValueError) as e:
            if cancel.is_set():
                raise Cancelled() from e
            raise RemoteError(f"the remote engine at {self.url} broke off: {_why(e, self.timeout)}") from e
        finally:
            done.set()
            conn.close()
        t2 = time.perf_counter()
        t1 = t1 or t2
        self.prompt_tokens_evaluated += n_prompt
        return trace.generation(n_prompt, 0, len(trace.steps), (t1 - t0) * 1000, (t2 - t1) * 1000, reason)


def _close_on_cancel(conn: http.client.HTTPConnection, cancel: threading.Event, done: threading.Event) -> None:
    while not done.wait(0.02):
        if cancel.is_set():
            if conn.sock is not None:  # connected (else the request fails on the closed connection)
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            return


def _events(resp):
    """The JSON objects of a server-sent event stream (`data: {...}` lines, up to `data: [DONE]`)."""
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            raise ValueError(f"error in the stream: {event['error']}")
        yield event


def _tokens(choice: dict):
    """(text, log-probability, runner-up's log-probability) per token of one streamed choice. An engine that
    sends no log-probabilities (Ollama) gives its text as one certain token."""
    lp = choice.get("logprobs") or {}
    tokens, logprobs, tops = lp.get("tokens"), lp.get("token_logprobs"), lp.get("top_logprobs")
    if not tokens or not logprobs or len(tokens) != len(logprobs):
        text = choice.get("text") or ""
        return [(text, 0.0, float("-inf"))] if text else []
    out = []
    for i, (piece, logprob) in enumerate(zip(tokens, logprobs)):
        top = tops[i] if tops and i < len(tops) and isinstance(tops[i], dict) else {}
        alts = [v for k, v in top.items() if k != piece and v is not None]
        out.append((piece, float(logprob if logprob is not None else 0.0), max(alts, default=float("-inf"))))
    return out


def _why(e: Exception, timeout: float) -> str:
    if isinstance(e, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s (ghostline.remoteTimeoutMs)"
    return str(e) or type(e).__name__
