"""Voice activity detection: cut a caller's PCM stream into utterances with webrtcvad.

``VadSegmenter.push`` takes chunks of any length (Twilio's 20 ms, SIP's 10/20/30 ms, whole files),
re-frames them into exact ``frame_ms`` frames and emits ``SpeechStarted`` / ``SpeechEnded``.
A frame counts as speech only when webrtcvad says so *and* its RMS level reaches
``energy_floor_dbfs``, so digital silence and quiet line hiss never open an utterance. webrtcvad
keeps saying "speech" for ~100 ms after speech stops on a noisy line; the segmenter tracks the
line-noise level (a minimum tracker) and moves each utterance's edges to the first/last frame that
is above the energy floor and at least 6 dB above the noise (up to ``preroll_ms`` outwards, for soft
initials and fading ends webrtcvad misses), so reported boundaries sit on the speech itself.

Odd byte counts are rejected (``AudioFormatError``) rather than buffered: an ``AudioFrame`` is
whole 16-bit samples, so an odd chunk means the producer is broken, and buffering would shift
every later sample by one byte without anyone noticing.

Times are stream seconds: the first chunk's ``timestamp`` is the origin and later chunks are taken
as contiguous (their own timestamps are not consulted), so every time is ``origin + samples / rate``.

All methods are synchronous and block while they work (measured ~25 µs per 20 ms chunk pushed one at
a time, ~5 µs per frame in big chunks); a caller on an event loop may push 20 ms chunks inline, but
should run ``segment`` on whole files, or pushes of big chunks, in an executor.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import webrtcvad

from core.errors import AudioFormatError
from core.types import PCM_SAMPLE_WIDTH, AudioFrame, SpeechEnded, SpeechStarted, VadEvent

SAMPLE_RATES = (8000, 16000, 32000, 48000)  # what webrtcvad accepts
FRAME_MS = (10, 20, 30)  # what webrtcvad accepts
_FULL_SCALE = 32768.0
_MIN_DB = -100.0  # level reported for digital silence
_NOISE_RISE = 0.02  # the line-noise level follows a quieter frame at once, a louder one slowly (~1 s)
_AUDIBLE_DB = 6.0  # a frame at an utterance edge must be this far above the line noise


@dataclass(slots=True)
class VadStats:
    """Running counters of one segmenter (mutable; read them for metrics)."""

    frames: int = 0  # frames classified
    speech_frames: int = 0  # frames that were speech (webrtcvad and energy floor)
    utterances: int = 0  # SpeechEnded events emitted, cuts included
    cuts: int = 0  # utterances ended because they reached max_utterance_s
    dropped_samples: int = 0  # samples of a partial last frame discarded by flush()


@dataclass(slots=True)
class _Frame:
    index: int
    pcm: bytes
    speech: bool
    db: float  # RMS level in dBFS


class VadSegmenter:
    """Streaming utterance segmenter for one call; not thread-safe, one instance per stream.

    Start: the last ``start_ms`` of frames hold at least ``start_ratio`` speech frames; the
    utterance starts at the first speech frame of that window (the real onset, not the moment of
    detection). End: ``hangover_ms`` of consecutive non-speech frames; the utterance ends at the
    end of its last speech frame. ``SpeechEnded.audio`` covers the utterance plus up to
    ``preroll_ms`` of context before the onset and after the end (after: at most ``hangover_ms``). An utterance reaching
    ``max_utterance_s`` is cut at its next speech frame (the new one starts there), which bounds
    memory to about ``max_utterance_s + hangover_ms + preroll_ms`` of audio.
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        aggressiveness: int = 2,
        frame_ms: int = 20,
        start_ms: int = 200,
        hangover_ms: int = 500,
        preroll_ms: int = 200,
        max_utterance_s: float = 30.0,
        start_ratio: float = 0.75,
        energy_floor_dbfs: float = -55.0,
    ) -> None:
        """Raises ``ValueError`` naming the argument when a setting is out of range."""
        _validate(
            sample_rate, aggressiveness, frame_ms, start_ms, hangover_ms, preroll_ms, max_utterance_s, start_ratio
        )
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.stats = VadStats()
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame_samples = sample_rate * frame_ms // 1000
        self._start_frames = start_ms // frame_ms
        self._start_needed = max(1, int(np.ceil(start_ratio * self._start_frames)))
        self._hangover_frames = hangover_ms // frame_ms
        self._context_frames = preroll_ms // frame_ms
        self._max_frames = max(1, int(max_utterance_s * 1000) // frame_ms)
        self._floor_db = energy_floor_dbfs
        self._reset()

    def _reset(self) -> None:
        self._origin: float | None = None
        self._rest = b""
        self._next_index = 0
        self._recent: deque[_Frame] = deque(maxlen=self._start_frames + self._context_frames)
        self._utt: list[_Frame] = []  # frames of the open utterance (empty when idle)
        self._onset = 0  # frame index where the open utterance starts
        self._last_speech = 0  # frame index of its last speech frame
        self._silence_run = 0  # consecutive non-speech frames since then
        self._noise_db: float | None = None  # line-noise level: a minimum tracker over non-speech frames

    @property
    def in_speech(self) -> bool:
        """True while an utterance is open (SpeechStarted emitted, SpeechEnded not yet)."""
        return bool(self._utt)

    @property
    def silent_ms(self) -> int:
        """Non-speech since the open utterance's last speech frame, in ms (0 when idle or speaking)."""
        return self._silence_run * self.frame_ms if self._utt else 0

    def push(self, frame: AudioFrame) -> list[VadEvent]:
        """Feed a chunk of any length; return the events it completes, in order.

        Raises ``AudioFormatError`` for a different sample rate or an odd byte count; the chunk is
        then rejected whole and the segmenter's state is unchanged, so the stream can go on.
        """
        if frame.sample_rate != self.sample_rate:
            raise AudioFormatError(f"expected {self.sample_rate} Hz audio, got {frame.sample_rate} Hz")
        if len(frame.pcm) % PCM_SAMPLE_WIDTH:
            raise AudioFormatError(f"expected an even number of bytes of 16-bit PCM, got {len(frame.pcm)}")
        if self._origin is None:
            self._origin = frame.timestamp
        data = self._rest + frame.pcm if self._rest else frame.pcm
        step = self._frame_samples * PCM_SAMPLE_WIDTH
        whole = len(data) // step * step
        self._rest = data[whole:]
        events: list[VadEvent] = []
        for pcm, db in zip(_split(data[:whole], step), _levels_db(data[:whole], self._frame_samples), strict=True):
            speech = bool(self._vad.is_speech(pcm, self.sample_rate)) and db >= self._floor_db
            events.extend(self._step(_Frame(self._next_index, pcm, speech, db)))
            self._next_index += 1
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open utterance and reset, ready for a new stream."""
        self.stats.dropped_samples += len(self._rest) // PCM_SAMPLE_WIDTH
        events: list[VadEvent] = [self._finish()] if self._utt else []
        self._reset()
        return events

    def _step(self, f: _Frame) -> list[VadEvent]:
        self.stats.frames += 1
        self.stats.speech_frames += f.speech
        if not f.speech:
            noise = self._noise_db
            self._noise_db = f.db if noise is None or f.db < noise else noise + _NOISE_RISE * (f.db - noise)
        if not self._utt:
            return self._step_idle(f)
        return self._step_open(f)

    def _step_idle(self, f: _Frame) -> list[VadEvent]:
        self._recent.append(f)
        window = list(self._recent)[-self._start_frames :]
        voiced = [x for x in window if x.speech]
        if len(voiced) < self._start_needed:
            return []
        onset = self._extend_onset(next((x.index for x in voiced if self._audible(x)), voiced[0].index))
        first = onset - self._context_frames
        self._utt = [x for x in self._recent if x.index >= first]
        self._recent.clear()
        self._onset, self._last_speech, self._silence_run = onset, voiced[-1].index, 0
        return [SpeechStarted(self._time(onset))]

    def _step_open(self, f: _Frame) -> list[VadEvent]:
        if f.speech and f.index - self._onset >= self._max_frames:
            return self._cut(f)
        self._utt.append(f)
        if f.speech:
            self._last_speech, self._silence_run = f.index, 0
            return []
        self._silence_run += 1
        if self._silence_run < self._hangover_frames:
            return []
        ended = self._finish()
        self._recent.extend(x for x in self._utt if x.index > self._last_speech)  # all non-speech
        self._utt = []
        return [ended]

    def _cut(self, f: _Frame) -> list[VadEvent]:
        """Close the too-long utterance before speech frame ``f`` and open a new one at ``f``."""
        ended = self._finish()
        self.stats.cuts += 1
        self._utt = [f]
        self._onset, self._last_speech, self._silence_run = f.index, f.index, 0
        return [ended, SpeechStarted(self._time(f.index))]

    def _audible(self, f: _Frame) -> bool:
        """Is the frame above the energy floor and clearly above the line noise?"""
        return f.db >= self._floor_db and (self._noise_db is None or f.db >= self._noise_db + _AUDIBLE_DB)

    def _extend_onset(self, onset: int) -> int:
        """Move the onset back over audible frames webrtcvad missed (a soft "x", "s", "h" initial)."""
        before = {x.index: x for x in self._recent}
        earliest = onset - self._context_frames
        while onset - 1 >= earliest and onset - 1 in before and self._audible(before[onset - 1]):
            onset -= 1
        return onset

    def _refine_end(self) -> None:
        """End on the last clearly audible frame: drop webrtcvad's ~100 ms overhang, add a faded tail."""
        for x in reversed(self._utt):
            if x.index < self._onset:
                break  # nothing audible: keep webrtcvad's end
            if x.index <= self._last_speech and x.speech and self._audible(x):
                self._last_speech = x.index
                break
        after = {x.index: x for x in self._utt}
        latest = self._last_speech + self._context_frames
        while self._last_speech + 1 <= latest and self._last_speech + 1 in after:
            if not self._audible(after[self._last_speech + 1]):
                break
            self._last_speech += 1

    def _finish(self) -> SpeechEnded:
        """The SpeechEnded for the open utterance (state is left to the caller)."""
        self._refine_end()
        last_kept = self._last_speech + self._context_frames
        kept = [x for x in self._utt if x.index <= last_kept]
        self.stats.utterances += 1
        audio = AudioFrame(b"".join(x.pcm for x in kept), self.sample_rate, self._time(kept[0].index))
        return SpeechEnded(self._time(self._onset), self._time(self._last_speech + 1), audio)

    def _time(self, index: int) -> float:
        assert self._origin is not None
        return self._origin + index * self._frame_samples / self.sample_rate


def segment(frame: AudioFrame, **kwargs: Any) -> list[SpeechEnded]:
    """Segment a whole recording; ``kwargs`` go to ``VadSegmenter``. Blocks: run in an executor."""
    seg = VadSegmenter(sample_rate=frame.sample_rate, **kwargs)
    events = seg.push(frame) + seg.flush()
    return [e for e in events if isinstance(e, SpeechEnded)]


def _split(data: bytes, step: int) -> list[bytes]:
    return [data[i : i + step] for i in range(0, len(data), step)]


def _levels_db(pcm: bytes, frame_samples: int) -> list[float]:
    """RMS level in dBFS of each whole frame of ``pcm`` (vectorised over the chunk)."""
    if not pcm:
        return []
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64).reshape(-1, frame_samples) / _FULL_SCALE
    mean_square = np.maximum(np.mean(x * x, axis=1), 10.0 ** (_MIN_DB / 10.0))
    return (10.0 * np.log10(mean_square)).tolist()


def _validate(
    sample_rate: int,
    aggressiveness: int,
    frame_ms: int,
    start_ms: int,
    hangover_ms: int,
    preroll_ms: int,
    max_utterance_s: float,
    start_ratio: float,
) -> None:
    if sample_rate not in SAMPLE_RATES:
        raise ValueError(f"sample_rate must be one of {SAMPLE_RATES}, got {sample_rate}")
    if aggressiveness not in (0, 1, 2, 3):
        raise ValueError(f"aggressiveness must be 0..3 (webrtcvad mode), got {aggressiveness!r}")
    if frame_ms not in FRAME_MS:
        raise ValueError(f"frame_ms must be one of {FRAME_MS}, got {frame_ms}")
    if start_ms < frame_ms or hangover_ms < frame_ms:
        raise ValueError(f"start_ms and hangover_ms must be >= frame_ms={frame_ms}, got {start_ms} and {hangover_ms}")
    if preroll_ms < 0:
        raise ValueError(f"preroll_ms must be >= 0, got {preroll_ms}")
    if not 0.0 < start_ratio <= 1.0:
        raise ValueError(f"start_ratio must be in (0, 1], got {start_ratio}")
    if max_utterance_s * 1000 < start_ms + hangover_ms:
        raise ValueError(f"max_utterance_s must cover start_ms + hangover_ms, got {max_utterance_s}")
