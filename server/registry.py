"""The LoRA adapters trained for the base models (whose manifests are in models/, read by server/models.py).

An adapter lives in `<models dir>/adapters/<name>/`: `adapter.gguf` and `adapter.json`
({"name", "base", "file", "sha256"}, plus what training.finetune records: data, split, metrics, date).
`base` is the identity (`name@sha8`) of the base model it was trained on, and an adapter is only ever loaded
onto that base: the same weights on another base are noise.

`adapters/promoted.json` says which adapter serves each base: {base identity: [names, newest last]}. The
last one serves (the server watches the file and swaps without a restart); rollback drops it, and the one
before serves again. Below the user's own promotions is the adapter Ghostline ships for a base (its model
manifest's `adapter`, in `models/adapters/<name>/`, the same layout): it serves until the user promotes one,
and again after the last is rolled back; a base without one serves bare.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .dirs import models_dir, replace_text
from .models import MANIFEST_DIR, ModelError, ResolvedModel, cached_sha256, identity, load_manifests, sha256_file

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.gguf"
ADAPTER_MANIFEST = "adapter.json"
PROMOTED = "promoted.json"
SHIPPED_DIR = MANIFEST_DIR / "adapters"  # the adapters that come with Ghostline (small: in git)


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
    """The adapters on disk, shipped ones first, only those trained for `base` (an identity) when given. An
    entry that cannot be read is skipped with a warning: one broken folder does not hide the others."""
    found = []
    for manifest in [*sorted(SHIPPED_DIR.glob(f"*/{ADAPTER_MANIFEST}")),
                     *sorted(adapters_dir().glob(f"*/{ADAPTER_MANIFEST}"))]:
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
    mine: dict[str, Adapter] = {}
    for a in list_adapters():
        mine.setdefault(a.name, a)  # a shipped adapter's name is never shadowed
    a = mine.get(name)
    if a is None:
        raise ModelError(f"no adapter named {name!r} in {adapters_dir()}; "
                         f"known: {', '.join(mine) or 'none'}")
    if a.base != base.identity:
        raise ModelError(f"adapter {name} was trained for {a.base}, not {base.identity}")
    if not a.path.is_file():
        raise ModelError(f"adapter {name}: {a.path} is missing")
    if cached_sha256(a.path) != a.sha256:  # hashed once per file change (server.models' hash cache)
        raise ModelError(f"adapter {name}: {a.path} is corrupt (its sha256 is not {a.sha256[:8]}…); " + (
            "check out models/adapters again" if a.path.is_relative_to(SHIPPED_DIR)
            else "`python -m training.models rollback` serves the one before it"))
    return a


def shipped(base: str) -> str | None:
    """The name of the adapter Ghostline ships for `base` (an identity), or None."""
    for m in load_manifests().values():
        if m.adapter and m.sha256 and identity(m.name, m.sha256) == base:
            return m.adapter
    return None


def register_adapter(name: str, base: ResolvedModel, gguf: Path, about: dict | None = None,
                     root: Path | None = None) -> Adapter:
    """Copy a trained adapter into the registry (replacing one of the same name) and describe it; `about`
    (training data, held-out split, metrics, date) goes into the manifest beside the required keys. `root`:
    another registry folder (SHIPPED_DIR, training.models ship)."""
    if root is None and (SHIPPED_DIR / name).is_dir():
        raise ModelError(f"{name} is the name of an adapter Ghostline ships; give yours another")
    folder = (root or adapters_dir()) / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (ADAPTER_FILE + ".partial")
    shutil.copyfile(gguf, tmp)
    tmp.replace(folder / ADAPTER_FILE)
    a = Adapter(name, base.identity, folder / ADAPTER_FILE, sha256_file(folder / ADAPTER_FILE))
    replace_text(folder / ADAPTER_MANIFEST, json.dumps(
        {**(about or {}), "name": a.name, "base": a.base, "file": ADAPTER_FILE, "sha256": a.sha256}, indent=1) + "\n")
    return a


def read_state(name: str) -> dict:
    """A JSON object kept in the adapters folder (promotions, trials); {} when it is missing or unreadable (said
    in the log)."""
    path = adapters_dir() / name
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignoring %s: %s", path, e)
        return {}
    return d if isinstance(d, dict) else {}


def write_state(name: str, d: dict) -> None:
    """Replace the JSON object `name` in the adapters folder at once (a watcher never reads half of it)."""
    replace_text(adapters_dir() / name, json.dumps(d, indent=1) + "\n")


def _promotions() -> dict[str, list[str]]:
    return {k: [str(n) for n in v] for k, v in read_state(PROMOTED).items() if isinstance(v, list)}


def promoted(base: str) -> str | None:
    """The name of the adapter serving `base` (an identity): the user's newest promotion, else the shipped one,
    else None (the bare base model)."""
    names = _promotions().get(base) or []
    return names[-1] if names else shipped(base)


def promote(name: str, base: ResolvedModel) -> Adapter:
    """Serve adapter `name` on `base` from now on (checked first; raises ModelError), confirmed online against
    the version serving before it (server.trial)."""
    from . import bake, trial
    a = resolve_adapter(name, base)
    before = promoted(base.identity)
    d = _promotions()
    d[base.identity] = [n for n in d.get(base.identity, []) if n != name] + [name]
    # baked first, so a watching server reloads once; the bakes kept: the shipped adapter's and the one a
    # rollback would go back to
    mine = {x.name: x.identity for x in list_adapters(base.identity)}
    bake.bake_promoted(base, a, {mine[n] for n in (shipped(base.identity), *d[base.identity][-2:]) if n in mine})
    write_state(PROMOTED, d)
    trial.start(base.identity, name, before)
    return a


def rollback(base: ResolvedModel, why: str = "rolled back by hand") -> str | None:
    """Stop serving the newest promoted adapter on `base`; returns the one serving now (None: the base)."""
    from . import trial
    d = _promotions()
    names = d.get(base.identity, [])
    if not names:
        now = shipped(base.identity)
        raise ModelError(f"no adapter is promoted for {base.identity}"
                         + (f" (the shipped {now} serves)" if now else ""))
    d[base.identity] = names[:-1]
    write_state(PROMOTED, d)
    running = trial.load(base.identity)
    if running and not running.ended and running.new == names[-1]:
        trial.end(running, why)
    return promoted(base.identity)
