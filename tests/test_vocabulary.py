"""Names and values that Python, TypeScript and the docs share are defined once; these fail on any drift.
Protocol names: server/names.py is the definition; the extension and docs/protocol.md must spell them alike.

Settings: package.json's `contributes.configuration` is the definition (the extension reads its defaults,
choices and ranges from it); the server's `Settings`, the extension's type unions and both settings tables
(docs/protocol.md, extension/README.md) must agree with it."""
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from server.settings import CHOICES, RANGES, Settings

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ONLY = {"pythonPath", "serverRoot"}  # where the server lives: read by the extension, never sent
FROM_EDITOR = {"clientTelemetryEnabled"}  # the editor's own telemetry switch, not a Ghostline setting


def manifest() -> dict[str, dict]:
    props: dict[str, dict] = {}
    for section in json.loads((ROOT / "package.json").read_text())["contributes"]["configuration"]:
        props.update({k.removeprefix("ghostline."): v for k, v in section["properties"].items()})
    return props


def server_defaults() -> dict:
    return {f.name: getattr(Settings(), f.name) for f in fields(Settings) if f.name not in FROM_EDITOR}


def test_the_server_settings_are_the_manifests():
    m = manifest()
    assert set(m) - CLIENT_ONLY == set(server_defaults())
    for name, default in server_defaults().items():
        spec = m[name]
        assert spec["default"] == default, f"{name}: package.json {spec['default']!r}, server {default!r}"
        assert tuple(spec.get("enum", ())) == CHOICES.get(name, ()), name
        assert (spec.get("minimum"), spec.get("maximum")) == RANGES.get(name, (None, None)), name


def test_the_extensions_types_name_the_manifests_choices():
    ts = (ROOT / "extension/src/settings.ts").read_text()
    types = {"multiline": "Multiline", "filterAggressiveness": "FilterAggressiveness",
             "telemetryLevel": "TelemetryLevel", "remoteTemplate": "RemoteTemplate"}
    assert set(types) == set(CHOICES)
    for name, type_name in types.items():
        union = re.search(rf"export type {type_name} = ([^;]+);", ts)
        assert union, type_name
        assert tuple(re.findall(r'"([^"]+)"', union.group(1))) == tuple(manifest()[name]["enum"]), type_name


def table(path: str, prefix: str, default_col: int) -> dict[str, tuple[str, str]]:
    """A docs settings table: key -> (default as written, the whole row)."""
    rows = {}
    for line in (ROOT / path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > default_col and re.fullmatch(rf"`{prefix}\w+`", cells[0]):
            rows[cells[0].strip("`").removeprefix(prefix)] = (cells[default_col].strip("`"), line)
    return rows


@pytest.mark.parametrize("path,prefix,default_col", [("docs/protocol.md", "", 2),
                                                      ("extension/README.md", "ghostline.", 1)])
def test_the_docs_tables_say_what_the_manifest_says(path, prefix, default_col):
    rows = table(path, prefix, default_col)
    m = manifest()
    expected = set(m) - CLIENT_ONLY | FROM_EDITOR if path.startswith("docs/") else set(m)
    assert set(rows) == expected, path
    for name, spec in m.items():
        if name not in rows:
            continue
        written, line = rows[name]
        value = spec["default"]
        assert written == (json.dumps(value) if not isinstance(value, str) or not value else value), \
            f"{path}: {name} default {written!r}, package.json {value!r}"
        if "minimum" in spec:
            assert f"{spec['minimum']}–{spec['maximum']}" in line, f"{path}: {name} range"
        for choice in spec.get("enum", ()):
            assert f"`{choice}`" in line, f"{path}: {name} lacks {choice}"


def ts_union(path: str, type_name: str) -> tuple[str, ...]:
    found = re.search(rf"export type {type_name} = ([^;]+);", (ROOT / path).read_text())
    assert found, f"{path}: no type {type_name}"
    return tuple(re.findall(r'"([^"]+)"', found.group(1)))


def ts_const(path: str, name: str) -> str:
    found = re.search(rf"const {name} = \"([^\"]+)\";", (ROOT / path).read_text())
    assert found, f"{path}: no const {name}"
    return found.group(1)


def test_protocol_names_are_the_servers():
    from server.names import ACCEPT_COMMAND, IGNORE_REASONS, OUTCOME, OUTCOMES, STATUS, ServerState
    assert ts_union("extension/src/outcomes.ts", "OutcomeKind") == OUTCOMES
    assert ts_union("extension/src/outcomes.ts", "IgnoredReason") == IGNORE_REASONS
    assert ts_union("extension/src/status.ts", "ServerState") == tuple(s.value for s in ServerState)
    assert ts_const("extension/src/inline.ts", "ACCEPT_COMMAND") == ACCEPT_COMMAND
    assert ts_const("extension/src/client.ts", "OUTCOME") == OUTCOME
    assert ts_const("extension/src/client.ts", "STATUS") == STATUS
    doc = (ROOT / "docs/protocol.md").read_text()
    for kind in OUTCOMES + IGNORE_REASONS + tuple(s.value for s in ServerState):
        assert f'"{kind}"' in doc, f"docs/protocol.md does not name {kind!r}"
    assert '"outcome": ' + "|".join(f'"{k}"' for k in OUTCOMES) in doc
    assert '"reason"?: ' + "|".join(f'"{r}"' for r in IGNORE_REASONS) in doc
    assert '"state": ' + "|".join(f'"{s.value}"' for s in ServerState) in doc


def test_one_version_everywhere():
    import tomllib

    from server import __version__
    assert json.loads((ROOT / "package.json").read_text())["version"] == __version__
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == __version__


def test_the_telemetry_schema_lists_every_status_the_server_writes():
    from server.names import Reason
    from server.telemetry import schema
    documented = schema.__doc__.split("status:", 1)[1].split("events(", 1)[0]
    assert set(re.findall(r"[a-z][a-z-]+", documented.split("value", 1)[1])) >= {r.value for r in Reason}
    assert {"model", "cache"} <= set(re.findall(r"`([a-z | -]+)`", documented)[0].replace(" ", "").split("|"))


def test_the_extensions_training_commands_call_what_the_python_side_accepts():
    """extension/src/launch.ts builds `python -m training.finetune ...` and the status commands: the modules
    exist and take those arguments (parsed by their own argparse, nothing run)."""
    import re
    import subprocess
    import sys
    src = (ROOT / "extension" / "src" / "launch.ts").read_text()
    train = re.search(r"return \[(\"-m\", \"training\.finetune\".*?)\];", src).group(1)
    args = re.findall(r'"([^"]+)"', train)
    assert args[:2] == ["-m", "training.finetune"] and "--workspace" in src and "--promote" in args
    for cmd in ([*args[:2], "--help"], *[[*re.findall(r'"([^"]+)"', c), "--help"]
                                         for c in re.findall(r"\[(\"-m\", \"training\.[a-z]+\", \"[a-z]+\")\]", src)]):
        out = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (cmd, out.stderr[-500:])
        if cmd[1] == "training.finetune":
            assert all(flag in out.stdout for flag in ("--workspace", "--name", "--promote"))
