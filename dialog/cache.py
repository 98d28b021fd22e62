"""Where the understanding keeps what it derives from its data (trained models, word lists), and how.

Files live under ``$XDG_CACHE_HOME/ivr/nlu`` (default ``~/.cache/ivr/nlu``), each named by a hash of
everything it was derived from, so a change of data or code never reads a stale file. Writes are
atomic (a temporary file renamed into place), so a crash leaves no half-written file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ivr/nlu``, by default ``~/.cache/ivr/nlu``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "ivr" / "nlu"


def fingerprint(*parts: bytes | str) -> str:
    """A short hash of the parts, each kept apart from the next."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
