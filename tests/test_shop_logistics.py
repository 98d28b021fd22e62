"""Parcel states, the stall boundary, overdue days, and expedite options per VIP level: facts only.

Orders and the shop's stated promises (``TERMS``) are written here; the reference shop's own
parcels are checked in test_shop_store.py. A shop that states no promise gets none computed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from core.shop import (
    CarrierTerms,
    Customer,
    Fulfilment,
    Order,
    OrderItem,
    OrderStatus,
    Shipment,
    ShipmentEvent,
    ShipmentState,
    Variant,
)
from shop.logistics import STALL_HOURS, expedite_options, logistics_status, ship_deadline

TZ = ZoneInfo("Asia/Shanghai")
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)  # a Friday


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=CST)


PAID = t(19, 21, 16)


TERMS = Fulfilment(
    dispatch_hours=48,
    same_day_cutoff=time(16, 0),
    carriers=(
        CarrierTerms("甲快递", days=4, fast_regions=("江苏", "浙江", "上海"), fast_days=1),
        CarrierTerms("乙速运", days=1, upgrade_fee_fen=1200),
    ),
    priority_levels=("gold", "platinum"),
    free_upgrade_levels=("platinum",),
    stall_hours=48,
)
NOTHING = Fulfilment()  # a shop that states no promise at all


@pytest.fixture(scope="module")
def rules() -> Fulfilment:
    return TERMS


def order(
    status: OrderStatus = OrderStatus.SHIPPED,
    events: tuple[ShipmentEvent, ...] = (),
    eta: date | None = date(2026, 11, 21),
    paid_at: datetime | None = PAID,
    address: str = "上海市浦东新区张江路88号",
    sku: str = "TEE-M",
) -> Order:
    shipped = status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED)
    shipment = Shipment("甲快递", "ZT1", events[0].at if events else t(18, 9), events, eta) if shipped else None
    item = OrderItem(sku, "TEE", "T恤", "白色", "M", 1, 8900)
    return Order(
        "O1", "C1", t(19, 21, 15), paid_at, "app", status, (item,), (), None, 0, 8900, address, shipment
    )  # fmt: skip


def customer(level: str) -> Customer:
    return Customer("C1", "张丽", "+8613800138001", level)


STOCK = {"TEE-M": Variant("TEE-M", "白色", "M", 10), "TEE-L": Variant("TEE-L", "白色", "L", 0, date(2026, 11, 26))}


def test_without_a_stated_threshold_the_hotline_uses_its_own() -> None:
    last = t(18, 10)
    o = order(events=(ShipmentEvent(last, "郑州转运中心", "到达"),))
    assert logistics_status(o, last + timedelta(hours=STALL_HOURS - 1), NOTHING, TZ).state is ShipmentState.IN_TRANSIT
    assert logistics_status(o, last + timedelta(hours=STALL_HOURS + 1), NOTHING, TZ).state is ShipmentState.STALLED
    strict = replace(TERMS, stall_hours=24)
    assert logistics_status(o, last + timedelta(hours=25), strict, TZ).state is ShipmentState.STALLED


def test_the_stall_boundary_is_48_hours(rules: Fulfilment) -> None:
    last = t(18, 10)
    o = order(events=(ShipmentEvent(t(17, 20), "杭州", "已揽收"), ShipmentEvent(last, "郑州转运中心", "到达")))
    at_48 = logistics_status(o, last + timedelta(hours=48), rules, TZ)
    assert at_48.state is ShipmentState.IN_TRANSIT and at_48.hours_since_last_event == 48.0
    past_48 = logistics_status(o, last + timedelta(hours=48, seconds=1), rules, TZ)
    assert past_48.state is ShipmentState.STALLED
    # 48 h 0 min 1 s after the 18th 10:00 is the 20th; the ETA was the 21st: not overdue yet
    assert past_48.days_overdue == 0 and past_48.last_event is not None
    assert past_48.last_event.where == "郑州转运中心"


def test_stalled_and_overdue(rules: Fulfilment) -> None:
    o = order(events=(ShipmentEvent(t(17, 6, 10), "郑州转运中心", "到达"),), eta=date(2026, 11, 18))
    st = logistics_status(o, NOW, rules, TZ)
    # 17th 06:10 -> 20th 10:00 = 3 days 3 h 50 min = 75 h 50 min; ETA 18th -> 2 days overdue
    assert st.state is ShipmentState.STALLED
    assert st.hours_since_last_event == pytest.approx(75 + 50 / 60)
    assert st.days_overdue == 2


def test_in_transit_but_late(rules: Fulfilment) -> None:
    o = order(events=(ShipmentEvent(t(19, 22), "武汉转运中心", "已发出"),), eta=date(2026, 11, 19))
    st = logistics_status(o, NOW, rules, TZ)
    # 12 h since the last scan: moving, but one day past the 19th
    assert st.state is ShipmentState.IN_TRANSIT and st.days_overdue == 1


def test_in_transit_on_time(rules: Fulfilment) -> None:
    o = order(events=(ShipmentEvent(t(20, 7), "上海转运中心", "到达"),), eta=date(2026, 11, 21))
    st = logistics_status(o, NOW, rules, TZ)
    assert (st.state, st.days_overdue, st.eta) == (ShipmentState.IN_TRANSIT, 0, date(2026, 11, 21))


def test_out_for_delivery(rules: Fulfilment) -> None:
    o = order(events=(ShipmentEvent(t(20, 7, 30), "上海徐汇营业部", "派送中"),), eta=date(2026, 11, 20))
    st = logistics_status(o, NOW, rules, TZ)
    assert st.state is ShipmentState.OUT_FOR_DELIVERY and st.hours_since_last_event == 2.5
    assert st.last_event is not None and st.last_event.where == "上海徐汇营业部"


def test_delivered_is_never_stalled_or_overdue(rules: Fulfilment) -> None:
    signed = ShipmentEvent(t(14, 15, 20), "成都武侯", "已签收", signed_by="本人")
    st = logistics_status(order(OrderStatus.DELIVERED, (signed,), eta=date(2026, 11, 13)), NOW, rules, TZ)
    assert (st.state, st.days_overdue) == (ShipmentState.DELIVERED, 0)
    assert st.last_event is not None and st.last_event.signed_by == "本人"


def test_shipped_without_any_scan(rules: Fulfilment) -> None:
    o = order()  # shipped on the 18th 09:00, no events since
    st = logistics_status(o, NOW, rules, TZ)
    # 18th 09:00 -> 20th 10:00 = 49 h without a scan
    assert st.state is ShipmentState.STALLED and st.last_event is None and st.hours_since_last_event == 49.0


def test_not_shipped_states(rules: Fulfilment) -> None:
    paid = logistics_status(order(OrderStatus.PAID), NOW, rules, TZ)
    # paid on the 19th at 21:16, after the 16:00 cut-off: 48 h later, the 21st 21:16
    assert paid.state is ShipmentState.NOT_SHIPPED and paid.ship_by == t(21, 21, 16)
    unpaid = logistics_status(order(OrderStatus.UNPAID, paid_at=None), NOW, rules, TZ)
    assert (unpaid.state, unpaid.ship_by) == (ShipmentState.NOT_SHIPPED, None)
    cancelled = logistics_status(order(OrderStatus.CANCELLED), NOW, rules, TZ)
    assert (cancelled.state, cancelled.ship_by) == (ShipmentState.NOT_SHIPPED, None)
    late = logistics_status(order(OrderStatus.PAID, paid_at=t(19, 9, 31)), NOW, rules, TZ)
    # paid before 16:00 on the 19th: it should have left that day
    assert late.ship_by == datetime(2026, 11, 19, 23, 59, 59, tzinfo=TZ) and late.ship_by < NOW


def test_a_shop_that_states_no_dispatch_time_gets_no_promise() -> None:
    assert logistics_status(order(OrderStatus.PAID), NOW, NOTHING, TZ).ship_by is None
    assert ship_deadline(PAID, NOTHING, TZ) is None
    assert expedite_options(order(OrderStatus.PAID), customer("platinum"), STOCK, NOW, NOTHING, TZ) == []
    # a carrier without dispatch times: the upgrade is offered, with no dates to promise
    only_carriers = Fulfilment(carriers=TERMS.carriers)
    opts = expedite_options(order(OrderStatus.PAID), customer("normal"), STOCK, NOW, only_carriers, TZ)
    assert [(o.kind, o.cost_fen, o.ships_by, o.arrives_by) for o in opts] == [("carrier_upgrade", 1200, None, None)]


def test_ship_deadline(rules: Fulfilment) -> None:
    assert ship_deadline(t(19, 15, 59), rules, TZ) == datetime(2026, 11, 19, 23, 59, 59, tzinfo=TZ)
    assert ship_deadline(t(19, 16, 0), rules, TZ) == t(21, 16, 0)  # at the cut-off: 48 h
    # sold out until the 26th: 48 h after the restock day begins
    assert ship_deadline(t(19, 10), rules, TZ, restock=date(2026, 11, 26)) == t(28, 0)


def test_expedite_for_a_normal_customer(rules: Fulfilment) -> None:
    opts = expedite_options(order(OrderStatus.PAID), customer("normal"), STOCK, NOW, rules, TZ)
    standard = opts[0]
    assert standard.carrier == "甲快递" and standard.overdue_since is None
    # paid 19th 21:16 (after 16:00) -> ships by the 21st 21:16; 上海 is a fast region: next day -> 22nd
    assert (standard.cost_fen, standard.ships_by, standard.arrives_by) == (0, t(21, 21, 16), date(2026, 11, 22))
    # 乙速运 for 12 yuan from the same dispatch, next day: the 22nd too, no faster, so not offered
    assert [o.kind for o in opts] == ["standard"]


def test_expedite_for_a_gold_customer(rules: Fulfilment) -> None:
    opts = expedite_options(order(OrderStatus.PAID), customer("gold"), STOCK, NOW, rules, TZ)
    # priority arrives the 21st; 乙速运 from the same dispatch also the 21st: no faster, not offered
    assert [o.kind for o in opts] == ["standard", "vip_priority"]
    priority = opts[1]
    # 金卡 priority: out today (it is 10:00, before the 16:00 dispatch), next day -> the 21st
    assert priority.ships_by is not None and priority.ships_by.date() == date(2026, 11, 20)
    assert (priority.cost_fen, priority.arrives_by) == (0, date(2026, 11, 21))


def test_expedite_for_a_platinum_customer_far_away(rules: Fulfilment) -> None:
    o = order(OrderStatus.PAID, address="广东省广州市天河区体育西路1号")
    opts = expedite_options(o, customer("platinum"), STOCK, NOW, rules, TZ)
    assert [o.kind for o in opts] == ["standard", "vip_priority", "carrier_upgrade"]
    standard, priority, upgrade = opts
    # 广州 is outside the fast regions: up to 4 days. Standard: out the 21st -> the 25th; priority: out today -> 24th
    assert (standard.arrives_by, priority.arrives_by) == (date(2026, 11, 25), date(2026, 11, 24))
    # 铂金: 乙速运 free, out today -> tomorrow
    assert (upgrade.cost_fen, upgrade.arrives_by, upgrade.carrier) == (0, date(2026, 11, 21), "乙速运")


def test_expedite_an_unpaid_order_counts_from_now(rules: Fulfilment) -> None:
    o = order(OrderStatus.UNPAID, paid_at=None, address="广东省广州市天河区体育西路1号")
    opts = expedite_options(o, customer("gold"), STOCK, NOW, rules, TZ)
    # paying now (10:00, before 16:00) ships today: priority cannot beat that, so it is not offered
    assert [x.kind for x in opts] == ["ship_today", "carrier_upgrade"]
    assert opts[0].arrives_by == date(2026, 11, 24) and opts[1].arrives_by == date(2026, 11, 21)


def test_expedite_waits_for_a_restock(rules: Fulfilment) -> None:
    o = replace(order(OrderStatus.PAID), items=(OrderItem("TEE-L", "TEE", "T恤", "白色", "L", 1, 8900),))
    opts = expedite_options(o, customer("gold"), STOCK, NOW, rules, TZ)
    # restocked on the 26th: ships within 48 h of that day -> the 28th 00:00; no priority before the stock is in
    # 上海 is a fast region, so the upgrade would not be faster and is not offered
    assert [x.kind for x in opts] == ["standard"]
    assert opts[0].ships_by == t(28, 0) and opts[0].arrives_by == date(2026, 11, 29)


@pytest.mark.parametrize("status", [OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CANCELLED])
def test_nothing_to_expedite_once_it_has_left(rules: Fulfilment, status: OrderStatus) -> None:
    events = (ShipmentEvent(t(19, 9), "杭州", "已揽收"),)
    assert expedite_options(order(status, events), customer("platinum"), STOCK, NOW, rules, TZ) == []
