"""The telemetry store: a failure-proof writer of suggestions and their events into local SQLite.

Everything stays on this machine. SQLite in WAL mode (synchronous=NORMAL: a crash of the process never
loses a committed event or corrupts the file), one connection guarded by a lock, `BEGIN IMMEDIATE` writes
with a short busy timeout. A locked, full, unwritable or corrupt database never breaks completions: every
public method catches the error, logs it once, and returns; a corrupt file is moved aside to
`<name>.corrupt-<timestamp>` and a fresh one started; `on_problem(message)` fires once per kind of problem
so the server can tell the user. Trainers read a snapshot (`snapshot.py`), never the live file.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dirs import data_dir
from .keys import (
    chmod_private,
    create_private,
    default_key_path,
    keyed_hash,
    load_or_create_key,
    mkdir_private,
    prompt_text,
)
from .redact import is_sensitive_path, redact_fim
from .schema import EVENT_KINDS, LEVELS, NewerSchema, check_version, migrate, rollback
from .survival import SURVIVAL_THRESHOLD

log = logging.getLogger(__name__)

DB_NAME = "telemetry.sqlite3"
RAW_MAX_CHARS = 16_384  # raw code kept per column at training level (prefix: its tail, others: the head)


def default_db_path() -> Path:
    """In the data folder (~/.local/share/ghostline on Linux)."""
    return data_dir() / DB_NAME


def related_files(db_path: str | os.PathLike) -> list[Path]:
    """The database, its -wal/-shm/-journal, and quarantined copies (`<name>.corrupt-*`) that exist."""
    p = Path(db_path)
    out = [q for q in (p, *(p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal"))) if q.exists()]
    if p.parent.is_dir():
        out += sorted(q for q in p.parent.glob(_glob_escape(p.name) + ".corrupt-*") if q.is_file())
    return out


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _natural(x: Any) -> int | None:
    """`x` if it is a whole number >= 0 (a count, a length, a version), else None."""
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else None


def _clean_numbers(d: Any, *, sparse: bool) -> str | None:
    """JSON of the numeric entries of `d` (string keys, finite numbers only: no text can leak in)."""
    if not isinstance(d, dict):
        return None
    out = {}
    for k, v in d.items():
        if not isinstance(k, str) or len(k) > 64:
            continue
        if isinstance(v, bool):
            v = float(v)
        v = _finite(v)
        if v is None or (sparse and v == 0.0):
            continue
        out[k] = round(v, 6)
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


_WORD = re.compile(r"[A-Za-z0-9_.:+/@-]+")


def _label(s: Any, limit: int = 64) -> str | None:
    """A short identifier-like label (language, model id, status, reason); anything else is dropped."""
    if not isinstance(s, str) or not s:
        return None
    s = s[:limit]
    return s if _WORD.fullmatch(s) else re.sub(r"[^A-Za-z0-9_.:+/@-]", "_", s)


def _is_corrupt(e: BaseException) -> bool:
    name = getattr(e, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    msg = str(e).lower()
    return "file is not a database" in msg or "malformed" in msg or "integrity check failed" in msg


def _is_busy(e: BaseException) -> bool:
    name = getattr(e, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(e).lower()


class _Corrupt(sqlite3.DatabaseError):
    pass


class TelemetryStore:
    """Thread-safe, failure-proof telemetry writer. Construct once; call `set_level()` whenever settings or
    the editor's telemetry switch change. All `record_*` methods return True when the row was committed and
    False otherwise (level off, database unavailable...); none of them raises."""

    RETRY_AFTER_S = 30.0  # after a failure to open, wait this long before trying again
    BUSY_PROBLEM_AFTER = 20  # consecutive lock timeouts before the user is told
    KEEP_QUARANTINED = 3  # damaged databases kept (newest first) after being moved aside

    def __init__(self, level: str = "off", db_path: str | os.PathLike | None = None,
                 key_path: str | os.PathLike | None = None, *, max_age_days: float = 90,
                 max_rows: int = 200_000, max_bytes: int = 256 << 20, busy_timeout_ms: int = 250,
                 prune_interval_s: float = 3600.0, on_problem: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time):
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self.key_path = Path(key_path) if key_path is not None else default_key_path()
        self.max_age_days = max_age_days
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.busy_timeout_ms = busy_timeout_ms
        self.prune_interval_s = prune_interval_s
        self.on_problem = on_problem
        self.clock = clock
        self.dropped = 0  # events not written because of errors
        self._level = "off"
        self._lock = threading.RLock()
        self._key_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._key: bytes | None = None
        self._retry_at = 0.0
        self._disabled: str | None = None  # permanent (newer schema)
        self._last_prune = 0.0
        self._busy_streak = 0
        self._logged: set[str] = set()
        self._fired: set[str] = set()
        self.set_level(level)

    # --- configuration ------------------------------------------------------------------------------
    @property
    def level(self) -> str:
        return self._level

    def set_level(self, level: str) -> None:
        """Change the effective level (pass `effective_level(...)`). Going to off closes the database."""
        try:
            if level not in LEVELS:
                self._log_once("level", "unknown telemetry level %r; using off", level)
                level = "off"
            with self._lock:
                self._level = level
                if level == "off":
                    self._close()
        except Exception as e:  # pragma: no cover - defensive
            self._log_once("set_level", "telemetry: %s", e)

    @property
    def enabled(self) -> bool:
        return self._level != "off"

    # --- problems and logging -----------------------------------------------------------------------
    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        if key in self._logged:
            log.debug(msg, *args)
        else:
            self._logged.add(key)
            log.warning(msg, *args)

    def _report(self, kind: str, message: str) -> None:
        self._log_once("problem:" + kind, "%s", message)
        if kind in self._fired:
            return
        self._fired.add(kind)
        if self.on_problem is not None:
            try:
                self.on_problem(message)
            except Exception:
                log.exception("telemetry on_problem callback failed")

    # --- connection ---------------------------------------------------------------------------------
    def open(self) -> bool:
        """Open (creating, migrating, checking and pruning) the database now rather than on the first
        write; a no-op returning False at level off. Call it from a worker thread at startup."""
        try:
            with self._lock:
                return self._connect() is not None
        except Exception as e:  # pragma: no cover - defensive
            self._log_once("open", "telemetry: cannot open %s: %s", self.db_path, e)
            return False

    def _connect(self) -> sqlite3.Connection | None:
        if self._level == "off" or self._disabled:
            return None
        if self._conn is not None:
            return self._conn
        if self.clock() < self._retry_at:
            return None
        for attempt in range(2):
            try:
                self._conn = self._open_once()
                self._busy_streak = 0
                self._retry_at = 0.0
                self._prune_locked()
                return self._conn
            except NewerSchema as e:
                self._close()
                self._disabled = str(e)
                self._report("newer", f"Ghostline telemetry is paused: {e}.")
                return None
            except sqlite3.DatabaseError as e:
                if _is_corrupt(e) and attempt == 0:
                    self._quarantine(e)
                    continue
                self._close()
                self._open_failed(e)
                return None
            except OSError as e:
                self._close()
                self._open_failed(e)
                return None
        return None

    def _open_once(self) -> sqlite3.Connection:
        mkdir_private(self.db_path.parent)
        create_private(self.db_path)
        conn = sqlite3.connect(self.db_path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False)
        self._conn = conn
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        check_version(conn.execute("PRAGMA user_version").fetchone()[0])  # also fails fast on a non-database
        # Only takes effect on a new, empty file (before WAL mode writes the header); lets retention give
        # space back with PRAGMA incremental_vacuum.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self._log_once("wal", "telemetry: journal_mode is %s, not wal", mode)
        conn.execute("PRAGMA synchronous = NORMAL")
        result = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if result != "ok":
            raise _Corrupt(f"integrity check failed: {result}")
        migrate(conn)
        for suffix in ("", "-wal", "-shm"):
            chmod_private(self.db_path.with_name(self.db_path.name + suffix))
        return conn

    def _open_failed(self, e: BaseException) -> None:
        self._retry_at = self.clock() + self.RETRY_AFTER_S
        if isinstance(e, sqlite3.Error) and _is_busy(e):
            self._log_once("open-busy", "telemetry: database %s is locked; will retry (%s)", self.db_path, e)
            return
        self._report("open", f"Ghostline telemetry cannot use {self.db_path}: {e}. Completions are not "
                             "affected; events are not being recorded.")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _quarantine(self, e: BaseException) -> None:
        """Move the damaged database and its -wal/-shm to `<name>.corrupt-<timestamp>[-wal|-shm]` (a pair
        SQLite can still open for recovery) and close the connection."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        base = self.db_path.with_name(f"{self.db_path.name}.corrupt-{stamp}")

        def move_all(final: bool) -> None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                src = self.db_path.with_name(self.db_path.name + suffix)
                if not src.exists():
                    continue
                try:
                    os.replace(src, base.with_name(base.name + suffix))
                except OSError as err:
                    if final:
                        log.warning("telemetry: could not move %s aside: %s", src, err)
                        try:
                            src.unlink()
                        except OSError:
                            pass

        # Rename while still open where the OS allows it (POSIX): closing a connection on a damaged file
        # would otherwise delete its -wal, which may hold the last committed events.
        move_all(final=False)
        self._close()
        move_all(final=True)
        # Keep the newest few damaged copies for recovery, not an ever-growing pile of (possibly code) files.
        pattern = _glob_escape(self.db_path.name) + ".corrupt-*"
        stamps = sorted({q.name[len(self.db_path.name) + 9:].split("-")[0]
                         for q in self.db_path.parent.glob(pattern)})
        for old in stamps[:-self.KEEP_QUARANTINED]:
            for q in self.db_path.parent.glob(_glob_escape(f"{self.db_path.name}.corrupt-{old}") + "*"):
                try:
                    q.unlink()
                except OSError:
                    pass
        self._report("corrupt", f"Ghostline's telemetry database was damaged ({e}); it was moved to "
                                f"{base.name} and a new one was started.")

    def close(self) -> None:
        """Checkpoint and close the database (the store reopens on the next write)."""
        try:
            with self._lock:
                if self._conn is not None:
                    try:
                        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error:
                        pass
                self._close()
        except Exception as e:  # pragma: no cover - defensive
            self._log_once("close", "telemetry: close failed: %s", e)

    # --- writes -------------------------------------------------------------------------------------
    def _write(self, what: str, fn: Callable[[sqlite3.Connection], None]) -> bool:
        with self._lock:
            conn = self._connect()
            if conn is None:
                if self._level != "off":
                    self.dropped += 1
                return False
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    rollback(conn)
                    raise
            except sqlite3.Error as e:
                self.dropped += 1
                self._write_failed(what, e)
                return False
            self._busy_streak = 0
            if self.clock() - self._last_prune >= self.prune_interval_s:
                self._prune_locked()
            return True

    def _write_failed(self, what: str, e: sqlite3.Error) -> None:
        if _is_corrupt(e):
            self._quarantine(e)
            return
        if _is_busy(e):
            self._busy_streak += 1
            self._log_once("busy", "telemetry: database locked, dropping %s events for now (%s)", what, e)
            if self._busy_streak >= self.BUSY_PROBLEM_AFTER:
                self._report("busy", f"Ghostline telemetry database {self.db_path} is locked by another "
                                     "process; events are being dropped.")
            return
        # disk full, I/O error, read-only file...: reopen later
        self._close()
        self._retry_at = self.clock() + self.RETRY_AFTER_S
        self._report("write", f"Ghostline telemetry cannot write to {self.db_path}: {e}. Completions are "
                              "not affected.")

    def _get_key(self) -> bytes | None:
        if self._key is None:
            with self._key_lock:
                if self._key is None:
                    try:
                        self._key = load_or_create_key(self.key_path)
                    except OSError as e:
                        self._report("key", f"Ghostline telemetry cannot create its key {self.key_path}: "
                                            f"{e}. Events are not being recorded.")
                        return None
        return self._key

    def record_request(self, completion_id: str, *, language: str | None, model_id: str | None,
                       prefix: str = "", suffix: str = "", completion: str = "",
                       latency: dict[str, float] | None = None, features: dict[str, float] | None = None,
                       filter_score: float | None = None, exploration: bool = False,
                       propensity: float | None = None, path: str | None = None, status: str | None = None,
                       parent_id: str | None = None, stop_reason: str | None = None,
                       tokens_generated: int | None = None, feature_version: int | None = None,
                       filter_id: str | None = None, filter_stage: str | None = None,
                       ts: float | None = None) -> bool:
        """One row per completion id (a repeat id is ignored) plus a `requested` event. Code is stored
        only as keyed hashes, and raw (redacted) only at training level for non-sensitive `path`s. The
        columns are described in `schema.py`."""
        try:
            level = self._level
            if level == "off" or not isinstance(completion_id, str) or not completion_id:
                return False
            prefix, suffix, completion = (x if isinstance(x, str) else "" for x in (prefix, suffix, completion))
            key = self._get_key()
            if key is None:
                self.dropped += 1
                return False
            sensitive = is_sensitive_path(path) if path else False
            raw: tuple[str | None, str | None, str | None] = (None, None, None)
            redactions = 0
            if level == "training" and not sensitive:
                p, c, s, redactions = redact_fim(prefix, completion, suffix)
                raw = (p[-RAW_MAX_CHARS:], s[:RAW_MAX_CHARS], c[:RAW_MAX_CHARS])
            lat = latency if isinstance(latency, dict) else {}
            total = _finite(lat.get("total_ms"))
            now = self.clock() if ts is None else float(ts)
            row = {
                "completion_id": completion_id[:128], "ts": now,
                "level": "training" if raw[0] is not None else "metrics",
                "language": _label(language), "model_id": _label(model_id, 200), "status": _label(status),
                "prefix_len": len(prefix), "suffix_len": len(suffix), "completion_len": len(completion),
                "completion_lines": completion.count("\n") + 1 if completion else 0, "total_ms": total,
                "latency_json": _clean_numbers(lat, sparse=False),
                "features_json": _clean_numbers(features, sparse=True),
                "filter_score": _finite(filter_score), "exploration": int(bool(exploration)),
                "propensity": _finite(propensity), "prompt_hmac": keyed_hash(key, prompt_text(prefix, suffix)),
                "completion_hmac": keyed_hash(key, completion), "sensitive": int(sensitive),
                "redactions": redactions, "prefix": raw[0], "suffix": raw[1], "completion": raw[2],
                "parent_id": _label(parent_id, 128), "stop_reason": _label(stop_reason),
                "tokens_generated": _natural(tokens_generated), "feature_version": _natural(feature_version),
                "filter_id": _label(filter_id), "filter_stage": _label(filter_stage),
            }
            insert = (f"INSERT OR IGNORE INTO suggestions ({', '.join(row)}) "
                      f"VALUES ({', '.join('?' * len(row))})")

            def write(conn: sqlite3.Connection) -> None:
                if conn.execute(insert, tuple(row.values())).rowcount:
                    conn.execute("INSERT INTO events (completion_id, kind, ts) VALUES (?, 'requested', ?)",
                                 (row["completion_id"], now))
            return self._write("request", write)
        except Exception as e:
            self.dropped += 1
            self._log_once("record_request", "telemetry: record_request failed: %r", e)
            return False

    def record_event(self, completion_id: str, kind: str, *, accepted_length: int | None = None,
                     reason: str | None = None, value: float | None = None, survived: bool | None = None,
                     delay_s: float | None = None, ts: float | None = None) -> bool:
        """Append an event (`kind` in EVENT_KINDS) for a completion id."""
        try:
            if self._level == "off":
                return False
            if kind not in EVENT_KINDS or not isinstance(completion_id, str) or not completion_id:
                self._log_once("bad-event", "telemetry: ignoring malformed event %r for %r", kind, completion_id)
                return False
            now = self.clock() if ts is None else float(ts)
            row = (completion_id[:128], kind, now, _natural(accepted_length), _label(reason, 32), _finite(value),
                   None if survived is None else int(bool(survived)), _finite(delay_s))
            return self._write(kind, lambda conn: conn.execute(
                "INSERT INTO events (completion_id, kind, ts, accepted_length, reason, value, survived, delay_s) "
                "VALUES (?,?,?,?,?,?,?,?)", row))
        except Exception as e:
            self.dropped += 1
            self._log_once("record_event", "telemetry: record_event failed: %r", e)
            return False

    def record_survival(self, completion_id: str, delay_s: float, similarity: float) -> bool:
        """Survival check `delay_s` after an accept."""
        sim = _finite(similarity)
        return self.record_event(completion_id, "survival", value=sim,
                                 survived=sim is not None and sim >= SURVIVAL_THRESHOLD, delay_s=delay_s)

    def record_outcome(self, completion_id: str, outcome: str, accepted_length: int | None = None,
                       reason: str | None = None) -> bool:
        """The server's outcome notification as is: shown | accepted | partial | ignored | helpful | unhelpful."""
        if outcome == "ignored":
            return self.record_event(completion_id, "ignored", reason=reason)
        if outcome in ("accepted", "partial"):
            return self.record_event(completion_id, outcome, accepted_length=accepted_length)
        return self.record_event(completion_id, outcome)

    # --- retention ---------------------------------------------------------------------------------
    def _prune_locked(self) -> None:
        """Apply retention (age, row count, size); runs on open and every `prune_interval_s` of writes."""
        conn = self._conn
        if conn is None:
            return
        self._last_prune = self.clock()
        deleted = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cutoff = self.clock() - self.max_age_days * 86400
                deleted += conn.execute("DELETE FROM suggestions WHERE ts < ?", (cutoff,)).rowcount
                conn.execute("DELETE FROM events WHERE ts < ?", (cutoff,))
                n = conn.execute("SELECT count(*) FROM suggestions").fetchone()[0]
                capped = False
                if n > self.max_rows:
                    deleted += self._delete_oldest(conn, n - self.max_rows)
                    n, capped = self.max_rows, True
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                for _ in range(20):
                    pages = conn.execute("PRAGMA page_count").fetchone()[0]
                    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                    if (pages - free) * page_size <= self.max_bytes or n == 0:
                        break
                    k = max(1, n // 10)
                    deleted += self._delete_oldest(conn, k)
                    n, capped = n - k, True
                if capped:
                    conn.execute("DELETE FROM events WHERE completion_id NOT IN "
                                 "(SELECT completion_id FROM suggestions)")
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
            if deleted:
                conn.execute("PRAGMA incremental_vacuum")
                log.info("telemetry: retention removed %d suggestions", deleted)
        except sqlite3.Error as e:
            self._log_once("prune-err", "telemetry: retention failed: %s", e)
            if _is_corrupt(e):
                self._quarantine(e)

    @staticmethod
    def _delete_oldest(conn: sqlite3.Connection, k: int) -> int:
        return conn.execute("DELETE FROM suggestions WHERE completion_id IN "
                            "(SELECT completion_id FROM suggestions ORDER BY ts LIMIT ?)", (k,)).rowcount
