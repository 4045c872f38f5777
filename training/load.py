"""Load benchmark: a fast typist against the real server, to show that nothing grows without bound.

    python -m training.load [--rate 10] [--seconds 600]

Types corpus code into `python -m server` over stdio at a fixed rate (default 10 keystrokes a second, for
10 minutes). Every keystroke is a didChange and an inline completion request; the previous request, if
still open, is cancelled with $/cancelRequest as VS Code does. Every few seconds it samples the server's
resident memory and counters. Reports RSS after warm-up vs at the end, the largest number of requests in
flight, and latency percentiles of the answers; writes JSON and a PNG to artifacts/load/.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from tqdm import tqdm

from training.corpus import split_dir
from training.metrics import percentiles
from training.simulate import drain, proc_status_mb

# --- config -------------------------------------------------------------------------------------
RATE = 10.0  # keystrokes a second
SECONDS = 600
WARMUP_S = 30  # RSS is compared from here on: the model and its buffers are allocated by then
SAMPLE_S = 5
ROOT = Path(__file__).resolve().parent.parent


def source_text(limit_chars: int) -> str:
    """Python from the corpus test split, enough to type for the whole run."""
    out, size = [], 0
    for f in sorted((split_dir("test") / "python").rglob("*.py")):
        text = f.read_text(encoding="utf-8", errors="replace")
        out.append(text)
        size += len(text)
        if size >= limit_chars:
            break
    return "\n".join(out)[:limit_chars]


async def run(rate: float, seconds: float, out: Path) -> dict:
    client = LanguageClient("ghostline-load", "0.1")
    for method in (types.WINDOW_SHOW_MESSAGE, types.WINDOW_LOG_MESSAGE, "ghostline/status"):
        client.feature(method)(lambda p: None)
    await client.start_io(sys.executable, "-m", "server", env={**os.environ})
    pid = client._server.pid
    drainer = asyncio.create_task(drain(client._server.stderr, out / "server.log"))
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                         process_id=os.getpid()))
    client.initialized(types.InitializedParams())
    while (await client.protocol.send_request_async("ghostline/stats", {})).state == "loading":
        await asyncio.sleep(0.5)

    uri = "file:///load/typed.py"
    text = source_text(int(rate * seconds) + 1000)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text="")))
    line = col = 0
    latencies: list[float] = []
    samples: list[dict] = []
    in_flight: set[asyncio.Future] = set()
    max_in_flight = answered = cancelled = 0
    t0 = time.perf_counter()
    next_sample = 0.0
    bar = tqdm(total=int(rate * seconds), desc="keystrokes", file=sys.stderr)
    for i, ch in enumerate(text[:int(rate * seconds)]):
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        pos = types.Position(line, col)
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=i + 2),
            [types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=ch)]))
        line, col = (line + 1, 0) if ch == "\n" else (line, col + len(ch.encode("utf-16-le")) // 2)
        for fut in list(in_flight):  # VS Code cancels what the user typed past
            fut.cancel()
            cancelled += 1
        fut = client.text_document_inline_completion_async(types.InlineCompletionParams(
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, col)))
        fut = asyncio.ensure_future(fut)
        sent = time.perf_counter()

        def done(f: asyncio.Future, sent: float = sent) -> None:
            nonlocal answered
            in_flight.discard(f)
            if not f.cancelled() and f.exception() is None:
                answered += 1
                latencies.append((time.perf_counter() - sent) * 1000)
        fut.add_done_callback(done)
        in_flight.add(fut)
        max_in_flight = max(max_in_flight, len(in_flight))
        now = time.perf_counter() - t0
        if now >= next_sample:
            stats = await client.protocol.send_request_async("ghostline/stats", {})
            samples.append({"t": round(now, 1), "rss_mb": proc_status_mb(pid, "VmRSS"), "requests": stats.requests,
                            "model_calls": stats.model_calls, "superseded": stats.superseded})
            next_sample += SAMPLE_S
        bar.update(1)
    bar.close()
    await asyncio.sleep(2)
    samples.append({"t": round(time.perf_counter() - t0, 1), "rss_mb": proc_status_mb(pid, "VmRSS")})
    await client.shutdown_async(None)
    client.exit(None)
    drainer.cancel()

    warm = [s["rss_mb"] for s in samples if s["t"] >= WARMUP_S and s["rss_mb"]]
    return {"rate": rate, "seconds": seconds, "keystrokes": int(rate * seconds), "answered": answered,
            "cancelled_by_client": cancelled, "max_in_flight": max_in_flight,
            "latency_ms": percentiles(latencies),
            "rss_mb": {"after_warmup": warm[0] if warm else None, "end": warm[-1] if warm else None,
                       "max": max(warm) if warm else None},
            "samples": samples}


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = [x for x in report["samples"] if x.get("rss_mb")]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([x["t"] for x in s], [x["rss_mb"] for x in s])
    ax.set_xlabel("seconds")
    ax.set_ylabel("server RSS (MB)")
    ax.set_title(f"{report['rate']:g} keystrokes/s: latency P50 {report['latency_ms']['p50'] or 0:.0f} ms")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=RATE, help="keystrokes a second")
    ap.add_argument("--seconds", type=float, default=SECONDS)
    ap.add_argument("--out", type=Path, default=ROOT / "artifacts" / "load")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # pygls's client logs a traceback whenever a response arrives for a request it has already cancelled
    # (as this typist does on every keystroke): expected here, and it buried the progress bar.
    logging.getLogger("pygls.io_").setLevel(logging.CRITICAL)
    report = asyncio.run(run(args.rate, args.seconds, args.out))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"load-{stamp}.json"
    path.write_text(json.dumps(report, indent=1))
    try:
        plot(report, path.with_suffix(".png"))
    except ImportError:
        pass
    summary = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
