"""What the model sees: prefix and suffix cut to token budgets, plus snippets from other open files.

Plain functions over strings; the token counter is injected (the model's tokenizer in the server, a
character estimate in unit tests).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .options import Options
from .templates import Snippet

TokenCounter = Callable[[str], int]
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# More characters than a budget's worth of tokens could ever cover: texts are cut to this before they are
# tokenized, so a megabyte-long line costs no more than an ordinary one.
CHARS_PER_TOKEN_MAX = 16
# The start of a window into one enormous line moves in steps of this many characters, so typing at its end
# keeps the prompt's head (and the KV cache for it) for that many keystrokes.
LINE_QUANTUM = 64


def estimate_tokens(text: str) -> int:
    """~3.5 characters a token for code; used where no tokenizer is at hand."""
    return (len(text) + 3) // 4 + text.count("\n") // 2


@dataclass(frozen=True)
class Context:
    prefix: str
    suffix: str
    path: str | None = None
    language: str = ""
    snippets: tuple[Snippet, ...] = field(default_factory=tuple)


def _fit(text: str, budget: int, count: TokenCounter, keep_end: bool) -> str:
    """The longest tail (keep_end) or head of one long line within budget, to a few percent."""
    n = min(len(text), budget * 3)
    while n > 0 and count(text[-n:] if keep_end else text[:n]) > budget:
        n = n * 7 // 8
    return (text[-n:] if keep_end else text[:n]) if n else ""


def cut_prefix(prefix: str, budget: int, count: TokenCounter, quantum: int = 16) -> str:
    """Keep whole lines from the cursor backwards within budget. The start moves in steps of `quantum`
    lines so the KV cache survives typing new lines: rounded up when that keeps at least 3/4 of the
    budget, else down when that stays within 5/4 of it, else not at all (a few long lines above the
    start would otherwise cost most of the prefix)."""
    lines = prefix[-budget * CHARS_PER_TOKEN_MAX:].split("\n")  # never tokenize what cannot fit
    cur = lines[-1]
    if count(cur) > budget:  # one enormous line: the tail that fits, its start (in the document, which typing
        # at the end does not move) rounded up to a quantum
        start = len(prefix) - len(_fit(cur, budget, count, keep_end=True))
        return prefix[-(-start // LINE_QUANTUM) * LINE_QUANTUM:]
    used = count(cur)
    cost = {len(lines) - 1: used}  # start line -> tokens kept
    start = len(lines) - 1
    while start > 0 and used <= budget + budget // 4:
        used += count(lines[start - 1]) + 1
        start -= 1
        cost[start] = used
    exact = min(k for k, v in cost.items() if v <= budget)
    if exact > 0 and quantum > 1:
        up = min(-(-exact // quantum) * quantum, len(lines) - 1)
        down = exact // quantum * quantum
        if cost[up] >= budget - budget // 4:
            return "\n".join(lines[up:])
        if down in cost and cost[down] <= budget + budget // 4:
            return "\n".join(lines[down:])
    return "\n".join(lines[exact:])


def cut_suffix(suffix: str, budget: int, count: TokenCounter) -> str:
    lines = suffix[:budget * CHARS_PER_TOKEN_MAX].split("\n")
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        need = count(line) + (1 if i else 0)
        if used + need > budget:
            if not out:
                out.append(_fit(line, budget, count, keep_end=False))
            break
        out.append(line)
        used += need
    return "\n".join(out)


def _words(text: str) -> set[str]:
    return set(WORD.findall(text))


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def best_snippets(query: str, others: Iterable[tuple[str, str]], budget: int, count: TokenCounter,
                  window: int = 20, max_snippets: int = 2, min_score: float = 0.1) -> tuple[Snippet, ...]:
    """Copilot-style neighbouring tabs: windows of other files ranked by Jaccard word overlap."""
    q = _words(query)
    if not q or budget <= 0:
        return ()
    scored: list[tuple[float, str, int, str]] = []
    for path, text in others:
        lines = text.split("\n")
        step = max(1, window // 2)
        for i in range(0, max(1, len(lines) - window + step), step):
            chunk = "\n".join(lines[i:i + window])
            score = jaccard(q, _words(chunk))
            if score >= min_score:
                scored.append((score, path, i, chunk))
    scored.sort(key=lambda t: (-t[0], t[1], t[2]))
    chosen: list[tuple[str, int, str]] = []
    used = 0
    for _score, path, i, chunk in scored:
        if len(chosen) >= max_snippets:
            break
        if any(p == path and abs(j - i) < window for p, j, _ in chosen):
            continue
        need = count(chunk) + 8
        if used + need > budget:
            continue
        chosen.append((path, i, chunk))
        used += need
    return tuple(Snippet(path, chunk) for path, _, chunk in chosen)


def display_path(path: str | None, root: str | None, mode: str = "relative") -> str | None:
    """How a file is named in the prompt: relative to the workspace root (else its base name), absolute,
    or not at all. Absolute paths leak the user's home layout into every prompt and measured worse."""
    if not path or mode == "none":
        return None
    if mode == "absolute":
        return path
    if root:
        rel = os.path.relpath(path, root)
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    return os.path.basename(path)


def build_context(prefix: str, suffix: str, *, count: TokenCounter = estimate_tokens,
                  options: Options = Options(), path: str | None = None, root: str | None = None,
                  language: str = "", others: Iterable[tuple[str, str]] = ()) -> Context:
    """`others`: (path, text) of other open files of the same language."""
    p = cut_prefix(prefix, options.prefix_tokens, count, options.start_quantum)
    s = cut_suffix(suffix, options.suffix_tokens, count)
    snippets: tuple[Snippet, ...] = ()
    if options.snippets:
        query = "\n".join(prefix.split("\n")[-options.snippet_window:])
        named = [(display_path(o, root, options.path_header) or "", text) for o, text in others]
        snippets = best_snippets(query, named, options.snippet_tokens, count,
                                 options.snippet_window, options.max_snippets)
    return Context(p, s, display_path(path, root, options.path_header), language, snippets)
