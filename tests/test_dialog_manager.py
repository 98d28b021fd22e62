"""The dialog manager as a pure function over the REAL shop (reference snapshot imported into SQLite).

Understandings are built by hand here so each test pins one dialog rule; the end-to-end tests with
the real understander are in test_call_cli.py. Expected figures are computed by hand from
/work/shared/fixtures/shop/shop.json (shop now = as_of 2026-11-20 10:00 +08:00).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from paths import REFERENCE_SHOP, shared

from core.errors import ProtocolError
from core.shop import ShopPort
from core.types import Ask, ChangeOrder, Emotion, EmotionLabel, Hangup, Intent, Say, Skill, Transfer, Understanding
from dialog import manager, policy
from dialog.state import CallState, ChooseOrder, ConfirmChange, Context, OfferCallback
from shop.importer import Snapshot, load_snapshot
from shop.store import SqliteShop, import_snapshot

CST = timezone(timedelta(hours=8))
AS_OF = datetime(2026, 11, 20, 10, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return load_snapshot(shared(REFERENCE_SHOP))


@pytest.fixture
def shop(snapshot: Snapshot, tmp_path: Path) -> SqliteShop:
    import_snapshot(tmp_path / "shop.sqlite3", snapshot)
    return SqliteShop(tmp_path / "shop.sqlite3")


def U(text: str, *intents: tuple[str, Mapping[str, str]], label: str = "neutral", score: float = 0.8) -> Understanding:
    found = tuple(Intent(name, 0.9, slots) for name, slots in intents)
    return Understanding(text, text, found, Emotion(EmotionLabel(label), score))


def ctx(shop: ShopPort, at: datetime = AS_OF) -> Context:
    return Context.create(shop, at)


def run(shop: ShopPort, caller: str | None, *turns: Understanding, at: datetime = AS_OF) -> tuple[CallState, list]:
    state, actions = manager.start(caller, ctx(shop, at))
    said = list(actions)
    for u in turns:
        state, actions = manager.handle(state, u, ctx(shop, at))
        said += actions
    return state, said


def test_greets_a_known_caller_by_full_name_with_their_history(shop: SqliteShop) -> None:
    state, said = run(shop, "+8613800138001")
    assert state.customer is not None and state.customer.id == "C001"
    # 张丽's last contact (2026-11-12): 「咨询羽绒服尺码，已解答」; no gender in the data, so no 女士/先生
    assert said[0].text.startswith("张丽您好") and "羽绒服尺码" in said[0].text
    assert "女士" not in said[0].text and "先生" not in said[0].text


def test_a_repeat_complainer_is_greeted_with_an_apology_and_a_stranger_generically(shop: SqliteShop) -> None:
    _, said = run(shop, "+8613800138008")  # 周杰: two past complaints
    assert said[0].text.startswith("周杰您好") and "添麻烦" in said[0].text
    state, said = run(shop, "+8613900139001")
    assert state.customer is None and said[0].text.startswith("您好")


def test_two_orders_and_no_clue_asks_which_then_answers_the_chosen_one(shop: SqliteShop) -> None:
    # 李梅 has DD20261119009 (围巾+袜子, 19th) and DD20261118003 (羽绒服, livestream, 18th)
    state, said = run(shop, "+8613800138003", U("为什么没有满减", ("promotion.not_applied", {})))
    assert isinstance(said[-1], Ask) and "围巾" in said[-1].text and "羽绒服" in said[-1].text
    assert isinstance(state.pending, ChooseOrder)
    assert set(state.pending.candidates) == {"DD20261119009", "DD20261118003"}
    state, actions = manager.handle(state, U("围巾那单", ("other", {})), ctx(shop))
    # 259 + 39 = 298 < 300: 2元 short of 满300减40; socks 39元 → 337 ≥ 300, saves 40 → 39 − 40 = −1 (1元 less)
    text = actions[0].text
    assert "全店满300减40" in text and "差2元" in text and "39元" in text and "少花1元" in text
    assert state.orders == ("DD20261119009",) and state.pending is None


@pytest.mark.parametrize("asked_as", ["promotion.bundle", "promotion.inquiry"])
def test_how_to_top_up_is_about_the_one_unshipped_order(shop: SqliteShop, asked_as: str) -> None:
    # 李梅's only unshipped order is DD20261119009: 259 + 39 = 298, 2元 short of 满300减40;
    # socks 39元 → 337 ≥ 300 saves 40 → 39 − 40 = −1, so 1元 less in total
    state, said = run(shop, "+8613800138003", U("差几块钱满减怎么凑单", (asked_as, {"promotion": "凑单"})))
    assert isinstance(said[-1], Say)
    assert "差2元" in said[-1].text and "39元" in said[-1].text and "少花1元" in said[-1].text
    assert state.orders == ("DD20261119009",)


def test_how_to_top_up_without_an_open_order_explains_the_deals(shop: SqliteShop) -> None:
    # 陈浩 (C004) has only a delivered order: nothing to top up, so the bundle deal is explained
    state, said = run(shop, "+8613800138004", U("怎么凑单", ("promotion.bundle", {"promotion": "凑单"})))
    assert isinstance(said[-1], Say) and "立减30" in said[-1].text
    assert state.orders == ()


def test_the_date_slot_picks_the_order_created_that_day(shop: SqliteShop) -> None:
    state, said = run(
        shop, "+8613800138003", U("我18号买的那单怎么没满减", ("promotion.not_applied", {"date": "2026-11-18"}))
    )
    # DD20261118003: livestream price 429元 (list 499元, saved 70元), excluded from 满减
    assert isinstance(said[-1], Say) and "直播专享价商品不参与满减" in said[-1].text and "70元" in said[-1].text
    assert state.orders == ("DD20261118003",)


def carry_out(shop: SqliteShop, state: CallState, actions: tuple) -> tuple[CallState, tuple]:
    """What the session does with a ChangeOrder: make it through the port, tell the dialog."""
    (change,) = actions
    assert isinstance(change, ChangeOrder)
    records = [
        shop.change_order(change.order_id, f, v, AS_OF, requested_by=change.requested_by) for f, v in change.steps
    ]
    return manager.changed(state, records, None, ctx(shop))


def test_address_change_is_confirmed_then_made(shop: SqliteShop) -> None:
    new = "北京市朝阳区建国路88号"
    state, said = run(shop, "+8613800138001", U(f"把地址改成{new}", ("order.modify", {})))
    assert isinstance(said[-1], Ask) and f"新地址是{new}，对吗" in said[-1].text
    assert isinstance(state.pending, ConfirmChange)
    state, actions = manager.handle(state, U("对", ("affirm", {})), ctx(shop))
    assert actions == (ChangeOrder("DD20261119001", (("address", new),), "owner-caller-id"),)
    assert shop.order("DD20261119001").address == "上海市浦东新区张江路88号"  # the dialog never writes
    state, actions = carry_out(shop, state, actions)
    assert shop.order("DD20261119001").address == new
    assert [c.new for c in state.changes] == [new] and "改成" in actions[0].text


def test_address_change_denied_keeps_the_order(shop: SqliteShop) -> None:
    state, _ = run(shop, "+8613800138001", U("地址改成北京市朝阳区建国路88号", ("order.modify", {})))
    state, actions = manager.handle(state, U("不改了", ("order.modify", {})), ctx(shop))  # NLU misses the deny
    assert shop.order("DD20261119001").address == "上海市浦东新区张江路88号"
    assert state.changes == () and state.pending is None and "不改" in actions[0].text


def test_colour_and_size_changes_are_checked_against_the_catalogue(shop: SqliteShop) -> None:
    # DD20261119001 holds T恤 白色M. 白色L: stock 0, restock 2026-11-26 → told, not asked
    state, said = run(shop, "+8613800138001", U("T恤换L码", ("order.modify", {"product": "P1001", "size": "L"})))
    assert isinstance(said[-1], Say) and "26号补货" in said[-1].text and state.pending is None
    # 黑色M: 35 in stock → asked, and on 「是的」 the line becomes P1001-BLK-M (one SKU step)
    state, said = run(shop, "+8613800138001", U("T恤改成黑色", ("order.modify", {"product": "P1001", "color": "黑色"})))
    assert isinstance(said[-1], Ask) and "T恤的颜色改成黑色" in said[-1].text
    carry_out(shop, *manager.handle(state, U("是的", ("affirm", {})), ctx(shop)))
    order = shop.order("DD20261119001")
    assert order is not None and sorted(i.sku for i in order.items) == ["P1001-BLK-M", "P1007-FLR-S"]
    # T恤 now 黑色: sizes M and XL only
    _, said = run(shop, "+8613800138001", U("T恤换L码", ("order.modify", {"product": "P1001", "size": "L"})))
    assert "T恤黑色没有L码，有M码和XL码" in said[-1].text


def test_two_failed_understandings_in_a_row_transfer(shop: SqliteShop) -> None:
    state, said = run(shop, "+8613800138004", U("", ("other", {})))
    assert isinstance(said[-1], Ask) and state.failed == 1
    state, actions = manager.handle(state, U("啊吧啊吧", ("other", {})), ctx(shop))
    assert isinstance(actions[0], Transfer)
    req = actions[0].request
    assert req.skill is Skill.GENERAL and req.priority == 4 and state.ended


def test_understanding_in_between_resets_the_failure_count(shop: SqliteShop) -> None:
    state, _ = run(
        shop,
        "+8613800138004",
        U("", ("other", {})),
        U("T恤白色L码有货吗", ("inventory.stock", {"product": "P1001", "color": "白色", "size": "L"})),
        U("啊吧", ("other", {})),
    )
    assert state.failed == 1 and not state.ended


def test_angry_caller_is_transferred_with_facts_and_a_handoff(shop: SqliteShop) -> None:
    state, said = run(shop, "+8613800138002", U("快递到底怎么回事气死我了", ("logistics.track", {}), label="angry"))
    transfer = said[-1]
    assert isinstance(transfer, Transfer)
    # DD20261116002: last scan 2026-11-17 06:10 郑州转运中心; 75 h 50 min idle; eta 11-18 → 2 days late
    assert "郑州转运中心" in transfer.text and "3天多" in transfer.text
    req = transfer.request
    assert (req.skill, req.priority) == (Skill.LOGISTICS, 2)  # angry = 2, no past complaints, normal member
    h = req.handoff
    assert h.customer_id == "C002" and h.orders == ("DD20261116002",) and len(h.summary) == 3
    assert h.emotion_trend == (EmotionLabel.ANGRY,) and "KB-LOST-PACKAGE" in h.kb_suggestions
    assert [line.speaker for line in h.transcript] == ["bot", "caller", "bot"]


def test_repeat_complainer_gets_higher_priority_than_a_first_complaint(shop: SqliteShop) -> None:
    _, said = run(shop, "+8613800138008", U("我要投诉", ("complaint", {}), label="angry"))
    repeat = said[-1].request
    _, said = run(shop, "+8613800138004", U("我要投诉", ("complaint", {}), label="angry"))
    first = said[-1].request
    assert repeat.skill is first.skill is Skill.COMPLAINT
    assert (repeat.priority, first.priority) == (1, 2)  # 2, one step up for 周杰's two past complaints


def test_a_complaint_read_with_low_confidence_is_not_a_transfer(shop: SqliteShop) -> None:
    # real speech, 「我有的时候说不清楚你们知道吗」: the classifier's 0.21 complaint is a guess
    vague = Understanding("我有的时候说不清楚你们知道吗", "我有的时候说不清楚你们知道吗",
                          (Intent("complaint", 0.21, {}),), Emotion(EmotionLabel.NEUTRAL, 1.0))  # fmt: skip
    state, said = run(shop, "+8613800138002", vague)
    assert not isinstance(said[-1], Transfer) and state.transfer is None
    assert isinstance(said[-1], Say | Ask) and state.failed == 1


def test_compensation_demand_is_outside_policy(shop: SqliteShop) -> None:
    _, said = run(shop, "+8613800138005", U("包裹坏了我要你们赔偿", ("aftersale.damage", {})))
    assert isinstance(said[-1], Transfer) and said[-1].request.skill is Skill.COMPLAINT


def test_outside_agent_hours_books_a_callback_instead(shop: SqliteShop) -> None:
    late = datetime(2026, 11, 20, 23, 0, tzinfo=CST)  # agents 09:00-22:00
    state, said = run(shop, "+8613800138005", U("转人工", ("human_agent", {})), at=late)
    assert not any(isinstance(a, Transfer) for a in said)
    assert state.callback is not None and state.transfer is None
    assert "明天09:00以后" in said[-1].text


def test_a_booked_callback_is_not_promised_again_when_the_caller_asks_for_a_human(shop: SqliteShop) -> None:
    late = datetime(2026, 11, 20, 23, 0, tzinfo=CST)
    state, said = run(
        shop, "+8613800138005", U("转人工", ("human_agent", {})), U("我要人工", ("human_agent", {})), at=late
    )
    assert not any(isinstance(a, Transfer) for a in said) and not state.ended
    assert "已经给您登记" in said[-1].text and state.callback is not None


def _transferred(shop: SqliteShop) -> tuple[CallState, Transfer]:
    state, said = run(shop, "+8613800138004", U("我要投诉", ("complaint", {}), label="angry"))
    assert isinstance(said[-1], Transfer) and state.ended
    return state, said[-1]


def test_no_agent_books_the_callback_and_the_bot_serves_the_call_again(shop: SqliteShop) -> None:
    state, transfer = _transferred(shop)
    state, actions = manager.no_agent(state, transfer, ctx(shop))
    assert not state.ended and state.transfer is None and state.callback == transfer.request
    assert "回电" in actions[0].text and "转接" not in actions[0].text
    assert transfer.text not in [line.text for line in state.transcript]  # the transfer was never said
    state, actions = manager.handle(state, U("那给我转人工", ("human_agent", {})), ctx(shop))
    assert not any(isinstance(a, Transfer) for a in actions) and "已经给您登记" in actions[-1].text


@pytest.mark.parametrize(
    ("answer", "intents", "calls_back"),
    [
        ("好的", [("affirm", {})], True),
        ("要", [], True),  # a bare yes the classifier missed
        ("那你们回电吧", [], True),
        ("给我打回来", [("other", {})], True),
        ("不用了", [("deny", {})], False),
        ("不用回电", [("deny", {})], False),
        ("我等着", [], False),
        ("行，我等", [("affirm", {})], False),  # yes to waiting, not to the callback
        ("嗯", [], True),
        ("不用等了，回电吧", [("deny", {})], True),
        ("等不了", [], True),
        ("别回电了，我等", [("deny", {})], False),
        ("那个我想想", [], False),  # not an answer: the caller keeps the place they asked for
    ],
)
def test_a_long_wait_asks_for_a_callback_and_the_answer_decides(
    shop: SqliteShop, answer: str, intents: list, calls_back: bool
) -> None:
    state, transfer = _transferred(shop)
    state, actions = manager.queued(state, transfer, 3, 400.0, offer_callback=True)
    assert isinstance(state.pending, OfferCallback) and not state.ended
    assert "大约要等7分钟" in actions[0].text and actions[0].text.endswith("要回电吗？")
    state, actions = manager.handle(state, U(answer, *intents), ctx(shop))
    assert state.ended  # either way the bot is done: a callback and goodbye, or on hold for the agent
    if calls_back:
        assert state.transfer is None and state.callback == transfer.request
        assert isinstance(actions[-1], Hangup) and "已为您登记回电" in actions[-1].text
    else:
        assert state.transfer == transfer.request and state.callback is None
        assert "请您稍等" in actions[-1].text


def test_stalled_parcel_offers_logistics_and_affirm_transfers(shop: SqliteShop) -> None:
    state, said = run(shop, "+8613800138002", U("我的快递到哪了", ("logistics.track", {})))
    assert isinstance(said[-1], Ask) and "物流专员" in said[-1].text
    state, actions = manager.handle(state, U("好的", ("affirm", {})), ctx(shop))
    assert isinstance(actions[0], Transfer) and actions[0].request.skill is Skill.LOGISTICS


def test_unknown_caller_is_asked_for_the_order_number_then_helped(shop: SqliteShop) -> None:
    state, said = run(shop, None, U("我的快递到哪了", ("logistics.track", {})))
    assert isinstance(said[-1], Ask) and "订单号" in said[-1].text
    state, actions = manager.handle(state, U("DD20261199999", ("other", {})), ctx(shop))
    assert "没有查到订单号DD20261199999" in actions[0].text and isinstance(actions[0], Ask)
    state, actions = manager.handle(state, U("DD20261118003", ("other", {})), ctx(shop))
    assert "后四位" in actions[0].text and "上海徐汇营业部" not in actions[0].text  # verify first
    state, actions = manager.handle(state, U("8003", ("other", {})), ctx(shop))  # 李梅 +8613800138003
    # DD20261118003: 顺丰, out for delivery since 07:30 at 上海徐汇营业部, eta today
    assert "派送" in actions[0].text and "上海徐汇营业部" in actions[0].text


def test_state_is_not_mutated_and_a_turn_after_the_end_is_refused(shop: SqliteShop) -> None:
    state, _ = manager.start("+8613800138004", ctx(shop))
    before = state
    after, _ = manager.handle(state, U("转人工", ("human_agent", {})), ctx(shop))
    assert before == state and before.turns == () and after.ended
    with pytest.raises(ProtocolError, match="after the call ended"):
        manager.handle(after, U("喂", ("greeting", {})), ctx(shop))


def test_goodbye_hangs_up_and_the_contact_is_recorded(shop: SqliteShop) -> None:
    state, said = run(
        shop, "+8613800138007", U("我的退款到哪了", ("aftersale.refund_status", {})), U("谢谢再见", ("goodbye", {}))
    )
    # DD20261105008: 79元 refund 退款审核中, expected 2026-11-21 (明天); warehouse received 11-18
    assert "79元" in said[1].text and "退款审核中" in said[1].text and "明天" in said[1].text
    assert state.ended and said[-1].text.endswith("再见。")
    contact = policy.contact(state, ctx(shop))
    assert contact is not None and "查退款" in contact.summary and not contact.complaint


def test_an_escalating_trend_transfers_a_gold_customer_to_the_vip_desk(shop: SqliteShop) -> None:
    calm = U("我的快递到哪了", ("logistics.expedite", {}))
    worried = U("怎么还没发", ("logistics.ship_time", {}), label="anxious", score=0.5)
    upset = U("到底什么时候发", ("logistics.ship_time", {}), label="anxious", score=0.9)
    state, said = run(shop, "+8613800138001", calm, worried)
    assert not any(isinstance(a, Transfer) for a in said)
    state, actions = manager.handle(state, upset, ctx(shop))
    req = actions[0].request
    # rising: intensity 0 → 0.25 → 0.45; gold + upset → vip desk; escalating 3, one step for gold → 2
    assert (req.skill, req.priority, req.reason) == (Skill.VIP, 2, "客户情绪持续升级")


def test_vip_desk_only_for_complex_issues(shop: SqliteShop) -> None:
    one_topic = U("退款呢转人工", ("aftersale.refund_status", {}), ("human_agent", {}))
    _, said = run(shop, "+8613800138006", one_topic)  # 刘洋, gold, one topic → the topic's desk
    assert (said[-1].request.skill, said[-1].request.priority) == (Skill.AFTERSALE, 2)
    _, said = run(
        shop,
        "+8613800138006",
        U("有什么活动", ("promotion.inquiry", {})),
        U("我的快递呢，转人工", ("logistics.track", {}), ("human_agent", {})),
    )
    assert said[-1].request.skill is Skill.VIP  # two topics (promotion, logistics) for a gold customer


def test_a_choice_answer_is_not_also_read_as_a_new_question(shop: SqliteShop) -> None:
    state, _ = run(shop, "+8613800138003", U("为什么没有满减", ("promotion.not_applied", {})))
    # the classifier half-reads 「围巾那单」 as a damage report (0.63): an echo of the choice, not a need
    echo = Understanding("围巾那单", "围巾那单", (Intent("aftersale.damage", 0.63, {"product": "P1006"}),),
                         Emotion(EmotionLabel.NEUTRAL, 1.0))  # fmt: skip
    state, actions = manager.handle(state, echo, ctx(shop))
    assert isinstance(actions[0], Say) and "差2元" in actions[0].text and "破损" not in actions[0].text


def test_exchange_on_an_unshipped_order_is_an_order_change(shop: SqliteShop) -> None:
    exchange = U("T恤能换成黑色吗", ("aftersale.exchange", {"product": "P1001", "color": "黑色"}))
    state, said = run(shop, "+8613800138001", exchange)
    assert isinstance(said[-1], Ask) and "T恤的颜色改成黑色" in said[-1].text
    assert isinstance(state.pending, ConfirmChange) and state.pending.sku == "P1001-BLK-M"
