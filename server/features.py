"""Features for the show/no-show filter, shared by the server and the trainer so they cannot drift.

Two stages, as in `server.filter`:
- `extract`, before generation (so a rejected request never reaches the model): Copilot's contextual
  filter set (reverse-engineered: previous outcome, time since the last decision, line and document shape,
  language, last characters) plus typing speed, mid-word, indentation change and the editor state.
- `extract_answer`, after generation: the model's confidence, why it stopped, the answer's shape, whether
  it repeats the code around it, whether the file parses with it and whether it closes what it opens.
Both return name -> value; `vectorize` orders them by the names a trained filter was exported with.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .editor_state import EditorState, editor_state
from .syntax import parses

# Bumped whenever a feature is added, removed or computed differently: telemetry stores it next to the
# features, so a trainer never mixes rows extracted by different code.
FEATURE_VERSION = 4
# Per stage, the oldest version whose features of that stage are computed as this one's: rows it logged still train
# that stage (v4 added answer features only).
SAME_SINCE = {"before": 3, "after": 4}

LANGUAGES = ("python", "javascript", "typescript", "javascriptreact", "typescriptreact", "go", "rust",
             "java", "c", "cpp", "csharp", "ruby", "php", "shellscript", "html", "css", "json", "markdown")
LAST_CHARS = tuple("()[]{}.,:;=+-*/<>\"'#_ \t") + ("alpha", "digit", "other", "none")
STOP_REASONS = ("eos", "stop", "length")
OPENERS = (":", "{", "(", "[", "=>")
_WORD = re.compile(r"\w+$")
_IDENT = re.compile(r"[A-Za-z_]\w*")
_FIRST_WORD = re.compile(r"\s*(\w+|[^\w\s]+)")
NEARBY_CHARS = 3000  # text before and after the cursor searched for identifiers and repeated lines
_PAIRS = {"(": ")", "[": "]", "{": "}"}
MIN_LOGPROB = -20.0  # log-probabilities are clipped here: one impossible token should not dominate a sum


@dataclass(frozen=True)
class History:
    """What the server knows about the session when a request arrives."""
    last_accepted: bool | None = None  # the previous suggestion's outcome
    seconds_since_last: float | None = None  # since the previous filter decision
    typing_gap_s: float | None = None  # median time between the document's recent edits
    idle_s: float | None = None  # since the document's last edit


def _char_class(c: str | None) -> str:
    if not c:
        return "none"
    if c in LAST_CHARS:
        return c
    if c.isalpha():
        return "alpha"
    if c.isdigit():
        return "digit"
    return "other"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _log_seconds(s: float | None) -> float:
    return math.log1p(max(s, 0.0)) if s else 0.0


def extract(prefix: str, suffix: str, language: str, history: History = History()) -> dict[str, float]:
    """Stage 1: everything known before generation."""
    line = prefix.rsplit("\n", 1)[-1]
    rest = suffix.split("\n", 1)[0]
    doc_len = len(prefix) + len(suffix)
    # rsplit/split with a limit: the lines near the cursor without splitting a whole (large) document per keystroke
    prev = next((ln for ln in prefix.rsplit("\n", 40)[-2:-40:-1] if ln.strip()), "")
    word = _WORD.search(line)
    near = prefix[-NEARBY_CHARS:-len(line) or None] + "\n" + suffix[:NEARBY_CHARS]
    # The model copies names from around the cursor: a partly typed word that only a few known names continue
    # is likely completed right.
    frag = word.group() if word else ""
    names = {m for m in _IDENT.findall(near) if m.startswith(frag) and m != frag} if frag else set()
    typed = line.strip()
    f: dict[str, float] = {
        "last_accepted": {None: 0.0, True: 1.0, False: -1.0}[history.last_accepted],
        "log_since_last": _log_seconds(history.seconds_since_last),
        "log_typing_gap": _log_seconds(history.typing_gap_s),
        "log_idle": _log_seconds(history.idle_s),
        "whitespace_after_cursor": float(not rest.strip()),
        "log_line_len": math.log1p(len(line)),
        "log_line_len_trimmed": math.log1p(len(line.strip())),
        "log_doc_len": math.log1p(doc_len),
        "log_offset": math.log1p(len(prefix)),
        "relative_position": len(prefix) / doc_len if doc_len else 0.0,
        "line_is_blank": float(not line.strip()),
        "mid_word": float(bool(word) and bool(rest[:1]) and (rest[0].isalnum() or rest[0] == "_")),
        "log_word_len": math.log1p(len(word.group())) if word else 0.0,
        "word_continues_known_name": float(bool(names)),
        "log_known_names": math.log1p(len(names)),
        "line_seen_nearby": float(len(typed) >= 4 and typed in near),
        # in indentation steps of 4 columns, clipped: after Enter into a new block this is +1
        "indent_change": max(-2.0, min(2.0, (_indent(line) - _indent(prev)) / 4)),
        "prev_line_opens": float(prev.rstrip().endswith(OPENERS)),
    }
    state = editor_state(prefix, suffix)
    for s in EditorState:
        f[f"state={s.value}"] = float(state is s)
    for lang in LANGUAGES:
        f[f"lang={lang}"] = float(language == lang)
    last = line[-1] if line else None
    last_ns = next((c for c in reversed(line) if not c.isspace()), None)
    for c in LAST_CHARS:
        f[f"last_char={c}"] = float(_char_class(last) == c)
        f[f"last_nonspace={c}"] = float(_char_class(last_ns) == c)
    return f


def _unclosed(text: str) -> int:
    """Brackets the text opens and does not close, plus closers it has no opener for."""
    stack: list[str] = []
    stray = 0
    for c in text:
        if c in _PAIRS:
            stack.append(_PAIRS[c])
        elif c in _PAIRS.values():
            if stack and stack[-1] == c:
                stack.pop()
            else:
                stray += 1
    return len(stack) + stray


def first_word_end(text: str) -> int:
    """Where the answer's first word ends (blanks before it included): what a word-by-word accept takes first."""
    m = _FIRST_WORD.match(text)
    return m.end() if m else len(text)


def extract_answer(text: str, raw: str, prefix: str, suffix: str, language: str, *,
                   token_logprobs: Sequence[float], line_logprobs: Sequence[float], stop_reason: str,
                   multiline: bool, branched: bool, first_word_logprobs: Sequence[float] = (),
                   first_margin: float = 0.0) -> dict[str, float]:
    """Stage 2: the answer the model gave and how sure it was. `token_logprobs`: of the tokens that made
    `text`; `line_logprobs`: per line of the generation, its least certain token; `first_word_logprobs`: of
    the tokens that made its first word (`first_word_end`); `first_margin`: how much likelier its first
    non-blank token was than the runner-up (log-probability difference)."""
    lps = [max(MIN_LOGPROB, lp) for lp in token_logprobs] or [0.0]
    lines = text.split("\n")
    shown = [max(MIN_LOGPROB, lp) for lp in line_logprobs[:len(lines)]] or [0.0]
    near = {ln.strip() for ln in prefix.rsplit("\n", 50)[-50:] + suffix.split("\n", 50)[:50] if ln.strip()}
    content = [ln.strip() for ln in lines if ln.strip()]
    ok = parses(language, prefix + text + suffix) if text else None
    f: dict[str, float] = {
        "mean_logprob": sum(lps) / len(lps),
        "min_logprob": min(lps),
        "first_line_logprob": shown[0],
        # Most accepts take a word or two: how sure the model was of the first word says more than the line.
        "first_word_logprob": max(MIN_LOGPROB, sum(max(MIN_LOGPROB, lp) for lp in first_word_logprobs)),
        "first_margin": min(max(first_margin, 0.0), -MIN_LOGPROB),
        "log_tokens": math.log1p(len(token_logprobs)),
        "log_chars": math.log1p(len(text)),
        "lines": float(min(len(lines), 16)),
        "multiline": float(multiline),
        "branched": float(branched),
        "repeats_nearby": sum(ln in near for ln in content) / len(content) if content else 0.0,
        "cut_share": 1 - len(text) / len(raw) if raw and len(raw) >= len(text) else 0.0,
        "parses": {True: 1.0, False: -1.0, None: 0.0}[ok],
        "unclosed": float(min(_unclosed(text), 4)),
        "alnum_share": sum(c.isalnum() for c in text) / len(text) if text else 0.0,
    }
    for r in STOP_REASONS:
        f[f"stop={r}"] = float(stop_reason == r)
    return f


BEFORE_NAMES: tuple[str, ...] = tuple(extract("", "", ""))
ANSWER_NAMES: tuple[str, ...] = tuple(extract_answer("", "", "", "", "", token_logprobs=(), line_logprobs=(),
                                                     stop_reason="", multiline=False, branched=False))
AFTER_NAMES: tuple[str, ...] = BEFORE_NAMES + ANSWER_NAMES  # stage 2 sees both


def vectorize(features: dict[str, float], names: Sequence[str] = BEFORE_NAMES) -> list[float]:
    """Values in the order of `names` (a filter's, from its manifest); missing names count as 0."""
    return [float(features.get(n, 0.0)) for n in names]
