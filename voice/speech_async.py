"""``AsyncSpeechPath``: a call's ``SpeechPath`` run off the event loop, with bounded queues.

A live call's audio arrives whether or not recognition keeps up, so frames go in without waiting
(the oldest waiting frame is dropped and counted when the queue is full) and every blocking step
runs in an executor, one job at a time, in order. See ``voice.speech`` for what the path does.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from core.errors import ProtocolError
from core.types import AudioFrame, SpeechEnded
from voice.speech import SpeechEvent, SpeechPath

log = logging.getLogger(__name__)


class _Marker(enum.Enum):
    END = "end"  # no more audio (inbox)
    DONE = "done"  # no more events (outbox)


class AsyncSpeechPath:
    """A ``SpeechPath`` run off the event loop for a live call, one executor job at a time, in order.

    Audio in: ``offer(frame)`` never waits (a live call's audio arrives whether or not we keep
    up): when ``max_frames`` frames already wait, the *oldest* waiting frame is dropped and counted
    in ``dropped_frames``, so what is recognised stays recent; frames with timestamps then show the
    drop as a gap of silence. ``put(frame)`` waits for room instead (playing a file). ``end()``
    says the audio is over; the path's ``finish()`` events follow and iteration stops.

    Events out: ``async for event in path`` (or ``await anext(path)``), in stream order. The
    outbox is bounded too; a consumer that stops reading makes the worker wait, the inbox fill
    and ``offer`` drop, which is counted. A failure inside the path ends iteration by raising it.

    ``on_segment_end``, when set, is called on the event loop as soon as the VAD closes a segment,
    ahead of the events of the executor job that closed it: its ``SpeechEnded`` (and text) come
    only once the recogniser has finished with the segment.

    ``aclose()`` cancels the worker, waits for it and for a running executor job (each at most
    ``close_timeout`` seconds), then releases the recogniser. Use ``async with``.
    """

    def __init__(
        self,
        path: SpeechPath,
        *,
        max_frames: int = 50,
        max_events: int = 200,
        executor: Executor | None = None,
        close_timeout: float = 2.0,
    ) -> None:
        if max_frames < 1 or max_events < 1:
            raise ValueError(f"max_frames and max_events must be >= 1, got {max_frames} and {max_events}")
        self.path = path
        self.close_timeout = close_timeout
        self.dropped_frames = 0
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="speech-path")
        self._inbox: asyncio.Queue[AudioFrame | _Marker] = asyncio.Queue(max_frames)
        self._outbox: asyncio.Queue[SpeechEvent | _Marker | Exception] = asyncio.Queue(max_events)
        self._task: asyncio.Task[None] | None = None
        self._job: Future[list[SpeechEvent]] | None = None  # the executor job now running
        self._ended = False
        self._exhausted = False
        self._closed = False
        self.on_segment_end: Callable[[SpeechEnded], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        path.on_segment_end = self._segment_ended

    # -- audio in ---------------------------------------------------------------------------------

    def offer(self, frame: AudioFrame) -> bool:
        """Queue ``frame`` without waiting; ``False`` when an older frame had to be dropped for it."""
        self._require_accepting()
        self._start()
        dropped = False
        if self._inbox.full():
            self._inbox.get_nowait()
            self.dropped_frames += 1
            dropped = True
        self._inbox.put_nowait(frame)
        return not dropped

    async def put(self, frame: AudioFrame) -> None:
        """Queue ``frame``, waiting for room (no drops)."""
        self._require_accepting()
        self._start()
        await self._inbox.put(frame)

    async def end(self) -> None:
        """No more audio: the remaining events, then the end of iteration."""
        self._require_accepting()
        self._start()
        self._ended = True
        await self._inbox.put(_Marker.END)

    # -- events out -------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self

    async def __anext__(self) -> SpeechEvent:
        if self._exhausted:
            raise StopAsyncIteration
        self._start()
        item = await self._outbox.get()
        if item is _Marker.DONE:
            self._exhausted = True
            raise StopAsyncIteration
        if isinstance(item, Exception):
            self._exhausted = True
            raise item
        assert not isinstance(item, _Marker)
        return item

    # -- lifetime ---------------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncSpeechPath:
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the worker (cancel, then wait at most ``close_timeout``) and release the recogniser."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            _, stuck = await asyncio.wait({task}, timeout=self.close_timeout)
            if stuck:
                log.warning("speech path worker did not stop within %.1f s", self.close_timeout)
        try:
            job = self._job
            if job is not None and not job.done():
                _, busy = await asyncio.wait({asyncio.wrap_future(job)}, timeout=self.close_timeout)
                if busy:  # the path is still working in its thread: closing it now would race with that
                    log.warning("speech path still busy after %.1f s; recogniser left open", self.close_timeout)
                    return
            closing = asyncio.get_running_loop().run_in_executor(self._executor, self.path.close)
            _, slow = await asyncio.wait({closing}, timeout=self.close_timeout)
            if slow:
                log.warning("closing the recogniser took over %.1f s", self.close_timeout)
        finally:
            if self._own_executor:
                self._executor.shutdown(wait=False)

    # -- worker -----------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.get_running_loop().create_task(self._work(), name="speech-path")

    async def _work(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            end = batch[-1] is _Marker.END
            frames = [f for f in batch if not isinstance(f, _Marker)]
            try:
                events = await self._run(self._push_all, frames, end)
            except Exception as err:  # handed to the reader, who re-raises it
                await self._outbox.put(err)
                return
            for event in events:
                await self._outbox.put(event)
            if end:
                await self._outbox.put(_Marker.DONE)
                return

    def _segment_ended(self, ended: SpeechEnded) -> None:
        """In the executor thread: hand the VAD's segment end to ``on_segment_end`` on the loop."""
        callback, loop = self.on_segment_end, self._loop
        if callback is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
                loop.call_soon_threadsafe(callback, ended)

    def _push_all(self, frames: list[AudioFrame], end: bool) -> list[SpeechEvent]:
        events: list[SpeechEvent] = []
        for frame in frames:
            events.extend(self.path.push(frame))
        if end:
            events.extend(self.path.finish())
        return events

    async def _run(self, call: Callable[..., list[SpeechEvent]], *args: object) -> list[SpeechEvent]:
        self._job = self._executor.submit(call, *args)
        return await asyncio.wrap_future(self._job)

    def _require_accepting(self) -> None:
        if self._closed:
            raise ProtocolError("expected an open speech path, got closed")
        if self._ended:
            raise ProtocolError("expected audio before end(), got audio after end()")
