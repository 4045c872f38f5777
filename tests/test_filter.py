"""The learned show/no-show filter: scikit-learn and onnxruntime agree, both stages gate the pipeline, exploration
logs its propensity, a broken filter shows everything with one message, and a promoted filter is hot-reloaded."""
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from fakes import FixedFilter, ScriptedRuntime, no_exploration
from filters import synthetic, write_filter

from server.engine import Admitted, Engine, Request
from server.features import (
    AFTER_NAMES,
    BEFORE_NAMES,
    FEATURE_VERSION,
    SAME_SINCE,
    History,
    extract,
    extract_answer,
    first_word_end,
)
from server.filter import Exploration, OnnxStage, decide
from server.filter_files import CURRENT, FilterError, filters_dir, load_filter, promote, watch
from server.names import Reason
from server.runtime import Generation
from server.session import Session
from server.telemetry import TelemetryStore
from training import filter as trainer

REQ = Request("file:///w/t.py", "def f(xs):\n    total = \n", len("def f(xs):\n    total = "), "python")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTLINE_DATA_DIR", str(tmp_path / "data-dir"))
    return tmp_path


def test_onnxruntime_scores_what_scikit_learn_scores(tmp_path):
    d = synthetic(400, BEFORE_NAMES)
    model = trainer.fit(d)
    path = tmp_path / "before.onnx"
    path.write_bytes(trainer.to_onnx(model, len(BEFORE_NAMES)))
    ours = OnnxStage(path, BEFORE_NAMES, {}).scores(d.x)  # the class the server scores with
    assert np.max(np.abs(ours - model.predict_proba(d.x)[:, 1])) < 1e-5
    assert trainer.auc(ours, d) > 0.8  # it learned the rule, so the comparison is not between two constants


SCORE_AND_WAIT = """
import time
from pathlib import Path
from server.filter_files import load_filter
filt = load_filter(Path("models/filter"))
for _ in range(200):
    filt.score("before", {})
time.sleep(15)  # onnxruntime's 1DS uploader first connects about ten seconds after it starts
"""


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace to watch the process's sockets")
def test_onnxruntime_opens_no_network_socket(tmp_path):
    """onnxruntime's official builds send usage events to Microsoft unless told not to (server.filter)."""
    trace = tmp_path / "strace.txt"
    root = Path(__file__).resolve().parent.parent
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=socket", "-o", str(trace),
                    sys.executable, "-c", SCORE_AND_WAIT], cwd=root, check=True, timeout=120)
    sockets = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
    assert not sockets, sockets


def test_a_loaded_filter_scores_features_by_name(data_dir):
    write_filter(filters_dir() / "f1")
    filt = load_filter(filters_dir() / "f1")
    f = extract("def f():\n    ", "\n", "python", History(True, 1.0))
    p = filt.score("before", f)
    assert 0.0 < p < 1.0 and filt.threshold("before", "medium") == 0.5 and filt.threshold("before", "off") == 0.0
    assert filt.score("before", {}) != p  # the vector is built from the names, not from dict order


def test_exploration_serves_a_decaying_share_and_logs_its_propensity():
    ex = Exploration(start=0.5, floor=0.05, half_life=100, rng=random.Random(1))
    reject = FixedFilter(before=0.1)
    ds = [decide(reject, "before", {}, "medium", ex) for _ in range(400)]
    explored = [d for d in ds if d.show]
    assert all(d.exploration and d.propensity == pytest.approx(d.propensity) for d in explored)
    assert 40 < len(explored) < 140 and ds[0].propensity == 0.5 and ds[-1].propensity == 0.05
    assert all(not d.exploration and d.propensity > 0 for d in ds if not d.show)
    assert decide(reject, "before", {}, "off", ex).show and decide(FixedFilter(before=0.9), "before", {}, "medium",
                                                                   ex).propensity == 1.0


def test_the_answer_stage_drops_an_answer_not_worth_showing():
    rt = ScriptedRuntime("sum(xs)\n")
    engine = Engine(rt, filt=FixedFilter(before=0.9, after=0.1), explore=no_exploration())
    r = engine.complete(REQ)
    assert r.reason is Reason.FILTERED and r.text == "" and r.decision.stage == "after" and len(rt.prompts) == 1
    assert set(r.features) == set(AFTER_NAMES)
    assert engine.from_cache(REQ) is None  # judged again (the user may have turned the filter down)
    shown = Engine(rt, filt=FixedFilter(before=0.9, after=0.9), explore=no_exploration()).complete(REQ)
    assert shown.text == "sum(xs)" and shown.decision.stage == "after" and shown.decision.score == 0.9


def test_a_request_a_running_generation_will_answer_is_not_judged_until_it_needs_the_model():
    engine = Engine(ScriptedRuntime("sum(xs)\n"), filt=FixedFilter(before=0.1), explore=no_exploration())
    free = engine.admit(REQ, free=True)  # in-flight reuse: it costs no model call
    assert isinstance(free, Admitted) and free.decision.stage == ""
    judged = engine.judge(free)  # the generation parted from the typing: now it would need its own call
    assert judged.reason is Reason.FILTERED and judged.id == free.id and judged.decision.stage == "before"


def test_a_request_explored_at_admission_is_shown_whatever_the_answer_stage_says():
    always = Exploration(start=1.0, floor=1.0)
    r = Engine(ScriptedRuntime("sum(xs)\n"), filt=FixedFilter(before=0.1, after=0.1), explore=always).complete(REQ)
    assert r.text == "sum(xs)" and r.decision.exploration and r.decision.stage == "before"


def test_a_corrupt_filter_shows_everything_and_says_so_once(data_dir):
    folder = filters_dir() / "broken"
    write_filter(folder)
    (folder / "before.onnx").write_bytes(b"not onnx")
    with pytest.raises(FilterError, match="cannot be loaded"):
        load_filter(folder)
    promote(folder)
    events: list = []
    s = Session(notify=lambda kind, payload: events.append((kind, payload)),
                loader=lambda name: ScriptedRuntime("sum(xs)\n"))
    s.load_model()
    assert s.engine.filter.name == "none" and s.generate(REQ, s.admit(REQ), threading.Event()).text == "sum(xs)"
    messages = [p["text"] for k, p in events if k == "message"]
    assert len(messages) == 1 and "broken" in messages[0] and "showing every suggestion" in messages[0]
    s.shutdown()


def test_a_promoted_filter_serves_without_a_restart(data_dir):
    s = Session(loader=lambda name: ScriptedRuntime("sum(xs)\n"))
    s.load_model()
    assert s.engine.filter.name != "new"  # the shipped default, or none
    changed = threading.Event()
    stop = watch(changed.set)
    write_filter(filters_dir() / "new")
    promote(filters_dir() / "new")
    assert changed.wait(10) and (filters_dir() / CURRENT).read_text().strip() == "new"
    for _ in range(100):  # the session's own watcher reloads on the same events
        if s.engine.filter.name == "new":
            break
        threading.Event().wait(0.1)
    assert s.engine.filter.name == "new"
    explore = s.engine.explore
    changed.clear()
    write_filter(filters_dir() / "written-not-promoted")  # a background update that lost
    assert changed.wait(10)
    threading.Event().wait(0.5)
    assert s.engine.filter.name == "new" and s.engine.explore is explore  # nothing reloaded or reset
    stop()
    s.shutdown()


def telemetry_db(path, n: int, seed: int = 0, flipped: int = 0):
    """A telemetry database as the server writes it: requests whose acceptance follows a rule of their features
    (the opposite rule for the first `flipped` rows), a cache hit continuing some of them."""
    rng = random.Random(seed)
    store = TelemetryStore("metrics", path, path.parent / "key")
    t0 = time.time() - 2 * n  # recent: the store prunes rows older than its retention
    for i in range(n):
        at_newline = rng.random() < 0.5
        prefix = "def f(x):\n    " if at_newline else "def f(x):\n    ret"
        f = extract(prefix, "\n", "python", History(None, 1.0))
        good = rng.random() < (0.7 if at_newline != (i < flipped) else 0.03)
        f.update({"mean_logprob": -0.2 if good else -1.5, "stop=stop": 1.0})
        cid = f"c{i}"
        store.record_request(cid, language="python", model_id="m", completion="x" * 10, features=f,
                             status="model", feature_version=FEATURE_VERSION, ts=t0 + i)
        store.record_outcome(cid, "shown")
        if good and i % 3 == 0:  # typed through and accepted from the cache: the model call was still worth it
            store.record_request(f"k{i}", language="python", model_id="m", completion="x" * 8, status="cache",
                                 parent_id=cid, ts=t0 + i + 0.5)
            store.record_outcome(f"k{i}", "shown")
            store.record_outcome(f"k{i}", "accepted")
        else:
            store.record_outcome(cid, "accepted" if good else "ignored")
    store.close()
    return path


def test_the_shipped_default_loads_and_learned_where_a_model_call_pays():
    folder = Path(__file__).resolve().parent.parent / "models" / "filter"
    filt = load_filter(folder)  # the real file, not the conftest's stand-in
    manifest = json.loads((folder / "filter.json").read_text())
    assert set(filt.stages) == {"before", "after"}
    for stage in manifest["stages"].values():  # the simulator's clock is not a user's: none of its features
        assert not set(stage["features"]) & set(trainer.CLOCK_FEATURES)
        assert stage["thresholds"]["low"] <= stage["thresholds"]["medium"] <= stage["thresholds"]["high"]
    medium = filt.threshold("before", "medium")
    empty_line = extract("def area(w, h):\n    ", "\n", "python")
    after_a_call = extract("def area(w, h):\n    x = f(1, 2)", "\n", "python")
    assert filt.score("before", empty_line) > medium > filt.score("before", after_a_call)


def test_the_answer_stage_reads_how_sure_the_model_was_of_the_first_word():
    assert (first_word_end("  total = 0"), first_word_end("(x)"), first_word_end("")) == (7, 1, 0)
    f = extract_answer("total = 0", "total = 0", "def f():\n    ", "\n", "python", token_logprobs=[-0.1, -0.2, -3.0],
                       line_logprobs=[-3.0], stop_reason="eos", multiline=False, branched=False,
                       first_word_logprobs=[-0.1, -0.2], first_margin=2.5)
    assert f["first_word_logprob"] == pytest.approx(-0.3) and f["first_margin"] == 2.5
    assert f["min_logprob"] == -3.0  # the line's least certain token is a later one
    # the margin is the first non-blank token's over its runner-up
    gen = Generation("\n  x", 10, 0, 2, 1.0, 1.0, "eos", steps=[(1, -0.5, "\n  ", 2, -1.0), (3, -0.2, "x", 4, -2.2)])
    assert gen.first_margin() == pytest.approx(2.0)


def test_labels_follow_continuations():
    rows = [{"completion_id": "a", "accepted": 0, "accepted_length": None, "parent_id": None, "shown": 0},
            {"completion_id": "b", "accepted": 0, "accepted_length": None, "parent_id": "a", "shown": 0},
            {"completion_id": "c", "accepted": 1, "accepted_length": 5, "parent_id": "b", "shown": 1},
            {"completion_id": "d", "accepted": 0, "accepted_length": None, "parent_id": None, "shown": 0},
            {"completion_id": "e", "accepted": 0, "accepted_length": None, "parent_id": "d", "shown": 1}]
    assert trainer.label(rows) == {"a": (True, 5, True), "b": (True, 5, True), "c": (True, 5, True),
                                   "d": (False, 0, True), "e": (False, 0, True)}
    # an answer seen only through a continuation is a row of the answer stage; one never seen is not
    features = {"mean_logprob": -0.5}
    served = [{**r, "status": "model" if r["parent_id"] is None else "cache", "feature_version": FEATURE_VERSION,
               "features": features if r["parent_id"] is None else {}} for r in rows]
    served.append({**served[0], "completion_id": "f", "shown": 0})
    assert [r["completion_id"] for r in trainer.stage_rows(served, trainer.label(served), "after")] == ["a", "d"]
    # a row logged before the answer features changed still trains the first stage, not the second
    old = [{**r, "feature_version": SAME_SINCE["after"] - 1} for r in served]
    assert [r["completion_id"] for r in trainer.stage_rows(old, trainer.label(old), "after")] == []
    assert len(trainer.stage_rows(old, trainer.label(old), "before")) == 3


def test_each_level_keeps_its_stages_share_of_the_accepted_characters():
    rng = np.random.default_rng(0)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(np.int64)
    d = trainer.StageData(np.zeros((400, 1), np.float32), y, np.ones(400), y * rng.integers(1, 30, 400))
    for stage, keep in trainer.KEEP.items():
        thr = trainer.thresholds(p, d, stage)
        assert thr["low"] <= thr["medium"] <= thr["high"]
        for level, share in keep.items():
            at = trainer.sweep(p, d, np.asarray([thr[level]]))[0]
            above = trainer.sweep(p, d, np.asarray([p[p > thr[level]].min()]))[0]
            assert at["chars_kept"] >= share > above["chars_kept"]  # the highest threshold that keeps it
    assert trainer.thresholds(p, d, "before")["medium"] > trainer.thresholds(p, d, "after")["medium"]


def test_thresholds_are_chosen_on_scores_from_models_that_did_not_see_the_row():
    rng = np.random.default_rng(1)  # noise: whatever a model finds in its own rows does not carry over
    y = (rng.random(300) < 0.3).astype(np.int64)
    d = trainer.StageData(rng.normal(size=(300, 60)).astype(np.float32), y, np.ones(300), y * 5)
    model = trainer.fit(d, c=1.0)
    in_sample = model.predict_proba(d.x)[:, 1]
    oof = trainer.out_of_fold(partial(trainer.fit, c=1.0), d, model)
    assert trainer.auc(in_sample, d) > 0.75 and abs(trainer.auc(oof, d) - 0.5) < 0.1


def test_training_writes_a_filter_that_learned_and_promotes_it_only_when_better(data_dir, tmp_path):
    db = telemetry_db(tmp_path / "t.sqlite3", 600)
    assert trainer.main(["--db", str(db), "--name", "first"]) == 0
    assert (filters_dir() / CURRENT).read_text().strip() == "first"
    report = json.loads((filters_dir() / "first" / "report.json").read_text())
    for stage in ("before", "after"):
        r = report["stages"][stage]
        assert r["auc"]["held_out"] > 0.7 and r["onnx_max_abs_diff"] < 1e-5
        assert r["log_loss"]["held_out"] < r["log_loss"]["base_rate"]
        assert r["at_thresholds_held_out"]["high"]["accept_rate"] > r["accept_share"]["held_out"]
    assert (filters_dir() / "first" / "report.png").stat().st_size > 1000
    filt = load_filter(filters_dir() / "first")
    good = extract("def f(x):\n    ", "\n", "python", History(None, 1.0))
    bad = extract("def f(x):\n    ret", "\n", "python", History(None, 1.0))
    assert filt.score("before", good) > filt.score("before", bad)
    # trained on rows that the newest ones (held out) contradict, a filter scores worse there than the one
    # serving: it is written, not promoted
    drifted = telemetry_db(tmp_path / "drifted.sqlite3", 600, seed=1, flipped=450)
    assert trainer.main(["--db", str(drifted), "--name", "second"]) == 0
    assert (filters_dir() / "second" / "filter.json").is_file()
    assert (filters_dir() / CURRENT).read_text().strip() == "first"


def test_an_online_update_continues_the_serving_filter_and_is_promoted_when_better(data_dir, tmp_path):
    assert trainer.main(["--db", str(telemetry_db(tmp_path / "a.sqlite3", 600)), "--name", "first"]) == 0
    first = json.loads((filters_dir() / "first" / "filter.json").read_text())
    # the user's outcomes follow the opposite rule: continuing the serving filter on them must follow the user
    flipped = telemetry_db(tmp_path / "b.sqlite3", 600, seed=2, flipped=600)
    assert trainer.main(["--db", str(flipped), "--online", "--name", "online-1"]) == 0
    assert (filters_dir() / CURRENT).read_text().strip() == "online-1"
    online = json.loads((filters_dir() / "online-1" / "filter.json").read_text())
    assert online["stages"]["before"]["features"] == first["stages"]["before"]["features"]
    filt = load_filter(filters_dir() / "online-1")
    newline = extract("def f(x):\n    ", "\n", "python", History(None, 1.0))
    word = extract("def f(x):\n    ret", "\n", "python", History(None, 1.0))
    assert filt.score("before", word) > filt.score("before", newline)
    report = json.loads((filters_dir() / "online-1" / "report.json").read_text())
    assert report["stages"]["before"]["log_loss"]["held_out"] < report["stages"]["before"]["log_loss"]["serving"]


def test_with_no_filter_serving_an_online_update_trains_one_from_zero(data_dir, tmp_path, monkeypatch):
    import server.filter_files
    monkeypatch.setattr(server.filter_files, "SHIPPED", tmp_path / "no-shipped-filter")
    monkeypatch.setattr(trainer, "SHIPPED", tmp_path / "no-shipped-filter")
    assert trainer.main(["--db", str(telemetry_db(tmp_path / "a.sqlite3", 600)), "--online", "--name", "cold"]) == 0
    assert (filters_dir() / CURRENT).read_text().strip() == "cold"
    assert set(load_filter(filters_dir() / "cold").stages) == {"before", "after"}


def test_the_server_updates_its_filter_in_the_background_every_n_outcomes(data_dir, tmp_path, monkeypatch):
    from server.options import Options
    assert trainer.main(["--db", str(telemetry_db(tmp_path / "a.sqlite3", 600)), "--name", "first"]) == 0
    db = telemetry_db(tmp_path / "data" / "telemetry.sqlite3", 600, seed=2, flipped=600)  # the user's history
    store = TelemetryStore("metrics", db, db.parent / "key")
    s = Session(loader=lambda name: ScriptedRuntime("sum(xs)\n"), store=store,
                options=Options(filter_update_every=3))
    s.configure({"telemetryLevel": "metrics", "clientTelemetryEnabled": True})
    s.load_model()
    assert s.engine.filter.name == "first"
    for i in range(3):
        s.outcome({"id": f"x{i}", "outcome": "ignored", "reason": "typed_over"})
    assert s.updating is not None and s.updating.wait(120) == 0
    assert (filters_dir() / CURRENT).read_text().strip().startswith("online-")
    for _ in range(100):
        if s.engine.filter.name.startswith("online-"):
            break
        threading.Event().wait(0.1)
    assert s.engine.filter.name.startswith("online-")
    s.shutdown()
