"""Fill-in-the-middle tasks cut from code already on this machine (never from a public benchmark).

Python comes from the standard library and the venv's site-packages, JavaScript from installed
node_modules (npm's own, the project's). Three hole kinds: the rest of a line (single-line), an
indented block body (multi-line), and a random span inside a line. Deterministic for a seed.
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

MAX_FILE_BYTES = 200_000
SKIP_DIRS = {"tests", "test", "testing", "__pycache__", "idlelib", "lib2to3", "turtledemo", "ghostline",
             "site-packages/server", "site-packages/training", "dist", "esm", "min", "umd"}


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # single | multi | span
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


def module_name(path: Path) -> str | None:
    for root in python_roots():
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if all(p.isidentifier() for p in parts):
            return ".".join(parts)
    return None


def _line_offsets(text: str) -> list[int]:
    offs, pos = [], 0
    for line in text.split("\n"):
        offs.append(pos)
        pos += len(line) + 1
    return offs


def _single(text: str, lines: list[str], offs: list[int], rng: random.Random, lo: int, hi: int):
    candidates = [i for i in range(lo, hi) if len(lines[i].strip()) >= 12
                  and not lines[i].strip().startswith(("#", "//", "*", "/*", '"""', "'''", "@"))]
    if not candidates:
        return None
    i = rng.choice(candidates)
    start = offs[i] + len(lines[i]) - len(lines[i].lstrip())
    end = offs[i] + len(lines[i])
    return start, end


def _span(text: str, lines: list[str], offs: list[int], rng: random.Random, lo: int, hi: int):
    candidates = [i for i in range(lo, hi) if len(lines[i].strip()) >= 20
                  and not lines[i].strip().startswith(("#", "//", "*", "/*"))]
    if not candidates:
        return None
    i = rng.choice(candidates)
    line = lines[i]
    indent = len(line) - len(line.lstrip())
    a = rng.randrange(indent, len(line) - 4)
    b = min(len(line), a + rng.randint(3, 40))
    return offs[i] + a, offs[i] + b


def _python_blocks(tree: ast.AST) -> list[tuple[int, int, int]]:
    """(opener line, first body line, last body line), 0-based, for bodies of 2-8 lines."""
    out = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list) or not body or isinstance(node, (ast.Module, ast.ClassDef)):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant):
            body = body[1:]  # keep the docstring in the prefix: it is what the user wrote first
            if not body:
                continue
        first, last = body[0].lineno - 1, (body[-1].end_lineno or body[-1].lineno) - 1
        opener = first - 1
        if 1 <= last - first + 1 <= 8 and opener >= 0:
            out.append((opener, first, last))
    return out


def js_blocks(lines: list[str], max_body: int = 8) -> list[tuple[int, int, int]]:
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


def _multi(text: str, lines: list[str], offs: list[int], rng: random.Random, blocks):
    blocks = [b for b in blocks if all(lines[k].strip() for k in range(b[1], b[2] + 1))
              and lines[b[0]].rstrip().endswith((":", "{"))]
    if not blocks:
        return None
    _, first, last = rng.choice(blocks)
    start = offs[first] + len(lines[first]) - len(lines[first].lstrip())
    end = offs[last] + len(lines[last])
    return start, end


def _doctest_functions(tree: ast.AST) -> list[ast.FunctionDef]:
    out = []
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.FunctionDef) and ">>>" in (ast.get_docstring(node) or "") \
                and not node.decorator_list:
            out.append(node)
    return out


def _has_doctest(path: Path) -> bool:
    try:
        return ">>> " in path.read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False


def make_tasks(language: str, files: list[Path], n: int, seed: int, base: Path | None = None) -> list[Task]:
    rng = random.Random(f"{seed}-{language}")
    files = list(files)
    rng.shuffle(files)
    if language == "python":  # interleave files with doctests so a share of tasks can be executed
        with_doc = [f for f in files if _has_doctest(f)]
        rest = [f for f in files if f not in set(with_doc)]
        files = [f for pair in zip(with_doc, rest) for f in pair] + with_doc[len(rest):] + rest[len(with_doc):]
    kinds = ["single", "multi", "span"]
    tasks: list[Task] = []
    for path in files:
        if len(tasks) >= n:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "\t" in text[:5000] or "\r" in text:
            continue
        lines = text.split("\n")
        offs = _line_offsets(text)
        kind = kinds[len(tasks) % 3]
        doctest_name = module = None
        lo, hi = 0, len(lines)
        if language == "python":
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                continue
            blocks = _python_blocks(tree)
            fns = _doctest_functions(tree)
            module = module_name(path)
            if fns and module and kind != "span":
                fn = rng.choice(fns)
                doc_end = fn.body[0].end_lineno if len(fn.body) > 1 else fn.body[0].lineno
                lo, hi = doc_end, fn.end_lineno
                blocks = [b for b in blocks if lo <= b[1] and b[2] < hi]
                doctest_name = fn.name
        else:
            blocks = js_blocks(lines)
        if kind == "multi":
            hole = _multi(text, lines, offs, rng, blocks)
        elif kind == "single":
            hole = _single(text, lines, offs, rng, lo, hi)
        else:
            hole = _span(text, lines, offs, rng, lo, hi)
        if hole is None:
            continue
        start, end = hole
        middle = text[start:end]
        if not middle.strip() or len(middle) > 600:
            continue
        shown = str(path.relative_to(base)) if base and path.is_relative_to(base) else path.name
        tasks.append(Task(f"{language}-{len(tasks):04d}", kind, language, shown, text[:start], text[end:],
                          middle, doctest_name, module if doctest_name else None))
    return tasks


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

