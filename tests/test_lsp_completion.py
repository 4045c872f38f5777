"""The real server with the real 0.5B model, driven by a real LSP client."""
import ast
import asyncio
import shutil
import subprocess
import sys

import pytest
import pytest_lsp
from lsp_helpers import inline, insert, open_doc, position_of, ready, start, stats, wait_for
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient

pytestmark = pytest.mark.model


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "server"]))
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


PY = '''import os


def read_lines(path):
    """Return the lines of a text file, without trailing newlines."""
    with open(path) as f:
        █


def main():
    for line in read_lines("data.txt"):
        print(line)
'''

JS = '''function sum(numbers) {
  let total = 0;
  for (const n of numbers) {
    █
  }
  return total;
}

module.exports = { sum };
'''


async def test_python_completion_is_valid_python(client: LanguageClient, tmp_path):
    text, line, ch = position_of(PY)
    uri = (tmp_path / "lines.py").as_uri()
    open_doc(client, uri, text, "python")
    result = await inline(client, uri, line, ch)
    assert result.items, "no completion"
    item = result.items[0]
    assert item.insert_text.strip()
    assert item.command.command == "ghostline.accepted" and item.command.arguments[0]
    assert item.range.start == types.Position(line, ch)
    completed = text.replace("\n        \n", "\n        " + item.insert_text + "\n", 1)
    ast.parse(completed)  # raises SyntaxError if the suggestion breaks the file
    assert "def main" not in item.insert_text, "repeated the suffix"


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
async def test_javascript_completion_is_valid_javascript(client: LanguageClient, tmp_path):
    text, line, ch = position_of(JS)
    uri = (tmp_path / "sum.js").as_uri()
    open_doc(client, uri, text, "javascript")
    result = await inline(client, uri, line, ch)
    assert result.items, "no completion"
    completion = result.items[0].insert_text
    assert "total" in completion
    assert "module.exports" not in completion, "repeated the suffix"
    path = tmp_path / "check.js"
    path.write_text(text.replace("\n    \n", "\n    " + completion + "\n", 1))
    check = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr + path.read_text()


async def test_accept_command_reaches_server(client: LanguageClient, tmp_path):
    text, line, ch = position_of(PY)
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, text, "python")
    result = await inline(client, uri, line, ch)
    cid = result.items[0].command.arguments[0]
    await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="ghostline.accepted", arguments=[cid]))
    client.protocol.notify("ghostline/outcome", {"id": cid, "outcome": "partial", "acceptedLength": 3})
    await stats(client)  # a round trip: the notification before it has been handled
    logs = [m.message for m in client.log_messages]
    assert f"ghostline: outcome accepted id={cid}" in logs
    assert f"ghostline: outcome partial id={cid} acceptedLength=3" in logs


async def test_typing_through_uses_cache_without_model_call(client: LanguageClient, tmp_path):
    text, line, ch = position_of(PY)
    uri = (tmp_path / "c.py").as_uri()
    open_doc(client, uri, text, "python")
    first = (await inline(client, uri, line, ch)).items[0].insert_text
    assert len(first) > 3
    before = await stats(client)
    typed = first[:3]
    insert(client, uri, 2, line, ch, typed)
    again = await inline(client, uri, line, ch + len(typed))
    after = await stats(client)
    assert again.items and again.items[0].insert_text == first[3:]
    assert after["model_calls"] == before["model_calls"]
    assert after["cache_hits"] == before["cache_hits"] + 1


async def test_latest_request_wins(client: LanguageClient, tmp_path):
    text, line, ch = position_of(PY)
    uri = (tmp_path / "l.py").as_uri()
    open_doc(client, uri, text, "python")
    await ready(client)
    first = asyncio.create_task(inline(client, uri, line, ch))
    await asyncio.sleep(0.05)  # the first request is running on the model now
    # something the model will not write there: the running generation cannot serve it (in-flight reuse)
    insert(client, uri, 2, line, ch, "zqx")
    r2 = await inline(client, uri, line, ch + 3)
    r1 = await first
    s = await stats(client)
    assert not r1.items, "the older request should have been superseded"
    assert r2.items and r2.items[0].insert_text
    assert s["superseded"] + s["cancelled"] >= 1


@pytest_lsp.fixture(config=ClientServerConfig(
    # inflight_reuse is the default; the bare model, which does not end its answers, generates long enough for
    # the typing to land while it runs (the shipped adapter ends this one in a few tokens)
    server_command=[sys.executable, "-m", "server", "--option", "inflight_reuse=true", "--option", "adapter=none"]))
async def reuse_client(lsp_client: LanguageClient):
    await start(lsp_client, {"multiline": "always"})  # long answers: the typing lands while one is generated
    yield
    await lsp_client.shutdown_session()


async def test_typing_along_a_running_generation_waits_for_it(reuse_client: LanguageClient, tmp_path):
    """inflight_reuse: a request that types what the running generation already produced is answered by that
    generation (no second model call), and the earlier request is answered too instead of being superseded."""
    client = reuse_client
    text, line, ch = position_of(PY)
    await ready(client)
    seen = tmp_path / "seen.py"
    open_doc(client, seen.as_uri(), text, "python")
    expected = (await inline(client, seen.as_uri(), line, ch)).items[0].insert_text  # greedy: the same again
    assert len(expected) > 20
    uri = (tmp_path / "r.py").as_uri()
    open_doc(client, uri, text, "python")
    before = await stats(client)
    generating = len([s for s in client.statuses if s.get("state") == "generating"])
    first = asyncio.create_task(inline(client, uri, line, ch))
    assert await wait_for(lambda: len([s for s in client.statuses if s.get("state") == "generating"]) > generating)
    # the prompt is cached from the first document: the first token comes at once, the line in ~0.5 s
    await asyncio.sleep(0.15)
    insert(client, uri, 2, line, ch, expected[:2])
    second = await inline(client, uri, line, ch + 2)
    r1 = await first
    after = await stats(client)
    assert after["inflight_reuses"] == before["inflight_reuses"] + 1, (expected, before, after, r1, second)
    assert after["model_calls"] == before["model_calls"] + 1
    assert r1.items and r1.items[0].insert_text == expected
    assert second.items and second.items[0].insert_text == expected[2:]


async def wait_for_stat(client, name, at_least, timeout=30.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if (await stats(client))[name] >= at_least:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_cancel_request(client: LanguageClient, tmp_path):
    text, line, ch = position_of(PY)
    uri = (tmp_path / "x.py").as_uri()
    open_doc(client, uri, text, "python")
    await ready(client)
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, ch))
    future = client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me")
    await asyncio.sleep(0.1)  # sent and running on the model
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wrap_future(future)
    assert await wait_for_stat(client, "cancelled", 1)
    # the server is still serving after the cancellation, and the model worker is free again
    result = await inline(client, uri, line, ch)
    assert result.items and result.items[0].insert_text


async def test_completion_fallback_for_clients_without_inline(client: LanguageClient, tmp_path):
    text, line, ch = position_of(PY)
    uri = (tmp_path / "fb.py").as_uri()
    open_doc(client, uri, text, "python")
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, ch)))
    assert result.items
    item = result.items[0]
    assert item.text_edit.new_text.strip() and item.text_edit.range.start == types.Position(line, ch)
    assert item.command.command == "ghostline.accepted"


async def test_settings_change_applies_without_restart(client: LanguageClient, tmp_path):
    text, line, ch = position_of(PY)
    uri = (tmp_path / "cfg.py").as_uri()
    open_doc(client, uri, text, "python")
    await ready(client)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"ghostline": {"languages": {"python": False}}}))
    assert not (await inline(client, uri, line, ch)).items
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"ghostline": {"languages": {"python": True}, "maxTokens": "lots"}}))
    assert (await inline(client, uri, line, ch)).items
    assert any("maxTokens" in m.message for m in client.messages)  # bad value: said, default used


def test_cli_complete_and_jsonl(tmp_path):
    text, line, ch = position_of(PY)
    src = tmp_path / "cli.py"
    src.write_text(text)
    out = subprocess.run([sys.executable, "-m", "server", "complete", str(src), "--line", str(line),
                          "--character", str(ch)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    jl = tmp_path / "in.jsonl"
    jl.write_text("\n".join(__import__("json").dumps({"prefix": p, "suffix": s, "language": "python"})
                            for p, s in [("def add(a, b):\n    return ", "\n"), ("x = [1, 2, 3]\ny = len(", ")\n")]))
    out = subprocess.run([sys.executable, "-m", "server", "complete", "--jsonl", str(jl)],
                         capture_output=True, text=True, timeout=300)
    rows = [__import__("json").loads(x) for x in out.stdout.splitlines()]
    assert len(rows) == 2 and all("completion" in r and r["latency_ms"] > 0 for r in rows)
    from server.models import resolve
    from server.registry import promoted
    base = resolve(None).identity
    assert all(r["model"].startswith(f"{base}+{promoted(base)}@") for r in rows)  # what the editor is served


async def test_percent_encoded_uri_is_found(client: LanguageClient, tmp_path):
    # VS Code encodes "@" in node_modules/@scope paths as %40; pygls stores documents decoded.
    text, line, ch = position_of(JS)
    folder = tmp_path / "node_modules" / "@scope" / "pkg"
    uri = (folder / "sum.js").as_uri()
    assert "%40scope" in uri
    open_doc(client, uri, text, "javascript")
    result = await inline(client, uri, line, ch)
    assert result.items and result.items[0].insert_text.strip()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "server"]))
async def workspace_client(lsp_client: LanguageClient, tmp_path):
    await start(lsp_client, root_uri=tmp_path.as_uri())
    yield
    await lsp_client.shutdown_session()


async def test_prompt_names_open_files_relative_to_the_workspace(workspace_client: LanguageClient, tmp_path):
    """Two open files of one workspace, completed through the real server: with the shipped options the
    prompt names no file at all (the path header and snippets lost on the benchmark, docs/benchmarks.md),
    so no URI or absolute path can reach the model. test_engine and test_context check the workspace-
    relative names used when those switches are on."""
    (tmp_path / "src").mkdir()
    util = (tmp_path / "src" / "util.py")
    util_text = "def load_yaml(path):\n    import yaml\n    return yaml.safe_load(open(path))\n"
    main = tmp_path / "src" / "main.py"
    main_text, line, ch = position_of("from util import load_yaml\n\nconfig = load_yaml(█)\n")
    client = workspace_client
    await ready(client)
    open_doc(client, util.as_uri(), util_text, "python")
    open_doc(client, main.as_uri(), main_text, "python")
    await inline(client, main.as_uri(), line, ch)
    files = (await stats(client))["last_prompt_files"]
    assert files == [], files
    assert (await stats(client))["model_calls"] >= 1  # the completion did reach the model


LINE_START = '''def mean(xs):
    █return total / len(xs)
'''


async def test_line_start_inserts_a_whole_line_or_nothing(client: LanguageClient, tmp_path):
    """At the start of a line with code, accepting the answer must leave valid Python: a whole line with
    its newline, never code glued onto the existing line."""
    text, line, ch = position_of(LINE_START)
    uri = (tmp_path / "mean.py").as_uri()
    open_doc(client, uri, text, "python")
    result = await inline(client, uri, line, ch)
    assert result.items, "the missing `total = ...` line was not offered"
    for item in result.items:
        lines = text.split("\n")
        lines[line] = lines[line][:ch] + item.insert_text + lines[line][ch:]
        ast.parse("\n".join(lines))
        assert item.insert_text.endswith("\n    ")


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "server", "--option", "prefetch=true"]))
async def prefetch_client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def test_an_accept_starts_the_next_suggestion_before_the_client_asks(prefetch_client: LanguageClient,
                                                                            tmp_path):
    """prefetch: the accept command makes the server generate at the end of the accepted text; the client's
    request there is answered by that generation, with no model call of its own."""
    client = prefetch_client
    text, line, ch = position_of(JS)
    uri = (tmp_path / "p.js").as_uri()
    open_doc(client, uri, text, "javascript")
    item = (await inline(client, uri, line, ch)).items[0]
    before = await stats(client)
    insert(client, uri, 2, line, ch, item.insert_text)  # VS Code applies the accept's edit, then runs its command
    await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=item.command.command, arguments=item.command.arguments))
    assert await wait_for_stat(client, "prefetches", before["prefetches"] + 1)
    lines = item.insert_text.split("\n")
    at_line, at_ch = line + len(lines) - 1, (ch if len(lines) == 1 else 0) + len(lines[-1])
    await inline(client, uri, at_line, at_ch)
    after = await stats(client)
    assert after["model_calls"] == before["model_calls"] + 1  # the prefetch's only
    assert after["cache_hits"] == before["cache_hits"] + 1
