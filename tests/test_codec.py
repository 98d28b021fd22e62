"""voice.codec: G.711 bit-exact against the stdlib ``audioop`` oracle, and polyphase resampling."""

from __future__ import annotations

import audioop
from collections.abc import Callable

import numpy as np
import pytest

from core.errors import AudioFormatError
from voice.codec import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_to_pcm16,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)

ALL_PCM16 = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_for_every_int16() -> None:
    assert pcm16_to_ulaw(ALL_PCM16) == audioop.lin2ulaw(ALL_PCM16, 2)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    assert ulaw_to_pcm16(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_encode_matches_audioop_for_every_int16() -> None:
    assert pcm16_to_alaw(ALL_PCM16) == audioop.lin2alaw(ALL_PCM16, 2)


def test_alaw_decode_matches_audioop_for_every_code() -> None:
    assert alaw_to_pcm16(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_every_ulaw_code_survives_decode_encode_except_negative_zero() -> None:
    back = pcm16_to_ulaw(ulaw_to_pcm16(ALL_CODES))
    assert [code for code in range(256) if back[code] != code] == [0x7F]  # -0 decodes to 0, encodes as +0
    assert back[0x7F] == ULAW_SILENCE


def test_every_alaw_code_survives_decode_encode() -> None:
    assert pcm16_to_alaw(alaw_to_pcm16(ALL_CODES)) == ALL_CODES


@pytest.mark.parametrize(("encode", "decode"), [(pcm16_to_ulaw, ulaw_to_pcm16), (pcm16_to_alaw, alaw_to_pcm16)])
def test_pcm_round_trip_is_idempotent(encode: Callable[[bytes], bytes], decode: Callable[[bytes], bytes]) -> None:
    once = decode(encode(ALL_PCM16))
    assert decode(encode(once)) == once


def test_quantisation_error_is_within_one_step() -> None:
    pcm = np.frombuffer(ALL_PCM16, dtype="<i2").astype(np.int32)
    back = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(ALL_PCM16)), dtype="<i2").astype(np.int32)
    error = np.abs(back - pcm)
    assert error[np.abs(pcm) < 64].max() < 8  # the smallest μ-law step is 8 (in 16-bit units)
    assert (error / np.maximum(np.abs(pcm), 1))[np.abs(pcm) > 1024].max() < 0.07  # ~6 % worst case


def test_silence_codes_decode_to_zero() -> None:
    assert ulaw_to_pcm16(bytes([ULAW_SILENCE])) == b"\x00\x00"
    assert pcm16_to_ulaw(b"\x00\x00") == bytes([ULAW_SILENCE])
    assert pcm16_to_alaw(b"\x00\x00") == bytes([ALAW_SILENCE])
    assert abs(int.from_bytes(alaw_to_pcm16(bytes([ALAW_SILENCE])), "little", signed=True)) == 8


def test_odd_length_pcm_is_refused_but_any_number_of_codes_is_fine() -> None:
    for encode in (pcm16_to_ulaw, pcm16_to_alaw):
        with pytest.raises(AudioFormatError, match="odd length"):
            encode(b"\x00\x01\x02")
    assert len(ulaw_to_pcm16(b"\xff" * 161)) == 322
    assert pcm16_to_ulaw(b"") == b"" and ulaw_to_pcm16(b"") == b""
