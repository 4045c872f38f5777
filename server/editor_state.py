"""Where the cursor is on its line: the editor states that the pipeline and the benchmark both name.

LSP breaks lines only at \\n, \\r\\n and \\r; the document model hands us text with \\n line ends.
"""
from __future__ import annotations

from enum import Enum


class EditorState(str, Enum):  # noqa: UP042 (str() and f-strings of members are relied on as they are)
    END_OF_LINE = "end_of_line"  # code before the cursor, nothing after it: a partly typed line
    EMPTY_LINE = "empty_line"  # only indentation on the line: the user pressed Enter
    LINE_START = "line_start"  # only indentation before the cursor, code after it
    MID_LINE = "mid_line"  # code on both sides


def editor_state(prefix: str, suffix: str) -> EditorState:
    before = prefix.rsplit("\n", 1)[-1].strip()
    after = suffix.split("\n", 1)[0].strip()
    if after:
        return EditorState.MID_LINE if before else EditorState.LINE_START
    return EditorState.END_OF_LINE if before else EditorState.EMPTY_LINE
