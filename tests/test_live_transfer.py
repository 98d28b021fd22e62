"""A live call's warm transfer, end to end in one process: the real dialog and dispatcher on the
embedded sample shop, virtual time, a recording wire and scripted speech events.

The caller complains; the session queues them with the handoff packet and an agent is rung. The
caller hears hold audio (never recognised) until the agent accepts, then talks to the agent's page
through the call's bridge, their words going to the call stream as the agent's live transcript.
Also: nobody accepts in time (apology and callback, then the bot serves the call again), a long
expected wait (a callback offered before holding: yes leaves the queue, no holds on), the caller
hangs up while waiting (the offer is withdrawn), and an agent's phone reached by the wire's own
hand-over (answered / not answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from livefakes import FrameVoice, ScriptedSpeech, ScriptedWire, VirtualTime, play_out, settle

from core.settings import Settings
from core.types import AudioFrame, SpeechEnded, SpeechStarted, Utterance
from routing.accounts import AgentContact
from routing.dispatch import WAITS_KEY, Dispatcher
from routing.store import MemoryStore, Presence
from voice.bridge_relay import PageSide
from voice.hold_audio import hold_frames
from voice.hotline import Hotline, open_hotline
from voice.live import LiveCall
from voice.live_transfer import AgentDesk
from voice.live_turns import LivePrompts
from voice.transfers import LoopTransfers

LOUD = AudioFrame((np.sin(np.arange(160) / 3) * 8000).astype("<i2").tobytes(), 8000)
QUIET = AudioFrame(bytes(320), 8000)
CALLER = "+8613900139001"  # caller ID (a stranger to the shop): a callback can be promised
HOLD = set(frame for frame, _ in zip(hold_frames(), range(400), strict=False))


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Hotline:
    tmp = tmp_path_factory.mktemp("live-transfer")
    return open_hotline(Settings(db_path=tmp / "shop.sqlite3", model_dir=tmp / "models"))


class HandOverWire(ScriptedWire):
    """A wire that reaches agents' phones itself (as SIP's REFER does), with a scripted answer."""

    answer: bool | None = True
    contacts: list[AgentContact]

    async def hand_over(self, contact: AgentContact) -> bool | None:
        self.contacts.append(contact)
        return self.answer


class Rig:
    def __init__(self, hotline: Hotline, wire_answers: bool | None = None, max_wait_s: float = 120.0) -> None:
        self.time = VirtualTime()
        if wire_answers is None:
            self.wire: ScriptedWire = ScriptedWire(self.time)
        else:
            self.wire = HandOverWire(self.time)
            self.wire.answer, self.wire.contacts = wire_answers, []
        self.speech = ScriptedSpeech()
        self.agent_speech = ScriptedSpeech()  # the agent's words, when they talk from the desk page
        self.task: asyncio.Task[Any]
        self.store = MemoryStore()
        self.agents = hotline.shop.agents()
        self.dispatcher = Dispatcher(self.store, lambda: self.agents, "test", lambda: 1000.0 + self.time.now())
        contact = (lambda _a: AgentContact(sip_uri="sip:agent@127.0.0.1")) if wire_answers is not None else None
        self.desk = AgentDesk(
            self.store, self.dispatcher, lambda: self.agents, max_wait_s=max_wait_s,
            **({"contact": contact} if contact else {}),
        )  # fmt: skip
        hotline.transfers = LoopTransfers(self.dispatcher, asyncio.get_running_loop(), "test")
        self.call = LiveCall(
            hotline.session(CALLER, channel="phone"), lambda: self.speech, FrameVoice(), self.wire,  # type: ignore[arg-type,return-value]
            time=self.time, prompts=LivePrompts(goodbye="感谢来电，再见。"), desk=self.desk,
            agent_speech=lambda: self.agent_speech,  # type: ignore[arg-type,return-value]
        )  # fmt: skip

    async def sign_in_all(self) -> None:
        for agent in self.agents:
            await self.store.set_presence(agent.id, Presence.AVAILABLE, 1000.0, "test")
        await self.store.heartbeat("test", 1000.0, 1e9)

    async def play_out(self) -> None:
        await play_out(self.call, self.wire, self.time)

    async def speak(self, text: str, seconds: float = 0.8, recognised_after: float = 0.0) -> None:
        """The caller says ``text``; the VAD closes the segment, its text comes ``recognised_after`` later."""
        start = self.call.listener.stream_s
        self.speech.say(SpeechStarted(start))
        for _ in range(int(seconds / 0.02)):
            self.call.feed_audio(LOUD)
            await self.time.advance(0.02)
        end = self.call.listener.stream_s
        await asyncio.sleep(0)
        self.speech.segment_closed(SpeechEnded(start, end, QUIET))
        if recognised_after:
            await self.time.advance(recognised_after)
        self.speech.say(SpeechEnded(start, end, QUIET), Utterance(text, confidence=0.95))
        await asyncio.sleep(0)

    def replies(self) -> list[str]:
        return [str(e.data["text"]) for e in self.wire.kinds("reply")]

    def hold_frames_sent(self) -> int:
        return sum(1 for _, frame in self.wire.frames if frame.pcm in HOLD)

    async def offered(self) -> tuple[str, str]:
        """The (call, agent) of the offer made for this call."""
        call_id = self.call.session.call_id
        await settle(lambda: self.call.session.placement is not None)
        record = await self.store.load_call(call_id)
        assert record is not None and record["status"] == "offered", record
        return call_id, str(record["offer"]["agent"])

    async def ask(self, text: str, expect: str) -> str:
        """The caller says ``text``; returns what the bot said back, once it says ``expect`` (played out)."""
        before = len(self.replies())
        await self.speak(text)
        await self.time.advance(0.3)
        await settle(lambda: expect in "".join(self.replies()[before:]))
        await self.play_out()
        return "".join(self.replies()[before:])

    async def complain(self) -> None:
        await self.speak("我要投诉，你们太不负责了")
        await self.time.advance(0.3)
        await settle(lambda: len(self.replies()) >= 2)
        await self.play_out()  # the transfer sentence, then hold audio


def transfer_test(body: Callable[[Rig], Awaitable[None]], **rig: Any) -> Callable[[Hotline], None]:
    def test(hotline: Hotline) -> None:
        async def main() -> None:
            r = Rig(hotline, **rig)
            await r.sign_in_all()
            r.task = asyncio.get_running_loop().create_task(r.call.run())
            await r.play_out()  # the greeting
            try:
                await body(r)
            finally:
                r.call.stop()
                await asyncio.wait_for(r.task, 10)
                hotline.transfers = None

        asyncio.run(main())

    test.__name__ = body.__name__
    return test


async def _talks_to_the_agent_through_the_bridge(rig: Rig) -> None:
    await rig.complain()
    assert "转接" in rig.replies()[-1]
    call_id, agent_id = await rig.offered()
    record = await rig.store.load_call(call_id)
    assert (
        record is not None and record["summary"] and record["transcript"]
    )  # the packet is there before the caller is connected
    assert record["skill"] == "complaint"
    await rig.time.advance(2.0)
    assert rig.hold_frames_sent() >= 80  # ~2 s of hold audio
    await rig.speak("喂有人吗")  # said on hold: never a turn
    await rig.time.advance(1.5)
    assert not any(e.data["text"] == "喂有人吗" for e in rig.wire.kinds("turn"))
    assert await rig.dispatcher.accept(agent_id, call_id)
    await settle(lambda: call_id in rig.desk.bridges)
    bridge = rig.desk.bridges[call_id]
    bridge.connected.set()  # the agent's page opened its audio socket
    await settle(lambda: any("接通" in r for r in rig.replies()))
    await rig.play_out()
    agent = next(a for a in rig.agents if a.id == agent_id)
    assert rig.replies()[-1] == f"已为您接通客服{agent.name}。"
    sent = len(rig.wire.frames)
    voice = bytes(range(256)) + bytes(64)  # 20 ms of the agent's voice
    for _ in range(10):
        bridge.from_agent(voice, 8000)
    await rig.time.advance(0.4)
    assert sum(1 for _, f in rig.wire.frames[sent:] if f.pcm == voice) == 10  # the agent reaches the caller
    await settle(lambda: len(rig.agent_speech.frames) >= 10)  # their own recogniser (made meanwhile) too
    assert [f.pcm for f in rig.agent_speech.frames] == [voice] * 10
    rig.agent_speech.say(Utterance("您好，我帮您查一下", confidence=0.9))
    await rig.speak("我的快递一直不动", recognised_after=1.0)  # (a slow recogniser: the bot would say 「嗯」)
    await rig.time.advance(0.3)
    lines = await rig.store.read(f"call:{call_id}", "0", timeout_s=2.0)
    said = [(e["speaker"], e["text"]) for _, e in lines if e["type"] == "line"]
    # the live transcript, both sides (not "喂有人吗": that was on hold)
    assert said == [("agent", "您好，我帮您查一下"), ("caller", "我的快递一直不动")]
    assert rig.replies()[-1] == f"已为您接通客服{agent.name}。"  # no 「嗯」 or any bot word over the agent
    heard = b"".join([chunk async for chunk in _take(bridge.caller_audio(), 10)])
    assert LOUD.pcm in heard  # the caller reaches the agent
    rig.call.stop()
    outcome = await asyncio.wait_for(_outcome(rig), 10)
    assert outcome.type == "transferred" and outcome.agent is not None and outcome.agent.id == agent_id
    state = await rig.store.agent(agent_id)
    assert state.presence is Presence.WRAP_UP and state.calls == ()
    await settle(lambda: rig.agent_speech.closed)  # the agent's recogniser is let go


test_the_caller_waits_on_hold_then_talks_to_the_agent_through_the_bridge = transfer_test(
    _talks_to_the_agent_through_the_bridge
)


async def _talks_to_an_agent_page_on_another_server(rig: Rig) -> None:
    """The agent's page is on another server: its audio comes through the live store (``voice.bridge_relay``)."""
    await rig.complain()
    call_id, agent_id = await rig.offered()
    assert await rig.dispatcher.accept(agent_id, call_id)
    await settle(lambda: call_id in rig.desk.bridges)
    bridge = rig.desk.bridges[call_id]
    await rig.store.heartbeat("server-b", 1000.0, 1e9)
    page = PageSide(rig.store, call_id, agent_id, server="server-b", holder="test")
    try:
        assert await page.open() == "ok"  # the call's server answered: its bridge counts the page as attached
        await settle(lambda: any("接通" in r for r in rig.replies()))
        await rig.play_out()
        assert bridge.connected.is_set()
        sent = len(rig.wire.frames)
        voice = bytes(range(256)) + bytes(64)  # 20 ms of the agent's voice
        for _ in range(10):
            page.bridge.from_agent(voice, 8000)  # what the page's socket on B does with its microphone
        for _ in range(50):  # relayed through the store on the loop, then paced out in virtual time
            await asyncio.sleep(0.01)
            await rig.time.advance(0.02)
        assert sum(1 for _, f in rig.wire.frames[sent:] if f.pcm == voice) == 10  # the agent reaches the caller
        await rig.speak("我的快递一直不动")
        heard = b"".join([chunk async for chunk in _take(page.bridge.caller_audio(), 10)])
        assert LOUD.pcm in heard  # the caller reaches the page on the other server
        rig.call.stop()
        outcome = await asyncio.wait_for(_outcome(rig), 10)
        assert outcome.type == "transferred" and outcome.agent is not None and outcome.agent.id == agent_id
        await settle(lambda: page.bridge.closed)  # the call ended: the other server closes the page
    finally:
        await page.close()


test_the_caller_talks_to_an_agent_page_on_another_server = transfer_test(_talks_to_an_agent_page_on_another_server)


async def _nobody_comes(rig: Rig) -> None:
    await rig.complain()
    call_id, agent_id = await rig.offered()
    await rig.time.advance(6.0)  # past max_wait_s: an apology and a callback
    await settle(lambda: "回电" in rig.replies()[-1])
    assert "转接" not in rig.replies()[-1]
    await rig.play_out()
    assert not rig.wire.hung_up and rig.call.handover is None  # back with the bot, not hung up
    assert (await rig.store.agent(agent_id)).calls == ()  # the ringing agent's line is free again
    assert await rig.store.queue() == []
    events = [e["type"] for _, e in await rig.store.read(f"agent:{agent_id}")]
    assert events[-1] == "cancel"  # the offer was withdrawn from the desk
    held = rig.hold_frames_sent()
    said = await rig.ask("那还是给我转人工吧", "已经给您登记")  # the callback is booked: no second promise
    assert "转接" not in said
    assert rig.hold_frames_sent() == held and await rig.store.queue() == []  # not queued again
    await rig.ask("好的，谢谢，再见", "再见")
    outcome = await asyncio.wait_for(_outcome(rig), 10)
    assert outcome.type == "callback" and outcome.agent is None and rig.wire.hung_up


test_nobody_accepts_in_time_the_caller_gets_a_callback_and_the_bot_again = transfer_test(_nobody_comes, max_wait_s=5.0)


async def _busy_desk_with_long_waits(rig: Rig) -> None:
    """Every agent signed in but busy, and recent callers waited 5 minutes: the queue is long."""
    for agent in rig.agents:
        await rig.store.set_presence(agent.id, Presence.BUSY, 1000.0, "test")
    await rig.store.save_call(WAITS_KEY, {"waits": [300.0, 320.0]}, 3600)


async def _asked_callback(rig: Rig) -> str:
    await _busy_desk_with_long_waits(rig)
    await rig.speak("我要投诉，你们太不负责了")
    await rig.time.advance(0.3)
    await settle(lambda: len(rig.replies()) >= 2)
    await rig.play_out()
    said = "".join(rig.replies()[1:])
    assert "要回电吗" in said and rig.call.session.placement is not None
    assert rig.call.session.placement.status == "queued" and rig.hold_frames_sent() == 0  # asked before holding
    assert [q.call_id for q in await rig.store.queue()] == [rig.call.session.call_id]
    return rig.call.session.call_id


async def _long_wait_callback_chosen(rig: Rig) -> None:
    call_id = await _asked_callback(rig)
    await rig.ask("好，那你们回电吧", "已为您登记回电")
    assert rig.hold_frames_sent() == 0
    outcome = await asyncio.wait_for(_outcome(rig), 10)
    assert outcome.type == "callback" and outcome.skill == "complaint"
    assert await rig.store.queue() == []  # out of the agents' queue
    record = await rig.store.load_call(call_id)
    assert record is not None and record["status"] == "cancelled"


test_a_long_wait_offers_a_callback_and_a_yes_leaves_the_queue = transfer_test(_long_wait_callback_chosen)


async def _long_wait_holds_on(rig: Rig) -> None:
    call_id = await _asked_callback(rig)
    await rig.ask("不用，我等着", "请您稍等")
    await rig.time.advance(1.0)
    assert rig.hold_frames_sent() > 0 and rig.call.holding  # on hold, still queued
    assert [q.call_id for q in await rig.store.queue()] == [call_id]
    await rig.sign_in_all()  # the agents are free again
    await rig.dispatcher.dispatch()
    _, agent_id = await rig.offered()
    assert await rig.dispatcher.accept(agent_id, call_id)
    outcome = await asyncio.wait_for(_outcome(rig), 10)
    assert outcome.type == "transferred" and outcome.agent is not None and outcome.agent.id == agent_id


test_a_long_wait_offers_a_callback_and_a_no_keeps_the_place = transfer_test(_long_wait_holds_on, wire_answers=True)


async def _hangs_up_on_hold(rig: Rig) -> None:
    await rig.complain()
    call_id, agent_id = await rig.offered()
    await rig.time.advance(1.0)
    rig.call.stop()  # the caller hangs up
    outcome = await asyncio.wait_for(_outcome(rig), 10)
    assert outcome.type == "abandoned" and outcome.reason == "等待人工时挂断"
    record = await rig.store.load_call(call_id)
    assert record is not None and record["status"] == "cancelled"
    assert (await rig.store.agent(agent_id)).calls == ()
    assert [e["type"] for _, e in await rig.store.read(f"agent:{agent_id}")][-1] == "cancel"


test_a_caller_who_hangs_up_on_hold_withdraws_the_offer = transfer_test(_hangs_up_on_hold)


async def _handed_over(rig: Rig) -> None:
    await rig.complain()
    call_id, agent_id = await rig.offered()
    assert await rig.dispatcher.accept(agent_id, call_id)
    outcome = await asyncio.wait_for(_outcome(rig), 10)
    assert isinstance(rig.wire, HandOverWire) and rig.wire.contacts == [AgentContact(sip_uri="sip:agent@127.0.0.1")]
    assert outcome.type == "transferred" and outcome.agent is not None and outcome.agent.id == agent_id


test_an_agent_phone_reached_by_the_wire_takes_the_caller = transfer_test(_handed_over, wire_answers=True)


async def _phone_not_answered(rig: Rig) -> None:
    await rig.complain()
    call_id, first = await rig.offered()
    assert await rig.dispatcher.accept(first, call_id)
    await settle(lambda: isinstance(rig.wire, HandOverWire) and len(rig.wire.contacts) == 1)
    await rig.dispatcher.dispatch()
    _, second = await rig.offered()  # the phone rang out: the offer went to the next agent
    assert second != first and not rig.call.stopped
    record = await rig.store.load_call(call_id)
    assert record is not None and first in record["entry"]  # (tried: not offered again)
    assert (await rig.store.agent(first)).calls == ()  # the first agent's line is free again
    assert [e["type"] for _, e in await rig.store.read(f"agent:{first}")][-1] == "cancel"


test_an_agent_phone_that_does_not_answer_means_the_next_agent = transfer_test(_phone_not_answered, wire_answers=False)


async def _take(chunks: Any, n: int) -> Any:
    count = 0
    async for chunk in chunks:
        yield chunk
        count += 1
        if count >= n:
            return


async def _outcome(rig: Rig) -> Any:
    """How the call ended (its ``run()``), time moving on meanwhile."""
    while not rig.task.done():
        await rig.time.advance(0.05)
        await asyncio.sleep(0.01)
    return rig.task.result()
