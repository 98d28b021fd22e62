"""Answers about the catalogue: stock and restock dates, product facts, running promotions."""

from __future__ import annotations

from collections.abc import Mapping

from core.money import yuan_text
from core.shop import Order, Product, Variant
from core.types import Intent, Skill, Understanding
from dialog.replies import date_text, join_list, render, short_name, variant_text
from dialog.state import Context, Part

MAX_LISTED = 2  # promotions read out in one breath; the rest are 「等」

# --- catalogue ---------------------------------------------------------------------------------


def product_of(intent: Intent, order: Order | None, ctx: Context) -> Product | None:
    pid = intent.slots.get("product")
    if pid is None and order is not None and len({i.product_id for i in order.items}) == 1:
        pid = order.items[0].product_id
    return ctx.shop.product(pid) if pid else None


def matches(v: Variant, color: str | None, size: str | None) -> bool:
    ok_color = not color or color in v.color or v.color in color
    ok_size = not size or size.upper().removesuffix("码") == v.size.upper()
    return ok_color and ok_size


def inventory_stock(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    product = product_of(intent, order, ctx)
    if product is None:
        return Part(render("ask.product"))
    color, size = intent.slots.get("color"), intent.slots.get("size")
    wanted = [v for v in product.variants if matches(v, color, size)] or list(product.variants)
    name = short_name(ctx.shop, product.id, product.name)
    if len(wanted) == 1:
        return Part(stock_text(name, wanted[0], product, ctx), skill=Skill.SALES)
    in_stock = [variant_text(v) for v in wanted if v.stock > 0]
    text = render("stock.overview", product=name, in_stock=join_list(in_stock)) if in_stock else ""
    text = text or render("stock.all_out", product=name)
    for v in (v for v in wanted if v.stock <= 0):
        text += out_text(f"{variant_text(v)}", v, ctx)
    return Part(text, skill=Skill.SALES)


def stock_text(name: str, v: Variant, product: Product, ctx: Context) -> str:
    """One variant: in stock (and how few), or when it is back and what is in stock instead."""
    item = f"{name}{variant_text(v)}"
    if v.stock > 0:
        few = render("stock.few", count=v.stock) if v.stock <= 5 else ""
        return render("stock.in", item=item, few=few)
    others = [variant_text(o) for o in product.variants if o.stock > 0]
    alternatives = render("stock.alternatives", items=join_list(others)) if others else ""
    return out_text(item, v, ctx) + alternatives


def out_text(item: str, v: Variant, ctx: Context) -> str:
    if v.restock_date is not None:
        return render("stock.out_restock", item=item, restock=date_text(v.restock_date, ctx.today))
    return render("stock.out_unknown", item=item)


_FACT_WORDS = {
    "材质": ("材质", "面料", "料子", "什么料", "成分", "内胆"),
    "洗涤": ("洗",),
    "尺码建议": ("尺码", "码", "大小", "身高", "体重", "多大"),
    "鞋码建议": ("鞋码", "码", "偏大", "偏小"),
    "保温": ("保温",),
    "填充": ("填充", "充绒", "绒"),
    "尺寸": ("尺寸", "多大", "大小"),
}


def product_info(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    product = product_of(intent, order, ctx)
    if product is None:
        return Part(render("ask.product"))
    name = short_name(ctx.shop, product.id, product.name)
    text = u.normalized or u.text
    keys = [k for k in product.facts if any(w in text for w in (k, *_FACT_WORDS.get(k, ())))]
    asks_price = any(w in text for w in ("多少钱", "价格", "价钱", "几块", "贵"))
    out = render("product.price", product=name, price=yuan_text(product.price_fen)) if asks_price else ""
    if keys or not asks_price:
        facts = "，".join(f"{k}{product.facts[k]}" for k in (keys or list(product.facts)[:2]))
        out += render("product.info", product=name, facts=facts) if facts else ""
    return Part(out or render("product.price", product=name, price=yuan_text(product.price_fen)), skill=Skill.SALES)


def promotion_inquiry(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    product = product_of(intent, None, ctx)
    active = [p for p in ctx.shop.promotions() if p.starts <= ctx.now <= p.ends]
    if product is not None:
        active = [p for p in active if _promotion_covers(p.kind, p.params, product)]
    coupons = [c for c in ctx.shop.coupons() if c.valid_until >= ctx.now]
    if not active and not coupons:
        return Part(render("promo.none"), skill=Skill.PROMOTION)
    what = short_name(ctx.shop, product.id, product.name) if product else "店里"
    titles = join_list(p.title for p in active[:MAX_LISTED]) + ("等" if len(active) > MAX_LISTED else "")
    text = render("promo.active", what=what, titles=titles) if active else ""
    if coupons:
        text += render("promo.coupons", titles=join_list(c.title for c in coupons))
    return Part(text, skill=Skill.PROMOTION)


def _promotion_covers(kind: str, params: Mapping[str, object], product: Product) -> bool:
    def listed(key: str) -> list[object]:
        value = params.get(key)
        return list(value) if isinstance(value, list | tuple) else []

    if kind == "threshold_discount":
        return product.id not in listed("excludes_products")
    if kind == "quantity_percent":
        return product.category in listed("categories")
    if kind == "bundle":
        return product.id in listed("products")
    if kind == "channel_price":
        return params.get("product") == product.id
    return False


def promotion_bundle(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    product = product_of(intent, None, ctx)
    bundles = [p for p in ctx.shop.promotions() if p.kind == "bundle" and p.starts <= ctx.now <= p.ends]
    if product is not None:
        bundles = [p for p in bundles if _promotion_covers(p.kind, p.params, product)] or bundles
    if not bundles:
        return Part(render("promo.none"), skill=Skill.PROMOTION)
    b = bundles[0]
    return Part(render("promo.bundle", title=b.title, rules=b.rules), skill=Skill.PROMOTION)
