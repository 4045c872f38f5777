"""The project's corpus split: code present on any machine after `make test`, in train / validation /
test folders that never overlap.

    python -m training.corpus [--out artifacts/corpus] [--max-files 400]

Python comes from the standard library and the venv's packages, JavaScript and TypeScript (sources,
not .d.ts) from installed node_modules.
Files are assigned by a hash of their *package* (top folder), not of the file, so near-copies inside one
package cannot leak across splits. Later issues train on train and report on test.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

from training.fim_tasks import js_roots, list_files, python_roots

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "artifacts" / "corpus"
SPLITS = ("train", "validation", "test")
LANG_SUFFIX = {"python": ".py", "javascript": ".js", "typescript": ".ts"}


def package_of(path: Path, root: Path) -> str:
    """The innermost npm package (node_modules/<pkg>, scopes included), else the top folder under root."""
    parts = path.parts
    if "node_modules" in parts:
        i = len(parts) - 1 - parts[::-1].index("node_modules")
        if i + 1 < len(parts) - 1:
            return "/".join(parts[i + 1:i + 3]) if parts[i + 1].startswith("@") else parts[i + 1]
    rel = path.relative_to(root).parts
    return rel[0] if len(rel) > 1 else Path(rel[0]).stem


def split_of(package: str) -> str:
    """80 / 10 / 10 by a stable hash of the package name."""
    h = int(hashlib.sha256(package.encode()).hexdigest()[:8], 16) % 10
    return "train" if h < 8 else ("validation" if h == 8 else "test")


# Ghostline's own training stack (training.finetune's torch, transformers, peft and what they pull in): not code
# a user writes, and installing it must not reshuffle the splits the benchmarks were measured on.
TOOLING = frozenset({
    "torch", "torchgen", "functorch", "transformers", "peft", "accelerate", "gguf", "tokenizers", "safetensors",
    "sympy", "mpmath", "networkx", "pydantic", "pydantic_core", "urllib3", "requests", "certifi",
    "charset_normalizer", "rich", "typer", "markdown_it", "mdurl", "psutil", "shellingham", "regex",
    "annotated_doc", "annotated_types", "typing_inspection",
})


def roots_for(language: str) -> list[Path]:
    return python_roots() if language == "python" else js_roots(ROOT)


def assign(language: str) -> dict[str, list[tuple[Path, Path]]]:
    """split -> [(source file, relative path inside the split folder)]"""
    out: dict[str, list[tuple[Path, Path]]] = {s: [] for s in SPLITS}
    for root in roots_for(language):
        for f in list_files([root], LANG_SUFFIX[language]):
            pkg = package_of(f, root)
            if pkg in TOOLING:
                continue
            out[split_of(f"{language}:{pkg}")].append((f, Path(language) / f.relative_to(root)))
    return out


def build(out: Path = DEFAULT_OUT, max_files: int = 400) -> dict[str, dict[str, int]]:
    """Copy up to max_files per split and language (sorted, so the same files every time)."""
    counts: dict[str, dict[str, int]] = {}
    for language in LANG_SUFFIX:
        for split, files in assign(language).items():
            dest_root = out / split
            chosen = sorted(files, key=lambda t: hashlib.sha256(str(t[1]).encode()).hexdigest())[:max_files]
            for src, rel in chosen:
                dest = dest_root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists():
                    shutil.copyfile(src, dest)
            counts.setdefault(split, {})[language] = len(chosen)
    return counts


def split_dir(split: str, out: Path = DEFAULT_OUT) -> Path:
    """The folder of one split, built on first use."""
    d = out / split
    if not d.is_dir():
        build(out)
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.corpus", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-files", type=int, default=400, help="per split and language")
    args = ap.parse_args(argv)
    counts = build(args.out, args.max_files)
    for split in SPLITS:
        print(f"{split:10s} " + "  ".join(f"{lang} {n}" for lang, n in counts.get(split, {}).items()))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
