"""Redaction on a corpus of secret formats, with the cursor inside each secret; false positives on the
ordinary code of the corpus test split."""
import pytest
from secret_corpus import leaked, samples

from server.telemetry.redact import redact, redact_fim

COMPLETIONS = ["", '"', "'\n", "\nprint(1)\n", "x"]


def test_recall_with_the_cursor_inside_every_secret():
    cases = leaks = 0
    missed = []
    for name, text, secret in samples():
        at = text.index(secret)
        for cut in sorted({1, len(secret) // 3, len(secret) // 2, len(secret) - 1}):
            for completion in COMPLETIONS:
                p, c, s, _ = redact_fim(text[:at + cut], completion, text[at + cut:])
                cases += 1
                if leaked(secret, p + c + s):
                    leaks += 1
                    missed.append(name)
    recall = 1 - leaks / cases
    print(f"secret corpus: {len(samples())} secrets, {cases} cursor cases, recall {recall:.4f}")
    assert cases > 1000 and recall >= 0.99, sorted(set(missed))


def test_whole_secrets_are_all_found():
    missed = [name for name, text, secret in samples() if leaked(secret, redact(text))]
    assert not missed


@pytest.fixture(scope="module")
def ordinary_lines():
    from training.corpus import split_dir
    lines = []
    for lang, suffix in (("python", "*.py"), ("javascript", "*.js")):
        for f in sorted((split_dir("test") / lang).rglob(suffix))[:400]:
            lines += f.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln for ln in lines if ln.strip()]


def test_false_positives_on_ordinary_code(ordinary_lines):
    changed = [ln for ln in ordinary_lines if redact(ln) != ln]
    rate = len(changed) / len(ordinary_lines)
    print(f"false positives: {len(changed)} of {len(ordinary_lines)} lines ({rate:.4%})")
    assert len(ordinary_lines) > 20_000 and rate <= 0.01, changed[:20]
