"""VadSegmenter on real espeak-ng Mandarin speech with the real webrtcvad."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.vad import VadSegmenter, segment
from core.errors import AudioFormatError
from core.types import AudioFrame, SpeechEnded, SpeechStarted, VadEvent

TEXTS = ("您好我想查一下我的订单", "请帮我转人工客服", "好的谢谢")
GAPS_S = (1.0, 1.3, 1.7, 1.1)  # silence before, between and after the utterances
TOLERANCE_S = 0.060
TRIM_LEVEL = 100  # |sample| above this is speech when trimming espeak's digital silence


@dataclass(frozen=True)
class Fixture:
    pcm: bytes
    sample_rate: int
    truth: tuple[tuple[float, float], ...]  # true (start, end) of each utterance, seconds


def synth(text: str, sample_rate: int, tmp: Path, rate: int = 160, mulaw: bool = False) -> np.ndarray:
    """espeak-ng Mandarin at ``sample_rate`` (via sox), trimmed to its first/last audible sample."""
    wav, out = tmp / "espeak.wav", tmp / "rate.wav"
    subprocess.run(["espeak-ng", "-v", "cmn", "-s", str(rate), "-w", str(wav), text], check=True)
    codec = ["-e", "mu-law", "-b", "8"] if mulaw else []
    subprocess.run(["sox", str(wav), "-r", str(sample_rate), *codec, str(out)], check=True)
    x, _ = sf.read(out, dtype="int16")
    loud = np.nonzero(np.abs(x.astype(np.int32)) > TRIM_LEVEL)[0]
    return np.asarray(x[loud[0] : loud[-1] + 1])


def build(sample_rate: int, tmp: Path, noise_dbfs: float, mulaw: bool = False) -> Fixture:
    """Known silences with two or three utterances at known offsets, plus white line noise."""
    parts: list[np.ndarray] = []
    truth: list[tuple[float, float]] = []
    at = 0
    for gap, text in zip(GAPS_S, (*TEXTS, None), strict=True):
        parts.append(np.zeros(int(gap * sample_rate), np.int16))
        at += len(parts[-1])
        if text is not None:
            speech = synth(text, sample_rate, tmp, mulaw=mulaw)
            truth.append((at / sample_rate, (at + len(speech)) / sample_rate))
            parts.append(speech)
            at += len(speech)
    x = np.concatenate(parts).astype(np.float64)
    x += np.random.default_rng(7).standard_normal(len(x)) * 32768 * 10 ** (noise_dbfs / 20)
    return Fixture(x.clip(-32768, 32767).astype("<i2").tobytes(), sample_rate, tuple(truth))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vad")


@pytest.fixture(scope="module")
def call8k(tmp: Path) -> Fixture:
    return build(8000, tmp, noise_dbfs=-60.0, mulaw=True)


def feed(seg: VadSegmenter, pcm: bytes, sample_rate: int, chunk_ms: int, t0: float = 0.0) -> list[VadEvent]:
    """Push ``pcm`` in chunks of ``chunk_ms`` (the last may be shorter) and flush."""
    step = sample_rate * chunk_ms // 1000 * 2
    events: list[VadEvent] = []
    for i in range(0, len(pcm), step):
        events += seg.push(AudioFrame(pcm[i : i + step], sample_rate, t0 + i / 2 / sample_rate))
    return events + seg.flush()


def ended(events: list[VadEvent]) -> list[SpeechEnded]:
    return [e for e in events if isinstance(e, SpeechEnded)]


def silence(seconds: float, sample_rate: int = 8000) -> bytes:
    return bytes(int(seconds * sample_rate) * 2)


@pytest.mark.parametrize(
    ("sample_rate", "noise_dbfs", "mulaw"),
    [(8000, -60.0, True), (8000, -45.0, False), (16000, -60.0, False), (16000, -45.0, False)],
)
def test_boundaries_within_60ms_of_the_true_speech(tmp: Path, sample_rate: int, noise_dbfs: float, mulaw: bool) -> None:
    fx = build(sample_rate, tmp, noise_dbfs, mulaw)
    segs = segment(AudioFrame(fx.pcm, sample_rate))
    assert len(segs) == len(fx.truth)
    for seg, (start, end) in zip(segs, fx.truth, strict=True):
        assert abs(seg.start - start) <= TOLERANCE_S, (seg.start, start)
        assert abs(seg.end - end) <= TOLERANCE_S, (seg.end, end)


FIXTURES = sorted((Path(__file__).parent.parent / "audio_fixtures").glob("*.wav"))


def test_colleague_fixtures_segment_within_60ms() -> None:
    """The 8 kHz μ-law caller fixtures, each with a second of silence around it."""
    assert len(FIXTURES) >= 20
    for wav in FIXTURES:
        x, sample_rate = sf.read(wav, dtype="int16")
        loud = np.nonzero(np.abs(x.astype(np.int32)) > TRIM_LEVEL)[0]
        pad = np.zeros(sample_rate, np.int16)
        pcm = np.concatenate([pad, x, pad]).astype("<i2").tobytes()
        segs = segment(AudioFrame(pcm, sample_rate))
        assert segs, wav.name
        assert segs[0].start == pytest.approx(1.0 + loud[0] / sample_rate, abs=TOLERANCE_S), wav.name
        assert segs[-1].end == pytest.approx(1.0 + (loud[-1] + 1) / sample_rate, abs=TOLERANCE_S), wav.name


def test_events_pair_up_and_start_at_the_onset_not_at_detection(call8k: Fixture) -> None:
    events = feed(VadSegmenter(), call8k.pcm, 8000, 20)
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStarted, SpeechEnded] * len(call8k.truth)
    for started, done in zip(events[::2], events[1::2], strict=True):
        assert isinstance(started, SpeechStarted) and isinstance(done, SpeechEnded)
        assert started.at == done.start


def test_audio_holds_the_utterance_with_context_around_it(call8k: Fixture) -> None:
    for seg in segment(AudioFrame(call8k.pcm, 8000), preroll_ms=200):
        assert seg.audio.sample_rate == 8000
        assert seg.audio.timestamp == pytest.approx(seg.start - 0.2)
        assert seg.audio.timestamp + seg.audio.duration == pytest.approx(seg.end + 0.2)
        offset = int(round(seg.audio.timestamp * 8000)) * 2
        assert seg.audio.pcm == call8k.pcm[offset : offset + len(seg.audio.pcm)]


@pytest.mark.parametrize("chunk_ms", [10, 30, 1000, 7])
def test_chunk_size_does_not_change_the_segments(call8k: Fixture, chunk_ms: int) -> None:
    reference = ended(feed(VadSegmenter(), call8k.pcm, 8000, 20))
    assert ended(feed(VadSegmenter(), call8k.pcm, 8000, chunk_ms)) == reference


def test_times_follow_the_first_chunk_timestamp(call8k: Fixture) -> None:
    reference = ended(feed(VadSegmenter(), call8k.pcm, 8000, 20))
    shifted = ended(feed(VadSegmenter(), call8k.pcm, 8000, 20, t0=100.0))
    assert [s.start - 100.0 for s in shifted] == pytest.approx([s.start for s in reference])
    assert [s.end - 100.0 for s in shifted] == pytest.approx([s.end for s in reference])


def test_minutes_of_digital_silence_give_no_events() -> None:
    seg = VadSegmenter()
    assert feed(seg, silence(180.0), 8000, 20) == []
    assert seg.stats.frames == 9000 and seg.stats.speech_frames == 0


@pytest.mark.parametrize("dbfs", [-75.0, -60.0])
def test_low_level_white_noise_gives_no_events(dbfs: float) -> None:
    noise = np.random.default_rng(3).standard_normal(8000 * 60) * 32768 * 10 ** (dbfs / 20)
    assert feed(VadSegmenter(), noise.astype("<i2").tobytes(), 8000, 20) == []


def test_energy_floor_keeps_very_quiet_speech_out(tmp: Path) -> None:
    speech = (synth(TEXTS[1], 8000, tmp).astype(np.float64) * 10 ** (-40 / 20)).astype("<i2")
    pcm = silence(0.5) + speech.tobytes() + silence(1.0)
    assert segment(AudioFrame(pcm, 8000)) == []
    assert len(segment(AudioFrame(pcm, 8000), energy_floor_dbfs=-90.0)) == 1


def test_odd_byte_count_is_rejected_and_the_stream_goes_on(call8k: Fixture) -> None:
    seg = VadSegmenter()
    with pytest.raises(AudioFormatError, match="expected an even number of bytes of 16-bit PCM, got 321"):
        seg.push(AudioFrame(bytes(321), 8000))
    assert ended(feed(seg, call8k.pcm, 8000, 20)) == ended(feed(VadSegmenter(), call8k.pcm, 8000, 20))


def test_wrong_sample_rate_is_rejected() -> None:
    with pytest.raises(AudioFormatError, match="expected 8000 Hz audio, got 16000 Hz"):
        VadSegmenter(8000).push(AudioFrame(bytes(640), 16000))


def test_long_speech_is_cut_at_max_utterance(tmp: Path) -> None:
    speech = np.concatenate([synth(t, 8000, tmp) for t in TEXTS * 2])  # ~9 s without a pause
    pcm = silence(0.5) + speech.astype("<i2").tobytes() + silence(1.0)
    seg = VadSegmenter(max_utterance_s=2.0)
    events = feed(seg, pcm, 8000, 20)
    segs = ended(events)
    assert len(segs) >= 4 and seg.stats.cuts == len(segs) - 1
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * len(segs)
    for seg_ in segs:
        assert seg_.end - seg_.start <= 2.0 + 0.02
        assert seg_.audio.duration <= 2.0 + 0.2 + 0.02
    for before, after in zip(segs, segs[1:], strict=False):
        assert after.start >= before.end  # pieces follow each other, no overlap
    assert segs[0].start == pytest.approx(0.5, abs=TOLERANCE_S)
    assert segs[-1].end == pytest.approx(0.5 + len(speech) / 8000, abs=TOLERANCE_S)


def test_flush_closes_an_open_utterance(tmp: Path) -> None:
    speech = synth(TEXTS[0], 8000, tmp)
    seg = VadSegmenter()
    events = seg.push(AudioFrame(silence(0.5) + speech.astype("<i2").tobytes(), 8000))
    assert [type(e) for e in events] == [SpeechStarted] and seg.in_speech
    (done,) = seg.flush()
    assert isinstance(done, SpeechEnded) and not seg.in_speech
    assert done.end == pytest.approx(0.5 + len(speech) / 8000, abs=TOLERANCE_S)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aggressiveness": 4}, "aggressiveness must be 0..3"),
        ({"aggressiveness": -1}, "aggressiveness must be 0..3"),
        ({"sample_rate": 22050}, "sample_rate must be one of"),
        ({"frame_ms": 25}, "frame_ms must be one of"),
        ({"max_utterance_s": 0.1}, "max_utterance_s"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VadSegmenter(**kwargs)  # type: ignore[arg-type]
