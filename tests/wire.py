"""A raw JSON-RPC client for the real server process: bytes in, parsed messages out (no LSP library in
between, so framing faults and odd messages can be sent as they are)."""
import itertools
import json
import queue
import subprocess
import sys
import threading
import time

NO_MODEL = {"model": "/nonexistent/model.gguf"}


class Wire:
    def __init__(self, wrapper: tuple[str, ...] = (), env: dict | None = None, args: tuple[str, ...] = ()):
        """`wrapper`: a command the server runs under (e.g. strace); `env`: its environment; `args`: the server's."""
        self.proc = subprocess.Popen([*wrapper, sys.executable, "-m", "server", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.inbox: queue.Queue = queue.Queue()
        self.answered: dict = {}  # id -> response, read but not yet asked for
        self._ids = itertools.count()
        self._err = bytearray()  # drained as it comes: a full stderr pipe would block the server
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: [self._err.extend(b) for b in iter(lambda: self.proc.stderr.read1(4096), b"")],
                         daemon=True).start()

    def stderr(self) -> bytes:
        return bytes(self._err)

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while (line := out.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            self.inbox.put(json.loads(out.read(length)))

    def raw(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, msg: dict):
        body = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        self.raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def response(self, msg_id, timeout=20.0) -> dict:
        """The response to `msg_id`; responses to other ids read meanwhile are kept for their turn."""
        while msg_id not in self.answered:
            msg = self.inbox.get(timeout=timeout)
            if "method" not in msg:
                self.answered[msg.get("id")] = msg
        return self.answered.pop(msg_id)

    def responses(self, wait=1.0) -> list[dict]:
        """Every response that arrives until none has for `wait` seconds."""
        out = list(self.answered.values())
        self.answered.clear()
        try:
            while True:
                msg = self.inbox.get(timeout=wait)
                if "method" not in msg:
                    out.append(msg)
        except queue.Empty:
            return out

    def stats_until(self, done, timeout: float = 120.0) -> dict:
        """`ghostline/stats` results, asked for again until `done(result)` or `timeout`; the last one."""
        deadline = time.monotonic() + timeout
        while True:
            msg_id = f"stats-{next(self._ids)}"
            self.send({"id": msg_id, "method": "ghostline/stats"})
            result = self.response(msg_id, timeout=timeout)["result"]
            if done(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.05)

    def initialize(self, options: dict = NO_MODEL):
        self.send({"id": "init", "method": "initialize",
                   "params": {"capabilities": {}, "processId": None, "initializationOptions": options}})
        assert "result" in self.response("init")
        self.send({"method": "initialized", "params": {}})

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.proc.kill()
