"""Hold audio: what a caller hears while waiting for an agent — a soft chord, clearly not a voice.

Two high-register major chords (C6–E6–G6, then D6–F#6–A6) fade into each other and back over an
8 s loop, at about −33 dBFS RMS (peaks at −24 dBFS), synthesised with numpy, the same every time.
Why a steady pad and not chimes: webrtcvad (``asr/vad.py``) took decaying chime tones for speech
in 30–70 % of their frames, at any pitch — an onset and a decay look like a syllable to it — while
a steady chord above 1 kHz at this level is speech in none of them after its first few frames
(``tests/test_hold_audio.py`` measures it), so hold audio played into a line is never taken for
the caller talking.

``hold_frames()`` is the loop as 20 ms PCM16 frames at 8 kHz (320 bytes each), endless, at full
level from the first frame (a fade-in is a rising onset, and webrtcvad took it for speech).
``hold_wav()`` is one loop as a WAV file (PCM16 8 kHz mono); it loops without a click, as every
partial completes whole cycles in 8 s (Twilio plays it as the conference's ``waitUrl``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cache

import numpy as np

from voice.wav import PCM, wav_bytes

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2
LOOP_S = 8  # every frequency below is a multiple of 1/8 Hz: whole cycles per loop
PEAK = 0.06  # of full scale: −24 dBFS
_CHORDS = ((1046.5, 1318.5, 1568.0), (1174.625, 1480.0, 1760.0))  # C6 E6 G6, D6 F#6 A6


@cache
def _loop() -> np.ndarray:
    """One loop as float samples in [-PEAK, PEAK]."""
    t = np.arange(LOOP_S * RATE) / RATE
    first, second = (sum(np.sin(2 * np.pi * f * t) for f in chord) / len(chord) for chord in _CHORDS)
    mix = 0.5 - 0.5 * np.cos(2 * np.pi * t / LOOP_S)  # 0 → 1 → 0 over the loop, smoothly
    samples: np.ndarray = PEAK * (first * (1 - mix) + second * mix)
    return samples


def _pcm(samples: np.ndarray) -> bytes:
    return bytes(np.round(samples * 32767).astype("<i2").tobytes())


@cache
def _loop_pcm() -> bytes:
    return _pcm(_loop())


def hold_frames() -> Iterator[bytes]:
    """Hold audio as 20 ms frames of PCM16 at 8 kHz, without end."""
    for pcm in itertools.repeat(_loop_pcm()):
        yield from _frames(pcm)


def _frames(pcm: bytes) -> Iterator[bytes]:
    for start in range(0, len(pcm), FRAME_BYTES):
        yield pcm[start : start + FRAME_BYTES]


@cache
def hold_wav() -> bytes:
    """One loop of the hold audio as a WAV file (PCM16, 8 kHz, mono)."""
    return wav_bytes(PCM, RATE, 16, _loop_pcm())
