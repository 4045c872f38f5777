import random
import time

from server.telemetry.survival import SURVIVAL_THRESHOLD, best_window_distance, similarity

ACCEPTED = "    total = sum(values)\n    return total / len(values)\n"
DOC_BEFORE = "def mean(values):\n"
DOC_AFTER = "\n\nprint(mean([1, 2, 3]))\n"


def _levenshtein_window(p: str, t: str) -> int:
    """Reference: semi-global edit distance by plain dynamic programming."""
    prev = list(range(len(p) + 1))
    best = prev[-1]
    for c in t:
        cur = [0]
        for i in range(1, len(p) + 1):
            cur.append(min(prev[i] + 1, cur[i - 1] + 1, prev[i - 1] + (p[i - 1] != c)))
        prev = cur
        best = min(best, cur[-1])
    return best


def test_matches_reference_dp():
    rnd = random.Random(7)
    for _ in range(1500):
        p = "".join(rnd.choice("ab c\n") for _ in range(rnd.randint(1, 80)))
        t = "".join(rnd.choice("abc d\n") for _ in range(rnd.randint(0, 120)))
        assert best_window_distance(p, t) == _levenshtein_window(p, t), (p, t)


def test_intact_text_is_one():
    doc = DOC_BEFORE + ACCEPTED + DOC_AFTER
    assert similarity(ACCEPTED, doc, len(DOC_BEFORE)) == 1.0
    assert similarity(ACCEPTED, doc) == 1.0


def test_deleted_text_is_zero():
    doc = DOC_BEFORE + "    pass\n" + DOC_AFTER
    s = similarity(ACCEPTED, doc, len(DOC_BEFORE))
    assert s < 0.4
    assert similarity("abc", "", 0) == 0.0


def test_small_edit_keeps_most():
    edited = ACCEPTED.replace("total", "tot")
    doc = DOC_BEFORE + edited + DOC_AFTER
    s = similarity(ACCEPTED, doc, len(DOC_BEFORE))
    assert SURVIVAL_THRESHOLD < 0.85 < s < 1.0


def test_half_rewritten():
    edited = "    total = sum(values)\n    return statistics.fmean(values)  # faster\n"
    s = similarity(ACCEPTED, DOC_BEFORE + edited + DOC_AFTER, len(DOC_BEFORE))
    assert 0.4 < s < SURVIVAL_THRESHOLD


def test_shifted_by_edits_before_the_offset():
    doc = DOC_BEFORE + "# a comment added above\n" * 3 + ACCEPTED + DOC_AFTER
    assert similarity(ACCEPTED, doc, len(DOC_BEFORE)) == 1.0


def test_window_limits_the_search():
    far = "x" * 5000 + ACCEPTED
    assert similarity(ACCEPTED, far, 0, slack=100) < 0.5
    assert similarity(ACCEPTED, far, None) == 1.0
    # an offset past the end is clamped
    assert similarity(ACCEPTED, DOC_BEFORE + ACCEPTED, 10_000) == 1.0


def test_empty_accepted_text():
    assert similarity("", "anything", 0) == 1.0
    assert best_window_distance("", "x") == 0


def test_long_completion_is_fast():
    accepted = "".join(random.Random(1).choice("abcdefgh \n") for _ in range(3000))
    doc = "y" * 20_000 + accepted[:2000] + "z" * 20_000
    t0 = time.perf_counter()
    s = similarity(accepted, doc, 20_000)
    assert time.perf_counter() - t0 < 0.5
    assert 0.6 < s < 0.7
