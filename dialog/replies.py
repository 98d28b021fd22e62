"""Reply wording: templates from ``dialog/data/replies.json`` and the spoken forms of values.

Admins change wording in the JSON without a code change. Each template may use only the fields
the code fills for its key (``FIELDS``); every field's value is computed by code from shop data
(amounts through ``core.money.yuan_text``), never written into a template. The file is read and
validated once; a template with an unknown key or field fails with ``ConfigError`` naming it.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping
from datetime import date, tzinfo
from functools import cache
from pathlib import Path
from types import MappingProxyType

from core.errors import ConfigError
from core.shop import Customer, Order, ShopPort, Variant

TEMPLATES_PATH = Path(__file__).parent / "data" / "replies.json"

_F = frozenset
FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "ref.order": _F({"when", "what"}),
        "ref.item_of": _F({"product"}),
        "greet.known": _F({"name", "shop", "history"}),
        "greet.unknown": _F({"shop"}),
        "greet.history": _F({"summary"}),
        "greet.complained": _F({"name"}),
        "empathy.anxious": _F(),
        "empathy.angry": _F(),
        "reprompt": _F(),
        "ask.order_id": _F({"shape"}),
        "ask.order_id.prefixed": _F({"prefix", "digits"}),
        "ask.order_id.digits": _F({"digits"}),
        "reprompt.short": _F(),
        "ask.address": _F(),
        "ask.color": _F(),
        "ask.size": _F(),
        "modify.variant_open": _F({"order"}),
        "repeat": _F({"first"}),
        "pending.dropped": _F(),
        "offer.details": _F(),
        "offer.policy": _F({"title"}),
        "verify.ask": _F(),
        "verify.ok": _F(),
        "verify.wrong": _F(),
        "verify.failed": _F(),
        "verify.needed_to_change": _F(),
        "service.hours": _F({"start", "end"}),
        "service.hours_now": _F(),
        "coupon.ok": _F({"title", "threshold", "discount"}),
        "coupon.short": _F({"title", "threshold", "what", "total", "short"}),
        "coupon.channel": _F({"title"}),
        "coupon.expired": _F({"title"}),
        "coupon.rules": _F({"rules"}),
        "coupon.unknown": _F({"titles"}),
        "bundle.quote": _F({"items", "before", "after", "saved"}),
        "bundle.reached": _F({"title"}),
        "bundle.add_on": _F({"title", "price", "product", "total"}),
        "callback.closed": _F(),
        "callback.busy": _F(),
        "callback.soon": _F(),
        "ask.which_order": _F({"choices"}),
        "ask.product": _F(),
        "order.not_found": _F({"order_id"}),
        "order.none_for_caller": _F(),
        "order.status": _F({"order", "status"}),
        "logistics.status": _F({"order", "description"}),
        "logistics.stalled": _F({"order", "where", "idle", "overdue"}),
        "logistics.overdue": _F({"days"}),
        "logistics.carrier": _F({"order", "carrier", "tracking_no"}),
        "logistics.not_shipped_carrier": _F({"order"}),
        "logistics.default_carrier": _F({"order", "carrier"}),
        "logistics.will_check": _F(),
        "track.not_shipped": _F(),
        "track.cancelled": _F(),
        "track.refunding": _F(),
        "track.unpaid": _F({"hours"}),
        "track.unpaid_unstated": _F(),
        "track.ship_by": _F({"when"}),
        "track.ship_late": _F({"when"}),
        "track.no_scan": _F({"carrier", "timing"}),
        "track.delivered": _F({"when", "where", "by"}),
        "track.signed_pickup": _F({"who"}),
        "track.signed_by": _F({"who"}),
        "track.out_for_delivery": _F({"when", "where", "timing"}),
        "track.in_transit": _F({"ago", "where", "status", "timing"}),
        "track.ago": _F({"duration"}),
        "track.just_now": _F(),
        "track.due": _F({"day"}),
        "track.late": _F({"day", "days"}),
        "track.on_the_way": _F(),
        "expedite.fastest": _F({"option"}),
        "expedite.also": _F({"option"}),
        "expedite.none": _F({"order"}),
        "expedite.standard": _F({"ship"}),
        "expedite.unpaid": _F({"ship"}),
        "expedite.late": _F({"deadline"}),
        "expedite.chase": _F({"ship"}),
        "expedite.route": _F({"carrier", "arrive"}),
        "expedite.vip": _F({"ship"}),
        "expedite.upgrade": _F({"carrier", "fee"}),
        "expedite.upgrade_free": _F({"carrier", "fee"}),
        "expedite.expected": _F({"arrive"}),
        "stock.in": _F({"item", "few"}),
        "stock.few": _F({"count"}),
        "stock.out_restock": _F({"item", "restock"}),
        "stock.out_unknown": _F({"item"}),
        "stock.alternatives": _F({"items"}),
        "stock.overview": _F({"product", "in_stock"}),
        "stock.all_out": _F({"product"}),
        "product.info": _F({"product", "facts"}),
        "product.price": _F({"product", "price"}),
        "promo.active": _F({"what", "titles"}),
        "promo.coupons": _F({"titles"}),
        "promo.none": _F(),
        "promo.bundle": _F({"title", "rules"}),
        "promo.owed": _F({"order", "titles", "amount"}),
        "promo.owed_how": _F({"amount", "days"}),
        "promo.owed_how_unstated": _F({"amount"}),
        "promo.ineligible": _F({"order", "title", "reason"}),
        "promo.short": _F({"order", "paid", "title", "short"}),
        "promo.add_on": _F({"product", "price", "saving", "net"}),
        "promo.ok": _F({"order", "paid"}),
        "promo.top_up": _F({"order", "title", "short"}),
        "net.less": _F({"amount"}),
        "net.same": _F(),
        "net.more": _F({"amount"}),
        "promo.applied": _F({"titles", "amount"}),
        "why.no_product": _F({"product"}),
        "why.not_started": _F({"starts"}),
        "why.ended": _F({"ends"}),
        "why.channel_only": _F({"title", "channel"}),
        "why.channel_applied": _F({"channel", "title", "price"}),
        "why.no_category": _F({"categories"}),
        "why.too_few": _F({"categories", "count", "need", "zhe"}),
        "why.quantity_applied": _F({"categories", "count", "need", "zhe"}),
        "why.bundle_missing": _F({"products", "title", "lacking"}),
        "why.bundle_applied": _F({"products", "sets"}),
        "why.threshold_met": _F({"base"}),
        "why.bigger_applied": _F({"title"}),
        "why.none_eligible": _F(),
        "why.excluded_type": _F({"name"}),
        "why.excluded": _F({"names"}),
        "why.channel_price": _F({"channel"}),
        "why.step.percent": _F({"zhe"}),
        "why.step.bundle": _F(),
        "why.after": _F({"steps", "base"}),
        "why.after_rest": _F({"steps", "base"}),
        "why.total": _F({"base"}),
        "why.total_rest": _F({"base"}),
        "why.short_by": _F({"short", "threshold"}),
        "why.coupon_unknown": _F(),
        "why.coupon_expired": _F({"title", "until"}),
        "why.coupon_channel": _F({"title", "channel"}),
        "why.coupon_blocked": _F({"blockers"}),
        "why.coupon_short": _F({"base", "short", "threshold"}),
        "why.coupon_applied": _F({"base", "threshold"}),
        "channel.livestream": _F(),
        "channel.short_video": _F(),
        "channel.app": _F(),
        "channel.mini_program": _F(),
        "channel.wechat": _F(),
        "channel.web": _F(),
        "channel.phone": _F(),
        "channel.any": _F(),
        "modify.open": _F({"order"}),
        "modify.shipped": _F({"order"}),
        "modify.done_state": _F({"order", "status"}),
        "modify.confirm": _F({"what", "new"}),
        "modify.confirm_address": _F({"new"}),
        "modify.address_open": _F({"order"}),
        "modify.done": _F({"what", "new"}),
        "modify.kept": _F(),
        "modify.failed": _F({"why"}),
        "modify.no_variant": _F({"item", "wanted", "options"}),
        "change.failed": _F(),
        "change.field": _F(),
        "change.what.address": _F(),
        "change.what.color": _F(),
        "change.what.size": _F(),
        "change.what.sku": _F(),
        "change.status.shipped": _F({"what"}),
        "change.status.delivered": _F({"what"}),
        "change.status.refunding": _F({"what"}),
        "change.status.cancelled": _F({"what"}),
        "change.address_unclear": _F(),
        "change.address_same": _F(),
        "change.not_in_order": _F(),
        "change.which_item": _F({"items"}),
        "change.which_of_same": _F({"count", "product"}),
        "change.already": _F({"product", "value"}),
        "change.out_of_stock": _F({"item"}),
        "change.out_of_stock_until": _F({"item", "restock"}),
        "change.sold_out": _F({"item"}),
        "change.no_variant": _F({"product", "wanted", "options"}),
        "cancel.open": _F({"order"}),
        "cancel.shipped": _F({"order"}),
        "cancel.unpaid": _F({"order"}),
        "refund.status": _F({"order", "amount", "status", "expected"}),
        "refund.received": _F({"received"}),
        "refund.overdue": _F({"expected"}),
        "refund.none": _F({"order"}),
        "return.window": _F({"order", "signed", "deadline"}),
        "return.window_passed": _F({"order", "signed", "days"}),
        "kb.answer": _F({"answer"}),
        "kb.none": _F(),
        "offer.logistics": _F(),
        "offer.transfer": _F({"desk"}),
        "greeting": _F(),
        "anything_else": _F(),
        "goodbye": _F({"shop"}),
        "prompt.go_on": _F(),
        "prompt.hold_on": _F(),
        "transfer": _F({"desk"}),
        "transfer.next": _F(),
        "transfer.queue": _F({"ahead", "wait"}),
        "transfer.wait_minutes": _F({"minutes"}),
        "transfer.wait_soon": _F(),
        "transfer.wait_unknown": _F(),
        "transfer.connected": _F({"name"}),
        "transfer.still_waiting": _F(),
        "transfer.offer_callback": _F(),
        "transfer.hold_on": _F(),
        "callback.chosen": _F({"callback"}),
        "callback.already": _F({"desk"}),
        "callback.call_again": _F({"when"}),
        "callback": _F({"start", "end", "when", "desk"}),
        "callback.today": _F({"start"}),
        "callback.tomorrow": _F({"start"}),
        "failed.transfer": _F({"desk"}),
    }
)

DESKS: Mapping[str, str] = MappingProxyType(
    {
        "logistics": "物流专员",
        "aftersale": "售后专员",
        "promotion": "活动专员",
        "complaint": "资深客服主管",
        "vip": "会员专属客服",
        "sales": "导购顾问",
        "general": "人工客服",
    }
)


def validate(templates: Mapping[str, object]) -> dict[str, str]:
    """Check every key is known and present and every ``{field}`` is one the code fills."""
    texts = {k: v for k, v in templates.items() if not k.startswith("_")}
    unknown = sorted(set(texts) - set(FIELDS))
    if unknown:
        raise ConfigError(f"replies.json: unknown template {unknown[0]!r}; known: {', '.join(sorted(FIELDS))}")
    missing = sorted(set(FIELDS) - set(texts))
    if missing:
        raise ConfigError(f"replies.json: template {missing[0]!r} is missing")
    checked: dict[str, str] = {}
    for key, text in texts.items():
        if not isinstance(text, str) or not text:
            raise ConfigError(f"replies.json: template {key!r} must be a non-empty string, got {text!r}")
        for name in _field_names(key, text):
            if name not in FIELDS[key]:
                known = ", ".join(sorted(FIELDS[key])) or "none"
                raise ConfigError(f"replies.json: template {key!r} uses unknown field {{{name}}}; known: {known}")
        checked[key] = text
    return checked


def _field_names(key: str, text: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise ConfigError(f"replies.json: template {key!r} is not a valid template: {err}") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ConfigError(f"replies.json: template {key!r} may only use plain {{field}}, got {{{name}}}")
        names.append(name)
    return names


def load(path: Path = TEMPLATES_PATH) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"replies.json: cannot read {path}: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"replies.json: expected an object of templates, got {type(raw).__name__}")
    return validate(raw)


@cache
def templates() -> Mapping[str, str]:
    """The validated templates, read once per process."""
    return MappingProxyType(load())


def render(key: str, **fields: object) -> str:
    """Fill template ``key``; the code must pass exactly the fields declared for it."""
    if set(fields) != FIELDS[key]:
        raise ValueError(f"render({key!r}): expected fields {sorted(FIELDS[key])}, got {sorted(fields)}")
    return templates()[key].format_map({k: str(v) for k, v in fields.items()})


# --- spoken forms ------------------------------------------------------------------------------


def join_list(items: Iterable[str]) -> str:
    """「A」, 「A和B」, 「A、B和C」."""
    xs = [x for x in items if x]
    if len(xs) <= 1:
        return "".join(xs)
    return "、".join(xs[:-1]) + "和" + xs[-1]


def date_text(d: date, today: date) -> str:
    """昨天 / 今天 / 明天 / 后天, 「26号」 this month, else 「12月5号」 (as the shop says dates)."""
    relative = {0: "今天", 1: "明天", 2: "后天", -1: "昨天"}.get((d - today).days)
    if relative:
        return relative
    return f"{d.day}号" if (d.year, d.month) == (today.year, today.month) else f"{d.month}月{d.day}号"


def duration_text(hours: float) -> str:
    """75.8 → 「3天多」, 48 → 「2天」, 5.5 → 「5个多小时」."""
    if hours >= 24:
        days, rest = divmod(hours, 24)
        return f"{int(days)}天" + ("多" if rest >= 1 else "")
    whole = int(hours)
    return f"{whole}个" + ("多" if hours - whole >= 0.25 else "") + "小时"


_WEARABLE_SIZE = re.compile(r"(?:X{0,3}S|X{0,3}L|M|\d{2,3}(?:\.5)?)", re.IGNORECASE)
_NO_SIZE = ("", "均码", "标准", "通用", "默认")


def size_text(size: str) -> str:
    """「M码」, 「42码」 for clothes and shoes; a size that is a spec (0-6月, 180x200cm) as it is; none
    for one-size goods (均码, 标准, 500ml)."""
    if size in _NO_SIZE or size.lower().endswith("ml"):
        return ""
    return size + "码" if _WEARABLE_SIZE.fullmatch(size) else size


def variant_text(v: Variant) -> str:
    return f"{v.color}{size_text(v.size)}"


def caller_name(customer: Customer) -> str:
    """The full name: the data has no gender, so never guess 女士/先生."""
    return customer.name


def short_name(shop: ShopPort, product_id: str, fallback: str) -> str:
    """The shortest spoken name callers use: the first alias, else the catalogue name."""
    product = shop.product(product_id)
    if product is not None and product.aliases:
        return product.aliases[0]
    return fallback


def order_ref(shop: ShopPort, order: Order, today: date, tz: tzinfo) -> str:
    """「昨天买T恤和连衣裙的那单」— how a caller recognises an order."""
    names = []
    for item in order.items:
        name = short_name(shop, item.product_id, item.product_name)
        if name not in names:
            names.append(name)
    what = join_list(names[:2]) + ("等" if len(names) > 2 else "")
    return render("ref.order", when=date_text(order.created_at.astimezone(tz).date(), today), what=what)
