"""voice.wav: every odd WAV a caller system can send is decoded or refused with AudioFormatError.

The oracle for the encoded files is libsndfile (via soundfile), an independent WAV writer and
reader, and ``audioop`` for the G.711 codes.
"""

from __future__ import annotations

import audioop
import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import AudioFormatError
from core.types import AudioFrame
from voice.wav import PCM, parse_wav, read_wav, to_rate, wav_bytes, write_ulaw_wav, write_wav

RNG = np.random.default_rng(20240518)


def _sf_bytes(data: np.ndarray, rate: int, subtype: str, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def _samples(frame: AudioFrame) -> np.ndarray:
    return np.frombuffer(frame.pcm, dtype="<i2")


def _tone(rate: int, seconds: float, hz: float, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return level * np.sin(2 * np.pi * hz * t)


def _peak_hz(frame: AudioFrame) -> float:
    x = _samples(frame).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * frame.sample_rate / len(x))


def _pcm16_wav(samples: np.ndarray, rate: int = 8000) -> bytes:
    return _sf_bytes(samples.astype(np.int16), rate, "PCM_16")


# --- refused input ---------------------------------------------------------------------------


def test_empty_bytes_and_empty_file_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for source in (b"", empty):
        with pytest.raises(AudioFormatError, match="empty file"):
            read_wav(source)


def test_missing_file_is_an_audio_format_error(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="cannot read"):
        read_wav(tmp_path / "nope.wav")


def test_random_bytes_and_text_are_not_wav(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("这不是音频文件，只是一段文字。\n", encoding="utf-8")
    for source in (RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes(), text, b"RIFF"):
        with pytest.raises(AudioFormatError, match="not a RIFF/WAVE file"):
            read_wav(source)


def test_riff_without_chunks_says_the_header_is_truncated() -> None:
    with pytest.raises(AudioFormatError, match="no fmt chunk"):
        read_wav(b"RIFF\x04\x00\x00\x00WAVE")
    good = _pcm16_wav(np.zeros(80))
    with pytest.raises(AudioFormatError, match="no data chunk"):
        read_wav(good[:36])  # fmt complete, data chunk never starts


def test_cut_inside_fmt_chunk_is_refused() -> None:
    good = _pcm16_wav(np.zeros(80))
    with pytest.raises(AudioFormatError, match="truncated header"):
        read_wav(good[:30])


def test_unsupported_codec_names_it() -> None:
    adpcm = _sf_bytes(_tone(8000, 0.1, 440), 8000, "IMA_ADPCM")
    with pytest.raises(AudioFormatError, match=r"unsupported codec: format tag 0x0011 \(IMA ADPCM\)"):
        read_wav(adpcm)


def test_inconsistent_block_align_is_refused() -> None:
    good = bytearray(_pcm16_wav(np.zeros(80)))
    struct.pack_into("<H", good, 32, 3)  # block align of a mono 16-bit file must be 2
    with pytest.raises(AudioFormatError, match="block align is 3, expected 2"):
        read_wav(bytes(good))


def test_zero_channels_is_refused() -> None:
    good = bytearray(_pcm16_wav(np.zeros(80)))
    struct.pack_into("<H", good, 22, 0)
    with pytest.raises(AudioFormatError, match="channel count"):
        read_wav(bytes(good))


def test_big_endian_rifx_is_refused_by_name() -> None:
    with pytest.raises(AudioFormatError, match="RIFX"):
        read_wav(b"RIFX\x00\x00\x00\x24WAVEfmt ")


# --- truncation policy -----------------------------------------------------------------------


def test_truncated_data_chunk_decodes_whole_samples_or_fails_when_strict() -> None:
    samples = (RNG.normal(0, 3000, 800)).astype(np.int16)
    cut = _pcm16_wav(samples)[:-301]  # ends in the middle of a sample
    frame = read_wav(cut)
    assert np.array_equal(_samples(frame), samples[: len(_samples(frame))])
    assert frame.samples == 800 - 151
    with pytest.raises(AudioFormatError, match="truncated data chunk: declares 1600 bytes, only 1299 present"):
        read_wav(cut, strict=True)


def test_streamed_header_with_placeholder_length_is_read_to_the_end() -> None:
    samples = (RNG.normal(0, 3000, 400)).astype(np.int16)
    wav = bytearray(_pcm16_wav(samples))
    struct.pack_into("<I", wav, 4, 0x7FFFF024)  # what `espeak-ng --stdout` writes
    struct.pack_into("<I", wav, 40, 0x7FFFF000)
    assert np.array_equal(_samples(read_wav(bytes(wav))), samples)


def test_every_truncation_point_gives_a_frame_or_an_audio_format_error() -> None:
    wav = _sf_bytes(RNG.normal(0, 0.2, (60, 2)), 16000, "FLOAT")
    for end in range(len(wav) + 1):
        try:
            frame = read_wav(wav[:end])
        except AudioFormatError as err:
            assert "\n" not in str(err)
        else:
            assert frame.sample_rate == 16000


def test_corrupted_headers_never_raise_anything_but_audio_format_error() -> None:
    wav = _pcm16_wav(np.arange(200) * 10)
    for _ in range(300):
        bad = bytearray(wav)
        for pos in RNG.integers(12, 60, 3):
            bad[pos] = int(RNG.integers(0, 256))
        try:
            read_wav(bytes(bad))
        except AudioFormatError:
            pass


# --- decoded formats -------------------------------------------------------------------------


def test_pcm16_mono_is_bit_exact(tmp_path: Path) -> None:
    samples = RNG.integers(-32768, 32768, 1000).astype(np.int16)
    path = tmp_path / "a.wav"
    path.write_bytes(_pcm16_wav(samples, 16000))
    frame = read_wav(path)
    assert (frame.sample_rate, frame.samples) == (16000, 1000)
    assert np.array_equal(_samples(frame), samples)


def test_stereo_44k1_is_downmixed_by_averaging() -> None:
    stereo = RNG.integers(-20000, 20000, (4410, 2)).astype(np.int16)
    frame = read_wav(_sf_bytes(stereo, 44100, "PCM_16"))
    assert (frame.sample_rate, frame.samples) == (44100, 4410)
    expected = np.rint(stereo.astype(np.float64).mean(axis=1)).astype(np.int16)
    assert np.array_equal(_samples(frame), expected)


def test_ulaw_wav_decodes_like_audioop() -> None:
    wav = _sf_bytes(_tone(8000, 0.2, 300), 8000, "ULAW")
    fmt, payload = parse_wav(wav)
    assert (fmt.tag, fmt.bits) == (7, 8)
    assert read_wav(wav).pcm == audioop.ulaw2lin(payload, 2)


def test_alaw_wav_decodes_like_audioop() -> None:
    wav = _sf_bytes(_tone(8000, 0.2, 300), 8000, "ALAW")
    fmt, payload = parse_wav(wav)
    assert (fmt.tag, fmt.bits) == (6, 8)
    assert read_wav(wav).pcm == audioop.alaw2lin(payload, 2)


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_scales_and_clips(subtype: str) -> None:
    values = np.array([0.0, 0.5, -0.5, 0.999, -1.0, 1.7, -3.0, 1e-6])
    frame = read_wav(_sf_bytes(values, 8000, subtype))
    assert _samples(frame).tolist() == [0, 16384, -16384, 32735, -32768, 32767, -32768, 0]


def test_24_bit_wav_keeps_the_top_16_bits_rounded() -> None:
    values = np.array([0, 256, 383, 384, -256, -8388608, 8388607], dtype=np.int32) << 8
    frame = read_wav(_sf_bytes(values, 48000, "PCM_24"))
    assert frame.sample_rate == 48000
    assert _samples(frame).tolist() == [1 * 0, 1, 1, 2, -1, -32768, 32767]


def test_8_bit_pcm_is_unsigned_and_agrees_with_libsndfile() -> None:
    wav = wav_bytes(PCM, 8000, 8, bytes(range(256)))
    frame = read_wav(wav)
    assert _samples(frame).tolist() == [(b - 128) * 256 for b in range(256)]
    assert np.array_equal(_samples(frame), sf.read(io.BytesIO(wav), dtype="int16")[0])


def test_32_bit_pcm_keeps_the_top_16_bits_rounded() -> None:
    tone = _tone(8000, 0.05, 200, 0.8)
    reference = np.rint(tone * 32768)
    assert np.abs(_samples(read_wav(_sf_bytes(tone, 8000, "PCM_32"))) - reference).max() <= 1


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT", "PCM_24"])
def test_wave_format_extensible(subtype: str) -> None:
    stereo = np.stack([_tone(16000, 0.05, 500), _tone(16000, 0.05, 500)], axis=1)
    wav = _sf_bytes(stereo, 16000, subtype, fmt="WAVEX")
    assert struct.unpack_from("<H", wav, 20)[0] == 0xFFFE
    frame = read_wav(wav)
    assert frame.sample_rate == 16000
    assert np.abs(_samples(frame) - np.rint(stereo[:, 0] * 32768)).max() <= 1


# --- writing and rate conversion -------------------------------------------------------------


def test_write_wav_round_trips_and_libsndfile_agrees(tmp_path: Path) -> None:
    samples = RNG.integers(-32768, 32768, 321).astype(np.int16)
    frame = AudioFrame(samples.tobytes(), 22050)
    path = tmp_path / "out.wav"
    write_wav(path, frame)
    assert read_wav(path, strict=True) == frame
    data, rate = sf.read(path, dtype="int16")
    assert rate == 22050 and np.array_equal(data, samples)


def test_write_wav_refuses_odd_pcm(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="odd length"):
        write_wav(tmp_path / "x.wav", AudioFrame(b"\x00\x01\x02", 8000))


def test_write_ulaw_wav_is_a_standard_format_7_file(tmp_path: Path) -> None:
    ulaw = audioop.lin2ulaw((_tone(8000, 0.1, 440) * 20000).astype("<i2").tobytes(), 2) + b"\xff"  # odd length
    path = tmp_path / "u.wav"
    write_ulaw_wav(path, ulaw)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (8000, 1, "ULAW", len(ulaw))
    assert read_wav(path, strict=True).pcm == audioop.ulaw2lin(ulaw, 2)


def test_to_rate_keeps_a_tone_and_its_length() -> None:
    frame = AudioFrame((_tone(44100, 0.5, 1000) * 16000).astype("<i2").tobytes(), 44100, timestamp=1.5)
    for rate in (16000, 8000):
        out = to_rate(frame, rate)
        assert (out.sample_rate, out.samples, out.timestamp) == (rate, rate // 2, 1.5)
        assert abs(_peak_hz(out) - 1000) <= 4


def test_to_rate_removes_content_above_the_new_nyquist() -> None:
    frame = AudioFrame((_tone(16000, 0.5, 5000) * 16000).astype("<i2").tobytes(), 16000)
    out = to_rate(frame, 8000)
    assert np.abs(_samples(out)[400:-400]).max() < 160  # 5 kHz tone attenuated by more than 40 dB
