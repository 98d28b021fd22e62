"""Callers pause mid-sentence: unfinished turns wait longer, a preamble is not answered, and speech
right after a turn (before its answer was heard) continues it — the session retracts that turn.

Rules of ``voice.live_turns`` as pure functions; the live core with virtual time and scripted
speech (``test_live.Rig``); the session's retraction with the real dialog on every test shop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from brain import Call, U, open_order, shop_for
from livefakes import settle
from shops import SHOPS, snapshot_data
from test_live import CONFIG, Rig, hotline, live

from core.types import ChangeOrder
from voice.live_turns import is_preamble, sounds_unfinished
from voice.session import Expectation
from voice.transfers import LocalDesk

__all__ = ["hotline"]  # the module fixture test_live's rig runs on

PREAMBLES = ["我想问", "请问", "喂", "那个", "嗯那个", "我想问一下啊", "喂，您好，请问", "就是", "我想咨询一下", "我的"]
OPEN_CLAUSES = ["如果今天不发货的话", "因为我那个", "查一下你们的", "我昨天买的那个然后", "我想问一下这个订单的话"]
COMPLETE = ["我的快递到哪了", "帮我查一下物流", "我要退货", "你们有什么优惠活动", "我在滨海新区有房", "好的谢谢"]


@pytest.mark.parametrize("text", PREAMBLES)
def test_a_preamble_is_unfinished(text: str) -> None:
    assert is_preamble(text) and sounds_unfinished(text)


@pytest.mark.parametrize("text", OPEN_CLAUSES)
def test_an_open_clause_is_unfinished_but_not_a_preamble(text: str) -> None:
    assert sounds_unfinished(text) and not is_preamble(text)


@pytest.mark.parametrize("text", COMPLETE)
def test_a_complete_question_is_neither(text: str) -> None:
    assert not sounds_unfinished(text) and not is_preamble(text)


def test_an_unfinished_text_waits_longer_even_when_confident() -> None:
    free = CONFIG.turn_wait(Expectation.FREE, 0.5, "我的快递到哪了")
    assert free == CONFIG.waits[Expectation.FREE]
    assert CONFIG.turn_wait(Expectation.FREE, 0.95, "我的快递到哪了") == 0.0
    assert CONFIG.turn_wait(Expectation.FREE, 0.95, "我想问") == CONFIG.unfinished_wait > free
    assert CONFIG.turn_wait(Expectation.DIGITS, 0.5, "那个") == CONFIG.waits[Expectation.DIGITS]  # never shorter


@live()
async def test_a_pause_after_a_preamble_does_not_end_the_turn(rig: Rig) -> None:
    await rig.speak("我想问", seconds=0.5, confidence=0.9)
    await rig.time.advance(0.5)  # a confident final and longer than the free-speech wait: still waiting
    assert rig.turns() == []
    await rig.speak("我的快递到哪了", confidence=0.9)
    await rig.time.advance(0.1)
    await settle(lambda: rig.turns() == ["我想问我的快递到哪了"])
    assert [line.text for line in rig.call.session.state.transcript if line.speaker == "caller"] == [
        "我想问我的快递到哪了"
    ]


@live()
async def test_a_bare_preamble_is_asked_to_go_on_and_the_next_words_join_it(rig: Rig) -> None:
    await rig.speak("我想问一下", seconds=0.5)
    await rig.time.advance(CONFIG.unfinished_wait + 0.05)
    await settle(lambda: rig.turns() == ["我想问一下"])
    await settle(lambda: rig.voice.spoken[-1:] == [rig.call.prompts.go_on])
    assert rig.wire.kinds("turn")[0].data["intents"] == []  # no intent's answer to a preamble
    assert rig.call.session.expecting() is Expectation.FREE and not rig.call.session.state.turns
    await rig.play_out()  # the caller heard 您请说 whole: what comes next is new, but it goes on from 我想问一下
    await rig.time.advance(2.0)
    await rig.speak("你们有什么优惠活动", confidence=0.95)
    await settle(lambda: len(rig.turns()) == 2)
    assert rig.turns()[1] == "我想问一下你们有什么优惠活动"
    assert rig.wire.kinds("turn")[1].data["intents"]


@live()
async def test_speech_right_after_a_turn_continues_it_and_the_answer_is_dropped(rig: Rig) -> None:
    await rig.speak("我的快递", confidence=0.6)
    await rig.time.advance(CONFIG.waits[Expectation.FREE] + 0.02)
    await settle(lambda: rig.turns() == ["我的快递"])
    await rig.speak("到哪了", seconds=0.6, confidence=0.6)  # 0.6 s after the turn's end, nothing heard whole
    await rig.time.advance(CONFIG.waits[Expectation.DIGITS] + 0.05)  # the answer asked for the order number
    await settle(lambda: len(rig.turns()) == 2)
    assert rig.turns()[-1:] == ["我的快递到哪了"]
    assert rig.wire.kinds("turn")[-1].data["continued"] is True
    caller = [line.text for line in rig.call.session.state.transcript if line.speaker == "caller"]
    assert caller == ["我的快递到哪了"]  # the retracted turn left no line: the joined turn is there once
    assert len(rig.call.session.state.turns) == 1
    asked = _replies_after(rig, "我的快递")  # the answer to 我的快递 alone, if it was played at all
    assert not asked or (asked[0], True) not in rig.call.session.heard  # it was cut or never played


@live()
async def test_speech_after_the_answer_was_heard_is_a_new_turn(rig: Rig) -> None:
    await rig.speak("你们有什么优惠活动", confidence=0.95)
    await settle(lambda: rig.turns() == ["你们有什么优惠活动"])
    await rig.play_out()  # every sentence heard whole
    await rig.speak("我的快递到哪了", confidence=0.95)
    await settle(lambda: len(rig.turns()) == 2)
    assert rig.turns()[1] == "我的快递到哪了" and rig.wire.kinds("turn")[1].data["continued"] is False
    assert len(rig.call.session.state.turns) == 2


@pytest.mark.parametrize("name", SHOPS)
def test_a_retracted_turn_restores_the_state_before_it(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    call = Call(shop, None)
    before = call.session.state
    call.say(U("我的快递到哪了", ("logistics.track", {})))
    assert call.session.expecting() is Expectation.DIGITS  # an unknown caller is asked for the order
    assert call.session.retract_last_turn()
    assert call.session.state == before and call.session.expecting() is Expectation.FREE
    assert not call.session.retract_last_turn()  # one turn back, not more


@pytest.mark.parametrize("name", SHOPS)
def test_a_turn_that_changed_an_order_is_never_retracted(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    owner = shop.customer(order.customer_id)
    assert owner is not None
    call = Call(shop, owner.phone)
    call.say(U(f"订单{order.id}我想改个收货地址", ("order.modify", {"order_id": order.id})))
    call.say(U("就是江苏省苏州市工业园区星湖街328号", ("other", {})))
    done = call.say(U("对的", ("affirm", {})))
    assert any(isinstance(a, ChangeOrder) for a in done.actions) and shop.change_log(order.id)
    state = call.session.state
    assert not call.session.retract_last_turn()
    assert call.session.state is state


@pytest.mark.parametrize("name", SHOPS)
def test_a_turn_that_booked_a_callback_is_never_retracted(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    desk = LocalDesk(shop.agents(), [])  # nobody signed in: the transfer becomes a callback
    try:
        call = Call(shop, "+8613900139001", desk)  # a number to call back
        done = call.say(U("我要投诉，给我转人工", ("complaint", {}), ("human_agent", {})))
        state = call.session.state
        assert state.callback is not None and not done.ended  # the call goes on with the bot
        assert not call.session.retract_last_turn()
        assert call.session.state is state
    finally:
        desk.close()


def _paid_order() -> tuple[str, str]:
    """An order of the sample shop whose address can still change, and its owner's phone."""
    data = snapshot_data("sample")
    order = next(o for o in data["orders"] if o["status"] == "paid")
    return order["id"], next(c["phone"] for c in data["customers"] if c["id"] == order["customer"])


PAID, OWNER = _paid_order()


async def _run_until(rig: Rig, condition: Callable[[], bool]) -> None:
    """Let virtual time run (marks come back as they are due) until ``condition()`` holds."""
    for _ in range(500):
        if condition():
            return
        await rig.time.advance(0.02)
        for name in rig.wire.marks:
            rig.call.mark_played(name)
        await asyncio.sleep(0.005)  # real time for the dialog's thread
    raise AssertionError("condition not reached")


def _replies_after(rig: Rig, turn: str) -> list[str]:
    """The dialog's replies (not the acknowledgement) after the caller's turn ``turn``."""
    kinds = [(e.kind, e.data.get("text")) for e in rig.wire.events]
    if ("turn", turn) not in kinds:
        return []
    start = kinds.index(("turn", turn))
    return [str(t) for k, t in kinds[start:] if k == "reply" and t != rig.call.prompts.acknowledge]


@live(caller=OWNER)
async def test_speech_right_after_an_order_was_changed_does_not_undo_it(rig: Rig) -> None:
    shop = rig.call.session.shop
    new = "江苏省苏州市工业园区星湖街328号"
    for text, wait in ((f"订单{PAID}我想改个收货地址", Expectation.FREE), (new, Expectation.DIGITS)):
        await rig.speak(text, confidence=0.6)
        await rig.time.advance(CONFIG.waits[wait] + 0.05)
        await settle(lambda t=text: rig.turns()[-1:] == [t])  # type: ignore[misc]
        await rig.play_out()
    assert rig.call.session.expecting() is Expectation.YES_NO
    await rig.speak("对的", seconds=0.4, confidence=0.95)
    await settle(lambda: shop.order(PAID).address == new)  # type: ignore[union-attr]
    await rig.speak("好的谢谢", seconds=0.5, confidence=0.95)  # at once, before the answer was heard
    replies = lambda: _replies_after(rig, "对的")  # noqa: E731
    await _run_until(rig, lambda: len(replies()) >= 2)
    first, second = replies()[:2]
    assert new in first  # the change is told; spoken over, it is played again — or, when the dialog's
    # thread was slow, it was heard whole and 好的谢谢 is answered as its own turn: never joined to 对的
    assert second == first or rig.turns()[-1:] == ["好的谢谢"]
    await rig.play_out()
    await settle(lambda: rig.turns()[-1:] == ["好的谢谢"])
    assert shop.order(PAID).address == new  # type: ignore[union-attr]
    assert rig.wire.kinds("turn")[-1].data["continued"] is False
    caller = [line.text for line in rig.call.session.state.transcript if line.speaker == "caller"]
    assert caller[-2:] == ["对的", "好的谢谢"]
