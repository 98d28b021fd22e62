"""Hold audio: 20 ms frames, a WAV loop, a comfortable level, and never taken for speech by the project's VAD."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from asr.vad import VadSegmenter
from core.types import AudioFrame, SpeechStarted
from voice.codec import pcm16_to_ulaw, ulaw_to_pcm16
from voice.hold_audio import FRAME_BYTES, LOOP_S, RATE, hold_frames, hold_wav
from voice.wav import read_wav

LOOP_FRAMES = LOOP_S * 1000 // 20
MAX_SPEECH_FRAMES = 0.01  # of all frames; measured: 4–6 of 1,200 (≤ 0.5 %), the first ~100 ms, in every mode


def _samples(frames: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(frames), "<i2").astype(float) / 32768


def test_frames_are_20_ms_of_pcm16_and_the_loop_repeats_exactly() -> None:
    frames = list(itertools.islice(hold_frames(), 3 * LOOP_FRAMES))
    assert {len(f) for f in frames} == {FRAME_BYTES} and FRAME_BYTES == RATE // 50 * 2
    assert frames[:LOOP_FRAMES] == frames[LOOP_FRAMES : 2 * LOOP_FRAMES] == frames[2 * LOOP_FRAMES :]
    assert len(set(frames[:LOOP_FRAMES])) > LOOP_FRAMES // 2  # not one frame repeated: a loop of 8 s
    assert list(itertools.islice(hold_frames(), 100)) == frames[:100]  # deterministic


def test_the_wav_is_one_loop_that_joins_without_a_click() -> None:
    frame = read_wav(hold_wav(), strict=True)
    assert frame.sample_rate == RATE and len(frame.pcm) == LOOP_FRAMES * FRAME_BYTES
    assert frame.pcm == b"".join(itertools.islice(hold_frames(), LOOP_FRAMES))
    samples = np.frombuffer(frame.pcm, "<i2").astype(float)
    steps = np.abs(np.diff(samples))
    assert abs(samples[0] - samples[-1]) <= steps.max()  # the seam is no bigger a step than any inside the loop


def test_the_level_is_comfortable() -> None:
    samples = _samples(list(itertools.islice(hold_frames(), LOOP_FRAMES)))
    rms_db = 20 * np.log10(np.sqrt(np.mean(samples**2)))
    peak_db = 20 * np.log10(np.abs(samples).max())
    assert -40 < rms_db < -28, rms_db  # well below full scale, well above line noise (measured: −33.4)
    assert peak_db < -20, peak_db  # nowhere near clipping (measured: −24.4)
    loud = [20 * np.log10(np.sqrt(np.mean(s**2))) for s in np.split(samples, LOOP_FRAMES)]
    assert max(loud) - min(loud) < 10  # no frame jumps out: no sudden sound in the loop


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
@pytest.mark.parametrize("line", ["pcm16", "ulaw"])
def test_the_vad_does_not_take_it_for_speech(aggressiveness: int, line: str) -> None:
    """Three loops (24 s) as a caller's line would carry them; webrtcvad at every aggressiveness."""
    vad = VadSegmenter(RATE, aggressiveness)
    events = []
    for i, pcm in enumerate(itertools.islice(hold_frames(), 3 * LOOP_FRAMES)):
        if line == "ulaw":
            pcm = ulaw_to_pcm16(pcm16_to_ulaw(pcm))
        events += vad.push(AudioFrame(pcm, RATE, i * 0.02))
    events += vad.flush()
    assert vad.stats.frames == 3 * LOOP_FRAMES
    assert vad.stats.speech_frames <= MAX_SPEECH_FRAMES * vad.stats.frames, vad.stats.speech_frames
    assert not [e for e in events if isinstance(e, SpeechStarted)]  # no utterance ever opens


def test_the_vad_would_notice_a_voice_at_the_same_level() -> None:
    """The check above can fail: a syllable-like buzz (200 Hz, 0.4 s on, 0.2 s off) at the hold level is speech."""
    t = np.arange(3 * LOOP_S * RATE) / RATE
    buzz = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 12)) * (t % 0.6 < 0.4)
    buzz *= 0.06 / np.abs(buzz).max()
    vad = VadSegmenter(RATE, 2)
    events = vad.push(AudioFrame(np.round(buzz * 32767).astype("<i2").tobytes(), RATE, 0.0))
    assert vad.stats.speech_frames > 0.2 * vad.stats.frames
    assert any(isinstance(e, SpeechStarted) for e in events)
