"""Typing-replay simulator: a simulated user types real code through the real LSP server.

    python -m training.simulate [FILES_OR_DIRS ...] [--split test] [--limit 300] [--seed 1] [--wait]

Each episode opens a file with one function body removed and types the body back character by character
at a seeded human pace (≈4–5 keys/s, pauses at word and line ends; Enter auto-indents as editors do).
Requests go through `python -m server` over stdio exactly as from VS Code: a debounce, the latest request
wins, the typing-through cache. Time is virtual for the typist but real for the server: a suggestion that
arrives after the next keystroke would have happened is never seen. The user accepts a suggestion that
matches what they were about to type (whole, or a word-level prefix as a partial accept) and otherwise
types on. Outcomes go through the accept command and `ghostline/outcome`, so a run with telemetry on
leaves a real telemetry database. `--wait` always waits for the server (deterministic for a seed).
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from tqdm import tqdm

from server.names import LANGUAGE_IDS
from training.corpus import LANG_SUFFIX, split_dir
from training.fim_tasks import js_blocks
from training.metrics import percentiles

# --- config -------------------------------------------------------------------------------------
SEED = 1
DEBOUNCE_S = 0.15  # as the extension's default
KEY_MEAN_S = 0.17  # mean gap inside a word; with pauses the overall rate is ≈4.5 keys/s
WORD_PAUSE_S = 0.12
LINE_PAUSE_S = 0.9
MAX_BODY_LINES = 25
ROOT = Path(__file__).resolve().parent.parent
WORD = re.compile(r"\w+|[^\w\s]+|\s+")

SIMULATED = ("python", "javascript")  # the languages whose function bodies function_bodies() finds


@dataclass
class Episode:
    path: Path
    language: str
    before: str  # text before the removed body, cursor at its first line's indentation
    body: str  # what the user will type
    after: str  # text after the body


EPISODE_COUNTERS = ("keystrokes", "chars_typed", "chars_accepted", "requests", "shown", "accepted", "partial",
                    "late")


@dataclass
class Stats:
    keystrokes: int = 0
    chars_typed: int = 0
    chars_accepted: int = 0
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    partial: int = 0
    ignored: int = 0
    late: int = 0  # answered after the user had typed on: never seen
    latencies_ms: list = field(default_factory=list)  # time to ghost text, for seen suggestions
    by_language: dict = field(default_factory=dict)  # lang -> [shown, accepted(+partial)]
    by_position: dict = field(default_factory=dict)  # body line index bucket -> [shown, accepted]
    virtual_s: float = 0.0
    per_episode: list = field(default_factory=list)  # the counters above, per episode (paired comparisons)

    def counters(self) -> dict:
        return {k: getattr(self, k) for k in EPISODE_COUNTERS}


def function_bodies(text: str, language: str) -> list[tuple[int, int]]:
    """(first body line, last body line), 0-based, of functions worth retyping."""
    lines = text.split("\n")
    if language == "python":
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            return []
        out = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                body = node.body
                if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                    body = body[1:]
                if not body or body[0].lineno - 1 <= node.lineno - 1:
                    continue
                first, last = body[0].lineno - 1, (body[-1].end_lineno or body[-1].lineno) - 1
                if 2 <= last - first + 1 <= MAX_BODY_LINES and node.col_offset in (0, 4):
                    out.append((first, last))
        return out
    return [(a, b) for _, a, b in js_blocks(lines, MAX_BODY_LINES) if b - a + 1 >= 2]


def episodes_for(path: Path, rng: random.Random, per_file: int) -> list[Episode]:
    language = LANGUAGE_IDS.get(path.suffix)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if language not in SIMULATED or "\t" in text or "\r" in text:
        return []
    bodies = function_bodies(text, language)
    rng.shuffle(bodies)
    lines = text.split("\n")
    out = []
    for first, last in sorted(bodies[:per_file]):
        indent = lines[first][:len(lines[first]) - len(lines[first].lstrip())]
        before = "\n".join(lines[:first]) + "\n" + indent
        body = "\n".join(lines[first:last + 1])[len(indent):]
        after = "\n" + "\n".join(lines[last + 1:])
        if body.strip() and len(body) < 3000:
            out.append(Episode(path, language, before, body, after))
    return out


def keystrokes(body: str) -> list[str]:
    """Split what the user types into keystrokes; Enter brings the next line's indentation with it."""
    keys, i = [], 0
    while i < len(body):
        if body[i] == "\n":
            j = i + 1
            while j < len(body) and body[j] in " \t":
                j += 1
            keys.append(body[i:j])
            i = j
        else:
            keys.append(body[i])
            i += 1
    return keys


def gap_after(key: str, rng: random.Random) -> float:
    """Seconds until the next keystroke: log-normal within words, longer at word and line ends."""
    g = rng.lognormvariate(math.log(KEY_MEAN_S) - 0.18, 0.6)
    if key.startswith("\n"):
        g += rng.expovariate(1 / LINE_PAUSE_S)
    elif not key.isalnum() and key != "_":
        g += rng.expovariate(1 / WORD_PAUSE_S)
    return g


def acceptable_prefix(suggestion: str, upcoming: str) -> int:
    """Length of the longest word-level prefix of the suggestion that matches what comes next."""
    n = len(suggestion) if upcoming.startswith(suggestion) else 0
    if not n:
        for tok in WORD.findall(suggestion):
            if not upcoming.startswith(suggestion[:n + len(tok)]):
                break
            n += len(tok)
    return n if suggestion[:n].strip() else 0  # accepting only whitespace saves nothing


def position_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)


class Simulator:
    def __init__(self, client: LanguageClient, rng: random.Random, wait: bool, stats: Stats,
                 real_time: bool = False):
        self.client, self.rng, self.wait, self.stats = client, rng, wait, stats
        self.real_time = real_time  # sleep every gap, so the server sees the typist's real rhythm
        self.version = 0
        self.request_id = 0

    async def pause(self, seconds: float) -> None:
        if self.real_time and seconds > 0:
            await asyncio.sleep(seconds)

    def change(self, uri: str, at: types.Position, text: str) -> None:
        self.version += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=self.version),
            [types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)]))

    async def request(self, uri: str, at: types.Position, budget_s: float):
        """Ask for ghost text; None if it did not arrive within budget_s: the user typed on, and the
        request is cancelled with $/cancelRequest as VS Code does."""
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            text_document=types.TextDocumentIdentifier(uri), position=at)
        self.stats.requests += 1
        self.request_id += 1
        msg_id = f"sim-{self.request_id}"
        t0 = time.perf_counter()
        fut = self.client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params,
                                                      msg_id=msg_id)
        try:
            result = await (fut if self.wait else asyncio.wait_for(asyncio.shield(fut), budget_s))
        except TimeoutError:
            self.stats.late += 1
            self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # the answer is an error now
            return None, 0.0
        return result, (time.perf_counter() - t0) * 1000

    def outcome(self, cid: str, kind: str, **extra) -> None:
        self.client.protocol.notify("ghostline/outcome", {"id": cid, "outcome": kind, **extra})

    async def run(self, ep: Episode, index: int) -> None:
        s = self.stats
        uri = ep.path.resolve().as_uri() + f"#sim{index}"
        text = ep.before
        self.version += 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
            uri=uri, language_id=ep.language, version=self.version, text=ep.before + ep.after)))
        lang = s.by_language.setdefault(ep.language, [0, 0])
        typed = 0  # characters of the body already in the document
        gap = LINE_PAUSE_S  # the user just arrived at the empty body
        keys = keystrokes(ep.body)
        ki = 0
        while typed < len(ep.body):
            if gap > DEBOUNCE_S:  # the debounce fired before the next keystroke: a request goes out
                s.virtual_s += DEBOUNCE_S
                await self.pause(DEBOUNCE_S)
                result, ms = await self.request(uri, position_of(text), gap - DEBOUNCE_S)
                item = result.items[0] if result and result.items else None
                if item is not None and item.insert_text:
                    s.shown += 1
                    lang[0] += 1
                    s.latencies_ms.append(ms)
                    bucket = s.by_position.setdefault(min(ep.body[:typed].count("\n"), 5), [0, 0])
                    bucket[0] += 1
                    cid = item.command.arguments[0]
                    self.outcome(cid, "shown")
                    n = acceptable_prefix(item.insert_text, ep.body[typed:])
                    if n:
                        accepted = item.insert_text[:n]
                        self.change(uri, position_of(text), accepted)
                        text += accepted
                        typed += n
                        s.chars_accepted += n
                        lang[1] += 1
                        bucket[1] += 1
                        if n == len(item.insert_text):
                            s.accepted += 1
                            await self.client.workspace_execute_command_async(types.ExecuteCommandParams(
                                command="ghostline.accepted", arguments=[cid]))
                        else:
                            s.partial += 1
                            self.outcome(cid, "partial", acceptedLength=n)
                        # skip the keystrokes the accept covered
                        ki, pos = 0, 0
                        while pos < typed and ki < len(keys):
                            pos += len(keys[ki])
                            ki += 1
                        if pos > typed:  # accepted mid-keystroke (inside an Enter+indent): type the rest
                            keys.insert(ki, ep.body[typed:pos])
                        gap = self.rng.uniform(0.3, 0.8)  # reading and pressing Tab
                        s.virtual_s += gap
                        await self.pause(gap)
                        continue
                    self.outcome(cid, "ignored", reason="typed_over")
                    s.ignored += 1
                s.virtual_s += gap - DEBOUNCE_S
                if ms:  # answered before the next keystroke: the rest of the gap passes
                    await self.pause(gap - DEBOUNCE_S - ms / 1000)
            else:
                s.virtual_s += gap
                await self.pause(gap)
            if ki >= len(keys):
                break
            key = keys[ki]
            ki += 1
            self.change(uri, position_of(text), key)
            text += key
            typed += len(key)
            s.keystrokes += 1
            s.chars_typed += len(key)
            gap = gap_after(key, self.rng)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))


def proc_status_mb(pid: int, key: str) -> float | None:
    """A memory figure of a process from /proc (VmHWM: peak RSS, VmRSS: RSS now), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    return proc_status_mb(pid, "VmHWM")


def collect_files(paths: list[str], split: str) -> list[Path]:
    roots = [Path(p) for p in paths] or [split_dir(split)]
    files = []
    for r in roots:
        if r.is_file():
            files.append(r)
        else:
            files += sorted(p for suf in LANG_SUFFIX.values() for p in r.rglob(f"*{suf}"))
    return files


async def drain(stream, log_path: Path) -> None:
    """The server logs to stderr; an unread pipe would fill up and block it."""
    with open(log_path, "ab") as f:
        while line := await stream.readline():
            f.write(line)


async def simulate(files: list[Path], *, limit: int, seed: int, wait: bool, per_file: int,
                   server_env: dict, settings: dict, server_log: Path, options: tuple[str, ...] = (),
                   episodes_max: int | None = None, real_time: bool = False) -> dict:
    """One run against a fresh server; `options`: NAME=VALUE pipeline switches (python -m server --option).
    Which bodies are retyped depends only on the seed, and each episode types with its own seeded generator:
    runs of one seed retype the same bodies the same way until their suggestions differ. It stops after
    `limit` suggestions shown, or after exactly `episodes_max` episodes (a run compared with another)."""
    rng = random.Random(seed)
    order = list(files)
    rng.shuffle(order)
    stats = Stats()
    client = LanguageClient("ghostline-simulator", "0.1")
    client.feature(types.WINDOW_SHOW_MESSAGE)(lambda p: print(f"[server] {p.message}", file=sys.stderr))
    client.feature(types.WINDOW_LOG_MESSAGE)(lambda p: None)
    client.feature("ghostline/status")(lambda p: None)
    await client.start_io(sys.executable, "-m", "server", *(f"--option={o}" for o in options),
                          env={**os.environ, **server_env})
    server_pid = client._server.pid
    drainer = asyncio.create_task(drain(client._server.stderr, server_log))
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), process_id=os.getpid(), initialization_options=settings))
    client.initialized(types.InitializedParams())
    sim = Simulator(client, rng, wait, stats, real_time)
    t0 = time.perf_counter()
    episodes = 0
    bar = tqdm(total=limit, desc="suggestions shown", file=sys.stderr)
    def more() -> bool:
        return episodes < episodes_max if episodes_max is not None else stats.shown < limit
    for path in order:
        if not more():
            break
        for ep in episodes_for(path, rng, per_file):
            if not more():
                break
            before, counts = stats.shown, stats.counters()
            sim.rng = random.Random(f"{seed}:{episodes}")
            await sim.run(ep, episodes)
            stats.per_episode.append({k: v - counts[k] for k, v in stats.counters().items()})
            episodes += 1
            bar.update(stats.shown - before)
    bar.close()
    wall = time.perf_counter() - t0
    server_stats = await client.protocol.send_request_async("ghostline/stats", {})
    server_stats = server_stats._asdict() if hasattr(server_stats, "_asdict") else dict(server_stats)
    rss = peak_rss_mb(server_pid)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    drainer.cancel()
    model_calls = server_stats["model_calls"]
    # a model call is wasted when none of its answers was shown: not directly, not through a request that
    # typed along with it (in-flight reuse) or typed through its ghost text (the typing-through cache)
    wasted = max(0, model_calls - server_stats["model_calls_seen"])
    return {
        "episodes": episodes,
        "keystrokes": stats.keystrokes,
        "typing_keys_per_s": stats.keystrokes / stats.virtual_s if stats.virtual_s else None,
        "requests": stats.requests,
        "shown": stats.shown,
        "shown_per_100_keystrokes": 100 * stats.shown / max(stats.keystrokes, 1),
        "accept_rate": (stats.accepted + stats.partial) / max(stats.shown, 1),
        "full_accept_rate": stats.accepted / max(stats.shown, 1),
        "partial_accept_rate": stats.partial / max(stats.shown, 1),
        "chars_accepted_per_char_typed": stats.chars_accepted / max(stats.chars_typed, 1),
        "keystrokes_saved_share": stats.chars_accepted / max(stats.chars_accepted + stats.chars_typed, 1),
        "late_answers": stats.late,
        "model_calls": model_calls,
        "wasted_model_calls": wasted,
        "wasted_model_call_share": wasted / max(model_calls, 1),
        "time_to_ghost_text_ms": percentiles(stats.latencies_ms),
        "model_calls_per_s": model_calls / wall,
        "prompt_tokens_evaluated_per_model_call": server_stats.get("prompt_tokens_evaluated", 0) / max(model_calls, 1),
        "wall_s": wall,
        "virtual_s": stats.virtual_s,
        "speedup_vs_real_time": stats.virtual_s / wall if wall else None,
        "peak_server_rss_mb": rss,
        "server": server_stats,
        "by_language": {k: {"shown": v[0], "accept_rate": v[1] / max(v[0], 1)} for k, v in stats.by_language.items()},
        "by_body_line": {str(k): {"shown": v[0], "accept_rate": v[1] / max(v[0], 1)}
                         for k, v in sorted(stats.by_position.items())},
        "latencies_ms": stats.latencies_ms,
        "per_episode": stats.per_episode,
    }


def report_png(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    lat = report["time_to_ghost_text_ms"]
    axes[0].hist(report["latencies_ms"], bins=40)
    axes[0].set_xlabel("time to ghost text at the client (ms)")
    axes[0].set_title("seen suggestions: " + ", ".join(
        f"{k.upper()} {v:.0f}" for k, v in lat.items() if v is not None))
    n = report["requests"]
    late, shown = report["late_answers"], report["shown"]
    acc = round(report["full_accept_rate"] * shown)
    part = round(report["partial_accept_rate"] * shown)
    parts = {"late (never seen)": late, "empty": n - late - shown, "ignored": shown - acc - part,
             "partial": part, "accepted": acc}
    axes[1].bar_label(axes[1].barh(list(parts), [max(v, 0.5) for v in parts.values()]), list(parts.values()))
    axes[1].set_xscale("log")
    axes[1].set_title(f"what happened to {n} requests (log scale)")
    for ax, key, title, label in ((axes[2], "by_language", "accept rate by language", str),
                                  (axes[3], "by_body_line", "accept rate by line of the function body",
                                   lambda k: f"line {int(k) + 1}" + ("+" if k == "5" else ""))):
        data = report[key]
        bars = ax.bar([label(k) for k in data], [v["accept_rate"] for v in data.values()])
        ax.bar_label(bars, [f"n={v['shown']}" for v in data.values()])
        ax.set_title(title)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def setting_value(text: str):
    """A setting's value from the command line: JSON when it parses (64, true), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.simulate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", help="files or folders (default: the corpus split)")
    ap.add_argument("--split", default="test", choices=("train", "validation", "test"))
    ap.add_argument("--limit", type=int, default=300, help="stop after this many suggestions shown")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--per-file", type=int, default=2, help="function bodies retyped per file")
    ap.add_argument("--wait", action="store_true", help="always wait for the server (deterministic)")
    ap.add_argument("--real-time", action="store_true",
                    help="type in real time (every gap slept), so levers that read the clock can be judged; "
                         "about 2.4 times slower")
    ap.add_argument("--telemetry", default="training", choices=("off", "metrics", "training"))
    ap.add_argument("--data-dir", type=Path, help="where the server keeps telemetry (default: next to the report)")
    ap.add_argument("--model", default="")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a user setting (docs/protocol.md, e.g. filterAggressiveness=high) for every run")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a pipeline switch for the server (python -m server --option; repeatable)")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=VALUE[,NAME=VALUE]",
                    help="also run with these switches on top of --option, same seed and files, and write a "
                         "table against the run without them (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "artifacts" / "simulate")
    args = ap.parse_args(argv)
    if args.wait and args.real_time:
        ap.error("--wait and --real-time exclude each other: one waits for the server, the other for no one")

    files = collect_files(args.paths, args.split)
    if not files:
        print("error: no source files found", file=sys.stderr)
        return 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"telemetryLevel": args.telemetry, "clientTelemetryEnabled": True, "model": args.model,
                **{k: setting_value(v) for k, v in (o.partition("=")[::2] for o in args.setting)}}
    runs = {"baseline": tuple(args.option)}
    runs.update({spec: (*args.option, *spec.split(",")) for spec in args.compare})
    reports: dict[str, dict] = {}
    for i, (label, options) in enumerate(runs.items()):
        episodes_max = reports["baseline"]["episodes"] if reports else None  # paired with the baseline
        tag = stamp if not args.compare else f"{stamp}-{i}"
        data_dir = args.data_dir or args.out / f"telemetry-{tag}"
        if args.compare and args.data_dir:
            data_dir = args.data_dir / str(i)
        report = asyncio.run(simulate(files, limit=args.limit, seed=args.seed, wait=args.wait,
                                      per_file=args.per_file, server_env={"GHOSTLINE_DATA_DIR": str(data_dir),
                                                                          "GHOSTLINE_CONFIG_DIR": f"{data_dir}-key"},
                                      settings=settings, server_log=args.out / f"server-{tag}.log", options=options,
                                      episodes_max=episodes_max, real_time=args.real_time))
        report["meta"] = {"seed": args.seed, "split": args.split, "files": len(files), "wait": args.wait,
                          "telemetry": args.telemetry, "data_dir": str(data_dir), "options": list(options),
                          "settings": list(args.setting), "real_time": args.real_time}
        out = args.out / f"simulate-{tag}.json"
        out.write_text(json.dumps(report, indent=1))
        report_png(report, out.with_suffix(".png"))
        show = {k: v for k, v in report.items() if k not in ("latencies_ms", "server", "by_body_line", "per_episode")}
        print(json.dumps(show, indent=1, default=lambda x: round(x, 3) if isinstance(x, float) else x))
        print(f"wrote {out} and {out.with_suffix('.png')}")
        reports[label] = report
    if args.compare:
        table = compare_table(reports)
        (args.out / f"compare-{stamp}.md").write_text(table + "\n")
        print(table)
        print(f"wrote {args.out / f'compare-{stamp}.md'}")
    return 0


# (column, how to read it from a report, ratio against the baseline?)
COLUMNS = (
    ("shown / 100 keys", lambda r: r["shown_per_100_keystrokes"], True),
    ("accept rate", lambda r: r["accept_rate"], True),
    ("chars accepted / typed", lambda r: r["chars_accepted_per_char_typed"], True),
    ("unseen answers", lambda r: r["late_answers"] / max(r["requests"], 1), False),
    ("wasted calls", lambda r: r["wasted_model_call_share"], False),
    ("model calls", lambda r: r["model_calls"], False),
    ("prompt tokens evaluated / call", lambda r: r["prompt_tokens_evaluated_per_model_call"], False),
    ("ghost text P50 / P90 / P99 ms", lambda r: "/".join(
        "-" if v is None else f"{v:.0f}" for v in r["time_to_ghost_text_ms"].values()), False),
    ("peak RSS MB", lambda r: r["peak_server_rss_mb"], False),
)


# ratio metrics over episodes: (column, numerator counters, denominator counters)
PAIRED = (("shown / 100 keys", ("shown",), ("keystrokes",)),
          ("accept rate", ("accepted", "partial"), ("shown",)),
          ("chars accepted / typed", ("chars_accepted",), ("chars_typed",)))


def ratio_interval(base: list[dict], other: list[dict], num: tuple[str, ...], den: tuple[str, ...],
                   n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """other's metric / base's metric (each a ratio of sums over episodes), with a paired bootstrap 95%
    interval over episodes (the runs retyped the same bodies)."""
    def metric(eps, idx):
        top = sum(eps[i][k] for i in idx for k in num)
        bottom = sum(eps[i][k] for i in idx for k in den)
        return top / bottom if bottom else 0.0

    def ratio(idx):
        b = metric(base, idx)
        return metric(other, idx) / b if b else float("nan")
    rng = random.Random(seed)
    m = len(base)
    draws = sorted(r for r in (ratio([rng.randrange(m) for _ in range(m)]) for _ in range(n)) if r == r)
    if not draws:
        return float("nan"), float("nan"), float("nan")
    return ratio(range(m)), draws[int(0.025 * len(draws))], draws[int(0.975 * len(draws)) - 1]


def compare_table(reports: dict[str, dict]) -> str:
    """Markdown: one row per run; the first is the baseline, the others also show ratios against it, and
    below, the paired 95% intervals of those ratios over episodes."""
    base = next(iter(reports.values()))
    lines = ["| run | " + " | ".join(c for c, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, r in reports.items():
        cells = []
        for _, get, ratio in COLUMNS:
            v, b = get(r), get(base)
            if isinstance(v, str) or v is None:
                cells.append(v or "-")
                continue
            cell = f"{v:.3f}" if isinstance(v, float) and v < 10 else f"{v:.0f}"
            if ratio and r is not base and b:
                cell += f" (×{v / b:.2f})"
            cells.append(cell)
        lines.append(f"| {label if r is not base else 'baseline ' + ' '.join(r['meta']['options'])} | "
                     + " | ".join(cells) + " |")
    lines += ["", "| run vs baseline (paired over episodes) | " + " | ".join(f"{c} ×" for c, _, _ in PAIRED) + " |",
              "|---" * (len(PAIRED) + 1) + "|"]
    for label, r in reports.items():
        if r is base or len(r["per_episode"]) != len(base["per_episode"]):
            continue
        cells = []
        for _, num, den in PAIRED:
            mid, lo, hi = ratio_interval(base["per_episode"], r["per_episode"], num, den)
            cells.append(f"{'**' if lo > 1 or hi < 1 else ''}{mid:.2f} [{lo:.2f}, {hi:.2f}]"
                         f"{'**' if lo > 1 or hi < 1 else ''}")
        lines.append(f"| {label} ({len(base['per_episode'])} episodes) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
