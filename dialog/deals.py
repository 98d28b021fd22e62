"""Computed deals: why an order's promotion did not apply (补差, 凑单), what products bought together
cost, what to add to reach a 满减, which coupon fits.

Every figure is the shop's promotion engine's (``ShopPort.quote``), never worked out here: the
price before and after, the add-on that reaches a threshold (the cheapest product whose addition
makes the engine apply it). Coupons are checked against what the shop states about them — channel,
validity, threshold — and their own rules sentence is read, not interpreted.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.money import yuan_text
from core.shop import (
    AddOnSuggestion,
    Coupon,
    IneligiblePromotion,
    Order,
    OrderStatus,
    Product,
    PromotionAudit,
    Quote,
)
from core.types import Intent, Skill, Understanding
from dialog.catalogue import promotion_bundle, promotion_inquiry
from dialog.reasons import why_text
from dialog.replies import join_list, order_ref, render, short_name
from dialog.state import Context, Part
from dialog.vocabulary import Vocabulary, spoken_form

_UNSHIPPED = (OrderStatus.UNPAID, OrderStatus.PAID)
REGULAR = "regular"  # priced as a plain purchase: no channel-only price, no channel-only coupon
_ANY_CHANNEL = ("any", "", "all")


def promotion_not_applied(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    """Money owed back (补差) first; else why a promotion did not apply and the cheapest 凑单. A caller
    asking how to top up (「再买个袜子能凑满减吗」) hears the add-on first."""
    assert order is not None
    audit = ctx.shop.audit_promotions(order.id)
    if audit is None:
        return Part(render("order.not_found", order_id=order.id))
    ref = order_ref(ctx.shop, order, ctx.today, ctx.tz)
    add_ons = ctx.shop.add_on_suggestions(order.id, ctx.now) if order.status in _UNSHIPPED else ()
    add_on = _preferred(add_ons, intent.slots.get("product"), ctx)
    owed = _owed(order, audit, ref, ctx) if audit.owed_back_fen > 0 else None
    topping_up = add_on is not None and intent.slots.get("promotion") == "凑单"
    if owed is not None and not topping_up:
        return owed
    if add_on is not None and topping_up:
        short = yuan_text(add_on.short_by_fen)
        text = render("promo.top_up", order=ref, title=add_on.promotion_title, short=short) + _add_on_text(add_on)
        if owed is not None:
            return Part(text + owed.text, order.id, kb_ids=owed.kb_ids, note=owed.note, skill=Skill.PROMOTION)
        return Part(text, order.id, skill=Skill.PROMOTION)
    why = _main_ineligible(audit.ineligible, add_on, ctx)
    if why is not None:
        text = render("promo.ineligible", order=ref, title=why.title, reason=why_text(why.reason))
    elif add_on is not None:
        text = render("promo.short", order=ref, paid=yuan_text(audit.paid_fen), title=add_on.promotion_title,
                      short=yuan_text(add_on.short_by_fen))  # fmt: skip
    else:
        text = render("promo.ok", order=ref, paid=yuan_text(audit.paid_fen))
    if add_on is not None:
        text += _add_on_text(add_on)
    elif audit.applied and why is not None:
        saved = yuan_text(sum(line.amount_fen for line in audit.applied))
        text += render("promo.applied", titles=join_list(line.title for line in audit.applied), amount=saved)
    return Part(text, order.id, skill=Skill.PROMOTION)


def _owed_how(amount: str, ctx: Context) -> str:
    days = ctx.info.fulfilment.refund_days  # the shop's stated time to pay back, else no number of days
    if days is None:
        return render("promo.owed_how_unstated", amount=amount)
    return render("promo.owed_how", amount=amount, days=days)


def _owed(order: Order, audit: PromotionAudit, ref: str, ctx: Context) -> Part:
    amount = yuan_text(audit.owed_back_fen)
    titles = join_list(m.title for m in audit.missed)
    text = render("promo.owed", order=ref, titles=titles, amount=amount) + _owed_how(amount, ctx)
    note = f"{order.id}应享{titles}未减，已登记补差{amount}"
    kb = tuple(h.policy_id for h in ctx.shop.search_policies("优惠补差", k=1))
    return Part(text, order.id, kb_ids=kb, note=note, skill=Skill.PROMOTION)


def _preferred(add_ons: Sequence[AddOnSuggestion], product_id: str | None, ctx: Context) -> AddOnSuggestion | None:
    """The add-on the caller named (「再买个袜子」) when it reaches a threshold, else the cheapest."""
    product = ctx.shop.product(product_id) if product_id else None
    named = [s for s in add_ons if product is not None and s.product_name == product.name]
    ranked = named or list(add_ons)
    return ranked[0] if ranked else None


_KIND_ORDER = ("threshold_discount", "quantity_percent", "bundle", "channel_price")


def _main_ineligible(
    ineligible: Sequence[IneligiblePromotion], add_on: AddOnSuggestion | None, ctx: Context
) -> IneligiblePromotion | None:
    """The exclusion a caller asking about 满减 means: the add-on's promotion, else by kind."""
    if not ineligible:
        return None
    if add_on is not None:
        for item in ineligible:
            if item.promotion_id == add_on.promotion_id:
                return item
    kinds = {p.id: p.kind for p in ctx.shop.promotions()}
    rank = {k: i for i, k in enumerate(_KIND_ORDER)}
    return min(ineligible, key=lambda i: rank.get(kinds.get(i.promotion_id, ""), len(rank)))


def _add_on_text(s: AddOnSuggestion) -> str:
    if s.net_extra_fen < 0:
        net = render("net.less", amount=yuan_text(-s.net_extra_fen))
    elif s.net_extra_fen == 0:
        net = render("net.same")
    else:
        net = render("net.more", amount=yuan_text(s.net_extra_fen))
    price, saving = yuan_text(s.price_fen), yuan_text(s.saving_fen)
    return render("promo.add_on", product=s.product_name, price=price, saving=saving, net=net)


def bundle_or_together(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    """Two products named: their computed price together; else the bundle deal itself."""
    products = named_products(u, ctx)
    if len(products) >= 2:
        return together(products, ctx)
    return promotion_bundle(intent, order, u, ctx)


def inquiry(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    """A coupon named → can it be used; two products → their price together; else what is on."""
    if intent.slots.get("coupon") or "券" in (u.normalized or u.text):
        return coupon_answer(intent, order, u, ctx)
    products = named_products(u, ctx)
    if len(products) >= 2:
        return together(products, ctx)
    return promotion_inquiry(intent, order, u, ctx)


def service_hours(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    start, end = ctx.info.agent_hours
    return Part(render("service.hours", start=start, end=end), skill=Skill.GENERAL)


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
