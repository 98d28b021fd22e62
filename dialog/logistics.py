"""Logistics answers: where the parcel is, when it ships, how it can come sooner, which carrier.

``shop/`` gives facts (``LogisticsStatus``, ``ExpediteOption``, the shop's ``Fulfilment``); the
words come from ``dialog/data/replies.json`` here. A promise the shop does not state is never
made: the answer quotes the shop's own policy sentence, or offers a person who can check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from core.money import yuan_text
from core.shop import ExpediteOption, LogisticsStatus, Order, OrderStatus, ShipmentEvent, ShipmentState
from core.types import Intent, Skill, Understanding
from dialog.replies import date_text, duration_text, order_ref, render
from dialog.state import Context, OfferTransfer, Part

MAX_QUOTE = 90  # a policy clause read to the caller, at most (characters)
_MOVING = (ShipmentState.IN_TRANSIT, ShipmentState.OUT_FOR_DELIVERY, ShipmentState.STALLED)
_PICKUP = ("柜", "驿站", "代收点")
_SENTENCE_END = re.compile(r"(?<=[。！？；])")
_SHIP_QUERY = "发货 时间 多久 发出"  # generic words for the policy article on dispatch times
_CARRIER_QUERY = "默认发什么快递"


def _ref(order: Order, ctx: Context) -> str:
    return order_ref(ctx.shop, order, ctx.today, ctx.tz)


def _by(moment: datetime, ctx: Context) -> str:
    """今天 for an end-of-day promise, 明天21:16 for a to-the-minute one."""
    local = moment.astimezone(ctx.tz)
    day = date_text(local.date(), ctx.today)
    return day if (local.hour, local.minute) == (23, 59) else f"{day}{local:%H:%M}"


def logistics_track(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    st = ctx.shop.logistics(order.id, ctx.now)
    if st is None:
        return Part(render("order.not_found", order_id=order.id))
    if st.state is ShipmentState.STALLED:
        return _stalled(order, st, ctx)
    if st.state is ShipmentState.NOT_SHIPPED and _unpromised(order, st):
        return _quote_or_check(_not_shipped_head(order, ctx), _SHIP_QUERY, order, ctx)
    text = render("logistics.status", order=_ref(order, ctx), description=describe(order, st, ctx))
    return Part(text, order.id, skill=Skill.LOGISTICS)


def _not_shipped_head(order: Order, ctx: Context) -> str:
    unpaid = order.status is OrderStatus.UNPAID
    what = render("track.unpaid_unstated") if unpaid else render("track.not_shipped")
    return render("logistics.status", order=_ref(order, ctx), description=what)


def _unpromised(order: Order, st: LogisticsStatus) -> bool:
    """Paid, not shipped, and the shop states no dispatch time for it."""
    return order.status is OrderStatus.PAID and st.ship_by is None


def describe(order: Order, st: LogisticsStatus, ctx: Context) -> str:
    """The parcel's state in one clause, key fact first."""
    if st.state is ShipmentState.NOT_SHIPPED:
        return _not_shipped(order, st, ctx)
    last = st.last_event
    timing = _timing(st, ctx)
    if last is None:
        return render("track.no_scan", carrier=st.carrier or "", timing=timing)
    when = _moment(last.at, ctx)
    if st.state is ShipmentState.DELIVERED:
        return render("track.delivered", when=when, where=last.where, by=_signed(last))
    if st.state is ShipmentState.OUT_FOR_DELIVERY:
        return render("track.out_for_delivery", when=when, where=last.where, timing=timing)
    hours = st.hours_since_last_event or 0.0
    ago = render("track.ago", duration=duration_text(hours)) if hours >= 1 else render("track.just_now")
    return render("track.in_transit", ago=ago, where=last.where, status=last.status, timing=timing)


def _not_shipped(order: Order, st: LogisticsStatus, ctx: Context) -> str:
    if order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDING):
        return render("track.cancelled" if order.status is OrderStatus.CANCELLED else "track.refunding")
    hours = ctx.info.fulfilment.dispatch_hours
    if order.status is OrderStatus.UNPAID:
        return render("track.unpaid", hours=hours) if hours else render("track.unpaid_unstated")
    if st.ship_by is None:
        return render("track.not_shipped")
    key = "track.ship_late" if st.ship_by < ctx.now else "track.ship_by"
    return render(key, when=_by(st.ship_by, ctx))


def _timing(st: LogisticsStatus, ctx: Context) -> str:
    if st.eta is None:
        return ""
    if st.days_overdue > 0:
        return render("track.late", day=date_text(st.eta, ctx.today), days=st.days_overdue)
    return render("track.due", day=date_text(st.eta, ctx.today))


def _moment(at: datetime, ctx: Context) -> str:
    local = at.astimezone(ctx.tz)
    return f"{date_text(local.date(), ctx.today)}{local:%H:%M}"


def _signed(last: ShipmentEvent) -> str:
    who = last.signed_by or ""
    if not who:
        return ""
    return render("track.signed_pickup" if any(w in who for w in _PICKUP) else "track.signed_by", who=who)


def _stalled(order: Order, st: LogisticsStatus, ctx: Context) -> Part:
    where = st.last_event.where if st.last_event else render("track.on_the_way")
    idle = duration_text(st.hours_since_last_event or 0.0)
    overdue = render("logistics.overdue", days=st.days_overdue) if st.days_overdue > 0 else ""
    text = render("logistics.stalled", order=_ref(order, ctx), where=where, idle=idle, overdue=overdue)
    note = f"{order.id}物流停在{where}{idle}未更新"
    offer = OfferTransfer(Skill.LOGISTICS, note)
    return Part(text, order.id, offer=offer, note=note, skill=Skill.LOGISTICS)


def logistics_ship_time(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    st = ctx.shop.logistics(order.id, ctx.now)
    if st is None or st.state is not ShipmentState.NOT_SHIPPED or _unpromised(order, st):
        return logistics_track(intent, order, u, ctx)
    text = render("logistics.status", order=_ref(order, ctx), description=describe(order, st, ctx))
    options = ctx.shop.expedite_options(order.id, ctx.now)
    if intent.slots.get("urgency") == "high" and options:
        text += expedite_text(options, order, ctx)
    return Part(text, order.id, skill=Skill.LOGISTICS)


def logistics_expedite(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    options = ctx.shop.expedite_options(order.id, ctx.now)
    if options:
        return Part(expedite_text(options, order, ctx), order.id, skill=Skill.LOGISTICS)
    st = ctx.shop.logistics(order.id, ctx.now)
    if st is not None and st.state in _MOVING:
        return logistics_track(intent, order, u, ctx)
    if order.status in (OrderStatus.UNPAID, OrderStatus.PAID) and order.shipment is None:
        return _quote_or_check(_not_shipped_head(order, ctx), _SHIP_QUERY, order, ctx)
    return Part(render("expedite.none", order=_ref(order, ctx)), order.id, skill=Skill.LOGISTICS)


def fastest_first(options: Sequence[ExpediteOption]) -> list[ExpediteOption]:
    """Earliest arrival first, then earliest dispatch, then cheapest."""

    def key(o: ExpediteOption) -> tuple[float, float, int]:
        arrives = o.arrives_by.toordinal() if o.arrives_by else float("inf")
        ships = o.ships_by.timestamp() if o.ships_by else float("inf")
        return (arrives, ships, o.cost_fen)

    return sorted(options, key=key)


def expedite_text(options: Sequence[ExpediteOption], order: Order, ctx: Context) -> str:
    """The fastest option first; a free one too when the fastest costs money."""
    ranked = fastest_first(options)
    best = ranked[0]
    text = render("expedite.fastest", option=option_text(best, order, ctx))
    free = next((o for o in ranked[1:] if o.cost_fen == 0), None)
    if best.cost_fen and free is not None:
        text += render("expedite.also", option=option_text(free, order, ctx))
    return text


def option_text(o: ExpediteOption, order: Order, ctx: Context) -> str:
    ship = _by(o.ships_by, ctx) if o.ships_by else ""
    arrive = date_text(o.arrives_by, ctx.today) if o.arrives_by else ""
    if o.kind == "carrier_upgrade":
        key = "expedite.upgrade_free" if o.cost_fen == 0 else "expedite.upgrade"
        head = render(key, carrier=o.carrier or "", fee=yuan_text(o.cost_fen))
        return head + (render("expedite.expected", arrive=arrive) if arrive else "")
    route = render("expedite.route", carrier=o.carrier, arrive=arrive) if arrive and o.carrier else ""
    if o.kind == "vip_priority":
        return render("expedite.vip", ship=ship) + route
    if o.overdue_since is not None:
        late = render("expedite.late", deadline=_by(o.overdue_since, ctx))
        return late + (render("expedite.chase", ship=ship) + route if ship else "")
    key = "expedite.unpaid" if order.paid_at is None else "expedite.standard"
    return render(key, ship=ship) + route


def logistics_carrier(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    st = ctx.shop.logistics(order.id, ctx.now)
    ref = _ref(order, ctx)
    if st is not None and st.carrier:
        text = render("logistics.carrier", order=ref, carrier=st.carrier, tracking_no=st.tracking_no or "")
        return Part(text, order.id, skill=Skill.LOGISTICS)
    default = ctx.info.fulfilment.default_carrier
    if default is not None:
        text = render("logistics.default_carrier", order=ref, carrier=default.name)
        return Part(text, order.id, skill=Skill.LOGISTICS)
    return _quote_or_check(render("logistics.not_shipped_carrier", order=ref), _CARRIER_QUERY, order, ctx)


def _quote_or_check(head: str, query: str, order: Order, ctx: Context) -> Part:
    """No stated figure: the shop's own policy clause (≤ MAX_QUOTE characters), else a person checks."""
    hits = ctx.shop.search_policies(query, k=1)
    clause = quote(hits[0].answer) if hits else ""
    if clause:
        return Part(head + clause, order.id, kb_ids=(hits[0].policy_id,), skill=Skill.LOGISTICS)
    offer = OfferTransfer(Skill.GENERAL, f"{order.id}客户询问发货，店铺未写明时效")
    return Part(head + render("logistics.will_check"), order.id, offer=offer, skill=Skill.LOGISTICS)


def quote(text: str) -> str:
    """The first sentence of ``text`` as the shop wrote it, ending in 。; "" when longer than MAX_QUOTE."""
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0].rstrip("。；;！？")
    return first + "。" if first and len(first) < MAX_QUOTE else ""
