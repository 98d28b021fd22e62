"""Which order an intent is about: the order number, 昨天 / a product, the only relevant order, or
the one already discussed — and, when it is genuinely unclear, the candidates to ask about."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from core.shop import Order, OrderStatus, ShipmentState
from core.types import Intent, Understanding
from dialog.replies import order_ref, short_name
from dialog.state import CallState, Context

MAX_CHOICES = 3
_RECENT_WORDS = ("刚买", "刚下", "刚才", "最近", "最新", "上一单", "新买")
_ORDINALS = (("第一", 0), ("前一", 0), ("前面", 0), ("上面", 0), ("第二", 1), ("后一", 1), ("后面", 1), ("下面", 1),
             ("另一", 1), ("第三", 2), ("最后", -1))  # fmt: skip
_CHANNEL_WORDS = {"直播": "livestream", "短视频": "short_video", "抖音": "short_video"}
_PAID = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.REFUNDING)


@dataclass(frozen=True, slots=True)
class Ambiguous:
    candidates: tuple[str, ...]  # order ids, newest first


@dataclass(frozen=True, slots=True)
class Missing:
    order_id: str  # a number the caller gave that the shop does not know


def pick_order(state: CallState, intent: Intent, u: Understanding, ctx: Context) -> Order | Ambiguous | Missing | None:
    """The order ``intent`` refers to; None when the caller has no orders we can see."""
    oid = intent.slots.get("order_id") or next((i.slots["order_id"] for i in u.intents if "order_id" in i.slots), None)
    if oid:
        order = ctx.shop.order(oid)
        return order if order is not None else Missing(oid)
    if state.customer is None:  # a caller we know only by the order they gave: that order
        last = ctx.shop.order(state.orders[-1]) if state.orders else None
        return last
    orders = [o for o in ctx.shop.orders_for_customer(state.customer.id) if o.status is not OrderStatus.CANCELLED]
    if not orders:
        return None
    pool = _narrow(orders, intent, u, ctx)
    if len(pool) > 1:
        pool = [o for o in pool if relevant(intent.name, o, ctx)] or pool
    if len(pool) == 1:
        return pool[0]
    touched = [o for o in pool if o.id in state.orders]
    if touched:
        return max(touched, key=lambda o: state.orders.index(o.id))
    if any(w in (u.normalized or u.text) for w in _RECENT_WORDS):
        return pool[0]
    return Ambiguous(tuple(o.id for o in pool[:MAX_CHOICES]))


def _narrow(orders: list[Order], intent: Intent, u: Understanding, ctx: Context) -> list[Order]:
    """Keep the orders matching the date, product and channel the caller named (if any match)."""
    pool = orders
    day = _slot_date(intent) or next((d for i in u.intents if (d := _slot_date(i))), None)
    if day is not None:
        pool = [o for o in pool if _local_day(o, ctx) == day] or pool
    pid = intent.slots.get("product")
    if pid:
        pool = [o for o in pool if any(i.product_id == pid for i in o.items)] or pool
    text = u.normalized or u.text
    for word, channel in _CHANNEL_WORDS.items():
        if word in text:
            pool = [o for o in pool if o.channel == channel] or pool
    return pool


def _slot_date(intent: Intent) -> date | None:
    try:
        return date.fromisoformat(intent.slots["date"]) if "date" in intent.slots else None
    except ValueError:
        return None


def _local_day(order: Order, ctx: Context) -> date:
    return order.created_at.astimezone(ctx.tz).date()


def relevant(name: str, order: Order, ctx: Context) -> bool:
    """Could this order be what an intent of this kind is about?"""
    if name in ("logistics.track", "logistics.carrier"):
        return order.status is OrderStatus.SHIPPED
    if name in ("logistics.ship_time", "logistics.expedite"):
        return order.status in (OrderStatus.PAID, OrderStatus.SHIPPED) and not _arrived(order, ctx)
    if name in ("order.modify", "order.cancel"):
        return order.status in (OrderStatus.UNPAID, OrderStatus.PAID)
    if name == "aftersale.refund_status":
        return order.refund is not None
    if name in ("aftersale.return", "aftersale.exchange", "aftersale.damage"):
        return order.status is OrderStatus.DELIVERED
    if name == "promotion.not_applied":
        return order.status in _PAID and _promotion_question(order, ctx)
    return order.status is not OrderStatus.CANCELLED


def _arrived(order: Order, ctx: Context) -> bool:
    st = ctx.shop.logistics(order.id, ctx.now)
    return st is not None and st.state is ShipmentState.DELIVERED


def _promotion_question(order: Order, ctx: Context) -> bool:
    """Something to explain: money owed back, a promotion it is excluded from, or a near miss."""
    audit = ctx.shop.audit_promotions(order.id)
    if audit is None:
        return False
    return audit.owed_back_fen > 0 or bool(audit.ineligible) or bool(ctx.shop.add_on_suggestions(order.id, ctx.now))


def resolve_choice(candidates: Sequence[str], u: Understanding, ctx: Context) -> Order | None:
    """The candidate the caller's answer to 「您问的是…还是…？」 points at, if exactly one."""
    orders = [o for o in (ctx.shop.order(c) for c in candidates) if o is not None]
    text = u.normalized or u.text
    probe = Intent("order.status", 1.0, {k: v for i in u.intents for k, v in i.slots.items()})
    narrowed = _narrow(orders, probe, u, ctx)
    if len(narrowed) == 1:
        return narrowed[0]
    named = [o for o in orders if any(n in text for n in _names(o, ctx))]
    if len(named) == 1:
        return named[0]
    dated = [o for o in orders if _said_date(o, text, ctx)]
    if len(dated) == 1:
        return dated[0]
    for word, index in _ORDINALS:
        if word in text and -len(orders) <= index < len(orders):
            return orders[index]
    return None


def _names(order: Order, ctx: Context) -> set[str]:
    names = set()
    for item in order.items:
        product = ctx.shop.product(item.product_id)
        names |= {item.product_name, *(product.aliases if product else ())}
    return {n for n in names if len(n) >= 2}


def _said_date(order: Order, text: str, ctx: Context) -> bool:
    d = _local_day(order, ctx)
    return f"{d.month}月{d.day}" in text or re.search(rf"(?<!\d){d.day}[号日]", text) is not None


def choices_text(candidates: Sequence[str], ctx: Context) -> str:
    """「昨天买围巾和袜子的那单，还是前天买羽绒服的那单」."""
    refs = [order_ref(ctx.shop, o, ctx.today, ctx.tz) for o in (ctx.shop.order(c) for c in candidates) if o]
    if len(refs) == 1:
        return refs[0]
    return "、".join(refs[:-1]) + "，还是" + refs[-1]


def choice_phrases(candidates: Sequence[str], ctx: Context) -> tuple[str, ...]:
    """Words the caller may answer with, for the recogniser's grammar."""
    phrases: list[str] = []
    for order in (ctx.shop.order(c) for c in candidates):
        if order is None:
            continue
        d = _local_day(order, ctx)
        phrases += [order.id, f"{d.month}月{d.day}号"]
        phrases += [short_name(ctx.shop, i.product_id, i.product_name) for i in order.items]
    return tuple(dict.fromkeys(phrases))
