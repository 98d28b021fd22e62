"""Where the read-only shared material is: ``../shared`` beside the repository (tests and benches only).

``SHARED_DIR`` overrides it. The product never reads these paths; a user's machine has no shared/.
A test that needs a shared file calls ``shared(path)``: outside this layout it is skipped (conftest
sums every such skip up in one line at the end of the run), and under ``CI=true`` a missing file
fails the run instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

SHARED = Path(os.environ.get("SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
REFERENCE_SHOP = SHARED / "fixtures" / "shop" / "shop.json"
REAL_ZH = SHARED / "audio" / "real" / "zh"
REAL_TURNS = SHARED / "data" / "real_turns_dev.tsv"
SKIP_MARK = "needs ../shared"  # every skip reason below starts with it (conftest counts them in one line)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip the test saying what is missing; under ``CI=true`` a missing part is a failure instead."""
    if in_ci():
        pytest.fail(f"{reason} — CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


def shared(path: Path) -> Path:
    """``path`` when the shared material has it; else skip (fail under ``CI=true``) saying what is missing."""
    if path.exists():
        return path
    missing(f"{SKIP_MARK} ({path} is missing; set SHARED_DIR to run it)")


def program(name: str, package: str) -> str:
    """The path of the program ``name``; else skip (fail under ``CI=true``) naming its Debian package."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (Debian package {package})")
    return path
