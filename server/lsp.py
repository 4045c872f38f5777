"""The LSP layer: the only module that imports pygls. Handlers parse params, call plain code, build types."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import JsonRPCNotification
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path, uri_scheme

from . import __version__
from .completion_item import TRIGGER_CHARACTERS, completion_edit
from .document import Document, PositionError
from .engine import Admitted, Engine, InputError, Request, Result
from .framing import Framer
from .inflight import Flight
from .models import ModelError
from .names import ACCEPT_COMMAND, OUTCOME, STATS, STATUS
from .options import Options
from .runtime import Cancelled
from .scheduler import LatestWins, Superseded
from .session import Session

log = logging.getLogger(__name__)

MAX_SNIPPET_DOCS = 20
# clientInfo.name of clients that put a completion item in the document as soon as it is selected, before it is
# chosen: for them an edit inserting the item is no accept (they run its command when it is chosen).
INSERTS_ON_SELECT = ("Neovim",)


class GhostlineProtocol(LanguageServerProtocol):
    """pygls, made to answer every request as LSP says: params that do not deserialize, requests before
    `initialize` (-32002) and after `shutdown` (InvalidRequest); `exit` exits 1 without `shutdown`."""

    initialize_seen = False
    exit_code: int | None = None  # set by `exit`: the message loop stops and the process exits with it

    def handle_message(self, message) -> None:
        method = getattr(message, "method", None)
        if method is not None and hasattr(message, "id"):  # a request
            if self._shutdown:
                return self._error(message.id, JsonRpcInvalidRequest, f"{method} after shutdown")
            if not self.initialize_seen and method != types.INITIALIZE:
                return self._error(message.id, JsonRpcServerNotInitialized, f"{method} before initialize")
            self.initialize_seen = True
        elif method is not None and method != types.EXIT and not self.initialize_seen:
            return None  # notifications before initialize are dropped
        super().handle_message(message)

    def _error(self, msg_id: Any, kind: type[JsonRpcException], detail: str) -> None:
        err = kind().to_response_error()
        err.message = f"{err.message}: {detail}"
        self._send_response(msg_id, error=err)

    def _send_response(self, msg_id, result=None, error=None) -> None:
        if error is not None and error.code == JsonRpcInternalError.CODE:
            error.data = None  # pygls puts the traceback here, with this machine's paths
        super()._send_response(msg_id, result, error)

    def _handle_cancel_notification(self, msg_id) -> None:
        if isinstance(msg_id, (int, str)):  # anything else cannot name a request
            super()._handle_cancel_notification(msg_id)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args) -> None:
        self.exit_code = 0 if self._shutdown else 1

    def receive(self, body: bytes, framer: Framer) -> None:
        """One frame's body: JSON-RPC in, handled or answered with the error it deserves."""
        try:
            data = json.loads(body)
        except ValueError:
            at = body.lower().find(b"content-length:", 1)
            if at > 0:  # a too-long Content-Length swallowed the next frame: read it again
                framer.unread(body[at:])
            return self._error(None, JsonRpcParseError, "the body is not JSON")
        if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
            return self._error(data.get("id") if isinstance(data, dict) else None, JsonRpcInvalidRequest,
                               "not a JSON-RPC 2.0 message")
        if "method" in data:
            data.setdefault("params", None)  # optional in JSON-RPC; pygls's generic message types require it
        self.handle_message(self.structure_message(data))

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            method = data.get("method", "?")
            detail = f"invalid params for {method}: {exc.__cause__ or exc}".splitlines()[0][:300]
            if "id" in data and "method" in data:
                err = exc.to_response_error()
                err.message = detail
                self._send_response(data["id"], error=err)
            log.error("%s", detail)
            self._server.window_log_message(types.LogMessageParams(types.MessageType.Error, detail))
            return JsonRPCNotification(method="$/ghostline/invalid", jsonrpc="2.0", params=None)

    # Open documents live in server.documents (server/document.py: LSP's line model), not pygls's workspace,
    # whose TextDocument splits lines where LSP does not and re-splits the whole text on every request.
    # These are plain functions, not generators like pygls's own: pygls files a generator notification's
    # future under a fresh id that nothing removes, so every didChange leaked one (training.load).
    def _user_handler(self, method: str, params: Any) -> None:
        if (handler := self.fm.features.get(method)) is not None:
            handler(params)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        d = params.text_document
        self._server.documents[d.uri] = Document(d.uri, d.text, d.language_id or "", d.version)
        self._user_handler(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        doc = self._server.documents.get(params.text_document.uri)
        if doc is None:
            log.warning("didChange for %s, which is not open", params.text_document.uri)
            return
        for change in params.content_changes:
            rng = getattr(change, "range", None)
            if rng is None:
                doc.apply(change.text)
            else:
                doc.apply(change.text, (rng.start.line, rng.start.character), (rng.end.line, rng.end.character))
        doc.version = params.text_document.version
        self._user_handler(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        self._server.documents.pop(params.text_document.uri, None)
        self._user_handler(types.TEXT_DOCUMENT_DID_CLOSE, params)


class GhostlineServer(LanguageServer):
    def __init__(self, options: Options = Options()) -> None:
        super().__init__("ghostline", __version__, protocol_cls=GhostlineProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.documents: dict[str, Document] = {}  # uri as the client sent it -> open document
        self.session = Session(notify=self._notify, document_text=self._document_text, options=options,
                               accepted_at=self.prefetch)
        self.scheduler = LatestWins()
        self.recent: OrderedDict[str, float] = OrderedDict()  # uri -> last edit, for snippets
        self.flights: dict[str, Flight] = {}  # uri -> the generation under way for it
        self._warned: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    # --- plumbing -----------------------------------------------------------------------------
    def _notify(self, kind: str, payload: dict) -> None:
        """Session events -> client. Called from worker threads too: hop onto the event loop."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._send, kind, payload)
        else:
            self._send(kind, payload)

    def _send(self, kind: str, payload: dict) -> None:
        try:
            if kind == "status":
                self.protocol.notify(STATUS, payload)
            elif kind == "message":
                level = {"error": types.MessageType.Error, "warning": types.MessageType.Warning}.get(
                    payload.get("level"), types.MessageType.Info)
                self.window_show_message(types.ShowMessageParams(level, payload["text"]))
            elif kind == "log":
                self.window_log_message(types.LogMessageParams(types.MessageType.Info, payload["text"]))
        except Exception:  # the client went away mid-notification; nothing to tell
            log.debug("notify failed", exc_info=True)

    def _document_text(self, uri: str) -> str | None:
        doc = self.documents.get(uri)
        return doc.text if doc is not None else None

    def warn_once(self, key: str, text: str) -> None:
        log.warning("%s", text)
        if key not in self._warned:
            self._warned.add(key)
            self._notify("message", {"level": "warning", "text": f"Ghostline: {text}"})

    def snippet_support(self) -> bool:
        caps = self.client_capabilities.text_document
        item = caps.completion.completion_item if caps and caps.completion else None
        return bool(item and item.snippet_support)

    def request_for(self, uri: str, position: types.Position) -> Request:
        doc = self.documents.get(uri)
        if doc is None:
            raise InputError(f"unknown document {uri} (not opened with didOpen)", "unknown-document")
        try:
            offset = doc.offset_at(position.line, position.character)
        except PositionError as e:
            raise InputError(f"{e} in {uri}", "position") from None
        return self.request_at(doc, uri, offset)

    def request_at(self, doc: Document, uri: str, offset: int) -> Request:
        others = tuple((path, d.model_text) for u in reversed(self.recent)
                       if u != uri and (d := self.documents.get(u)) is not None
                       and d.language_id == doc.language_id and (path := _path_of(u)))[:MAX_SNIPPET_DOCS]
        path = _path_of(uri)
        return Request(uri, doc.model_text, offset, doc.language_id, path=path, root=self.root_of(path),
                       others=others)

    def root_of(self, path: str | None) -> str | None:
        """The innermost workspace folder holding `path` (prompts name files relative to it)."""
        if not path:
            return None
        roots = [_path_of(f.uri) for f in self.workspace.folders.values()] + [self.workspace.root_path]
        inside = [r for r in roots if r and (path + "/").startswith(r.rstrip("/") + "/")]
        return max(inside, key=len, default=None)

    def touch(self, uri: str) -> None:
        self.recent.pop(uri, None)
        self.recent[uri] = time.monotonic()
        while len(self.recent) > 64:
            self.recent.popitem(last=False)

    async def complete(self, uri: str, position: types.Position):
        """Shared by inline completion and the completion fallback. Returns (Result, Request) or None."""
        session = self.session
        try:
            req = self.request_for(uri, position)
        except InputError as e:
            session.count("input_errors")
            self.warn_once(e.kind, str(e))
            return None
        reuse = session.options.inflight_reuse
        flight = self.flights.get(uri)
        adopt = reuse and flight is not None and flight.serves(req)
        try:
            got = session.admit(req, free=adopt)
            if got is None:  # the model is still loading
                await session.wait_loaded()
                got = session.admit(req, free=adopt)
        except InputError as e:
            self.warn_once(e.kind, str(e))
            return None
        if got is None:
            return None
        if isinstance(got, Result):
            return got, req
        admitted = got
        if adopt:
            try:
                await asyncio.shield(flight.done)  # $/cancelRequest cancels this wait, not the generation
            except Superseded:  # a newer request replaced it
                return None
            except Cancelled:  # its output parted from what this request typed: ask the model below
                pass
            else:
                if (reused := session.from_flight(req)) is not None:
                    return reused, req
            judged = session.judge(req, admitted)  # it needs a model call of its own now: the filter decides
            if isinstance(judged, Result):
                return judged, req
            admitted = judged
        flight = self.fly(req, admitted)
        try:
            result = await asyncio.shield(flight.done)
        except asyncio.CancelledError:  # $/cancelRequest
            session.count("cancelled")
            if not reuse:  # stop the generation between tokens; with reuse the next request may want it
                flight.cancel.set()
            raise
        except Superseded:
            session.count("superseded")
            return None
        except Cancelled:
            session.count("cancelled")
            return None
        return result, req

    def fly(self, req: Request, admitted: Admitted) -> Flight:
        """Queue the model call for `req` (a newer one for the document replaces it); later requests that type
        along with it may wait for it (in-flight reuse)."""
        session, uri = self.session, req.uri
        flight = Flight(req, threading.Event())
        job = self.scheduler.submit(uri, lambda cancel: session.generate(req, admitted, cancel, flight.progress),
                                    flight.cancel)
        flight.done = asyncio.wrap_future(job.future)
        self.flights[uri] = flight
        flight.done.add_done_callback(lambda _: self.flights.get(uri) is flight and self.flights.pop(uri))
        flight.done.add_done_callback(lambda f: f.cancelled() or f.exception())  # read, even if nobody waits
        return flight

    def prefetch(self, uri: str, offset: int, text: str) -> None:
        """After an accept, start the next suggestion at the end of the accepted text before the client asks
        (options.prefetch): its request, a moment later at that cursor, waits for this generation (in-flight
        reuse) or finds its answer in the typing-through cache."""
        doc, session = self.documents.get(uri), self.session
        if (not session.options.prefetch or not session.options.inflight_reuse or doc is None
                or uri in self.flights or session.engine is None or doc.text[offset:offset + len(text)] != text):
            return  # off, busy with this document, or the accepted text is not (or no longer) where it was
        req = self.request_at(doc, uri, offset + len(text))
        if session.engine.from_cache(req) is not None:  # answered at no cost when the client asks
            return
        try:
            got = session.admit(req)
        except InputError:
            return
        if isinstance(got, Admitted):
            session.count("prefetches")
            self.fly(req, got)


def _path_of(uri: str) -> str | None:
    return to_fs_path(uri) if uri_scheme(uri) == "file" else None


def _line_edit(change: Any) -> tuple[int, int, int]:
    """(start line, end line, lines inserted) of one content change; a full replacement keeps lines."""
    rng = getattr(change, "range", None)
    if rng is None:
        return (0, 0, 0)
    return (rng.start.line, rng.end.line, change.text.count("\n"))


def _range_at(position: types.Position) -> types.Range:
    return types.Range(position, position)


def _accept_command(completion_id: str) -> types.Command:
    return types.Command(title="Ghostline: accepted", command=ACCEPT_COMMAND, arguments=[completion_id])


def _not_pygls_deserialize_traceback(record: logging.LogRecord) -> bool:
    """pygls logs a full traceback for every message that does not deserialize; GhostlineProtocol answers
    it and logs one line instead."""
    return not record.getMessage().startswith("Unable to deserialize message")


def create_server(options: Options = Options()) -> GhostlineServer:
    """`options`: the pipeline's switches (server.options), for benchmarks; users change settings instead."""
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_not_pygls_deserialize_traceback)
    server = GhostlineServer(options)

    @server.feature(types.INITIALIZE)
    def initialize(ls: GhostlineServer, params: types.InitializeParams) -> None:
        ls.session.configure(params.initialization_options)
        name = params.client_info.name if params.client_info else None
        ls.session.accepts_from_edits = name not in INSERTS_ON_SELECT
        if params.process_id:
            watch_parent(params.process_id)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: GhostlineServer, params: types.InitializedParams) -> None:
        ls.bind_loop()
        ls.session.load_model_async()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: GhostlineServer, params: Any) -> None:
        ls.session.shutdown()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: GhostlineServer, params: types.DidChangeConfigurationParams) -> None:
        ls.session.configure(params.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GhostlineServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GhostlineServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)
        ls.session.document_changed(params.text_document.uri, [_line_edit(c) for c in params.content_changes],
                                    tuple(c.text for c in params.content_changes if getattr(c, "range", None)))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GhostlineServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.recent.pop(params.text_document.uri, None)
        ls.session.document_closed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: GhostlineServer, params: types.InlineCompletionParams):
        got = await ls.complete(params.text_document.uri, params.position)
        if got is None or not got[0].text:
            return types.InlineCompletionList(items=[])
        result, _ = got
        return types.InlineCompletionList(items=[types.InlineCompletionItem(
            insert_text=result.text, range=_range_at(params.position), command=_accept_command(result.id))])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS))
    async def completion(ls: GhostlineServer, params: types.CompletionParams):
        got = await ls.complete(params.text_document.uri, params.position)
        if got is None or not got[0].text:
            return types.CompletionList(is_incomplete=True, items=[])
        result, req = got
        e = completion_edit(req.prefix.rsplit("\n", 1)[-1], result.text, ls.snippet_support())
        pos = params.position
        item = types.CompletionItem(
            label=e.label, kind=types.CompletionItemKind.Snippet, detail="Ghostline",
            insert_text_format=types.InsertTextFormat.Snippet if e.snippet else types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(types.Range(types.Position(pos.line, pos.character - e.replaced), pos),
                                     e.new_text),
            filter_text=e.filter_text, sort_text="0", preselect=True, command=_accept_command(result.id))
        ls.session.offered_item(params.text_document.uri, result.id, e.plain)
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.command(ACCEPT_COMMAND)
    def accepted(ls: GhostlineServer, *args: Any) -> None:
        completion_id = args[0] if args and isinstance(args[0], str) else None
        if completion_id is None:
            ls.warn_once("accept-args", f"{ACCEPT_COMMAND} needs the completion id as its argument")
            return None
        ls.session.outcome({"id": completion_id, "outcome": "accepted"})
        return None

    @server.feature(STATS)
    def stats(ls: GhostlineServer, params: Any) -> dict:
        out = {**ls.session.stats, "state": ls.session.state.value, "error": ls.session.error,
               "last_prompt_files": list(ls.session.last_prompt_files),
               "telemetry_pending": ls.session.recorder.pending,
               "outcomes": dict(Counter(o["outcome"] for o in ls.session.outcomes)),
               "filter": ls.session.filter.name,
               "prompt_tokens_evaluated": engine.runtime.prompt_tokens_evaluated if (
                   engine := ls.session.engine) else 0}
        uri = _as_dict(params).get("uri")
        if isinstance(uri, str):  # the server's copy of one document, as a digest (for sync checks)
            doc = ls.documents.get(uri)
            out["document"] = None if doc is None else {"version": doc.version, "lines": doc.line_count,
                                                          "sha256": doc.digest()}
        return out

    @server.feature(OUTCOME)
    def outcome(ls: GhostlineServer, params: Any) -> None:
        ls.session.outcome(_as_dict(params))

    return server


def _as_dict(params: Any) -> dict:
    if isinstance(params, dict):
        return params
    if hasattr(params, "_asdict"):  # pygls turns untyped params into namedtuples
        return params._asdict()
    return {}


def watch_parent(pid: int, interval: float = 2.0) -> threading.Thread:
    """Exit when the editor that started us dies (pygls does not watch its parent)."""
    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def loop() -> None:
        while alive():
            time.sleep(interval)
        log.warning("parent process %d is gone; exiting", pid)
        os._exit(0)

    t = threading.Thread(target=loop, name="ghostline-parent-watch", daemon=True)
    t.start()
    return t


def serve_stdio(server: GhostlineServer, stdin=None, stdout=None) -> int:
    """LSP on stdio with server/framing.py's reader (pygls's goes deaf on one bad header). Returns the exit
    code: 0 after shutdown + exit, 1 for exit without shutdown or a client that went away."""
    stdin = stdin or sys.stdin.buffer
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    protocol = server.protocol

    async def loop() -> int:
        chunks: asyncio.Queue[bytes] = asyncio.Queue()
        aio = asyncio.get_running_loop()

        def pump() -> None:
            # A daemon thread reading the raw fd: a read blocked on stdin never holds up the exit (a
            # buffered stdin's lock held by it would abort the interpreter at shutdown).
            fd = stdin.fileno()
            while chunk := os.read(fd, 65536):
                aio.call_soon_threadsafe(chunks.put_nowait, chunk)
            aio.call_soon_threadsafe(chunks.put_nowait, b"")
        threading.Thread(target=pump, name="ghostline-stdin", daemon=True).start()
        framer = Framer()
        while protocol.exit_code is None:
            chunk = await chunks.get()
            if not chunk:
                log.warning("the client closed the connection")
                return 1
            for frame in framer.feed(chunk):
                if frame.body is None:
                    log.warning("framing: %s", frame.error)
                    continue
                try:
                    protocol.receive(frame.body, framer)
                except Exception:  # never let one message stop the loop
                    log.exception("could not handle a message")
                if protocol.exit_code is not None:
                    break
        return protocol.exit_code

    try:
        return asyncio.run(loop())
    except BrokenPipeError:
        log.error("the client went away")
        return 1


__all__ = ["Engine", "ModelError", "create_server", "serve_stdio"]
