"""Defects 1, 7d, 9a: an order is only told about or changed for its owner or a verified caller; the
dialog never writes (the session makes the change it returns, and says when the shop refuses); agents
are released when calls end and no transfer is claimed without one. On every test shop, with the
expected facts taken from that shop's own data."""

from __future__ import annotations

from pathlib import Path

import pytest
from brain import Call, U, customers, last_four, open_order, secrets, shop_for
from shops import SHOPS

from core.errors import NotFoundError, ProtocolError
from core.types import ChangeOrder, Transfer, Understanding
from dialog import manager
from dialog.access import BY_NAME, BY_PHONE, OWNER
from dialog.nlu import Understander
from dialog.state import Context
from dialog.vocabulary import Vocabulary
from shop.store import SqliteShop
from voice.transfers import LocalDesk

NEW_ADDRESS = "浙江省宁波市鄞州区天童南路100号"


def ask_about(oid: str) -> Understanding:
    return U(f"订单{oid}现在什么情况", ("order.status", {"order_id": oid}))


def change_address(oid: str) -> Understanding:
    return U(f"订单{oid}地址改成{NEW_ADDRESS}", ("order.modify", {"order_id": oid}))


def stranger(shop: SqliteShop, name: str, owner_id: str) -> str:
    return next(c.phone for c in customers(shop, name) if c.id != owner_id)


@pytest.mark.parametrize("name", SHOPS)
@pytest.mark.parametrize("who", ["other customer", "anonymous"])
def test_a_stranger_hears_nothing_of_an_order_and_cannot_change_it(name: str, who: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    caller = stranger(shop, name, order.customer_id) if who == "other customer" else None
    call = Call(shop, caller)
    asked = call.say(ask_about(order.id))
    changed = call.say(change_address(order.id))
    for reply in (asked.reply, changed.reply):
        assert "后四位" in reply  # asked to verify, and nothing else
        assert not any(secret in reply for secret in secrets(shop, order)), reply
    assert not any(isinstance(a, ChangeOrder) for a in (*asked.actions, *changed.actions))
    assert shop.order(order.id).address == order.address and shop.change_log(order.id) == []


@pytest.mark.parametrize("name", SHOPS)
@pytest.mark.parametrize("answer", ["phone", "name"])
def test_verification_unlocks_the_order_and_the_change_is_logged_with_who_asked(
    name: str, answer: str, tmp_path: Path
) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    owner = shop.customer(order.customer_id)
    assert owner is not None
    call = Call(shop, None)
    call.say(ask_about(order.id))
    said = last_four(owner.phone) if answer == "phone" else f"收件人是{owner.name}"
    unlocked = call.say(U(said, ("other", {})))
    assert any(secret in unlocked.reply for secret in secrets(shop, order))  # the order, by its items
    asked = call.say(change_address(order.id))
    assert f"新地址是{NEW_ADDRESS}，对吗" in asked.reply
    done = call.say(U("对", ("affirm", {})))
    how = BY_PHONE if answer == "phone" else BY_NAME
    assert [type(a) for a in done.actions][0] is ChangeOrder and done.actions[0].requested_by == how
    assert shop.order(order.id).address == NEW_ADDRESS and "改成" in done.reply
    assert [(c.field, c.new, c.requested_by) for c in shop.change_log(order.id)] == [("address", NEW_ADDRESS, how)]


@pytest.mark.parametrize("name", SHOPS)
def test_the_owner_changes_by_caller_id_and_a_refusal_is_told(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    owner = shop.customer(order.customer_id)
    assert owner is not None
    call = Call(shop, owner.phone)
    call.say(U(f"订单{order.id}地址改成{order.address}", ("order.modify", {"order_id": order.id})))
    refused = call.say(U("对", ("affirm", {})))  # the same address: the shop refuses, the caller hears why
    assert "没改成" in refused.reply and shop.change_log(order.id) == []
    call.say(change_address(order.id))
    call.say(U("是的", ("affirm", {})))
    assert [c.requested_by for c in shop.change_log(order.id)] == [OWNER]


@pytest.mark.parametrize("name", SHOPS)
def test_a_wrong_answer_is_asked_again_and_a_second_ends_the_tries(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    owner = shop.customer(order.customer_id)
    assert owner is not None
    wrong = next(str(n).zfill(4) for n in range(10000) if str(n).zfill(4) != last_four(owner.phone))
    call = Call(shop, None)
    call.say(ask_about(order.id))
    again = call.say(U(wrong, ("other", {})))
    assert "对不上" in again.reply and "后四位" in again.reply and not again.ended
    last = call.say(U("张三", ("other", {})))
    assert last.ended and isinstance(last.actions[-1], Transfer)  # no third guess: a human takes over
    assert "核验" in last.actions[-1].request.reason
    for reply in call.replies[1:]:
        assert not any(secret in reply for secret in secrets(shop, order)), reply
    assert order.id not in call.session.state.orders  # nothing of it was opened to this caller


def lines_held(desk: LocalDesk) -> dict[str, tuple[str, ...]]:
    states = desk._run(desk.store.agents)
    return {agent_id: state.calls for agent_id, state in states.items() if state.calls}


@pytest.mark.parametrize("name", SHOPS)
def test_six_transfers_in_a_row_leave_every_agent_free(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    desk = LocalDesk(shop.agents(), [a.id for a in shop.agents()])
    phone = customers(shop, name)[0].phone
    for _ in range(6):
        call = Call(shop, phone, desk)
        result = call.say(U("转人工", ("human_agent", {})))
        held = lines_held(desk)
        assert "转接" in result.reply and held  # a line is reserved while the call is on
        outcome = call.session.end()
        assert outcome.type == "transferred" and outcome.agent is not None
        assert outcome.agent.id in held
    assert lines_held(desk) == {}
    desk.close()


@pytest.mark.parametrize("name", SHOPS)
def test_with_every_agent_busy_the_caller_hears_their_place_in_the_queue(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    desk = LocalDesk(shop.agents(), [a.id for a in shop.agents()])
    phone = customers(shop, name)[0].phone
    busy = []
    while True:  # every agent gets a call until one is queued
        call = Call(shop, phone, desk)
        result = call.say(U("转人工", ("human_agent", {})))
        assert call.session.placement is not None
        if call.session.placement.status == "queued":
            break
        busy.append(call)
        assert len(busy) <= sum(a.max_concurrent for a in shop.agents())
    assert "转接" in result.reply and "第一位" in result.reply  # queued: told so, and where
    outcome = call.session.end()
    assert outcome.type == "transferred" and outcome.agent is None
    desk.close()


@pytest.mark.parametrize("name", SHOPS)
def test_with_no_agent_signed_in_no_transfer_is_claimed(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    desk = LocalDesk(shop.agents(), [])
    call = Call(shop, customers(shop, name)[0].phone, desk)
    result = call.say(U("转人工", ("human_agent", {})))
    assert "转接" not in result.reply and "回电" in result.reply and "忙" in result.reply
    assert not any(isinstance(a, Transfer) for a in result.actions)
    outcome = call.session.end()
    assert outcome.type == "callback" and outcome.agent is None
    desk.close()


@pytest.mark.parametrize("name", SHOPS)
def test_a_new_question_instead_of_the_answer_is_no_failed_try(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    call = Call(shop, None)
    call.say(ask_about(order.id))
    other = call.say(U("现在有什么活动", ("promotion.inquiry", {})))
    assert "对不上" not in other.reply and call.session.state.verify_failures == 0
    assert not any(secret in other.reply for secret in secrets(shop, order))


DIGITS = "零幺二三四五六七八九"


@pytest.mark.parametrize("name", SHOPS)
@pytest.mark.parametrize("how", ["spoken", "keypad"])
def test_the_last_four_digits_unlock_when_spoken_or_keyed(name: str, how: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    owner = shop.customer(order.customer_id)
    assert owner is not None
    digits = last_four(owner.phone)
    said = "尾号" + "".join(DIGITS[int(d)] for d in digits) if how == "spoken" else digits  # DTMF comes as text
    call = Call(shop, None)
    call.say(ask_about(order.id))
    real = Understander(Vocabulary.from_products(shop.products()))
    now = shop.info().as_of
    assert now is not None
    unlocked = call.say(real.understand(said, now))
    assert "核对好了" in unlocked.reply and any(secret in unlocked.reply for secret in secrets(shop, order))


@pytest.mark.parametrize("name", SHOPS)
def test_the_dialog_only_returns_the_change_and_never_writes(name: str, tmp_path: Path) -> None:
    shop = shop_for(name, tmp_path)
    order = open_order(shop, name)
    owner = shop.customer(order.customer_id)
    now = shop.info().as_of
    assert owner is not None and now is not None
    ctx = Context.create(shop, now)
    state, _ = manager.start(owner.phone, ctx)
    state, _ = manager.handle(state, change_address(order.id), ctx)
    state, actions = manager.handle(state, U("对", ("affirm", {})), ctx)
    assert actions == (ChangeOrder(order.id, (("address", NEW_ADDRESS),), OWNER),)
    assert shop.order(order.id).address == order.address and shop.change_log(order.id) == []
    with pytest.raises(ProtocolError, match="changed"):  # nothing else until the session reports back
        manager.handle(state, U("喂", ("greeting", {})), ctx)
    state, said = manager.changed(state, [], NotFoundError(f"没有找到订单{order.id}"), ctx)
    assert "没改成" in said[0].text and state.pending is None and state.changes == ()
