"""Features for the show/no-show filter, shared by the server and the trainer so they cannot drift.

The set follows Copilot's contextual filter (reverse-engineered): previous outcome, time since the last
decision, line and document shape at the cursor, language and last characters. All are known before
generation, so the filter can skip the model call entirely.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Bumped whenever a feature is added, removed or computed differently: telemetry stores it next to the
# features, so a trainer never mixes rows extracted by different code.
FEATURE_VERSION = 1

LANGUAGES = ("python", "javascript", "typescript", "javascriptreact", "typescriptreact", "go", "rust",
             "java", "c", "cpp", "csharp", "ruby", "php", "shellscript", "html", "css", "json", "markdown")
LAST_CHARS = tuple("()[]{}.,:;=+-*/<>\"'#_ \t") + ("alpha", "digit", "other", "none")


@dataclass(frozen=True)
class History:
    """What the server remembers about the previous suggestion in this session."""
    last_accepted: bool | None = None
    seconds_since_last: float | None = None


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


def extract(prefix: str, suffix: str, language: str, history: History = History()) -> dict[str, float]:
    line = prefix.rsplit("\n", 1)[-1]
    rest = suffix.split("\n", 1)[0]
    doc_len = len(prefix) + len(suffix)
    f: dict[str, float] = {
        "last_accepted": {None: 0.0, True: 1.0, False: -1.0}[history.last_accepted],
        "log_since_last": math.log1p(history.seconds_since_last) if history.seconds_since_last else 0.0,
        "whitespace_after_cursor": float(not rest.strip()),
        "log_line_len": math.log1p(len(line)),
        "log_line_len_trimmed": math.log1p(len(line.strip())),
        "log_doc_len": math.log1p(doc_len),
        "log_offset": math.log1p(len(prefix)),
        "relative_position": len(prefix) / doc_len if doc_len else 0.0,
        "line_is_blank": float(not line.strip()),
    }
    for lang in LANGUAGES:
        f[f"lang={lang}"] = float(language == lang)
    last = line[-1] if line else None
    last_ns = next((c for c in reversed(line) if not c.isspace()), None)
    for c in LAST_CHARS:
        f[f"last_char={c}"] = float(_char_class(last) == c)
        f[f"last_nonspace={c}"] = float(_char_class(last_ns) == c)
    return f


FEATURE_NAMES: tuple[str, ...] = tuple(extract("", "", ""))


def vectorize(features: dict[str, float]) -> list[float]:
    """Fixed-order vector for the ONNX model; missing names count as 0."""
    return [float(features.get(n, 0.0)) for n in FEATURE_NAMES]
