"""Where a parcel is, and how an unshipped order can come sooner: facts, never sentences.

Times are compared in the shop's time zone against ``at`` (the shop clock). Every promise
(dispatch time, same-day cut-off, carriers and their days, VIP benefits) comes from the shop's
``Fulfilment``; what it does not state is left None or out, and the dialog then promises nothing.

Assumed here, documented: "ships today" means by 23:59 shop time that day; VIP priority means
the next daily dispatch (today before the cut-off, else tomorrow); an out-of-stock item with a
restock date ships within ``dispatch_hours`` of that date.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta, tzinfo

from core.shop import (
    Customer,
    ExpediteOption,
    Fulfilment,
    LogisticsStatus,
    Order,
    OrderStatus,
    ShipmentEvent,
    ShipmentState,
    Variant,
)

STALL_HOURS = 48  # the hotline's own threshold to offer help when the shop states none (never quoted)
_OPEN = (OrderStatus.UNPAID, OrderStatus.PAID)


def is_delivered(event: ShipmentEvent) -> bool:
    return "签收" in event.status or event.signed_by is not None


def is_out_for_delivery(event: ShipmentEvent) -> bool:
    return any(word in event.status for word in ("派送", "派件", "配送中"))


def logistics_status(order: Order, at: datetime, terms: Fulfilment, tz: tzinfo) -> LogisticsStatus:
    """The parcel's state against ``at``: not shipped, delivered, out for delivery, in transit, or stalled."""
    at = at.astimezone(tz)
    shipment = order.shipment
    if shipment is None:
        paid = order.paid_at if order.status is OrderStatus.PAID else None
        ship_by = ship_deadline(paid, terms, tz) if paid is not None else None
        return LogisticsStatus(order.id, ShipmentState.NOT_SHIPPED, ship_by=ship_by)
    last = shipment.events[-1] if shipment.events else None
    since = last.at if last else shipment.shipped_at
    hours = (at - since).total_seconds() / 3600 if since else None
    today = at.date()
    delivered = last is not None and is_delivered(last)
    overdue = (today - shipment.eta).days if shipment.eta and not delivered and today > shipment.eta else 0
    if delivered:
        state = ShipmentState.DELIVERED
    elif hours is not None and hours > (terms.stall_hours or STALL_HOURS):
        state = ShipmentState.STALLED
    elif last is not None and is_out_for_delivery(last):
        state = ShipmentState.OUT_FOR_DELIVERY
    else:
        state = ShipmentState.IN_TRANSIT
    return LogisticsStatus(
        order_id=order.id,
        state=state,
        carrier=shipment.carrier,
        tracking_no=shipment.tracking_no,
        last_event=last,
        hours_since_last_event=hours,
        eta=shipment.eta,
        days_overdue=overdue,
    )


def ship_deadline(paid_at: datetime, terms: Fulfilment, tz: tzinfo, restock: date | None = None) -> datetime | None:
    """The latest time the shop's promise lets an order paid at ``paid_at`` leave; None if it promises none."""
    local = paid_at.astimezone(tz)
    cutoff = terms.same_day_cutoff
    if cutoff is not None and local.time() < cutoff:
        deadline = _end_of_day(local.date(), tz)
    elif terms.dispatch_hours is not None:
        deadline = local + timedelta(hours=terms.dispatch_hours)
    else:
        return None
    if restock is not None and restock > local.date():
        if terms.dispatch_hours is None:
            return None
        restocked = datetime(restock.year, restock.month, restock.day, tzinfo=tz)
        deadline = max(deadline, restocked + timedelta(hours=terms.dispatch_hours))
    return deadline


def next_dispatch(at: datetime, terms: Fulfilment, tz: tzinfo) -> datetime | None:
    """The end of the next day the warehouse still sends parcels out (today before the cut-off)."""
    if terms.same_day_cutoff is None:
        return None
    local = at.astimezone(tz)
    day = local.date() if local.time() < terms.same_day_cutoff else local.date() + timedelta(days=1)
    return _end_of_day(day, tz)


def _end_of_day(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=tz)


def expedite_options(
    order: Order,
    customer: Customer | None,
    variants: Mapping[str, Variant],
    at: datetime,
    terms: Fulfilment,
    tz: tzinfo,
) -> list[ExpediteOption]:
    """The standard promise first, then VIP priority and a faster carrier; [] once shipped or if nothing is stated."""
    if order.status not in _OPEN or order.shipment is not None:
        return []
    at = at.astimezone(tz)
    restock = _restock_date(order, variants)
    deadline = ship_deadline(order.paid_at or at, terms, tz, restock)
    late = deadline is not None and deadline < at
    ship = next_dispatch(at, terms, tz) if late else deadline
    options = []
    if deadline is not None:
        standard = _option("standard", order, ship, terms, at)
        options.append(replace(standard, overdue_since=deadline if late else None))
    level = customer.vip_level if customer else ""
    priority = next_dispatch(at, terms, tz)
    sooner = priority is not None and (ship is None or priority < ship)
    if level in terms.priority_levels and restock is None and sooner:
        ship = priority
        options.append(_option("vip_priority", order, ship, terms, at))
    upgrade = _upgrade(order, level, ship, terms, options)
    return options + ([upgrade] if upgrade else [])


def _option(kind: str, order: Order, ship: datetime | None, terms: Fulfilment, at: datetime) -> ExpediteOption:
    carrier = terms.default_carrier
    arrive = ship.date() + timedelta(days=carrier.transit_days(order.address)) if ship and carrier else None
    if kind == "standard" and ship is not None and ship.date() == at.date():
        kind = "ship_today"
    return ExpediteOption(kind, 0, ship, arrive, carrier.name if carrier else None)


def _upgrade(
    order: Order, level: str, ship: datetime | None, terms: Fulfilment, before: list[ExpediteOption]
) -> ExpediteOption | None:
    """The paid (or, for the shop's VIP levels, free) switch to a faster carrier, if it is faster."""
    carrier = terms.upgrade
    if carrier is None or carrier.upgrade_fee_fen is None:
        return None
    arrive = ship.date() + timedelta(days=carrier.transit_days(order.address)) if ship else None
    best = min((o.arrives_by for o in before if o.arrives_by), default=None)
    if arrive is not None and best is not None and arrive >= best:
        return None  # the default carrier is as fast to this address
    cost = 0 if level in terms.free_upgrade_levels else carrier.upgrade_fee_fen
    return ExpediteOption("carrier_upgrade", cost, ship, arrive, carrier.name)


def _restock_date(order: Order, variants: Mapping[str, Variant]) -> date | None:
    """The latest restock date among the order's sold-out SKUs (stock 0 with a date), if any."""
    dates = [v.restock_date for i in order.items if (v := variants.get(i.sku)) and v.stock == 0 and v.restock_date]
    return max(dates, default=None)
