import pytest

from server.options import Options
from server.postprocess import (
    block_confidence,
    confident_lines,
    decide_multiline,
    early_stop,
    finish,
    postprocess,
    trim_block,
    trim_suffix_overlap,
)

NO_BLOCK = Options(block=False)
BLANK_STOPS = Options(stop_blank_line=True)


def test_single_line_mid_line():
    assert not decide_multiline("x = foo(", ")\n")


def test_multiline_in_empty_block_body():
    assert decide_multiline("def f(x):\n    ", "\n\ndef g():\n    pass\n")
    assert decide_multiline("if (x) {\n  ", "\n}\n")


def test_empty_line_inside_a_block_is_multiline():
    assert decide_multiline("def f(x):\n    ", "\n    return 1\n")
    assert not decide_multiline("def f(x):\n    ", "\n    return 1\n", options=NO_BLOCK)
    assert not decide_multiline("x = 1\n", "\ny = 2\n")  # top level: not in a block


def test_multiline_at_end_of_block_opener():
    assert decide_multiline("def f(x):", "\n")
    assert not decide_multiline("x = 1", "\n")


def test_multiline_modes_override():
    assert decide_multiline("x = 1", "", "always")
    assert not decide_multiline("def f():\n    ", "", "never")


def test_single_line_cuts_at_newline():
    assert postprocess("a + b\nprint(a)\n", "x = ", "\n", False) == "a + b"


def test_leading_newline_in_single_line_mode_shows_nothing():
    assert postprocess("\nfoo()", "x = 1", "\n", False) == ""


def test_does_not_repeat_the_suffix_single_line():
    # cursor inside print(|) : the model closes the paren the suffix already has
    assert postprocess('"hello")\n', "print(", ")\n", False) == '"hello"'


def test_does_not_repeat_the_suffix_multiline():
    prefix = "def f(xs):\n    "
    suffix = "\n    return total\n"
    raw = "total = sum(xs)\n    return total\n"
    assert postprocess(raw, prefix, suffix, True) == "total = sum(xs)"


def test_stops_at_blank_line():
    prefix = "def f(xs):\n    "
    raw = "total = 0\n    for x in xs:\n        total += x\n\n    return total\n"
    assert postprocess(raw, prefix, "\n", True, BLANK_STOPS) == "total = 0\n    for x in xs:\n        total += x"
    assert postprocess(raw, prefix, "\n", True) == raw.rstrip()  # blank lines inside a block are kept


def test_stops_at_dedent_past_block():
    prefix = "def f(xs):\n    "
    raw = "return sum(xs)\ndef g():\n    pass"
    assert trim_block(raw, prefix, "") == "return sum(xs)"


def test_keeps_closer_the_suffix_lacks():
    prefix = "function f(a) {\n  "
    raw = "return a + 1;\n}\n"
    assert postprocess(raw, prefix, "", True) == "return a + 1;\n}"


def test_drops_closer_the_suffix_has():
    prefix = "function f(a) {\n  "
    raw = "return a + 1;\n}\n"
    assert postprocess(raw, prefix, "\n}\n", True) == "return a + 1;"


def test_block_opened_at_end_of_line():
    raw = "\n    return a + b\ndef other():\n"
    assert postprocess(raw, "def add(a, b):", "\n", True) == "\n    return a + b"


def test_trim_overlap_requires_meaningful_overlap():
    assert trim_suffix_overlap("x + y", "y = 2") == "x + y"  # one identifier char is a coincidence
    assert trim_suffix_overlap("foo(bar))", "))") == "foo(bar"


def test_whitespace_only_is_dropped():
    assert postprocess("   \n  ", "x = ", "", False) == ""


def test_early_stop():
    assert early_stop("abc\n", "x = ", "", False)
    assert not early_stop("abc", "x = ", "", False)
    prefix = "def f():\n    "
    assert early_stop("return 1\n\n", prefix, "", True, BLANK_STOPS)
    assert not early_stop("return 1\n\n", prefix, "", True)
    assert early_stop("return 1\ndef g():\n", prefix, "", True)  # dedent past the block
    assert not early_stop("a = 1\n    b = 2\n", prefix, "", True)
    assert early_stop("return 1\ndef g", prefix, "", False) or early_stop("return 1\ndef g():\n", prefix, "", True)


def test_line_start_inserts_a_whole_line_above_the_code():
    prefix, suffix = "def f(xs):\n    ", "return total\n"
    assert postprocess("total = sum(xs)\n    return total", prefix, suffix, False, language="python") \
        == "total = sum(xs)\n    "
    assert postprocess("return total\n", prefix, suffix, False) == ""  # it only repeats the existing line
    # a line that would break a file that parses is not offered (it needs a body the model did not give)
    assert postprocess("for x in xs:\n", prefix, suffix, False, language="python") == ""
    glued = postprocess("total = sum(xs)", prefix, suffix, False, Options(line_start_newline=False))
    assert glued == "total = sum(xs)"  # the old behaviour, kept as a switch for the benchmark


def test_chat_formatting_is_never_shown():
    assert postprocess("```python", "def f():\n    return 1\n", "\n", False) == ""
    assert postprocess("x = 1\n    ```\n", "def f():\n    ", "\n", True) == "x = 1"


def test_block_ends_where_the_file_parses():
    prefix = "def f(xs):\n    "
    suffix = "\n\n\ndef g():\n    pass\n"
    raw = "total = 0\n    for x in xs:\n        total += x\n    if total:"
    # the heuristics keep all four lines; the last one opens a body that never comes
    kept = "total = 0\n    for x in xs:\n        total += x"
    assert postprocess(raw, prefix, suffix, True, language="python") == kept
    assert postprocess(raw, prefix, suffix, True, Options(syntax_check=False), language="python") == raw


def test_truncated_block_drops_its_unfinished_line():
    prefix, suffix = "def f(xs):\n    ", "\n"
    raw = "total = 0\n    for x in xs:\n        total += x\n    return tot"
    assert postprocess(raw, prefix, suffix, True, language="python", truncated=True) \
        == "total = 0\n    for x in xs:\n        total += x"


def test_a_block_is_judged_by_the_token_that_starts_each_line_by_default():
    import math
    text = "total = 0\n    for x in xs:\n        total += x\n    return total"
    lowest = [0.0, math.log(0.9), math.log(0.3), math.log(0.95)]  # line 3 has one unsure token inside
    starts = [0.0, math.log(0.9), math.log(0.8), math.log(0.4)]  # but the model was sure it came
    outcome = {"raw": text, "line_logprobs": lowest, "line_start_logprobs": starts, "stop_reason": "eos"}
    prefix, suffix = "def f(xs):\n    ", "\n"
    shown = finish(outcome, prefix, suffix, True, Options(), "python")
    assert shown == "total = 0\n    for x in xs:\n        total += x"
    assert finish(outcome, prefix, suffix, True, Options(block_confidence="lowest_token"), "python") == \
        "total = 0"  # cut before `total += x`, and a `for` without a body does not parse
    assert block_confidence(lowest, starts, Options()) is starts
    with pytest.raises(ValueError, match="block_confidence takes one of line_start, lowest_token"):
        Options().with_values(block_confidence="mean")


def test_block_keeps_lines_only_while_the_model_is_confident():
    import math
    text = "total = 0\n    for x in xs:\n        total += x\n    return total"
    lp = [math.log(0.2), math.log(0.9), math.log(0.3), math.log(0.95)]
    assert confident_lines(text, lp, 0.5) == "total = 0\n    for x in xs:"  # the first line always stays
    assert confident_lines(text, lp, 0.1) == text
    assert confident_lines(text, lp, 0.0) == text  # off
    # after Enter at the end of an opener the first line is empty: the first line of code still stays
    assert confident_lines("\n    a = 1\n    b = 2", [0.0, math.log(0.1), math.log(0.1)], 0.5) == "\n    a = 1"


def test_line_start_completes_the_statement_it_opens():
    prefix, suffix = "def f(xs):\n    ", "return total\n"
    raw = "for x in xs:\n        print(x)\n    return total\n"
    assert postprocess(raw, prefix, suffix, False, language="python") == "for x in xs:\n        print(x)\n    "
    # generation stops once the statement is complete, and not before
    assert not early_stop("for x in xs:\n", prefix, suffix, False, language="python")
    assert early_stop("for x in xs:\n        print(x)\n", prefix, suffix, False, language="python")
    assert early_stop("total = 0\n", prefix, suffix, False, language="python")
    assert early_stop("return total\n", prefix, suffix, False, language="python")  # repeats the existing line


def test_repeated_first_line_names_a_line_that_only_repeats_the_code_there():
    from server.postprocess import repeated_first_line
    assert repeated_first_line("aliases = ['z']\n", "class A:\n    ", "aliases = ['z']\n") == len("aliases = ['z']")
    body = ("def f():\n    x = 1\n    ", "\n\n    return x\n")
    assert repeated_first_line("    return x\n", *body) == len("    return x")
    assert repeated_first_line("\n    return x", *body) == len("\n    return x")
    assert repeated_first_line("y = 2\n    return x", *body) == 0
    assert repeated_first_line("x", "a = (", "x)\n") == 0  # mid-line: completing what is there is the point
