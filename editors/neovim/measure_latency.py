"""How long a Neovim 0.11 user waits for Ghostline's item: a real headless Neovim with ghostline.lua opens FILE,
and at N places opens a new line below a statement (`o`, Neovim indents it), presses <C-Space> and times the
item's arrival (polled every 150 ms). Each place is a new cursor position, so most requests evaluate their
prompt cold; "without an item" counts places where the server had nothing to suggest.

    .venv/bin/python editors/neovim/measure_latency.py [FILE] [-n 12]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", default=str(ROOT / "server" / "context.py"))
    ap.add_argument("-n", type=int, default=12)
    args = ap.parse_args()
    nvim = str(Path(sys.executable).parent / "nvim")
    tmp = Path(tempfile.mkdtemp())
    (tmp / ".git").mkdir()
    src = Path(args.file).read_text()
    target = tmp / Path(args.file).name
    target.write_text(src)
    init = tmp / "init.lua"
    init.write_text(f"vim.g.ghostline_python = {json.dumps(sys.executable)}\n"
                    f"dofile({json.dumps(str(ROOT / 'editors' / 'neovim' / 'ghostline.lua'))})\n")
    sock = str(tmp / "nvim.sock")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state"), "GHOSTLINE_DATA_DIR": str(tmp / "data"),
           "GHOSTLINE_CONFIG_DIR": str(tmp / "config")}
    proc = subprocess.Popen([nvim, "--headless", "--clean", "--listen", sock, "-u", str(init), str(target)],
                            cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def expr(e: str) -> str:
        return subprocess.run([nvim, "--server", sock, "--remote-expr", e], capture_output=True, text=True,
                              env=env).stdout

    def send(keys: str) -> None:
        subprocess.run([nvim, "--server", sock, "--remote-send", keys], env=env)

    def state() -> str | None:
        out = expr("luaeval(\"vim.json.encode((vim.lsp.get_clients({name='ghostline'})[1]"
                   ":request_sync('ghostline/stats', {}, 5000) or {}).result or {})\")")
        return json.loads(out or "{}").get("state")
    try:
        while not os.path.exists(sock):
            time.sleep(0.1)
        while expr("luaeval(\"#vim.lsp.get_clients({name='ghostline'})\")") != "1":
            time.sleep(0.2)
        while state() != "ready":
            time.sleep(0.5)
        lines = src.split("\n")
        places = [i + 1 for i, line in enumerate(lines)
                  if line.strip().startswith(("return ", "if ", "for ")) and i > 30][:args.n]
        times, items = [], []
        for line in places:
            send(f"<Esc>:call cursor({line}, 1)<CR>o")
            time.sleep(0.3)
            t0 = time.perf_counter()
            send("<C-Space>")
            item = None
            while item is None and time.perf_counter() - t0 < 30:
                got = json.loads(expr("json_encode(complete_info(['items']))") or "{}").get("items")
                item = got[0]["abbr"] if got else None
                time.sleep(0.15)  # each poll starts an nvim client: polling faster slows the server down
            times.append((time.perf_counter() - t0) * 1000)
            items.append(item)
            send("<C-e><Esc>u")
    finally:
        proc.kill()
    times.sort()
    print(f"{len(times)} places: item after P50 {statistics.median(times):.0f} ms, "
          f"P90 {times[int(0.9 * len(times)) - 1]:.0f} ms, max {times[-1]:.0f} ms; "
          f"{sum(i is None for i in items)} without an item within 30 s")
    for i in items:
        print("  ", i)
    return 0


if __name__ == "__main__":
    sys.exit(main())
