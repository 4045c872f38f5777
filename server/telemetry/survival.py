"""Survival of accepted completions: how much of the accepted text is still in the document later.

Pure functions; the server schedules the checks (30 s and 2 min after an accept) and logs the result.
The similarity is 1 - d / len(accepted), where d is the smallest edit distance between the accepted text
and any substring of the document near the insertion point (approximate string matching, computed with
Myers' bit-parallel algorithm, so a check costs O(window) big-integer operations rather than
O(len(accepted) * window) Python steps). 1.0 means intact, 0.0 means nothing recognisable is left.
"""
from __future__ import annotations

__all__ = [
    "CHECK_DELAYS_S",
    "SURVIVAL_THRESHOLD",
    "best_window_distance",
    "similarity",
]

SURVIVAL_THRESHOLD = 0.8  # similarity at or above which accepted text counts as "survived"
CHECK_DELAYS_S = (30.0, 120.0)  # when the server checks after an accept


def best_window_distance(pattern: str, text: str) -> int:
    """Smallest Levenshtein distance between `pattern` and any substring of `text` (empty included)."""
    m = len(pattern)
    if m == 0:
        return 0
    if not text:
        return m
    peq: dict[str, int] = {}
    for i, c in enumerate(pattern):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    best = m
    for c in text:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        # Search mode: the top row of the DP matrix is all zeros, so nothing is shifted in at bit 0.
        ph = (ph << 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
        if score < best:
            best = score
            if best == 0:
                break
    return best


def similarity(accepted: str, document: str, offset: int | None = None, *, slack: int | None = None) -> float:
    """How intact `accepted` still is in `document`, 0..1 (1.0 = present unchanged).

    `offset` is where the text was inserted (character offset into `document`, as tracked by the caller);
    the search covers `slack` characters either side (default: max(len(accepted), 256)), so edits before
    the insertion point that shift it are tolerated. With `offset=None` the whole document is searched.
    """
    if not accepted:
        return 1.0
    if offset is not None:
        if slack is None:
            slack = max(len(accepted), 256)
        offset = min(max(offset, 0), len(document))
        document = document[max(0, offset - slack): offset + len(accepted) + slack]
    d = best_window_distance(accepted, document)
    return max(0.0, min(1.0, 1.0 - d / len(accepted)))

