"""A transferred call's audio between two servers: the caller on server A, the agent's page on B.

Server A holds the caller's audio and the call's ``Bridge``; the agent's desktop page opens its
audio socket on its own server B (``voice.agent_desk.audio_socket``). When B has no bridge for
the call and the call's record says another server holds it, the two directions go through the
live store's audio channels (``LiveStore.send_audio`` / ``audio``, nothing stored):

- ``<call>:caller``: A → B, the caller's audio as the bridge hands it to a page (PCM16, 8 kHz);
- ``<call>:agent``: B → A, the agent's microphone already resampled and cut into 20 ms frames at
  8 kHz (B's own ``Bridge`` does that, exactly as A's would for a local page).

and the handshake through the call's stream ``call:<id>`` (``LiveStore.publish``):

- ``agent_audio`` {agent, page, server}: B: the agent's page opened its audio here (B already
  listens to the caller channel). ``page`` names this one socket;
- ``agent_audio_ok`` {page} | ``agent_audio_refused`` {page, why}: A's answer. OK: A listens to the
  agent channel and ``bridge.connected`` is set. Refused: another page carries the call
  (``taken``: B closes the page with 4409) or the bridge waits for another agent (``agent``: 4404);
- ``agent_audio_closed`` {page}: B: the page went away (or B stopped waiting for the answer); A
  clears ``bridge.connected`` as when a local page closes, and stops relaying;
- ``audio_ended`` {}: A: the bridge closed (the call is over; B also takes the call's ``ended``);
  B closes the page (1000).

No answer within ``ANSWER_WAIT_S`` (A's bridge is not made yet): B closes the page with 4404 and the
page tries again, as it does when a local bridge is not there yet. A page whose server stops
heartbeating (``LiveStore.servers_alive``) is taken as gone by A; B ends the page's audio when A's
server is gone. A's side (``CallerSide``) acts as the page of its bridge; B's (``PageSide``)
stands in for the bridge on B.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import AudioFormatError, IvrError
from routing.store import AudioFeed, LiveStore
from voice.bridge import RATE, Bridge

log = logging.getLogger(__name__)

ANSWER_WAIT_S = 3.0  # B waits this long for A's answer before telling the page to try again
POLL_S = 0.5  # a blocking read of the call stream waits at most this long
ALIVE_EVERY_S = 5.0  # how often each side checks the other's server still heartbeats


def caller_channel(call_id: str) -> str:
    return f"{call_id}:caller"


def agent_channel(call_id: str) -> str:
    return f"{call_id}:agent"


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, IvrError):
            await asyncio.wait_for(task, 5)


async def _alive(store: LiveStore, server: str, now: Callable[[], float]) -> bool:
    """False only when the store says ``server`` stopped heartbeating (unreachable store: assume alive)."""
    try:
        return server in await store.servers_alive(now())
    except IvrError:
        return True


# -- server A: the caller's side ---------------------------------------------------------------------


@dataclass
class _RemotePage:
    page: str
    server: str | None
    feed: AudioFeed
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class CallerSide:
    """On the server holding the call: lets an agent's page on another server attach to ``bridge``.

    ``start()`` when the bridge is made (``after``: the call stream's id from which attach requests
    count), ``await stop()`` after ``bridge.close()``. ``now``: epoch seconds, for heartbeats."""

    def __init__(
        self, store: LiveStore, bridge: Bridge, *, after: str = "0", now: Callable[[], float] = time.time
    ) -> None:
        self.store, self.bridge, self.now = store, bridge, now
        self.stream = f"call:{bridge.call_id}"
        self.lost = 0  # caller audio that could not be sent (the store was away)
        self._after = after
        self._remote: _RemotePage | None = None
        self._asked = False  # some page on another server asked for this call's audio
        self._task: asyncio.Task[None] | None = None

    @property
    def remote(self) -> bool:
        """A page on another server carries the call's audio now."""
        return self._remote is not None

    def start(self) -> None:
        self._task = _spawn(self._watch(), f"relay-watch-{self.bridge.call_id}")

    async def stop(self) -> None:
        """The bridge closed: stop relaying and tell the other server (when one ever asked)."""
        if self._task is not None:
            await _cancel([self._task])
        await self._detach()
        if self._asked:
            with contextlib.suppress(IvrError):
                await self.store.publish(self.stream, {"type": "audio_ended"})

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        after, check_at = self._after, loop.time() + ALIVE_EVERY_S
        while not self.bridge.closed:
            try:
                events = await self.store.read(self.stream, after, timeout_s=POLL_S)
            except IvrError as err:  # the store is away: the bridge goes on, try again
                log.warning("call audio relay: %s", err, extra={"call_id": self.bridge.call_id})
                await asyncio.sleep(POLL_S)
                continue
            left = {e.get("page") for _, e in events if e.get("type") == "agent_audio_closed"}
            for event_id, event in events:
                after = event_id
                if event.get("type") != "agent_audio" or event.get("page") not in left:  # (an ask given up)
                    await self._on(event)
            remote = self._remote
            if remote is not None and any(t.done() for t in remote.tasks):
                await self._detach()  # the agent channel broke: the page is as good as gone
            elif remote is not None and remote.server and loop.time() >= check_at:
                check_at = loop.time() + ALIVE_EVERY_S
                if not await _alive(self.store, remote.server, self.now):
                    log.warning("the agent page's server stopped", extra={"call_id": self.bridge.call_id})
                    await self._detach()

    async def _on(self, event: Mapping[str, Any]) -> None:
        kind, page = event.get("type"), str(event.get("page"))
        if kind == "agent_audio":
            self._asked = True
            if self.bridge.agent_id not in (None, event.get("agent")):
                await self._answer("agent_audio_refused", page, why="agent")
            elif self.bridge.connected.is_set():
                await self._answer("agent_audio_refused", page, why="taken")
            else:
                await self._attach(page, event.get("server"))
        elif kind == "agent_audio_closed" and self._remote is not None and self._remote.page == page:
            await self._detach()

    async def _answer(self, kind: str, page: str, **more: str) -> None:
        with contextlib.suppress(IvrError):
            await self.store.publish(self.stream, {"type": kind, "page": page, **more})

    async def _attach(self, page: str, server: Any) -> None:
        call_id = self.bridge.call_id
        feed = self.store.audio(agent_channel(call_id))
        try:
            await feed.__aenter__()  # listening before the answer: the agent's first words are not lost
        except IvrError as err:
            log.warning("call audio relay: %s", err, extra={"call_id": call_id})
            return
        remote = self._remote = _RemotePage(page, str(server) if server else None, feed)
        self.bridge.connected.set()
        remote.tasks = [
            _spawn(self._to_page(), f"relay-caller-{call_id}"),
            _spawn(self._from_page(feed), f"relay-agent-{call_id}"),
        ]
        await self._answer("agent_audio_ok", page)
        log.info("agent page attached from another server", extra={"call_id": call_id, "server": remote.server})

    async def _detach(self) -> None:
        remote, self._remote = self._remote, None
        if remote is None:
            return
        await _cancel(remote.tasks)
        with contextlib.suppress(IvrError):
            await remote.feed.close()
        self.bridge.connected.clear()
        log.info("agent page on another server left", extra={"call_id": self.bridge.call_id})

    async def _to_page(self) -> None:
        channel = caller_channel(self.bridge.call_id)
        async for pcm in self.bridge.caller_audio():
            try:
                await self.store.send_audio(channel, pcm)
            except IvrError:
                self.lost += 1

    async def _from_page(self, feed: AudioFeed) -> None:
        with contextlib.suppress(IvrError):  # the subscription broke: ends; ``_watch`` detaches
            async for pcm in feed:
                with contextlib.suppress(AudioFormatError):
                    self.bridge.from_agent(pcm, RATE)


# -- server B: the agent's page's side ---------------------------------------------------------------


class PageSide:
    """On the agent's page's server: ``bridge`` stands in for the call's bridge on ``holder``.

    ``answer = await open()`` subscribes, asks the holder and waits for its answer: "ok" (the page
    is connected to ``bridge``: run it as a local bridge's page), "taken", "agent" or None (no
    answer: the page should try again). ``await close()`` always, after the page went away."""

    def __init__(
        self,
        store: LiveStore,
        call_id: str,
        agent_id: str,
        *,
        server: str,
        holder: str,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.call_id, self.agent_id, self.server, self.holder, self.now = (
            store, call_id, agent_id, server, holder, now,
        )  # fmt: skip
        self.bridge = Bridge(call_id, agent_id)
        self.page = secrets.token_hex(8)
        self.stream = f"call:{call_id}"
        self.lost = 0  # agent audio that could not be sent (the store was away)
        self._feed: AudioFeed | None = None
        self._asked = False
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> str | None:
        feed = self.store.audio(caller_channel(self.call_id))
        await feed.__aenter__()  # listening before asking: the caller's first words are not lost
        self._feed = feed
        request = {"type": "agent_audio", "agent": self.agent_id, "page": self.page, "server": self.server}
        after = await self.store.publish(self.stream, request)
        self._asked = True
        answer, after = await self._answer(after)
        if answer == "ok":
            self._tasks = [
                _spawn(self._from_caller(feed), f"page-caller-{self.call_id}"),
                _spawn(self._to_caller(), f"page-agent-{self.call_id}"),
                _spawn(self._watch(after), f"page-watch-{self.call_id}"),
            ]
        return answer

    async def close(self) -> None:
        self.bridge.close()
        await _cancel(self._tasks)
        if self._feed is not None:
            with contextlib.suppress(IvrError):
                await self._feed.close()
        if self._asked:
            with contextlib.suppress(IvrError):
                await self.store.publish(self.stream, {"type": "agent_audio_closed", "page": self.page})

    async def _answer(self, after: str) -> tuple[str | None, str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANSWER_WAIT_S
        while (left := deadline - loop.time()) > 0:
            for event_id, event in await self.store.read(self.stream, after, timeout_s=min(left, POLL_S)):
                after = event_id
                if event.get("type") == "audio_ended":
                    return None, after
                if event.get("page") != self.page:
                    continue
                if event.get("type") == "agent_audio_ok":
                    return "ok", after
                if event.get("type") == "agent_audio_refused":
                    return str(event.get("why")), after
        return None, after

    async def _from_caller(self, feed: AudioFeed) -> None:
        try:
            async for pcm in feed:
                with contextlib.suppress(AudioFormatError):
                    self.bridge.from_caller(pcm)
        except IvrError as err:  # the caller's audio cannot come any more: the page is told it ended
            log.warning("call audio relay: %s", err, extra={"call_id": self.call_id})
            self.bridge.close()

    async def _to_caller(self) -> None:
        channel = agent_channel(self.call_id)
        async for pcm in self.bridge.agent_audio():
            try:
                await self.store.send_audio(channel, pcm)
            except IvrError:
                self.lost += 1

    async def _watch(self, after: str) -> None:
        """Until the holder ends the call's audio (or its server is gone): then the page is told."""
        loop = asyncio.get_running_loop()
        check_at = loop.time() + ALIVE_EVERY_S
        while not self.bridge.closed:
            try:
                events = await self.store.read(self.stream, after, timeout_s=POLL_S)
            except IvrError:
                await asyncio.sleep(POLL_S)
                continue
            for event_id, event in events:
                after = event_id
                if event.get("type") in ("audio_ended", "ended"):
                    self.bridge.close()
            if loop.time() >= check_at:
                check_at = loop.time() + ALIVE_EVERY_S
                if not await _alive(self.store, self.holder, self.now):
                    log.warning("the server holding the call stopped", extra={"call_id": self.call_id})
                    self.bridge.close()
