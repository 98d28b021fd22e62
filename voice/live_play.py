"""Reply audio of a live call: sentences synthesised ahead, sent paced in real time, with marks.

``Voice`` turns a reply into ``SentenceAudio`` one sentence ahead of playback (fixed prompts come
from the cache rendered at start-up; the rest is synthesised in an executor, so the first sentence
plays while later ones are still being made). ``Playback`` sends one reply's 20 ms frames to the
wire no more than ``lead_s`` ahead of real time, a ``mark`` after each sentence, and can be paused,
rewound by what the far end dropped on ``clear``, resumed (a backchannel) and cancelled (a
barge-in); it records what was sent of each sentence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

from core.types import AudioFrame
from voice.codec import ulaw_to_pcm16
from voice.tts import PromptCache, SentenceAudio, Synthesizer
from voice.tts_engine import SynthesisError
from voice.tts_text import split_sentences

log = logging.getLogger(__name__)
REPLY_RATE = 8000


class Timebase(Protocol):
    """The call's time: ``now()`` in seconds and ``sleep``; tests pass a virtual one."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTime:
    """The event loop's clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Voice(Protocol):
    """A reply's sentences as telephone audio, produced ahead of playback."""

    def sentences(self, sentences: list[str]) -> AsyncIterator[SentenceAudio]: ...


class CachedVoice:
    """espeak-ng in ``executor``, one sentence ahead; sentences in ``cache`` cost nothing."""

    def __init__(self, synthesizer: Synthesizer, cache: PromptCache, executor: Executor | None = None) -> None:
        self.synthesizer, self.cache, self.executor = synthesizer, cache, executor

    async def sentences(self, sentences: list[str]) -> AsyncIterator[SentenceAudio]:
        loop = asyncio.get_running_loop()
        ahead: list[asyncio.Future[SentenceAudio]] = []

        def start(text: str) -> None:
            ahead.append(loop.run_in_executor(self.executor, self._audio, text))

        try:
            if sentences:
                start(sentences[0])
            for index in range(len(sentences)):
                if index + 1 < len(sentences):
                    start(sentences[index + 1])
                yield await ahead.pop(0)
        finally:
            for future in ahead:
                future.cancel()

    def _audio(self, text: str) -> SentenceAudio:
        frames = self.cache.get(text)
        if frames is not None:
            return SentenceAudio(text, frames)
        try:
            return self.synthesizer.sentence_audio(text)
        except SynthesisError as err:  # one sentence unsaid rather than the whole reply lost
            log.error("speech synthesis failed: %s", err)
            return SentenceAudio(text, ())


def prompt_sentences(texts: Iterable[str]) -> list[str]:
    """Every sentence of ``texts`` as the reply splitter cuts them (the cache is keyed by sentence)."""
    return [s for text in texts for s in split_sentences(text)]


class PlaybackWire(Protocol):
    async def send_audio(self, frame: AudioFrame) -> None: ...

    async def mark(self, name: str) -> None: ...


@dataclass(slots=True)
class SentencePlay:
    text: str
    mark: str
    frames: int  # frames in the sentence
    sent: int = 0  # frames sent so far
    started_at: float | None = None  # when its first frame was sent
    heard: bool = False  # its mark came back: the caller heard it whole


@dataclass(slots=True)
class Playback:
    """One reply on its way to the caller (see the module docstring)."""

    wire: PlaybackWire
    time: Timebase
    reply_id: str
    frame_s: float = 0.02
    lead_s: float = 0.04
    on_first_frame: Callable[[float], None] | None = None
    answers: object | None = None  # the caller turn this reply answers (None: a prompt of our own)
    sentences: list[SentencePlay] = field(default_factory=list)
    _resume: asyncio.Event = field(default_factory=asyncio.Event)
    _origin: float | None = None  # when frame 0 of the reply is due
    _frames_sent: int = 0

    def __post_init__(self) -> None:
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    @property
    def current(self) -> SentencePlay | None:
        """The sentence being sent (or the last one sent)."""
        return self.sentences[-1] if self.sentences else None

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        if self.paused:
            self._origin = None  # pacing restarts from now
            self._resume.set()

    def sentence_for_mark(self, name: str) -> SentencePlay | None:
        return next((s for s in self.sentences if s.mark == name), None)

    def rewind_unplayed(self) -> int:
        """The far end dropped what it had not played yet (``clear``): send those frames again.

        Frames go out at most ``lead_s`` ahead of real time, so at most that much of the current
        sentence is taken back; returns how many frames.
        """
        play = self.current
        if play is None or self._origin is None or play.sent >= play.frames:
            return 0  # a sentence sent whole: its mark is out, the far end returns it on ``clear``
        played = max(0, int((self.time.now() - self._origin) / self.frame_s + 1e-6))
        back = min(max(0, self._frames_sent - played), play.sent)
        play.sent -= back
        self._frames_sent -= back
        self._origin = None  # pacing restarts when the reply resumes
        return back

    async def play(self, audio: AsyncIterator[SentenceAudio]) -> None:
        """Send every sentence of ``audio``; returns when the last frame and mark are sent."""
        async for sentence in audio:
            play = SentencePlay(sentence.text, f"{self.reply_id}.{len(self.sentences)}", len(sentence.frames))
            self.sentences.append(play)
            while play.sent < play.frames:
                await self._send(play, sentence.frames)
            await self.wire.mark(play.mark)

    async def _send(self, play: SentencePlay, frames: tuple[bytes, ...]) -> None:
        """Send the sentence's next frame when it is due (``play.sent`` may be rewound meanwhile)."""
        await self._resume.wait()
        now = self.time.now()
        if self._origin is None:
            self._origin = now - self._frames_sent * self.frame_s
        due = self._origin + self._frames_sent * self.frame_s - self.lead_s
        if due > now:
            await self.time.sleep(due - now)
            await self._resume.wait()
        if play.started_at is None:
            play.started_at = self.time.now()
        if self._frames_sent == 0 and self.on_first_frame is not None:
            self.on_first_frame(self.time.now())
        ulaw = frames[play.sent]
        await self.wire.send_audio(AudioFrame(ulaw_to_pcm16(ulaw), REPLY_RATE))
        play.sent += 1
        self._frames_sent += 1
