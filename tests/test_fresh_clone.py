"""A fresh clone outside this folder layout (no ``../shared`` beside it) passes with one line saying why
tests were skipped, and the same clone under ``CI=true`` fails naming what is missing.

The repository is cloned from its own committed HEAD into a temporary folder and a few representative
test files (one that needs no shared material, two that need the reference shop) run there with the
same interpreter and the clone first on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ("tests/test_core.py", "tests/test_shop_kb.py", "tests/test_hotline.py")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    dest = tmp_path_factory.mktemp("elsewhere") / "ivr"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", head.stdout.strip()], check=True)
    return dest


def run_pytest(clone: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "SHARED_DIR") and not k.startswith("IVR_")}
    base.update(PYTHONPATH=str(clone), **env)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FILES]
    return subprocess.run(command, cwd=clone, env=base, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("shared_dir", ["unset", "a missing folder"])
def test_outside_the_layout_tests_that_need_shared_skip_with_one_line(
    clone: Path, tmp_path: Path, shared_dir: str
) -> None:
    assert not (clone.parent / "shared").exists()
    missing = clone.parent / "shared" if shared_dir == "unset" else tmp_path / "nowhere"
    done = run_pytest(clone) if shared_dir == "unset" else run_pytest(clone, SHARED_DIR=str(missing))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "../shared not found" in line]
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith("skipped ") and "set SHARED_DIR" in lines[0]
    assert f"not found at {missing} " in lines[0]
    assert " passed" in done.stdout and " skipped" in done.stdout


def test_under_ci_a_missing_shared_file_fails_naming_it(clone: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-shared-here"
    done = run_pytest(clone, CI="true", SHARED_DIR=str(missing))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{missing}/fixtures/shop/shop.json is missing" in done.stdout
    assert "CI=true, so this is a failure" in done.stdout
    assert " failed" in done.stdout
