"""Test doubles for the live core: virtual time, a wire that records, scripted speech events.

``VirtualTime`` only moves when the test advances it, so end-of-turn waits, barge-in windows and
pacing are driven without sleeping. ``settle`` lets executor work (the dialog) finish in real time
while virtual time stands still.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from core.types import AudioFrame, SpeechEnded
from voice.live import LiveEvent
from voice.tts import SentenceAudio


class VirtualTime:
    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(seconds, 0.0), next(self._seq), future))
        await future

    async def advance(self, seconds: float, step: float = 0.01) -> None:
        """Move time forward by ``seconds`` in ``step``s, waking sleepers in order and letting tasks run."""
        target = self.t + seconds
        while self.t < target - 1e-9:
            self.t = min(target, self.t + step)
            while self._sleepers and self._sleepers[0][0] <= self.t + 1e-9:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            for _ in range(5):
                await asyncio.sleep(0)


async def settle(condition: Callable[[], bool], real_timeout: float = 20.0) -> None:
    """Wait (in real time, virtual time standing still) until ``condition()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + real_timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


async def play_out(call: Any, wire: ScriptedWire, time: VirtualTime) -> None:
    """Advance until the call's current reply is sent, acknowledging every mark as the far end would."""
    await settle(lambda: call.playback is not None)
    while call.playback is not None:
        await time.advance(0.02)
        for name in wire.marks:
            call.mark_played(name)
        await asyncio.sleep(0)


@dataclass
class ScriptedWire:
    """Records what the core sends; ``log`` is the order of operations with their virtual times."""

    time: VirtualTime
    frames: list[tuple[float, AudioFrame]] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    events: list[LiveEvent] = field(default_factory=list)
    log: list[tuple[float, str]] = field(default_factory=list)
    hung_up: bool = False

    async def send_audio(self, frame: AudioFrame) -> None:
        self.frames.append((self.time.now(), frame))

    async def clear(self) -> None:
        self.log.append((self.time.now(), "clear"))

    async def mark(self, name: str) -> None:
        self.marks.append(name)
        self.log.append((self.time.now(), f"mark:{name}"))

    async def event(self, event: LiveEvent) -> None:
        self.events.append(event)

    async def hangup(self) -> None:
        self.hung_up = True
        self.log.append((self.time.now(), "hangup"))

    def kinds(self, kind: str) -> list[LiveEvent]:
        return [e for e in self.events if e.kind == kind]

    @property
    def cleared(self) -> bool:
        return any(op == "clear" for _, op in self.log)


class ScriptedSpeech:
    """Stands where ``AsyncSpeechPath`` does: the test says which speech events happen."""

    def __init__(self) -> None:
        self.frames: list[AudioFrame] = []
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self.closed = False
        self.ended = False
        self.on_segment_end: Callable[[SpeechEnded], None] | None = None

    def segment_closed(self, ended: SpeechEnded) -> None:
        """The VAD closed a segment; its events (``say``) come when the recogniser is done."""
        if self.on_segment_end is not None:
            self.on_segment_end(ended)

    def offer(self, frame: AudioFrame) -> bool:
        self.frames.append(frame)
        return True

    def say(self, *events: object) -> None:
        for event in events:
            self._events.put_nowait(event)

    async def end(self) -> None:
        """No more audio: the events said so far come, then iteration stops."""
        self.ended = True
        self._events.put_nowait(StopAsyncIteration())

    def __aiter__(self) -> AsyncIterator[object]:
        return self

    async def __anext__(self) -> object:
        event = await self._events.get()
        if isinstance(event, Exception):
            raise event
        return event

    async def aclose(self) -> None:
        self.closed = True


class FrameVoice:
    """Each sentence becomes ``frames_per_char`` 20 ms frames per character (no synthesis)."""

    def __init__(self, frames_per_char: int = 2) -> None:
        self.frames_per_char = frames_per_char
        self.spoken: list[str] = []

    async def sentences(self, sentences: list[str]) -> AsyncIterator[SentenceAudio]:
        for text in sentences:
            self.spoken.append(text)
            yield SentenceAudio(text, tuple(bytes([0x7F]) * 160 for _ in range(len(text) * self.frames_per_char)))
