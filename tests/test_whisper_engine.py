"""asr.whisper_engine with the real faster-whisper base model on Mandarin (accuracy: test_asr_cer.py)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from testmodels import concat, espeak, noise, silence

from asr.engine import create_engine, split_frame
from asr.textnorm import cer, snap_to_phrases, to_simplified
from asr.whisper_engine import WhisperEngine, WhisperStream, load_model
from core.errors import ModelMissingError, ProtocolError
from core.settings import Settings
from core.types import AudioFrame, TranscriptEvent, TranscriptKind
from voice.wav import read_wav

FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"
T0 = 7.25


def fixture(name: str) -> tuple[AudioFrame, str]:
    sidecar = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return read_wav(FIXTURES / f"{name}.wav"), sidecar["text"]


def feed(stream: WhisperStream, audio: AudioFrame, timestamp: float = T0) -> list[TranscriptEvent]:
    frame = AudioFrame(audio.pcm, audio.sample_rate, timestamp)
    return [e for chunk in split_frame(frame) for e in stream.accept(chunk)]


def finals(events: list[TranscriptEvent]) -> list[TranscriptEvent]:
    return [e for e in events if e.kind is TranscriptKind.FINAL]


@pytest.mark.models
@pytest.mark.slow
def test_one_timed_final_on_flush(whisper_engine: WhisperEngine) -> None:
    audio, text = fixture("28_aftersale_return_normal")  # 我要退货 (accuracy: test_asr_cer.py)
    stream = whisper_engine.new_stream()
    assert finals(feed(stream, audio)) == [], "whisper gives its final at the utterance's end"
    (final,) = stream.flush()
    assert final.kind is TranscriptKind.FINAL and final.text and cer(text, final.text) < 1.0
    assert 0.0 < final.confidence <= 1.0
    times = [t for w in final.words for t in (w.start, w.end)]
    assert times == sorted(times) and T0 <= times[0] and times[-1] <= T0 + audio.duration
    assert "".join(w.text for w in final.words) == final.text
    assert stream.flush() == []
    assert [e.kind for e in stream.close()] == [TranscriptKind.END]


@pytest.mark.models
@pytest.mark.slow
def test_output_is_simplified_chinese(whisper_engine: WhisperEngine) -> None:
    audio, _ = fixture("46_affirm_normal")
    assert whisper_engine.prompt() is None, "the engine decodes as the raw call below does"
    samples = np.frombuffer(audio.pcm, "<i2").astype(np.float32) / 32768
    raw_segments, _ = whisper_engine.model.transcribe(
        np.repeat(samples, 2), language="zh", beam_size=5, temperature=0.0, condition_on_previous_text=False
    )
    raw = "".join(s.text for s in raw_segments)
    assert to_simplified(raw) != raw, f"precondition: whisper writes Traditional for this clip, got {raw!r}"
    stream = whisper_engine.new_stream()
    feed(stream, audio)
    (final,) = stream.flush()
    assert final.text and final.text == to_simplified(final.text)
    assert all(w.text == to_simplified(w.text) for w in final.words)


@pytest.mark.models
@pytest.mark.slow
def test_a_grammar_snaps_the_transcript_onto_its_phrases(whisper_engine: WhisperEngine) -> None:
    stream = whisper_engine.new_stream(grammar=["是的", "不是"])
    feed(stream, espeak("是的", "cmn"))  # whisper base hears 是白白
    (yes,) = stream.flush()
    assert yes.text == "是的" and [w.text for w in yes.words] == ["是的"] and 0.0 < yes.confidence <= 1.0
    feed(stream, espeak("没有", "cmn"), timestamp=T0 + 5)  # heard as Latin letters: nothing close
    (other,) = stream.flush()
    assert other.kind is TranscriptKind.FINAL and other.text == "" and other.words == ()
    stream.set_grammar(None)
    assert stream.grammar is None


@pytest.mark.parametrize(
    ("heard", "phrases", "expected"),
    [
        ("是的。", ["是的", "不是"], "是的"),
        ("是", ["是的", "不是"], "是的"),
        ("不是的", ["是的", "不是"], "不是"),
        ("對，是的", ["是的", "不是"], "是的"),
        ("我要退款", ["退货", "退款", "换货"], "退款"),
        ("幺3八零", list("零一二三四五六七八九"), "一三八零"),
        ("顺风", ["顺丰", "中通", "圆通"], "顺丰"),
        ("好", ["是的", "不是"], None),
        ("makeitoutfree", ["是的", "不是"], None),
    ],
)
def test_snapping_picks_the_closest_phrases(heard: str, phrases: list[str], expected: str | None) -> None:
    snap = snap_to_phrases(heard, phrases)
    assert (snap.text if snap else None) == expected


@pytest.mark.models
@pytest.mark.slow
def test_silence_is_never_a_sentence(whisper_engine: WhisperEngine) -> None:
    stream = whisper_engine.new_stream()
    feed(stream, silence(3.0))
    assert stream.flush() == []
    feed(stream, noise(3.0, dbfs=-40.0), timestamp=T0 + 3)
    heard = stream.flush()
    assert heard == [] or heard[0].text == "", f"line noise became {heard[0].text!r}"
    assert [e.kind for e in stream.close()] == [TranscriptKind.END]


@pytest.mark.models
@pytest.mark.slow
def test_a_long_buffer_finalises_itself_at_max_seconds(whisper_model_dir: Path) -> None:
    engine = WhisperEngine(whisper_model_dir, max_seconds=2.0)
    stream = engine.new_stream()
    events = feed(stream, silence(5.0))
    assert events == [] and stream.auto_finals == 2, "two full 2 s buffers were finalised (silent: no FINAL)"
    assert stream.close()[-1].kind is TranscriptKind.END


@pytest.mark.models
@pytest.mark.slow
def test_the_model_is_loaded_once(whisper_engine: WhisperEngine, whisper_model_dir: Path) -> None:
    assert load_model(whisper_model_dir, 2) is whisper_engine.model
    assert WhisperEngine(whisper_model_dir).model is whisper_engine.model


@pytest.mark.models
@pytest.mark.slow
def test_create_engine_gives_whisper_when_no_vosk_model_is_there(whisper_model_dir: Path, tmp_path: Path) -> None:
    settings = replace(Settings(), whisper_model=str(whisper_model_dir), model_dir=tmp_path, whisper_threads=2)
    engine = create_engine(settings)
    assert isinstance(engine, WhisperEngine) and engine.name == "whisper"
    assert engine.model is load_model(whisper_model_dir, 2)


@pytest.mark.models
@pytest.mark.slow
def test_calls_after_close_are_protocol_errors(whisper_engine: WhisperEngine) -> None:
    stream = whisper_engine.new_stream()
    stream.close()
    with pytest.raises(ProtocolError, match="expected an open stream, got closed"):
        stream.accept(silence(0.02))
    with pytest.raises(ProtocolError, match="expected an open stream, got closed"):
        stream.set_grammar(["是的"])


def test_a_missing_model_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError) as err:
        WhisperEngine(tmp_path)
    assert "ivr models download whisper-base" in str(err.value) and "IVR_WHISPER_MODEL=" in str(err.value)


@pytest.mark.models
@pytest.mark.slow
def test_times_are_offset_by_the_first_frames_timestamp(whisper_engine: WhisperEngine) -> None:
    audio, _ = fixture("28_aftersale_return_normal")
    stream = whisper_engine.new_stream()
    feed(stream, concat(silence(0.5), audio), timestamp=100.0)
    (final,) = stream.flush()
    assert 100.0 <= final.start and final.end <= 100.5 + audio.duration


def _fed_in_real_time(stream: WhisperStream, audio: AudioFrame) -> list[tuple[int, TranscriptEvent]]:
    """Events of ``audio`` fed 100 ms at a time as a call's speech path does, with the frame index."""
    frame = AudioFrame(audio.pcm, audio.sample_rate, T0)
    out = []
    for i, chunk in enumerate(split_frame(frame, 0.1)):
        out += [(i, e) for e in stream.accept(chunk)]
        time.sleep(0.1)
    return out


@pytest.mark.models
@pytest.mark.slow
def test_periodic_partials_of_real_speech_come_while_the_caller_talks(whisper_engine: WhisperEngine) -> None:
    from paths import REAL_ZH, shared

    # 9.4 s of read speech (AISHELL-1, human transcript): a partial takes one decode (~1-2.5 s here,
    # whatever the length), so on a slow machine a 4 s clip had ended before the first one was shown
    audio = read_wav(shared(REAL_ZH.parent / "zh_more" / "BAC009S0768W0290.wav").read_bytes())
    stream = WhisperEngine(whisper_engine.model_dir, threads=2, partial_every_s=1.0).new_stream(audio.sample_rate)
    events = _fed_in_real_time(stream, audio)
    partials = [(i, e) for i, e in events if e.kind is TranscriptKind.PARTIAL]
    assert partials and not finals([e for _, e in events])
    assert partials[0][0] * 0.1 < audio.duration - 0.5  # the first came well before the end of the speech
    (final,) = stream.flush()
    for _, partial in partials:
        assert partial.text and T0 <= partial.start <= partial.end <= T0 + audio.duration
    last = partials[-1][1].text  # the utterance so far: a beginning of what the final says (the first second
    assert cer(final.text[: len(last)], last) <= 0.5, (last, final.text)  # of speech alone can read as anything)
    assert stream.partials == len(partials)


@pytest.mark.models
@pytest.mark.slow
def test_no_periodic_partials_by_default_nor_in_a_grammar_turn(whisper_model_dir: Path) -> None:
    from paths import REAL_ZH, shared

    audio = read_wav(shared(REAL_ZH / "BAC009S0764W0121.wav").read_bytes())
    engine = WhisperEngine(whisper_model_dir, threads=2)  # periodic partials are off by default
    assert not [e for _, e in _fed_in_real_time(engine.new_stream(sample_rate=audio.sample_rate), audio)]
    engine = WhisperEngine(whisper_model_dir, threads=2, partial_every_s=1.0)
    stream = engine.new_stream(sample_rate=audio.sample_rate, grammar=["是的", "不是"])
    assert not [e for _, e in _fed_in_real_time(stream, audio)]


@pytest.mark.models
@pytest.mark.slow
def test_the_engine_is_busy_while_a_transcription_is_queued_or_running(whisper_engine: WhisperEngine) -> None:
    audio, _ = fixture("28_aftersale_return_normal")
    samples = np.frombuffer(audio.pcm, "<i2")
    assert whisper_engine.idle
    first, second = (whisper_engine.speculate(samples, audio.sample_rate) for _ in range(2))
    assert not whisper_engine.idle  # (a partial would start now only to delay these)
    first.result(), second.result()
    assert whisper_engine.idle
