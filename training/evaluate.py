"""FIM benchmark: the server's pipeline vs raw FIM calls, in the same run, on code from this machine.

    python -m training.evaluate                      # full: 350 Python, 250 JavaScript, up to 100 TypeScript
    python -m training.evaluate --quick              # ~100 tasks, for iteration
    python -m training.evaluate --ablate path_header=none --ablate block=false   # extra pipeline variants

Tasks come from the corpus *test* split (training.corpus), one editor state each (training.fim_tasks.KINDS).
Every system answers every task cold (KV cache cleared, greedy), so a run is reproducible:
- pipeline: exactly what a fresh install serves (server.engine.Engine with the shipped Options, on the model
  with the adapter shipped for it, if any, baked into its weights once `server.models pull` has; never one the
  user promoted), with up to two other files of the task's folder open beside it (the source of snippets);
- raw: a raw FIM prompt (as much of the prefix and suffix as fits n_ctx) to the model file alone (no
  adapter), first generated line;
- raw_block (block tasks only): the raw call run to end-of-text (128 tokens), cut where it starts
  repeating the suffix;
- each --ablate NAME=VALUE: the pipeline with one Options switch flipped;
- each --adapter NAME: the pipeline on the model with that LoRA adapter (training.finetune) applied;
- --remote URL: the pipeline with a serving engine generating (server.remote; not cold: the engine keeps
  its own cache).
Scores: exact, edit similarity, first-line exact, the file still parses after accepting (Python `ast`,
tree-sitter for JavaScript/TypeScript), doctests where they exercise the hole, latency and tokens
evaluated; for the pipeline's systems also the share of generations that ended with end-of-text (not
cut by a stop rule or the token budget) and the characters generated per answer. Differences against the raw
call come with a paired bootstrap 95% interval. Rows are appended
to a JSONL file as they finish, so an interrupted run resumes where it stopped; a JSON summary and a PNG
are written at the end.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rapidfuzz.distance import Levenshtein
from tqdm import tqdm

from server.editor_state import EditorState, editor_state
from server.engine import Engine, Request
from server.options import Options
from server.postprocess import decide_multiline, finish, one_line_wanted, prefer_one_line
from server.remote import RemoteRuntime
from server.runtime import SHIPPED_ADAPTER, load_runtime
from server.settings import Settings
from server.syntax import parses
from training.corpus import LANG_SUFFIX, split_dir
from training.fim_tasks import KINDS, Task, doctest_checks_hole, list_files, make_tasks, run_doctest
from training.metrics import percentiles

# --- config -------------------------------------------------------------------------------------
SEED = 7
VARIANTS = ("ablate:", "adapter:", "remote:")  # systems compared with the pipeline (not with the raw call)
N = {"python": 350, "javascript": 250, "typescript": 100}  # TypeScript: what the split holds (12 tasks today)
QUICK = {"python": 50, "javascript": 35, "typescript": 15}
MAX_TOKENS = Settings().maxTokens  # the server's default
RAW_BLOCK_TOKENS = 128
RAW_BATCH = 512  # the raw calls evaluate their prompt as llama.cpp's server would: in n_batch chunks
BOOTSTRAP = 2000
ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = "/workspace"  # tasks are opened as files of this folder, so prompts name them relatively

log = logging.getLogger("training.evaluate")


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(len), whitespace at either end ignored: the usual code-completion ES."""
    return Levenshtein.normalized_similarity(a.strip(), b.strip())


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.split("\n") if ln.strip()), "")


# --- the systems ----------------------------------------------------------------------------------
def open_siblings(task: Task, base: Path, k: int = 2) -> tuple[tuple[str, str], ...]:
    """The files a user would have open beside this one: up to k others of its folder (by name)."""
    here = base / task.path
    out = []
    for f in sorted(here.parent.glob(f"*{here.suffix}")):
        if f != here and f.stat().st_size < 50_000 and len(out) < k:
            out.append((f"{WORKSPACE}/{f.relative_to(base)}", f.read_text(encoding="utf-8", errors="replace")))
    return tuple(out)


def run_pipeline(engine: Engine, task: Task, others: tuple[tuple[str, str], ...] = ()) -> dict:
    engine.runtime.reset()
    engine.cache.forget(task.id)
    req = Request(task.id, task.prefix + task.suffix, len(task.prefix), task.language,
                  path=f"{WORKSPACE}/{task.path}", root=WORKSPACE, others=others)
    t0 = time.perf_counter()
    r = engine.complete(req, Settings(maxTokens=MAX_TOKENS))
    ms = (time.perf_counter() - t0) * 1000
    return {"text": r.text, "ms": ms, "tokens": r.prompt_tokens - r.reused_tokens,
            "timings": {k: round(v, 1) for k, v in r.timings.items()}, "raw": r.raw, "multiline": r.multiline,
            "line_logprobs": [round(x, 3) for x in r.line_logprobs],
            "line_start_logprobs": [round(x, 3) for x in r.line_start_logprobs], "stop_reason": r.stop_reason,
            "branched": r.branched, "generated": r.tokens_generated,
            **({"one_line": r.one_line} if r.one_line else {})}


def raw_prompt(rt, task: Task, max_tokens: int) -> str:
    """A raw FIM prompt with as much of the prefix and suffix as fits n_ctx (cut by lines of characters,
    halved until it fits)."""
    pre, suf = 3000, 1000
    while True:
        prompt = rt.template.render(task.prefix[-pre:], task.suffix[:suf])
        if pre < 64 or rt.count_tokens(prompt) + max_tokens <= getattr(rt, "n_ctx", 2048):
            return prompt
        pre, suf = pre * 2 // 3, suf * 2 // 3


def cut_at_suffix_repeat(text: str, suffix: str) -> tuple[str, bool]:
    """The text up to the first line after its first that repeats the suffix's next line, and whether
    there was one (then generating further cannot change the answer)."""
    nxt = next((ln.strip() for ln in suffix.split("\n") if ln.strip()), None)
    lines = text.split("\n")
    for i, line in enumerate(lines[1:-1], 1):  # whole lines only: the last one may still grow
        if nxt is not None and line.strip() == nxt:
            return "\n".join(lines[:i]).rstrip(), True
    return text.rstrip(), False


def run_raw(rt, task: Task) -> dict[str, dict]:
    """The raw call: first generated line. At the start of a line with code it inserts that line whole
    (with its newline), as a raw FIM client pasting the middle would. On block tasks the same greedy
    generation runs on to end-of-text for `raw_block` (cut where it repeats the suffix); its first line is
    what the raw call alone would have returned, timed when that line ended."""
    rt.reset()
    block = task.kind == "block"
    line_done: list[float] = []

    def should_stop(text: str, *_) -> bool:
        if "\n" in text and not line_done:
            line_done.append(time.perf_counter())
        return bool(line_done) and (not block or cut_at_suffix_repeat(text, task.suffix)[1])

    t0 = time.perf_counter()
    gen = rt.generate(raw_prompt(rt, task, RAW_BLOCK_TOKENS), max_tokens=RAW_BLOCK_TOKENS if block else MAX_TOKENS,
                      should_stop=should_stop, chunk=RAW_BATCH)
    t_end = time.perf_counter()
    text = gen.text.split("\n", 1)[0].rstrip()
    if editor_state(task.prefix, task.suffix) is EditorState.LINE_START and text.strip():
        text += "\n" + task.prefix.rsplit("\n", 1)[-1]
    out = {"raw": {"text": text, "ms": ((line_done or [t_end])[0] - t0) * 1000, "tokens": gen.n_prompt}}
    if block:
        out["raw_block"] = {"text": cut_at_suffix_repeat(gen.text + "\n", task.suffix)[0], "ms": (t_end - t0) * 1000,
                            "tokens": gen.n_prompt}
    return out


# Switches whose effect can be computed from the shipped pipeline's own generation, because with them the
# output is cut no later than the shipped rules cut it: the generation already holds every token they
# could keep. Anything else (context, prompt, rules that would keep going) needs --ablate, a real run.
REPLAYABLE = {
    "syntax_check": lambda v: True, "trim_overlap": lambda v: True,
    "line_start_newline": lambda v: True, "heal_indent": lambda v: True,
    "block": lambda v: v is False, "stop_blank_line": lambda v: v is True,
    "block_min_prob": lambda v: v >= Options().block_min_prob,
}


def replay(task: Task, shipped: dict, opts: Options) -> dict:
    """The pipeline's answer under `opts`, from the shipped pipeline's raw generation (REPLAYABLE only)."""
    multiline = shipped["multiline"] and decide_multiline(task.prefix, task.suffix, "auto", opts)

    def answer(g: dict) -> str:
        return finish(g, task.prefix, task.suffix, multiline, opts, task.language)
    one = shipped.get("one_line")  # the line-start one-line rule ran: decide it again under `opts`
    text = answer(one["first"] if one else shipped)
    if one and one_line_wanted(text, task.prefix, task.suffix, opts):
        text = prefer_one_line(text, answer(one["alternative"]))
    return {"text": text, "ms": shipped["ms"], "tokens": shipped["tokens"], "replayed": True}


def score(task: Task, out: dict) -> dict:
    text = out["text"]
    return {**out, "exact": float(text.strip() == task.middle.strip()), "es": edit_similarity(text, task.middle),
            "first_line": float(first_line(text) == first_line(task.middle)), "shown": float(bool(text.strip())),
            "parses": float(bool(parses(task.language, task.prefix + text + task.suffix)))}


# --- statistics -----------------------------------------------------------------------------------
def paired_interval(a: list[float], b: list[float], seed: int = 0) -> dict:
    """Mean of a - b with a paired bootstrap 95% interval."""
    d = [x - y for x, y in zip(a, b)]
    if not d:
        return {"diff": None, "lo": None, "hi": None, "n": 0}
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(d, k=len(d))) for _ in range(BOOTSTRAP))
    return {"diff": statistics.fmean(d), "lo": means[int(0.025 * BOOTSTRAP)],
            "hi": means[int(0.975 * BOOTSTRAP) - 1], "n": len(d)}


METRICS = ("exact", "es", "first_line", "parses", "shown")


def summarize(rows: list[dict], system: str) -> dict:
    sel = [r for r in rows if system in r]
    if not sel:
        return {}
    out = {"n": len(sel), **{m: statistics.fmean(r[system][m] for r in sel) for m in METRICS}}
    ex = [r[system]["exec"] for r in sel if r[system].get("exec") is not None]
    out["exec_pass"], out["exec_n"] = (statistics.fmean(ex) if ex else None), len(ex)
    out["latency_ms"] = percentiles([r[system]["ms"] for r in sel])
    out["tokens_evaluated"] = statistics.fmean(r[system]["tokens"] for r in sel)
    gen = [r[system] for r in sel if "stop_reason" in r[system]]
    if gen:
        out["eos_share"] = statistics.fmean(g["stop_reason"] == "eos" for g in gen)
        out["generated_chars"] = statistics.fmean(len(g["raw"]) for g in gen)
    if all("generated" in g for g in gen) and gen:
        out["generated"] = statistics.fmean(g["generated"] for g in gen)
    return out


def groups(rows: list[dict]) -> dict[str, list[dict]]:
    out = {"all": rows}
    for kind in KINDS:
        out[f"kind:{kind}"] = [r for r in rows if r["kind"] == kind]
    for lang in N:
        out[f"language:{lang}"] = [r for r in rows if r["language"] == lang]
    return {k: v for k, v in out.items() if v}


def compare(rows: list[dict], a: str, b: str) -> dict:
    sel = [r for r in rows if a in r and b in r]
    return {m: paired_interval([r[a][m] for r in sel], [r[b][m] for r in sel]) for m in ("exact", "es", "parses")}


def build_summary(rows: list[dict], systems: list[str]) -> dict:
    out = {}
    for name, sel in groups(rows).items():
        g = {s: summarize(sel, s) for s in systems}
        g["pipeline_vs_raw"] = compare(sel, "pipeline", "raw")
        if any("raw_block" in r for r in sel):
            g["pipeline_vs_raw_block"] = compare(sel, "pipeline", "raw_block")
        for s in systems:
            if s.startswith(VARIANTS):
                g[f"{s}_vs_pipeline"] = compare(sel, s, "pipeline")
        out[name] = {k: v for k, v in g.items() if v}
    return out


# --- report ---------------------------------------------------------------------------------------
def _ci(c: dict, bold: str = "") -> str:
    """Δ [lo, hi]; `bold` ("**") marks the Δ when the interval excludes zero (markdown)."""
    if c.get("diff") is None:
        return "-"
    b = bold if c["lo"] > 0 or c["hi"] < 0 else ""
    return f"{b}{c['diff']:+.3f}{b} [{c['lo']:+.3f}, {c['hi']:+.3f}]"


def _pair(a: dict, b: dict, key: str, fmt: str) -> str:
    return f"{a[key]:{fmt}} / {b[key]:{fmt}}" if key in a and key in b else "-"


def table(summary: dict) -> str:
    lines = [f"{'group':22s} {'system':28s} {'n':>4s} {'exact':>6s} {'ES':>6s} {'1st':>6s} {'parse':>6s} "
             f"{'shown':>6s} {'P50 ms':>7s} {'P90':>6s} {'P99':>6s} {'tok':>5s} {'eos':>5s} {'chars':>5s}"]
    for name, g in summary.items():
        for system, s in g.items():
            if "_vs_" in system:
                continue
            lat = s["latency_ms"]
            lines.append(f"{name:22s} {system:28s} {s['n']:4d} {s['exact']:6.3f} {s['es']:6.3f} "
                         f"{s['first_line']:6.3f} {s['parses']:6.3f} {s['shown']:6.2f} {lat['p50']:7.0f} "
                         f"{lat['p90']:6.0f} {lat['p99']:6.0f} {s['tokens_evaluated']:5.0f}"
                         + (f" {s['eos_share']:5.2f} {s['generated_chars']:5.0f}" if "eos_share" in s else ""))
        for key, c in g.items():
            if "_vs_" in key:
                lines.append(f"{'':22s} {key:28s} exact {_ci(c['exact'])}  ES {_ci(c['es'])}  "
                             f"parses {_ci(c['parses'])}")
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    """Two tables for docs/benchmarks.md: pipeline vs raw per group, and every ablation vs the pipeline.
    Bold: the 95% interval excludes zero."""
    out = ["| group | n | exact raw / pipeline | Δ exact [95% CI] | ES raw / pipeline | Δ ES [95% CI] | "
           "first line raw / pipeline | parses raw / pipeline | cold P50 / P90 ms raw | pipeline | "
           "tokens raw / pipeline |", "|---" * 11 + "|"]
    for name, g in summary.items():
        r, p, c = g.get("raw"), g.get("pipeline"), g.get("pipeline_vs_raw")
        if not (r and p and c):
            continue
        out.append(f"| {name} | {p['n']} | {r['exact']:.3f} / {p['exact']:.3f} | {_ci(c['exact'], '**')} | "
                   f"{r['es']:.3f} / {p['es']:.3f} | {_ci(c['es'], '**')} | {r['first_line']:.3f} / "
                   f"{p['first_line']:.3f} | {r['parses']:.3f} / {p['parses']:.3f} | "
                   f"{r['latency_ms']['p50']:.0f} / {r['latency_ms']['p90']:.0f} | "
                   f"{p['latency_ms']['p50']:.0f} / {p['latency_ms']['p90']:.0f} | "
                   f"{r['tokens_evaluated']:.0f} / {p['tokens_evaluated']:.0f} |")
    if "raw_block" in summary.get("kind:block", {}):
        b, p = summary["kind:block"]["raw_block"], summary["kind:block"]["pipeline"]
        c = summary["kind:block"]["pipeline_vs_raw_block"]
        out += ["", "| blocks | n | exact | ES | parses | cold P50 ms |", "|---|---|---|---|---|---|",
                f"| raw to end-of-text, cut at the suffix | {b['n']} | {b['exact']:.3f} | {b['es']:.3f} | "
                f"{b['parses']:.3f} | {b['latency_ms']['p50']:.0f} |",
                f"| pipeline | {p['n']} | {p['exact']:.3f} | {p['es']:.3f} | {p['parses']:.3f} | "
                f"{p['latency_ms']['p50']:.0f} |",
                f"| Δ pipeline − raw to end-of-text | | {_ci(c['exact'], '**')} | {_ci(c['es'], '**')} | "
                f"{_ci(c['parses'], '**')} | |"]
    ablations = sorted({k for g in summary.values() for k in g if k.endswith("_vs_pipeline")})
    if ablations:
        out += ["", "| switch (vs shipped) | group | n | Δ exact | Δ ES | Δ parses | P50 ms switch / shipped | "
                "ended with end-of-text | characters generated |", "|---" * 9 + "|"]
        for key in ablations:
            system = key[:-len("_vs_pipeline")]
            for name, g in summary.items():
                if key not in g or system not in g or not (name == "all" or name.startswith("kind:")):
                    continue
                c, a, p = g[key], g[system], g["pipeline"]
                if c["exact"]["n"] == 0:
                    continue
                out.append(f"| `{system.split(':', 1)[1]}` | {name} | {c['exact']['n']} | {_ci(c['exact'], '**')} | "
                           f"{_ci(c['es'], '**')} | {_ci(c['parses'], '**')} | {a['latency_ms']['p50']:.0f} / "
                           f"{p['latency_ms']['p50']:.0f} | {_pair(a, p, 'eos_share', '.2f')} | "
                           f"{_pair(a, p, 'generated_chars', '.0f')} |")
    return "\n".join(out) + "\n"


def plot(summary: dict, systems: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kinds = [k for k in summary if k.startswith("kind:")]
    shown = [s for s in ("raw", "raw_block", "pipeline") if s in systems]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, metric in zip(axes[:2], ("exact", "es")):
        w = 0.8 / len(shown)
        for j, s in enumerate(shown):
            xs = [i + (j - (len(shown) - 1) / 2) * w for i in range(len(kinds))]
            ax.bar(xs, [summary[k].get(s, {}).get(metric, 0) for k in kinds], width=w, label=s)
        ax.set_xticks(range(len(kinds)), [k.split(":")[1] for k in kinds], rotation=30, ha="right")
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1)
        ax.legend()
    ax = axes[2]
    for j, s in enumerate(["raw", "pipeline"]):
        lat = summary["all"][s]["latency_ms"]
        ax.bar([q + j * 0.4 for q in range(3)], [lat["p50"], lat["p90"], lat["p99"]], width=0.4, label=s)
    ax.set_xticks([0.2, 1.2, 2.2], ["P50", "P90", "P99"])
    ax.set_ylabel("cold latency (ms)")
    ax.legend()
    fig.suptitle("Ghostline FIM benchmark: pipeline vs raw FIM, per editor state")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------------------
def load_tasks(counts: dict[str, int], seed: int, split: str) -> list[Task]:
    tasks: list[Task] = []
    for language, n in counts.items():
        if n <= 0:
            continue
        base = split_dir(split) / language
        files = list_files([base], LANG_SUFFIX[language]) if base.is_dir() else []
        got = make_tasks(language, files, n, seed, base=base)
        if len(got) < n:
            print(f"note: only {len(got)} {language} tasks in the {split} split (asked for {n})", file=sys.stderr)
        tasks += got
    return tasks


def parse_ablations(items: list[str], replay_only: bool = False) -> dict[str, Options]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--ablate/--replay take NAME=VALUE, got {item!r}")
        if name == "adapter":  # the engines share one loaded model: an adapter needs its own
            raise SystemExit(f"use --adapter {value} to compare an adapter")
        try:
            opts = Options().with_values(**{name: value})
        except ValueError as e:
            raise SystemExit(str(e)) from None
        if replay_only and not (name in REPLAYABLE and REPLAYABLE[name](getattr(opts, name))):
            raise SystemExit(f"{item} cannot be replayed from the shipped generation; use --ablate {item}")
        out[f"ablate:{name}={value}"] = opts
    return out


def run(tasks: list[Task], variants: dict[str, Options], model: str | None, rows_path: Path,
        done: dict[str, dict], split: str, adapters: tuple[str, ...] = (), remote: str | None = None) -> list[dict]:
    """Every system on every task; rows are appended to rows_path as they finish."""
    runtime = load_runtime(model, SHIPPED_ADAPTER)  # what a fresh install serves, whatever this user promoted
    bare = load_runtime(model, None)  # the raw call is a FIM call to the model file alone
    engines = {"pipeline": Engine(runtime)}
    engines.update({v: Engine(runtime if opts.bake == Options.bake else load_runtime(model, SHIPPED_ADAPTER,
                                                                                     use_baked=opts.bake),
                              options=opts) for v, opts in variants.items()})
    engines.update({f"adapter:{a}": Engine(load_runtime(model, a)) for a in adapters})
    if remote:
        engines[f"remote:{remote}"] = Engine(RemoteRuntime(remote, timeout_ms=60_000))
    rows = []
    with rows_path.open("a") as sink:
        for task in tqdm(tasks, desc="evaluating", file=sys.stderr):
            row = done.get(task.id, {"id": task.id, "kind": task.kind, "language": task.language,
                                     "path": task.path, "middle": task.middle, "model": runtime.model_id})
            raws = ["raw", "raw_block"] if task.kind == "block" else ["raw"]
            others = open_siblings(task, split_dir(split) / task.language)
            fresh = [s for s in [*raws, *engines] if s not in row]
            if set(raws) & set(fresh):
                row.update({s: score(task, out) for s, out in run_raw(bare, task).items()})
            for system in fresh:
                if system in engines:
                    row[system] = score(task, run_pipeline(engines[system], task, others))
            if fresh and doctest_checks_hole(task):
                for system in [*raws, *engines]:
                    row[system]["exec"] = float(bool(run_doctest(task, row[system]["text"])))
            if fresh:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 100 tasks")
    for lang, n in N.items():
        ap.add_argument(f"--{lang}", type=int, default=None, help=f"{lang} tasks (default {n}; 0 skips)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--split", default="test", choices=("train", "validation", "test"),
                    help="tune on validation, report on test")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="run only these task kinds (comma-separated) of the same task set: a run of the same "
                         "--name can add an ablation where it matters (the summary covers every task with rows)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--ablate", action="append", default=[], metavar="NAME=VALUE",
                    help="also run the pipeline with this Options switch (repeatable)")
    ap.add_argument("--adapter", action="append", default=[], metavar="NAME",
                    help="also run the pipeline with this adapter from the registry (repeatable)")
    ap.add_argument("--remote", default=None, metavar="URL",
                    help="also run the pipeline through this OpenAI-compatible engine (server.remote)")
    ap.add_argument("--replay", action="append", default=[], metavar="NAME=VALUE",
                    help="a post-processing switch computed from the shipped pipeline's generation, no model "
                         "time (see REPLAYABLE; repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "artifacts" / "eval")
    ap.add_argument("--name", default=None, help="run name; an existing run of this name is resumed")
    ap.add_argument("--report", action="store_true",
                    help="no model: summarise the run's rows file, every system it holds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    # config
    counts = {lang: getattr(args, lang) if getattr(args, lang) is not None else (QUICK if args.quick else N)[lang]
              for lang in N}
    variants = parse_ablations(args.ablate)
    replays = parse_ablations(args.replay, replay_only=True)
    name = args.name or f"eval-{'quick-' if args.quick else ''}s{args.seed}"
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / f"{name}.rows.jsonl"

    # load: tasks from the corpus split, the model
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not kinds or set(kinds) - set(KINDS):
        raise SystemExit(f"--kinds takes some of {', '.join(KINDS)}")
    every = load_tasks(counts, args.seed, args.split)
    tasks = [t for t in every if t.kind in kinds]
    print(f"{len(tasks)} tasks ({', '.join(f'{sum(t.language == lang for t in tasks)} {lang}' for lang in N)}), "
          f"seed {args.seed}, split {args.split}", file=sys.stderr)
    done: dict[str, dict] = {}
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            row = json.loads(line)
            done[row["id"]] = row
        print(f"resuming {rows_path}: {len(done)} tasks done", file=sys.stderr)

    if not args.report:
        done.update({r["id"]: r for r in run(tasks, variants, args.model, rows_path, done, args.split,
                                             tuple(args.adapter), args.remote)})
    # the summary covers every task of the run that has rows (all kinds, not only those just run), and every
    # system found in them
    rows = [done[t.id] for t in every if t.id in done]
    found = {k for r in rows for k in r if isinstance(r[k], dict)}
    variants = {s: None for s in sorted(found) if s.startswith(VARIANTS)}
    by_id = {t.id: t for t in every}
    for r in rows:
        for system, opts in replays.items():
            r[system] = score(by_id[r["id"]], replay(by_id[r["id"]], r["pipeline"], opts))
    variants = {**variants, **replays}

    # evaluate: per group, each system, and paired intervals against the raw call
    systems = ["raw", "raw_block", "pipeline", *variants]
    summary = build_summary(rows, systems)

    # export
    meta = {"model": sorted({r.get("model", "") for r in rows}), "seed": args.seed, "split": args.split,
            "n_tasks": len(rows), "counts": counts, "max_tokens": MAX_TOKENS, "options": asdict(Options()),
            "ablations": list(variants), "bootstrap": BOOTSTRAP}
    out_json = args.out / f"{name}.json"
    out_json.write_text(json.dumps({"meta": meta, "summary": summary}, indent=1))
    plot(summary, systems, out_json.with_suffix(".png"))
    out_json.with_suffix(".md").write_text(markdown(summary))
    print(table(summary))
    print(f"wrote {out_json} (and .png, .md) and {rows_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
