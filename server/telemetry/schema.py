"""The telemetry data contract: levels, event kinds, tables and their migrations.

Levels (the effective level is the lower of the user's setting and the editor's telemetry switch):
  off       nothing is written; the database file is not even created.
  metrics   no code: lengths, language, model id, per-stage latency, features, filter score, propensity,
            outcome events, and HMAC-SHA256 digests of prompt and completion keyed with a 32-byte
            per-install key kept in its own file (mode 0600), never in the database.
  training  additionally the raw prefix/suffix/completion, after secret redaction, and never for files that
            look sensitive (`.env*`, keys, `.ssh/`...): those are logged at metrics level.

Tables (join on completion_id; the `outcomes` view does the join per suggestion):
  suggestions(completion_id PK, ts, level, language, model_id, status, prefix_len, suffix_len,
              completion_len, completion_lines, total_ms, latency_json, features_json, filter_score,
              exploration, propensity, prompt_hmac, completion_hmac, sensitive, redactions,
              prefix, suffix, completion,          -- these three only at training level
              parent_id, stop_reason, tokens_generated, feature_version, filter_id,   -- from V3
              filter_stage)                                                           -- from V4
      filter_stage: the filter stage whose decision `filter_score`, `exploration` and `propensity` are:
              before (admission) | after (the answer); NULL when no filter ran.
      status: where the text came from, `model | cache`, or why there is none: a `server.names.Reason`
              value (`disabled | no-model | unavailable | filtered | empty | cancelled`).
  events(id PK, completion_id, kind, ts, accepted_length, reason, value, survived, delay_s)
      kind: requested | shown | accepted | partial | ignored | helpful | unhelpful | survival
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ..names import OUTCOMES

LEVELS = ("off", "metrics", "training")
EVENT_KINDS = ("requested", *OUTCOMES, "survival")

# Columns that carry no code: the only ones an export may contain.
METRIC_COLUMNS = ("completion_id", "ts", "level", "language", "model_id", "status", "prefix_len",
                  "suffix_len", "completion_len", "completion_lines", "total_ms", "latency_json",
                  "features_json", "filter_score", "exploration", "propensity", "prompt_hmac",
                  "completion_hmac", "sensitive", "redactions", "parent_id", "stop_reason", "tokens_generated",
                  "feature_version", "filter_id", "filter_stage")
RAW_COLUMNS = ("prefix", "suffix", "completion")
EVENT_COLUMNS = ("kind", "ts", "accepted_length", "reason", "value", "survived", "delay_s")


def effective_level(user_level: str, client_telemetry_enabled: bool) -> str:
    """The lower of the user's `ghostline.telemetryLevel` and the editor's telemetry switch
    (`vscode.env.isTelemetryEnabled`): the switch off means off; unknown levels mean off."""
    if not client_telemetry_enabled or user_level not in LEVELS:
        return "off"
    return user_level


# Append only: MIGRATIONS[i] takes a database from user_version i to i + 1. A migration's SQL comments are
# stored in every database's schema, so they stay as written; the docstring above says what columns hold now.
_V1 = """
CREATE TABLE suggestions (
    completion_id    TEXT PRIMARY KEY,
    ts               REAL NOT NULL,          -- unix seconds
    level            TEXT NOT NULL,          -- effective level when written: metrics | training
    language         TEXT,
    model_id         TEXT,
    status           TEXT,                   -- model | cache, or a server.names.Reason value
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

_V3 = """
ALTER TABLE suggestions ADD COLUMN parent_id TEXT;            -- cache hit: the completion_id it continues
ALTER TABLE suggestions ADD COLUMN stop_reason TEXT;          -- eos | stop | length; NULL when no generation ran
ALTER TABLE suggestions ADD COLUMN tokens_generated INTEGER;  -- by every generation the answer took
ALTER TABLE suggestions ADD COLUMN feature_version INTEGER;   -- server.features.FEATURE_VERSION of features_json
ALTER TABLE suggestions ADD COLUMN filter_id TEXT;            -- the filter that decided (its name)
DROP VIEW outcomes;
CREATE VIEW outcomes AS
SELECT s.completion_id, s.ts, s.language, s.model_id, s.status, s.completion_len, s.filter_score,
       s.exploration, s.propensity, s.parent_id, s.stop_reason, s.tokens_generated, s.feature_version,
       s.filter_id,
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

_V4 = """
ALTER TABLE suggestions ADD COLUMN filter_stage TEXT;         -- before | after: the stage that decided
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4]
SCHEMA_VERSION = len(MIGRATIONS)


class NewerSchema(sqlite3.DatabaseError):
    """The database was written by a newer Ghostline; it is left untouched."""


def check_version(version: int) -> None:
    """Raise NewerSchema if a database at `version` is newer than this code."""
    if version > SCHEMA_VERSION:
        raise NewerSchema(f"telemetry database has schema {version}, this Ghostline knows {SCHEMA_VERSION}")


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring `conn` (autocommit mode) from its user_version to `target`, one transaction per step.
    Returns the version reached; raises NewerSchema if the file is newer than this code."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    check_version(version)
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
            rollback(conn)
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


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction, if any; a failure to do so is not worth another error."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
