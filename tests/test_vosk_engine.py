"""asr.vosk_engine and the AsrStream contract, with the real Korean vosk model on espeak Korean speech.

No Chinese vosk model can be had here; the Korean small model has the same kind of graph as
small-cn (lookahead, runtime grammar), so it tests the engine's mechanics: partials, finals, word
times, grammars, the stream state machine, the async wrapper. espeak speech is recognised poorly, so
nothing here asserts exact words.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from testmodels import concat, espeak, silence

from asr.engine import AsyncAsrStream, create_engine, split_frame
from asr.vosk_engine import VoskEngine, VoskStream, is_filler, load_model
from core.errors import AudioFormatError, ModelMissingError, ProtocolError
from core.settings import Settings
from core.types import AudioFrame, TranscriptEvent, TranscriptKind

pytestmark = [pytest.mark.models, pytest.mark.slow]

SENTENCE = "안녕하세요 주문한 물건이 아직 도착하지 않았어요"
PHRASES = ["안녕하세요", "물건", "주문"]
T0 = 12.5  # the stream does not start at 0: times must be offset by the frames' timestamps


@pytest.fixture(scope="module")
def speech() -> AudioFrame:
    return espeak(SENTENCE, "ko")


def run(stream: VoskStream, audio: AudioFrame, timestamp: float = T0) -> list[TranscriptEvent]:
    frame = AudioFrame(audio.pcm, audio.sample_rate, timestamp)
    events = [e for chunk in split_frame(frame) for e in stream.accept(chunk)]
    return events + stream.close()


def finals(events: list[TranscriptEvent]) -> list[TranscriptEvent]:
    return [e for e in events if e.kind is TranscriptKind.FINAL]


def test_partials_arrive_before_the_final_and_end_comes_last(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    events = run(vosk_ko_engine.new_stream(), speech)
    kinds = [e.kind for e in events]
    assert TranscriptKind.PARTIAL in kinds
    assert kinds.index(TranscriptKind.PARTIAL) < kinds.index(TranscriptKind.FINAL)
    assert kinds[-1] is TranscriptKind.END and kinds.count(TranscriptKind.END) == 1
    partial_texts = [e.text for e in events if e.kind is TranscriptKind.PARTIAL]
    assert all(a != b for a, b in zip(partial_texts, partial_texts[1:], strict=False)), "a partial only when it changed"
    assert finals(events)[0].text


def test_final_words_are_timed_in_stream_time_inside_the_audio(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    events = run(vosk_ko_engine.new_stream(), speech)
    (final,) = finals(events)
    assert final.words and 0.0 < final.confidence <= 1.0
    times = [t for w in final.words for t in (w.start, w.end)]
    assert times == sorted(times)
    assert T0 <= times[0] and times[-1] <= T0 + speech.duration + 0.01
    assert (final.start, final.end) == (final.words[0].start, final.words[-1].end)
    assert all(0.0 <= w.confidence <= 1.0 for w in final.words)
    assert events[-1].end == pytest.approx(T0 + speech.duration)


def test_model_markers_never_reach_the_text(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    # the Korean model emits tokens such as "[1]" beside "[unk]"; neither is speech
    events = run(vosk_ko_engine.new_stream(), speech)
    texts = [e.text for e in events] + [w.text for e in events for w in e.words]
    assert texts and not any("[" in t or "]" in t for t in texts)
    assert is_filler("[unk]") and is_filler("[1]") and not is_filler("배송")


def test_a_timestamp_gap_moves_later_words_by_the_gap(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    stream = vosk_ko_engine.new_stream()
    first = [e for chunk in split_frame(AudioFrame(speech.pcm, 8000, T0)) for e in stream.accept(chunk)]
    first += stream.flush()
    later = T0 + speech.duration + 60.0  # a minute of audio never reached the recogniser
    second = run(stream, speech, timestamp=later)
    assert finals(first)[0].end <= T0 + speech.duration + 0.01
    assert later <= finals(second)[0].start <= finals(second)[0].end <= later + speech.duration + 0.01


def test_a_grammar_restricts_every_final_word_to_its_phrases(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    free = {w.text for f in finals(run(vosk_ko_engine.new_stream(), speech)) for w in f.words}
    assert free - set(PHRASES), "the free transcript has other words, so the grammar has something to restrict"
    constrained = finals(run(vosk_ko_engine.new_stream(grammar=PHRASES), speech))
    words = [w.text for f in constrained for w in f.words]
    assert words and set(words) <= set(PHRASES)
    assert all("[unk]" not in f.text for f in constrained)


def test_set_grammar_waits_for_the_end_of_an_utterance_that_has_speech(
    vosk_ko_engine: VoskEngine, speech: AudioFrame
) -> None:
    stream = vosk_ko_engine.new_stream()
    events: list[TranscriptEvent] = []
    for chunk in split_frame(AudioFrame(speech.pcm, 8000, T0)):
        events += stream.accept(chunk)
    assert any(e.kind is TranscriptKind.PARTIAL for e in events)
    free_recognizer = stream.recognizer
    stream.set_grammar(PHRASES)
    assert stream.grammar is None and stream.recognizer is free_recognizer, "not in the middle of an utterance"
    stream.flush()
    assert stream.grammar == tuple(PHRASES) and stream.recognizer is not free_recognizer
    second = finals(run(stream, speech, timestamp=T0 + 10.0))
    assert {w.text for f in second for w in f.words} <= set(PHRASES)


def test_set_grammar_during_silence_applies_at_once(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    stream = vosk_ko_engine.new_stream()
    for chunk in split_frame(silence(0.6, timestamp=T0)):
        assert stream.accept(chunk) == []
    stream.set_grammar(PHRASES)
    assert stream.grammar == tuple(PHRASES)
    words = [w.text for f in finals(run(stream, speech, timestamp=T0 + 0.6)) for w in f.words]
    assert words and set(words) <= set(PHRASES)


def test_flush_returns_the_pending_final_and_nothing_when_there_was_no_speech(
    vosk_ko_engine: VoskEngine, speech: AudioFrame
) -> None:
    stream = vosk_ko_engine.new_stream()
    assert stream.flush() == []
    for chunk in split_frame(AudioFrame(speech.pcm, 8000, T0)):
        stream.accept(chunk)
    flushed = stream.flush()
    assert [e.kind for e in flushed] == [TranscriptKind.FINAL] and flushed[0].text
    assert stream.flush() == []
    closed = stream.close()
    assert [e.kind for e in closed] == [TranscriptKind.END]
    assert closed[0].start >= flushed[0].end


def test_silence_gives_no_final(vosk_ko_engine: VoskEngine) -> None:
    events = run(vosk_ko_engine.new_stream(), silence(2.0))
    assert [e.kind for e in events] == [TranscriptKind.END]


def test_every_call_after_close_is_a_protocol_error(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    stream = vosk_ko_engine.new_stream()
    run(stream, speech)
    calls = [
        lambda: stream.accept(AudioFrame(speech.pcm[:320], 8000, 99.0)),
        stream.flush,
        stream.close,
        lambda: stream.set_grammar(PHRASES),
    ]
    for call in calls:
        with pytest.raises(ProtocolError, match="expected an open stream, got closed"):
            call()


def test_bad_frames_are_refused_loudly(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    stream = vosk_ko_engine.new_stream()
    stream.accept(AudioFrame(speech.pcm[:3200], 8000, 5.0))
    with pytest.raises(ProtocolError, match=r"expected a frame timestamp >= 5\.200 s .* got 1\.000 s"):
        stream.accept(AudioFrame(speech.pcm[3200:6400], 8000, 1.0))
    with pytest.raises(AudioFormatError, match="expected 8000 Hz audio, got 16000 Hz"):
        stream.accept(AudioFrame(speech.pcm[:320], 16000, 5.2))
    with pytest.raises(AudioFormatError, match="expected whole 16-bit samples, got 3 bytes"):
        stream.accept(AudioFrame(b"\x00\x01\x02", 8000, 5.2))
    assert [e.kind for e in stream.close()][-1] is TranscriptKind.END, "a refused frame does not break the stream"


def test_the_model_is_loaded_once_and_shared_by_streams(vosk_ko_engine: VoskEngine, vosk_ko_model_dir: Path) -> None:
    assert load_model(vosk_ko_model_dir) is vosk_ko_engine.model
    assert VoskEngine(vosk_ko_model_dir).model is vosk_ko_engine.model
    one, two = vosk_ko_engine.new_stream(), vosk_ko_engine.new_stream()
    assert one.recognizer is not two.recognizer, "each open stream decodes with its own recognizer"
    warm = one.recognizer
    one.close()
    three = vosk_ko_engine.new_stream()
    assert three.recognizer is warm, "a closed stream's warm recognizer serves the next stream"
    two.close()
    three.close()


def test_create_engine_gives_vosk_when_a_vosk_model_is_configured(
    vosk_ko_engine: VoskEngine, vosk_ko_model_dir: Path, tmp_path: Path
) -> None:
    engine = create_engine(replace(Settings(), vosk_model=str(vosk_ko_model_dir), model_dir=tmp_path))
    assert isinstance(engine, VoskEngine) and engine.name == "vosk"
    assert engine.model is vosk_ko_engine.model


def test_a_missing_model_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError) as err:
        VoskEngine(tmp_path / "nowhere")
    message = str(err.value)
    assert "ivr models download vosk-zh" in message and "IVR_VOSK_MODEL=" in message and "\n" not in message


# -- AsyncAsrStream -------------------------------------------------------------------------------


class ThreadRecorder:
    """An AsrStream that records the thread each call ran on, delegating to a real stream."""

    def __init__(self, stream: VoskStream) -> None:
        self.stream = stream
        self.threads: set[int] = set()

    @property
    def sample_rate(self) -> int:
        return self.stream.sample_rate

    def accept(self, frame: AudioFrame) -> list[TranscriptEvent]:
        self.threads.add(threading.get_ident())
        return self.stream.accept(frame)

    def flush(self) -> list[TranscriptEvent]:
        self.threads.add(threading.get_ident())
        return self.stream.flush()

    def close(self) -> list[TranscriptEvent]:
        self.threads.add(threading.get_ident())
        return self.stream.close()

    def set_grammar(self, phrases: list[str] | None) -> None:
        self.stream.set_grammar(phrases)

    def speculate(self) -> None:
        self.stream.speculate()

    def drop_speculation(self) -> None:
        self.stream.drop_speculation()


def test_async_stream_runs_the_engine_off_the_event_loop(vosk_ko_engine: VoskEngine, speech: AudioFrame) -> None:
    recorder = ThreadRecorder(vosk_ko_engine.new_stream())

    async def main() -> tuple[list[TranscriptEvent], int, int]:
        astream = AsyncAsrStream(recorder, max_frames=1000)
        for chunk in split_frame(AudioFrame(speech.pcm, 8000, T0)):
            assert astream.push(chunk)
        await astream.close()
        with pytest.raises(ProtocolError, match="got closed"):
            astream.push(AudioFrame(speech.pcm[:320], 8000, 99.0))
        return [e async for e in astream], threading.get_ident(), astream.dropped_frames

    events, loop_thread, dropped = asyncio.run(main())
    assert recorder.threads and loop_thread not in recorder.threads
    assert dropped == 0
    assert TranscriptKind.FINAL in [e.kind for e in events] and events[-1].kind is TranscriptKind.END


def test_async_stream_drops_and_counts_frames_when_its_queue_is_full(
    vosk_ko_engine: VoskEngine, speech: AudioFrame
) -> None:
    chunks = list(split_frame(AudioFrame(speech.pcm, 8000, T0)))

    async def main() -> tuple[list[bool], int, list[TranscriptEvent]]:
        astream = AsyncAsrStream(vosk_ko_engine.new_stream(), max_frames=10)
        accepted = [astream.push(chunk) for chunk in chunks]  # no await: the worker cannot drain meanwhile
        dropped = astream.dropped_frames
        await astream.close()
        return accepted, dropped, [e async for e in astream]

    accepted, dropped, events = asyncio.run(main())
    assert accepted[:10] == [True] * 10 and not any(accepted[10:])
    assert dropped == len(chunks) - 10
    assert events[-1].kind is TranscriptKind.END


def test_async_flush_is_ordered_after_the_frames_pushed_before_it(
    vosk_ko_engine: VoskEngine, speech: AudioFrame
) -> None:
    async def main() -> list[TranscriptEvent]:
        astream = AsyncAsrStream(vosk_ko_engine.new_stream(), max_frames=1000)
        for chunk in split_frame(concat(speech, silence(0.3), timestamp=T0)):
            astream.push(chunk)
        await astream.flush()
        await astream.close()
        return [e async for e in astream]

    events = asyncio.run(main())
    kinds = [e.kind for e in events if e.kind is not TranscriptKind.PARTIAL]
    assert kinds == [TranscriptKind.FINAL, TranscriptKind.END]


def test_warm_up_fills_the_pool_once_and_streams_then_start_warm(vosk_ko_model_dir: Path, speech: AudioFrame) -> None:
    engine = VoskEngine(vosk_ko_model_dir, pool_size=3)
    assert engine.warm_up(speech.pcm, stop=lambda: True) == 0 and engine.pooled() == 0, "stop() is obeyed"
    assert engine.warm_up(b"") == 0, "nothing to decode, nothing warmed"
    threads = [threading.Thread(target=engine.warm_up, args=(speech.pcm,), kwargs={"count": 2}) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.pooled() == 2, "two warming threads do not overfill the pool"
    assert engine.warm_up(speech.pcm) == 1 and engine.pooled() == 3, "topped up to the pool's size"
    assert engine.warm_up(speech.pcm) == 0, "a full pool is left alone"
    assert engine.pooled(16000) == 0, "each rate has its own pool"
    streams = [engine.new_stream() for _ in range(4)]
    assert engine.pooled() == 0, "the warm recognizers serve the first streams; the fourth gets a new one"
    events = run(streams[0], speech)
    seconds = len(speech.pcm) / 2 / speech.sample_rate
    assert finals(events)[0].text and all(T0 <= w.start < w.end <= T0 + seconds for w in finals(events)[0].words), (
        "a warmed recognizer's word times are still in the stream's own time"
    )
    for stream in streams[1:]:
        stream.close()
