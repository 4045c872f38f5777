"""Reading telemetry: consistent snapshots of the live database, and the rows trainers learn from.

Nothing reads the live file for long: `open_snapshot(db)` copies it in one read transaction (writers are not
blocked), migrates the copy to this code's schema and gives a connection on it; `suggestions(conn)` yields
one dict per suggestion joined with its outcome, with no code unless code is asked for.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .keys import chmod_private, create_private, mkdir_private
from .schema import EVENT_COLUMNS, METRIC_COLUMNS, RAW_COLUMNS, migrate, rollback

# The `outcomes` view's columns that say what became of a suggestion.
OUTCOME_COLUMNS = ("shown", "accepted", "partial", "accepted_length", "ignored_reason", "helpful", "survival_30s",
                   "survival_120s")
BUSY_TIMEOUT_S = 5.0  # a snapshot waits this long for a writer's lock


def snapshot_db(db_path: str | os.PathLike, dest: str | os.PathLike, *, include_code: bool = True) -> Path:
    """Consistent copy of the database at `db_path` into `dest` (mode 0600; must not exist or be empty)
    from one read transaction, so writers are not blocked. With `include_code=False` the raw code columns
    are never copied (not even transiently). Raises FileNotFoundError, FileExistsError, NewerSchema or
    sqlite3.Error."""
    src, dst = Path(db_path), Path(dest)
    if not src.is_file():
        raise FileNotFoundError(f"no telemetry database at {src}")
    mkdir_private(dst.parent)
    if dst.exists() and dst.stat().st_size:
        raise FileExistsError(f"{dst} exists and is not empty")
    create_private(dst)
    conn = sqlite3.connect(src, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if include_code:
            conn.execute("VACUUM INTO ?", (str(dst),))
        else:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            out = sqlite3.connect(dst, isolation_level=None)
            try:
                migrate(out, target=version)  # same schema as the source; raises NewerSchema if newer
            finally:
                out.close()
            conn.execute("ATTACH DATABASE ? AS snap", (str(dst),))
            conn.execute("BEGIN")
            try:
                for table, skip in (("suggestions", RAW_COLUMNS), ("events", ())):
                    have = {r[1] for r in conn.execute(f"PRAGMA snap.table_info({table})")}
                    cols = [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")
                            if r[1] in have and r[1] not in skip]
                    if cols:
                        c = ", ".join(cols)
                        conn.execute(f"INSERT INTO snap.{table} ({c}) SELECT {c} FROM main.{table}")
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
            conn.execute("DETACH DATABASE snap")
    finally:
        conn.close()
    chmod_private(dst)
    return dst


@contextmanager
def open_snapshot(db: str | os.PathLike, *, include_code: bool = False) -> Iterator[sqlite3.Connection]:
    """A read connection on a fresh snapshot of `db` (taken next to it, removed afterwards), migrated to the
    current schema; falls back to a read-only connection on the file itself when no snapshot can be
    written there."""
    db = Path(db)
    tmp = None
    try:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".ghostline-snapshot-", dir=db.parent))
            path = snapshot_db(db, tmp / "snapshot.sqlite3", include_code=include_code)
            conn = sqlite3.connect(path, isolation_level=None)
            migrate(conn)
        except (OSError, sqlite3.OperationalError):
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def suggestions(conn: sqlite3.Connection, *, since: float | None = None, outcomes: bool = True,
                include_code: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per suggestion, oldest first (from `since`, unix seconds): its metric columns, with
    latency_json and features_json decoded as `latency` and `features` and flags as bools; with `outcomes`
    the `outcomes` view's OUTCOME_COLUMNS; with `include_code` the raw prefix, suffix and completion of
    training-level rows (None for metrics-level rows)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(suggestions)")}
    cols = [f"s.{c}" for c in METRIC_COLUMNS if c in have]
    if include_code:
        cols += [f"CASE WHEN s.level = 'training' THEN s.{c} END AS {c}" for c in RAW_COLUMNS]
    source = "suggestions s"
    if outcomes:
        cols += [f"o.{c}" for c in OUTCOME_COLUMNS]
        source += " JOIN outcomes o USING (completion_id)"
    sql = f"SELECT {', '.join(cols)} FROM {source}"
    args: tuple = ()
    if since is not None:
        sql += " WHERE s.ts >= ?"
        args = (since,)
    cur = conn.execute(sql + " ORDER BY s.ts", args)
    names = [d[0] for d in cur.description]
    for row in cur:
        rec = dict(zip(names, row))
        for src, dst in (("latency_json", "latency"), ("features_json", "features")):
            raw = rec.pop(src, None)
            try:
                rec[dst] = json.loads(raw) if raw else {}
            except ValueError:
                rec[dst] = {}
        for b in ("exploration", "sensitive"):
            if rec.get(b) is not None:
                rec[b] = bool(rec[b])
        yield rec


def events(conn: sqlite3.Connection, completion_id: str) -> list[dict[str, Any]]:
    """A suggestion's events, oldest first, each without its empty fields."""
    out = []
    for row in conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE completion_id = ? "
                            "ORDER BY ts, id", (completion_id,)):
        ev = {k: v for k, v in zip(EVENT_COLUMNS, row) if v is not None}
        if "survived" in ev:
            ev["survived"] = bool(ev["survived"])
        out.append(ev)
    return out
