"""One streaming speech-recognition interface for every engine (vosk, whisper).

``AsrStream`` is synchronous: every method blocks while the engine works (vosk decodes inside
``accept``, whisper transcribes a whole utterance inside ``flush``, ~1 s). On an event loop, wrap it
in ``AsyncAsrStream``, which runs it in an executor.

- ``accept(frame)`` → PARTIAL events when the hypothesis changed, and a FINAL when the engine itself
  ended an utterance (vosk's endpointer; whisper when its buffer reaches ``max_seconds``).
- ``flush()`` → force-finalise the current utterance (the pipeline calls it on the VAD's speech end):
  ``[FINAL]``, or ``[]`` when nothing was heard.
- ``close()`` → ``flush()`` + END. Afterwards every call raises ``ProtocolError``.
- ``set_grammar(phrases | None)`` → constrain recognition to the phrases (``None`` or ``()``: no
  constraint). It takes effect at once while the current utterance has no hypothesis yet (the normal
  case: set while the caller is silent); otherwise from the next utterance, so an utterance is never
  decoded half with one grammar and half with another.

A FINAL with empty ``text`` means speech was heard but nothing matched the grammar (vosk's ``[unk]``);
no FINAL means nothing was heard. ``text`` is Simplified Chinese without punctuation or spaces between
Han characters (``asr.textnorm.clean_text``); ``words`` carry per-word times and confidences, and the
event's ``confidence`` is the utterance's (0..1).

Times are stream seconds. A frame's ``timestamp`` places its first sample; a frame that starts where
the previous one ended (±5 ms) continues it; a later timestamp opens a gap (dropped audio) that times
skip; an earlier one is a ``ProtocolError``. FINAL times never go backwards.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from asr.models import auto_engine, resolve_vosk, resolve_whisper
from asr.textnorm import join_words, normalize_for_compare, snap_to_phrases
from core.errors import AudioFormatError, ModelMissingError, ProtocolError
from core.settings import Settings
from core.types import PCM_SAMPLE_WIDTH, AudioFrame, TranscriptEvent, TranscriptKind, Word

Grammar = tuple[str, ...] | None
_R = TypeVar("_R")


class AsrStream(Protocol):
    """One caller's audio → transcript events. Not thread-safe: one caller at a time."""

    @property
    def sample_rate(self) -> int: ...

    def accept(self, frame: AudioFrame) -> list[TranscriptEvent]: ...

    def flush(self) -> list[TranscriptEvent]: ...

    def close(self) -> list[TranscriptEvent]: ...

    def set_grammar(self, phrases: Sequence[str] | None) -> None: ...

    def speculate(self) -> None:
        """The caller has paused: an engine that decodes whole utterances may start on the audio so far.

        The next ``flush()`` reuses that work unless ``drop_speculation()`` came first (the caller
        went on speaking). A streaming engine (vosk) has nothing to do.
        """

    def drop_speculation(self) -> None:
        """Speech went on after ``speculate()``: its result must not stand for the utterance."""


class AsrEngine(Protocol):
    """A loaded recogniser. Thread-safe; each call gets its own stream."""

    name: str

    def new_stream(self, sample_rate: int = 8000, grammar: Sequence[str] | None = None) -> AsrStream: ...

    def warm_up(
        self, audio: bytes = b"", rate: int = 8000, count: int | None = None, stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Pay first-use costs before callers do, decoding ``audio`` (PCM16 speech at ``rate``);
        blocking, ``stop()`` ends it early; returns the number of recognizers warmed."""
        ...


def create_engine(settings: Settings, vocabulary: Sequence[str] = ()) -> AsrEngine:
    """The engine ``IVR_ASR_ENGINE`` asks for (``auto``: vosk if a Chinese vosk model is there, else whisper).

    ``vocabulary`` (shop words) becomes whisper's initial prompt; with whisper base that measured no
    better on real speech and 3x slower (see asr/whisper_engine.py), so pass it only after measuring.
    vosk's vocabulary is fixed by its model.
    """
    if auto_engine(settings) == "vosk":
        path = resolve_vosk(settings)
        if path is None:
            raise ModelMissingError(
                "no Chinese vosk model is installed: "
                "run `ivr models download vosk-zh` or set IVR_VOSK_MODEL=/path/to/dir"
            )
        from asr.vosk_engine import VoskEngine

        return VoskEngine(path)
    from asr.whisper_engine import WhisperEngine

    every = settings.whisper_partial_ms / 1000 if settings.whisper_partial_ms is not None else None
    return WhisperEngine(
        resolve_whisper(settings), vocabulary=vocabulary, threads=settings.whisper_threads, partial_every_s=every
    )


def split_frame(frame: AudioFrame, seconds: float = 0.02) -> Iterator[AudioFrame]:
    """Cut one long frame (a whole file) into contiguous chunks with correct timestamps."""
    step = max(1, round(seconds * frame.sample_rate)) * PCM_SAMPLE_WIDTH
    for offset in range(0, len(frame.pcm), step):
        at = frame.timestamp + offset / PCM_SAMPLE_WIDTH / frame.sample_rate
        yield AudioFrame(frame.pcm[offset : offset + step], frame.sample_rate, at)


def normalize_grammar(phrases: Sequence[str] | None) -> Grammar:
    """Phrases stripped, empties and duplicates dropped; no phrases at all means no constraint."""
    if isinstance(phrases, str):
        raise TypeError("expected a sequence of phrases, got one string")
    cleaned = tuple(dict.fromkeys(p.strip() for p in phrases or () if p.strip()))
    return cleaned or None


class Timeline:
    """The stream time of every accepted sample, from the frames' timestamps."""

    def __init__(self, sample_rate: int, tolerance: float = 0.005) -> None:
        self.rate = sample_rate
        self.samples = 0  # samples accepted so far
        self._tolerance = tolerance
        self._run_sample: list[int] = []  # where each contiguous run starts (sample index) ...
        self._run_time: list[float] = []  # ... and at what stream time

    @property
    def end(self) -> float:
        """Stream time just after the last accepted sample."""
        if not self._run_sample:
            return 0.0
        return self._run_time[-1] + (self.samples - self._run_sample[-1]) / self.rate

    def append(self, frame: AudioFrame) -> int:
        """Account for ``frame``; returns the sample index of its first sample."""
        first = self.samples
        if self._run_sample:
            expected = self.end
            if frame.timestamp < expected - self._tolerance:
                raise ProtocolError(
                    f"expected a frame timestamp >= {expected:.3f} s (where the previous frame ended), "
                    f"got {frame.timestamp:.3f} s"
                )
            if frame.timestamp <= expected + self._tolerance:
                self.samples += frame.samples
                return first
        self._run_sample.append(first)
        self._run_time.append(frame.timestamp)
        self.samples += frame.samples
        return first

    def time_at(self, sample: float) -> float:
        """Stream time of a (fractional) sample index, clamped to the accepted audio."""
        if not self._run_sample:
            return 0.0
        sample = min(max(sample, 0.0), float(self.samples))
        i = max(0, bisect.bisect_right(self._run_sample, sample) - 1)
        return self._run_time[i] + (sample - self._run_sample[i]) / self.rate

    def forget_before(self, sample: int) -> None:
        """Drop runs that end before ``sample`` (keeps memory flat over a long call)."""
        keep = max(0, bisect.bisect_right(self._run_sample, sample) - 1)
        del self._run_sample[:keep], self._run_time[:keep]


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"


class _Unset(enum.Enum):
    UNSET = enum.auto()


@dataclass(frozen=True, slots=True)
class RawWord:
    """A word as an engine reports it: times in stream samples (fractional), confidence 0..1."""

    text: str
    start: float
    end: float
    confidence: float


class BaseStream(ABC):
    """The state machine, frame checks, timeline and grammar timing that every engine's stream shares."""

    def __init__(self, sample_rate: int, grammar: Sequence[str] | None) -> None:
        if not 8000 <= sample_rate <= 48000:
            raise AudioFormatError(f"expected a sample rate of 8000..48000 Hz, got {sample_rate}")
        self._rate = sample_rate
        self._timeline = Timeline(sample_rate)
        self._state = _State.OPEN
        self._grammar = normalize_grammar(grammar)
        self._pending: Grammar | _Unset = _Unset.UNSET
        self._floor = 0.0  # FINAL times never go below this

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def grammar(self) -> Grammar:
        """The grammar the current utterance is decoded with."""
        return self._grammar

    def accept(self, frame: AudioFrame) -> list[TranscriptEvent]:
        self._require_open()
        if frame.sample_rate != self._rate:
            raise AudioFormatError(f"expected {self._rate} Hz audio, got {frame.sample_rate} Hz")
        if len(frame.pcm) % PCM_SAMPLE_WIDTH:
            raise AudioFormatError(f"expected whole 16-bit samples, got {len(frame.pcm)} bytes")
        if not frame.pcm:
            return []
        first = self._timeline.append(frame)
        return self._guarded(self._feed, frame.pcm, first)

    def flush(self) -> list[TranscriptEvent]:
        self._require_open()
        events = self._guarded(self._finish)
        self._utterance_done()
        return events

    def close(self) -> list[TranscriptEvent]:
        self._require_open()
        try:
            events = self._guarded(self._finish)
        finally:
            self._state = _State.CLOSED
            self._release()
        end = max(self._timeline.end, self._floor)
        return [*events, TranscriptEvent(TranscriptKind.END, start=end, end=end)]

    def speculate(self) -> None:
        self._require_open()
        self._guarded(self._speculate)

    def drop_speculation(self) -> None:
        self._require_open()
        self._drop_speculation()

    def set_grammar(self, phrases: Sequence[str] | None) -> None:
        self._require_open()
        grammar = normalize_grammar(phrases)
        if self._heard_speech():
            self._pending = grammar
            return
        self._pending = _Unset.UNSET
        self._switch_grammar(grammar)

    # -- for subclasses -----------------------------------------------------------------------

    @abstractmethod
    def _feed(self, pcm: bytes, first_sample: int) -> list[TranscriptEvent]:
        """Take audio whose first sample has stream index ``first_sample``."""

    @abstractmethod
    def _finish(self) -> list[TranscriptEvent]:
        """End the current utterance now: its FINAL, or nothing."""

    @abstractmethod
    def _heard_speech(self) -> bool:
        """Whether the current utterance already has a hypothesis (then a grammar change waits)."""

    @abstractmethod
    def _use_grammar(self, grammar: Grammar) -> None:
        """Decode from now on with ``grammar`` (called only between utterances)."""

    @abstractmethod
    def _release(self) -> None:
        """Give back native resources once the stream is closed or failed (may be called twice)."""

    def _speculate(self) -> None:
        """Start decoding the utterance so far, for ``_finish`` to reuse (streaming engines: nothing)."""
        return None

    def _drop_speculation(self) -> None:
        """Forget a speculative decoding: the utterance went on after it."""
        return None

    def _utterance_done(self) -> None:
        """Call after every utterance boundary (FINAL or not): a waiting grammar takes effect."""
        self._timeline.forget_before(self._timeline.samples)
        if self._pending is not _Unset.UNSET:
            grammar, self._pending = self._pending, _Unset.UNSET
            self._switch_grammar(grammar)

    def _final(self, words: Sequence[RawWord], confidence: float, text: str | None = None) -> TranscriptEvent:
        """A FINAL from engine words; times become stream seconds that never go backwards."""
        mapped = self._stream_words(words, self._floor)
        if mapped:
            start, end = mapped[0].start, mapped[-1].end
        else:
            start = end = max(self._timeline.end, self._floor)
        self._floor = max(self._floor, end)
        text = join_words(w.text for w in mapped) if text is None else text
        return TranscriptEvent(TranscriptKind.FINAL, text, start, end, _clip01(confidence), tuple(mapped))

    def _partial(self, words: Sequence[RawWord], text: str) -> TranscriptEvent:
        mapped = self._stream_words(words, self._floor)
        start = mapped[0].start if mapped else self._floor
        end = mapped[-1].end if mapped else start
        confidence = sum(w.confidence for w in mapped) / len(mapped) if mapped else 0.0
        return TranscriptEvent(TranscriptKind.PARTIAL, text, start, end, _clip01(confidence), tuple(mapped))

    def _snapped(self, words: Sequence[RawWord], confidence: float) -> TranscriptEvent:
        """A FINAL for free-text ``words`` under the current grammar: the closest phrases, or empty text.

        For engines without a runtime grammar (whisper; vosk models with a static HCLG graph).
        """
        assert self._grammar is not None
        chars = [char for word in words for char in _chars(word)]
        snap = snap_to_phrases("".join(c.text for c in chars), self._grammar)
        if snap is None or not chars:
            return self._final([], 0.0, text="")
        phrases = [
            RawWord(
                m.phrase,
                chars[m.start].start,
                chars[m.end - 1].end,
                m.score * sum(c.confidence for c in chars[m.start : m.end]) / (m.end - m.start),
            )
            for m in snap.matches
        ]
        return self._final(phrases, min(confidence, snap.score))

    def _stream_words(self, words: Sequence[RawWord], floor: float) -> list[Word]:
        out = []
        for w in words:
            start = max(self._timeline.time_at(w.start), floor)
            end = max(self._timeline.time_at(w.end), start)
            out.append(Word(w.text, start, end, _clip01(w.confidence)))
            floor = end
        return out

    # -- internals ----------------------------------------------------------------------------

    def _switch_grammar(self, grammar: Grammar) -> None:
        self._grammar = grammar
        self._use_grammar(grammar)

    def _require_open(self) -> None:
        if self._state is not _State.OPEN:
            detail = " (an engine call failed; open a new stream)" if self._state is _State.FAILED else ""
            raise ProtocolError(f"expected an open stream, got {self._state.value}{detail}")

    def _guarded(self, call: Callable[..., _R], *args: object) -> _R:
        """Run an engine call; if it raises, the stream is failed (never reused half-way)."""
        try:
            return call(*args)
        except BaseException:
            self._state = _State.FAILED
            self._release()
            raise


def _chars(word: RawWord) -> list[RawWord]:
    """``word`` in comparison form, one entry per character, sharing the word's time equally."""
    form = normalize_for_compare(word.text)
    step = (word.end - word.start) / max(1, len(form))
    return [
        RawWord(ch, word.start + i * step, word.start + (i + 1) * step, word.confidence) for i, ch in enumerate(form)
    ]


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


# ---------------------------------------------------------------------------------------------
# Async wrapper


@dataclass(slots=True)
class _Control:
    call: Callable[[], list[TranscriptEvent]]
    done: asyncio.Future[None]
    last: bool = False


class AsyncAsrStream:
    """Runs an ``AsrStream`` off the event loop, one call at a time, in order.

    ``push(frame)`` never blocks: when ``max_frames`` frames already wait, the frame is dropped and
    counted in ``dropped_frames`` (the timeline then shows a gap, as long as frames carry timestamps).
    ``flush()``, ``set_grammar()`` and ``close()`` queue behind the frames pushed before them and return
    once done. Events arrive by iterating (``async for event in stream``), ending after END.
    """

    def __init__(self, stream: AsrStream, *, max_frames: int = 100, executor: Executor | None = None) -> None:
        self._stream = stream
        self._executor = executor
        self._inbox: asyncio.Queue[AudioFrame | _Control] = asyncio.Queue(max_frames)
        self._events: asyncio.Queue[TranscriptEvent | BaseException] = asyncio.Queue()  # text, not audio
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._error: BaseException | None = None
        self.dropped_frames = 0

    def push(self, frame: AudioFrame) -> bool:
        """Queue ``frame`` for recognition; ``False`` if the queue was full and it was dropped."""
        self._require_open()
        self._ensure_worker()
        try:
            self._inbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped_frames += 1
            return False
        return True

    async def flush(self) -> None:
        await self._submit(self._stream.flush)

    async def set_grammar(self, phrases: Sequence[str] | None) -> None:
        def call() -> list[TranscriptEvent]:
            self._stream.set_grammar(phrases)
            return []

        await self._submit(call)

    async def close(self) -> None:
        """Recognise what is queued, finish the utterance, emit END and stop the worker."""
        self._require_open()
        self._closing = True
        await self._submit(self._stream.close, last=True, check=False)
        if self._task is not None:
            await self._task

    def __aiter__(self) -> AsyncIterator[TranscriptEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[TranscriptEvent]:
        while True:
            item = await self._events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.kind is TranscriptKind.END:
                return

    async def _submit(self, call: Callable[[], list[TranscriptEvent]], last: bool = False, check: bool = True) -> None:
        if check:
            self._require_open()
        self._ensure_worker()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._inbox.put(_Control(call, done, last))
        await done

    def _ensure_worker(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work(), name="asr-stream")

    def _require_open(self) -> None:
        if self._error is not None:
            raise ProtocolError("expected an open stream, got failed (an engine call failed)") from self._error
        if self._closing:
            raise ProtocolError("expected an open stream, got closed")

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._inbox.get()
            call = item.call if isinstance(item, _Control) else _bind(self._stream.accept, item)
            try:
                events = await loop.run_in_executor(self._executor, call)
            except Exception as err:
                self._fail(err, item)
                return
            for event in events:
                self._events.put_nowait(event)
            if isinstance(item, _Control):
                item.done.set_result(None)
                if item.last:
                    return

    def _fail(self, err: Exception, item: AudioFrame | _Control) -> None:
        self._error = err
        self._events.put_nowait(err)
        pending = [item]
        while not self._inbox.empty():
            pending.append(self._inbox.get_nowait())
        for waiting in pending:
            if isinstance(waiting, _Control) and not waiting.done.done():
                waiting.done.set_exception(ProtocolError(f"expected a working stream, got an engine error: {err}"))


_Events = list[TranscriptEvent]


def _bind(accept: Callable[[AudioFrame], _Events], frame: AudioFrame) -> Callable[[], _Events]:
    return lambda: accept(frame)
