"""FIM benchmark: the server's pipeline vs a naive baseline, in the same run, on code from this machine.

    python -m training.evaluate [--n 90] [--js 45] [--seed 7] [--model NAME|PATH] [--out DIR]

The pipeline is exactly what the server runs (server.engine.Engine). The baseline is a raw FIM prompt
(prefix and suffix cut by characters) whose first generated line is the answer. Tasks alternate which
runs first, so machine noise hits both alike. Writes JSON and a PNG next to it and prints a table.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from server.context import Budget
from server.engine import Engine, Request
from server.lsp import load_runtime
from server.postprocess import early_stop
from server.settings import Settings
from training.metrics import percentiles
from training.fim_tasks import (Task, doctest_checks_hole, js_roots, list_files, make_tasks, python_roots,
                                run_doctest)

# --- config -------------------------------------------------------------------------------------
SEED = 7
N_PYTHON = 90
N_JS = 45
MAX_TOKENS = 64
BASELINE_PREFIX_CHARS = 3000
BASELINE_SUFFIX_CHARS = 1000
ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("training.evaluate")


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(len): the usual code-completion ES."""
    a, b = a.strip(), b.strip()
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1 - prev[-1] / max(len(a), len(b))


def run_pipeline(engine: Engine, task: Task, i: int) -> tuple[str, float, float]:
    """Cold latency (new file) and warm latency (the next keystroke, KV cache reused, no typing cache)."""
    uri = f"eval://{i}/{task.path}"
    req = Request(uri, task.prefix + task.suffix, len(task.prefix), task.language, path=task.path)
    t0 = time.perf_counter()
    result = engine.complete(req, Settings(maxTokens=MAX_TOKENS))
    cold = (time.perf_counter() - t0) * 1000
    engine.cache.forget(uri)
    typed = task.prefix + task.middle[:1]
    t0 = time.perf_counter()
    engine.complete(Request(uri, typed + task.suffix, len(typed), task.language, path=task.path),
                    Settings(maxTokens=MAX_TOKENS))
    return result.text, cold, (time.perf_counter() - t0) * 1000


def run_baseline(engine: Engine, task: Task) -> tuple[str, float]:
    rt = engine.runtime
    t0 = time.perf_counter()
    pre, suf = BASELINE_PREFIX_CHARS, BASELINE_SUFFIX_CHARS
    while True:  # characters are a poor proxy for tokens in dense code: halve until the prompt fits
        prompt = rt.template.render(task.prefix[-pre:], task.suffix[:suf])
        if pre < 64 or rt.count_tokens(prompt) + MAX_TOKENS <= getattr(rt, "n_ctx", 2048):
            break
        pre, suf = pre // 2, suf // 2
    gen = rt.generate(prompt, max_tokens=MAX_TOKENS, should_stop=lambda t: early_stop(t, "", "", False))
    return gen.text.split("\n", 1)[0].rstrip(), (time.perf_counter() - t0) * 1000


def score(task: Task, text: str) -> dict:
    return {"exact": float(text.strip() == task.middle.strip()), "es": edit_similarity(text, task.middle),
            "shown": float(bool(text.strip()))}


def summarize(rows: list[dict], system: str) -> dict:
    out = {}
    for kind in ("all", "single", "multi", "span"):
        sel = [r for r in rows if kind == "all" or r["kind"] == kind]
        if not sel:
            continue
        ex = [r[system]["exec"] for r in sel if r[system].get("exec") is not None]
        out[kind] = {
            "n": len(sel),
            "exact": statistics.mean(r[system]["exact"] for r in sel),
            "es": statistics.mean(r[system]["es"] for r in sel),
            "shown": statistics.mean(r[system]["shown"] for r in sel),
            "exec_pass": statistics.mean(ex) if ex else None, "exec_n": len(ex),
            "latency_ms": percentiles([r[system]["ms"] for r in sel]),
        }
    return out


def plot(rows: list[dict], summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    kinds = [k for k in ("single", "multi", "span") if k in summary["pipeline"]]
    x = range(len(kinds))
    for off, system in ((-0.2, "baseline"), (0.2, "pipeline")):
        ax1.bar([i + off for i in x], [summary[system][k]["es"] for k in kinds], width=0.4, label=system)
    ax1.set_xticks(list(x), kinds)
    ax1.set_ylabel("edit similarity")
    ax1.set_ylim(0, 1)
    ax1.legend()
    for system in ("baseline", "pipeline"):
        ax2.hist([r[system]["ms"] for r in rows], bins=30, alpha=0.6, label=system)
    ax2.set_xlabel("latency per completion (ms)")
    ax2.legend()
    fig.suptitle("Ghostline FIM benchmark: pipeline vs naive baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(summary: dict) -> str:
    lines = [f"{'kind':7s} {'system':9s} {'n':>4s} {'exact':>6s} {'ES':>6s} {'shown':>6s} {'exec':>10s} "
             f"{'P50 ms':>7s} {'P90 ms':>7s} {'P99 ms':>7s}"]
    for kind in summary["pipeline"]:
        for system in ("baseline", "pipeline"):
            s = summary[system][kind]
            ex = f"{s['exec_pass']:.2f}/{s['exec_n']}" if s["exec_pass"] is not None else "-"
            lat = s["latency_ms"]
            lines.append(f"{kind:7s} {system:9s} {s['n']:4d} {s['exact']:6.3f} {s['es']:6.3f} {s['shown']:6.2f} "
                         f"{ex:>10s} {lat['p50']:7.0f} {lat['p90']:7.0f} {lat['p99']:7.0f}")
    r = summary["ratio"]
    lines.append(f"pipeline/baseline: exact x{r['exact']:.2f}, ES x{r['es']:.2f}, "
                 f"P50 latency x{r['p50']:.2f}, P90 x{r['p90']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=N_PYTHON, help="Python tasks")
    ap.add_argument("--js", type=int, default=N_JS, help="JavaScript tasks (0 to skip)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "artifacts" / "eval")
    ap.add_argument("--prefix-tokens", type=int, default=Budget.prefix_tokens)
    ap.add_argument("--suffix-tokens", type=int, default=Budget.suffix_tokens)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    # load: tasks from code on this machine, the model
    tasks = make_tasks("python", list_files(python_roots(), ".py"), args.n, args.seed)
    if args.js:
        tasks += make_tasks("javascript", list_files(js_roots(ROOT), ".js"), args.js, args.seed)
    print(f"{len(tasks)} tasks ({sum(t.language == 'python' for t in tasks)} Python, "
          f"{sum(t.language == 'javascript' for t in tasks)} JavaScript), seed {args.seed}", file=sys.stderr)
    engine = Engine(load_runtime(args.model),
                    budget=Budget(prefix_tokens=args.prefix_tokens, suffix_tokens=args.suffix_tokens))

    # run both systems on every task, alternating which goes first
    rows = []
    for i, task in enumerate(tqdm(tasks, desc="evaluating", file=sys.stderr)):
        order = ("pipeline", "baseline") if i % 2 == 0 else ("baseline", "pipeline")
        row = {"id": task.id, "kind": task.kind, "language": task.language, "path": task.path,
               "middle": task.middle}
        for system in order:
            if system == "pipeline":
                text, ms, warm = run_pipeline(engine, task, i)
                row["pipeline_warm_ms"] = warm
            else:
                text, ms = run_baseline(engine, task)
            row[system] = {"text": text, "ms": ms, **score(task, text)}
        if doctest_checks_hole(task):
            for system in ("pipeline", "baseline"):
                row[system]["exec"] = float(bool(run_doctest(task, row[system]["text"])))
        rows.append(row)

    # evaluate: summaries and the ratio against the baseline measured in the same run
    summary = {"pipeline": summarize(rows, "pipeline"), "baseline": summarize(rows, "baseline")}
    p, b = summary["pipeline"]["all"], summary["baseline"]["all"]
    summary["pipeline_warm_latency_ms"] = percentiles([r["pipeline_warm_ms"] for r in rows])
    summary["ratio"] = {"exact": p["exact"] / max(b["exact"], 1e-9), "es": p["es"] / max(b["es"], 1e-9),
                        "p50": p["latency_ms"]["p50"] / b["latency_ms"]["p50"],
                        "p90": p["latency_ms"]["p90"] / b["latency_ms"]["p90"]}
    for lang in ("python", "javascript"):
        sel = [r for r in rows if r["language"] == lang]
        if sel:
            summary[f"by_language_{lang}"] = {s: summarize(sel, s)["all"] for s in ("pipeline", "baseline")}

    # export
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta = {"model": engine.runtime.model_id, "seed": args.seed, "n_tasks": len(tasks), "max_tokens": MAX_TOKENS,
            "budget": asdict(engine.budget)}
    out_json = args.out / f"eval-{stamp}.json"
    out_json.write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1))
    plot(rows, summary, args.out / f"eval-{stamp}.png")
    print(table(summary))
    w = summary["pipeline_warm_latency_ms"]
    print(f"pipeline next-keystroke latency (KV cache reused): P50 {w['p50']:.0f} ms, P90 {w['p90']:.0f} ms, "
          f"P99 {w['p99']:.0f} ms")
    for lang in ("python", "javascript"):
        if f"by_language_{lang}" in summary:
            s = summary[f"by_language_{lang}"]
            print(f"{lang}: pipeline ES {s['pipeline']['es']:.3f} exact {s['pipeline']['exact']:.3f} | "
                  f"baseline ES {s['baseline']['es']:.3f} exact {s['baseline']['exact']:.3f}")
    print(f"wrote {out_json} and {out_json.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
