"""The session writes what happens to each suggestion into the telemetry store (scripted model, real SQLite)."""
import sqlite3
import time

import pytest
from fakes import ScriptedRuntime

from server.engine import Request
from server.recorder import Accepted, Recorder, _line_offset
from server.session import Session
from server.telemetry import TelemetryStore

DOC = "def f(xs):\n    \n\n\ndef g(): pass\n"
OFFSET = DOC.index("    \n") + 4
CANARY = "canary_7f3a_do_not_store"


def make_session(tmp_path, docs=None, delays=(0.05, 0.1)):
    store = TelemetryStore("off", tmp_path / "t.sqlite3", tmp_path / "t.key")
    s = Session(loader=lambda name: ScriptedRuntime(f"{CANARY} = sum(xs)\n    return {CANARY}\n"),
                document_text=lambda uri: (docs or {}).get(uri), store=store)
    s.recorder.delays = delays
    return s


def rows(path, sql):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def complete(s: Session, text=DOC, offset=OFFSET):
    req = Request("file:///w/t.py", text, offset, "python", path="/w/t.py")
    return s.fast_path(req) or s.run_model(req, cancel=None), req


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
    time.sleep(0.07)
    docs[req.uri] = "# one\n# two\n" + req.prefix + third.text[: len(third.text) // 3] + req.suffix
    time.sleep(0.15)
    s.recorder.flush()
    db = tmp_path / "t.sqlite3"
    got = rows(db, "SELECT completion_id, kind, accepted_length, reason FROM events WHERE kind != 'requested'")
    assert (first.id, "partial", 5, None) in got and (second.id, "ignored", None, "typed_over") in got
    survival = rows(db, "SELECT delay_s, survived, value FROM events WHERE kind='survival' "
                        f"AND completion_id='{third.id}' ORDER BY delay_s")
    assert [(d, ok) for d, ok, _ in survival] == [(0.05, 1), (0.1, 0)]
    assert survival[0][2] == 1.0 and survival[1][2] < 0.8
    s.shutdown()


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
