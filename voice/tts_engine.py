"""What every voice engine offers the hotline: text already normalised in, mono float audio out.

An engine is one loaded voice (one model instance per process, shared by every call). It takes a
sentence whose numbers, money, dates and letters ``voice.tts_text.speakable`` has already written
out in Chinese characters, and returns float32 samples in [-1, 1] at its own ``sample_rate``.
Everything telephone-specific (resampling to 8 kHz, loudness, μ-law, 20 ms frames) is done once,
after the engine, by ``voice.tts.Synthesizer``.

``synthesize`` blocks and may take hundreds of milliseconds: async code runs it in an executor.
An engine must be safe to call from several executor threads (serialise inside when the
underlying library is not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.errors import IvrError


class SynthesisError(IvrError):
    """A voice engine failed on a text (the engine reported an error or timed out)."""


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """What a user is told about a voice: ``ivr models list``, ``ivr serve``'s start-up line."""

    name: str  # the IVR_TTS_VOICE value that picks it, e.g. "espeak"
    engine: str  # the library or program behind it, e.g. "espeak-ng 1.51"
    description: str  # one line: what it sounds like and where it comes from
    licence: str  # one line: the licence of the voice (model weights and training data)
    commercial: bool  # the licence allows a shop to use it commercially
    neural: bool


class VoiceEngine(Protocol):
    """One loaded voice."""

    info: VoiceInfo
    sample_rate: int

    def synthesize(self, text: str) -> np.ndarray:
        """float32 mono samples in [-1, 1] of the normalised ``text``; empty for text with nothing to say."""
        ...
