"""The handoff packet: what an agent's desktop shows about a transferred call, as JSON.

Built once, when the transfer is requested, from the dialog's ``Handoff`` and the shop's own data
(the customer with their history, the orders the call touched and their other recent ones, the
knowledge-base clauses the dialog suggested), and kept in the live store with the call — so the
agent sees it before the caller is connected, on whichever server their desktop is, and it
outlives the server that took the call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.money import yuan_text
from core.shop import Customer, Order, ShopPort
from core.types import TransferRequest

RECENT_ORDERS = 5  # the customer's latest orders shown besides those the call touched


def packet(
    call_id: str,
    request: TransferRequest,
    shop: ShopPort,
    *,
    caller: str | None,
    channel: str,
    customer: Customer | None,
    audio_url: str | None = None,
) -> dict[str, Any]:
    """The JSON-able packet for ``request`` (see ``routing.store`` for where it lives)."""
    h = request.handoff
    return {
        "call_id": call_id,
        "caller": caller,
        "channel": channel,
        "skill": request.skill.value,
        "priority": request.priority,
        "reason": request.reason,
        "customer": _customer(customer),
        "orders": _orders(shop, customer, h.orders),
        "intents": [{"name": i.name, "confidence": round(i.confidence, 3), "slots": dict(i.slots)} for i in h.intents],
        "emotion_trend": [e.value for e in h.emotion_trend],
        "summary": list(h.summary),
        "transcript": [{"speaker": line.speaker, "text": line.text, "at": line.at} for line in h.transcript],
        "kb": _clauses(shop, h.kb_suggestions),
        "audio_url": audio_url,
    }


def _customer(c: Customer | None) -> dict[str, Any] | None:
    if c is None:
        return None
    history = [
        {"at": _iso(h.at), "channel": h.channel, "summary": h.summary, "complaint": h.complaint}
        for h in sorted(c.history, key=lambda h: h.at, reverse=True)
    ]
    return {
        "id": c.id, "name": c.name, "phone": c.phone, "vip_level": c.vip_level, "dialect": c.dialect,
        "history": history,
    }  # fmt: skip


def _orders(shop: ShopPort, customer: Customer | None, touched: tuple[str, ...]) -> list[dict[str, Any]]:
    found: dict[str, Order] = {}
    for order_id in touched:
        order = shop.order(order_id)
        if order is not None:
            found[order.id] = order
    if customer is not None:
        recent = sorted(shop.orders_for_customer(customer.id), key=lambda o: o.created_at, reverse=True)
        for order in recent[:RECENT_ORDERS]:
            found.setdefault(order.id, order)
    return [_order(o, o.id in touched) for o in found.values()]


def _order(o: Order, touched: bool) -> dict[str, Any]:
    shipment = o.shipment
    return {
        "id": o.id,
        "touched": touched,
        "status": o.status.value,
        "placed_at": _iso(o.created_at),
        "total_yuan": yuan_text(o.paid_amount_fen),
        "items": [{"name": i.product_name, "color": i.color, "size": i.size, "qty": i.qty} for i in o.items],
        "tracking": f"{shipment.carrier} {shipment.tracking_no}" if shipment else None,
        "refund": o.refund.status if o.refund else None,
    }


def _clauses(shop: ShopPort, ids: tuple[str, ...]) -> list[dict[str, str]]:
    by_id = {p.id: p for p in shop.policies()}
    return [{"id": p.id, "title": p.title, "text": p.text} for p in (by_id.get(i) for i in ids) if p is not None]


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
