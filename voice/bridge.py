"""The audio between a transferred caller and the agent's desktop page, one ``Bridge`` per call.

The live call feeds the caller's audio in (``from_caller``: PCM16 at 8 kHz, any chunk size) and
the agent's page reads it (``caller_audio()``); the page's microphone comes in at whatever rate the
browser captured it (``from_agent(pcm, rate)``), is resampled to 8 kHz (``voice.codec.Resampler``)
and cut into 20 ms frames, which the live call reads and sends to the caller (``agent_audio()``).

Both directions are bounded queues that drop their oldest audio when full (a listener that fell
behind hears the present, not a growing delay) and count what they dropped. ``connected`` is set
while the agent's audio socket is attached. ``close()`` ends both iterators once they are drained.
Event-loop only: every method is called from the loop that runs the call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from voice.codec import Resampler, pcm16_samples

RATE = 8000
FRAME_BYTES = RATE // 50 * 2  # 20 ms of PCM16 at 8 kHz
MAX_FRAMES = 50  # a second of audio each way


class _Channel:
    """A bounded FIFO of byte chunks that drops its oldest when full; iterating ends after ``close``."""

    def __init__(self, limit: int) -> None:
        self._items: deque[bytes] = deque()
        self._limit = limit
        self._more = asyncio.Event()
        self.closed = False
        self.dropped = 0

    def put(self, item: bytes) -> None:
        if self.closed:
            return
        if len(self._items) >= self._limit:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._more.set()

    def close(self) -> None:
        self.closed = True
        self._more.set()

    def __len__(self) -> int:
        return len(self._items)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if self._items:
                yield self._items.popleft()
                continue
            if self.closed:
                return
            self._more.clear()
            await self._more.wait()


class Bridge:
    """Caller ⇄ agent audio for one transferred call (see the module docstring)."""

    def __init__(self, call_id: str, agent_id: str | None = None, *, max_frames: int = MAX_FRAMES) -> None:
        self.call_id = call_id
        self.agent_id = agent_id  # the agent whose page may attach (None: whoever accepted the call)
        self.connected = asyncio.Event()
        self._to_agent = _Channel(max_frames)
        self._to_caller = _Channel(max_frames)
        self._resampler: Resampler | None = None
        self._pending = b""  # agent audio at 8 kHz not yet a whole 20 ms frame

    @property
    def closed(self) -> bool:
        return self._to_agent.closed

    @property
    def dropped_to_agent(self) -> int:
        """Caller chunks dropped because the agent's page fell behind."""
        return self._to_agent.dropped

    @property
    def dropped_to_caller(self) -> int:
        """Agent frames dropped because the call did not take them in time."""
        return self._to_caller.dropped

    def from_caller(self, pcm: bytes) -> None:
        """The caller's audio, PCM16 at 8 kHz, for the agent's page."""
        pcm16_samples(pcm)  # an odd length is an AudioFormatError here, not noise on the page
        if pcm:
            self._to_agent.put(pcm)

    def caller_audio(self) -> AsyncIterator[bytes]:
        """What the agent's page plays: the caller's audio as it came; ends after ``close()``."""
        return aiter(self._to_agent)

    def from_agent(self, pcm: bytes, rate: int) -> None:
        """The agent's microphone, PCM16 at ``rate`` Hz, for the caller."""
        if self.closed:
            return
        if rate != RATE:
            if self._resampler is None or self._resampler.from_rate != rate:
                self._resampler = Resampler(rate, RATE)
            pcm = self._resampler.process(pcm)
        else:
            pcm16_samples(pcm)
        data = self._pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        for start in range(0, whole, FRAME_BYTES):
            self._to_caller.put(data[start : start + FRAME_BYTES])
        self._pending = data[whole:]

    def agent_audio(self) -> AsyncIterator[bytes]:
        """What the caller hears: the agent's voice in 20 ms PCM16 frames at 8 kHz; ends after ``close()``."""
        return aiter(self._to_caller)

    def close(self) -> None:
        """The call is over: both iterators end once what is queued has been read."""
        self._to_agent.close()
        self._to_caller.close()
