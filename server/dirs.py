"""Where Ghostline keeps per-user files: the platform's data, config and cache folders from platformdirs
(which honours $XDG_DATA_HOME, $XDG_CONFIG_HOME and $XDG_CACHE_HOME), each movable by a Ghostline variable."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

APP = "ghostline"


def _override(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """`$GHOSTLINE_DATA_DIR`, else the user data folder + /ghostline (~/.local/share/ghostline on Linux)."""
    return _override("GHOSTLINE_DATA_DIR") or Path(platformdirs.user_data_dir(APP, appauthor=False))


def config_dir() -> Path:
    """`$GHOSTLINE_CONFIG_DIR`, else the user config folder + /ghostline (~/.config/ghostline on Linux)."""
    return _override("GHOSTLINE_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP, appauthor=False))


def models_dir() -> Path:
    """`$GHOSTLINE_MODELS_DIR`, else the user cache folder + /ghostline/models (~/.cache/ghostline/models on
    Linux): weights can always be fetched again, so they live in the cache, not with the user's data."""
    return _override("GHOSTLINE_MODELS_DIR") or Path(platformdirs.user_cache_dir(APP, appauthor=False)) / "models"


def replace_text(path: Path, text: str) -> None:
    """Write `path` whole through a temporary file beside it: a reader (a watching server, another process)
    sees the old text or the new, never half of it, and two writers never share the temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
