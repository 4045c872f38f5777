"""Complete a file through the real server with a real LSP client, the way an editor does.

    python examples/lsp_client_demo.py FILE [--line N --character N]

Without a position it completes at the first whitespace-only line (an empty block body).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

LANGS = {".py": "python", ".js": "javascript", ".ts": "typescript", ".go": "go", ".rs": "rust"}


def first_empty_line(text: str) -> tuple[int, int]:
    for i, line in enumerate(text.split("\n")):
        if line and not line.strip():
            return i, len(line)
    return len(text.split("\n")) - 1, 0


async def main(path: Path, line: int | None, character: int | None) -> int:
    text = path.read_text()
    if line is None:
        line, character = first_empty_line(text)
    client = LanguageClient("ghostline-demo", "0.1")
    statuses: list[str] = []
    client.feature("ghostline/status")(lambda params: statuses.append(params.state))
    client.feature(types.WINDOW_SHOW_MESSAGE)(lambda params: print(f"[server] {params.message}", file=sys.stderr))
    await client.start_io(sys.executable, "-m", "server")
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    uri = path.resolve().as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=uri, language_id=LANGS.get(path.suffix, ""), version=1, text=text)))
    result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character)))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    lines = text.split("\n")
    if not result or not result.items:
        print(f"no suggestion at {path}:{line + 1}:{character + 1} (server states: {statuses})")
        return 1
    ghost = result.items[0].insert_text
    print(f"{path}:{line + 1}:{character + 1} ghost text from the local model:\n")
    for ln in lines[max(0, line - 4):line]:
        print(f"    {ln}")
    first, *rest = ghost.split("\n")
    print(f"    {lines[line][:character]}\033[2m{first}\033[0m")
    for ln in rest:
        print(f"    \033[2m{ln}\033[0m")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--line", type=int)
    ap.add_argument("--character", type=int)
    a = ap.parse_args()
    sys.exit(asyncio.run(main(a.file, a.line, a.character)))
