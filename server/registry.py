"""The LoRA adapters trained for the base models (whose manifests are in models/, read by server/models.py).

An adapter lives in `<models dir>/adapters/<name>/`: `adapter.gguf` and `adapter.json`
({"name", "base", "file", "sha256"}). `base` is the identity (`name@sha8`) of the base model it was trained
on, and an adapter is only ever loaded onto that base: the same weights on another base are noise.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .dirs import models_dir
from .models import ModelError, ResolvedModel, identity, sha256_file

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.gguf"
ADAPTER_MANIFEST = "adapter.json"


@dataclass(frozen=True)
class Adapter:
    name: str
    base: str  # the base model's identity
    path: Path
    sha256: str

    @property
    def identity(self) -> str:
        return identity(self.name, self.sha256)


def adapters_dir() -> Path:
    return models_dir() / "adapters"


def list_adapters(base: str | None = None) -> list[Adapter]:
    """The adapters on disk, only those trained for `base` (an identity) when given. An entry that cannot be
    read is skipped with a warning: one broken folder does not hide the others."""
    found = []
    for manifest in sorted(adapters_dir().glob(f"*/{ADAPTER_MANIFEST}")):
        try:
            d = json.loads(manifest.read_text())
            a = Adapter(d["name"], d["base"], manifest.parent / d["file"], d["sha256"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("skipping adapter %s: %s", manifest.parent, e)
            continue
        if base is None or a.base == base:
            found.append(a)
    return found


def resolve_adapter(name: str, base: ResolvedModel) -> Adapter:
    """The adapter `name` for `base`, checked; raises ModelError with what is wrong."""
    mine = {a.name: a for a in list_adapters()}
    a = mine.get(name)
    if a is None:
        raise ModelError(f"no adapter named {name!r} in {adapters_dir()}; "
                         f"known: {', '.join(mine) or 'none'}")
    if a.base != base.identity:
        raise ModelError(f"adapter {name} was trained for {a.base}, not {base.identity}")
    if not a.path.is_file():
        raise ModelError(f"adapter {name}: {a.path} is missing")
    return a


def register_adapter(name: str, base: ResolvedModel, gguf: Path) -> Adapter:
    """Copy a trained adapter into the registry (replacing one of the same name) and describe it."""
    folder = adapters_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (ADAPTER_FILE + ".partial")
    shutil.copyfile(gguf, tmp)
    tmp.replace(folder / ADAPTER_FILE)
    a = Adapter(name, base.identity, folder / ADAPTER_FILE, sha256_file(folder / ADAPTER_FILE))
    (folder / ADAPTER_MANIFEST).write_text(json.dumps(
        {"name": a.name, "base": a.base, "file": ADAPTER_FILE, "sha256": a.sha256}, indent=1) + "\n")
    return a
