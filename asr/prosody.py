"""How a caller speaks: speech rate, pitch and loudness per utterance, and against the call's baseline.

``measure`` turns one utterance's audio (plus its recognised words or text) into a ``Prosody`` of
absolute figures; ``ProsodyTracker`` fills in ``rel_*`` against the caller's earlier utterances,
because an upset caller shows it by speaking *faster and louder than they themselves did before*.

How the figures are made:

* speech frames: 10 ms frames whose RMS level is above an adaptive threshold (the utterance's loud
  frames minus 35 dB, at least -60 dBFS, and above the line noise); gaps up to 100 ms are bridged
  (stop closures are not pauses) and blips up to 20 ms dropped.
* ``voiced_seconds``: the union of the word intervals when word timings are given, else the speech
  frames' time. ``pause_ratio = 1 - voiced_seconds / duration``.
* ``speech_rate``: syllables per voiced second. One Han character is one syllable, each digit one,
  a Latin word one per vowel group (an all-caps word of up to 5 letters is spelt out: "VIP" = 3).
  No words and no text give a rate of 0.0.
* ``f0_mean`` / ``f0_std``: ``librosa.yin`` (60-400 Hz) on speech frames whose waveform repeats
  at the yin period (normalised correlation >= 0.7), then frames more than a factor 1.75 from the
  median (octave errors) are left out. yin looks at periodicity, so it finds the fundamental on
  8 kHz telephone audio whose band (300-3400 Hz) no longer contains it. pyin was measured too: it
  gives the voicing for free but costs 65-300 ms per 3 s utterance; all of measure() takes 5-8 ms.
* ``energy_db``: RMS in dBFS over the speech frames.

Silence or audio shorter than 0.1 s gives zeros with ``pause_ratio`` 1.0; nothing raises and no
figure is NaN. ``measure`` blocks (a few ms per second of audio; the first call in a process pays
~1 s for librosa's lazy imports and JIT, see ``warm_up``): run it in an executor.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

import librosa
import numpy as np

from core.types import PCM_SAMPLE_WIDTH, AudioFrame, Prosody, Word

FMIN_HZ = 60.0
FMAX_HZ = 400.0
MIN_SECONDS = 0.1  # shorter audio is treated as silence
SILENCE_DBFS = -60.0  # frames below this are never speech
_DYNAMIC_RANGE_DB = 35.0  # speech frames are within this of the utterance's loud frames
_NOISE_MARGIN_DB = 6.0  # ... and this far above the line noise (5th percentile)
_MAX_GAP_S = 0.10  # shorter silences inside speech are not pauses
_MAX_BLIP_S = 0.02  # shorter bursts of level are clicks, not speech
_PERIODICITY = 0.7  # normalised correlation at one pitch period for a frame to count as pitched
_OCTAVE_SPAN = 1.75  # pitched frames further than this factor from the median are octave errors
_FULL_SCALE = 32768.0

SILENT = Prosody(speech_rate=0.0, f0_mean=0.0, f0_std=0.0, energy_db=0.0, pause_ratio=1.0, voiced_seconds=0.0)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN_OR_DIGIT = re.compile(r"[A-Za-z]+|[0-9]")
_VOWEL_GROUP = re.compile(r"[aeiouy]+", re.IGNORECASE)


def count_syllables(text: str) -> int:
    """Syllables in mixed Chinese text: Han characters, single digits, Latin vowel groups."""
    text = unicodedata.normalize("NFKC", text)
    count = len(_HAN.findall(text))
    for token in _LATIN_OR_DIGIT.findall(text):
        count += _latin_syllables(token) if token.isalpha() else 1
    return count


def _latin_syllables(word: str) -> int:
    if word.isupper() and len(word) <= 5:
        return len(word)  # spelt out: VIP, SKU, OK
    groups = len(_VOWEL_GROUP.findall(word))
    lower = word.lower()
    if groups > 1 and lower.endswith("e") and not lower.endswith(("le", "ee")):
        groups -= 1  # silent e: phone, size
    return max(1, groups)


def voiced_time(words: Sequence[Word]) -> float:
    """Seconds covered by the words, overlapping intervals counted once."""
    total, reach = 0.0, -np.inf
    for start, end in sorted((w.start, max(w.start, w.end)) for w in words):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return float(total)


def measure(audio: AudioFrame, words: Sequence[Word] | None = None, text: str | None = None) -> Prosody:
    """Absolute prosody of one utterance (``rel_*`` left at their defaults). Blocks: use an executor."""
    x = _samples(audio)
    sr, duration = audio.sample_rate, audio.duration
    if duration < MIN_SECONDS or sr < 2 * FMAX_HZ:
        return SILENT
    x = x - np.mean(x)  # a DC offset is not sound
    if not np.any(np.abs(x) > 1.0 / _FULL_SCALE):
        return SILENT
    hop = sr // 100
    levels = _frame_levels(x, hop)
    speech = _speech_frames(10.0 * np.log10(levels), hop / sr)
    if not speech.any():
        return SILENT
    seconds = voiced_time(words) if words else 0.0
    if seconds <= 0.0:
        seconds = float(speech.sum()) * hop / sr
    seconds = min(seconds, duration)
    syllables = count_syllables(" ".join(w.text for w in words) if words else text or "")
    f0_mean, f0_std = _pitch(x, sr, hop, speech)
    figures = (syllables / seconds, f0_mean, f0_std, float(10.0 * np.log10(np.mean(levels[speech]))))
    if not all(np.isfinite(figures)):
        return SILENT  # should not happen; a NaN must never reach the emotion rules
    return Prosody(*figures, pause_ratio=float(np.clip(1.0 - seconds / duration, 0.0, 1.0)), voiced_seconds=seconds)


def _samples(audio: AudioFrame) -> np.ndarray:
    """PCM16 as floats in [-1, 1); a stray odd byte is ignored."""
    pcm = audio.pcm[: audio.samples * PCM_SAMPLE_WIDTH]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / _FULL_SCALE


def _frame_levels(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean square of each whole ``hop``-sample frame, floored at -120 dBFS."""
    n = len(x) // hop
    return np.maximum(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1), 1e-12)


def _speech_frames(db: np.ndarray, frame_s: float) -> np.ndarray:
    """Which frames are speech: above an adaptive level threshold, short gaps bridged."""
    loud = float(np.percentile(db, 95))
    noise = float(np.percentile(db, 5))
    threshold = max(SILENCE_DBFS, loud - _DYNAMIC_RANGE_DB, min(noise + _NOISE_MARGIN_DB, loud - 20.0))
    mask = db > threshold
    mask = _fill_runs(mask, False, round(_MAX_GAP_S / frame_s), inner_only=True)
    return _fill_runs(mask, True, round(_MAX_BLIP_S / frame_s), inner_only=False)


def _fill_runs(mask: np.ndarray, value: bool, max_len: int, inner_only: bool) -> np.ndarray:
    """Flip runs of ``value`` no longer than ``max_len`` (only those between other runs if inner_only)."""
    out = mask.copy()
    edges = np.flatnonzero(np.diff(np.concatenate(([not value], mask == value, [not value])).astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        inner = start > 0 and stop < len(mask)
        if stop - start <= max_len and (inner or not inner_only):
            out[start:stop] = not value
    return out


def _pitch(x: np.ndarray, sr: int, hop: int, speech: np.ndarray) -> tuple[float, float]:
    """Mean and spread of f0 in Hz over pitched speech frames; (0, 0) when none is pitched."""
    frame_length = int(0.04 * sr)
    with np.errstate(all="ignore"):
        f0 = librosa.yin(x, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=sr, frame_length=frame_length, hop_length=hop)
    n = min(len(f0), len(speech))
    frames = np.flatnonzero(speech[:n] & np.isfinite(f0[:n]))
    if not len(frames):
        return 0.0, 0.0
    pitched = frames[_periodicity(x, sr, f0[frames], frames * hop, frame_length // 2) >= _PERIODICITY]
    if not len(pitched):
        return 0.0, 0.0
    hz = f0[pitched]
    median = float(np.median(hz))
    hz = hz[(hz > median / _OCTAVE_SPAN) & (hz < median * _OCTAVE_SPAN)]
    return float(np.mean(hz)), float(np.std(hz))


def _periodicity(x: np.ndarray, sr: int, f0: np.ndarray, centres: np.ndarray, width: int) -> np.ndarray:
    """Normalised correlation of each frame with itself one period (1/f0) later."""
    lag = np.rint(sr / f0).astype(np.int64)
    pad = width + int(sr / FMIN_HZ) + 1
    xp = np.pad(x, (pad, pad))
    index = (centres - width // 2 + pad)[:, None] + np.arange(width)
    a, b = xp[index], xp[index + lag[:, None]]
    with np.errstate(all="ignore"):
        corr = np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    return np.nan_to_num(corr, nan=0.0)


class ProsodyTracker:
    """One call's running baseline: the median of the caller's last ``window`` earlier utterances.

    The median (not a mean or EMA) so that one shouted or mumbled turn does not move the baseline.
    Utterances with less than ``min_voiced_s`` of speech ("嗯", "对") get ``rel_*`` like any other
    but do not enter the baseline: their rate and pitch are too noisy to compare against.
    """

    def __init__(self, window: int = 10, min_voiced_s: float = 0.5) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1 utterance, got {window}")
        self.min_voiced_s = min_voiced_s
        self._rates: deque[float] = deque(maxlen=window)
        self._f0s: deque[float] = deque(maxlen=window)
        self._energies: deque[float] = deque(maxlen=window)

    def update(self, p: Prosody) -> Prosody:
        """``p`` with ``rel_*`` against the earlier utterances; then ``p`` joins the baseline."""
        out = replace(
            p,
            rel_rate=_ratio(p.speech_rate, self._rates),
            rel_f0=_ratio(p.f0_mean, self._f0s),
            rel_energy_db=p.energy_db - statistics.median(self._energies)
            if self._energies and p.voiced_seconds > 0
            else 0.0,
        )
        if p.voiced_seconds >= self.min_voiced_s:
            if p.speech_rate > 0:
                self._rates.append(p.speech_rate)
            if p.f0_mean > 0:
                self._f0s.append(p.f0_mean)
            self._energies.append(p.energy_db)
        return out


def _ratio(value: float, history: deque[float]) -> float:
    if value <= 0 or not history:
        return 1.0
    return value / statistics.median(history)


def warm_up() -> None:
    """Pay librosa's one-off import and JIT cost (~1 s) now, e.g. at start-up in an executor."""
    t = np.arange(8000) / 8000
    tone = (0.3 * _FULL_SCALE * np.sin(2 * np.pi * 200 * t)).astype("<i2")
    measure(AudioFrame(tone.tobytes(), 8000), text="喂")
