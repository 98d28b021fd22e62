"""Reading any WAV into mono PCM16, writing PCM16 and μ-law WAVs, and rate conversion.

``read_wav`` accepts PCM 8/16/24/32-bit, IEEE float 32/64-bit, G.711 μ-law (format 7) and A-law
(format 6), plain or ``WAVE_FORMAT_EXTENSIBLE``, any channel count (downmixed by averaging).
Anything else is an ``AudioFormatError`` with a one-line message.

Truncation policy: once the header is complete (RIFF/WAVE, a valid ``fmt `` chunk and the start
of a ``data`` chunk), a data chunk shorter than it declares is decoded as far as it goes, whole
sample frames only. That is what streamed WAVs need: ``espeak-ng --stdout``, ``sox -t wav -`` and
cut-off call recordings all declare a length they never deliver. Pass ``strict=True`` to get an
``AudioFormatError`` instead. A file cut inside the header is always an error.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AudioFormatError
from core.types import AudioFrame
from voice.codec import alaw_to_pcm16, pcm16_bytes, pcm16_samples, resample, ulaw_to_pcm16

PCM, FLOAT, ALAW, ULAW, EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_*
_KNOWN_CODECS = {
    0x0002: "MS ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MPEG Layer 3",
    0x0064: "G.726 ADPCM",
    0x0065: "G.722 ADPCM",
}
_MAX_CHANNELS = 32
_MAX_RATE = 768_000  # no real recording goes above this; a header that claims more is corrupt
TURN_RATES = (8000, 48000)  # a caller's turn: telephone band up to studio rate
TURN_CHANNELS = 2

Source = str | os.PathLike[str] | bytes


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The decoded ``fmt `` chunk (with ``tag`` resolved through WAVE_FORMAT_EXTENSIBLE)."""

    tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits: int


def read_wav(source: Source, *, strict: bool = False) -> AudioFrame:
    """Decode a WAV file (path or bytes) to mono PCM16 at the file's own sample rate."""
    data = _load(source)
    return decode(*parse_wav(data, strict=strict))


def parse_turn_wav(data: bytes, max_seconds: float) -> tuple[WavFormat, bytes]:
    """A caller's turn: ``parse_wav`` with the header held to 8..48 kHz, mono or stereo and at most
    ``max_seconds``, all checked before a single sample is decoded or resampled (``decode``)."""
    fmt, payload = parse_wav(data)
    low, high = TURN_RATES
    if not low <= fmt.sample_rate <= high:
        raise AudioFormatError(f"sample rate {fmt.sample_rate} Hz is outside {low}..{high} Hz for a caller turn")
    if fmt.channels > TURN_CHANNELS:
        raise AudioFormatError(f"{fmt.channels} channels: a caller turn is mono or stereo")
    seconds = len(payload) // fmt.block_align / fmt.sample_rate
    if seconds > max_seconds:
        raise AudioFormatError(f"the turn is {seconds:.1f} s of audio; at most {max_seconds:g} s per turn")
    return fmt, payload


def decode(fmt: WavFormat, payload: bytes) -> AudioFrame:
    """Samples from ``parse_wav`` as mono PCM16 at the file's own rate."""
    return AudioFrame(pcm=_to_mono_pcm16(fmt, payload), sample_rate=fmt.sample_rate)


def parse_wav(data: bytes, *, strict: bool = False) -> tuple[WavFormat, bytes]:
    """Split WAV bytes into their format and raw sample data (whole sample frames only)."""
    if not data:
        raise AudioFormatError("empty file: 0 bytes, expected a RIFF/WAVE header")
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        if data[:4] == b"RIFX":
            raise AudioFormatError("big-endian RIFX WAV is not supported, expected little-endian RIFF")
        raise AudioFormatError(f"not a RIFF/WAVE file (starts with {data[:12]!r})")
    fmt: WavFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            if body + size > len(data):
                raise AudioFormatError(f"truncated header: fmt chunk declares {size} bytes, {len(data) - body} left")
            fmt = _parse_fmt(data[body : body + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("data chunk comes before any fmt chunk: the sample format is unknown")
            return fmt, _data_payload(data, body, size, fmt, strict)
        pos = body + size + (size & 1)
    if fmt is None:
        raise AudioFormatError("truncated header: no fmt chunk in the RIFF/WAVE file")
    raise AudioFormatError("truncated header: no data chunk in the RIFF/WAVE file")


def write_wav(path: str | os.PathLike[str], frame: AudioFrame) -> None:
    """Write ``frame`` as a mono PCM16 WAV."""
    pcm16_samples(frame.pcm)  # validates the length
    Path(path).write_bytes(wav_bytes(PCM, frame.sample_rate, 16, frame.pcm))


def write_ulaw_wav(path: str | os.PathLike[str], ulaw: bytes, rate: int = 8000) -> None:
    """Write G.711 μ-law bytes as a mono μ-law WAV (format 7, with the ``fact`` chunk)."""
    Path(path).write_bytes(wav_bytes(ULAW, rate, 8, ulaw))


def wav_bytes(tag: int, rate: int, bits: int, payload: bytes) -> bytes:
    """A complete mono WAV file of format ``tag`` around ``payload``."""
    if rate <= 0:
        raise AudioFormatError(f"sample rate must be positive, got {rate}")
    align = bits // 8
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * align, align, bits)
    chunks = [_chunk(b"fmt ", fmt if tag == PCM else fmt + b"\x00\x00")]
    if tag != PCM:
        chunks.append(_chunk(b"fact", struct.pack("<I", len(payload) // align)))
    chunks.append(_chunk(b"data", payload))
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def to_rate(frame: AudioFrame, rate: int) -> AudioFrame:
    """``frame`` resampled to ``rate`` Hz (polyphase FIR with an anti-alias low-pass, see voice.codec)."""
    if rate == frame.sample_rate:
        return frame
    return AudioFrame(resample(frame.pcm, frame.sample_rate, rate), rate, frame.timestamp)


def _load(source: Source) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as err:
        raise AudioFormatError(f"cannot read {os.fspath(source)!r}: {err.strerror or err}") from None


def _chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def _parse_fmt(body: bytes) -> WavFormat:
    if len(body) < 16:
        raise AudioFormatError(f"fmt chunk is {len(body)} bytes, expected at least 16")
    tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == EXTENSIBLE:
        tag = _extensible_tag(body)
    fmt = WavFormat(tag=tag, channels=channels, sample_rate=rate, block_align=align, bits=bits)
    _check_fmt(fmt)
    return fmt


def _extensible_tag(body: bytes) -> int:
    if len(body) < 40:
        raise AudioFormatError(f"WAVE_FORMAT_EXTENSIBLE fmt chunk is {len(body)} bytes, expected 40")
    guid = body[24:40]
    if guid[2:] != _GUID_TAIL:
        raise AudioFormatError(f"unsupported codec: WAVE_FORMAT_EXTENSIBLE sub-format {guid.hex()}")
    return int(struct.unpack_from("<H", guid)[0])


def _check_fmt(fmt: WavFormat) -> None:
    supported = {PCM: (8, 16, 24, 32), FLOAT: (32, 64), ALAW: (8,), ULAW: (8,)}
    if fmt.tag not in supported:
        name = _KNOWN_CODECS.get(fmt.tag, "unknown")
        raise AudioFormatError(
            f"unsupported codec: format tag 0x{fmt.tag:04x} ({name}); expected PCM, float, μ-law or A-law"
        )
    if fmt.bits not in supported[fmt.tag]:
        raise AudioFormatError(f"unsupported sample size: {fmt.bits}-bit for format tag 0x{fmt.tag:04x}")
    if not 1 <= fmt.channels <= _MAX_CHANNELS:
        raise AudioFormatError(f"channel count must be 1..{_MAX_CHANNELS}, got {fmt.channels}")
    if fmt.sample_rate <= 0:
        raise AudioFormatError("sample rate is 0 in the fmt chunk")
    if fmt.sample_rate > _MAX_RATE:
        raise AudioFormatError(f"sample rate {fmt.sample_rate} Hz in the fmt chunk is above {_MAX_RATE} Hz")
    if fmt.block_align != fmt.channels * fmt.bits // 8:
        raise AudioFormatError(
            f"block align is {fmt.block_align}, expected {fmt.channels * fmt.bits // 8}"
            f" for {fmt.channels} channel(s) of {fmt.bits}-bit samples"
        )


def _data_payload(data: bytes, start: int, size: int, fmt: WavFormat, strict: bool) -> bytes:
    available = len(data) - start
    if size > available and strict:
        raise AudioFormatError(f"truncated data chunk: declares {size} bytes, only {available} present")
    usable = min(size, available)
    return data[start : start + usable - usable % fmt.block_align]


def _to_mono_pcm16(fmt: WavFormat, payload: bytes) -> bytes:
    if fmt.tag == ULAW:
        pcm = ulaw_to_pcm16(payload)
    elif fmt.tag == ALAW:
        pcm = alaw_to_pcm16(payload)
    elif fmt.tag == PCM and fmt.bits == 16:
        pcm = payload
    else:
        return _downmix(fmt, _as_int16_scale(fmt, payload))
    if fmt.channels == 1:
        return pcm
    return _downmix(fmt, pcm16_samples(pcm).astype(np.float64))


def _as_int16_scale(fmt: WavFormat, payload: bytes) -> np.ndarray:
    """Samples as float64 where full scale is ±32768 (the int16 scale)."""
    if fmt.tag == FLOAT:
        values = np.frombuffer(payload, dtype=f"<f{fmt.bits // 8}").astype(np.float64)
        return np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0) * 32768.0
    if fmt.bits == 8:
        return (np.frombuffer(payload, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    if fmt.bits == 24:
        raw = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        return (np.where(value >= 1 << 23, value - (1 << 24), value)).astype(np.float64) / 256.0
    return np.frombuffer(payload, dtype="<i4").astype(np.float64) / 65536.0


def _downmix(fmt: WavFormat, samples: np.ndarray) -> bytes:
    mono = samples.reshape(-1, fmt.channels).mean(axis=1)
    return pcm16_bytes(_round_int16(mono))


def _round_int16(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)
