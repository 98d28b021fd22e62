"""voice.codec: G.711 bit-exact against the stdlib ``audioop`` oracle; polyphase resampling checked
against the tone it should produce (frequency, level, timing) and the alias it must remove."""

from __future__ import annotations

import audioop
from collections.abc import Callable

import numpy as np
import pytest

from core.errors import AudioFormatError
from voice.codec import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    Resampler,
    alaw_to_pcm16,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    resample,
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


# --- resampling ------------------------------------------------------------------------------


def _tone(rate: int, seconds: float, hz: float, level: float = 12000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype("<i2")


def _as_array(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def _level_db(pcm: bytes, reference: float = 12000.0) -> float:
    middle = _as_array(pcm)[200:-200]  # skip the edges, where the filter sees the silence around
    return float(20 * np.log10(max(np.sqrt(np.mean(middle**2)), 1e-3) / (reference / np.sqrt(2))))


def _peak_hz(pcm: bytes, rate: int) -> float:
    x = _as_array(pcm)
    return float(np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * rate / len(x))


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (44100, 16000), (22050, 8000)])
@pytest.mark.parametrize("hz", [440.0, 1000.0, 3000.0])
def test_resampling_keeps_a_tone_its_level_and_its_timing(src: int, dst: int, hz: float) -> None:
    out = resample(_tone(src, 0.5, hz).tobytes(), src, dst)
    assert len(out) // 2 == dst // 2
    assert abs(_peak_hz(out, dst) - hz) <= 2
    assert abs(_level_db(out)) < 0.1
    ideal = _tone(dst, 0.5, hz).astype(np.float64)  # the same tone sampled at the new rate
    assert np.abs(_as_array(out)[200:-200] - ideal[200:-200]).max() <= 2  # group delay compensated


@pytest.mark.parametrize("hz", [4300.0, 5000.0, 7000.0])
def test_downsampling_removes_content_above_the_new_nyquist(hz: float) -> None:
    assert _level_db(resample(_tone(16000, 0.5, hz).tobytes(), 16000, 8000)) < -60


def test_telephone_band_passes_flat() -> None:
    for hz in (300.0, 1000.0, 2000.0, 3400.0):
        assert abs(_level_db(resample(_tone(16000, 0.5, hz).tobytes(), 16000, 8000))) < 0.1


def test_upsampling_leaves_no_image_above_the_old_nyquist() -> None:
    out = _as_array(resample(_tone(8000, 1.0, 1000).tobytes(), 8000, 16000))
    spectrum = np.abs(np.fft.rfft(out * np.blackman(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    image = spectrum[(freqs > 6800) & (freqs < 7200)].max()  # the mirror of 1 kHz around 4 kHz
    assert 20 * np.log10(image / spectrum.max()) < -60


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (44100, 16000)])
def test_streaming_20ms_frames_equal_the_whole_buffer(src: int, dst: int) -> None:
    speech = (np.random.default_rng(7).normal(0, 4000, src)).astype("<i2")  # 1 s of noise
    whole = resample(speech.tobytes(), src, dst)
    resampler = Resampler(src, dst)
    frame = src // 50
    pieces = [resampler.process(speech[i : i + frame].tobytes()) for i in range(0, len(speech), frame)]
    assert sum(len(p) for p in pieces) > 0.9 * len(whole)  # output flows frame by frame, not at flush
    streamed = b"".join(pieces) + resampler.flush()
    assert len(streamed) == len(whole)
    assert np.abs(_as_array(streamed) - _as_array(whole)).max() <= 1


def test_streaming_with_uneven_chunks_and_reuse_after_flush() -> None:
    speech = _tone(8000, 0.3, 700)
    whole = resample(speech.tobytes(), 8000, 16000)
    resampler = Resampler(8000, 16000)
    for _ in range(2):  # flush resets, so a second stream starts from silence again
        cuts = [0, 1, 2, 37, 160, 161, 1000, len(speech)]
        out = b"".join(resampler.process(speech[a:b].tobytes()) for a, b in zip(cuts, cuts[1:], strict=False))
        assert np.abs(_as_array(out + resampler.flush()) - _as_array(whole)).max() <= 1


def test_resampling_edge_cases() -> None:
    assert resample(b"", 8000, 16000) == b""
    assert len(resample(b"\x10\x00", 8000, 16000)) == 4
    assert len(resample(b"\x10\x00" * 3, 16000, 8000)) == 4  # ceil(3 / 2) samples
    with pytest.raises(AudioFormatError, match="odd length"):
        Resampler(8000, 16000).process(b"\x00\x01\x02")
    with pytest.raises(AudioFormatError, match="positive"):
        Resampler(0, 8000)
