"""The promotion engine: a basket priced under the shop's promotions and one coupon, integer fen.

Order of application (one order, always; each step sees the amounts left by the steps before):

1. ``channel_price`` — a product bought through the promotion's channel inside its window is
   priced at the special price; the line's ``price_type`` becomes that channel (``livestream``),
   and the saving against the list price is reported as a discount.
2. ``quantity_percent`` — when the basket holds at least ``min_quantity`` items of the
   ``categories``, every such line gets ``percent_off``, rounded half-up to the fen per line
   (line = unit price x qty). 「先算9折再算满减门槛」.
3. ``bundle`` — ``discount`` once per complete set (one of each product; 2 T恤 + 2 牛仔裤 = two
   sets), capped at the set lines' amount. The saving is spread over the set's lines in
   proportion to their amounts (largest remainder, so fen add up). 「可与满减叠加」.
4. ``threshold_discount`` — the threshold is met by the amount still payable for eligible lines
   after steps 1-3 (「按参与活动商品的实付金额（不含运费）计算」), leaving out
   ``excludes_products`` and ``excludes_price_types`` (「直播专享价商品不参与满减」). Applied once
   per order (满300减40 is not 每满300减40). If several threshold promotions are met they are
   read as tiers of one ladder: only the largest discount applies.
5. coupon — one per order, when not expired (``valid_until``), claimed on the order's channel
   (or ``any``), and the goods amount after steps 1-4 reaches its threshold. A promotion with
   ``stackable_with_coupons: false`` that applied blocks the coupon.
6. shipping is added last and never counts toward any threshold.

Every promotion runs only inside ``starts <= at <= ends``. Every discount is capped so no line
goes below zero. Parameters ``excludes_products`` / ``excludes_price_types`` are honoured for
every kind. Reasons (why a promotion applied or not) are ``core.shop.Reason`` facts; the dialog
words them (``dialog/reasons.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from core.shop import Coupon, PriceLine, Product, Promotion, Quote, Reason

REGULAR = "regular"
_KIND_ORDER = ("channel_price", "quantity_percent", "bundle", "threshold_discount")


@dataclass(frozen=True, slots=True)
class BasketLine:
    sku: str
    product_id: str
    product_name: str
    category: str
    qty: int
    list_unit_fen: int  # the list price before any promotion
    price_type: str = REGULAR


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one promotion or the coupon did to a basket, and why."""

    source_id: str
    title: str
    kind: str  # a promotion kind, or "coupon"
    amount_fen: int  # saved; 0 when it did not apply
    reason: Reason
    relevant: bool  # the basket holds something it covers
    active: bool  # inside its time window (a coupon: not expired)
    short_by_fen: int = 0  # a threshold (or coupon threshold) missed by this much; 0 otherwise

    @property
    def applied(self) -> bool:
        return self.amount_fen > 0


@dataclass(frozen=True, slots=True)
class Rulebook:
    """What pricing needs to know about the shop."""

    products: Mapping[str, Product]
    promotions: Sequence[Promotion]
    coupons: Mapping[str, Coupon]

    def price_type_title(self, price_type: str) -> str | None:
        """The title of the channel-price promotion that sets ``price_type`` (a channel), if any."""
        return next(
            (p.title for p in self.promotions if p.kind == "channel_price" and p.params.get("channel") == price_type),
            None,
        )


@dataclass(frozen=True, slots=True)
class Pricing:
    subtotal_fen: int
    lines: tuple[BasketLine, ...]
    net_fen: tuple[int, ...]  # what each line still costs after every discount
    outcomes: tuple[Outcome, ...]
    shipping_fee_fen: int = 0

    @property
    def goods_fen(self) -> int:
        return sum(self.net_fen)

    @property
    def total_fen(self) -> int:
        return self.goods_fen + self.shipping_fee_fen

    @property
    def discounts(self) -> tuple[PriceLine, ...]:
        return tuple(PriceLine(o.source_id, o.title, o.amount_fen) for o in self.outcomes if o.applied)

    def outcome(self, source_id: str) -> Outcome | None:
        return next((o for o in self.outcomes if o.source_id == source_id), None)

    def quote(self) -> Quote:
        return Quote(self.subtotal_fen, self.discounts, self.total_fen, self.shipping_fee_fen)


@dataclass
class _Work:
    """A basket being priced: lines, what each still costs, and which steps touched it."""

    lines: list[BasketLine]
    net: list[int]
    touched_by: list[set[str]] = field(default_factory=list)  # per line: kinds that discounted it
    percent_zhe: str = ""  # the 折 figure of the quantity discount applied (9, 8.5)

    def take(self, i: int, fen: int, kind: str) -> None:
        self.net[i] -= fen
        if fen:
            self.touched_by[i].add(kind)


def price_basket(
    lines: Sequence[BasketLine],
    book: Rulebook,
    *,
    channel: str,
    at: datetime,
    coupon_id: str | None = None,
    shipping_fee_fen: int = 0,
) -> Pricing:
    """Price ``lines`` bought through ``channel`` at ``at`` (see the module docstring for the order)."""
    work = _Work(list(lines), [ln.list_unit_fen * ln.qty for ln in lines], [set() for _ in lines])
    subtotal = sum(work.net)
    outcomes: list[Outcome] = []
    for kind in _KIND_ORDER:
        promos = [p for p in book.promotions if p.kind == kind]
        if kind == "threshold_discount":
            outcomes.extend(_thresholds(work, promos, book, at))
            continue
        for promo in promos:
            outcomes.append(_STEPS[kind](work, promo, book, channel, at))
    if coupon_id is not None:
        outcomes.append(_coupon(work, coupon_id, book, channel, at, [o for o in outcomes if o.applied]))
    return Pricing(subtotal, tuple(work.lines), tuple(work.net), tuple(outcomes), shipping_fee_fen)


def _eligible(work: _Work, promo: Promotion) -> list[int]:
    ex_products = set(_strs(promo.params.get("excludes_products")))
    ex_types = set(_strs(promo.params.get("excludes_price_types")))
    return [i for i, ln in enumerate(work.lines) if ln.product_id not in ex_products and ln.price_type not in ex_types]


def _strs(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _int(promo: Promotion, key: str) -> int:
    value = promo.params.get(key, 0)
    return int(value) if isinstance(value, int | float | str) else 0


def _active(promo: Promotion, at: datetime) -> bool:
    return promo.starts <= at <= promo.ends


def window_reason(promo: Promotion, at: datetime) -> Reason:
    """Why a promotion is not running at ``at``: not started yet, or ended."""
    if at < promo.starts:
        return Reason("not_started", {"starts": promo.starts})
    return Reason("ended", {"ends": promo.ends})


def zhe(percent_off: float) -> str:
    """A percentage off as its 折 figure: 10 -> 9, 15 -> 8.5."""
    return f"{(100 - percent_off) / 10:g}"


def _outcome(
    promo: Promotion, amount: int, reason: Reason, relevant: bool, active: bool = True, short_by: int = 0
) -> Outcome:
    return Outcome(promo.id, promo.title, promo.kind, amount, reason, relevant, active, short_by)


def _channel_price(work: _Work, promo: Promotion, book: Rulebook, channel: str, at: datetime) -> Outcome:
    product, promo_channel = str(promo.params.get("product", "")), str(promo.params.get("channel", ""))
    price = _int(promo, "price")
    idx = [i for i in _eligible(work, promo) if work.lines[i].product_id == product]
    idx = [i for i in idx if work.lines[i].price_type == REGULAR]
    if not idx:
        return _outcome(promo, 0, Reason("no_product", {"product": _name(book, product)}), False, _active(promo, at))
    if not _active(promo, at):
        return _outcome(promo, 0, window_reason(promo, at), True, False)
    if channel != promo_channel:
        return _outcome(promo, 0, Reason("channel_only", {"title": promo.title, "channel": promo_channel}), True)
    saved = 0
    for i in idx:
        ln = work.lines[i]
        unit = min(price, ln.list_unit_fen)
        work.lines[i] = replace(ln, price_type=promo_channel)
        cut = min(work.net[i], (ln.list_unit_fen - unit) * ln.qty)
        work.take(i, cut, promo.kind)
        saved += cut
    facts = {"channel": promo_channel, "title": promo.title, "price_fen": price}
    return _outcome(promo, saved, Reason("channel_applied", facts), True)


def _quantity_percent(work: _Work, promo: Promotion, book: Rulebook, channel: str, at: datetime) -> Outcome:
    cats = _strs(promo.params.get("categories"))
    need, pct = _int(promo, "min_quantity"), promo.params.get("percent_off", 0)
    figure = zhe(float(pct))  # type: ignore[arg-type]
    idx = [i for i in _eligible(work, promo) if work.lines[i].category in cats]
    count = sum(work.lines[i].qty for i in idx)
    facts: dict[str, object] = {"categories": tuple(cats), "count": count, "need": need, "zhe": figure}
    if not _active(promo, at):
        return _outcome(promo, 0, window_reason(promo, at), count > 0, False)
    if count == 0:
        return _outcome(promo, 0, Reason("no_category", {"categories": tuple(cats)}), False)
    if count < need:
        return _outcome(promo, 0, Reason("too_few", facts), True)
    saved = 0
    for i in idx:
        cut = percent_of(work.net[i], pct)  # type: ignore[arg-type]
        work.take(i, cut, promo.kind)
        saved += cut
    work.percent_zhe = work.percent_zhe or figure
    return _outcome(promo, saved, Reason("quantity_applied", facts), True)


def percent_of(fen: int, percent: float | int) -> int:
    """``percent`` % of ``fen``, rounded half-up to the fen."""
    exact = Decimal(fen) * Decimal(str(percent)) / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _bundle(work: _Work, promo: Promotion, book: Rulebook, channel: str, at: datetime) -> Outcome:
    wanted = _strs(promo.params.get("products"))
    idx = [i for i in _eligible(work, promo) if work.lines[i].product_id in wanted]
    have = {p: sum(work.lines[i].qty for i in idx if work.lines[i].product_id == p) for p in wanted}
    relevant = any(have.values())
    if not _active(promo, at):
        return _outcome(promo, 0, window_reason(promo, at), relevant, False)
    missing = [p for p in wanted if have[p] == 0]
    names = tuple(_name(book, p) for p in wanted)
    if missing:
        lacking = tuple(_name(book, p) for p in missing)
        reason = Reason("bundle_missing", {"products": names, "title": promo.title, "lacking": lacking})
        return _outcome(promo, 0, reason, relevant)
    sets = min(have.values())
    amount = min(_int(promo, "discount") * sets, sum(work.net[i] for i in idx))
    for i, cut in zip(idx, allocate(amount, [work.net[i] for i in idx]), strict=True):
        work.take(i, cut, promo.kind)
    return _outcome(promo, amount, Reason("bundle_applied", {"products": names, "sets": sets}), True)


def _thresholds(work: _Work, promos: list[Promotion], book: Rulebook, at: datetime) -> list[Outcome]:
    """Threshold promotions, all measured on the same amount; only the best one met applies."""
    bases = {p.id: sum(work.net[i] for i in _eligible(work, p)) for p in promos}
    met = [p for p in promos if _active(p, at) and bases[p.id] >= _int(p, "threshold") and bases[p.id] > 0]
    best = max(met, key=lambda p: (_int(p, "discount"), p.id), default=None)
    outcomes = []
    for promo in promos:
        if promo is best:
            idx = _eligible(work, promo)
            amount = min(_int(promo, "discount"), bases[promo.id])
            for i, cut in zip(idx, allocate(amount, [work.net[i] for i in idx]), strict=True):
                work.take(i, cut, promo.kind)
            outcomes.append(_outcome(promo, amount, Reason("threshold_met", {"base_fen": bases[promo.id]}), True))
        elif promo in met:
            bigger = Reason("bigger_applied", {"title": best.title if best else ""})
            outcomes.append(_outcome(promo, 0, bigger, True))
        elif not _active(promo, at):
            outcomes.append(_outcome(promo, 0, window_reason(promo, at), bool(work.lines), False))
        else:
            reason = _threshold_shortfall(work, promo, book, bases[promo.id])
            short = _int(promo, "threshold") - bases[promo.id] if _eligible(work, promo) else 0
            outcomes.append(_outcome(promo, 0, reason, True, short_by=short))
    return outcomes


def _threshold_shortfall(work: _Work, promo: Promotion, book: Rulebook, base: int) -> Reason:
    """How far the counted amount is from the threshold, after which steps, and which items did not count."""
    eligible = set(_eligible(work, promo))
    left_out = [ln for i, ln in enumerate(work.lines) if i not in eligible]
    ex_types = sorted({ln.price_type for ln in left_out if ln.price_type != REGULAR})
    excluded: dict[str, object] = {
        "excluded_titles": tuple(t for pt in ex_types if (t := book.price_type_title(pt))),
        "excluded_channels": tuple(pt for pt in ex_types if not book.price_type_title(pt)),
        "excluded_products": tuple(sorted({ln.product_name for ln in left_out if ln.price_type == REGULAR})),
    }
    if not eligible:
        return Reason("threshold_excluded", excluded)
    threshold = _int(promo, "threshold")
    kinds = set().union(*(work.touched_by[i] for i in eligible))
    steps = tuple(step for step, kind in (("percent", "quantity_percent"), ("bundle", "bundle")) if kind in kinds)
    figures = {"base_fen": base, "short_fen": threshold - base, "threshold_fen": threshold}
    return Reason("threshold_short", {**excluded, **figures, "steps": steps, "zhe": work.percent_zhe})


def _coupon(work: _Work, coupon_id: str, book: Rulebook, channel: str, at: datetime, applied: list[Outcome]) -> Outcome:
    coupon = book.coupons.get(coupon_id)
    if coupon is None:
        return Outcome(coupon_id, coupon_id, "coupon", 0, Reason("coupon_unknown"), True, False)

    def result(amount: int, code: str, *, active: bool = True, short_by: int = 0, **facts: object) -> Outcome:
        return Outcome(coupon.id, coupon.title, "coupon", amount, Reason(code, facts), True, active, short_by)

    if at > coupon.valid_until:
        return result(0, "coupon_expired", active=False, title=coupon.title, until=coupon.valid_until)
    if coupon.channel not in ("any", "") and coupon.channel != channel:
        return result(0, "coupon_channel", title=coupon.title, channel=coupon.channel)
    blockers = tuple(o.title for o in applied if _blocks_coupons(book, o.source_id))
    if blockers:
        return result(0, "coupon_blocked", blockers=blockers)
    base = sum(work.net)
    if base < coupon.threshold_fen or base == 0:
        short = coupon.threshold_fen - base
        threshold = coupon.threshold_fen
        return result(0, "coupon_short", short_by=short, base_fen=base, short_fen=short, threshold_fen=threshold)
    amount = min(coupon.discount_fen, base)
    for i, cut in enumerate(allocate(amount, list(work.net))):
        work.take(i, cut, "coupon")
    return result(amount, "coupon_applied", base_fen=base, threshold_fen=coupon.threshold_fen)


def _blocks_coupons(book: Rulebook, promotion_id: str) -> bool:
    promo = next((p for p in book.promotions if p.id == promotion_id), None)
    return promo is not None and promo.params.get("stackable_with_coupons", True) is False


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split ``amount`` fen over ``weights`` proportionally; the parts add up exactly."""
    total = sum(weights)
    if total <= 0 or amount <= 0:
        return [0 for _ in weights]
    raw = [amount * w for w in weights]
    parts = [r // total for r in raw]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(raw[i] % total), i))
    for i in by_remainder[: amount - sum(parts)]:
        parts[i] += 1
    return parts


def _name(book: Rulebook, product_id: str) -> str:
    product = book.products.get(product_id)
    return product.name if product else product_id


_STEPS = {
    "channel_price": _channel_price,
    "quantity_percent": _quantity_percent,
    "bundle": _bundle,
}
