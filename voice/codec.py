"""Telephone audio: ITU-T G.711 μ-law / A-law and polyphase resampling (8 kHz ⇄ 16 kHz and more).

G.711 encoding and decoding are table lookups built once, vectorised with numpy; the tables
follow the reference G.711 implementation (Sun ``g711.c``, the same one ``audioop`` uses), so
results are bit-exact with it. μ-law works on the top 14 bits of a sample, A-law on the top 13.

Resampling by any rational factor L/M is a polyphase FIR: a Kaiser-windowed sinc low-pass
(-6 dB at 92.5 % of the lower Nyquist, about 70 dB stop-band) split into L sub-filters, of which
only the outputs actually kept are computed. Its group delay is compensated, so output sample
``n`` lines up with input time ``n / to_rate``. ``Resampler`` keeps the filter history across
calls: feeding 20 ms frames one by one and then ``flush()`` gives the same samples as
``resample`` on the whole buffer.

PCM is always mono signed 16-bit little-endian (``core.types.AudioFrame.pcm``).
"""

from __future__ import annotations

from functools import cache, lru_cache
from math import gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.errors import AudioFormatError

_HALF_TAPS = 32  # filter half-length in samples of the lower of the two rates
_CUTOFF = 0.925  # -6 dB point as a share of the lower Nyquist frequency
_KAISER_BETA = 7.0  # about 70 dB stop-band attenuation
_CHUNK = 4096  # outputs computed per vectorised step (bounds temporary memory)

ULAW_SILENCE = 0xFF  # μ-law code of 0 (positive zero)
ALAW_SILENCE = 0xD5  # A-law code of 0

_PCM16 = np.dtype("<i2")


def pcm16_samples(pcm: bytes) -> np.ndarray:
    """The int16 samples of a PCM16 buffer; an odd byte length is an ``AudioFormatError``."""
    if len(pcm) % 2:
        raise AudioFormatError(f"PCM16 buffer has an odd length ({len(pcm)} bytes): a sample is cut in half")
    return np.frombuffer(pcm, dtype=_PCM16)


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """Little-endian PCM16 bytes of int16 ``samples``."""
    return np.asarray(samples, dtype=_PCM16).tobytes()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Encode PCM16 to G.711 μ-law, one byte per sample."""
    return _ulaw_encode_table()[pcm16_samples(pcm).view(np.uint16)].tobytes()


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode G.711 μ-law bytes to PCM16."""
    return _ulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)].tobytes()


def pcm16_to_alaw(pcm: bytes) -> bytes:
    """Encode PCM16 to G.711 A-law, one byte per sample."""
    return _alaw_encode_table()[pcm16_samples(pcm).view(np.uint16)].tobytes()


def alaw_to_pcm16(data: bytes) -> bytes:
    """Decode G.711 A-law bytes to PCM16."""
    return _alaw_decode_table()[np.frombuffer(data, dtype=np.uint8)].tobytes()


def _all_int16() -> np.ndarray:
    """Every int16 value, ordered so that ``table[sample.view(uint16)]`` looks a sample up."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


@cache
def _ulaw_encode_table() -> np.ndarray:
    value = _all_int16() >> 2  # 14-bit
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(value), 8159) + 33  # clip, add bias
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), magnitude)
    code = (seg << 4) | ((magnitude >> (seg + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


@cache
def _ulaw_decode_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, 0x84 - t, t - 0x84).astype(_PCM16)


@cache
def _alaw_encode_table() -> np.ndarray:
    value = _all_int16() >> 3  # 13-bit
    mask = np.where(value >= 0, 0xD5, 0x55)
    magnitude = np.where(value >= 0, value, -value - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), magnitude)
    quant = np.where(seg < 2, magnitude >> 1, magnitude >> np.minimum(seg, 7)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | quant)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


@cache
def _alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (code & 0x70) >> 4
    t = (code & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(code & 0x80, t, -t).astype(_PCM16)


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole PCM16 buffer; the output has ``ceil(len * to_rate / from_rate)`` samples."""
    resampler = Resampler(from_rate, to_rate)
    return resampler.process(pcm) + resampler.flush()


class Resampler:
    """Streaming polyphase resampler: ``process`` frames as they come, ``flush`` at the end.

    Output lags input by the filter's half-length (64 output samples, 8 ms, for 8 kHz -> 16 kHz);
    ``flush`` emits that tail and leaves the resampler ready for a new stream.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise AudioFormatError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        common = gcd(from_rate, to_rate)
        self.from_rate, self.to_rate = from_rate, to_rate
        self._up, self._down = to_rate // common, from_rate // common
        self._coefs, self._delay = _design(self._up, self._down)
        self._buf: np.ndarray = np.zeros(0)  # input history, float64
        self._start = 0  # absolute input index of self._buf[0]
        self._received = 0  # input samples fed since the stream started
        self._next = 0  # absolute index of the next output sample
        self._reset()

    def process(self, pcm: bytes) -> bytes:
        """Feed PCM16 at ``from_rate``; returns every output sample that is now complete."""
        samples = pcm16_samples(pcm)
        self._buf = np.concatenate([self._buf, samples.astype(np.float64)])
        self._received += len(samples)
        last = (self._received * self._up - 1 - self._delay) // self._down  # last output with all its input
        return self._emit(max(last + 1, self._next))

    def flush(self) -> bytes:
        """Emit the delayed tail (as if silence followed) and reset for a new stream."""
        total = -(-self._received * self._up // self._down)
        if total > self._next:
            needed = ((total - 1) * self._down + self._delay) // self._up + 1 - self._start
            self._buf = np.concatenate([self._buf, np.zeros(max(needed - len(self._buf), 0))])
        out = self._emit(total)
        self._reset()
        return out

    def _reset(self) -> None:
        taps = self._coefs.shape[1]
        self._buf = np.zeros(taps - 1)  # history before the stream starts is silence
        self._start = -(taps - 1)
        self._received = 0
        self._next = 0

    def _emit(self, end: int) -> bytes:
        """Compute outputs ``self._next .. end-1`` and drop input nobody needs any more."""
        if end <= self._next:
            return b""
        taps = self._coefs.shape[1]
        windows = sliding_window_view(self._buf, taps)
        pieces = []
        for first in range(self._next, end, _CHUNK):
            index = np.arange(first, min(first + _CHUNK, end)) * self._down + self._delay
            newest, phase = np.divmod(index, self._up)
            rows = windows[newest - (taps - 1) - self._start]
            pieces.append(np.einsum("ij,ij->i", rows, self._coefs[phase]))
        self._next = end
        oldest_needed = (end * self._down + self._delay) // self._up - (taps - 1)
        keep_from = min(oldest_needed - self._start, len(self._buf))
        self._buf, self._start = self._buf[keep_from:], self._start + keep_from
        return pcm16_bytes(np.clip(np.rint(np.concatenate(pieces)), -32768, 32767).astype(np.int16))


@lru_cache(maxsize=16)
def _design(up: int, down: int) -> tuple[np.ndarray, int]:
    """Polyphase coefficients ``(up, taps)`` (newest input last) and the delay in filter samples."""
    factor = max(up, down)
    length = 2 * _HALF_TAPS * factor + 1
    delay = (length - 1) // 2
    cutoff = 0.5 * _CUTOFF / factor  # cycles per sample at the filter rate
    n = np.arange(length) - delay
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(length, _KAISER_BETA)
    h *= up / h.sum()  # unity gain after zero-stuffing by ``up``
    taps = -(-length // up)
    padded = np.zeros(taps * up)
    padded[:length] = h
    return padded.reshape(taps, up).T[:, ::-1].copy(), delay
