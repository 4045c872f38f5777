"""Helpers for driving the real server through pytest-lsp."""
from __future__ import annotations

import asyncio

from lsprotocol import types
from pytest_lsp import LanguageClient


def record_status(client: LanguageClient) -> list:
    """Collect ghostline/status notifications in client.statuses (as dicts)."""
    if not hasattr(client, "statuses"):
        client.statuses = []

        @client.feature("ghostline/status")
        def _status(params):
            client.statuses.append(params._asdict() if hasattr(params, "_asdict") else params)
    return client.statuses


async def start(client: LanguageClient, options: dict | None = None, root_uri: str | None = None) -> None:
    """Initialize the server with `options` (settings). The learned filter is off unless a test sets
    `filterAggressiveness`: the shipped one would hold back some of the answers other tests ask for."""
    record_status(client)
    await client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"filterAggressiveness": "off", **(options or {})},
        process_id=None,
        root_uri=root_uri,
        workspace_folders=[types.WorkspaceFolder(root_uri, "workspace")] if root_uri else None,
    ))


def open_doc(client: LanguageClient, uri: str, text: str, language: str, version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)))


def insert(client: LanguageClient, uri: str, version: int, line: int, character: int, text: str) -> None:
    pos = types.Position(line, character)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        [types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=text)]))


async def inline(client: LanguageClient, uri: str, line: int, character: int):
    return await client.text_document_inline_completion_async(types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character)))


async def stats(client: LanguageClient) -> dict:
    result = await client.protocol.send_request_async("ghostline/stats", {})
    return result._asdict() if hasattr(result, "_asdict") else result


async def telemetry_settled(client: LanguageClient, timeout: float = 30.0) -> bool:
    """Every telemetry write the server queued for the messages sent so far is done (it handles messages
    in order, so a write asked for before this call is counted in `telemetry_pending` until it lands)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if (await stats(client))["telemetry_pending"] == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def wait_for(predicate, timeout: float = 120.0, interval: float = 0.1):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return False


def position_of(text: str, marker: str = "█") -> tuple[str, int, int]:
    """Remove the cursor marker and return (text, line, character)."""
    i = text.index(marker)
    before = text[:i]
    return text.replace(marker, ""), before.count("\n"), len(before.rsplit("\n", 1)[-1])


async def ready(client: LanguageClient, timeout: float = 120.0) -> dict:
    """Wait until the server reports a settled state (ready, error or disabled) and return it."""
    settled = ("ready", "error", "disabled")
    assert await wait_for(lambda: any(s.get("state") in settled for s in client.statuses), timeout), \
        f"server never became ready: {client.statuses}"
    return next(s for s in reversed(client.statuses) if s.get("state") in settled)


# A function body to complete, for the editor tests (Neovim, Emacs).
EDITOR_DOC = '''import os


def read_lines(path):
    """Return the lines of a text file, without trailing newlines."""
    with open(path) as f:
<INDENT>

def main():
    for line in read_lines("data.txt"):
        print(line)
'''.replace("<INDENT>", " " * 8)
EDITOR_HOLE = 7  # 1-based line of the empty body line
