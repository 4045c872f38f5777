"""Local telemetry: what happened to each suggestion, for the show/no-show filter and fine-tuning.

  schema.py    the data contract: levels, event kinds, tables, migrations
  keys.py      the per-install HMAC key and private files
  store.py     TelemetryStore, the failure-proof writer
  snapshot.py  consistent copies and the read API for trainers
  recorder.py  what the server writes, and when (survival checks on timers.py's thread)
  redact.py    secrets out of raw code; survival.py  is accepted text still there
"""
from .keys import default_key_path, keyed_hash, load_or_create_key, prompt_text
from .recorder import Accepted, Recorder
from .schema import (
    EVENT_KINDS,
    LEVELS,
    METRIC_COLUMNS,
    MIGRATIONS,
    RAW_COLUMNS,
    SCHEMA_VERSION,
    NewerSchema,
    effective_level,
    migrate,
)
from .snapshot import OUTCOME_COLUMNS, events, open_snapshot, snapshot_db, suggestions
from .store import TelemetryStore, default_db_path, related_files

__all__ = [
    "EVENT_KINDS",
    "LEVELS",
    "METRIC_COLUMNS",
    "MIGRATIONS",
    "OUTCOME_COLUMNS",
    "RAW_COLUMNS",
    "SCHEMA_VERSION",
    "Accepted",
    "NewerSchema",
    "Recorder",
    "TelemetryStore",
    "default_db_path",
    "default_key_path",
    "effective_level",
    "events",
    "keyed_hash",
    "load_or_create_key",
    "migrate",
    "open_snapshot",
    "prompt_text",
    "related_files",
    "snapshot_db",
    "suggestions",
]
