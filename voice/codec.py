"""Telephone audio codecs: ITU-T G.711 μ-law / A-law.

Encoding and decoding are table lookups built once, vectorised with numpy; the tables follow
the reference G.711 implementation (Sun ``g711.c``, the same one ``audioop`` uses), so results
are bit-exact with it. μ-law works on the top 14 bits of a sample, A-law on the top 13.
PCM is always mono signed 16-bit little-endian (``core.types.AudioFrame.pcm``).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from core.errors import AudioFormatError

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
