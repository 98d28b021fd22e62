"""voice.speech: call audio → VAD → real ASR (whisper base, Korean vosk) → prosody → Utterances."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from testmodels import INSTALL_HINT, concat, espeak, require, silence, telephone, vosk_ko_dir, whisper_base_dir

from asr.textnorm import cer
from core.errors import AudioFormatError, ProtocolError
from core.types import AudioFrame, SpeechEnded, SpeechStarted, TranscriptEvent, TranscriptKind, Utterance
from voice.speech import SpeechEvent, SpeechPath, pick_rate, transcribe
from voice.speech_async import AsyncSpeechPath
from voice.wav import read_wav

FIXTURES = Path(__file__).resolve().parent.parent / "audio_fixtures"
# One caller (espeak voice f3) three times at a normal pace and level, then fast and loud.
CALL = (
    "01_logistics_track_normal",
    "10_logistics_expedite_normal",
    "13_product_info_normal",
    "31_aftersale_refund_status_fast_loud",
)
GAP_S = 1.2
KO_TEXT = "안녕하세요 주문 상태를 확인하고 싶습니다"

pytestmark = [pytest.mark.slow, pytest.mark.models]


@dataclass(frozen=True)
class Call:
    audio: AudioFrame
    texts: tuple[str, ...]
    spans: tuple[tuple[float, float], ...]  # where each fixture file sits in the call, seconds


@pytest.fixture(scope="module")
def whisper():  # type: ignore[no-untyped-def]
    from asr.whisper_engine import WhisperEngine

    return WhisperEngine(require(whisper_base_dir(), INSTALL_HINT))


@pytest.fixture(scope="module")
def vosk():  # type: ignore[no-untyped-def]
    from asr.vosk_engine import VoskEngine

    return VoskEngine(require(vosk_ko_dir(), INSTALL_HINT))


@pytest.fixture(scope="module")
def call() -> Call:
    parts, texts, spans, at = [silence(1.0)], [], [], 1.0
    for name in CALL:
        speech = read_wav(FIXTURES / f"{name}.wav")
        texts.append(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["text"])
        spans.append((at, at + speech.duration))
        parts += [speech, silence(GAP_S)]
        at += speech.duration + GAP_S
    return Call(concat(*parts), tuple(texts), tuple(spans))


def frames(audio: AudioFrame, ms: int = 20) -> Iterator[AudioFrame]:
    """The audio as a caller's line delivers it: ``ms`` chunks stamped with their stream time."""
    step = audio.sample_rate * ms // 1000 * 2
    for offset in range(0, len(audio.pcm), step):
        yield AudioFrame(
            audio.pcm[offset : offset + step], audio.sample_rate, audio.timestamp + offset / 2 / audio.sample_rate
        )


def run(path: SpeechPath, audio: AudioFrame) -> list[SpeechEvent]:
    events: list[SpeechEvent] = []
    for frame in frames(audio):
        events += path.push(frame)
    return events + path.finish()


def utterances(events: list[SpeechEvent]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


@pytest.fixture(scope="module")
def heard(whisper, call: Call) -> list[SpeechEvent]:  # type: ignore[no-untyped-def]
    return run(SpeechPath(whisper), call.audio)


def test_one_utterance_per_spoken_segment_with_the_spoken_text(heard: list[SpeechEvent], call: Call) -> None:
    said = utterances(heard)
    assert len(said) == len(CALL)
    for u, (start, end) in zip(said, call.spans, strict=True):
        assert start - 0.1 <= u.start < u.end <= end + 0.1
        assert u.words and all(u.start <= w.start <= w.end <= u.end for w in u.words)
        assert 0.0 < u.confidence <= 1.0
    # espeak Mandarin through whisper base is a loose check that each text came from its own segment;
    # accuracy on real speech is measured by bench/asr.py.
    errors = [cer(t, u.text) for t, u in zip(call.texts, said, strict=True)]
    assert max(errors) < 0.9 and sum(errors) / len(errors) < 0.6, [u.text for u in said]


def test_events_come_in_call_order(heard: list[SpeechEvent]) -> None:
    kinds = [type(e).__name__ for e in heard if not isinstance(e, TranscriptEvent)]
    assert kinds == ["SpeechStarted", "SpeechEnded", "Utterance"] * len(CALL)
    starts = [e.at for e in heard if isinstance(e, SpeechStarted)]
    ends = [e for e in heard if isinstance(e, SpeechEnded)]
    assert all(s < e.end for s, e in zip(starts, ends, strict=True))
    assert all(e.end < s for e, s in zip(ends, starts[1:], strict=False))


def test_prosody_is_filled_and_moves_when_the_caller_speeds_up_and_gets_louder(heard: list[SpeechEvent]) -> None:
    said = utterances(heard)
    prosody = [u.prosody for u in said]
    assert all(p is not None and p.voiced_seconds > 0.5 and p.speech_rate > 0 and p.f0_mean > 0 for p in prosody)
    first, *calm, upset = prosody
    assert first is not None and upset is not None
    assert (first.rel_rate, first.rel_f0, first.rel_energy_db) == (1.0, 1.0, 0.0)  # its own baseline
    assert all(p is not None and 0.7 < p.rel_rate < 1.3 and abs(p.rel_energy_db) < 2.5 for p in calm)
    assert upset.rel_rate > 1.2
    assert upset.rel_energy_db > 2.0


def test_transcribe_gives_the_same_utterances_as_pushing_frames(whisper, heard, call: Call) -> None:  # type: ignore[no-untyped-def]
    whole = transcribe(whisper, call.audio)
    assert [(u.text, u.start, u.end) for u in whole] == [(u.text, u.start, u.end) for u in utterances(heard)]


def test_recognition_rate_follows_the_recording() -> None:
    assert pick_rate(44100) == pick_rate(16000) == 16000
    assert pick_rate(11025) == pick_rate(8000) == 8000
    assert pick_rate(44100, 8000) == 8000


def test_the_async_path_delivers_the_same_utterances(whisper, heard, call: Call) -> None:  # type: ignore[no-untyped-def]
    async def main() -> list[SpeechEvent]:
        async with AsyncSpeechPath(SpeechPath(whisper), max_frames=8) as path:
            for frame in frames(call.audio):
                await path.put(frame)
            await path.end()
            out = [event async for event in path]
            assert path.dropped_frames == 0
            return out

    events = asyncio.run(main())
    assert [(u.text, u.start, u.end, u.prosody) for u in utterances(events)] == [
        (u.text, u.start, u.end, u.prosody) for u in utterances(heard)
    ]
    assert [type(e) for e in events] == [type(e) for e in heard]


def test_the_async_path_drops_the_oldest_frames_when_overfilled_and_counts_them(whisper) -> None:  # type: ignore[no-untyped-def]
    async def main() -> tuple[list[bool], int, int]:
        path = SpeechPath(whisper)
        async with AsyncSpeechPath(path, max_frames=4) as live:
            accepted = [live.offer(frame) for frame in frames(silence(1.0))]  # 50 frames, nobody reading yet
            await live.end()
            events = [event async for event in live]
            assert events == []
            return accepted, live.dropped_frames, path.stats.frames

    accepted, dropped, processed = asyncio.run(main())
    assert accepted == [True] * 4 + [False] * 46
    assert (dropped, processed) == (46, 4)


def test_a_dropped_stretch_is_a_gap_in_time_not_a_shift(vosk) -> None:  # type: ignore[no-untyped-def]
    speech = telephone(espeak(KO_TEXT, "ko"))
    audio = concat(silence(1.0), speech, silence(1.0))
    lost = [f for f in frames(audio) if not 0.5 <= f.timestamp < 0.8]  # 300 ms of silence never arrive
    path = SpeechPath(vosk)
    events = [e for f in lost for e in path.push(f)] + path.finish()
    (started,) = [e for e in events if isinstance(e, SpeechStarted)]
    assert path.stats.gap_seconds == pytest.approx(0.3, abs=0.001)
    assert 0.8 <= started.at <= 1.1  # the speech begins at 1.0 s in call time, gap or not


def test_aclose_stops_a_running_path_and_releases_the_recogniser(vosk) -> None:  # type: ignore[no-untyped-def]
    async def main() -> SpeechPath:
        path = SpeechPath(vosk)
        live = AsyncSpeechPath(path)
        speech = concat(silence(0.5), telephone(espeak(KO_TEXT, "ko")))
        for frame in frames(speech):
            await live.put(frame)
        first = await anext(live)  # the caller started talking, then hung up
        assert isinstance(first, SpeechStarted)
        await live.aclose()
        assert live._task is not None and live._task.done()
        with pytest.raises(ProtocolError, match="closed"):
            live.offer(frame)
        return path

    path = asyncio.run(main())
    with pytest.raises(ProtocolError, match="expected an open speech path"):
        path.push(AudioFrame(b"\0\0" * 160, 8000))


def test_a_bad_frame_ends_async_iteration_with_its_error(vosk) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with AsyncSpeechPath(SpeechPath(vosk)) as live:
            live.offer(AudioFrame(b"\0\0" * 320, 16000))
            with pytest.raises(AudioFormatError, match="expected 8000 Hz"):
                await anext(live)

    asyncio.run(main())


def test_partials_arrive_before_the_final_with_vosk(vosk) -> None:  # type: ignore[no-untyped-def]
    speech = telephone(espeak(KO_TEXT, "ko"))
    audio = concat(silence(1.0), speech, silence(1.0))
    events = run(SpeechPath(vosk), audio)
    kinds = [e.kind.value if isinstance(e, TranscriptEvent) else type(e).__name__ for e in events]
    assert kinds[0] == "SpeechStarted" and kinds[-2:] == ["SpeechEnded", "Utterance"]
    partials = [e for e in events if isinstance(e, TranscriptEvent)]
    assert partials and all(e.kind is TranscriptKind.PARTIAL and e.text for e in partials)
    (said,) = utterances(events)
    assert said.words and all(0.9 <= w.start <= w.end <= 1.1 + speech.duration for w in said.words)
    assert partials[-1].text.split()[0] == said.text.split()[0]  # the partial was this utterance, growing


def test_misuse_is_refused_loudly(vosk) -> None:  # type: ignore[no-untyped-def]
    path = SpeechPath(vosk)
    with pytest.raises(AudioFormatError, match="expected 8000 Hz audio, got 16000 Hz"):
        path.push(AudioFrame(b"\0\0" * 320, 16000))
    with pytest.raises(AudioFormatError, match="whole 16-bit samples"):
        path.push(AudioFrame(b"\0\0\0", 8000))
    assert path.push(AudioFrame(b"\0\0" * 160, 8000)) == []  # the stream goes on after a rejected frame
    assert path.finish() == []
    with pytest.raises(ProtocolError, match="expected an open speech path for push"):
        path.push(AudioFrame(b"\0\0" * 160, 8000))


def test_speech_that_matches_nothing_in_the_grammar_gives_no_utterance(whisper) -> None:  # type: ignore[no-untyped-def]
    audio = concat(silence(0.5), read_wav(FIXTURES / "28_aftersale_return_normal.wav"), silence(1.0))  # 我要退货
    path = SpeechPath(whisper, grammar=("顺丰", "中通"))
    events = run(path, audio)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert (path.stats.segments, path.stats.empty_segments, path.stats.utterances) == (1, 1, 0)


# -- speculative recognition at the first short pause (live calls) ---------------------------------

LIVE_VAD: dict[str, object] = {"hangover_ms": 300, "start_ms": 120}


def _voiced(name: str) -> tuple[AudioFrame, str]:
    """A real recording at telephone quality, cut to its voiced part (±60 ms), and its human transcript."""
    from paths import REAL_ZH, shared

    audio = telephone(read_wav(shared(REAL_ZH / name).read_bytes()))
    rows = dict(line.split("\t")[:2] for line in shared(REAL_ZH / "transcripts.tsv").read_text().splitlines())
    x = np.frombuffer(audio.pcm, "<i2").astype(float)
    n = len(x) // 160
    level = 20 * np.log10(np.maximum(np.sqrt(np.mean(x[: n * 160].reshape(n, 160) ** 2, axis=1)), 1e-9) / 32768)
    loud = np.flatnonzero(level >= -40)
    first, last = max(0, loud[0] * 160 - 480), min(len(x), (loud[-1] + 1) * 160 + 480)
    return AudioFrame(audio.pcm[first * 2 : last * 2], 8000), rows[name]


class _Counting:
    """The real whisper engine, counting its transcriptions made outside the speculation thread."""

    def __init__(self, engine, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        self.runs = 0  # transcriptions not started speculatively
        transcribe = engine.transcribe

        def counted(*args: object) -> object:
            if not threading.current_thread().name.startswith("whisper-speculate"):
                self.runs += 1
            return transcribe(*args)

        monkeypatch.setattr(engine, "transcribe", counted)


def _live_path(engine) -> SpeechPath:  # type: ignore[no-untyped-def]
    return SpeechPath(engine, 8000, pause_ms=140, vad_options=LIVE_VAD)


@dataclass
class _Heard:
    events: list[SpeechEvent]
    last_speculation: int  # index of the frame whose push started the last speculation
    closed: int  # index of the frame whose push closed the segment
    runs_at_close: int  # whisper runs the closing push made itself (not speculative ones)


def _hear_live(path: SpeechPath, audio: AudioFrame, counting: _Counting) -> _Heard:
    stream = path._stream
    events: list[SpeechEvent] = []
    last, closed, runs_at_close, speculations = -1, -1, -1, 0
    for i, frame in enumerate(frames(audio)):
        runs = counting.runs
        new = path.push(frame)
        events += new
        if stream.speculations > speculations:  # type: ignore[attr-defined]
            last, speculations = i, stream.speculations  # type: ignore[attr-defined]
        if any(isinstance(e, SpeechEnded) for e in new):
            closed, runs_at_close = i, counting.runs - runs
    path.close()
    return _Heard(events, last, closed, runs_at_close)


def test_whisper_starts_at_the_first_pause_and_its_text_is_reused_at_segment_close(
    whisper_engine, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    speech, text = _voiced("BAC009S0764W0121.wav")
    counting = _Counting(whisper_engine, monkeypatch)
    path = _live_path(whisper_engine)
    stream = path._stream
    heard = _hear_live(path, concat(silence(0.5), speech, silence(0.6)), counting)
    assert 0 <= heard.last_speculation < heard.closed
    assert (heard.closed - heard.last_speculation) * 20 >= 300 - 140 - 20  # started the rest of a hangover early
    (utterance,) = utterances(heard.events)
    assert cer(text, utterance.text) <= 0.35, utterance.text
    assert stream.reused == 1 and heard.runs_at_close == 0  # the close took the speculative text: no second run


def test_speech_after_the_pause_drops_the_speculation_and_the_whole_utterance_is_recognised(
    whisper_engine, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    first, first_text = _voiced("BAC009S0764W0121.wav")
    second, second_text = _voiced("BAC009S0764W0122.wav")  # the same speaker goes on
    counting = _Counting(whisper_engine, monkeypatch)
    path = _live_path(whisper_engine)
    stream = path._stream
    audio = concat(silence(0.5), first, silence(0.22), second, silence(0.6))  # a pause shorter than the hangover
    heard = _hear_live(path, audio, counting)
    kinds = [type(e) for e in heard.events if isinstance(e, SpeechStarted | SpeechEnded)]
    assert kinds == [SpeechStarted, SpeechEnded]  # one segment: the caller went on after the pause
    (utterance,) = utterances(heard.events)
    assert cer(first_text + second_text, utterance.text) <= 0.35, utterance.text
    assert stream.speculations >= 2 and stream.reused == 1  # the pause's guess was dropped, the end's reused
    assert heard.runs_at_close == 0


def test_the_async_path_tells_of_a_segment_end_before_its_text_is_recognised(whisper, call: Call) -> None:  # type: ignore[no-untyped-def]
    async def main() -> tuple[list[tuple[str, float]], int]:
        told: list[tuple[str, float]] = []  # in arrival order: ("closed", end) from the callback, ("ended", end) events
        async with AsyncSpeechPath(SpeechPath(whisper), max_frames=8) as path:
            path.on_segment_end = lambda ended: told.append(("closed", ended.end))
            for frame in frames(call.audio):
                await path.put(frame)
                while not path._outbox.empty():  # read what is there, as a live call does
                    event = await anext(path)
                    told.extend([("ended", event.end)] if isinstance(event, SpeechEnded) else [])
            await path.end()
            told.extend([("ended", e.end) async for e in path if isinstance(e, SpeechEnded)])
            return told, len([t for t in told if t[0] == "ended"])

    told, segments = asyncio.run(main())
    assert segments >= 1
    closed = [end for kind, end in told if kind == "closed"]
    assert len(closed) == segments  # once per segment, with the same times
    for end in closed:  # and each notice came before its SpeechEnded (which waits for whisper's text)
        assert told.index(("closed", end)) < told.index(("ended", end))
