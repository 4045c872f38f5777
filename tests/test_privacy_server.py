"""Every byte the real server writes, at each telemetry level, after completions requested with the cursor
inside secrets and then accepted: all files under its data, config, home and temporary folders (during
the session and after exit) and its stderr are grepped for the secrets and for canaries. Under strace
(where installed) it must also open no network socket."""
import os
import re
import shutil
from pathlib import Path

import pytest
from secret_corpus import leaked, samples
from wire import Wire

from server.models import models_dir

pytestmark = pytest.mark.model


def cases() -> list[tuple[str, str, str, str]]:
    """(file name, text, secret, canary): one secret per context of the corpus, families rotating, each in
    a small module; plus two files whose names make them sensitive (nothing of them is ever stored raw)."""
    by_context: dict[str, list] = {}
    for name, text, secret in samples():
        by_context.setdefault(name.split("/")[1], []).append((text, secret))
    out = []
    for k, (context, group) in enumerate(sorted(by_context.items())):
        text, secret = group[k % len(group)]
        canary = f"GLCANARY{k:02d}x{context.upper()}"
        out.append((f"mod_{context}.py", f"# {canary}\nimport os\n\n{text}\n\ndef main():\n    return None\n",
                    secret, canary))
    for fname, (text, secret) in ((".env", by_context["dotenv"][1]), (".netrc", by_context["netrc"][0])):
        canary = f"GLCANARYSENSITIVE{fname[1:].upper()}"
        out.append((fname, f"# {canary}\n{text}", secret, canary))
    return out


def files_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def grep(blobs: dict[str, bytes], needles: list[str], whole: bool = False) -> list[tuple[str, str]]:
    """(where, needle) for each needle in a blob: any 8-character run of it (secrets), or `whole`."""
    return [(where, n) for where, blob in blobs.items() for n in needles
            if (n.encode() in blob if whole else leaked(n, blob.decode("latin-1")))]


def session(tmp_path: Path, level: str) -> dict:
    root = tmp_path / "root"
    dirs = {name: root / name for name in ("home", "tmp", "data", "config", "xdg-data", "xdg-config", "xdg-cache")}
    for d in dirs.values():
        d.mkdir(parents=True)
    env = {**os.environ, "HOME": str(dirs["home"]), "TMPDIR": str(dirs["tmp"]),
           "GHOSTLINE_DATA_DIR": str(dirs["data"]), "GHOSTLINE_CONFIG_DIR": str(dirs["config"]),
           "XDG_DATA_HOME": str(dirs["xdg-data"]), "XDG_CONFIG_HOME": str(dirs["xdg-config"]),
           "XDG_CACHE_HOME": str(dirs["xdg-cache"]), "GHOSTLINE_MODELS_DIR": str(models_dir())}
    trace = tmp_path / "strace.txt"
    strace = ("strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=socket", "-o", str(trace))
    wrapper = strace if shutil.which("strace") else ()
    # the bare model: it completes inside a secret where the shipped adapter mostly ends the middle at once, and
    # without completions there is nothing that could leak
    # and no learned filter: it holds back most requests inside a secret (mid-token, after digits)
    w = Wire(wrapper, env, ("--option", "adapter=none"))
    try:
        w.initialize({"telemetryLevel": level, "clientTelemetryEnabled": True, "maxTokens": 24,
                      "filterAggressiveness": "off"})
        state = w.stats_until(lambda s: s["state"] != "loading")["state"]
        assert state == "ready", state
        shown = 0
        for k, (fname, text, secret, _) in enumerate(cases()):
            uri = (tmp_path / "ws" / fname).as_uri()
            w.send({"method": "textDocument/didOpen", "params": {"textDocument": {
                "uri": uri, "languageId": "plaintext" if fname.startswith(".") else "python", "version": 1,
                "text": text}}})
            at = text.index(secret) + len(secret) // 2  # the cursor inside the secret
            line = text[:at].count("\n")
            w.send({"id": f"c{k}", "method": "textDocument/inlineCompletion", "params": {
                "textDocument": {"uri": uri}, "position": {"line": line, "character": at - text[:at].rfind("\n") - 1},
                "context": {"triggerKind": 2}}})
            items = (w.response(f"c{k}", timeout=60).get("result") or {}).get("items") or []
            if items:
                cid = items[0]["command"]["arguments"][0]
                w.send({"method": "ghostline/outcome", "params": {"id": cid, "outcome": "shown"}})
                w.send({"id": f"acc{k}", "method": "workspace/executeCommand",
                        "params": {"command": "ghostline.accepted", "arguments": [cid]}})
                w.response(f"acc{k}")
                shown += 1
        # every write asked for so far is done (the server answers in order)
        assert w.stats_until(lambda s: s["telemetry_pending"] == 0, 30)["telemetry_pending"] == 0
        during = files_bytes(root)
        w.send({"id": "bye", "method": "shutdown"})
        w.response("bye")
        w.send({"method": "exit"})
        assert w.close() == 0
    finally:
        w.proc.kill()
    return {"during": during, "after": files_bytes(root), "stderr": w.stderr(), "shown": shown,
            "trace": trace.read_text() if trace.exists() else None, "dirs": dirs, "root": root}


@pytest.mark.parametrize("level", ["off", "metrics", "training"])
def test_no_secret_leaves_the_server(tmp_path, level):
    got = session(tmp_path, level)
    secrets = [secret for _, _, secret, _ in cases()]
    canaries = {fname: canary for fname, _, _, canary in cases()}
    blobs = {**{f"during:{k}": v for k, v in got["during"].items()},
             **{f"after:{k}": v for k, v in got["after"].items()}, "stderr": got["stderr"]}
    assert got["shown"] >= len(cases()) // 2, "too few completions to say anything"
    assert not grep(blobs, secrets), "secret bytes written"
    assert not grep({"stderr": got["stderr"]}, list(canaries.values()), whole=True), "code in the log"
    sensitive = [c for f, c in canaries.items() if f.startswith(".")]
    assert not grep(blobs, sensitive, whole=True), "a sensitive file's code was stored"
    stored = b"".join(v for k, v in got["during"].items() if k.startswith("data/"))
    if level == "off":
        assert not any(k.startswith(("data/", "config/")) for k in got["after"]), sorted(got["after"])
    elif level == "metrics":
        assert stored and not grep(blobs, list(canaries.values()), whole=True), "raw code stored at metrics level"
    else:  # the grep can see code: the modules' canaries are there, at training level only
        ordinary = [c for f, c in canaries.items() if not f.startswith(".")]
        assert len({n for _, n in grep({"data": stored}, ordinary, whole=True)}) == len(ordinary)
    if got["trace"] is not None:
        families = set(re.findall(r"socket\((AF_\w+)", got["trace"]))
        assert not families & {"AF_INET", "AF_INET6", "AF_PACKET", "AF_NETLINK"}, families
