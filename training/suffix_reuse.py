"""How far the suffix's KV cache can be moved instead of evaluated again while the user types (Options.reuse_suffix).

    python -m training.suffix_reuse [--cases 24] [--limit 0 --limit 8 --limit 24 --limit 100000] [--model NAME]

Each case types the characters before a random place of a corpus test file one at a time, as the server sees
them: a FIM prompt of the text before the cursor (its start fixed, as the quantised prefix start keeps it
within a line) and the text after it, one model call per keystroke. Each `--limit` replays all cases with
that many changed tokens allowed ahead of a moved suffix (0: the suffix is evaluated again on every
keystroke, today's behaviour). It reports prompt tokens evaluated and milliseconds per keystroke, and how
often the answer after the last keystroke (a whole line) is the one a cold evaluation of that prompt gives,
and how long that last keystroke took to its line: what the user waits for (`--model` compares models).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

from training.corpus import split_dir
from training.metrics import percentiles

# --- config -------------------------------------------------------------------------------------
SEED = 3
CASES = 24
PREFIX_CHARS, SUFFIX_CHARS = 1500, 800
MAX_TYPED = 24  # characters typed per case: 1 to this many
LIMITS = (0, 8, 24, 100000)
OUT = Path(__file__).resolve().parent.parent / "artifacts" / "suffix_reuse"


def cases(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(text before the typing, what is typed, text after the cursor) from Python and JavaScript test files."""
    rng = random.Random(seed)
    files = sorted(p for suf in ("*.py", "*.js") for p in split_dir("test").rglob(suf))
    out = []
    while len(out) < n:
        text = rng.choice(files).read_text(encoding="utf-8", errors="replace")
        if len(text) < PREFIX_CHARS + SUFFIX_CHARS:
            continue
        cut = rng.randrange(PREFIX_CHARS, len(text) - SUFFIX_CHARS // 4)
        typed = rng.randint(1, MAX_TYPED)
        out.append((text[cut - typed - PREFIX_CHARS:cut - typed], text[cut - typed:cut], text[cut:cut + SUFFIX_CHARS]))
    return out


def line(text: str, *_) -> bool:
    return "\n" in text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.suffix_reuse", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=CASES)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--limit", type=int, action="append", help=f"(repeatable; default {' '.join(map(str, LIMITS))})")
    ap.add_argument("--model", help="manifest name or .gguf (default: the default model)")
    args = ap.parse_args(argv)
    from server.runtime import load_runtime
    runtime = load_runtime(args.model, "shipped")  # what a fresh install serves
    render = runtime.template.render
    todo = cases(args.cases, args.seed)
    cold = []
    for before, typed, after in tqdm(todo, desc="cold answers", file=sys.stderr):
        runtime.reset()
        cold.append(runtime.generate(render(before + typed, after), max_tokens=32, should_stop=line).text)
    rows = []
    for limit in args.limit or LIMITS:
        ms, line_ms, tokens, same = [], [], [], 0
        for (before, typed, after), want in zip(tqdm(todo, desc=f"limit {limit}", file=sys.stderr), cold):
            runtime.reset()
            runtime.generate(render(before, after), max_tokens=1, should_stop=line, reuse_suffix=limit)
            for i in range(1, len(typed) + 1):
                n0, t0 = runtime.prompt_tokens_evaluated, time.perf_counter()
                last = i == len(typed)
                g = runtime.generate(render(before + typed[:i], after), max_tokens=32 if last else 1,
                                     should_stop=line, reuse_suffix=limit)
                # the last keystroke's time includes generating the line
                (line_ms if last else ms).append((time.perf_counter() - t0) * 1000)
                tokens.append(runtime.prompt_tokens_evaluated - n0)
            same += g.text == want
        rows.append({"limit": limit, "same_answer": same, "cases": len(todo), "keystrokes": len(tokens),
                     "prompt_tokens_per_keystroke": sum(tokens) / len(tokens), "ms_per_keystroke": percentiles(ms),
                     "ms_to_line": percentiles(line_ms)})
    base = rows[0]["ms_per_keystroke"]["p50"]
    print(f"{runtime.model_id}, {len(todo)} cases")
    print("| limit | same answer as cold | prompt tokens / keystroke | ms / keystroke P50 / P90 / P99 | P50 × "
          "| last keystroke to its line, ms P50 / P90 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        p, q = r["ms_per_keystroke"], r["ms_to_line"]
        print(f"| {r['limit']} | {r['same_answer']}/{r['cases']} | {r['prompt_tokens_per_keystroke']:.0f} | "
              f"{p['p50']:.0f} / {p['p90']:.0f} / {p['p99']:.0f} | {p['p50'] / base:.2f} | "
              f"{q['p50']:.0f} / {q['p90']:.0f} |")
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"suffix-reuse-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"seed": args.seed, "model": runtime.model_id, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
