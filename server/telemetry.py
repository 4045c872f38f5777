"""Local telemetry store: what happened to each suggestion, for the show/no-show filter and fine-tuning.

Levels (the effective level is the lower of the user's setting and the editor's telemetry switch):
  off       nothing is written; the database file is not even created.
  metrics   no code: lengths, language, model id, per-stage latency, features, filter score, propensity,
            outcome events, and HMAC-SHA256 digests of prompt and completion keyed with a 32-byte
            per-install key kept in its own file (mode 0600), never in the database.
  training  additionally the raw prefix/suffix/completion, after secret redaction, and never for files that
            look sensitive (`.env*`, keys, `.ssh/`...): those are logged at metrics level.

Everything stays on this machine. SQLite in WAL mode (synchronous=NORMAL: a crash of the process never
loses a committed event or corrupts the file), one connection guarded by a lock, `BEGIN IMMEDIATE` writes
with a short busy timeout. A locked, full, unwritable or corrupt database never breaks completions: every
public method catches the error, logs it once, and returns; a corrupt file is moved aside to
`<name>.corrupt-<timestamp>` and a fresh one started; `on_problem(message)` fires once per kind of problem
so the server can tell the user. Trainers read a snapshot (`snapshot()`, VACUUM INTO), never the live file.

Tables (join on completion_id; the `outcomes` view does the join per suggestion):
  suggestions(completion_id PK, ts, level, language, model_id, status, prefix_len, suffix_len,
              completion_len, completion_lines, total_ms, latency_json, features_json, filter_score,
              exploration, propensity, prompt_hmac, completion_hmac, sensitive, redactions,
              prefix, suffix, completion)          -- the last three only at training level
  events(id PK, completion_id, kind, ts, accepted_length, reason, value, survived, delay_s)
      kind: requested | shown | accepted | partial | ignored | helpful | unhelpful | survival
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .names import IGNORE_REASONS, OUTCOMES
from .redact import is_sensitive_path, redact_fim
from .survival import SURVIVAL_THRESHOLD

log = logging.getLogger(__name__)

__all__ = [
    "EVENT_KINDS",
    "IGNORE_REASONS",
    "LEVELS",
    "METRIC_COLUMNS",
    "MIGRATIONS",
    "RAW_COLUMNS",
    "SCHEMA_VERSION",
    "TelemetryStore",
    "default_config_dir",
    "default_data_dir",
    "default_db_path",
    "default_key_path",
    "effective_level",
    "keyed_hash",
    "load_or_create_key",
    "migrate",
    "prompt_text",
    "related_files",
    "snapshot_db",
]

LEVELS = ("off", "metrics", "training")
EVENT_KINDS = ("requested", *OUTCOMES, "survival")
DB_NAME = "telemetry.sqlite3"
KEY_NAME = "telemetry.key"
RAW_MAX_CHARS = 16_384  # raw code kept per column at training level (prefix: its tail, others: the head)

# Columns that carry no code: the only ones an export may contain.
METRIC_COLUMNS = ("completion_id", "ts", "level", "language", "model_id", "status", "prefix_len",
                  "suffix_len", "completion_len", "completion_lines", "total_ms", "latency_json",
                  "features_json", "filter_score", "exploration", "propensity", "prompt_hmac",
                  "completion_hmac", "sensitive", "redactions")
RAW_COLUMNS = ("prefix", "suffix", "completion")

# --- schema -----------------------------------------------------------------------------------------
# Append only: MIGRATIONS[i] takes a database from user_version i to i + 1.
_V1 = """
CREATE TABLE suggestions (
    completion_id    TEXT PRIMARY KEY,
    ts               REAL NOT NULL,          -- unix seconds
    level            TEXT NOT NULL,          -- effective level when written: metrics | training
    language         TEXT,
    model_id         TEXT,
    status           TEXT,                   -- e.g. ok, empty, filtered, cancelled, error (server's word)
    prefix_len       INTEGER,
    suffix_len       INTEGER,
    completion_len   INTEGER,
    completion_lines INTEGER,
    total_ms         REAL,
    latency_json     TEXT,                   -- {"context_ms":..,"generate_ms":..,"post_ms":..,...}
    features_json    TEXT,                   -- filter features, non-zero entries only
    filter_score     REAL,                   -- p(accept) from the filter; NULL when none ran
    exploration      INTEGER NOT NULL DEFAULT 0,  -- shown although below the threshold
    propensity       REAL,                   -- probability that this decision was "show"
    prompt_hmac      TEXT,                   -- HMAC-SHA256(key, prefix + NUL + suffix), hex
    completion_hmac  TEXT,                   -- HMAC-SHA256(key, completion), hex
    sensitive        INTEGER NOT NULL DEFAULT 0,  -- file looked sensitive: raw code withheld
    redactions       INTEGER NOT NULL DEFAULT 0,  -- secrets replaced in the raw columns
    prefix           TEXT,                   -- raw code, training level only (redacted)
    suffix           TEXT,
    completion       TEXT
);
CREATE INDEX suggestions_ts ON suggestions(ts);
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    completion_id    TEXT NOT NULL,
    kind             TEXT NOT NULL,
    ts               REAL NOT NULL,
    accepted_length  INTEGER,                -- accepted / partial
    reason           TEXT,                   -- ignored: typed_over | dismissed | cursor_moved | timeout
    value            REAL,                   -- survival: similarity 0..1
    survived         INTEGER,                -- survival: similarity >= threshold
    delay_s          REAL                    -- survival: seconds after the accept
);
CREATE INDEX events_completion ON events(completion_id);
CREATE INDEX events_ts ON events(ts);
"""

_V2 = """
CREATE VIEW outcomes AS
SELECT s.completion_id, s.ts, s.language, s.model_id, s.status, s.completion_len, s.filter_score,
       s.exploration, s.propensity,
       COALESCE(MAX(e.kind = 'shown'), 0) AS shown,
       COALESCE(MAX(e.kind IN ('accepted', 'partial')), 0) AS accepted,
       COALESCE(MAX(e.kind = 'partial'), 0) AS partial,
       MAX(CASE WHEN e.kind = 'accepted' THEN COALESCE(e.accepted_length, s.completion_len)
                WHEN e.kind = 'partial' THEN e.accepted_length END) AS accepted_length,
       MAX(CASE WHEN e.kind = 'ignored' THEN e.reason END) AS ignored_reason,
       MAX(CASE WHEN e.kind = 'helpful' THEN 1 WHEN e.kind = 'unhelpful' THEN 0 END) AS helpful,
       MAX(CASE WHEN e.kind = 'survival' AND e.delay_s < 60 THEN e.value END) AS survival_30s,
       MAX(CASE WHEN e.kind = 'survival' AND e.delay_s >= 60 THEN e.value END) AS survival_120s
FROM suggestions s LEFT JOIN events e ON e.completion_id = s.completion_id
GROUP BY s.completion_id;
"""

MIGRATIONS: list[str] = [_V1, _V2]
SCHEMA_VERSION = len(MIGRATIONS)


class NewerSchema(sqlite3.DatabaseError):
    """The database was written by a newer Ghostline; it is left untouched."""


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring `conn` (autocommit mode) from its user_version to `target`, one transaction per step.
    Returns the version reached; raises NewerSchema if the file is newer than this code."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise NewerSchema(f"telemetry database has schema {version}, this Ghostline knows {SCHEMA_VERSION}")
    if version == 0:
        # Must precede the first table; lets retention give space back (PRAGMA incremental_vacuum).
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < target:
                for stmt in _statements(MIGRATIONS[version]):
                    conn.execute(stmt)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
    return version


def _statements(script: str) -> Iterable[str]:
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


# --- levels and paths -------------------------------------------------------------------------------
def effective_level(user_level: str, client_telemetry_enabled: bool) -> str:
    """The lower of the user's `ghostline.telemetryLevel` and the editor's telemetry switch
    (`vscode.env.isTelemetryEnabled`): the switch off means off; unknown levels mean off."""
    if not client_telemetry_enabled or user_level not in LEVELS:
        return "off"
    return user_level


def _level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base and os.path.isabs(base) else Path.home() / fallback


# kind -> (platformdirs function, XDG variable, fallback under $HOME)
_USER_DIRS = {"data": ("user_data_dir", "XDG_DATA_HOME", ".local/share"),
              "config": ("user_config_dir", "XDG_CONFIG_HOME", ".config")}


# The key never follows the data: a copied data folder (a bug report) must not carry what de-pseudonymises it.
_DIR_VARS = {"data": "GHOSTLINE_DATA_DIR", "config": "GHOSTLINE_CONFIG_DIR"}


def _user_dir(kind: str) -> Path:
    """`$GHOSTLINE_DATA_DIR` / `$GHOSTLINE_CONFIG_DIR`, else the platform's user `kind` dir + /ghostline."""
    if os.environ.get(_DIR_VARS[kind]):
        return Path(os.environ[_DIR_VARS[kind]]).expanduser()
    func, var, fallback = _USER_DIRS[kind]
    try:
        import platformdirs
        return Path(getattr(platformdirs, func)("ghostline", appauthor=False))
    except Exception:
        return _xdg(var, fallback) / "ghostline"


def default_data_dir() -> Path:
    """Where the database lives (~/.local/share/ghostline on Linux)."""
    return _user_dir("data")


def default_config_dir() -> Path:
    """Where the HMAC key lives (~/.config/ghostline on Linux), apart from the database."""
    return _user_dir("config")


def default_db_path() -> Path:
    return default_data_dir() / DB_NAME


def default_key_path() -> Path:
    return default_config_dir() / KEY_NAME


def related_files(db_path: str | os.PathLike) -> list[Path]:
    """The database, its -wal/-shm/-journal, and quarantined copies (`<name>.corrupt-*`) that exist."""
    p = Path(db_path)
    out = [q for q in (p, *(p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal"))) if q.exists()]
    if p.parent.is_dir():
        out += sorted(q for q in p.parent.glob(glob_escape(p.name) + ".corrupt-*") if q.is_file())
    return out


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _mkdir_private(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True, mode=0o700)


def _create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist (race-free); tighten it if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    _chmod_private(path)


def _chmod_private(path: Path) -> None:
    try:
        if os.name == "posix" and path.exists() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass


# --- keyed hashing ----------------------------------------------------------------------------------
def load_or_create_key(path: str | os.PathLike) -> bytes:
    """The 32-byte per-install HMAC key in `path` (64 hex chars), created (mode 0600) on first use.
    An unreadable or malformed key file is replaced. Raises OSError if the file cannot be written."""
    p = Path(path)
    _mkdir_private(p.parent)
    for _ in range(3):
        try:
            text = p.read_text("ascii").strip()
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as e:
            log.warning("telemetry key %s unreadable (%s); replacing it", p, e)
            text = ""
        if text is not None:
            if re.fullmatch(r"[0-9a-f]{64}", text):
                _chmod_private(p)
                return bytes.fromhex(text)
            log.warning("telemetry key %s is malformed; replacing it (old hashes will not match new ones)", p)
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        key = secrets.token_bytes(32)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, p)  # fails if another process created the key first: then use theirs
            return key
        except FileExistsError:
            continue
        except OSError:  # filesystems without hard links
            if not p.exists():
                os.replace(tmp, p)
                return key
            continue
        finally:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
    raise OSError(f"could not create telemetry key {p}")


def keyed_hash(key: bytes, text: str) -> str:
    """HMAC-SHA256 of `text` (UTF-8) with the install key, hex. Not reversible by dictionary without the key."""
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def prompt_text(prefix: str, suffix: str) -> str:
    """What `prompt_hmac` is computed over."""
    return f"{prefix}\x00{suffix}"


# --- helpers ----------------------------------------------------------------------------------------
def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


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


def snapshot_db(db_path: str | os.PathLike, dest: str | os.PathLike, *, include_code: bool = True,
                busy_timeout_ms: int = 5000) -> Path:
    """Consistent copy of the database at `db_path` into `dest` (mode 0600; must not exist or be empty)
    from one read transaction, so writers are not blocked. With `include_code=False` the raw code columns
    are never copied (not even transiently). For trainers and the CLI; raises FileNotFoundError,
    FileExistsError, NewerSchema or sqlite3.Error."""
    src, dst = Path(db_path), Path(dest)
    if not src.is_file():
        raise FileNotFoundError(f"no telemetry database at {src}")
    _mkdir_private(dst.parent)
    if dst.exists() and dst.stat().st_size:
        raise FileExistsError(f"{dst} exists and is not empty")
    _create_private(dst)
    conn = sqlite3.connect(src, timeout=busy_timeout_ms / 1000, isolation_level=None)
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
                _rollback(conn)
                raise
            conn.execute("DETACH DATABASE snap")
    finally:
        conn.close()
    _chmod_private(dst)
    return dst


# --- the store --------------------------------------------------------------------------------------
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
                 prune_interval_s: float = 3600.0, check_integrity: bool = True,
                 on_problem: Callable[[str], None] | None = None, clock: Callable[[], float] = time.time):
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self.key_path = Path(key_path) if key_path is not None else default_key_path()
        self.max_age_days = max_age_days
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.busy_timeout_ms = busy_timeout_ms
        self.prune_interval_s = prune_interval_s
        self.check_integrity = check_integrity
        self.on_problem = on_problem
        self.clock = clock
        self.problem: str | None = None  # the latest problem, for a status display
        self.dropped = 0  # events not written because of errors
        self._level = "off"
        self._lock = threading.RLock()
        self._key_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._key: bytes | None = None
        self._retry_at = 0.0
        self._disabled: str | None = None  # permanent (newer schema)
        self._last_prune = 0.0
        self._pruned_on_open = 0
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
        self.problem = message
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
                self._pruned_on_open = self._prune_locked()
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
        _mkdir_private(self.db_path.parent)
        _create_private(self.db_path)
        conn = sqlite3.connect(self.db_path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False)
        self._conn = conn
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # also fails fast on a non-database
        if version > SCHEMA_VERSION:
            raise NewerSchema(f"telemetry database has schema {version}, this Ghostline knows {SCHEMA_VERSION}")
        # Only takes effect on a new, empty file (before WAL mode writes the header); lets retention give
        # space back with PRAGMA incremental_vacuum.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self._log_once("wal", "telemetry: journal_mode is %s, not wal", mode)
        conn.execute("PRAGMA synchronous = NORMAL")
        if self.check_integrity:
            result = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if result != "ok":
                raise _Corrupt(f"integrity check failed: {result}")
        migrate(conn)
        for suffix in ("", "-wal", "-shm"):
            _chmod_private(self.db_path.with_name(self.db_path.name + suffix))
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
        pattern = glob_escape(self.db_path.name) + ".corrupt-*"
        stamps = sorted({q.name[len(self.db_path.name) + 9:].split("-")[0]
                         for q in self.db_path.parent.glob(pattern)})
        for old in stamps[:-self.KEEP_QUARANTINED]:
            for q in self.db_path.parent.glob(glob_escape(f"{self.db_path.name}.corrupt-{old}") + "*"):
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
                    _rollback(conn)
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
                       ts: float | None = None) -> bool:
        """One row per completion id (a repeat id is ignored) plus a `requested` event. Code is stored
        only as keyed hashes, and raw (redacted) only at training level for non-sensitive `path`s."""
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
            score, prop = _finite(filter_score), _finite(propensity)
            row = (completion_id[:128], now, "training" if raw[0] is not None else "metrics",
                   _label(language), _label(model_id, 200), _label(status), len(prefix), len(suffix),
                   len(completion), completion.count("\n") + 1 if completion else 0, total,
                   _clean_numbers(lat, sparse=False), _clean_numbers(features, sparse=True), score,
                   int(bool(exploration)), prop, keyed_hash(key, prompt_text(prefix, suffix)),
                   keyed_hash(key, completion), int(sensitive), redactions, *raw)

            def write(conn: sqlite3.Connection) -> None:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO suggestions (completion_id, ts, level, language, model_id, status, "
                    "prefix_len, suffix_len, completion_len, completion_lines, total_ms, latency_json, "
                    "features_json, filter_score, exploration, propensity, prompt_hmac, completion_hmac, "
                    "sensitive, redactions, prefix, suffix, completion) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
                if cur.rowcount:
                    conn.execute("INSERT INTO events (completion_id, kind, ts) VALUES (?, 'requested', ?)",
                                 (row[0], now))
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
            if isinstance(accepted_length, bool) or not isinstance(accepted_length, int) or accepted_length < 0:
                accepted_length = None
            now = self.clock() if ts is None else float(ts)
            row = (completion_id[:128], kind, now, accepted_length, _label(reason, 32), _finite(value),
                   None if survived is None else int(bool(survived)), _finite(delay_s))
            return self._write(kind, lambda conn: conn.execute(
                "INSERT INTO events (completion_id, kind, ts, accepted_length, reason, value, survived, delay_s) "
                "VALUES (?,?,?,?,?,?,?,?)", row))
        except Exception as e:
            self.dropped += 1
            self._log_once("record_event", "telemetry: record_event failed: %r", e)
            return False

    def record_shown(self, completion_id: str) -> bool:
        """The suggestion was displayed."""
        return self.record_event(completion_id, "shown")

    def record_accepted(self, completion_id: str, accepted_length: int | None = None, *,
                        partial: bool = False) -> bool:
        """Accepted in full (`partial=False`) or partially (`accepted_length` characters)."""
        return self.record_event(completion_id, "partial" if partial else "accepted",
                                 accepted_length=accepted_length)

    def record_ignored(self, completion_id: str, reason: str) -> bool:
        """Not accepted: typed_over, dismissed, cursor_moved or timeout."""
        if reason not in IGNORE_REASONS:
            self._log_once("reason", "telemetry: unusual ignore reason %r", reason)
        return self.record_event(completion_id, "ignored", reason=reason)

    def record_feedback(self, completion_id: str, helpful: bool) -> bool:
        """Explicit helpful / unhelpful vote."""
        return self.record_event(completion_id, "helpful" if helpful else "unhelpful")

    def record_survival(self, completion_id: str, delay_s: float, similarity: float,
                        survived: bool | None = None) -> bool:
        """Survival check `delay_s` after an accept; `survived` defaults to similarity >= threshold."""
        if survived is None:
            sim = _finite(similarity)
            survived = sim is not None and sim >= SURVIVAL_THRESHOLD
        return self.record_event(completion_id, "survival", value=similarity, survived=survived,
                                 delay_s=delay_s)

    def record_outcome(self, completion_id: str, outcome: str, accepted_length: int | None = None,
                       reason: str | None = None) -> bool:
        """The server's outcome notification as is: shown | accepted | partial | ignored | helpful | unhelpful."""
        if outcome == "ignored":
            return self.record_event(completion_id, "ignored", reason=reason)
        if outcome in ("accepted", "partial"):
            return self.record_event(completion_id, outcome, accepted_length=accepted_length)
        return self.record_event(completion_id, outcome)

    # --- retention and snapshots --------------------------------------------------------------------
    def prune(self) -> int:
        """Apply retention now (age, row count, size); returns the number of suggestions deleted."""
        try:
            with self._lock:
                was_open = self._conn is not None
                if self._connect() is None:
                    return 0
                return self._prune_locked() if was_open else self._pruned_on_open
        except Exception as e:
            self._log_once("prune", "telemetry: prune failed: %r", e)
            return 0

    def _prune_locked(self) -> int:
        conn = self._conn
        if conn is None:
            return 0
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
                _rollback(conn)
                raise
            if deleted:
                conn.execute("PRAGMA incremental_vacuum")
                log.info("telemetry: retention removed %d suggestions", deleted)
        except sqlite3.Error as e:
            self._log_once("prune-err", "telemetry: retention failed: %s", e)
            if _is_corrupt(e):
                self._quarantine(e)
        return deleted

    @staticmethod
    def _delete_oldest(conn: sqlite3.Connection, k: int) -> int:
        return conn.execute("DELETE FROM suggestions WHERE completion_id IN "
                            "(SELECT completion_id FROM suggestions ORDER BY ts LIMIT ?)", (k,)).rowcount

    def snapshot(self, dest: str | os.PathLike, *, include_code: bool = True) -> bool:
        """Consistent copy for a trainer (VACUUM INTO; `dest` must not exist). False on any failure."""
        try:
            snapshot_db(self.db_path, dest, include_code=include_code, busy_timeout_ms=max(1000, self.busy_timeout_ms))
            return True
        except Exception as e:
            self._log_once("snapshot", "telemetry: snapshot to %s failed: %s", dest, e)
            return False

    def counts(self) -> dict[str, int]:
        """Events by kind (for status displays and tests); empty when unavailable."""
        try:
            with self._lock:
                conn = self._connect()
                if conn is None:
                    return {}
                return dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        except Exception as e:
            self._log_once("counts", "telemetry: counts failed: %s", e)
            return {}

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
