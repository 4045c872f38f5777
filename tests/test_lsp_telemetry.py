"""Telemetry through the real server and model: opting in writes a database, the editor's switch wins."""
import os
import sqlite3
import sys

import pytest
import pytest_lsp
from lsp_helpers import inline, open_doc, position_of, ready, start, telemetry_settled, wait_for
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

pytestmark = pytest.mark.model

DATA_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ghostline-lsp-telemetry-{os.getpid()}")
SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "server"],
                            server_env={**os.environ, "GHOSTLINE_DATA_DIR": DATA_DIR,
                                        "GHOSTLINE_CONFIG_DIR": DATA_DIR + "-key"})
DB = os.path.join(DATA_DIR, "telemetry.sqlite3")
DOC = '''SECRET = "AKIAIOSFODNN7EXAMPLE"


def area(width, height):
    """Area of a rectangle."""
    █
'''


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):
    import shutil
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    await start(lsp_client, {"telemetryLevel": "training", "clientTelemetryEnabled": True})
    yield
    await lsp_client.shutdown_session()
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def rows(sql):
    with sqlite3.connect(DB) as conn:
        return conn.execute(sql).fetchall()


async def test_training_level_records_then_editor_switch_turns_it_off(client: LanguageClient, tmp_path):
    await ready(client)
    text, line, ch = position_of(DOC)
    uri = (tmp_path / "area.py").as_uri()
    open_doc(client, uri, text, "python")
    result = await inline(client, uri, line, ch)
    assert result.items and result.items[0].insert_text.strip()
    cid = result.items[0].command.arguments[0]
    client.protocol.notify("ghostline/outcome", {"id": cid, "outcome": "shown"})
    await client.workspace_execute_command_async(types.ExecuteCommandParams("ghostline.accepted", [cid]))
    assert await wait_for(lambda: os.path.exists(DB) and len(rows(
        f"SELECT kind FROM events WHERE completion_id='{cid}'")) == 3, 30), "events not recorded"
    (prefix, completion, level), = rows(
        f"SELECT prefix, completion, level FROM suggestions WHERE completion_id='{cid}'")
    assert level == "training" and "def area(width, height):" in prefix and completion
    assert "AKIAIOSFODNN7EXAMPLE" not in prefix, "secret not redacted"
    assert oct(os.stat(DB).st_mode & 0o777) == "0o600"

    # VS Code's telemetry switch goes off: nothing more is written, whatever our own setting says.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        {"ghostline": {"telemetryLevel": "training", "clientTelemetryEnabled": False}}))
    before = rows("SELECT count(*) FROM suggestions")[0][0]
    result = await inline(client, uri, line, ch)  # (a cache hit still gets a fresh id)
    client.protocol.notify("ghostline/outcome", {"id": result.items[0].command.arguments[0], "outcome": "shown"})
    assert await telemetry_settled(client)  # a wrongly queued write would be on disk now
    assert rows("SELECT count(*) FROM suggestions")[0][0] == before
