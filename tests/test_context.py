from server.context import best_snippets, build_context, cut_prefix, cut_suffix, display_path, estimate_tokens
from server.options import Options


def count_words(text: str) -> int:
    return len(text.split()) + 1


def test_prefix_keeps_whole_lines_within_budget():
    prefix = "\n".join(f"line{i} a b c" for i in range(100)) + "\nlast"
    out = cut_prefix(prefix, budget=50, count=count_words, quantum=1)
    assert out.endswith("last")
    assert out.split("\n")[0].startswith("line")  # starts on a line boundary
    assert sum(count_words(ln) + 1 for ln in out.split("\n")) <= 50 + 1


def test_prefix_start_is_stable_while_typing_new_lines():
    base = "\n".join(f"line{i} a b c" for i in range(200))
    starts = set()
    for extra in range(1, 8):
        p = base + "\nnew" * extra
        starts.add(cut_prefix(p, budget=512, count=count_words, quantum=16).split("\n")[0])
    assert len(starts) <= 2  # the start only moves once per 16 lines typed


def test_huge_single_line_is_cut():
    out = cut_prefix("x" * 100_000, budget=100, count=estimate_tokens)
    assert len(out) <= 300


def test_small_suffix_budget():
    suffix = "\n".join(f"s{i} q q q" for i in range(100))
    out = cut_suffix(suffix, budget=20, count=count_words)
    assert out.startswith("s0") and len(out.split("\n")) < 10


def test_snippets_prefer_similar_code():
    query = "def parse_config(path):\n    data = load_yaml(path)\n    return validate(data)"
    similar = ("a.py", "def load_yaml(path):\n    import yaml\n    return yaml.safe_load(open(path))\n\n"
                       "def validate(data):\n    return data")
    unrelated = ("b.py", "class Matrix:\n    def transpose(self):\n        return zip(*self.rows)")
    snippets = best_snippets(query, [unrelated, similar], budget=200, count=estimate_tokens)
    assert snippets and snippets[0].path == "a.py"


def test_build_context_without_others():
    ctx = build_context("a = 1\nb = ", "\nc = 3", options=Options(), language="python")
    assert ctx.prefix == "a = 1\nb = " and ctx.suffix == "\nc = 3" and ctx.snippets == ()


def test_quantum_never_costs_most_of_the_budget():
    # Long lines just below a 16-line boundary: rounding the start up to line 16 would keep 15 of 120
    # tokens; rounding down to line 0 costs at most 5/4 of the budget and is taken instead.
    lines = [f"w{i}" for i in range(10)] + ["word " * 15] * 6 + [f"x{i}" for i in range(5)]
    out = cut_prefix("\n".join(lines), budget=120, count=count_words, quantum=16)
    kept = sum(count_words(ln) + 1 for ln in out.split("\n"))
    assert out.startswith("w0") and kept <= 150
    lines[0:10] = ["word " * 15] * 10  # now line 0 is too far: the exact start it is
    out = cut_prefix("\n".join(lines), budget=120, count=count_words, quantum=16)
    assert 100 <= sum(count_words(ln) + 1 for ln in out.split("\n")) <= 121


def test_prompt_names_files_relative_to_the_workspace():
    assert display_path("/home/u/proj/src/a.py", "/home/u/proj") == "src/a.py"
    assert display_path("/elsewhere/b.py", "/home/u/proj") == "b.py"  # never an absolute path by default
    assert display_path("/home/u/proj/a.py", "/home/u/proj", "absolute") == "/home/u/proj/a.py"
    assert display_path("/home/u/proj/a.py", "/home/u/proj", "none") is None
    ctx = build_context("import os\nos.path.", "", path="/p/src/main.py", root="/p",
                        options=Options(snippets=True, path_header="relative"),
                        others=[("/p/src/util.py", "import os\nos.path.join(a, b)\n")])
    assert ctx.path == "src/main.py" and [s.path for s in ctx.snippets] == ["src/util.py"]


def test_a_megabyte_line_is_never_tokenized_whole():
    from server.context import CHARS_PER_TOKEN_MAX, cut_prefix, cut_suffix
    seen = []

    def count(text):
        seen.append(len(text))
        return len(text) // 4

    line = "x = [" + "1, " * 350_000
    assert cut_prefix("import os\n" + line, 512, count).endswith("1, ")
    assert cut_suffix(line + "]\nprint(x)\n", 256, count).startswith("x = [")
    assert max(seen) <= 512 * CHARS_PER_TOKEN_MAX


def test_an_enormous_line_is_cut_to_the_token_budget_not_a_character_guess():
    from server.context import LINE_QUANTUM, cut_prefix, cut_suffix

    def count(text):  # "1, " is two tokens: fewer characters per token than a guess of 3 allows
        return text.count("1") * 2
    line = "y = [" + "1, " * 10_000
    head = cut_prefix(line, 512, count)
    assert 448 - LINE_QUANTUM <= count(head) <= 512 and line.endswith(head)
    tail = cut_suffix(line + "]\n", 256, count)
    assert 224 <= count(tail) <= 256 and line.startswith(tail)


def test_typing_at_the_end_of_an_enormous_line_keeps_the_window_start():
    from server.context import LINE_QUANTUM, cut_prefix
    line = "z = [" + "1, " * 300_000
    starts = set()
    for typed in range(LINE_QUANTUM):
        text = line + "9" * typed
        starts.add(len(text) - len(cut_prefix(text, 512, estimate_tokens)))
    assert len(starts) <= 2 and all(s % LINE_QUANTUM == 0 for s in starts)  # one step at most in a quantum
