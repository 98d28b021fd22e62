"""Promotion audits (补差) and add-on suggestions (凑单) for an order, on top of the engine.

An audit re-prices the order's own lines at the moment it was paid (or created, if unpaid)
through its channel, with its coupon, and compares the result with what the order recorded:
``applied_promotions`` and ``paid_amount``. Lines keep the unit price the order recorded (the
list price then); a line whose ``price_type`` is a channel price starts again from the catalogue
price so the engine decides whether that channel price was due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from core.shop import AddOnSuggestion, IneligiblePromotion, MissedPromotion, Order, OrderStatus, PromotionAudit
from shop.promotions import REGULAR, BasketLine, Pricing, Rulebook, price_basket

_OPEN = (OrderStatus.UNPAID, OrderStatus.PAID)


def order_lines(order: Order, book: Rulebook) -> list[BasketLine]:
    """The order's items as basket lines, ready to be priced again."""
    channel_prices = {
        (str(p.params.get("channel")), str(p.params.get("product")))
        for p in book.promotions
        if p.kind == "channel_price"
    }
    lines = []
    for item in order.items:
        product = book.products.get(item.product_id)
        line = BasketLine(
            sku=item.sku,
            product_id=item.product_id,
            product_name=item.product_name,
            category=product.category if product else "",
            qty=item.qty,
            list_unit_fen=item.unit_price_fen,
            price_type=item.price_type,
        )
        if product is not None and (item.price_type, item.product_id) in channel_prices:
            line = replace(line, list_unit_fen=product.price_fen, price_type=REGULAR)
        lines.append(line)
    return lines


def price_order(order: Order, book: Rulebook, at: datetime | None = None) -> Pricing:
    """The order priced under the rules in force at ``at`` (default: when it was paid)."""
    when = at or order.paid_at or order.created_at
    return price_basket(
        order_lines(order, book),
        book,
        channel=order.channel,
        at=when,
        coupon_id=order.coupon,
        shipping_fee_fen=order.shipping_fee_fen,
    )


def audit_order(order: Order, book: Rulebook) -> PromotionAudit:
    """What applied, what should have and did not, why the rest did not, and what is owed back."""
    pricing = price_order(order, book)
    claimed = set(order.applied_promotions) | ({order.coupon} if order.coupon else set())
    if order.paid_at is None:  # nothing paid, nothing missed: checkout will apply what is due
        claimed |= {line.source_id for line in pricing.discounts}
    applied = tuple(line for line in pricing.discounts if line.source_id in claimed)
    missed = tuple(
        MissedPromotion(o.source_id, o.title, o.amount_fen, o.reason)
        for o in pricing.outcomes
        if o.applied and o.source_id not in claimed
    )
    ineligible = tuple(
        IneligiblePromotion(o.source_id, o.title, o.reason)
        for o in pricing.outcomes
        if not o.applied and (o.relevant or o.source_id in claimed)
    )
    paid = order.paid_amount_fen if order.paid_at is not None else 0
    expected = pricing.total_fen
    return PromotionAudit(
        order_id=order.id,
        paid_fen=paid,
        expected_fen=expected,
        owed_back_fen=max(0, paid - expected) if order.paid_at is not None else 0,
        applied=applied,
        missed=missed,
        ineligible=ineligible,
    )


def add_on_suggestions(
    order: Order, book: Rulebook, at: datetime, in_stock: Sequence[BasketLine]
) -> list[AddOnSuggestion]:
    """For each threshold the order misses at ``at``, the add-on that costs the caller least.

    Only orders not yet shipped (``unpaid``/``paid``: 取消重拍 or 补拍) get suggestions. Each
    candidate is one unit of an in-stock SKU; the whole basket is priced again with it, so an
    add-on that also unlocks (or spoils) another promotion is counted. The best candidate has the
    smallest net extra cost (new total - old total), then the lowest price, then catalogue order.
    """
    if order.status not in _OPEN:
        return []
    lines = order_lines(order, book)

    def priced(basket: list[BasketLine]) -> Pricing:
        return price_basket(
            basket, book, channel=order.channel, at=at, coupon_id=order.coupon, shipping_fee_fen=order.shipping_fee_fen
        )

    base = priced(lines)
    suggestions = []
    for target in (o for o in base.outcomes if o.short_by_fen > 0 and o.active):
        best: tuple[tuple[int, int, int], BasketLine, int] | None = None
        for pos, extra in enumerate(in_stock):
            trial = priced([*lines, extra])
            outcome = trial.outcome(target.source_id)
            if outcome is None or not outcome.applied:
                continue
            net_extra = trial.total_fen - base.total_fen
            key = (net_extra, extra.list_unit_fen, pos)
            if best is None or key < best[0]:
                best = (key, extra, net_extra)
        if best is not None:
            _, extra, net_extra = best
            suggestions.append(
                AddOnSuggestion(
                    promotion_id=target.source_id,
                    promotion_title=target.title,
                    short_by_fen=target.short_by_fen,
                    sku=extra.sku,
                    product_name=extra.product_name,
                    price_fen=extra.list_unit_fen,
                    saving_fen=extra.list_unit_fen - net_extra,
                    net_extra_fen=net_extra,
                )
            )
    return sorted(suggestions, key=lambda s: (s.net_extra_fen, s.price_fen))
