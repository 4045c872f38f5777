"""The names the server shares with its clients and its docs, each defined once here: custom methods, the
accept command, outcome kinds, ignore reasons and server states. The extension (TypeScript) and
docs/protocol.md spell them too; tests/test_vocabulary.py fails when any copy differs."""
from __future__ import annotations

from enum import Enum

# custom LSP methods and the command every completion item carries
OUTCOME = "ghostline/outcome"  # client -> server notification: what happened to a suggestion
STATUS = "ghostline/status"  # server -> client notification: the server's state
STATS = "ghostline/stats"  # client -> server request: counters and a document's digest
ACCEPT_COMMAND = "ghostline.accepted"  # workspace/executeCommand with [completionId]: a full accept

# LSP language ids by file suffix (the CLI and the simulator open files by name)
LANGUAGE_IDS = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
                ".ts": "typescript", ".tsx": "typescriptreact", ".jsx": "javascriptreact", ".go": "go",
                ".rs": "rust", ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp", ".cc": "cpp",
                ".rb": "ruby", ".php": "php", ".sh": "shellscript", ".cs": "csharp"}

# what a client reports about a suggestion (`ghostline/outcome`), and why one was ignored
OUTCOMES = ("shown", "accepted", "partial", "ignored", "helpful", "unhelpful")
IGNORE_REASONS = ("typed_over", "dismissed", "cursor_moved", "timeout")


class ServerState(str, Enum):  # noqa: UP042 (members are sent as their values)
    LOADING = "loading"
    READY = "ready"
    GENERATING = "generating"
    DISABLED = "disabled"
    ERROR = "error"


class Reason(str, Enum):  # noqa: UP042 (telemetry stores the values)
    """Why a completion has no text: the only values `Result.reason` takes."""
    DISABLED = "disabled"  # completions are off for this language
    NO_MODEL = "no-model"  # the model failed to load
    UNAVAILABLE = "unavailable"  # the remote engine could not be reached or broke off
    FILTERED = "filtered"  # the filter said the suggestion is not worth showing
    EMPTY = "empty"  # the model's answer post-processed to nothing
    CANCELLED = "cancelled"  # the generation was stopped: the user typed something its answer did not agree with
