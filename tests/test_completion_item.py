"""The completion item editors without inline completion get: it survives their filtering, and lands whole."""
from server.completion_item import completion_edit, escape_snippet


def test_the_item_replaces_the_typed_word_and_starts_with_it():
    e = completion_edit("    ret", "urn fib(n - 1) + fib(n - 2)", snippet=False)
    assert e.replaced == 3 and e.new_text == e.plain == "return fib(n - 1) + fib(n - 2)"
    assert e.filter_text.startswith("ret") and e.label.startswith("ret")
    after_dot = completion_edit("    os.pa", "th.join(a, b)", snippet=False)
    assert after_dot.replaced == 2 and after_dot.filter_text == "path.join(a, b)"


def test_on_an_empty_line_the_edit_starts_at_the_cursor():
    e = completion_edit("        ", "for line in f:", snippet=False)
    assert e.replaced == 0 and e.new_text == e.filter_text == "for line in f:"


def test_snippets_are_escaped_and_continuation_lines_are_relative_to_the_cursor_line():
    e = completion_edit("    ", "if x:\n        return '${a}'\n    return b", snippet=True)
    assert e.snippet and e.replaced == 0
    assert e.new_text == "if x:\n    return '\\${a\\}'\n" + "return b"
    assert e.plain == "if x:\n        return '${a}'\n    return b"  # the document after the client re-indents
    assert escape_snippet("a\\b$c}") == "a\\\\b\\$c\\}"
