"""The speech path of a call: caller audio → VAD → streaming ASR → prosody → ``Utterance``.

One place turns call audio into utterances, for ``ivr transcribe``, ``ivr call --audio`` and live
Twilio/SIP calls. ``SpeechPath`` is the synchronous core (one per call, not thread-safe);
``voice.speech_async.AsyncSpeechPath`` runs it off the event loop; ``transcribe`` does a whole recording.

How audio reaches the recogniser (the decisions):

* **The VAD gates the ASR.** Only VAD segments are fed to the recogniser: from ``preroll_ms``
  before the segment's onset (taken from a bounded buffer of recent audio, because the VAD decides
  "speech" ~200 ms after the onset) to the end of its hangover. Silence between turns never reaches
  the engine, so whisper never sees minutes of hold music or line hiss and vosk spends no CPU on
  it. Frames go to the engine with their call timestamps, so the engine's times (words, finals)
  are call times and a skipped silence is a gap in its timeline.
* **One Utterance per VAD segment.** On ``SpeechEnded`` the path calls ``stream.flush()``. A
  FINAL that the engine emits on its own inside a segment (vosk's endpointer after a short pause,
  whisper's ``max_seconds``) is kept with the segment it came from and joined with the segment's
  later finals into one Utterance, emitted at the VAD end: the caller's turn is what the VAD calls
  a turn. No FINAL can span a VAD end because the engine is flushed at every end before it hears
  another sample, and a FINAL cannot precede its segment because the engine hears nothing outside
  segments. A FINAL arriving when no segment is open (only possible from ``close()`` at the end)
  still becomes an Utterance of its own: text is never dropped. Empty finals (speech that matched
  nothing) give no Utterance (counted in ``stats.empty_segments``).
* **Speculation at the first short pause** (live calls: ``pause_ms``; off for whole recordings).
  When an open segment has been silent for ``pause_ms`` (shorter than the VAD's hangover), the
  recogniser is fed everything so far and told ``speculate()``: whisper starts transcribing then,
  so its text is ready about the rest of the hangover sooner; speech resuming in that segment
  calls ``drop_speculation()`` (the whole utterance is transcribed at its end), and the next pause
  speculates again. vosk streams: nothing to do.
* **Times.** Stream seconds from the first frame's ``timestamp``. A frame whose timestamp lies
  later than where the previous frame ended (dropped frames) is preceded by silence up to that
  timestamp (at most ``max_gap_s``; counted in ``stats.gap_seconds``), so VAD and ASR times stay
  call times. An earlier or equal timestamp (including the default 0.0 on every frame) continues
  the stream.
* **Utterance fields.** ``start``/``end``: the VAD's speech edges (energy-refined, see
  ``asr.vad``). Word times are clamped inside them: whisper's timestamps at the edges are loose
  (a first word "starting" in the pre-roll silence is common), the VAD's edges are where sound is.
  ``confidence``: the finals' confidences weighted by their text length. ``prosody``: measured on
  the segment's audio (``SpeechEnded.audio``) with the finals' words and text, then ``rel_*`` from
  the call's ``ProsodyTracker``.

Events out of ``push``/``finish``, in stream order: ``SpeechStarted`` (for barge-in), PARTIAL
``TranscriptEvent`` (text of the whole segment so far: finals already made plus the engine's
partial), ``SpeechEnded`` (the VAD closed a segment, with or without text) and ``Utterance``.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from asr.engine import AsrEngine, AsrStream
from asr.prosody import ProsodyTracker, measure
from asr.textnorm import join_words
from asr.vad import VadSegmenter
from core.errors import AudioFormatError, ProtocolError
from core.types import (
    PCM_SAMPLE_WIDTH,
    AudioFrame,
    SpeechEnded,
    SpeechStarted,
    TranscriptEvent,
    TranscriptKind,
    Utterance,
    Word,
)
from voice.wav import to_rate

SpeechEvent = SpeechStarted | SpeechEnded | TranscriptEvent | Utterance


TELEPHONE_RATE = 8000
WIDEBAND_RATE = 16000


@dataclass(slots=True)
class SpeechStats:
    """Running counters of one speech path (mutable; read them for metrics)."""

    frames: int = 0  # frames pushed
    segments: int = 0  # VAD segments closed
    utterances: int = 0  # Utterances emitted
    empty_segments: int = 0  # segments whose finals had no text (or that had no final)
    orphan_finals: int = 0  # finals with text that arrived outside any segment
    asr_seconds: float = 0.0  # audio fed to the recogniser
    gap_seconds: float = 0.0  # silence inserted where frame timestamps skipped ahead
    history_trimmed_seconds: float = 0.0  # recent audio forgotten by the bounded buffer


class _Recent:
    """The last ``max_samples`` samples of the call, addressable by absolute sample index."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self._buf = bytearray()
        self.first = 0  # absolute sample index of _buf[0]

    @property
    def end(self) -> int:
        return self.first + len(self._buf) // PCM_SAMPLE_WIDTH

    def append(self, pcm: bytes) -> int:
        """Add ``pcm``; returns how many old samples were forgotten to stay within the bound."""
        self._buf += pcm
        excess = len(self._buf) // PCM_SAMPLE_WIDTH - self.max_samples
        if excess <= 0:
            return 0
        del self._buf[: excess * PCM_SAMPLE_WIDTH]
        self.first += excess
        return excess

    def slice(self, start: int, end: int) -> bytes:
        """Samples ``start .. end-1`` (clamped to what is still held)."""
        lo, hi = max(start, self.first) - self.first, min(end, self.end) - self.first
        return bytes(self._buf[lo * PCM_SAMPLE_WIDTH : hi * PCM_SAMPLE_WIDTH]) if hi > lo else b""


@dataclass(slots=True)
class _Segment:
    """A VAD segment in progress and the finals the engine produced for it."""

    start: float
    finals: list[TranscriptEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return join_words(f.text for f in self.finals)


class _State(enum.Enum):
    OPEN = "open"
    FINISHED = "finished"
    CLOSED = "closed"
    FAILED = "failed"  # the VAD or the engine raised mid-way: the path is not reused


class SpeechPath:
    """One call's audio → ``SpeechEvent``s. Synchronous and blocking: run it in an executor.

    ``push`` takes PCM16 frames of any length at ``sample_rate`` (8000 or 16000; 32000 and 48000
    work with the VAD too); ``finish`` ends the stream and returns the last events; ``close``
    releases the recogniser without results. ``vad_options`` go to ``VadSegmenter`` (``frame_ms``,
    ``hangover_ms``, ``preroll_ms``, ...). ``tracker`` lets several paths share one call baseline.
    The recogniser is fed in chunks of ``asr_chunk_ms`` (vosk spends ~30 % more CPU on 20 ms
    chunks than on 100 ms ones, measured with the Korean model); partials lag by at most that.
    """

    def __init__(
        self,
        engine: AsrEngine,
        sample_rate: int = TELEPHONE_RATE,
        vad_aggressiveness: int = 2,
        *,
        grammar: Sequence[str] | None = None,
        tracker: ProsodyTracker | None = None,
        history_s: float = 40.0,
        max_gap_s: float = 5.0,
        asr_chunk_ms: int = 100,
        pause_ms: int | None = None,
        vad_options: dict[str, object] | None = None,
    ) -> None:
        options = dict(vad_options or {})
        self._vad = VadSegmenter(sample_rate, vad_aggressiveness, **options)  # type: ignore[arg-type]
        preroll_ms = int(options.get("preroll_ms", 200))  # type: ignore[call-overload]
        max_utterance_s = float(options.get("max_utterance_s", 30.0))  # type: ignore[arg-type]
        if history_s < max_utterance_s + 2.0:
            raise ValueError(f"history_s must cover max_utterance_s + 2 s = {max_utterance_s + 2.0}, got {history_s}")
        self.sample_rate = sample_rate
        self.stats = SpeechStats()
        self.tracker = tracker if tracker is not None else ProsodyTracker()
        self._piece = sample_rate * self._vad.frame_ms // 1000  # samples per VAD frame
        self._preroll = sample_rate * preroll_ms // 1000
        self._chunk = max(1, sample_rate * asr_chunk_ms // 1000)
        self._max_gap = int(max_gap_s * sample_rate)
        self._recent = _Recent(int(history_s * sample_rate))
        self._stream: AsrStream = engine.new_stream(sample_rate=sample_rate, grammar=grammar)
        self._state = _State.OPEN
        self._origin: float | None = None
        self._samples = 0  # samples taken so far (gaps filled included)
        self._rest = b""  # less than one VAD frame, waiting for more
        self._fed = 0  # absolute sample index up to which the recogniser has been fed
        self._segment: _Segment | None = None
        self._pause_ms = pause_ms
        self._speculating = False  # the recogniser was told speculate() in this pause
        # Told (in the pushing thread) when the VAD closes a segment, before its text is recognised:
        # a live call can let the caller know it heard them while a slow recogniser works.
        self.on_segment_end: Callable[[SpeechEnded], None] | None = None

    # -- public ---------------------------------------------------------------------------------

    @property
    def in_speech(self) -> bool:
        """True between a SpeechStarted and its SpeechEnded."""
        return self._segment is not None

    def push(self, frame: AudioFrame) -> list[SpeechEvent]:
        """Feed a chunk of any length; return the events it completes, in order.

        A frame at the wrong rate or with an odd byte count is an ``AudioFormatError`` and changes
        nothing, so the stream can go on.
        """
        self._require(_State.OPEN, "push")
        if frame.sample_rate != self.sample_rate:
            raise AudioFormatError(f"expected {self.sample_rate} Hz audio, got {frame.sample_rate} Hz")
        if len(frame.pcm) % PCM_SAMPLE_WIDTH:
            raise AudioFormatError(f"expected whole 16-bit samples, got {len(frame.pcm)} bytes")
        self.stats.frames += 1
        data = self._rest + self._gap_before(frame) + frame.pcm
        step = self._piece * PCM_SAMPLE_WIDTH
        whole = len(data) // step * step
        self._rest = data[whole:]
        events: list[SpeechEvent] = []
        with self._failing():
            for offset in range(0, whole, step):
                events.extend(self._step(data[offset : offset + step]))
        return events

    def finish(self) -> list[SpeechEvent]:
        """End of the call's audio: close an open segment, flush and close the recogniser."""
        self._require(_State.OPEN, "finish")
        events: list[SpeechEvent] = []
        with self._failing():
            if self._rest:  # less than one VAD frame: too short for the VAD, but the ASR may use it
                self._take(self._rest)
                self._rest = b""
            for ended in self._vad.flush():
                if isinstance(ended, SpeechEnded):
                    events.extend(self._feed_to(self._recent.end))
                    events.extend(self._close_segment(ended))
            self._state = _State.FINISHED
            for event in self._stream.close():
                events.extend(self._on_asr(event))
        self._state = _State.CLOSED
        return events

    def close(self) -> None:
        """Release the recogniser without waiting for results (a hung-up call). Safe to repeat."""
        if self._state in (_State.CLOSED, _State.FAILED):
            return
        self._state = _State.CLOSED
        with contextlib.suppress(ProtocolError):
            self._stream.close()

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        """Any error inside leaves the path failed and its recogniser released: never reused half-way."""
        try:
            yield
        except BaseException:
            self._state = _State.FAILED
            with contextlib.suppress(Exception):
                self._stream.close()
            raise

    def set_grammar(self, phrases: Sequence[str] | None) -> None:
        """Constrain recognition to ``phrases`` (an ``Ask``'s ``expect``); ``None``: no constraint."""
        self._require(_State.OPEN, "set_grammar")
        self._stream.set_grammar(phrases)

    # -- one VAD frame ----------------------------------------------------------------------------

    def _step(self, pcm: bytes) -> list[SpeechEvent]:
        first = self._take(pcm)
        piece_end = first + len(pcm) // PCM_SAMPLE_WIDTH
        events: list[SpeechEvent] = []
        for vad_event in self._vad.push(AudioFrame(pcm, self.sample_rate, self._time(first))):
            if isinstance(vad_event, SpeechEnded):
                audio = vad_event.audio
                events.extend(self._feed_to(min(piece_end, self._index(audio.timestamp + audio.duration))))
                events.extend(self._close_segment(vad_event))
            else:
                events.append(vad_event)
                self._segment = _Segment(vad_event.at)
                self._fed = max(self._fed, self._index(vad_event.at) - self._preroll, self._recent.first)
        if self._segment is not None and piece_end - self._fed >= self._chunk:
            events.extend(self._feed_to(piece_end))
        if self._segment is not None:
            events.extend(self._speculation(piece_end))
        return events

    def _speculation(self, piece_end: int) -> list[SpeechEvent]:
        """At the segment's first ``pause_ms`` of silence: speculate; speech again: drop it."""
        silent = self._vad.silent_ms
        if silent == 0 and self._speculating:
            self._speculating = False
            self._stream.drop_speculation()
        elif self._pause_ms is not None and silent >= self._pause_ms and not self._speculating:
            self._speculating = True
            events = self._feed_to(piece_end)
            self._stream.speculate()
            return events
        return []

    def _take(self, pcm: bytes) -> int:
        """Keep ``pcm`` in the recent-audio buffer; returns the sample index of its first sample."""
        if self._origin is None:
            self._origin = 0.0
        first = self._samples
        self._samples += len(pcm) // PCM_SAMPLE_WIDTH
        self.stats.history_trimmed_seconds += self._recent.append(pcm) / self.sample_rate
        return first

    def _gap_before(self, frame: AudioFrame) -> bytes:
        """Silence for the audio missing between the previous frame and ``frame`` (by timestamps)."""
        if self._origin is None:
            self._origin = frame.timestamp
            return b""
        missing = round((frame.timestamp - self._time(self._samples + len(self._rest) // 2)) * self.sample_rate)
        if missing <= self.sample_rate // 200:  # within 5 ms: contiguous (or no timestamps at all)
            return b""
        missing = min(missing, self._max_gap)
        self.stats.gap_seconds += missing / self.sample_rate
        return bytes(missing * PCM_SAMPLE_WIDTH)

    # -- recogniser -------------------------------------------------------------------------------

    def _feed_to(self, end: int) -> list[SpeechEvent]:
        """Feed the recogniser the recent audio from where it stopped up to sample ``end``."""
        pcm = self._recent.slice(self._fed, end)
        if not pcm:
            return []
        start = max(self._fed, self._recent.first)
        self._fed = start + len(pcm) // PCM_SAMPLE_WIDTH
        self.stats.asr_seconds += len(pcm) / PCM_SAMPLE_WIDTH / self.sample_rate
        events: list[SpeechEvent] = []
        for event in self._stream.accept(AudioFrame(pcm, self.sample_rate, self._time(start))):
            events.extend(self._on_asr(event))
        return events

    def _on_asr(self, event: TranscriptEvent) -> list[SpeechEvent]:
        segment = self._segment
        if event.kind is TranscriptKind.PARTIAL:
            if segment is None:
                return []
            return [replace(event, text=join_words((segment.text, event.text)))]
        if event.kind is not TranscriptKind.FINAL:
            return []  # END (the path reports its own end) and START (the VAD's job)
        if segment is not None:
            segment.finals.append(event)
            return []
        if not event.text.strip():
            return []
        self.stats.orphan_finals += 1
        audio = self._audio(self._index(event.start) - self._preroll, self._index(event.end) + self._preroll)
        utterance = self._utterance([event], event.start, event.end, audio, clamp=False)
        return [utterance] if utterance is not None else []

    def _close_segment(self, ended: SpeechEnded) -> list[SpeechEvent]:
        self._speculating = False
        if self.on_segment_end is not None:
            self.on_segment_end(ended)
        for event in self._stream.flush():
            self._on_asr(event)
        segment = self._segment or _Segment(ended.start)
        self._segment = None
        self.stats.segments += 1
        utterance = self._utterance(segment.finals, ended.start, ended.end, ended.audio, clamp=True)
        return [ended] if utterance is None else [ended, utterance]

    def _utterance(
        self, finals: list[TranscriptEvent], start: float, end: float, audio: AudioFrame, *, clamp: bool
    ) -> Utterance | None:
        said = [f for f in finals if f.text.strip()]
        if not said:
            self.stats.empty_segments += 1
            return None
        text = join_words(f.text for f in said)
        words: tuple[Word, ...] = tuple(w for f in said for w in f.words)
        weight = sum(len(f.text) for f in said)
        confidence = sum(f.confidence * len(f.text) for f in said) / weight
        if clamp:
            words = tuple(_clamp(w, start, end) for w in words)
        elif words:
            start, end = min(start, words[0].start), max(end, words[-1].end)
        prosody = self.tracker.update(measure(audio, words, text))
        self.stats.utterances += 1
        return Utterance(text, start, end, confidence, words, prosody)

    # -- helpers ----------------------------------------------------------------------------------

    def _audio(self, start: int, end: int) -> AudioFrame:
        start = max(start, self._recent.first)
        return AudioFrame(self._recent.slice(start, end), self.sample_rate, self._time(start))

    def _time(self, index: int) -> float:
        return (self._origin or 0.0) + index / self.sample_rate

    def _index(self, time: float) -> int:
        return round((time - (self._origin or 0.0)) * self.sample_rate)

    def _require(self, state: _State, action: str) -> None:
        if self._state is not state:
            raise ProtocolError(f"expected an {state.value} speech path for {action}(), got {self._state.value}")


def _clamp(word: Word, start: float, end: float) -> Word:
    """``word`` with its times moved inside ``start .. end``."""
    lo = min(max(word.start, start), end)
    return replace(word, start=lo, end=min(max(word.end, lo), end))


def pick_rate(recording_rate: int, rate: int | None = None) -> int:
    """The rate to recognise a recording at: ``rate`` if given, else 16 kHz when it has it, else 8 kHz."""
    if rate is not None:
        return rate
    return WIDEBAND_RATE if recording_rate >= WIDEBAND_RATE else TELEPHONE_RATE


def transcribe(
    engine: AsrEngine,
    frame: AudioFrame,
    *,
    rate: int | None = None,
    vad_aggressiveness: int = 2,
    tracker: ProsodyTracker | None = None,
) -> list[Utterance]:
    """The utterances of a whole recording, as a call would hear them. Blocks: run in an executor.

    ``rate`` is the rate VAD and ASR run at. ``None`` (the default) keeps what the recording can
    give: 16 kHz when it has at least 16 kHz, else 8 kHz. ``rate=8000`` hears it as a telephone
    line does (the benchmarks use this to measure telephone-band accuracy).
    """
    rate = pick_rate(frame.sample_rate, rate)
    audio = to_rate(replace(frame, timestamp=0.0), rate)
    path = SpeechPath(engine, rate, vad_aggressiveness, tracker=tracker)
    try:
        events = path.push(audio) + path.finish()
    finally:
        path.close()
    return [e for e in events if isinstance(e, Utterance)]
