"""Speech out for the phone: a voice engine's audio made into 8 kHz μ-law 20 ms telephone frames.

``Synthesizer`` wraps one ``VoiceEngine`` (``voice.voices`` picks it from ``IVR_TTS_VOICE``):

1. the text is normalised once for every engine (``speakable``: numbers, money, dates, codes and
   Latin letters written out in Chinese characters);
2. the engine speaks it at its own rate (22.05 or 24 kHz);
3. the audio is resampled to 8 kHz with the project's anti-alias low-pass (``voice.codec.resample``),
   brought to a telephone level of ``TARGET_LUFS`` (ITU-R BS.1770 loudness, pyloudnorm) with its
   peaks kept under ``PEAK_DBFS`` so nothing clips, its trailing silence cut to ``TAIL_S``, and
   encoded as μ-law in 20 ms frames (A-law for a SIP leg is transcoded from it, see voice.codec).

Replies are synthesised sentence by sentence (``iter_sentences_frames``) so the first sentence
plays while the next is made; fixed prompts are rendered once per voice (``PromptCache``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from core.types import AudioFrame
from voice.codec import ULAW_SILENCE, pcm16_to_ulaw, resample
from voice.tts_engine import SynthesisError, VoiceEngine
from voice.tts_text import speakable, split_sentences

log = logging.getLogger(__name__)
TELEPHONE_RATE = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
TAIL_S = 0.2  # silence kept after a sentence's last sound (a natural pause before the next)
SILENCE_RMS = 32768 * 10 ** (-50 / 20)  # quieter than -50 dBFS is silence
TARGET_LUFS = -16.0  # telephone speech level (integrated loudness of each sentence)
PEAK_DBFS = -1.0  # no sample louder than this after the gain: μ-law never clips
MAX_PEAK_SQUEEZE = 2.0  # the soft limiter may take peaks down by up to 6 dB to reach the level
_MIN_LOUDNESS_S = 0.4  # BS.1770's gating block; shorter sounds are measured repeated to this length


@dataclass(frozen=True, slots=True)
class SentenceAudio:
    """One sentence of a reply and its telephone frames (each ``FRAME_BYTES`` of μ-law)."""

    text: str
    frames: tuple[bytes, ...]

    @property
    def duration(self) -> float:
        return len(self.frames) * FRAME_BYTES / TELEPHONE_RATE


class Synthesizer:
    """Text to telephone speech with one voice engine; blocking, so run it in an executor from async code."""

    def __init__(self, engine: VoiceEngine | None = None, fallback: VoiceEngine | None = None) -> None:
        if engine is None:
            from voice.tts_espeak import EspeakVoice

            engine = EspeakVoice()
        self.engine = engine
        self.fallback = fallback  # speaks a sentence the engine failed on (a caller hears it, robotic)

    @property
    def voice(self) -> str:
        """The name of the voice speaking (an ``IVR_TTS_VOICE`` value)."""
        return self.engine.info.name

    def synthesize(self, text: str) -> AudioFrame:
        """PCM16 of ``text`` at the engine's rate, as the engine made it; nothing to say gives an empty frame.

        When the engine fails on it (``SynthesisError``) and there is a fallback voice, the fallback
        says it instead; without one the error goes to the caller of this method.
        """
        spoken = speakable(text).strip()
        try:
            return AudioFrame(_pcm16(self.engine.synthesize(spoken)), self.engine.sample_rate)
        except SynthesisError as err:
            if self.fallback is None:
                raise
            log.warning("voice %s failed (%s); %s says it instead", self.voice, err, self.fallback.info.name)
            return AudioFrame(_pcm16(self.fallback.synthesize(spoken)), self.fallback.sample_rate)

    def telephone_frames(self, text: str) -> Iterator[bytes]:
        """8 kHz μ-law 20 ms frames of ``text``, synthesised sentence by sentence as consumed."""
        for sentence in self.iter_sentences_frames(text):
            yield from sentence.frames

    def iter_sentences_frames(self, text: str) -> Iterator[SentenceAudio]:
        """Each sentence of ``text`` with its frames; the next one is synthesised only when asked for."""
        for sentence in split_sentences(text):
            yield self.sentence_audio(sentence)

    def sentence_audio(self, sentence: str) -> SentenceAudio:
        """Synthesise one sentence into telephone frames (blocking); its trailing silence kept to ``TAIL_S``."""
        frame = self.synthesize(sentence)
        if not frame.pcm:
            return SentenceAudio(sentence, ())
        pcm = resample(frame.pcm, frame.sample_rate, TELEPHONE_RATE)
        pcm = trim_tail(telephone_level(pcm, TELEPHONE_RATE))
        return SentenceAudio(sentence, frames_of(pcm16_to_ulaw(pcm)))


class PromptCache:
    """Fixed prompts rendered once (at start-up) and served from memory by their text."""

    def __init__(self, synthesizer: Synthesizer, prompts: Iterable[str]) -> None:
        self._frames = {text: tuple(synthesizer.telephone_frames(text)) for text in dict.fromkeys(prompts)}

    def get(self, text: str) -> tuple[bytes, ...] | None:
        """The frames of a cached prompt, or None when ``text`` is not one of them."""
        return self._frames.get(text)

    def __contains__(self, text: object) -> bool:
        return text in self._frames

    def __len__(self) -> int:
        return len(self._frames)


def telephone_level(pcm: bytes, rate: int, target_lufs: float = TARGET_LUFS) -> bytes:
    """PCM16 ``pcm`` with a gain bringing its loudness to ``target_lufs``, peaks held under ``PEAK_DBFS``.

    Silence (nothing louder than -50 dBFS) is returned unchanged rather than amplified into noise.
    """
    import pyloudnorm

    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if peak * 32768 < SILENCE_RMS:
        return pcm
    measured = samples
    if len(measured) < _MIN_LOUDNESS_S * rate:  # a short 「嗯」: its loudness is that of it repeated
        measured = np.tile(samples, int(np.ceil(_MIN_LOUDNESS_S * rate / len(samples))) + 1)
    loudness = pyloudnorm.Meter(rate).integrated_loudness(measured)
    gain = 10 ** ((target_lufs - loudness) / 20) if np.isfinite(loudness) else 1.0
    ceiling = 10 ** (PEAK_DBFS / 20)
    gain = min(gain, ceiling * MAX_PEAK_SQUEEZE / peak)
    return _pcm16(soft_limit(samples * gain, ceiling))


def soft_limit(samples: np.ndarray, ceiling: float) -> np.ndarray:
    """Samples above half the ceiling bent smoothly towards it (tanh knee); none ever reaches it.

    Speech peaks a few milliseconds long sit 12-20 dB above its loudness: a plain gain to -16 LUFS
    would clip them, and a gain that keeps them under the ceiling leaves a voice 2-4 dB short of
    the level. The knee squeezes only those peaks (at most ``MAX_PEAK_SQUEEZE`` of them: 6 dB).
    """
    knee = ceiling / 2
    magnitude = np.abs(samples)
    over = magnitude > knee
    bent = knee + (ceiling - knee) * np.tanh((magnitude[over] - knee) / (ceiling - knee))
    out = samples.copy()
    out[over] = np.sign(samples[over]) * bent
    return out


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


def trim_tail(pcm: bytes, rate: int = TELEPHONE_RATE, tail_s: float = TAIL_S) -> bytes:
    """8 kHz PCM16 without the silence after its last sound beyond ``tail_s``.

    Engines end a sentence with up to ~0.3 s of silence: on the phone that is dead air after the
    last sentence, and a 「嗯。」 said while the answer is prepared holds the answer back that long.
    """
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    window = rate // 100  # 10 ms
    count = len(samples) // window
    if not count:
        return pcm
    rms = np.sqrt(np.mean(samples[: count * window].astype(np.float64).reshape(count, window) ** 2, axis=1))
    loud = np.flatnonzero(rms >= SILENCE_RMS)
    if not len(loud):
        return pcm
    end = (int(loud[-1]) + 1) * window + int(tail_s * rate)
    return pcm[: min(len(samples), end) * 2]


def frames_of(ulaw: bytes) -> tuple[bytes, ...]:
    """Split μ-law bytes into ``FRAME_BYTES`` frames, padding the last with μ-law silence."""
    padded = ulaw + bytes([ULAW_SILENCE]) * (-len(ulaw) % FRAME_BYTES)
    return tuple(padded[i : i + FRAME_BYTES] for i in range(0, len(padded), FRAME_BYTES))
