"""Parcel states, the 48-hour stall boundary, overdue days, and expedite options per VIP level.

Orders are built by hand here; the reference shop's own parcels are checked in test_shop_store.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from paths import REFERENCE_SHOP, shared

from core.shop import Customer, Order, OrderItem, OrderStatus, Policy, Shipment, ShipmentEvent, ShipmentState, Variant
from shop.logistics import expedite_options, logistics_status, ship_deadline
from shop.shipping_rules import ShippingRules, shipping_rules

TZ = ZoneInfo("Asia/Shanghai")
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)  # a Friday


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=CST)


PAID = t(19, 21, 16)


@pytest.fixture(scope="module")
def rules() -> ShippingRules:
    doc = json.loads(shared(REFERENCE_SHOP).read_text(encoding="utf-8"))
    return shipping_rules([Policy(p["id"], p["title"], tuple(p["tags"]), p["text"]) for p in doc["policies"]])


def order(
    status: OrderStatus = OrderStatus.SHIPPED,
    events: tuple[ShipmentEvent, ...] = (),
    eta: date | None = date(2026, 11, 21),
    paid_at: datetime | None = PAID,
    address: str = "上海市浦东新区张江路88号",
    sku: str = "TEE-M",
) -> Order:
    shipped = status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED)
    shipment = Shipment("中通快递", "ZT1", events[0].at if events else t(18, 9), events, eta) if shipped else None
    item = OrderItem(sku, "TEE", "T恤", "白色", "M", 1, 8900)
    return Order(
        "O1", "C1", t(19, 21, 15), paid_at, "app", status, (item,), (), None, 0, 8900, address, shipment
    )  # fmt: skip


def customer(level: str) -> Customer:
    return Customer("C1", "张丽", "+8613800138001", level)


STOCK = {"TEE-M": Variant("TEE-M", "白色", "M", 10), "TEE-L": Variant("TEE-L", "白色", "L", 0, date(2026, 11, 26))}


def test_rules_come_from_the_policy_articles(rules: ShippingRules) -> None:
    assert (rules.dispatch_hours, rules.same_day_cutoff.hour, rules.stall_hours) == (48, 16, 48)
    assert (rules.default_carrier, rules.upgrade_carrier, rules.upgrade_fee_fen) == ("中通快递", "顺丰速运", 1200)
    assert rules.fast_regions == ("江苏", "浙江", "上海") and rules.other_days == (2, 4)
    assert (rules.priority_from, rules.free_upgrade_from) == ("gold", "platinum")
    assert rules.sources["dispatch_hours"] == "KB-SHIP-TIME" and rules.sources["upgrade_fee_fen"] == "KB-CARRIER"
    assert rules.sources["stall_hours"] == "KB-LOST-PACKAGE" and rules.sources["priority_from"] == "KB-VIP"


def test_without_policies_the_documented_defaults_are_assumed() -> None:
    rules = shipping_rules([])
    assert rules.dispatch_hours == 48 and rules.upgrade_fee_fen == 1200
    assert set(rules.sources.values()) == {"assumed"}


def test_the_stall_boundary_is_48_hours(rules: ShippingRules) -> None:
    last = t(18, 10)
    o = order(events=(ShipmentEvent(t(17, 20), "杭州", "已揽收"), ShipmentEvent(last, "郑州转运中心", "到达")))
    at_48 = logistics_status(o, last + timedelta(hours=48), rules, TZ)
    assert at_48.state is ShipmentState.IN_TRANSIT and at_48.hours_since_last_event == 48.0
    past_48 = logistics_status(o, last + timedelta(hours=48, seconds=1), rules, TZ)
    assert past_48.state is ShipmentState.STALLED
    # 48 h 0 min 1 s after the 18th 10:00 is the 20th; the ETA was the 21st: not overdue yet
    assert past_48.days_overdue == 0
    assert past_48.description == "您的包裹在郑州转运中心，已经两天没有更新了"


def test_stalled_and_overdue(rules: ShippingRules) -> None:
    o = order(events=(ShipmentEvent(t(17, 6, 10), "郑州转运中心", "到达"),), eta=date(2026, 11, 18))
    st = logistics_status(o, NOW, rules, TZ)
    # 17th 06:10 -> 20th 10:00 = 3 days 3 h 50 min = 75 h 50 min; ETA 18th -> 2 days overdue
    assert st.state is ShipmentState.STALLED
    assert st.hours_since_last_event == pytest.approx(75 + 50 / 60)
    assert st.days_overdue == 2
    assert st.description == "您的包裹在郑州转运中心，已经三天没有更新了，比预计的18号晚了两天"


def test_in_transit_but_late(rules: ShippingRules) -> None:
    o = order(events=(ShipmentEvent(t(19, 22), "武汉转运中心", "已发出"),), eta=date(2026, 11, 19))
    st = logistics_status(o, NOW, rules, TZ)
    # 12 h since the last scan: moving, but one day past the 19th
    assert st.state is ShipmentState.IN_TRANSIT and st.days_overdue == 1
    assert st.description == "您的包裹十二个小时前到了武汉转运中心，状态是已发出，比预计的19号晚了一天"


def test_in_transit_on_time(rules: ShippingRules) -> None:
    o = order(events=(ShipmentEvent(t(20, 7), "上海转运中心", "到达"),), eta=date(2026, 11, 21))
    st = logistics_status(o, NOW, rules, TZ)
    assert (st.state, st.days_overdue, st.eta) == (ShipmentState.IN_TRANSIT, 0, date(2026, 11, 21))
    assert st.description == "您的包裹三个小时前到了上海转运中心，状态是到达，预计明天送达"


def test_out_for_delivery(rules: ShippingRules) -> None:
    o = order(events=(ShipmentEvent(t(20, 7, 30), "上海徐汇营业部", "派送中"),), eta=date(2026, 11, 20))
    st = logistics_status(o, NOW, rules, TZ)
    assert st.state is ShipmentState.OUT_FOR_DELIVERY and st.hours_since_last_event == 2.5
    assert st.description == "您的包裹正在派送中，今天07:30到了上海徐汇营业部，预计今天送达"


def test_delivered_is_never_stalled_or_overdue(rules: ShippingRules) -> None:
    signed = ShipmentEvent(t(14, 15, 20), "成都武侯", "已签收", signed_by="本人")
    st = logistics_status(order(OrderStatus.DELIVERED, (signed,), eta=date(2026, 11, 13)), NOW, rules, TZ)
    assert (st.state, st.days_overdue) == (ShipmentState.DELIVERED, 0)
    assert st.description == "您的包裹已经在14号15:20签收了，签收地点是成都武侯，签收人是本人"
    locker = ShipmentEvent(t(19, 17, 45), "沈阳和平", "已签收", signed_by="快递柜")
    st = logistics_status(order(OrderStatus.DELIVERED, (locker,)), NOW, rules, TZ)
    assert st.description == "您的包裹已经在昨天17:45签收了，签收地点是沈阳和平，放在了快递柜"


def test_shipped_without_any_scan(rules: ShippingRules) -> None:
    o = order()  # shipped on the 18th 09:00, no events since
    st = logistics_status(o, NOW, rules, TZ)
    # 18th 09:00 -> 20th 10:00 = 49 h without a scan
    assert st.state is ShipmentState.STALLED and st.last_event is None and st.hours_since_last_event == 49.0


def test_not_shipped_states(rules: ShippingRules) -> None:
    paid = logistics_status(order(OrderStatus.PAID), NOW, rules, TZ)
    # paid on the 19th at 21:16, after the 16:00 cut-off: 48 h later, the 21st 21:16
    assert paid.state is ShipmentState.NOT_SHIPPED
    assert paid.description == "订单还没有发货，按规定最晚明天21:16发出"
    unpaid = logistics_status(order(OrderStatus.UNPAID, paid_at=None), NOW, rules, TZ)
    assert unpaid.description == "订单还没有付款，付款后48小时内发货"
    cancelled = logistics_status(order(OrderStatus.CANCELLED), NOW, rules, TZ)
    assert cancelled.state is ShipmentState.NOT_SHIPPED and "取消" in cancelled.description
    late = logistics_status(order(OrderStatus.PAID, paid_at=t(19, 9, 31)), NOW, rules, TZ)
    # paid before 16:00 on the 19th: it should have left that day
    assert late.description == "订单还没有发货，按规定应该昨天发出，已经超时了"


def test_ship_deadline(rules: ShippingRules) -> None:
    assert ship_deadline(t(19, 15, 59), rules, TZ) == datetime(2026, 11, 19, 23, 59, 59, tzinfo=TZ)
    assert ship_deadline(t(19, 16, 0), rules, TZ) == t(21, 16, 0)  # at the cut-off: 48 h
    # sold out until the 26th: 48 h after the restock day begins
    assert ship_deadline(t(19, 10), rules, TZ, restock=date(2026, 11, 26)) == t(28, 0)


def test_expedite_for_a_normal_customer(rules: ShippingRules) -> None:
    opts = expedite_options(order(OrderStatus.PAID), customer("normal"), STOCK, NOW, rules, TZ)
    assert [o.kind for o in opts] == ["standard", "carrier_upgrade"]
    standard, upgrade = opts
    # paid 19th 21:16 (after 16:00) -> ships by the 21st 21:16; 上海 is 江浙沪: 中通 next day -> 22nd
    assert (standard.cost_fen, standard.ships_by, standard.arrives_by) == (0, t(21, 21, 16), date(2026, 11, 22))
    # 顺丰 for 12 yuan from the same dispatch, next day: the 22nd too, and the text says so
    assert (upgrade.cost_fen, upgrade.arrives_by) == (1200, date(2026, 11, 22))
    assert upgrade.description.startswith("补差价12元可以升级顺丰速运") and "升级不会更快" in upgrade.description


def test_expedite_for_a_gold_customer(rules: ShippingRules) -> None:
    opts = expedite_options(order(OrderStatus.PAID), customer("gold"), STOCK, NOW, rules, TZ)
    assert [o.kind for o in opts] == ["standard", "vip_priority", "carrier_upgrade"]
    priority, upgrade = opts[1], opts[2]
    # 金卡 priority: out today (it is 10:00, before the 16:00 dispatch), 中通 next day -> the 21st
    assert priority.ships_by is not None and priority.ships_by.date() == date(2026, 11, 20)
    assert (priority.cost_fen, priority.arrives_by) == (0, date(2026, 11, 21))
    assert priority.description == "您是金卡会员，可以优先发货，今天发出，中通快递最晚明天送达"
    assert (upgrade.cost_fen, upgrade.arrives_by) == (1200, date(2026, 11, 21))


def test_expedite_for_a_platinum_customer_far_away(rules: ShippingRules) -> None:
    o = order(OrderStatus.PAID, address="广东省广州市天河区体育西路1号")
    opts = expedite_options(o, customer("platinum"), STOCK, NOW, rules, TZ)
    assert [o.kind for o in opts] == ["standard", "vip_priority", "carrier_upgrade"]
    standard, priority, upgrade = opts
    # 广州 is outside 江浙沪: 中通 up to 4 days. Standard: out the 21st -> the 25th; priority: out today -> 24th
    assert (standard.arrives_by, priority.arrives_by) == (date(2026, 11, 25), date(2026, 11, 24))
    # 铂金: 顺丰 free, out today -> tomorrow
    assert (upgrade.cost_fen, upgrade.arrives_by) == (0, date(2026, 11, 21))
    assert upgrade.description.startswith("您是铂金会员，可以免费升级顺丰速运")


def test_expedite_an_unpaid_order_counts_from_now(rules: ShippingRules) -> None:
    o = order(OrderStatus.UNPAID, paid_at=None, address="广东省广州市天河区体育西路1号")
    opts = expedite_options(o, customer("gold"), STOCK, NOW, rules, TZ)
    # paying now (10:00, before 16:00) ships today: priority cannot beat that, so it is not offered
    assert [x.kind for x in opts] == ["ship_today", "carrier_upgrade"]
    assert opts[0].arrives_by == date(2026, 11, 24) and opts[1].arrives_by == date(2026, 11, 21)


def test_expedite_waits_for_a_restock(rules: ShippingRules) -> None:
    o = replace(order(OrderStatus.PAID), items=(OrderItem("TEE-L", "TEE", "T恤", "白色", "L", 1, 8900),))
    opts = expedite_options(o, customer("gold"), STOCK, NOW, rules, TZ)
    # restocked on the 26th: ships within 48 h of that day -> the 28th 00:00; no priority before the stock is in
    assert [x.kind for x in opts] == ["standard", "carrier_upgrade"]
    assert opts[0].ships_by == t(28, 0) and opts[1].arrives_by == date(2026, 11, 29)


@pytest.mark.parametrize("status", [OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CANCELLED])
def test_nothing_to_expedite_once_it_has_left(rules: ShippingRules, status: OrderStatus) -> None:
    events = (ShipmentEvent(t(19, 9), "杭州", "已揽收"),)
    assert expedite_options(order(status, events), customer("platinum"), STOCK, NOW, rules, TZ) == []
