"""A live call's warm transfer: the caller waits on hold for the agent, then talks to them.

The session has queued the caller with the handoff packet (``voice.transfers``); the agent's
desktop shows the packet while their phone or page rings. Here the caller:

1. hears hold audio (``voice.hold_audio``) — never recognised: while holding, the caller's audio
   does not reach the speech path; every ``remind_s`` the hold stops for a short "still waiting";
2. is connected once an agent accepts (the call stream's ``accepted``): over the wire's own
   hand-over when the agent has a contact the wire can reach (a SIP URI: REFER; a phone number on a
   Twilio call: a conference), else through the agent's desktop page (a ``Bridge``: caller audio to
   the page, the agent's voice back, both sides' words as a live transcript — the caller's for live
   assist, the agent's through a recogniser of their own, ``AgentWords``);
   a hand-over the agent's phone does not answer → that offer is declined and the wait goes on;
3. or, after ``max_wait_s`` with nobody, hears the apology and the booked callback, and is back
   with the bot (``CallSession.no_agent_came``; ``LiveCall`` serves the call's turns again).

If the caller hangs up while waiting, the session withdraws the request when the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import IvrError
from core.shop import Agent
from core.types import AudioFrame, Utterance
from dialog.replies import render
from routing.accounts import AgentContact
from routing.dispatch import Dispatcher
from routing.store import LiveStore

if TYPE_CHECKING:
    from voice.bridge import Bridge
    from voice.live import LiveCall
    from voice.speech_async import AsyncSpeechPath

log = logging.getLogger(__name__)

FRAME_S = 0.02
AGENT_AUDIO_WAIT_S = 15.0  # an accepting agent's page has this long to open its audio


class HandOver(Protocol):
    """A wire that can pass its caller to an agent's phone itself (SIP REFER, a Twilio conference)."""

    async def hand_over(self, contact: AgentContact) -> bool | None:
        """True: the agent has the caller (our leg is gone); False: they did not answer; None: this
        wire cannot reach that contact."""
        ...


@dataclass
class AgentDesk:
    """What a server's live calls need to reach its agents."""

    store: LiveStore
    dispatcher: Dispatcher
    agents: Callable[[], Sequence[Agent]]
    contact: Callable[[str], AgentContact | None] = lambda _agent: None
    bridges: dict[str, Bridge] = field(default_factory=dict)  # accepted calls' audio, by call id
    max_wait_s: float = 180.0
    remind_s: float = 45.0


class Handover:
    """One live call from its transfer sentence to the agent (see the module docstring)."""

    def __init__(self, call: LiveCall, desk: AgentDesk) -> None:
        self.call, self.desk = call, desk
        self.call_id = call.session.call_id
        self.bridge: Bridge | None = None
        self.handing = False  # the wire is passing the caller to the agent's phone
        self.hold_ended_at = float("inf")  # speech that began before this was said on hold: not a line

    async def run(self) -> None:
        call = self.call
        started = call.time.now()
        after = "0"
        while not call.stopped:
            agent_id, after = await self._wait(started, after)
            if agent_id is None:
                if not call.stopped:
                    await self._give_up()
                return
            agent = next((a for a in self.desk.agents() if a.id == agent_id), None)
            if agent is not None and await self._connect(agent, after):
                return

    async def _wait(self, started: float, after: str) -> tuple[str | None, str]:
        """On hold until an agent accepts (their id) or the wait is over (None)."""
        call, stream = self.call, f"call:{self.call_id}"
        remind_at = started + self.desk.remind_s
        call.holding = True
        hold = call.spawn(self._hold_music(), "hold-music")
        try:
            while not call.stopped:
                now = call.time.now()
                if now - started >= self.desk.max_wait_s:
                    return None, after
                if now >= remind_at:
                    remind_at = now + self.desk.remind_s
                    hold.cancel()
                    await call.wire.clear()
                    await call.say(render("transfer.still_waiting"))
                    hold = call.spawn(self._hold_music(), "hold-music")
                try:
                    events = await self.desk.store.read(stream, after, timeout_s=0.5)
                except IvrError as err:  # the store is away: keep the caller on hold, try again
                    log.warning("waiting for an agent: %s", err)
                    await call.time.sleep(0.5)
                    continue
                for event_id, event in events:
                    after = event_id
                    if event.get("type") == "accepted":
                        return str(event["agent"]), after
                    if event.get("type") == "cancelled":
                        return None, after
            return None, after
        finally:
            hold.cancel()
            call.holding = False
            self.hold_ended_at = call.time.now()
            with contextlib.suppress(Exception):
                await call.wire.clear()

    async def _hold_music(self) -> None:
        from voice.hold_audio import hold_frames

        call = self.call
        at = call.time.now()
        for pcm in hold_frames():
            await call.wire.send_audio(AudioFrame(pcm, 8000))
            at += FRAME_S
            await call.time.sleep(max(0.0, at - call.time.now() - call.config.lead_s))

    async def _connect(self, agent: Agent, after: str) -> bool:
        """Hand the caller to ``agent``; False (and the offer declined) when that failed.

        ``after``: the call stream's id of the accept (a page on another server asks from there)."""
        contact = await self.call.in_work(self.desk.contact, agent.id)  # (SQLite)
        wire: Any = self.call.wire
        if contact is not None and hasattr(wire, "hand_over"):
            self.handing = True  # the wire ends our leg when the agent answers: that is no hang-up
            self.call.session.agent_connected(agent)  # (the leg may end before hand_over returns)
            try:
                handed = await wire.hand_over(contact)
            finally:
                self.handing = False
            if handed:
                self.call.stop("handed to an agent")
                return True
            self.call.session.agent_lost()
            if handed is False:
                await self.desk.dispatcher.unreached(agent.id, self.call_id)
                return False
        return await self._bridge(agent, after)

    async def _bridge(self, agent: Agent, after: str) -> bool:
        """The agent talks from their desktop page: audio both ways through a ``Bridge`` (the page on
        this server, or on another one through the live store: ``voice.bridge_relay``)."""
        from voice.bridge import Bridge
        from voice.bridge_relay import CallerSide

        call = self.call
        bridge = self.bridge = Bridge(self.call_id, agent.id)
        self.desk.bridges[self.call_id] = bridge
        relay = CallerSide(self.desk.store, bridge, after=after, now=self.desk.dispatcher.now)
        relay.start()
        try:
            try:
                await asyncio.wait_for(bridge.connected.wait(), AGENT_AUDIO_WAIT_S)
            except TimeoutError:
                await self.desk.dispatcher.unreached(agent.id, self.call_id)
                return False
            call.session.agent_connected(agent)
            call.bridge = bridge  # the agent hears the caller from now on, the announcement included
            await call.say(render("transfer.connected", name=agent.name))
            await self._talk(bridge)
            return True
        finally:
            call.bridge = None
            self.desk.bridges.pop(self.call_id, None)
            bridge.close()
            await relay.stop()
            if call.session.agent is agent:
                with contextlib.suppress(IvrError):
                    await self.desk.dispatcher.finish(agent.id, self.call_id)
                    await self.desk.store.publish(f"call:{self.call_id}", {"type": "ended", "outcome": "transferred"})

    async def _talk(self, bridge: Bridge) -> None:
        """Agent audio to the caller until either hangs up (the page closing ends the call); the
        agent's words become lines of the live transcript too, when the call can recognise them."""
        call = self.call
        words = self._agent_words()
        at = call.time.now()
        try:
            async for pcm in bridge.agent_audio():
                frame = AudioFrame(pcm, 8000)
                await call.wire.send_audio(frame)
                if words is not None:
                    words.feed(frame)
                at = max(at + FRAME_S, call.time.now() - call.config.lead_s)
                await call.time.sleep(max(0.0, at - call.time.now()))
                if call.stopped:
                    return
            if not call.stopped:
                await call.hang_up("the agent ended the call")
        finally:
            if words is not None:
                await words.close()

    def _agent_words(self) -> AgentWords | None:
        """The agent's words to text, when this call can recognise them (``LiveCall.agent_speech``)."""
        make = self.call.agent_speech
        if make is None:
            return None
        return AgentWords(lambda: self.call.in_work(make), self.publish_line, self.call.spawn)

    async def _give_up(self) -> None:
        """Nobody came: the apology and the booked callback; the call goes back to the bot."""
        with contextlib.suppress(IvrError):
            await self.desk.dispatcher.cancel(self.call_id, "等待超时，已转回电")
        text = await self.call.in_work(self.call.session.no_agent_came)
        await self.call.say(text)

    async def publish_line(self, speaker: str, text: str) -> None:
        """A line of the conversation with the agent, for their live transcript and live assist."""
        with contextlib.suppress(IvrError):
            await self.desk.store.publish(f"call:{self.call_id}", {"type": "line", "speaker": speaker, "text": text})


class AgentWords:
    """The agent's side of a bridged talk as text: their 8 kHz audio through a speech path of its
    own, each utterance a ``line`` (speaker ``agent``) on the call stream, so the live transcript
    has both sides. The path is made in the background (it may wait for a worker): the agent's audio
    to the caller never waits for it, and what comes meanwhile is kept for it (up to ``EARLY_FRAMES``).
    Frames are offered without waiting (a slow recogniser drops the oldest); ``close`` lets the last
    words come."""

    CLOSE_WAIT_S = 5.0  # the last utterance's recognition after the talk ends
    EARLY_FRAMES = 250  # 5 s of audio before the path is ready

    def __init__(
        self,
        make_path: Callable[[], Awaitable[AsyncSpeechPath]],
        publish: Callable[[str, str], Awaitable[None]],
        spawn: Callable[[Awaitable[None], str], asyncio.Task[None]],
    ) -> None:
        self.path: AsyncSpeechPath | None = None
        self._early: deque[AudioFrame] = deque(maxlen=self.EARLY_FRAMES)
        self._publish = publish
        self.lines = 0  # utterances published
        self._task = spawn(self._follow(make_path), "agent-words")

    def feed(self, frame: AudioFrame) -> None:
        if self.path is None:
            self._early.append(frame)
        else:
            self.path.offer(frame)

    async def _follow(self, make_path: Callable[[], Awaitable[AsyncSpeechPath]]) -> None:
        try:
            path = await make_path()
        except Exception as err:  # the talk goes on without the agent's lines
            log.warning("the agent's speech will not be transcribed: %s", err)
            return
        self.path = path
        while self._early:
            path.offer(self._early.popleft())
        try:
            async for event in path:
                if isinstance(event, Utterance) and event.text:
                    self.lines += 1
                    await self._publish("agent", event.text)
        except IvrError as err:  # the recogniser failed: the talk goes on, without more of their lines
            log.warning("the agent's speech path failed: %s", err)

    async def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                if self.path is not None:
                    await self.path.end()
                await asyncio.wait({self._task}, timeout=self.CLOSE_WAIT_S)  # (the call may cancel it first)
        finally:
            self._task.cancel()
            if self.path is not None:
                with contextlib.suppress(Exception):
                    await self.path.aclose()
