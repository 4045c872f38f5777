"""Turn raw model output into something worth showing.

The 0.5B model infills correctly but does not stop: it runs past the gap and repeats the suffix. These
rules cut it back: single vs multi-line by syntax, stop at blank lines and dedents, trim what the suffix
already says, and leave closing brackets to whoever opened them.
"""
from __future__ import annotations

OPENERS = (":", "{", "(", "[", "=>", "->", "do", "then")
PAIRS = {")": "(", "]": "[", "}": "{"}
MAX_LINES = 16


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _next_nonblank(lines: list[str]) -> str | None:
    return next((ln for ln in lines if ln.strip()), None)


def decide_multiline(prefix: str, suffix: str, mode: str = "auto") -> bool:
    """Multi-line only at the start of an empty block body (Copilot's rule), unless forced."""
    if mode in ("always", "never"):
        return mode == "always"
    cur = prefix.rsplit("\n", 1)[-1]
    suffix_lines = suffix.split("\n")
    if suffix_lines[0].strip():
        return False  # mid-line: finish this line only
    if cur.strip():
        return cur.rstrip().endswith(OPENERS)  # at the end of `def f():` / `{`
    prev = _next_nonblank(prefix.split("\n")[-2::-1])
    if prev is None or not prev.rstrip().endswith(OPENERS):
        return False
    after = _next_nonblank(suffix_lines[1:])
    return after is None or _indent(after) <= _indent(prev)  # the body is still empty


def trim_block(text: str, prefix: str, suffix: str) -> str:
    """Multi-line: stop at a blank line, at a dedent past the block, or at a line the suffix repeats."""
    cur = prefix.rsplit("\n", 1)[-1]
    lines = text.split("\n")
    suffix_next = (_next_nonblank(suffix.split("\n")[1:]) or "").strip()
    if not suffix.split("\n")[0].strip() and not suffix_next:
        suffix_next = (_next_nonblank(suffix.split("\n")) or "").strip()
    out: list[str] = []
    block_indent: int | None = None
    for i, line in enumerate(lines[:MAX_LINES]):
        full = cur + line if i == 0 and line.strip() else line
        if not full.strip():
            if block_indent is not None:
                break  # blank line after content ends the suggestion
            out.append(line)
            continue
        if block_indent is None:
            block_indent = _indent(full)
            out.append(line)
            continue
        if i > 0 and suffix_next and line.strip() == suffix_next:
            break  # the model started repeating the suffix
        if _indent(full) < block_indent:
            if line.strip() and all(c in ")]}; " for c in line.strip()):
                out.append(line)  # a closer for a block it opened, which the suffix does not supply
            break
        out.append(line)
    return "\n".join(out)


def trim_suffix_overlap(text: str, suffix: str) -> str:
    """Drop a tail of the completion that the text after the cursor already contains."""
    limit = min(len(text), len(suffix), 400)
    for k in range(limit, 0, -1):
        head = suffix[:k]
        if text.endswith(head) and head.strip():
            if k >= 3 or not (head[0].isalnum() or head[0] == "_"):
                return text[:-k]
    return text


def _skip_string(text: str, i: int) -> int:
    q = text[i]
    j = i + 1
    while j < len(text) and text[j] != q and text[j] != "\n":
        j += 2 if text[j] == "\\" else 1
    return j


def balance_closers(text: str, suffix: str) -> str:
    """Cut at a closer for a bracket opened before the completion when the suffix already closes it."""
    rest = suffix.split("\n", 1)[0].lstrip()
    stack: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            i = _skip_string(text, i)
        elif c in "([{":
            stack.append(c)
        elif c in PAIRS:
            if stack and stack[-1] == PAIRS[c]:
                stack.pop()
            elif rest.startswith(c):
                return text[:i]
        i += 1
    return text


def postprocess(text: str, prefix: str, suffix: str, multiline: bool) -> str:
    if multiline:
        text = trim_block(text, prefix, suffix)
    else:
        text = text.split("\n", 1)[0]
    text = trim_suffix_overlap(text.rstrip(), suffix)
    text = balance_closers(text, suffix).rstrip()
    if not text.strip():
        return ""
    return text


def early_stop(text: str, prefix: str, suffix: str, multiline: bool) -> bool:
    """Run between tokens: has the output already passed the point where postprocess would cut it?"""
    if not multiline:
        return "\n" in text
    complete = text[:text.rfind("\n") + 1]  # judge whole lines only: a partial one may still indent
    if not complete.strip():
        return False
    whole = complete[:-1]
    return len(trim_block(whole, prefix, suffix)) < len(whole) or complete.count("\n") > MAX_LINES
