import json
from pathlib import Path

import pytest

from training import evaluate
from training.metrics import percentiles
from training.fim_tasks import Task, doctest_checks_hole, list_files, make_tasks, python_roots, run_doctest


def test_edit_similarity_and_percentiles():
    assert evaluate.edit_similarity("abc", "abc") == 1.0
    assert evaluate.edit_similarity("abc", "abd") == pytest.approx(2 / 3)
    assert evaluate.edit_similarity("", "xyz") == 0.0
    p = percentiles([float(i) for i in range(1, 101)])
    assert p == {"p50": pytest.approx(50.5), "p90": pytest.approx(90.1), "p99": pytest.approx(99.01)}
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}


def test_tasks_come_from_installed_code_and_reassemble():
    files = list_files(python_roots(), ".py")
    assert files, "no installed Python code found"
    tasks = make_tasks("python", files, 12, seed=3)
    assert len(tasks) == 12 and {t.kind for t in tasks} == {"single", "multi", "span"}
    for t in tasks:
        assert t.middle.strip()
        by_name = [f for f in files if f.name == Path(t.path).name]
        assert any((t.prefix + t.middle + t.suffix) == f.read_text() for f in by_name)
    assert make_tasks("python", files, 12, seed=3) == tasks  # deterministic for a seed


def test_doctest_execution_tells_right_from_wrong(tmp_path):
    tasks = [t for t in make_tasks("python", list_files(python_roots(), ".py"), 60, seed=1) if t.doctest]
    runnable = [t for t in tasks if doctest_checks_hole(t)]
    if not runnable:
        pytest.skip("no doctest on this machine exercises its hole")
    t = runnable[0]
    assert run_doctest(t, t.middle) is True
    assert run_doctest(t, "return None  # wrong") is False


@pytest.mark.model
def test_evaluate_smoke(tmp_path, capsys):
    assert evaluate.main(["--n", "3", "--js", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pipeline/baseline" in out and "P50" in out
    report = json.loads(next(tmp_path.glob("eval-*.json")).read_text())
    assert report["meta"]["n_tasks"] == 3 and len(report["rows"]) == 3
    assert set(report["summary"]) >= {"pipeline", "baseline", "ratio"}
    assert next(tmp_path.glob("eval-*.png")).stat().st_size > 1000
