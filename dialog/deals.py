"""Computed deals: what products bought together cost, what to add to reach a 满减, which coupon fits.

Every figure is the shop's promotion engine's (``ShopPort.quote``), never worked out here: the
price before and after, the add-on that reaches a threshold (the cheapest product whose addition
makes the engine apply it). Coupons are checked against what the shop states about them — channel,
validity, threshold — and their own rules sentence is read, not interpreted.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.money import yuan_text
from core.shop import Coupon, Order, OrderStatus, Product, Quote
from core.types import Intent, Skill, Understanding
from dialog.replies import join_list, order_ref, render, short_name
from dialog.state import Context, Part
from dialog.vocabulary import Vocabulary, spoken_form

REGULAR = "regular"  # priced as a plain purchase: no channel-only price, no channel-only coupon
_ANY_CHANNEL = ("any", "", "all")


def named_products(u: Understanding, ctx: Context) -> list[Product]:
    """Every product the caller named, in the order said (「T恤和牛仔裤」 → T恤, 牛仔裤)."""
    text = spoken_form(u.normalized or u.text)
    vocab = Vocabulary.from_products(ctx.shop.products())
    found: dict[str, int] = {}
    for term in sorted(vocab.terms, key=len, reverse=True):
        at = text.find(term)
        if at >= 0 and vocab.terms[term] not in found:
            found[vocab.terms[term]] = at
            text = text.replace(term, "\0" * len(term))
    products = [ctx.shop.product(pid) for pid in sorted(found, key=found.__getitem__)]
    return [p for p in products if p is not None]


def _sku(product: Product) -> str:
    """The variant a price question is about: the first in stock (prices are per product)."""
    return next((v.sku for v in product.variants if v.stock > 0), product.variants[0].sku)


def together(products: Sequence[Product], ctx: Context) -> Part:
    """「T恤和牛仔裤一起买」: price before → after, then whether a 满减 is reached or what to add."""
    items = [(_sku(p), 1) for p in products]
    quote = ctx.shop.quote(items, REGULAR, ctx.now)
    names = join_list(short_name(ctx.shop, p.id, p.name) for p in products)
    saved = quote.subtotal_fen + quote.shipping_fee_fen - quote.total_fen
    text = render("bundle.quote", items=names, before=yuan_text(quote.subtotal_fen), after=yuan_text(quote.total_fen),
                  saved=yuan_text(saved))  # fmt: skip
    return Part(text + _threshold(items, quote, products, ctx), skill=Skill.PROMOTION)


def _threshold(items: list[tuple[str, int]], quote: Quote, named: Sequence[Product], ctx: Context) -> str:
    thresholds = [p for p in ctx.shop.promotions() if p.kind == "threshold_discount" and p.starts <= ctx.now <= p.ends]
    applied = {d.source_id for d in quote.discounts}
    reached = [p for p in thresholds if p.id in applied]
    if reached:
        return render("bundle.reached", title=reached[0].title)
    for promo in thresholds:
        add_on = _cheapest_add_on(items, promo.id, named, ctx)
        if add_on is not None:
            product, total = add_on
            price = yuan_text(product.price_fen)
            name = short_name(ctx.shop, product.id, product.name)
            return render("bundle.add_on", title=promo.title, price=price, product=name, total=yuan_text(total))
    return ""


def _cheapest_add_on(
    items: list[tuple[str, int]], promo_id: str, named: Sequence[Product], ctx: Context
) -> tuple[Product, int] | None:
    """The cheapest in-stock product whose addition makes the engine apply ``promo_id``."""
    taken = {p.id for p in named}
    for product in sorted(ctx.shop.products(), key=lambda p: p.price_fen):
        if product.id in taken or not any(v.stock > 0 for v in product.variants):
            continue
        quote = ctx.shop.quote([*items, (_sku(product), 1)], REGULAR, ctx.now)
        if any(d.source_id == promo_id for d in quote.discounts):
            return product, quote.total_fen
    return None


def coupon_answer(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    """「我用新人券行不行」: the coupon named, checked against its channel, validity and threshold."""
    coupons = list(ctx.shop.coupons())
    coupon = _named_coupon(coupons, u)
    live = [c for c in coupons if c.valid_until >= ctx.now]
    if coupon is None:
        if not live:
            return Part(render("promo.none"), skill=Skill.PROMOTION)
        return Part(render("coupon.unknown", titles=join_list(c.title for c in live)), skill=Skill.PROMOTION)
    rules = render("coupon.rules", rules=coupon.rules) if coupon.rules else ""
    if coupon.valid_until < ctx.now:
        return Part(render("coupon.expired", title=coupon.title), skill=Skill.PROMOTION)
    if coupon.channel not in _ANY_CHANNEL and (order is None or order.channel != coupon.channel):
        return Part(render("coupon.channel", title=coupon.title) + rules, skill=Skill.PROMOTION)
    threshold = yuan_text(coupon.threshold_fen)
    if order is not None and order.status is OrderStatus.UNPAID:  # the basket it could still go on
        items = [(i.sku, i.qty) for i in order.items]
        total = ctx.shop.quote(items, order.channel, ctx.now).total_fen
        if total < coupon.threshold_fen:
            what = order_ref(ctx.shop, order, ctx.today, ctx.tz)
            short = yuan_text(coupon.threshold_fen - total)
            text = render("coupon.short", title=coupon.title, threshold=threshold, what=what, total=yuan_text(total),
                          short=short)  # fmt: skip
            return Part(text + rules, order.id, skill=Skill.PROMOTION)
    text = render("coupon.ok", title=coupon.title, threshold=threshold, discount=yuan_text(coupon.discount_fen))
    return Part(text + rules, skill=Skill.PROMOTION)


def _named_coupon(coupons: list[Coupon], u: Understanding) -> Coupon | None:
    """The coupon whose title shares the most two-character words with what the caller said."""
    text = u.normalized or u.text
    best, score = None, 0
    for coupon in coupons:
        head = coupon.title.split("满")[0].removesuffix("券")
        grams = {head[i : i + 2] for i in range(len(head) - 1)}
        hits = sum(1 for g in grams if g in text)
        if hits > score:
            best, score = coupon, hits
    return best
