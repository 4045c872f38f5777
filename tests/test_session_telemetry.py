"""The session writes what happens to each suggestion into the telemetry store (scripted model, real SQLite)."""
import sqlite3
import threading

import pytest
from fakes import ManualTimers, ScriptedRuntime

from server.engine import Request, Result
from server.features import FEATURE_VERSION
from server.filter import Decision
from server.names import Reason
from server.options import Options
from server.session import Session
from server.telemetry import Accepted, Recorder, TelemetryStore
from server.telemetry.recorder import _line_offset

DOC = "def f(xs):\n    \n\n\ndef g(): pass\n"
OFFSET = DOC.index("    \n") + 4
CANARY = "canary_7f3a_do_not_store"


def make_session(tmp_path, docs=None, delays=(0.05, 0.1)):
    store = TelemetryStore("off", tmp_path / "t.sqlite3", tmp_path / "t.key")
    s = Session(loader=lambda name: ScriptedRuntime(f"{CANARY} = sum(xs)\n    return {CANARY}\n"),
                document_text=lambda uri: (docs or {}).get(uri), store=store,
                options=Options(filter="off"))  # the scripted model's answers are not what the shipped filter judges
    s.recorder.delays = delays
    s.recorder.timers = ManualTimers()
    return s


def rows(path, sql):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def complete(s: Session, text=DOC, offset=OFFSET):
    req = Request("file:///w/t.py", text, offset, "python", path="/w/t.py")
    got = s.admit(req)
    return (got if isinstance(got, Result) else s.generate(req, got, cancel=None)), req


@pytest.mark.parametrize("level,client,expect", [("off", True, None), ("training", False, None),
                                                 ("metrics", True, "metrics"), ("training", True, "training")])
def test_effective_level_decides_what_is_written(tmp_path, level, client, expect):
    s = make_session(tmp_path)
    s.configure({"telemetryLevel": level, "clientTelemetryEnabled": client})
    s.load_model()
    result, _ = complete(s)
    assert result.text
    s.outcome({"id": result.id, "outcome": "shown"})
    s.recorder.flush()
    db = tmp_path / "t.sqlite3"
    if expect is None:
        assert not db.exists()
        return
    (stored_level, raw), = rows(db, "SELECT level, completion FROM suggestions")
    assert stored_level == expect
    assert (CANARY in (raw or "")) == (expect == "training")
    assert [k for k, in rows(db, "SELECT kind FROM events ORDER BY id")] == ["requested", "shown"]
    s.shutdown()
    if expect == "metrics":  # no raw code anywhere, WAL included
        for f in tmp_path.iterdir():
            assert CANARY.encode() not in f.read_bytes(), f


def test_outcomes_reason_length_and_survival(tmp_path):
    docs = {}
    s = make_session(tmp_path, docs)
    s.configure({"telemetryLevel": "metrics"})
    s.load_model()
    first, req = complete(s)
    s.outcome({"id": first.id, "outcome": "partial", "acceptedLength": 5})
    second, _ = complete(s)
    s.outcome({"id": second.id, "outcome": "ignored", "reason": "typed_over"})
    third, _ = complete(s)
    # Accept, then edits above move the text down two lines, then half of it is deleted.
    accepted_doc = req.prefix + third.text + req.suffix
    docs[req.uri] = "# one\n# two\n" + accepted_doc
    s.document_changed(req.uri, [(0, 0, 2)])
    s.outcome({"id": third.id, "outcome": "accepted"})
    s.recorder.timers.advance(0.05)
    docs[req.uri] = "# one\n# two\n" + req.prefix + third.text[: len(third.text) // 3] + req.suffix
    s.recorder.timers.advance(0.05)
    s.recorder.flush()
    db = tmp_path / "t.sqlite3"
    got = rows(db, "SELECT completion_id, kind, accepted_length, reason FROM events WHERE kind != 'requested'")
    assert (first.id, "partial", 5, None) in got and (second.id, "ignored", None, "typed_over") in got
    survival = rows(db, "SELECT delay_s, survived, value FROM events WHERE kind='survival' "
                        f"AND completion_id='{third.id}' ORDER BY delay_s")
    assert [(d, ok) for d, ok, _ in survival] == [(0.05, 1), (0.1, 0)]
    assert survival[0][2] == 1.0 and survival[1][2] < 0.8
    s.shutdown()


def test_a_results_generation_and_filter_fields_are_written(tmp_path):
    rec = Recorder(TelemetryStore("metrics", tmp_path / "t.sqlite3", tmp_path / "t.key"))
    req = Request("file:///w/t.py", DOC, OFFSET, "python", path="/w/t.py")
    rec.request(Result("m1", "x = 1", "model", features={"lang=python": 1.0}, stop_reason="eos",
                       tokens_generated=7, decision=Decision(True, 0.4, filter="logistic")), req)
    rec.request(Result("h1", "= 1", "cache", parent_id="m1"), req)
    rec.request(Result("e1", "", "model", reason=Reason.EMPTY, features={"lang=python": 1.0},
                       stop_reason="length", tokens_generated=64), req)
    rec.flush()
    rec.close()
    got = rows(tmp_path / "t.sqlite3", "SELECT completion_id, status, parent_id, stop_reason, tokens_generated, "
                                       "feature_version, filter_id FROM suggestions ORDER BY rowid")
    assert got == [("m1", "model", None, "eos", 7, FEATURE_VERSION, "logistic"),
                   ("h1", "cache", "m1", None, 0, None, "none"),
                   ("e1", "empty", None, "length", 64, FEATURE_VERSION, "none")]


def test_survival_checks_share_one_thread_that_close_stops(tmp_path):
    checked = threading.Semaphore(0)

    def document_text(uri):
        checked.release()
        return "kept"
    rec = Recorder(TelemetryStore("metrics", tmp_path / "t.sqlite3", tmp_path / "t.key"), document_text,
                   delays=(0.05, 60))
    before = set(threading.enumerate())
    for i in range(20):
        rec.outcome(f"c{i}", "accepted", None, None, Accepted(f"c{i}", "u", 0, "kept"))
    assert all(checked.acquire(timeout=10) for _ in range(20))  # the 20 short checks ran
    rec.flush()
    started = [t for t in set(threading.enumerate()) - before if t.name == "ghostline-survival"]
    assert len(started) == 1
    rec.close()  # the 60 s checks are dropped, not waited for
    started[0].join(1)
    assert not started[0].is_alive()
    assert rows(tmp_path / "t.sqlite3", "SELECT delay_s, survived, count(*) FROM events WHERE kind = 'survival' "
                                        "GROUP BY delay_s") == [(0.05, 1, 20)]


def test_line_tracking_follows_edits_above():
    rec = Recorder(TelemetryStore("off"))
    acc = Accepted("x", "u", 10, "text")
    rec._tracked["u"] = [acc]
    rec.document_changed("u", [(0, 0, 3), (2, 5, 0), (20, 20, 5)])
    assert acc.line == 10 + 3 - 3
    rec.document_changed("u", [(8, 12, 1)])  # the edit covers the text's start: search from the edit
    assert acc.line == 8
    assert _line_offset("a\nbc\nd", 2) == 5 and _line_offset("a", 9) == 1
    rec.close()


def test_broken_database_keeps_completions_and_says_so_once(tmp_path):
    messages = []
    (tmp_path / "t.sqlite3").write_bytes(b"this is not a database" * 100)
    s = make_session(tmp_path)
    s.notify = lambda kind, payload: messages.append(payload.get("text", "")) if kind == "message" else None
    s.configure({"telemetryLevel": "metrics"})
    s.load_model()
    for _ in range(3):
        result, _ = complete(s, DOC.replace("xs", "ys"))
        assert result.text
        s.outcome({"id": result.id, "outcome": "shown"})
    s.recorder.flush()
    assert list(tmp_path.glob("t.sqlite3.corrupt-*")), "corrupt file not quarantined"
    assert len(rows(tmp_path / "t.sqlite3", "SELECT * FROM suggestions")) >= 1
    assert sum("telemetry" in m.lower() for m in messages) == 1, messages
    s.shutdown()
