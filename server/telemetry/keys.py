"""The per-install HMAC key that pseudonymises code in the database, and private (owner-only) files."""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

from ..dirs import config_dir

log = logging.getLogger(__name__)

KEY_NAME = "telemetry.key"


def default_key_path() -> Path:
    """In the config folder, apart from the database: a copied data folder (a bug report) must not carry
    what de-pseudonymises it."""
    return config_dir() / KEY_NAME


def mkdir_private(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True, mode=0o700)


def create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist (race-free); tighten it if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    chmod_private(path)


def chmod_private(path: Path) -> None:
    try:
        if os.name == "posix" and path.exists() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass


def load_or_create_key(path: str | os.PathLike) -> bytes:
    """The 32-byte per-install HMAC key in `path` (64 hex chars), created (mode 0600) on first use.
    An unreadable or malformed key file is replaced. Raises OSError if the file cannot be written."""
    p = Path(path)
    mkdir_private(p.parent)
    for _ in range(3):
        try:
            text = p.read_text("ascii").strip()
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as e:
            log.warning("telemetry key %s unreadable (%s); replacing it", p, e)
            text = ""
        if text is not None:
            if re.fullmatch(r"[0-9a-f]{64}", text):
                chmod_private(p)
                return bytes.fromhex(text)
            log.warning("telemetry key %s is malformed; replacing it (old hashes will not match new ones)", p)
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        key = secrets.token_bytes(32)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, p)  # fails if another process created the key first: then use theirs
            return key
        except FileExistsError:
            continue
        except OSError:  # filesystems without hard links
            if not p.exists():
                os.replace(tmp, p)
                return key
            continue
        finally:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
    raise OSError(f"could not create telemetry key {p}")


def keyed_hash(key: bytes, text: str) -> str:
    """HMAC-SHA256 of `text` (UTF-8) with the install key, hex. Not reversible by dictionary without the key."""
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def prompt_text(prefix: str, suffix: str) -> str:
    """What `prompt_hmac` is computed over."""
    return f"{prefix}\x00{suffix}"
