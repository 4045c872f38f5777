"""Turn raw model output into something worth showing.

The 0.5B instruct model infills correctly but does not stop: it runs past the gap and repeats the suffix.
These rules cut it back, each behind a switch in `Options` so the benchmark can show what it earns:
single vs multi-line by editor state, stop at dedents and at lines the suffix repeats, end a block where
the file parses (tree-sitter), trim what the suffix already says, and at the start of a line with code
insert a whole line or nothing. (Bracket balancing was measured to change nothing and was removed.)
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from .editor_state import EditorState, editor_state
from .options import Options
from .syntax import parses

OPENERS = (":", "{", "(", "[", "=>", "->", "do", "then")
MAX_LINES = 16
CHAT_FENCE = "```"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _next_nonblank(lines: list[str]) -> str | None:
    return next((ln for ln in lines if ln.strip()), None)


def decide_multiline(prefix: str, suffix: str, mode: str = "auto", options: Options = Options()) -> bool:
    """Multi-line at the end of a block opener, at an empty block body (Copilot's rule) and, with
    `options.block`, at any empty line inside a block; the post-processing decides how many lines."""
    if mode in ("always", "never"):
        return mode == "always"
    state = editor_state(prefix, suffix)
    cur = prefix.rsplit("\n", 1)[-1]
    if state in (EditorState.MID_LINE, EditorState.LINE_START):
        return False  # finish or insert this line only
    if state is EditorState.END_OF_LINE:
        return cur.rstrip().endswith(OPENERS)  # at the end of `def f():` / `{`
    if options.block and cur:
        return True  # an empty line inside a block (indented): the block may continue for several lines
    prev = _next_nonblank(prefix.split("\n")[-2::-1])
    if prev is None or not prev.rstrip().endswith(OPENERS):
        return False
    after = _next_nonblank(suffix.split("\n")[1:])
    return after is None or _indent(after) <= _indent(prev)  # the body is still empty


def heal_indent(text: str, prefix: str) -> str:
    """At an indentation-only line the cursor already sits where code starts, but the model often writes
    the indentation again (its tokenizer merges whitespace runs)."""
    line = prefix.rsplit("\n", 1)[-1]
    if not line or line.strip():
        return text
    first, nl, rest = text.partition("\n")
    return first.lstrip(" \t") + nl + rest


def _suffix_next(suffix: str) -> str:
    """The next line of code after the cursor's line (or the cursor's line when that is all there is)."""
    lines = suffix.split("\n")
    nxt = (_next_nonblank(lines[1:]) or "").strip()
    if not lines[0].strip() and not nxt:
        nxt = (_next_nonblank(lines) or "").strip()
    return nxt


def repeated_first_line(text: str, prefix: str, suffix: str) -> int:
    """A first line that only repeats code already there (the line the cursor starts, or on an empty line
    the next one) is no suggestion. Returns where that line ends in `text` (0 when the line is new), so the
    engine can ask the model for its runner-up there."""
    state = editor_state(prefix, suffix)
    if state is EditorState.LINE_START:
        there = suffix.split("\n", 1)[0].strip()
    elif state is EditorState.EMPTY_LINE:
        there = _suffix_next(suffix)
    else:
        return 0
    end = 0
    for line in text.split("\n"):
        end += len(line)
        if line.strip():
            return end if line.strip() == there else 0
        end += 1
    return 0


def one_line_wanted(answer: str, prefix: str, suffix: str, options: Options) -> bool:
    """At the start of a line with code, an answer of nothing or of a statement over several lines: worth
    asking the model for a one-line alternative (one inserted line ends in exactly one newline)."""
    return (options.line_start_one_line and options.line_start_newline and answer.count("\n") != 1
            and editor_state(prefix, suffix) is EditorState.LINE_START)


def prefer_one_line(answer: str, alternative: str) -> str:
    """The alternative when it is one whole inserted line, else the answer."""
    return alternative if alternative.count("\n") == 1 else answer


def _block(text: str, prefix: str, suffix: str, options: Options) -> tuple[str, bool]:
    """Multi-line: stop at a dedent past the block, at a line the suffix repeats, at chat formatting and
    (when switched on) at a blank line after content. Returns the kept text and whether a rule fired."""
    cur = prefix.rsplit("\n", 1)[-1]
    lines = text.split("\n")
    suffix_next = _suffix_next(suffix) if options.stop_suffix_repeat else ""
    out: list[str] = []
    block_indent: int | None = None
    fired = False
    for i, line in enumerate(lines):
        full = cur + line if i == 0 and line.strip() else line
        if i == MAX_LINES or (options.drop_chat and line.lstrip().startswith(CHAT_FENCE)):
            fired = True
            break
        if not full.strip():
            if block_indent is not None and options.stop_blank_line:
                fired = True  # blank line after content ends the suggestion
                break
            out.append(line)
            continue
        if block_indent is None:
            block_indent = _indent(full)
            out.append(line)
            continue
        if suffix_next and line.strip() == suffix_next:
            fired = True  # the model started repeating the suffix
            break
        if options.stop_dedent and _indent(full) < block_indent:
            if line.strip() and all(c in ")]}; " for c in line.strip()):
                out.append(line)  # a closer for a block it opened, which the suffix does not supply
            fired = True
            break
        out.append(line)
    return "\n".join(out).rstrip(), fired


def trim_block(text: str, prefix: str, suffix: str, options: Options = Options()) -> str:
    return _block(text, prefix, suffix, options)[0]


def block_confidence(lowest: Sequence[float], starts: Sequence[float], options: Options) -> Sequence[float]:
    """What a block's lines are judged by (`options.block_confidence`): the token that started each line,
    i.e. how sure the model was that the block goes on, or the least certain token on each line."""
    return starts if options.block_confidence == "line_start" else lowest


def confident_lines(text: str, line_logprobs: Sequence[float], min_prob: float) -> str:
    """Cut a block before the first line, after its first line of code, whose confidence (one
    log-probability per line) is below `min_prob`."""
    if min_prob <= 0 or not line_logprobs:
        return text
    floor = math.log(min_prob)
    lines = text.split("\n")
    seen_code = False
    for k, line in enumerate(lines):
        if seen_code and line.strip() and k < len(line_logprobs) and line_logprobs[k] < floor:
            return "\n".join(lines[:k])
        seen_code = seen_code or bool(line.strip())
    return text


def end_where_it_parses(text: str, prefix: str, suffix: str, language: str) -> str:
    """The longest whole-line cut of a block after which the file parses; the text unchanged when no cut
    parses or the language has no grammar (the heuristics have already had their say)."""
    lines = text.split("\n")
    for k in range(len(lines), 0, -1):
        cand = "\n".join(lines[:k]).rstrip()
        if not cand.strip():
            break
        ok = parses(language, prefix + cand + suffix)
        if ok is None:
            return text
        if ok:
            return cand
    return text


def trim_suffix_overlap(text: str, suffix: str) -> str:
    """Drop a tail of the completion that the text after the cursor already contains."""
    limit = min(len(text), len(suffix), 400)
    for k in range(limit, 0, -1):
        head = suffix[:k]
        if text.endswith(head) and head.strip():
            if k >= 3 or not (head[0].isalnum() or head[0] == "_"):
                return text[:-k]
    return text


def _insertion(lines: list[str], prefix: str, suffix: str, options: Options) -> tuple[list[str], bool]:
    """At the start of a line with code: the whole lines the model wrote above it, up to (not including)
    one that repeats the existing line or sits left of it, or chat formatting. True when a rule ended it."""
    indent = prefix.rsplit("\n", 1)[-1]
    existing = suffix.split("\n", 1)[0].strip()
    out: list[str] = []
    for i, line in enumerate(lines):
        if i == MAX_LINES:
            return out, True
        ends = line.strip() == existing or (options.drop_chat and line.lstrip().startswith(CHAT_FENCE))
        if i > 0 and line.strip() and _indent(line) < len(indent):
            ends = True
        if ends:
            return out, True
        out.append(line)
    return out, False


def _inserted(lines: list[str], prefix: str) -> str:
    """Lines inserted above existing code: they end in a newline and the existing line's indentation."""
    return "\n".join(lines).rstrip() + "\n" + prefix.rsplit("\n", 1)[-1]


def insert_lines(text: str, prefix: str, suffix: str, language: str, options: Options) -> str:
    """At the start of a line that has code: whole new lines above it, ending in a newline and the line's
    indentation so the existing code stays where it was, or nothing. One line when it parses on its own;
    else the fewest lines that complete the statement it opens (an `if` and its body, a call over several
    lines). Never a line that repeats the existing one, never one that breaks a file that parses."""
    lines, _ = _insertion(text.split("\n"), prefix, suffix, options)
    if not lines or not lines[0].strip():
        return ""
    if not options.syntax_check:
        return _inserted(lines[:1], prefix)
    for k in range(1, len(lines) + 1):
        ok = parses(language, prefix + _inserted(lines[:k], prefix) + suffix)
        if ok is None:  # no grammar: the first line, as the other editor states do
            return _inserted(lines[:1], prefix)
        if ok:
            return _inserted(lines[:k], prefix)
    return "" if parses(language, prefix + suffix) else _inserted(lines[:1], prefix)


def postprocess(text: str, prefix: str, suffix: str, multiline: bool, options: Options = Options(),
                language: str = "", truncated: bool = False) -> str:
    """`truncated`: generation hit its token limit, so a block's last line is unfinished and dropped."""
    if truncated and multiline and "\n" in text.strip("\n"):
        text = text[:text.rstrip("\n").rfind("\n")]
    if options.heal_indent:
        text = heal_indent(text, prefix)
    if options.line_start_newline and editor_state(prefix, suffix) is EditorState.LINE_START:
        return insert_lines(text, prefix, suffix, language, options)
    if multiline:
        text = trim_block(text, prefix, suffix, options)
        if options.syntax_check:
            text = end_where_it_parses(text, prefix, suffix, language)
    else:
        text = text.split("\n", 1)[0]
        if options.drop_chat and text.lstrip().startswith(CHAT_FENCE):
            return ""
    text = text.rstrip()
    if options.trim_overlap:
        text = trim_suffix_overlap(text, suffix)
    text = text.rstrip()
    return text if text.strip() else ""


def finish(outcome: dict, prefix: str, suffix: str, multiline: bool, options: Options, language: str) -> str:
    """What is shown for one generation (`Generation.outcome()`): a block keeps only its confident lines,
    then postprocess (the engine and the benchmark's replays both call this, so a replay is what the server
    would show)."""
    raw = outcome["raw"]
    confidence = block_confidence(outcome["line_logprobs"], outcome["line_start_logprobs"], options)
    text = confident_lines(raw, confidence, options.block_min_prob) if multiline else raw
    return postprocess(text, prefix, suffix, multiline, options, language,
                       truncated=outcome["stop_reason"] == "length" and text == raw)


def early_stop(text: str, prefix: str, suffix: str, multiline: bool, options: Options = Options(),
               language: str = "") -> bool:
    """Run between tokens: has the output already passed the point where postprocess would cut it?"""
    if options.heal_indent:
        text = heal_indent(text, prefix)
    if options.line_start_newline and editor_state(prefix, suffix) is EditorState.LINE_START:
        if "\n" not in text:
            return False
        whole = text[:text.rfind("\n")].split("\n")
        lines, ended = _insertion(whole, prefix, suffix, options)
        if ended or not options.syntax_check or not lines or not lines[0].strip():
            return True
        # the statement is complete (or there is no grammar to say): stop here
        return parses(language, prefix + _inserted(lines, prefix) + suffix) is not False
    if not multiline:
        return "\n" in text
    complete = text[:text.rfind("\n") + 1]  # judge whole lines only: a partial one may still indent
    if not complete.strip():
        return False
    return _block(complete[:-1], prefix, suffix, options)[1]
