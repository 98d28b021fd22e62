"""Shared fixtures: the real speech test models, each loaded once per test session.

A missing model skips the tests that need it, or fails them under ``CI=true`` (see tests/testmodels.py).
The engines are imported inside the fixtures, so test modules that need no model never load vosk or
faster-whisper.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import paths
import pytest
import testmodels

if TYPE_CHECKING:
    from asr.vosk_engine import VoskEngine
    from asr.whisper_engine import WhisperEngine


@pytest.fixture(scope="session")
def vosk_ko_model_dir() -> Path:
    return testmodels.require(testmodels.vosk_ko_dir(), f"Korean vosk test model missing: {testmodels.INSTALL_HINT}")


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    return testmodels.require(
        testmodels.whisper_base_dir(), f"whisper base test model missing: {testmodels.INSTALL_HINT}"
    )


@pytest.fixture(scope="session")
def vosk_ko_engine(vosk_ko_model_dir: Path) -> VoskEngine:
    from asr.vosk_engine import VoskEngine

    return VoskEngine(vosk_ko_model_dir)


@pytest.fixture(scope="session")
def whisper_engine(whisper_model_dir: Path) -> WhisperEngine:
    from asr.whisper_engine import WhisperEngine

    return WhisperEngine(whisper_model_dir, threads=2)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for every test skipped because ``../shared`` is absent, instead of one per test."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if paths.SKIP_MARK in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"skipped {len(skipped)} tests: ../shared not found at {paths.SHARED} (set SHARED_DIR to run them)"
        )
