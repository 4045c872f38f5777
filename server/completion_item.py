"""The suggestion as a `textDocument/completion` item, for editors without inline completion.

Editors filter completion items against the word before the cursor and insert plain-text items only up to
their first space (Neovim) or drop items whose filter text does not start with that word (eglot, Helix). So
the item replaces the typed word: its edit starts at the word's start, its label and filter text start with
the word, and where the client expands snippets it is a snippet (escaped) so the whole suggestion lands.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

WORD_BEFORE = re.compile(r"[A-Za-z0-9_$]*$")  # ASCII: as many UTF-16 units as characters
LABEL_CHARS = 60
# Characters after which clients without inline completion ask (Neovim's autotrigger fires only on these).
TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", ":", "=", " "]


@dataclass(frozen=True)
class CompletionEdit:
    replaced: int  # characters before the cursor that the edit replaces: the word typed so far
    new_text: str
    filter_text: str
    label: str
    snippet: bool
    plain: str  # what the document holds where the word was once the item is accepted


def escape_snippet(text: str) -> str:
    """LSP snippet syntax: `\\`, `$` and `}` are literal only when escaped."""
    return re.sub(r"([\\$}])", r"\\\1", text)


def completion_edit(line_before: str, text: str, snippet: bool) -> CompletionEdit:
    """`line_before`: the cursor line up to the cursor; `text`: the suggestion (inserted at the cursor).
    Snippet clients indent continuation lines by the cursor line's indentation themselves (VS Code,
    vim.snippet), so for them continuation lines carry only their indentation relative to that line."""
    word = WORD_BEFORE.search(line_before).group(0)
    plain = whole = word + text
    if snippet:
        indent = line_before[:len(line_before) - len(line_before.lstrip())]
        first, *rest = whole.split("\n")
        whole = "\n".join([first] + [line[len(indent):] if line.startswith(indent) else line.lstrip()
                                     for line in rest])
    first_line = whole.split("\n", 1)[0]
    label = (first_line.strip() or whole.strip())[:LABEL_CHARS]
    return CompletionEdit(len(word), escape_snippet(whole) if snippet else whole,
                          first_line, label, snippet, plain)
