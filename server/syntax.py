"""Does this text parse? Python's compiler, tree-sitter grammars for JavaScript and TypeScript; None for
the others.

Used where a completion must leave the file syntactically whole (a line inserted before existing code,
where a multi-line block ends). Parsers are created once per language and thread, since tree-sitter
parsers are not thread-safe.
"""
from __future__ import annotations

import ast
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def _python():
    import tree_sitter_python
    return tree_sitter_python.language()


def _javascript():
    import tree_sitter_javascript
    return tree_sitter_javascript.language()


def _typescript():
    import tree_sitter_typescript
    return tree_sitter_typescript.language_typescript()


def _tsx():
    import tree_sitter_typescript
    return tree_sitter_typescript.language_tsx()


# LSP language ids -> grammar
GRAMMARS: dict[str, Callable] = {
    "python": _python,
    "javascript": _javascript, "javascriptreact": _javascript,
    "typescript": _typescript, "typescriptreact": _tsx,
}

_local = threading.local()


def _parser(language: str):
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    if language not in parsers:
        parsers[language] = None
        loader = GRAMMARS.get(language)
        if loader is not None:
            try:
                from tree_sitter import Language, Parser
                parsers[language] = Parser(Language(loader()))
            except Exception as e:  # a broken grammar install must not stop completions
                log.warning("no %s grammar (%s); syntax checks are off for it", language, e)
    return parsers[language]


def has_grammar(language: str) -> bool:
    return _parser(language) is not None


def syntax_tree(language: str, text: str):
    """The tree-sitter tree of the text, or None when there is no grammar for the language."""
    parser = _parser(language)
    if parser is None:
        return None
    return parser.parse(text.encode("utf-8", errors="surrogatepass"))


# Parsing is done several times per completion; above this size it would cost seconds per keystroke, so such
# files are treated as having no grammar (the line heuristics decide).
MAX_PARSE_CHARS = 300_000


def parses(language: str, text: str) -> bool | None:
    """True when the text parses; None when there is no grammar for the language or the text is too large
    to parse on every keystroke. Python is judged by its own compiler: tree-sitter's grammar accepts an
    `if` whose body is only a comment."""
    if len(text) > MAX_PARSE_CHARS:
        return None
    if language == "python":
        try:
            ast.parse(text)
            return True
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
        except SystemError:  # CPython 3.11's "AST constructor recursion depth mismatch" on some deep texts
            return None
    tree = syntax_tree(language, text)
    return None if tree is None else not tree.root_node.has_error
