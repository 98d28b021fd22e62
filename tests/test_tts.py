"""voice.tts with the real espeak-ng: audio, telephone frames, sentence-by-sentence laziness, cache."""

from __future__ import annotations

import asyncio
import threading
from contextlib import aclosing
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError
from core.types import AudioFrame
from voice import cli, tts
from voice.codec import ulaw_to_pcm16
from voice.live_play import CachedVoice
from voice.tts import (
    FRAME_BYTES,
    PromptCache,
    SentenceAudio,
    Synthesizer,
    frames_of,
)
from voice.tts_espeak import EspeakVoice
from voice.tts_text import split_sentences
from voice.wav import PCM, ULAW, parse_wav, read_wav, to_rate

REPLY = "好的，帮您查到了。您的快递已经到杭州了。预计明天送达。还有什么可以帮您？"


class CountingSynthesizer(Synthesizer):
    """The real synthesizer, recording each text it synthesises and on which thread."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.texts: list[str] = []
        self.threads: list[int] = []

    def synthesize(self, text: str) -> AudioFrame:
        self.texts.append(text)
        self.threads.append(threading.get_ident())
        return super().synthesize(text)


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


# --- synthesis -------------------------------------------------------------------------------


def test_sentence_gives_audio_of_plausible_duration(synth: Synthesizer) -> None:
    frame = synth.synthesize("您好，欢迎致电，请问有什么可以帮您？")
    assert frame.sample_rate == 22050
    assert 1.5 < frame.duration < 6.0  # 16 syllables at 175 wpm
    samples = np.frombuffer(frame.pcm, dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(samples**2)) > 1000  # speech, not silence


def test_rate_changes_duration() -> None:
    text = "您的订单已经发货了"
    slow = Synthesizer(EspeakVoice(rate_wpm=120)).synthesize(text).duration
    fast = Synthesizer(EspeakVoice(rate_wpm=260)).synthesize(text).duration
    assert fast < 0.75 * slow


def test_cmn_is_spoken_with_the_pinyin_voice_and_bad_settings_fail_fast() -> None:
    assert EspeakVoice("cmn").voice == "cmn-latn-pinyin"
    assert EspeakVoice("cmn+f3").voice == "cmn-latn-pinyin+f3"
    with pytest.raises(ConfigError, match="not installed"):
        EspeakVoice("klingon")
    with pytest.raises(ConfigError, match="voice name"):
        EspeakVoice("--stdout")
    with pytest.raises(ConfigError, match="80..450"):
        EspeakVoice(rate_wpm=20)


def test_text_that_looks_like_an_option_is_spoken_not_obeyed(synth: Synthesizer) -> None:
    frame = synth.synthesize("--help -w /tmp/x.wav")
    assert frame.duration > 0.5


def test_empty_text_gives_no_frames_and_runs_nothing() -> None:
    counting = CountingSynthesizer()
    for text in ("", "   ", "。！？", "\n"):
        assert list(counting.telephone_frames(text)) == []
        assert list(counting.iter_sentences_frames(text)) == []
    assert counting.texts == []
    for text in ("", "。！？"):
        assert counting.synthesize(text) == AudioFrame(b"", 22050)


# --- telephone frames ------------------------------------------------------------------------


def test_telephone_frames_are_160_bytes_of_ulaw_with_silence_padding(synth: Synthesizer) -> None:
    frames = list(synth.telephone_frames("请稍等。"))
    assert frames and all(len(f) == FRAME_BYTES for f in frames)
    pcm = np.frombuffer(ulaw_to_pcm16(b"".join(frames)), dtype="<i2")
    assert np.abs(pcm).max() > 4000
    assert 0.4 < len(frames) * 0.02 < 3.0


def test_frames_of_pads_the_last_frame_with_ulaw_silence() -> None:
    frames = frames_of(b"\x01" * 170)
    assert [len(f) for f in frames] == [160, 160]
    assert frames[1] == b"\x01" * 10 + b"\xff" * 150
    assert frames_of(b"") == ()


def test_first_sentence_is_ready_before_the_rest_is_synthesised() -> None:
    counting = CountingSynthesizer()
    sentences = counting.iter_sentences_frames(REPLY)
    first = next(sentences)
    assert first.text == "好的，帮您查到了。" and first.frames
    assert counting.texts == ["好的，帮您查到了。"]
    rest = list(sentences)
    assert [s.text for s in rest] == ["您的快递已经到杭州了。", "预计明天送达。", "还有什么可以帮您？"]
    assert len(counting.texts) == 4


def test_telephone_frames_are_lazy_too() -> None:
    counting = CountingSynthesizer()
    frames = counting.telephone_frames(REPLY)
    next(frames)
    assert len(counting.texts) == 1


def test_live_voice_synthesises_off_the_loop_one_sentence_ahead() -> None:
    counting = CountingSynthesizer()
    voice = CachedVoice(counting, PromptCache(counting, []))

    async def first_then_stop() -> tuple[SentenceAudio, int, int]:
        async with aclosing(voice.sentences(split_sentences(REPLY))) as sentences:
            async for sentence in sentences:
                return sentence, len(counting.texts), threading.get_ident()
        raise AssertionError("no sentence")

    first, started, loop_thread = asyncio.run(first_then_stop())
    assert first.text == "好的，帮您查到了。"
    assert started <= 2  # the first sentence and at most one look-ahead, not all four
    assert loop_thread not in counting.threads


def test_live_voice_yields_every_sentence_in_order_and_cached_ones_for_free() -> None:
    counting = CountingSynthesizer()
    voice = CachedVoice(counting, PromptCache(counting, ["预计明天送达。"]))
    assert counting.texts == ["预计明天送达。"]

    async def collect() -> list[str]:
        return [s.text async for s in voice.sentences(split_sentences(REPLY))]

    assert asyncio.run(collect()) == split_sentences(REPLY)
    assert counting.texts.count("预计明天送达。") == 1  # served from the cache, not synthesised again
    assert len(counting.texts) == 4


# --- prompt cache ----------------------------------------------------------------------------


def test_prompt_cache_renders_once_and_serves_identical_frames() -> None:
    counting = CountingSynthesizer()
    cache = PromptCache(counting, ["请稍等。", "正在为您转接人工客服，请稍候。", "请稍等。"])
    rendered = len(counting.texts)
    assert counting.texts == ["请稍等。", "正在为您转接人工客服，请稍候。"]  # the duplicate is rendered once
    first, again = cache.get("请稍等。"), cache.get("请稍等。")
    assert first is not None and first == again
    assert all(len(f) == FRAME_BYTES for f in first)
    assert first == tuple(Synthesizer().telephone_frames("请稍等。"))  # same audio as fresh synthesis
    assert len(counting.texts) == rendered
    assert cache.get("没缓存的话") is None and "请稍等。" in cache and len(cache) == 2


# --- ivr say ---------------------------------------------------------------------------------


def test_ivr_say_writes_pcm16_at_the_engine_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "say.wav"
    assert cli.main(["say", "您的订单已发货，实付32.8元。", "-o", str(out)]) == 0
    fmt, _ = parse_wav(out.read_bytes(), strict=True)
    assert (fmt.tag, fmt.bits, fmt.sample_rate) == (PCM, 16, 22050)
    assert 1.5 < read_wav(out).duration < 8.0
    assert "voice espeak" in capsys.readouterr().out


def test_ivr_say_telephone_writes_8k_ulaw_frames(tmp_path: Path) -> None:
    out = tmp_path / "say.wav"
    assert cli.main(["say", "请稍等。正在为您转接人工客服。", "-o", str(out), "--telephone"]) == 0
    fmt, payload = parse_wav(out.read_bytes(), strict=True)
    assert (fmt.tag, fmt.sample_rate, fmt.channels) == (ULAW, 8000, 1)
    assert len(payload) % FRAME_BYTES == 0 and len(payload) > 50 * FRAME_BYTES


def test_ivr_say_uses_the_rate_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    durations = []
    for rate in ("120", "260"):
        monkeypatch.setenv("IVR_TTS_RATE", rate)
        assert cli.main(["say", "这款鞋子偏大还是偏小", "-o", str(tmp_path / f"{rate}.wav")]) == 0
        durations.append(read_wav(tmp_path / f"{rate}.wav").duration)
    assert durations[1] < 0.75 * durations[0]


def test_ivr_say_reports_a_bad_voice_or_path_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_TTS_VOICE", "klingon")
    assert cli.main(["say", "你好", "-o", str(tmp_path / "x.wav")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "ivr: TTS voice 'klingon' is not installed in espeak-ng (see `espeak-ng --voices`)"
    )
    monkeypatch.delenv("IVR_TTS_VOICE")
    assert cli.main(["say", "你好", "-o", str(tmp_path / "missing" / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ivr: cannot write") and err.count("\n") == 1


def test_a_sentence_ends_with_a_short_pause_not_espeaks_dead_air(synth: Synthesizer) -> None:
    whole = to_rate(synth.synthesize("嗯。"), 8000).pcm
    trimmed = tts.trim_tail(whole)
    level = np.abs(np.frombuffer(whole, "<i2")).astype(float)
    last_sound = int(np.flatnonzero(level > 300)[-1]) / 8000
    assert len(whole) / 16000 - last_sound > 0.25  # precondition: espeak-ng pads the sentence with silence
    assert len(trimmed) / 16000 == pytest.approx(last_sound + tts.TAIL_S, abs=0.02)
    assert trimmed == whole[: len(trimmed)]  # only the end is cut
    frames = synth.sentence_audio("嗯。").frames
    assert len(frames) * 0.02 == pytest.approx(len(trimmed) / 16000, abs=0.02)
    assert tts.trim_tail(b"") == b"" and tts.trim_tail(bytes(1600)) == bytes(1600)  # all silence: left alone


# --- telephone level -----------------------------------------------------------------------------


def _lufs(pcm: bytes, rate: int = 8000) -> float:
    import pyloudnorm

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    return float(pyloudnorm.Meter(rate).integrated_loudness(samples))


def _tone(seconds: float, dbfs: float, crest: bool = False) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    wave = np.sin(2 * np.pi * 440 * t) + (np.sin(2 * np.pi * 1000 * t) > 0.999) * 6.0 * crest  # sparse spikes
    wave = wave / np.max(np.abs(wave)) * 10 ** (dbfs / 20)
    return (wave * 32767).astype("<i2").tobytes()


def test_a_quiet_voice_is_brought_up_to_the_telephone_level() -> None:
    quiet = _tone(1.0, -40.0)
    assert _lufs(quiet) < -35
    assert _lufs(tts.telephone_level(quiet, 8000)) == pytest.approx(tts.TARGET_LUFS, abs=0.5)


def test_peaks_never_reach_the_ceiling_and_quiet_parts_are_untouched() -> None:
    spiky = _tone(1.0, -3.0, crest=True)
    out = np.frombuffer(tts.telephone_level(spiky, 8000), dtype="<i2").astype(np.float64) / 32768
    assert np.max(np.abs(out)) < 10 ** (tts.PEAK_DBFS / 20)
    ramp = np.linspace(-1.0, 1.0, 2001)
    limited = tts.soft_limit(ramp * 2, 0.9)
    assert np.all(np.abs(limited) < 0.9) and np.all(np.diff(limited) > 0)  # below the ceiling, order kept
    assert np.allclose(tts.soft_limit(ramp * 0.4, 0.9), ramp * 0.4)  # under the knee: unchanged


def test_silence_is_not_amplified_into_noise_and_a_short_sound_is_levelled() -> None:
    assert tts.telephone_level(bytes(1600), 8000) == bytes(1600)
    hiss = _tone(0.5, -60.0)
    assert tts.telephone_level(hiss, 8000) == hiss
    short = _tone(0.15, -35.0)  # a 「嗯」 is shorter than BS.1770's 0.4 s block
    assert _lufs(tts.telephone_level(short, 8000) * 4) == pytest.approx(tts.TARGET_LUFS, abs=1.0)


def test_espeak_replies_reach_the_line_levelled_and_unclipped(synth: Synthesizer) -> None:
    pcm = ulaw_to_pcm16(b"".join(synth.telephone_frames("您好，您的快递已经到了驿站，请尽快取件。")))
    peak = np.max(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.float64))) / 32768
    assert peak < 10 ** (-0.9 / 20) and -18.5 < _lufs(pcm) < -14.5
