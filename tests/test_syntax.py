"""Syntax checks: Python by its compiler, JS/TS by tree-sitter; huge texts are not parsed."""


def test_huge_texts_are_not_parsed_on_every_keystroke():
    from server.syntax import MAX_PARSE_CHARS, parses
    assert parses("python", "x = [" + "1, " * (MAX_PARSE_CHARS // 3) + "]") is None
    assert parses("python", "x = [1, 2]") is True
