"""Documents use LSP's line model (\\n, \\r\\n, \\r only) and UTF-16 positions."""
import random

import pytest

from server.document import Document, PositionError, utf16_len

ODD = "\f\v\x1c\x1d\x1e\x85\u2028\u2029"


def test_only_lsp_line_breaks_end_a_line():
    doc = Document("u", f"a{ODD}b\nc\r\nd\re")
    assert doc.line_count == 4 and doc.line(0) == f"a{ODD}b" and doc.line(3) == "e"
    assert doc.offset_at(1, 1) == doc.text.index("c") + 1 and doc.offset_at(3, 0) == doc.text.index("e")
    assert doc.position_at(doc.text.index("d")) == (2, 0)


def test_characters_count_utf16_units_and_lone_surrogates_are_one():
    doc = Document("u", "x😀y\n\ud800z")
    assert utf16_len("x😀y") == 4
    assert doc.offset_at(0, 3) == 2 and doc.offset_at(0, 4) == 3 and doc.offset_at(1, 1) == doc.text.index("z")
    assert doc.position_at(doc.text.index("y")) == (0, 3)


def test_positions_outside_are_errors_unless_clamped():
    doc = Document("u", "ab\ncd")
    with pytest.raises(PositionError, match="past the end of the line"):
        doc.offset_at(0, 3)
    with pytest.raises(PositionError, match="outside the document"):
        doc.offset_at(2, 0)
    with pytest.raises(PositionError):
        doc.offset_at(-1, 0)
    assert doc.offset_at(0, 99, clamp=True) == 2 and doc.offset_at(9, 0, clamp=True) == 5


def _client_apply(lines: list[str], start, end, text: str) -> list[str]:
    """The client's view: a list of lines split only at \\n (the oracle, written independently)."""
    whole = "\n".join(lines)
    def off(pos):
        line, ch = pos
        if line >= len(lines):
            return len(whole)
        return sum(len(x) + 1 for x in lines[:line]) + min(ch, len(lines[line]))
    a, b = off(start), off(end)
    return (whole[:a] + text + whole[max(a, b):]).split("\n")


def test_random_edits_keep_the_servers_copy_equal_to_the_clients():
    rng = random.Random(3)
    alphabet = ["a", "b", " ", "\n", "\t", *ODD]
    lines = ["hello", "world"]
    doc = Document("u", "\n".join(lines))

    def pos(lines: list[str]) -> tuple[int, int]:
        line = rng.randrange(len(lines) + 1)
        return line, rng.randrange(len(lines[line]) + 2) if line < len(lines) else 0
    for _ in range(500):
        start, end = sorted([pos(lines), pos(lines)])
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(4)))
        lines = _client_apply(lines, start, end, text)
        doc.apply(text, start, end)
        assert doc.text == "\n".join(lines)
    doc.apply("whole")
    assert doc.text == "whole" and doc.line_count == 1


def test_model_text_replaces_lone_surrogates_one_for_one_and_follows_edits():
    doc = Document("u", "a\ud800b")
    assert doc.model_text == "a\ufffdb" and len(doc.model_text) == len(doc.text)
    doc.apply("\udc00", (0, 0), (0, 0))
    assert doc.model_text == "\ufffda\ufffdb"
