"""Where filters live and which one serves.

A filter is a folder: `filter.json` (name, feature_version, per stage its ONNX file, feature names and
thresholds, plus what it was trained on and how it scored) and one ONNX file per stage. The user's filters
are `<data dir>/filters/<name>/` and `<data dir>/filters/CURRENT` names the promoted one (`python -m
training.filter` writes both). They sit with the user's data, not with the model weights in the cache folder:
they are learned from this user's outcomes and cannot be downloaded again. Without a promoted filter the
shipped default in `models/filter/` serves. The folder is watched, and a newly promoted filter is loaded
without a restart.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .dirs import data_dir, replace_text
from .features import FEATURE_VERSION
from .filter import STAGES, LearnedFilter, OnnxStage
from .watch import watch_folder

log = logging.getLogger(__name__)

MANIFEST = "filter.json"
CURRENT = "CURRENT"
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "filter"


class FilterError(ValueError):
    pass


def filters_dir() -> Path:
    return data_dir() / "filters"


def load_filter(folder: Path) -> LearnedFilter:
    """The filter in `folder`; raises FilterError saying what is wrong with it."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
        if m.get("feature_version") != FEATURE_VERSION:
            raise FilterError(f"filter {folder} was trained on features v{m.get('feature_version')}, "
                              f"the server computes v{FEATURE_VERSION}")
        stages = {name: OnnxStage(folder / s["file"], s["features"], s.get("thresholds", {}))
                  for name, s in m["stages"].items() if name in STAGES}
        if not stages:
            raise FilterError(f"filter {folder} has no stage ({', '.join(STAGES)})")
        return LearnedFilter(str(m.get("name", folder.name)), stages)
    except FilterError:
        raise
    except Exception as e:  # a missing or corrupt file: json, KeyError, onnxruntime's own exceptions
        raise FilterError(f"filter {folder} cannot be loaded: {type(e).__name__}: {e}") from e


def current_folder() -> Path:
    """The promoted filter's folder, else the shipped default."""
    try:
        name = (filters_dir() / CURRENT).read_text().strip()
    except OSError:
        return SHIPPED
    return filters_dir() / name if name else SHIPPED


def promote(folder: Path) -> None:
    """Make the filter in `folder` (inside filters_dir()) the one that serves; atomic for a watching server."""
    replace_text(filters_dir() / CURRENT, folder.name + "\n")


def watch(on_change: Callable[[], None]) -> Callable[[], None] | None:
    """Call `on_change` when the filters folder changes; returns a stop function, or None when the folder
    cannot be watched (the filter then changes only at the next start)."""
    return watch_folder(filters_dir(), on_change)


def start_update(db: Path) -> subprocess.Popen | None:
    """Continue the serving filter on the user's outcomes in `db` (`python -m training.filter --online`), in a
    low-priority background process; it promotes the result only when it is better. None when it cannot start."""
    nice = [n, "-n", "19"] if (n := shutil.which("nice")) else []  # the model keeps the cores
    try:
        return subprocess.Popen([*nice, sys.executable, "-m", "training.filter", "--online", "--db", str(db)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # stdout is the LSP channel
                                env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    except OSError as e:
        log.warning("cannot start the filter update: %s", e)
        return None
