"""Fill-in-the-middle tasks cut from code already on this machine (never from a public benchmark).

Files come from the corpus split (training.corpus: Python from the standard library and the venv,
JavaScript and TypeScript from installed node_modules). Holes are placed at statements that tree-sitter
finds, in the editor states a user is really in (KINDS): the end of a partly typed line, an empty line
after Enter, the start of a line that has code, the middle of a line, a missing block of 2-15 lines, and
a random span. Deterministic for a seed.
"""
from __future__ import annotations

import ast
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

from server.syntax import parses, syntax_tree

MAX_FILE_BYTES = 200_000
# The editor states a user is really in (server.editor_state), plus a missing block and a random span.
KINDS = ("end_of_line", "empty_line", "line_start", "mid_line", "block", "span")
SKIP_DIRS = {"tests", "test", "testing", "__pycache__", "idlelib", "lib2to3", "turtledemo", "ghostline",
             "dist", "esm", "min", "umd"}


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # one of KINDS
    language: str
    path: str  # relative display path, what the server would see
    prefix: str
    suffix: str
    middle: str
    doctest: str | None = None  # Python: the function's name when it has doctests to execute
    module: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def python_roots() -> list[Path]:
    roots = [Path(sysconfig.get_paths()["stdlib"])]
    roots += [Path(p) for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}]
    return [r for r in roots if r.is_dir()]


def js_roots(project: Path) -> list[Path]:
    roots = [project / "node_modules"]
    npm = shutil.which("npm")
    if npm:
        try:
            out = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=20).stdout.strip()
            roots.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    return [r for r in roots if r.is_dir()]


def list_files(roots: list[Path], suffix: str) -> list[Path]:
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
                                 and d not in ("site-packages", "dist-packages"))  # walked as own roots
            for f in sorted(filenames):
                if f.endswith(suffix) and not f.endswith((".min.js", ".d.ts")):
                    p = Path(dirpath) / f
                    try:
                        if 500 < p.stat().st_size < MAX_FILE_BYTES:
                            out.append(p)
                    except OSError:
                        pass
    return out


def module_name(path: Path, roots: list[Path] | None = None) -> str | None:
    """The importable name of a Python file under one of `roots` (default: this interpreter's)."""
    for root in roots if roots is not None else python_roots():
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and all(p.isidentifier() for p in parts):
            return ".".join(parts)
    return None


def _line_offsets(text: str) -> list[int]:
    offs, pos = [], 0
    for line in text.split("\n"):
        offs.append(pos)
        pos += len(line) + 1
    return offs


def js_blocks(lines: list[str], max_body: int = 8) -> list[tuple[int, int, int]]:
    """(opener line, first body line, last body line) of `{ ... }` bodies; the simulator's episodes."""
    out = []
    for i, line in enumerate(lines[:-2]):
        if not line.rstrip().endswith("{"):
            continue
        ind = len(line) - len(line.lstrip())
        for j in range(i + 1, min(len(lines), i + max_body + 2)):
            lj = lines[j]
            if lj.strip() and len(lj) - len(lj.lstrip()) <= ind:
                if lj.strip().startswith("}") and 2 <= j - i - 1 <= max_body:
                    out.append((i, i + 1, j - 1))
                break
    return out


# --- where the holes go: statements found by tree-sitter, so every language is cut the same way --------
BODY_TYPES = {"module", "program", "block", "statement_block", "switch_body"}
NESTED_BODIES = BODY_TYPES - {"module", "program"}
SKIP_TYPES = {"comment", "decorator", "empty_statement"}


def _is_docstring(node) -> bool:
    return node.type == "expression_statement" and node.named_child_count == 1 \
        and node.named_children[0].type in ("string", "concatenated_string", "template_string")


def _bodies(root) -> list[tuple[str, list]]:
    """(body type, its statements) for every statement list in the tree; comments and docstrings are
    kept out so holes fall on code."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.type in BODY_TYPES:
            stmts = [c for c in node.named_children if c.type not in SKIP_TYPES and not _is_docstring(c)]
            if stmts:
                out.append((node.type, stmts))
        stack.extend(reversed(node.named_children))
    return out


def _editor_indent(lines: list[str], i: int) -> str | None:
    """The indentation an editor gives line i after Enter at the end of the line above: the previous code
    line's, one level deeper after an opener. None when it cannot know the level (first line of a block
    with no deeper line yet is answered from line i itself)."""
    prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), None)
    if prev is None:
        return ""
    prev_indent = prev[:len(prev) - len(prev.lstrip())]
    own = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
    if prev.rstrip().endswith((":", "{", "(", "[")):
        return own if len(own) > len(prev_indent) else None
    return prev_indent


def _holes(kind: str, text: str, lines: list[str], offs: list[int], bodies, rng: random.Random,
           lo: int, hi: int) -> tuple[int, int] | None:
    """(start, end) offsets of the hole for one editor state, or None when this file has no such place."""
    stmts = [n for _, body in bodies for n in body]
    single = [n.start_point[0] for n in stmts if n.start_point[0] == n.end_point[0]
              and lo <= n.start_point[0] < hi and 8 <= len(lines[n.start_point[0]].strip()) <= 120
              and n.end_point[1] == len(lines[n.start_point[0]].rstrip())]
    single = sorted(set(single))

    def indent(i: int) -> int:
        return len(lines[i]) - len(lines[i].lstrip())

    if kind == "end_of_line":  # a partly typed line: the rest of it is missing
        if not single:
            return None
        i = rng.choice(single)
        a = rng.randrange(indent(i) + 1, len(lines[i]) - 2)
        return offs[i] + a, offs[i] + len(lines[i])
    if kind == "empty_line":  # Enter was pressed: a whole line is missing, the editor indented it
        ok = [i for i in single if _editor_indent(lines, i) == lines[i][:indent(i)]]
        if not ok:
            return None
        i = rng.choice(ok)
        return offs[i] + indent(i), offs[i] + len(lines[i])
    if kind == "line_start":  # cursor at the start of a line with code: the line above it is missing
        ok = [i for i in single if i + 1 < len(lines) and lines[i + 1].strip() and indent(i + 1) == indent(i)
              and not lines[i + 1].strip().startswith(("#", "//", "/*", "*", "}", ")", "]"))]
        if not ok:
            return None
        i = rng.choice(ok)
        return offs[i] + indent(i), offs[i + 1] + indent(i + 1)
    if kind == "mid_line":  # code on both sides of the cursor
        ok = [i for i in single if len(lines[i].strip()) >= 16]
        if not ok:
            return None
        i = rng.choice(ok)
        line = lines[i]
        a = rng.randrange(indent(i) + 1, len(line) - 4)
        b = rng.randrange(a + 3, min(len(line) - 1, a + 40) + 1)
        if not line[b:].strip() or not line[a:b].strip():
            return None
        return offs[i] + a, offs[i] + b
    if kind == "block":  # 2-15 lines of sibling statements missing, cursor on an empty line
        runs = []
        for btype, body in bodies:
            if btype not in NESTED_BODIES:
                continue
            for x in range(len(body)):
                for y in range(x, len(body)):
                    first, last = body[x].start_point[0], body[y].end_point[0]
                    if last - first + 1 > 15:
                        break
                    if last - first + 1 >= 2 and lo <= first and last < hi \
                            and body[y].end_point[1] == len(lines[last].rstrip()) \
                            and body[x].start_point[1] == indent(first) \
                            and _editor_indent(lines, first) == lines[first][:indent(first)]:
                        runs.append((first, last))
        if not runs:
            return None
        first, last = rng.choice(runs)
        return offs[first] + indent(first), offs[last] + len(lines[last])
    if kind == "span":  # any stretch of code, possibly across lines
        ok = [i for i in single if lo <= i < hi]
        if not ok:
            return None
        i = rng.choice(ok)
        a = offs[i] + rng.randrange(indent(i), len(lines[i]) - 1)
        b = min(len(text), a + rng.randint(3, 160))
        if not text[a:b].strip():
            return None
        return a, b
    raise ValueError(f"unknown task kind {kind!r}")


def _doctest_functions(tree: ast.AST) -> list[ast.FunctionDef]:
    out = []
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.FunctionDef) and ">>>" in (ast.get_docstring(node) or "") \
                and not node.decorator_list:
            out.append(node)
    return out


def make_tasks(language: str, files: list[Path], n: int, seed: int, base: Path | None = None,
               kinds: tuple[str, ...] = KINDS) -> list[Task]:
    """n tasks, the kinds in turn, one task per file per pass over the (seeded, shuffled) files."""
    rng = random.Random(f"{seed}-{language}")
    files = list(files)
    rng.shuffle(files)
    parsed: dict[Path, tuple] = {}
    tasks: list[Task] = []
    used: set[tuple[str, int, int]] = set()
    for _ in range(12):  # passes: small corpora (TypeScript) give several tasks per file
        before = len(tasks)
        for path in files:
            if len(tasks) >= n:
                return tasks
            if path not in parsed:
                parsed[path] = _load(path, language)
            loaded = parsed[path]
            if loaded is None:
                continue
            text, lines, offs, bodies, fns = loaded
            kind = kinds[len(tasks) % len(kinds)]
            lo, hi, doctest_name = 0, len(lines), None
            if fns and kind != "span" and rng.random() < 0.5:  # a share of holes where doctests can run
                fn = rng.choice(fns)
                lo, hi, doctest_name = fn.body[0].end_lineno or 0, fn.end_lineno or len(lines), fn.name
            hole = _holes(kind, text, lines, offs, bodies, rng, lo, hi)
            if hole is None:
                continue
            start, end = hole
            middle = text[start:end]
            key = (str(path), start, end)
            if not middle.strip() or len(middle) > 800 or key in used:
                continue
            used.add(key)
            shown = str(path.relative_to(base)) if base and path.is_relative_to(base) else path.name
            # a corpus copy (corpus/<split>/python/<path under its root>) is named from its base
            module = module_name(path, [base, *python_roots()] if base else None) if doctest_name else None
            tasks.append(Task(f"{language}-{len(tasks):04d}", kind, language, shown, text[:start], text[end:],
                              middle, doctest_name if module else None, module))
        if len(tasks) == before:
            break
    return tasks


def _load(path: Path, language: str):
    """(text, lines, offsets, statement bodies, doctest functions) for a file that parses; else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    if "\t" in text[:5000] or "\r" in text or parses(language, text) is not True:
        return None
    tree = syntax_tree(language, text)
    if tree is None:
        return None
    fns = _doctest_functions(ast.parse(text)) if language == "python" else []
    return text, text.split("\n"), _line_offsets(text), _bodies(tree.root_node), fns


# --- execution: run the function's own doctests with the completion in place ---------------------
RUNNER = r'''
import doctest, importlib, json, sys, textwrap, ast
job = json.load(sys.stdin)
mod = importlib.import_module(job["module"])
ns = dict(vars(mod))
tree = ast.parse(job["source"])
fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == job["name"])
code = ast.get_source_segment(job["source"], fn)
exec(compile(textwrap.dedent(code), "<completion>", "exec"), ns)
test = doctest.DocTestFinder(recurse=False).find(ns[job["name"]], job["name"], globs=ns)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
for t in test:
    runner.run(t, out=lambda s: None)
print(json.dumps({"failed": runner.failures, "attempted": runner.tries}))
'''


def run_doctest(task: Task, completion: str, timeout: float = 20.0) -> bool | None:
    """True/False when the doctests ran; None when they could not (import problems, timeouts)."""
    import json
    source = task.prefix + completion + task.suffix
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    try:
        r = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(
            {"module": task.module, "source": source, "name": task.doctest}),
            capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONHASHSEED": "0"})
    except subprocess.TimeoutExpired:
        return False
    if r.returncode != 0:
        return False if "<completion>" in r.stderr or "SyntaxError" in r.stderr else None
    out = re.findall(r"\{.*\}", r.stdout)
    if not out:
        return None
    res = json.loads(out[-1])
    return res["attempted"] > 0 and res["failed"] == 0


def doctest_checks_hole(task: Task) -> bool:
    """Execution can score a task only when its doctests pass with the original middle and fail with a
    sabotaged one; otherwise the hole sits on a path the doctests never run (an error branch, say)."""
    return bool(task.doctest) and run_doctest(task, task.middle) is True \
        and run_doctest(task, "raise RuntimeError('sabotaged')") is False

