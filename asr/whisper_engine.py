"""Utterance recognition with faster-whisper (CTranslate2): the only module that imports faster_whisper.

Whisper does not stream. A stream buffers the current utterance's audio and transcribes it on
``flush()`` (the VAD's speech end), about 1 s of CPU per utterance whatever its length (Whisper pads
every input to 30 s). ``accept()`` returns a FINAL only when the buffer reaches ``max_seconds``, so
the buffer is bounded and no audio is dropped.

Partials (for the live transcript and the barge-in decision) come from spare work only: a
speculation the caller talked on past (it ran anyway) and, when ``partial_every_s`` is set, every
that many seconds of speech a transcription of the utterance so far, started only while the engine
is transcribing nothing else. Each shows up as a PARTIAL at the first ``accept()`` after it is
done, if the utterance it read is still the current one. A grammar turn (yes/no, digits) gets none:
its text is snapped at the end. The periodic ones are off by default: one decode costs ~0.8 s of
CPU whatever the length (the 30 s padding), so on two cores a partial still running when the caller
stops held the final back by up to that much (speech end → text p50 1.47 s → 1.8-2.0 s in
``bench/turns.py``), a price for a screen only.

Speculation: ``speculate()`` (the speech path calls it at the caller's first short pause) starts
transcribing the audio buffered so far on the engine's own thread, while the VAD is still waiting
out its end-of-speech silence. ``flush()`` then takes that result (waiting for it if need be)
instead of transcribing again, unless ``drop_speculation()`` said the caller went on speaking; the
trailing silence left out of the speculative run carries no words. So the text is ready about the
VAD's hangover minus the pause sooner, and a continued utterance is transcribed whole at its end.

Decoding choices, measured on real Mandarin at 8 kHz μ-law (/work/shared/audio/real/zh) and the
espeak fixtures (numbers in the tests and the commit log):

- One temperature (0). Whisper's fallback re-decodes at higher temperatures when a result looks
  bad; here that took up to 25 s for a 4 s clip, which a telephone turn cannot wait.
- No initial prompt unless ``vocabulary`` is given. A shop-vocabulary prompt ("以下是普通话的电商客服
  对话：满减、优惠券、顺丰…") gained nothing on real speech (human-transcribed clips: CER 0.160 with
  and without), helped the espeak shop phrases a little (0.768 vs 0.829) but tripled the time per
  utterance (3.8 s vs 1.2 s) and doubled the empty results: with a prompt whisper base loops
  ("请问问问问…", "电池, 电池, …") and, when unsure, copies the prompt back ("发票人工客服人工客服" for
  转人工), which would be a false intent. A ", "-separated word list is worse still (whisper
  continues the list). So the prompt is opt-in, and its echoes are dropped (``_echoes``).
- Loops come as a segment of their own with ``no_speech_prob`` 0.6-0.7 and 20+ characters per
  second (real speech: ``no_speech_prob`` <= 0.3, < 8 characters per second), so such segments are
  dropped (``_is_hallucination``), and ``max_new_tokens`` caps what a loop can cost.
- Audio with no sound louder than ``silence_dbfs`` is not transcribed at all: Whisper invents
  sentences for silence ("字幕by索兰娅", "谢谢观看"); those, when they slip through, are dropped too.
- Output is Simplified Chinese without punctuation (OpenCC t2s; base writes some Traditional).

A grammar (``set_grammar``) cannot constrain Whisper's decoder. The transcript is snapped onto the
closest sequence of phrases (``asr.textnorm``); the phrases are kept out of the prompt, because
whisper base echoes its prompt when unsure and an echoed 是的 would confirm what nobody said. So
constrained turns (是/不是, digits) still give grammar words; no close phrase gives a FINAL with empty
text, like vosk's ``[unk]``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment
from scipy.signal import resample_poly

from asr.engine import BaseStream, Grammar, RawWord
from asr.models import whisper_dir_problems
from asr.textnorm import clean_text, is_han, join_words
from core.errors import ModelMissingError
from core.types import TranscriptEvent

log = logging.getLogger(__name__)

WHISPER_RATE = 16000
# A sentence listing words with 、 (", "-separated lists make whisper continue the list instead).
_PROMPT_HEAD = "以下是普通话的电商客服对话："
_MAX_PROMPT_CHARS = 120  # the prompt's tokens and max_new_tokens must fit Whisper's 448-token window
_MAX_NEW_TOKENS = 200

# When unsure, whisper base copies its prompt ("普通话满减优惠券退款物流订单号人工客服" for 不是，不对):
# a segment with these prompt fragments, or made mostly of three or more vocabulary words, is dropped.
_PROMPT_FRAGMENTS = ("以下是", "普通话", "电商客服", "客服对话")
_ECHO_MIN_WORDS = 3
_ECHO_MIN_SHARE = 0.6
# Whisper's well-known inventions for silence and noise (YouTube subtitle credits, outros).
_HALLUCINATION_MARKERS = ("字幕", "观看", "订阅", "点赞", "打赏", "栏目", "独播", "amara", "优优")
_LOOP = re.compile(r"(.{1,4}?)\1{4,}")  # one to four characters said five times in a row
_MAX_CHARS_PER_SECOND = 15.0
_MAX_NO_SPEECH_PROB = 0.6
_MAX_COMPRESSION_RATIO = 2.4

_MODELS: dict[tuple[Path, int], WhisperModel] = {}
_MODELS_LOCK = threading.Lock()


def load_model(model_dir: Path, threads: int = 2) -> WhisperModel:
    """The whisper model in ``model_dir``, loaded once per process (per thread count) and shared."""
    key = (Path(model_dir).expanduser().resolve(), threads)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _load(*key)
            _MODELS[key] = model
        return model


def _load(path: Path, threads: int) -> WhisperModel:
    problems = whisper_dir_problems(path)
    hint = "run `ivr models download whisper-base` or set IVR_WHISPER_MODEL=/path/to/dir"
    if problems:
        raise ModelMissingError(f"whisper model at {path} is unusable ({problems[0]}): {hint}")
    try:
        return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)
    except (RuntimeError, ValueError, OSError) as err:
        raise ModelMissingError(f"whisper could not load the model at {path} ({err}): {hint}") from None


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """Whisper's reading of one utterance; word times in seconds from the utterance's first sample."""

    words: tuple[RawWord, ...]
    confidence: float


class WhisperEngine:
    """A faster-whisper model and how to decode with it. Thread-safe (calls queue inside CTranslate2)."""

    name = "whisper"

    def __init__(
        self,
        model_dir: Path,
        vocabulary: Sequence[str] = (),
        threads: int = 2,
        *,
        beam_size: int = 5,
        max_seconds: float = 30.0,
        silence_dbfs: float = -50.0,
        partial_every_s: float | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.model = load_model(self.model_dir, threads)
        self.beam_size = beam_size
        self.max_seconds = max_seconds
        self.silence_dbfs = silence_dbfs
        self.vocabulary = tuple(dict.fromkeys(w.strip() for w in vocabulary if w.strip()))
        self.partial_every_s = partial_every_s
        self._speculator = ThreadPoolExecutor(1, thread_name_prefix="whisper-speculate")
        self._lock = threading.Lock()
        self._busy = 0  # transcriptions under way in any thread, or waiting for the speculation thread

    def warm_up(
        self, audio: bytes = b"", rate: int = 8000, count: int | None = None, stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Nothing to warm: a new process's first decode measured as fast as later ones (0.80 vs 0.78 s)."""
        return 0

    @property
    def idle(self) -> bool:
        """No transcription is under way or queued (a partial may use the CPU without delaying one)."""
        return self._busy == 0

    def _count(self, step: int) -> None:
        with self._lock:
            self._busy += step

    def speculate(self, samples: np.ndarray, rate: int) -> Future[Hypothesis | None]:
        """``transcribe(samples, rate)`` started on the engine's speculation thread."""
        self._count(1)
        future = self._speculator.submit(self.transcribe, samples, rate)
        future.add_done_callback(lambda _: self._count(-1))
        return future

    def new_stream(self, sample_rate: int = 8000, grammar: Sequence[str] | None = None) -> WhisperStream:
        return WhisperStream(self, sample_rate, grammar)

    def prompt(self) -> str | None:
        """The initial prompt: the call's domain and the vocabulary as one sentence (None: no vocabulary).

        Grammar phrases stay out of it: an echoed 是的 in a yes/no turn would confirm what nobody said.
        """
        if not self.vocabulary:
            return None
        words = list(self.vocabulary)
        while len(words) > 1 and len(_PROMPT_HEAD) + len("、".join(words)) + 1 > _MAX_PROMPT_CHARS:
            words.pop()
        return f"{_PROMPT_HEAD}{'、'.join(words)}。"

    def transcribe(self, samples: np.ndarray, rate: int) -> Hypothesis | None:
        """Recognise one utterance of int16 ``samples`` at ``rate`` Hz; None when nothing was said."""
        self._count(1)
        try:
            return self._transcribe(samples, rate)
        finally:
            self._count(-1)

    def _transcribe(self, samples: np.ndarray, rate: int) -> Hypothesis | None:
        if _loudest_dbfs(samples, rate) < self.silence_dbfs:
            return None
        audio = _to_whisper_rate(samples, rate)
        seconds = len(audio) / WHISPER_RATE
        prompt = self.prompt()
        segments, _info = self.model.transcribe(
            audio,
            language="zh",
            task="transcribe",
            beam_size=self.beam_size,
            temperature=0.0,
            initial_prompt=prompt,
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,
            max_new_tokens=min(_MAX_NEW_TOKENS, 16 + int(16 * seconds)),
        )
        prompted = prompt is not None
        kept = [s for s in segments if not _is_hallucination(s) and not (prompted and _echoes(s.text, self.vocabulary))]
        words = tuple(_words(kept, seconds))
        if not words:
            return None
        return Hypothesis(words, _confidence(kept))


@dataclass(frozen=True, slots=True)
class _Speculation:
    """A transcription started at a pause: of the buffer from sample ``start``, ``samples`` long."""

    result: Future[Hypothesis | None]
    start: int
    samples: int


class WhisperStream(BaseStream):
    """One caller's audio through whisper: buffer an utterance, transcribe it when it ends."""

    def __init__(self, engine: WhisperEngine, sample_rate: int, grammar: Sequence[str] | None) -> None:
        super().__init__(sample_rate, grammar)
        self._engine = engine
        self._limit = max(1, int(engine.max_seconds * sample_rate))
        self._chunks: list[np.ndarray] = []
        self._buffered = 0
        self._start: int | None = None  # stream sample index of the buffer's first sample
        self.auto_finals = 0  # utterances cut because the buffer reached max_seconds
        self._speculation: _Speculation | None = None
        self.speculations = 0  # speculative transcriptions started
        self.reused = 0  # of them, taken as the utterance's result (no second run)
        self._shown: _Speculation | None = None  # a transcription whose text becomes a PARTIAL when done
        self._shown_at = 0  # buffered samples when the last partial transcription began
        self.partials = 0  # PARTIAL events given

    def _feed(self, pcm: bytes, first_sample: int) -> list[TranscriptEvent]:
        samples = np.frombuffer(pcm, dtype="<i2")
        events: list[TranscriptEvent] = []
        while len(samples):
            if self._start is None:
                self._start = first_sample
            room = self._limit - self._buffered
            self._chunks.append(samples[:room])
            self._buffered += min(room, len(samples))
            first_sample += min(room, len(samples))
            samples = samples[room:]
            if self._buffered >= self._limit:
                self.auto_finals += 1
                events += self._finish()
                self._utterance_done()
        return events + self._partials()

    def _partials(self) -> list[TranscriptEvent]:
        """The PARTIAL of a finished transcription of this utterance; maybe start the next one."""
        events: list[TranscriptEvent] = []
        shown = self._shown
        if shown is not None and shown.result.done():
            self._shown = None
            hypothesis = None if shown.result.cancelled() or shown.result.exception() else shown.result.result()
            if hypothesis is not None and shown.start == self._start and not self.grammar:
                words = [self._raw(w, shown.start) for w in hypothesis.words]
                events.append(self._partial(words, join_words(w.text for w in words)))
                self.partials += 1
        every = self._engine.partial_every_s
        due = every is not None and self._buffered - self._shown_at >= every * self.sample_rate
        if due and self._shown is None and self._start is not None and not self.grammar and self._engine.idle:
            self._shown_at = self._buffered
            samples = np.concatenate(self._chunks)
            self._shown = _Speculation(self._engine.speculate(samples, self.sample_rate), self._start, len(samples))
        return events

    def _raw(self, word: RawWord, start: int) -> RawWord:
        """A hypothesis word (seconds from the utterance's first sample) in stream samples."""
        return RawWord(
            word.text, start + word.start * self.sample_rate, start + word.end * self.sample_rate, word.confidence
        )

    def _speculate(self) -> None:
        self._drop_speculation()
        if self._start is None:
            return
        samples = np.concatenate(self._chunks)
        self._speculation = _Speculation(self._engine.speculate(samples, self.sample_rate), self._start, len(samples))
        self.speculations += 1

    def _drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is None:
            return
        if self._shown is None and speculation.result.running():  # it runs on: its text is a partial
            self._shown = speculation
        else:
            speculation.result.cancel()  # only stops it if it has not begun

    def _finish(self) -> list[TranscriptEvent]:
        speculation, self._speculation = self._speculation, None
        if self._start is None:
            return []
        samples, start = np.concatenate(self._chunks), self._start
        self._chunks, self._buffered, self._start = [], 0, None
        self._forget_partial()
        if speculation is not None and speculation.start == start and speculation.samples <= len(samples):
            hypothesis = speculation.result.result()
            self.reused += 1
        else:
            hypothesis = self._engine.transcribe(samples, self.sample_rate)
        if hypothesis is None:
            return []
        words = [self._raw(w, start) for w in hypothesis.words]
        if self.grammar:
            return [self._snapped(words, hypothesis.confidence)]
        return [self._final(words, hypothesis.confidence)]

    def _heard_speech(self) -> bool:
        if not self._chunks:
            return False
        return _loudest_dbfs(np.concatenate(self._chunks), self.sample_rate) >= self._engine.silence_dbfs

    def _use_grammar(self, grammar: Grammar) -> None:
        """Nothing to switch: the grammar in force when an utterance ends is what it is snapped onto."""

    def _forget_partial(self) -> None:
        if self._shown is not None:
            self._shown.result.cancel()
        self._shown, self._shown_at = None, 0

    def _release(self) -> None:
        self._drop_speculation()
        self._forget_partial()
        self._chunks, self._buffered, self._start = [], 0, None


def _to_whisper_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    audio = samples.astype(np.float32) / 32768.0
    if rate == WHISPER_RATE:
        return audio
    g = math.gcd(WHISPER_RATE, rate)
    return resample_poly(audio, WHISPER_RATE // g, rate // g).astype(np.float32)


def _loudest_dbfs(samples: np.ndarray, rate: int, window_seconds: float = 0.02) -> float:
    """The RMS level of the loudest 20 ms window, in dBFS (-inf for digital silence)."""
    if not len(samples):
        return -math.inf
    size = min(len(samples), max(1, int(rate * window_seconds)))
    frames = samples[: len(samples) - len(samples) % size].astype(np.float64).reshape(-1, size)
    rms = float(np.sqrt((frames**2).mean(axis=1)).max())
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


def _is_hallucination(segment: Segment) -> bool:
    """Whether a whisper segment is invented rather than heard (see the module docstring)."""
    text = clean_text(segment.text)
    if not text:
        return True
    if segment.compression_ratio > _MAX_COMPRESSION_RATIO:
        return True
    no_speech = segment.no_speech_prob
    if no_speech > _MAX_NO_SPEECH_PROB:
        return True
    seconds = max(0.1, segment.end - segment.start)
    if sum(map(is_han, text)) / seconds > _MAX_CHARS_PER_SECOND or _LOOP.search(text):
        return True
    return no_speech > 0.2 and any(marker in text.lower() for marker in _HALLUCINATION_MARKERS)


def _echoes(text: str, vocabulary: Sequence[str]) -> bool:
    """Whether a segment is the prompt copied back rather than speech (see _PROMPT_FRAGMENTS)."""
    text = clean_text(text)
    if any(fragment in text for fragment in _PROMPT_FRAGMENTS):
        return True
    rest, hits = text, 0
    for word in sorted(vocabulary, key=len, reverse=True):
        hits += rest.count(word)
        rest = rest.replace(word, "")
    return hits >= _ECHO_MIN_WORDS and len(rest) <= (1 - _ECHO_MIN_SHARE) * len(text)


def _words(segments: Iterable[Segment], seconds: float) -> Iterable[RawWord]:
    for segment in segments:
        for word in segment.words or ():
            text = clean_text(word.word)
            if text:
                start = min(max(0.0, float(word.start)), seconds)
                yield RawWord(text, start, min(max(start, float(word.end)), seconds), float(word.probability))


def _confidence(segments: Sequence[Segment]) -> float:
    """exp(mean token log-probability) over the kept segments, 0..1."""
    weights = [max(1, len(s.tokens)) for s in segments]
    if not weights:
        return 0.0
    logprob = sum(w * s.avg_logprob for w, s in zip(weights, segments, strict=True))
    return min(1.0, max(0.0, math.exp(logprob / sum(weights))))
