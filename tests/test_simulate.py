"""The typing-replay simulator: its typist logic, and a smoke run end to end through the real server."""
import json
import random
import sqlite3

import pytest

from training.simulate import acceptable_prefix, episodes_for, function_bodies, gap_after, keystrokes, main

SAMPLE = '''import math


def hypot(a, b):
    """Length of the hypotenuse."""
    squares = a * a + b * b
    return math.sqrt(squares)


class Circle:
    def __init__(self, r):
        self.r = r
        self.d = 2 * r

    def area(self):
        value = math.pi * self.r ** 2
        return value
'''


def test_bodies_keystrokes_and_acceptance():
    bodies = function_bodies(SAMPLE, "python")
    lines = SAMPLE.split("\n")
    assert sorted(lines[a].strip() for a, _ in bodies) == ["self.r = r", "squares = a * a + b * b",
                                                           "value = math.pi * self.r ** 2"]
    assert keystrokes("x = 1\n    y") == ["x", " ", "=", " ", "1", "\n    ", "y"]  # Enter auto-indents
    assert acceptable_prefix("x = 1", "x = 1\n") == 5
    assert acceptable_prefix("x = foo(1)", "x = bar(1)") == 4  # word-level partial: "x = "
    assert acceptable_prefix("   ", "   y") == 0 and acceptable_prefix("y", "x") == 0


def test_typing_pace_is_human():
    rng = random.Random(0)
    keys = keystrokes(SAMPLE)
    total = sum(gap_after(k, rng) for k in keys)
    assert 3.5 <= len(keys) / total <= 5.5, len(keys) / total


def test_episodes_remove_a_body_and_keep_the_rest(tmp_path):
    f = tmp_path / "geometry.py"
    f.write_text(SAMPLE)
    eps = episodes_for(f, random.Random(1), per_file=5)
    assert len(eps) == 3
    for ep in eps:
        assert ep.before + ep.body + ep.after == SAMPLE


def run_on_sample(tmp_path, *args: str):
    """`python -m training.simulate` over SAMPLE with `args`; the report folder."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "geometry.py").write_text(SAMPLE)
    out = tmp_path / "out"
    assert main([str(src), "--out", str(out), *args]) == 0
    return out


@pytest.mark.model
def test_smoke_run_leaves_metrics_and_a_telemetry_database(tmp_path):
    out = run_on_sample(tmp_path, "--limit", "3", "--wait", "--per-file", "3", "--data-dir", str(tmp_path / "data"))
    report = json.loads(next(out.glob("simulate-*.json")).read_text())
    assert report["shown"] >= 1 and report["keystrokes"] > 0 and report["model_calls"] >= 1
    assert 0 <= report["accept_rate"] <= 1 and report["time_to_ghost_text_ms"]["p50"] > 0
    assert next(out.glob("simulate-*.png")).stat().st_size > 1000
    with sqlite3.connect(tmp_path / "data" / "telemetry.sqlite3") as db:
        shown = db.execute("SELECT count(*) FROM events WHERE kind='shown'").fetchone()[0]
        decided = db.execute("SELECT count(*) FROM events WHERE kind IN ('accepted','partial','ignored')").fetchone()[0]
    assert shown == report["shown"] and decided == report["shown"]


def test_ratio_interval_is_paired_over_episodes():
    from training.simulate import ratio_interval
    base = [{"shown": s, "keystrokes": 100} for s in (1, 2, 3, 4, 5, 6)]
    same = ratio_interval(base, base, ("shown",), ("keystrokes",))
    assert same == (1.0, 1.0, 1.0)
    doubled = ratio_interval(base, [{"shown": 2 * e["shown"], "keystrokes": 100} for e in base],
                             ("shown",), ("keystrokes",))
    assert doubled == (2.0, 2.0, 2.0)  # paired: every resample keeps the ratio; unpaired it would spread
    noisy = ratio_interval(base, [{"shown": e["shown"] + (3 if i % 2 else -1), "keystrokes": 100}
                                  for i, e in enumerate(base)], ("shown",), ("keystrokes",))
    assert noisy[1] < noisy[0] < noisy[2]


@pytest.mark.model
def test_compared_runs_retype_the_same_bodies_the_same_way(tmp_path):
    """--compare: the second run types exactly the baseline's episodes; with a switch that changes nothing
    (here the default, spelled out) every episode's counters are equal and the ratios are 1 [1, 1]."""
    out = run_on_sample(tmp_path, "--limit", "2", "--wait", "--per-file", "3", "--telemetry", "off",
                        "--compare", "inflight_reuse=false")
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("simulate-*.json"))]
    assert len(runs) == 2 and runs[0]["per_episode"] == runs[1]["per_episode"]
    assert runs[1]["meta"]["options"] == ["inflight_reuse=false"]
    table = next(out.glob("compare-*.md")).read_text()
    assert "1.00 [1.00, 1.00]" in table


@pytest.mark.model
def test_real_time_typing_gives_the_server_the_typists_rhythm(tmp_path):
    """--real-time sleeps every gap: the run takes as long as the typing would, and the server measures the
    typist's rhythm (its typing-speed features), which the virtual clock cannot give it."""
    out = run_on_sample(tmp_path, "--limit", "1", "--real-time", "--per-file", "1",
                        "--data-dir", str(tmp_path / "data"))
    report = json.loads(next(out.glob("simulate-*.json")).read_text())
    assert report["meta"]["real_time"] and 0.7 <= report["speedup_vs_real_time"] <= 1.05
    with sqlite3.connect(tmp_path / "data" / "telemetry.sqlite3") as db:
        gaps = [json.loads(f).get("log_typing_gap", 0.0) for (f,) in db.execute(
            "SELECT features_json FROM suggestions WHERE features_json IS NOT NULL")]
    assert gaps and max(gaps) > 0.05  # log1p(seconds): gaps of a tenth of a second and more
