"""Prosody of real espeak-ng Mandarin speech at telephone rate (8 kHz μ-law), and the call baseline."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.prosody import SILENT, ProsodyTracker, count_syllables, measure, voiced_time
from core.types import AudioFrame, Prosody, Word

SENTENCE = "您好我想查一下我的订单昨天买的衣服"  # 17 syllables, no pause-making punctuation


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prosody")


def telephone(tmp: Path, text: str = SENTENCE, *espeak: str, band: bool = False) -> AudioFrame:
    """espeak-ng Mandarin → 8 kHz G.711 μ-law (sox) → PCM16, optionally band-limited to 300-3400 Hz."""
    wav, out = tmp / "espeak.wav", tmp / "phone.wav"
    subprocess.run(["espeak-ng", "-v", "cmn", *espeak, "-w", str(wav), text], check=True)
    effects = ["sinc", "300-3400"] if band else []
    subprocess.run(["sox", "-V1", str(wav), "-r", "8000", "-e", "mu-law", "-b", "8", str(out), *effects], check=True)
    x, _ = sf.read(out, dtype="int16")
    return AudioFrame(np.asarray(x, dtype="<i2").tobytes(), 8000)


def tone(hz: float, seconds: float = 1.5, sample_rate: int = 8000, dbfs: float = -12.0) -> AudioFrame:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 32768 * 10 ** (dbfs / 20) * math.sqrt(2) * np.sin(2 * np.pi * hz * t)
    return AudioFrame(x.astype("<i2").tobytes(), sample_rate)


def scaled(audio: AudioFrame, db: float) -> AudioFrame:
    x = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float64) * 10 ** (db / 20)
    return AudioFrame(x.clip(-32768, 32767).astype("<i2").tobytes(), audio.sample_rate, audio.timestamp)


def assert_finite(p: Prosody) -> None:
    assert all(math.isfinite(v) for v in astuple(p)), p


def test_faster_synthesis_gives_a_proportionally_higher_speech_rate(tmp: Path) -> None:
    slow = measure(telephone(tmp, SENTENCE, "-s", "120"), text=SENTENCE)
    fast = measure(telephone(tmp, SENTENCE, "-s", "240"), text=SENTENCE)
    assert 1.5 < slow.speech_rate < 3.0  # measured 2.27 syllables per voiced second
    assert 1.6 < fast.speech_rate / slow.speech_rate < 2.1  # espeak's 2x words/min: measured 1.85
    assert fast.voiced_seconds < slow.voiced_seconds


def test_louder_synthesis_gives_higher_energy_by_the_amplitude_ratio(tmp: Path) -> None:
    quiet = measure(telephone(tmp, SENTENCE, "-a", "40"), text=SENTENCE)
    loud = measure(telephone(tmp, SENTENCE, "-a", "160"), text=SENTENCE)
    assert loud.energy_db - quiet.energy_db == pytest.approx(20 * math.log10(160 / 40), abs=1.5)  # measured 12.0
    assert -40.0 < quiet.energy_db < loud.energy_db < -10.0


def test_scaling_the_samples_moves_only_the_energy(tmp: Path) -> None:
    audio = telephone(tmp)
    base, quieter = measure(audio, text=SENTENCE), measure(scaled(audio, -12.0), text=SENTENCE)
    assert quieter.energy_db - base.energy_db == pytest.approx(-12.0, abs=0.3)
    assert quieter.speech_rate == pytest.approx(base.speech_rate, rel=0.05)
    assert quieter.f0_mean == pytest.approx(base.f0_mean, rel=0.03)


@pytest.mark.parametrize(("hz", "sample_rate"), [(150.0, 8000), (200.0, 8000), (200.0, 16000), (320.0, 8000)])
def test_pure_tone_f0_is_found_within_a_few_hz(hz: float, sample_rate: int) -> None:
    p = measure(tone(hz, sample_rate=sample_rate))
    assert p.f0_mean == pytest.approx(hz, abs=2.0)
    assert p.f0_std < 1.0
    assert p.energy_db == pytest.approx(-12.0, abs=0.2)
    assert p.pause_ratio == pytest.approx(0.0, abs=0.02)
    assert p.speech_rate == 0.0  # no words, no text: nothing to count


def test_f0_survives_the_telephone_band_and_follows_the_voice_pitch(tmp: Path) -> None:
    wide = measure(telephone(tmp))
    narrow = measure(telephone(tmp, band=True))  # no energy left at the ~80 Hz fundamental
    high = measure(telephone(tmp, SENTENCE, "-p", "90", band=True))
    assert 70.0 < wide.f0_mean < 95.0  # espeak's cmn voice; pyin on the 22 kHz original says ~80 Hz
    assert narrow.f0_mean == pytest.approx(wide.f0_mean, abs=3.0)
    assert high.f0_mean > 1.2 * narrow.f0_mean
    assert 0.0 < narrow.f0_std < 25.0


def test_colleague_fixtures_order_by_rate_loudness_and_voice() -> None:
    """The 8 kHz μ-law caller fixtures; their sidecars say how espeak-ng spoke each one."""
    rate: dict[int, list[float]] = {}
    energy: dict[int, list[float]] = {}
    f0: dict[bool, list[float]] = {}
    for wav in sorted((Path(__file__).parent.parent / "audio_fixtures").glob("*.wav")):
        meta = json.loads(wav.with_suffix(".json").read_text(encoding="utf-8"))
        x, sample_rate = sf.read(wav, dtype="int16")
        p = measure(AudioFrame(np.asarray(x, "<i2").tobytes(), sample_rate), text=meta["spoken"])
        assert_finite(p)
        rate.setdefault(meta["rate_wpm"], []).append(p.speech_rate)
        energy.setdefault(meta["amplitude"], []).append(p.energy_db)
        f0.setdefault(meta["voice"].endswith("+f3"), []).append(p.f0_mean)
    assert np.median(rate[120]) < np.median(rate[175]) < np.median(rate[260])  # measured 2.8, 4.2, 6.9
    assert max(rate[120]) < min(rate[260])  # every slow turn below every fast one: measured 3.3 < 5.9
    assert 1.8 < np.median(rate[260]) / np.median(rate[120]) < 3.0  # measured 2.4 for 260/120 wpm
    assert np.median(energy[200]) - np.median(energy[100]) > 3.0  # measured 4-5 dB for -a 200 vs 100
    assert np.median(f0[True]) > 1.5 * np.median(f0[False])  # female voice f3 ~172 Hz vs ~88 Hz


def test_silence_and_scraps_give_zeros_and_never_nan() -> None:
    hiss = np.random.default_rng(5).standard_normal(16000) * 32768 * 10 ** (-75 / 20)
    cases = [
        AudioFrame(b"", 8000),
        AudioFrame(bytes(16000), 8000),  # 1 s of digital silence
        AudioFrame(np.full(8000, 1200, "<i2").tobytes(), 8000),  # DC offset only
        AudioFrame(hiss.astype("<i2").tobytes(), 8000),
        AudioFrame(tone(200.0).pcm[:1000], 8000),  # 62 ms: too short to measure
        AudioFrame(bytes(16001), 8000),  # odd byte count: ignored, not raised
    ]
    for audio in cases:
        p = measure(audio, words=[Word("喂", 0.0, 0.5)], text="喂")
        assert p == SILENT
        assert (p.speech_rate, p.f0_mean, p.energy_db, p.pause_ratio, p.voiced_seconds) == (0.0, 0.0, 0.0, 1.0, 0.0)


def test_figures_on_real_speech_are_finite_and_consistent(tmp: Path) -> None:
    audio = telephone(tmp)
    padded = AudioFrame(bytes(8000) + audio.pcm + bytes(8000), 8000)  # 0.5 s of silence each side
    p, q = measure(audio, text=SENTENCE), measure(padded, text=SENTENCE)
    assert_finite(p)
    assert q.voiced_seconds == pytest.approx(p.voiced_seconds, abs=0.03)
    assert q.pause_ratio == pytest.approx(1 - q.voiced_seconds / padded.duration)
    assert q.pause_ratio > p.pause_ratio + 0.1
    assert q.speech_rate == pytest.approx(count_syllables(SENTENCE) / q.voiced_seconds)


def test_line_noise_between_words_is_not_counted_as_speech(tmp: Path) -> None:
    audio = telephone(tmp)
    x = np.concatenate([np.zeros(4000), np.frombuffer(audio.pcm, dtype="<i2"), np.zeros(4000)])
    clean = measure(AudioFrame(x.astype("<i2").tobytes(), 8000), text=SENTENCE)
    x += np.random.default_rng(11).standard_normal(len(x)) * 32768 * 10 ** (-50 / 20)
    noisy = measure(AudioFrame(x.clip(-32768, 32767).astype("<i2").tobytes(), 8000), text=SENTENCE)
    assert noisy.voiced_seconds == pytest.approx(clean.voiced_seconds, rel=0.05)  # measured 2 % apart
    assert noisy.pause_ratio > 0.15 and noisy.f0_mean == pytest.approx(clean.f0_mean, abs=2.0)


def test_word_timings_give_the_voiced_time_when_present(tmp: Path) -> None:
    audio = telephone(tmp)
    words = [Word("您好", 0.1, 0.7), Word("我想", 0.6, 1.1), Word("查一下", 1.3, 2.1), Word("订单", 2.1, 2.6)]
    p = measure(audio, words=words)
    assert p.voiced_seconds == pytest.approx(1.0 + 0.8 + 0.5)  # 0.1-1.1 (overlap once), 1.3-2.1, 2.1-2.6
    assert p.speech_rate == pytest.approx(9 / 2.3)
    assert p.pause_ratio == pytest.approx(1 - 2.3 / audio.duration)
    from_text = measure(audio, text="您好我想查一下订单")
    assert from_text.f0_mean == p.f0_mean and from_text.energy_db == p.energy_db
    assert from_text.voiced_seconds != p.voiced_seconds  # from the audio instead
    assert measure(audio, words=[Word("您好", 1.0, 1.0)]).voiced_seconds == from_text.voiced_seconds  # no duration


@pytest.mark.parametrize(
    ("text", "syllables"),
    [("您好，我的订单", 6), ("订单号 20240315", 11), ("VIP 会员", 5), ("iPhone 手机壳", 5), ("ＯＫ", 2), ("", 0)],
)
def test_syllables_count_han_digits_and_latin(text: str, syllables: int) -> None:
    assert count_syllables(text) == syllables


def test_voiced_time_merges_overlaps() -> None:
    assert voiced_time([Word("a", 0.0, 1.0), Word("b", 0.5, 1.5), Word("c", 3.0, 3.5)]) == pytest.approx(2.0)
    assert voiced_time([Word("a", 0.0, 2.0), Word("b", 0.5, 1.0)]) == pytest.approx(2.0)
    assert voiced_time([]) == 0.0


def test_tracker_rel_figures_rise_when_the_caller_speeds_up_and_gets_louder(tmp: Path) -> None:
    calm = telephone(tmp, SENTENCE, "-s", "140", "-a", "60")
    upset = telephone(tmp, SENTENCE, "-s", "230", "-a", "180")
    tracker = ProsodyTracker()
    first = tracker.update(measure(calm, text=SENTENCE))
    assert (first.rel_rate, first.rel_f0, first.rel_energy_db) == (1.0, 1.0, 0.0)  # its own baseline
    again = tracker.update(measure(calm, text=SENTENCE))
    assert again.rel_rate == pytest.approx(1.0) and again.rel_energy_db == pytest.approx(0.0)
    angry = tracker.update(measure(upset, text=SENTENCE))
    assert angry.rel_rate > 1.4
    assert angry.rel_energy_db > 6.0
    assert angry.rel_f0 == pytest.approx(1.0, abs=0.1)  # same voice pitch
    assert_finite(angry)


def test_tracker_baseline_is_the_median_and_ignores_silence_and_short_turns() -> None:
    tracker = ProsodyTracker()
    for rate, db in [(3.0, -20.0), (3.2, -21.0), (9.0, -5.0)]:  # one outlier turn
        tracker.update(Prosody(rate, 120.0, 10.0, db, 0.1, 2.0))
    tracker.update(SILENT)
    tracker.update(Prosody(20.0, 300.0, 10.0, 0.0, 0.0, 0.2))  # "嗯": too short for the baseline
    p = tracker.update(Prosody(6.4, 120.0, 10.0, -10.0, 0.1, 2.0))
    assert p.rel_rate == pytest.approx(2.0)  # median of 3.0, 3.2, 9.0
    assert p.rel_energy_db == pytest.approx(10.0)  # median of -20, -21, -5
    assert p.rel_f0 == pytest.approx(1.0)
    silent = tracker.update(SILENT)
    assert (silent.rel_rate, silent.rel_f0, silent.rel_energy_db) == (1.0, 1.0, 0.0)
