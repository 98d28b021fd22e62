"""Where a parcel is, in one sentence with the key fact first, and how an unshipped order can come sooner.

Times are compared in the shop's time zone against ``at`` (the shop clock: the snapshot's
``as_of`` in tests). The shipping promises come from the shop's policies (``shipping_rules``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, tzinfo

from core.money import yuan_text
from core.shop import (
    Customer,
    ExpediteOption,
    LogisticsStatus,
    Order,
    OrderStatus,
    ShipmentEvent,
    ShipmentState,
    Variant,
)
from shop.shipping_rules import VIP_NAMES, ShippingRules
from shop.textfmt import cn_count, day_text, moment_text

_OPEN = (OrderStatus.UNPAID, OrderStatus.PAID)


def is_delivered(event: ShipmentEvent) -> bool:
    return "签收" in event.status or event.signed_by is not None


def is_out_for_delivery(event: ShipmentEvent) -> bool:
    return any(word in event.status for word in ("派送", "派件", "配送中"))


def logistics_status(order: Order, at: datetime, rules: ShippingRules, tz: tzinfo) -> LogisticsStatus:
    """The parcel's state against ``at``: delivered, out for delivery, in transit, or stalled."""
    at = at.astimezone(tz)
    shipment = order.shipment
    if shipment is None:
        return LogisticsStatus(order.id, ShipmentState.NOT_SHIPPED, _not_shipped_text(order, at, rules, tz))
    last = shipment.events[-1] if shipment.events else None
    since = last.at if last else shipment.shipped_at
    hours = (at - since).total_seconds() / 3600 if since else None
    today = at.date()
    delivered = last is not None and is_delivered(last)
    overdue = (today - shipment.eta).days if shipment.eta and not delivered and today > shipment.eta else 0
    if delivered:
        state = ShipmentState.DELIVERED
    elif hours is not None and hours > rules.stall_hours:
        state = ShipmentState.STALLED
    elif last is not None and is_out_for_delivery(last):
        state = ShipmentState.OUT_FOR_DELIVERY
    else:
        state = ShipmentState.IN_TRANSIT
    text = _describe(state, last, hours, shipment.eta, overdue, shipment.carrier, today, tz)
    return LogisticsStatus(
        order_id=order.id,
        state=state,
        description=text,
        carrier=shipment.carrier,
        tracking_no=shipment.tracking_no,
        last_event=last,
        hours_since_last_event=hours,
        eta=shipment.eta,
        days_overdue=overdue,
    )


def _describe(
    state: ShipmentState,
    last: ShipmentEvent | None,
    hours: float | None,
    eta: date | None,
    overdue: int,
    carrier: str,
    today: date,
    tz: tzinfo,
) -> str:
    late = f"，比预计的{day_text(eta, today, relative=False)}晚了{cn_count(overdue)}天" if eta and overdue else ""
    due = f"，预计{day_text(eta, today)}送达" if eta and not overdue else ""
    if last is None:
        idle = f"，已经{cn_count(int((hours or 0) // 24))}天没有揽收记录" if state is ShipmentState.STALLED else ""
        return f"您的包裹已经交给{carrier}，还没有揽收记录{idle}{late or due}"
    when = moment_text(last.at.astimezone(tz), today)
    if state is ShipmentState.DELIVERED:
        who = last.signed_by or ""
        by = (
            f"，放在了{who}" if any(w in who for w in ("柜", "驿站", "代收点")) else (f"，签收人是{who}" if who else "")
        )
        return f"您的包裹已经在{when}签收了，签收地点是{last.where}{by}"
    if state is ShipmentState.STALLED:
        days = int((hours or 0) // 24)
        return f"您的包裹在{last.where}，已经{cn_count(days)}天没有更新了{late}"
    if state is ShipmentState.OUT_FOR_DELIVERY:
        return f"您的包裹正在派送中，{when}到了{last.where}{due or late}"
    return f"您的包裹{_ago(hours or 0)}到了{last.where}，状态是{last.status}{late or due}"


def _ago(hours: float) -> str:
    if hours < 1:
        return "刚刚"
    if hours < 24:
        return f"{cn_count(int(hours))}个小时前"
    return f"{cn_count(int(hours // 24))}天前"


def _not_shipped_text(order: Order, at: datetime, rules: ShippingRules, tz: tzinfo) -> str:
    if order.status is OrderStatus.CANCELLED:
        return "这个订单已经取消了，不会发货"
    if order.status is OrderStatus.REFUNDING:
        return "这个订单正在退款，不会发货"
    if order.paid_at is None:
        return f"订单还没有付款，付款后{rules.dispatch_hours}小时内发货"
    deadline = ship_deadline(order.paid_at, rules, tz)
    if deadline < at:
        return f"订单还没有发货，按规定应该{_by(deadline, at.date())}发出，已经超时了"
    return f"订单还没有发货，按规定最晚{_by(deadline, at.date())}发出"


def ship_deadline(paid_at: datetime, rules: ShippingRules, tz: tzinfo, restock: date | None = None) -> datetime:
    """The latest time the policy lets an order paid at ``paid_at`` leave the warehouse."""
    local = paid_at.astimezone(tz)
    if local.time() < rules.same_day_cutoff:
        deadline = _end_of_day(local.date(), tz)
    else:
        deadline = local + timedelta(hours=rules.dispatch_hours)
    if restock is not None and restock > local.date():
        restocked = datetime(restock.year, restock.month, restock.day, tzinfo=tz)
        deadline = max(deadline, restocked + timedelta(hours=rules.dispatch_hours))
    return deadline


def next_dispatch(at: datetime, rules: ShippingRules, tz: tzinfo) -> datetime:
    """The end of the next day the warehouse can still send a parcel out (today before the cut-off)."""
    local = at.astimezone(tz)
    day = local.date() if local.time() < rules.same_day_cutoff else local.date() + timedelta(days=1)
    return _end_of_day(day, tz)


def _end_of_day(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=tz)


def _by(moment: datetime, today: date) -> str:
    """今天 for an end-of-day promise, 明天21:16 for a to-the-minute one."""
    if (moment.hour, moment.minute) == (23, 59):
        return day_text(moment.date(), today)
    return moment_text(moment, today)


def expedite_options(
    order: Order,
    customer: Customer | None,
    variants: Mapping[str, Variant],
    at: datetime,
    rules: ShippingRules,
    tz: tzinfo,
) -> list[ExpediteOption]:
    """The standard promise first, then VIP priority and the carrier upgrade; [] once shipped.

    A shipped order gets nothing: 「已发货的订单不能更换快递」; ``logistics`` tells the caller where
    it is instead.
    """
    if order.status not in _OPEN or order.shipment is not None:
        return []
    at = at.astimezone(tz)
    today = at.date()
    restock = _restock_date(order, variants)
    paid = order.paid_at or at
    deadline = ship_deadline(paid, rules, tz, restock)
    standard_ship = next_dispatch(at, rules, tz) if deadline < at else deadline
    options = [_standard(order, deadline, standard_ship, at, rules)]
    level = customer.vip_level if customer else "normal"
    ship = standard_ship
    if rules.has_priority(level) and restock is None:
        priority_ship = next_dispatch(at, rules, tz)
        if priority_ship < standard_ship:
            ship = priority_ship
            arrive = ship.date() + timedelta(days=rules.transit_days(order.address))
            vip = VIP_NAMES.get(level, level)
            route = f"{rules.default_carrier}最晚{day_text(arrive, today)}送达"
            text = f"您是{vip}，可以优先发货，{_by(ship, today)}发出，{route}"
            options.append(ExpediteOption("vip_priority", text, 0, ship, arrive))
    options.append(_upgrade(order, level, ship, today, rules))
    return options


def _restock_date(order: Order, variants: Mapping[str, Variant]) -> date | None:
    """The latest restock date among the order's sold-out SKUs (stock 0 with a date), if any."""
    dates = [v.restock_date for i in order.items if (v := variants.get(i.sku)) and v.stock == 0 and v.restock_date]
    return max(dates, default=None)


def _standard(order: Order, deadline: datetime, ship: datetime, at: datetime, rules: ShippingRules) -> ExpediteOption:
    today = at.date()
    arrive = ship.date() + timedelta(days=rules.transit_days(order.address))
    route = f"{rules.default_carrier}最晚{day_text(arrive, today)}送达"
    if order.paid_at is None:
        text = f"现在付款的话，最晚{_by(ship, today)}发出，{route}"
    elif deadline < at:
        text = f"按规定应该{_by(deadline, today)}发出，已经超时了，我们催仓库{_by(ship, today)}发出，{route}"
    else:
        text = f"按规定最晚{_by(ship, today)}发出，{route}"
    kind = "ship_today" if ship.date() == today else "standard"
    return ExpediteOption(kind, text, 0, ship, arrive)


def _upgrade(order: Order, level: str, ship: datetime, today: date, rules: ShippingRules) -> ExpediteOption:
    arrive = ship.date() + timedelta(days=rules.upgrade_days)
    free = rules.free_upgrade(level)
    cost = 0 if free else rules.upgrade_fee_fen
    head = (
        f"您是{VIP_NAMES.get(level, level)}，可以免费升级{rules.upgrade_carrier}"
        if free
        else (f"补差价{yuan_text(cost)}可以升级{rules.upgrade_carrier}")
    )
    text = f"{head}，大部分城市次日达，{_by(ship, today)}发出的话预计{day_text(arrive, today)}送达"
    if arrive >= ship.date() + timedelta(days=rules.transit_days(order.address)):
        text += f"；您的地址{rules.default_carrier}也是次日达，升级不会更快"
    return ExpediteOption("carrier_upgrade", text, cost, ship, arrive)
