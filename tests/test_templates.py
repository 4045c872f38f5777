import pytest

from server.templates import TEMPLATES, Snippet, get_template


def test_qwen_psm():
    assert get_template("qwen").render("a", "b") == "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"


def test_qwen_repo_level_form_puts_snippets_first():
    out = get_template("qwen").render("x = ", "\n", path="src/m.py", repo="proj",
                                      snippets=(Snippet("src/u.py", "def u(): pass"),))
    assert out == ("<|repo_name|>proj\n<|file_sep|>src/u.py\ndef u(): pass\n<|file_sep|>src/m.py\n"
                   "<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>")


@pytest.mark.parametrize("name,expected", [
    ("starcoder2", "<fim_prefix>P<fim_suffix>S<fim_middle>"),
    ("deepseek", "<｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜>"),
    ("codellama", "<PRE> P <SUF>S <MID>"),
    ("codegemma", "<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>"),
])
def test_other_families(name, expected):
    assert get_template(name).render("P", "S") == expected


def test_every_template_has_stops():
    assert all(t.stops for t in TEMPLATES.values())


def test_unknown_template():
    with pytest.raises(ValueError, match="unknown FIM template"):
        get_template("gpt")
