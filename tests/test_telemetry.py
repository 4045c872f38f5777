"""Telemetry store and CLI, on real SQLite files in tmp_path (no mocks)."""
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from server import telemetry as T
from server.telemetry import TelemetryStore, effective_level, keyed_hash, prompt_text
from training import telemetry as cli

ROOT = Path(__file__).resolve().parent.parent
CANARY = "CANARY_7f3a9"
PREFIX = f"def {CANARY}_fn(x):\n    # {CANARY} in a comment\n    y = '{CANARY}'\n    return "
SUFFIX = f"\n\nprint({CANARY}_fn(2))\n"
COMPLETION = f"x * 2  # {CANARY}"
LATENCY = {"context_ms": 2.5, "generate_ms": 80.0, "post_ms": 0.4, "filter_ms": 0.1, "total_ms": 83.0}
FEATURES = {"log_line_len": 1.2, "lang=python": 1.0, "lang=go": 0.0, "bad": CANARY, "nan": float("nan")}


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "data" / "telemetry.sqlite3", tmp_path / "config" / "telemetry.key"


def store_at(paths, level="metrics", **kw):
    db, key = paths
    return TelemetryStore(level, db, key, **kw)


def request(store, cid="c1", **kw):
    args = dict(language="python", model_id="qwen2.5-coder-1.5b:q4_k_m", prefix=PREFIX, suffix=SUFFIX,
                completion=COMPLETION, latency=LATENCY, features=FEATURES, filter_score=0.42,
                exploration=True, propensity=0.1, path="/work/project/app.py", status="ok")
    args.update(kw)
    return store.record_request(cid, **args)


def all_bytes(db: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = db.with_name(db.name + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def rows(db: Path, sql: str, args=()):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# --- levels -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("user,client,expected", [
    ("off", True, "off"), ("metrics", True, "metrics"), ("training", True, "training"),
    ("training", False, "off"), ("metrics", False, "off"), ("bogus", True, "off"),
])
def test_effective_level(user, client, expected):
    assert effective_level(user, client) == expected


def test_off_writes_nothing(paths):
    db, key = paths
    s = store_at(paths, "off")
    assert not request(s)
    assert not s.record_outcome("c1", "shown") and not s.record_survival("c1", 30, 1.0)
    assert not s.open()
    s.close()
    assert not db.parent.exists() and not key.parent.exists()


def test_switching_levels(paths):
    db, _ = paths
    s = store_at(paths, "metrics")
    assert request(s, "a")
    s.set_level("off")
    assert not s.record_outcome("a", "shown")
    s.set_level("training")
    assert s.record_outcome("a", "shown")
    assert rows(db, "SELECT kind FROM events ORDER BY id") == [("requested",), ("shown",)]
    s.close()


# --- privacy ------------------------------------------------------------------------------------------
def test_metrics_level_stores_no_code(paths):
    db, key_path = paths
    s = store_at(paths, "metrics")
    assert request(s, "c1")
    assert s.record_outcome("c1", "shown") and s.record_outcome("c1", "partial", 5)
    assert s.record_outcome("c1", "ignored", reason="typed_over") and s.record_outcome("c1", "helpful")
    assert s.record_survival("c1", 30, 0.93)
    assert db.with_name(db.name + "-wal").exists()  # still open, WAL not checkpointed

    key = bytes.fromhex(key_path.read_text().strip())
    assert len(key) == 32
    texts = [PREFIX, SUFFIX, COMPLETION, prompt_text(PREFIX, SUFFIX), PREFIX + SUFFIX]
    for phase in ("before checkpoint", "after checkpoint"):
        data = all_bytes(db)
        assert CANARY.encode() not in data, phase
        for t in texts:
            digest = hashlib.sha256(t.encode()).digest()
            assert digest.hex().encode() not in data and digest not in data, phase
        s.close()

    (ph, ch, raw_p, raw_s, raw_c, level, lat, feats, score, expl, prop) = rows(
        db, "SELECT prompt_hmac, completion_hmac, prefix, suffix, completion, level, latency_json, "
            "features_json, filter_score, exploration, propensity FROM suggestions")[0]
    assert ph == hmac.new(key, prompt_text(PREFIX, SUFFIX).encode(), hashlib.sha256).hexdigest()
    assert ch == hmac.new(key, COMPLETION.encode(), hashlib.sha256).hexdigest() == keyed_hash(key, COMPLETION)
    assert (raw_p, raw_s, raw_c, level) == (None, None, None, "metrics")
    assert json.loads(lat) == LATENCY
    assert json.loads(feats) == {"log_line_len": 1.2, "lang=python": 1.0}  # sparse, numbers only
    assert (score, expl, prop) == (0.42, 1, 0.1)


def test_files_are_private(paths):
    db, key_path = paths
    s = store_at(paths, "metrics")
    assert request(s)
    for p in (db, db.with_name(db.name + "-wal"), key_path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    s.close()


def test_key_is_stable_and_outside_the_db(paths):
    db, key_path = paths
    s = store_at(paths, "metrics")
    assert request(s, "a")
    s.close()
    k1 = key_path.read_bytes()
    s2 = store_at(paths, "metrics")
    assert request(s2, "b")
    s2.close()
    assert key_path.read_bytes() == k1
    assert k1.strip() not in all_bytes(db) and bytes.fromhex(k1.decode().strip()) not in all_bytes(db)
    h = rows(db, "SELECT DISTINCT prompt_hmac FROM suggestions")
    assert len(h) == 1  # same prompt, same key: joinable across sessions


def test_malformed_key_is_replaced(paths):
    _, key_path = paths
    key_path.parent.mkdir(parents=True)
    key_path.write_text("not a key")
    assert len(T.load_or_create_key(key_path)) == 32
    assert len(key_path.read_text().strip()) == 64


SECRET_PREFIX = ('import boto3\nAWS_KEY = "AKIAZ3MPLE7Q2W4R6T8Y"\npassword = "hunter2hunter2"\n'
                 f"# {CANARY}\ndef handler(event):\n    return ")
SECRET_COMPLETION = 'requests.get(url, headers={"Authorization": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"})'


def test_training_level_stores_redacted_code(paths):
    db, _ = paths
    s = store_at(paths, "training")
    assert request(s, "t1", prefix=SECRET_PREFIX, completion=SECRET_COMPLETION)
    s.close()
    data = all_bytes(db)
    assert CANARY.encode() in data  # ordinary code is kept at this level
    for secret in (b"AKIAZ3MPLE7Q2W4R6T8Y", b"hunter2hunter2", b"ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"):
        assert secret not in data
    p, c, level, n, sensitive = rows(db, "SELECT prefix, completion, level, redactions, sensitive FROM suggestions")[0]
    assert level == "training" and n == 3 and sensitive == 0
    assert "<REDACTED:aws_access_key_id>" in p and "def handler(event)" in p
    assert c == 'requests.get(url, headers={"Authorization": "<REDACTED:github_token>"})'


@pytest.mark.parametrize("path", ["/home/u/app/.env", "/home/u/.ssh/config", "/srv/tls/server.key",
                                  "file:///home/u/.aws/credentials"])
def test_training_level_sensitive_file_keeps_only_metrics(paths, path):
    db, _ = paths
    s = store_at(paths, "training")
    assert request(s, "s1", path=path)
    s.close()
    assert CANARY.encode() not in all_bytes(db)
    assert rows(db, "SELECT prefix, suffix, completion, level, sensitive, prefix_len FROM suggestions") == [
        (None, None, None, "metrics", 1, len(PREFIX))]


# --- robustness ---------------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from server.telemetry import TelemetryStore
    s = TelemetryStore("metrics", sys.argv[1], sys.argv[2])
    i = 0
    while True:
        cid = "k%d" % i
        if s.record_request(cid, language="python", model_id="m", prefix="x = 1\\n" * 50, suffix="",
                            completion="y", latency={"total_ms": 1.0}) and s.record_outcome(cid, "shown"):
            print(cid, flush=True)
        i += 1
""")


def test_kill_9_loses_no_committed_event(paths, tmp_path):
    db, key = paths
    log_path = tmp_path / "ids.txt"
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(key)], stdout=out,
                                stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.time() + 15
        while time.time() < deadline and log_path.stat().st_size == 0 and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    proc.stderr.close()
    text = log_path.read_text()
    ids = text.splitlines()
    if not text.endswith("\n"):
        ids = ids[:-1]  # the last line may have been cut mid-write
    assert len(ids) > 50
    assert db.with_name(db.name + "-wal").exists()  # killed before any clean shutdown
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT completion_id FROM events WHERE kind = 'shown'")}
        stored_req = {r[0] for r in conn.execute("SELECT completion_id FROM suggestions")}
    finally:
        conn.close()
    assert set(ids) <= stored and set(ids) <= stored_req


def test_corrupt_database_is_quarantined(paths):
    db, _ = paths
    db.parent.mkdir(parents=True)
    db.write_bytes(os.urandom(8192))
    db.with_name(db.name + "-wal").write_bytes(b"garbage wal")
    problems = []
    s = store_at(paths, "metrics", on_problem=problems.append)
    assert request(s, "after")
    assert s.record_outcome("after", "shown")
    quarantined = sorted(p.name for p in db.parent.glob(db.name + ".corrupt-*"))
    base = quarantined[0]
    assert base.startswith(db.name + ".corrupt-") and base + "-wal" in quarantined  # still a pair
    assert len(problems) == 1 and "damaged" in problems[0]
    for _i in range(5):
        assert s.record_outcome("after", "shown")
    s.close()
    assert len(problems) == 1
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert rows(db, "SELECT count(*) FROM events") == [(7,)]
    assert {p.name for p in T.related_files(db)} >= set(quarantined)


def test_only_a_few_quarantined_copies_are_kept(paths):
    db, _ = paths
    db.parent.mkdir(parents=True)
    for i in range(5):
        stamp = f"2024010{i}T000000000000Z"
        (db.parent / f"{db.name}.corrupt-{stamp}").write_bytes(b"x")
        (db.parent / f"{db.name}.corrupt-{stamp}-wal").write_bytes(b"x")
    db.write_bytes(b"not a database at all" * 100)
    s = store_at(paths, "metrics")
    assert s.record_outcome("a", "shown")
    s.close()
    left = sorted(p.name for p in db.parent.glob(db.name + ".corrupt-*") if not p.name.endswith(("-wal", "-shm")))
    assert len(left) == TelemetryStore.KEEP_QUARANTINED
    assert left[0].endswith("20240103T000000000000Z") and not left[-1].startswith(db.name + ".corrupt-2024")


def test_corruption_found_by_integrity_check(paths):
    db, _ = paths
    s = store_at(paths, "metrics")
    for i in range(300):
        request(s, f"c{i}", prefix="x" * 2000)
    s.close()
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[3 * page: 6 * page] = os.urandom(3 * page)  # keep the header, damage b-tree pages
    db.write_bytes(bytes(data))
    problems = []
    s = store_at(paths, "metrics", on_problem=problems.append)
    assert s.record_outcome("x", "shown")
    assert len(problems) == 1 and list(db.parent.glob(db.name + ".corrupt-*"))
    s.close()


def test_locked_database_does_not_raise(paths):
    db, _ = paths
    s = store_at(paths, "metrics", busy_timeout_ms=200)
    assert request(s, "a")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        assert s.record_outcome("a", "shown") is False
        assert request(s, "b") is False
        assert time.monotonic() - t0 < 2.0
        assert s.dropped == 2
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert s.record_outcome("a", "shown") is True
    s.close()


def test_unusable_location_reports_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    problems = []
    s = TelemetryStore("metrics", blocker / "db.sqlite3", tmp_path / "k.key", on_problem=problems.append)
    s.RETRY_AFTER_S = 0
    for _ in range(3):
        assert request(s) is False
    assert len(problems) == 1


def test_newer_schema_is_left_alone(paths):
    db, _ = paths
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = db.read_bytes()
    problems = []
    s = store_at(paths, "metrics", on_problem=problems.append)
    assert request(s) is False
    assert len(problems) == 1 and "99" in problems[0]
    s.close()
    assert db.read_bytes() == before
    assert not list(db.parent.glob("*.corrupt-*"))


def test_concurrent_writers(paths):
    db, _ = paths
    s = store_at(paths, "metrics")
    a = TelemetryStore("metrics", *paths)  # a second server process / window on the same file

    def work(store, tag):
        for i in range(100):
            assert request(store, f"{tag}{i}")
            assert store.record_outcome(f"{tag}{i}", "shown")

    threads = [threading.Thread(target=work, args=(st, tag)) for st, tag in ((s, "x"), (s, "y"), (a, "z"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.close()
    a.close()
    assert rows(db, "SELECT count(*) FROM suggestions") == [(300,)]
    assert rows(db, "SELECT count(*) FROM events") == [(600,)]


# --- schema, retention, snapshots ---------------------------------------------------------------------
def test_migration_from_older_version(paths):
    db, _ = paths
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    assert T.migrate(conn, target=1) == 1
    conn.execute("INSERT INTO suggestions (completion_id, ts, level, completion_len) VALUES ('old', ?, 'metrics', 7)",
                 (time.time(),))
    conn.execute("INSERT INTO events (completion_id, kind, ts) VALUES ('old', 'accepted', ?)", (time.time(),))
    conn.close()
    assert rows(db, "PRAGMA user_version") == [(1,)]
    s = store_at(paths, "metrics")
    assert s.record_outcome("old", "shown")
    s.close()
    assert rows(db, "PRAGMA user_version") == [(T.SCHEMA_VERSION,)]
    assert rows(db, "SELECT completion_id, shown, accepted, accepted_length FROM outcomes") == [("old", 1, 1, 7)]


def test_migration_from_schema_2(paths):
    db, _ = paths
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    for script in T.MIGRATIONS[:2]:  # a database written by the previous release
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    t = time.time() - 60
    old = ("old", t, "training", "python", "m", "model", 12, 3, 7, "def f", "):", "pass")
    conn.execute("INSERT INTO suggestions (completion_id, ts, level, language, model_id, status, prefix_len, "
                 "suffix_len, completion_len, prefix, suffix, completion) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", old)
    for i, kind in enumerate(("requested", "shown", "accepted")):
        conn.execute("INSERT INTO events (completion_id, kind, ts) VALUES ('old', ?, ?)", (kind, t + i))
    conn.close()
    s = store_at(paths, "metrics")
    assert request(s, "new", parent_id="old", stop_reason="eos", tokens_generated=9, feature_version=1,
                   filter_id="none", filter_stage="after")
    s.close()
    assert rows(db, "PRAGMA user_version") == [(4,)] and T.SCHEMA_VERSION == 4
    assert rows(db, "SELECT filter_stage FROM suggestions ORDER BY ts") == [(None,), ("after",)]
    assert rows(db, "SELECT completion_id, ts, level, language, model_id, status, prefix_len, suffix_len, "
                    "completion_len, prefix, suffix, completion FROM suggestions WHERE completion_id = 'old'") == [old]
    assert rows(db, "SELECT kind FROM events WHERE completion_id = 'old' ORDER BY ts") == [
        ("requested",), ("shown",), ("accepted",)]
    assert rows(db, "SELECT completion_id, parent_id, stop_reason, tokens_generated, feature_version, filter_id, "
                    "shown, accepted, accepted_length FROM outcomes ORDER BY ts") == [
        ("old", None, None, None, None, None, 1, 1, 7), ("new", "old", "eos", 9, 1, "none", 0, 0, None)]


def test_read_api_joins_outcomes_and_gives_code_only_when_asked(paths):
    db, _ = paths
    s = store_at(paths, "training")
    request(s, "t")
    request(s, "m", path="/home/u/app/.env")  # sensitive: a metrics-level row
    s.record_outcome("t", "shown")
    s.record_outcome("t", "accepted")
    s.record_survival("t", 30, 1.0)
    s.close()
    with T.open_snapshot(db) as conn:
        recs = {r["completion_id"]: r for r in T.suggestions(conn)}
        assert [e["kind"] for e in T.events(conn, "t")] == ["requested", "shown", "accepted", "survival"]
    assert not set(recs["t"]) & set(T.RAW_COLUMNS)
    assert (recs["t"]["level"], recs["t"]["accepted"], recs["t"]["survival_30s"]) == ("training", 1, 1.0)
    assert (recs["m"]["level"], recs["m"]["shown"], recs["m"]["sensitive"]) == ("metrics", 0, True)
    assert recs["t"]["features"] == {"log_line_len": 1.2, "lang=python": 1.0}
    with T.open_snapshot(db, include_code=True) as conn:
        code = {r["completion_id"]: r for r in T.suggestions(conn, include_code=True)}
    assert (code["t"]["prefix"], code["t"]["completion"]) == (PREFIX, COMPLETION)
    assert (code["m"]["prefix"], code["m"]["completion"]) == (None, None)
    with T.open_snapshot(db) as conn:  # a code-free snapshot has none to give
        assert all(r["prefix"] is None for r in T.suggestions(conn, include_code=True))
    assert not list(db.parent.glob(".ghostline-snapshot-*"))


def test_outcomes_view(paths):
    db, _ = paths
    s = store_at(paths, "metrics")
    request(s, "a", completion="abcdef")
    s.record_outcome("a", "shown")
    s.record_outcome("a", "accepted")
    s.record_survival("a", 30, 1.0)
    s.record_survival("a", 120, 0.5)
    request(s, "b")
    s.record_outcome("b", "shown")
    s.record_outcome("b", "partial", accepted_length=3)
    s.record_outcome("b", "unhelpful")
    request(s, "c")
    s.record_outcome("c", "shown")
    s.record_outcome("c", "ignored", reason="cursor_moved")
    s.close()
    got = rows(db, "SELECT completion_id, shown, accepted, partial, accepted_length, ignored_reason, helpful, "
                   "survival_30s, survival_120s FROM outcomes ORDER BY completion_id")
    assert got == [("a", 1, 1, 0, 6, None, None, 1.0, 0.5), ("b", 1, 1, 1, 3, None, 0, None, None),
                   ("c", 1, 0, 0, None, "cursor_moved", None, None, None)]
    assert rows(db, "SELECT survived FROM events WHERE kind = 'survival' ORDER BY delay_s") == [(1,), (0,)]


def test_retention_by_age_and_rows(paths):
    db, _ = paths
    now = [1_000_000_000.0]
    s = store_at(paths, "metrics", clock=lambda: now[0])
    for i in range(30):
        request(s, f"old{i}", ts=now[0] - 100 * 86400)
        s.record_event(f"old{i}", "shown", ts=now[0] - 100 * 86400)
    for i in range(80):
        request(s, f"new{i:02d}", ts=now[0] - 80 + i)
    s.close()
    s = store_at(paths, "metrics", max_age_days=90, max_rows=50, clock=lambda: now[0])
    assert s.open()  # retention runs on open
    s.close()
    ids = [r[0] for r in rows(db, "SELECT completion_id FROM suggestions ORDER BY ts")]
    assert ids == [f"new{i:02d}" for i in range(30, 80)]
    orphans = "SELECT count(*) FROM events WHERE completion_id NOT IN (SELECT completion_id FROM suggestions)"
    assert rows(db, orphans) == [(0,)]


def test_retention_on_open_and_by_size(paths):
    db, _ = paths
    s = store_at(paths, "training", max_age_days=1)
    for i in range(200):
        request(s, f"c{i}", prefix="z = 1\n" * 500, ts=time.time() - (5 * 86400 if i < 10 else 0))
    s.close()
    s = store_at(paths, "training", max_age_days=1, max_bytes=200_000)  # prunes on open
    assert s.open()
    s.close()
    n = rows(db, "SELECT count(*), min(completion_id LIKE 'c_') FROM suggestions")[0]
    assert 0 < n[0] < 190
    conn = sqlite3.connect(db)
    used = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    assert used * conn.execute("PRAGMA page_size").fetchone()[0] <= 200_000
    conn.close()


def test_snapshot(paths, tmp_path):
    db, _ = paths
    s = store_at(paths, "training")
    request(s, "a")
    s.record_outcome("a", "shown")
    T.snapshot_db(db, tmp_path / "full.sqlite3")
    T.snapshot_db(db, tmp_path / "nocode.sqlite3", include_code=False)
    with pytest.raises(FileExistsError):
        T.snapshot_db(db, tmp_path / "full.sqlite3")
    assert request(s, "b")  # the live store keeps working
    s.close()
    assert stat.S_IMODE((tmp_path / "full.sqlite3").stat().st_mode) == 0o600
    assert rows(tmp_path / "full.sqlite3", "SELECT count(*) FROM events") == [(2,)]
    assert CANARY in rows(tmp_path / "full.sqlite3", "SELECT prefix FROM suggestions")[0][0]
    assert CANARY.encode() not in (tmp_path / "nocode.sqlite3").read_bytes()
    assert rows(tmp_path / "nocode.sqlite3", "SELECT completion_len FROM suggestions") == [(len(COMPLETION),)]


def test_default_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("GHOSTLINE_DATA_DIR", str(tmp_path / "gl"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert T.default_db_path() == tmp_path / "gl" / "telemetry.sqlite3"
    assert T.default_key_path().parent != T.default_db_path().parent  # moving the data leaves the key apart
    monkeypatch.setenv("GHOSTLINE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert T.default_key_path() == tmp_path / "cfg" / "telemetry.key"
    s = TelemetryStore("metrics")
    assert s.db_path == T.default_db_path() and s.key_path == T.default_key_path()
    monkeypatch.delenv("GHOSTLINE_DATA_DIR")
    monkeypatch.delenv("GHOSTLINE_CONFIG_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert T.default_db_path().parts[-2:] == ("ghostline", "telemetry.sqlite3")
    assert T.default_key_path().parts[-2:] == ("ghostline", "telemetry.key")


def test_bad_arguments_never_raise(paths):
    s = store_at(paths, "metrics")
    assert not s.record_event("a", "nonsense")
    assert not s.record_event(None, "shown")  # type: ignore[arg-type]
    assert not request(s, "")
    assert request(s, "x", prefix=None, features="junk", latency=None, filter_score="high", propensity=float("inf"))
    assert s.record_outcome("x", "accepted", accepted_length=-3)
    assert s.record_outcome("x", "ignored", reason="some new reason")
    s.close()


# --- CLI ----------------------------------------------------------------------------------------------
def populate(paths):
    s = store_at(paths, "training")
    for i in range(40):
        lang = "python" if i % 4 else "go"
        cid = f"c{i:02d}"
        request(s, cid, language=lang, latency={**LATENCY, "total_ms": float(i)})
        s.record_outcome(cid, "shown")
        if i % 5 == 0:
            s.record_outcome(cid, "accepted")
        elif i % 5 == 1:
            s.record_outcome(cid, "partial", 3)
        else:
            s.record_outcome(cid, "ignored", reason="typed_over")
    s.close()


def test_cli_stats(paths, capsys):
    db, _ = paths
    populate(paths)
    assert cli.main(["stats", "--db", str(db), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["events"]["requested"] == 40 and st["events"]["shown"] == 40 and st["events"]["ignored"] == 24
    assert st["accepted"] == 16 and abs(st["accept_rate"] - 0.4) < 1e-9
    assert st["per_language"]["go"]["requests"] == 10 and st["per_language"]["python"]["requests"] == 30
    assert st["latency_ms"]["total_ms"]["p50"] == pytest.approx(19.5)
    assert st["latency_ms"]["generate_ms"]["p99"] == pytest.approx(80.0)
    assert cli.main(["--db", str(db), "stats"]) == 0
    text = capsys.readouterr().out
    assert "accept rate  40.0%" in text and "python" in text and "P99" in text
    assert not list(db.parent.glob(".ghostline-snapshot-*"))  # temporary snapshot removed


def test_cli_export_has_no_code(paths, tmp_path, capsys):
    db, _ = paths
    populate(paths)
    out = tmp_path / "export.jsonl"
    assert cli.main(["export", "--db", str(db), "-o", str(out)]) == 0
    data = out.read_text()
    assert CANARY not in data and "def " not in data
    recs = [json.loads(line) for line in data.splitlines()]
    assert len(recs) == 40
    r = recs[0]
    assert not set(r) & {"prefix", "suffix", "completion"}
    assert r["latency"]["generate_ms"] == 80.0 and r["features"] == {"log_line_len": 1.2, "lang=python": 1.0}
    assert r["exploration"] is True and r["filter_score"] == 0.42 and r["propensity"] == 0.1
    assert [e["kind"] for e in r["events"]] == ["requested", "shown", "accepted"]
    assert any(e.get("accepted_length") == 3 for x in recs for e in x["events"])
    assert cli.main(["export", "--db", str(db)]) == 0
    assert CANARY not in capsys.readouterr().out


def test_cli_missing_db(tmp_path, capsys):
    assert cli.main(["stats", "--db", str(tmp_path / "none.sqlite3")]) == 1
    assert "no telemetry database" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite3").exists()


def test_cli_purge(paths, tmp_path):
    db, key = paths
    populate(paths)
    s = store_at(paths, "metrics")
    assert s.record_outcome("c00", "shown")  # leaves -wal/-shm behind while open
    (db.parent / (db.name + ".corrupt-20240101T000000Z")).write_bytes(b"old")
    assert cli.main(["purge", "--db", str(db)]) == 2  # needs --yes
    assert db.exists()
    assert cli.main(["purge", "--db", str(db), "--yes", "--key-path", str(key)]) == 0
    s.close()
    assert not list(db.parent.iterdir())
    assert key.exists()
    assert cli.main(["purge", "--db", str(db), "--yes", "--key", "--key-path", str(key)]) == 0
    assert not key.exists()


def test_cli_snapshot(paths, tmp_path):
    db, _ = paths
    populate(paths)
    dest = tmp_path / "snap" / "s.sqlite3"
    assert cli.main(["snapshot", str(dest), "--db", str(db), "--no-code"]) == 0
    assert CANARY.encode() not in dest.read_bytes()
    assert rows(dest, "SELECT count(*) FROM outcomes WHERE accepted = 1") == [(16,)]


def test_cli_module_entry_point(paths):
    db, _ = paths
    populate(paths)
    r = subprocess.run([sys.executable, "-m", "training.telemetry", "stats", "--db", str(db)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "requested" in r.stdout


def test_review_shows_what_fine_tuning_would_use_and_what_is_dropped_is_never_used(paths, tmp_path, monkeypatch,
                                                                                    capsys):
    from server.context import estimate_tokens
    from server.templates import get_template
    from training import fim_examples
    monkeypatch.setenv("GHOSTLINE_DATA_DIR", str(tmp_path / "gl"))
    db, _ = paths
    s = store_at(paths, "training")
    for cid in ("a1", "a2", "p1", "n1"):
        request(s, cid, prefix=f"# {cid}\n{PREFIX}")  # identical prompts would be one example
        s.record_outcome(cid, "shown")
    s.record_outcome("a1", "accepted")
    s.record_outcome("a2", "accepted")
    s.record_outcome("p1", "partial", 3)
    s.record_outcome("n1", "ignored", reason="typed_over")
    s.close()

    def used() -> set[str]:
        train, held = fim_examples.from_telemetry(db, get_template("qwen"), estimate_tokens, holdout=0.0)
        return {e.path for e in train + held}
    assert cli.main(["review", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "--- a1" in out and "--- p1" in out and "n1" not in out
    assert f"\u2590{COMPLETION[:3]}\u258c" in out  # a partial accept: only the part accepted
    assert "3 accepted completions would be trained on" in out
    assert used() == {"a1", "a2", "p1"}

    assert cli.main(["review", "--db", str(db), "--drop", "a1", "--drop-files", "secret/*"]) == 0
    assert "2 accepted completions" in capsys.readouterr().out
    assert used() == {"a2", "p1"}
    ws = tmp_path / "ws"
    for sub in ("app", "secret"):
        (ws / sub).mkdir(parents=True)
        (ws / sub / "mod.py").write_text("def f(x):\n    return x\n" * 40)
    assert [p.relative_to(ws).as_posix() for p in fim_examples.code_files(ws, "python")] == ["app/mod.py"]

    assert cli.main(["review", "--db", str(db), "--restore", "a1", "secret/*"]) == 0
    assert used() == {"a1", "a2", "p1"} and len(fim_examples.code_files(ws, "python")) == 2
