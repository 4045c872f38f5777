"""Syntax checks: Python by its compiler, JS/TS by tree-sitter; huge texts are not parsed."""


def test_huge_texts_are_not_parsed_on_every_keystroke():
    from server.syntax import MAX_PARSE_CHARS, parses
    assert parses("python", "x = [" + "1, " * (MAX_PARSE_CHARS // 3) + "]") is None
    assert parses("python", "x = [1, 2]") is True


def test_a_python_parser_failure_is_no_verdict_not_a_crash(monkeypatch):
    """CPython 3.11 sometimes raises SystemError ("AST constructor recursion depth mismatch") from ast.parse;
    seen once in a simulator run, where it failed the request. It means "cannot tell", like no grammar."""
    import ast

    from server.syntax import parses

    def broken(*args, **kwargs):
        raise SystemError("AST constructor recursion depth mismatch (before=39, after=90)")
    monkeypatch.setattr(ast, "parse", broken)
    assert parses("python", "x = 1\n") is None
