"""One answer per intent, key fact first, with every figure computed by the ShopPort.

``answer(intent, order, understanding, ctx) -> Part``. The manager has already picked the order
(or ``None`` for intents about the shop in general). Wording comes from ``replies.render``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from types import MappingProxyType

from core.money import yuan_text
from core.shop import (
    Order,
    OrderItem,
    OrderStatus,
    Product,
)
from core.types import Intent, Skill, Understanding
from dialog.catalogue import (
    inventory_stock,
    matches,
    out_text,
    product_info,
    product_of,
    stock_text,
)
from dialog.deals import bundle_or_together, inquiry, promotion_not_applied, service_hours
from dialog.logistics import (
    logistics_carrier,
    logistics_expedite,
    logistics_ship_time,
    logistics_track,
)
from dialog.replies import (
    date_text,
    join_list,
    order_ref,
    render,
    short_name,
    size_text,
    variant_text,
)
from dialog.state import CollectAddress, CollectVariant, ConfirmChange, Context, OfferTransfer, Part

Answer = Callable[[Intent, Order | None, Understanding, Context], Part]

TOPIC: Mapping[str, Skill] = MappingProxyType(
    {
        "logistics.track": Skill.LOGISTICS,
        "logistics.ship_time": Skill.LOGISTICS,
        "logistics.carrier": Skill.LOGISTICS,
        "logistics.expedite": Skill.LOGISTICS,
        "inventory.stock": Skill.SALES,
        "product.info": Skill.SALES,
        "promotion.inquiry": Skill.PROMOTION,
        "promotion.not_applied": Skill.PROMOTION,
        "promotion.bundle": Skill.PROMOTION,
        "order.modify": Skill.GENERAL,
        "order.cancel": Skill.AFTERSALE,
        "order.status": Skill.GENERAL,
        "aftersale.return": Skill.AFTERSALE,
        "aftersale.refund_status": Skill.AFTERSALE,
        "aftersale.exchange": Skill.AFTERSALE,
        "aftersale.damage": Skill.AFTERSALE,
        "invoice": Skill.GENERAL,
        "complaint": Skill.COMPLAINT,
        "logistics.appointment": Skill.LOGISTICS,
        "logistics.refuse": Skill.LOGISTICS,
        "logistics.courier": Skill.LOGISTICS,
        "shipping.fee": Skill.GENERAL,
        "aftersale.repair": Skill.AFTERSALE,
        "service.install": Skill.AFTERSALE,
    }
)

_OPEN = (OrderStatus.UNPAID, OrderStatus.PAID)  # not shipped: address, colour, size can change
_STATUS_WORDS = {
    OrderStatus.UNPAID: "还没付款",
    OrderStatus.PAID: "已付款，还没发货",
    OrderStatus.SHIPPED: "已经发货了",
    OrderStatus.DELIVERED: "已经签收了",
    OrderStatus.REFUNDING: "正在退款",
    OrderStatus.CANCELLED: "已经取消了",
}


def _ref(order: Order, ctx: Context) -> str:
    return order_ref(ctx.shop, order, ctx.today, ctx.tz)


def _kb_ids(ctx: Context, query: str) -> tuple[str, ...]:
    return tuple(h.policy_id for h in ctx.shop.search_policies(query, k=1))


# --- orders ------------------------------------------------------------------------------------

_ADDRESS = re.compile(r"地址.{0,6}?(?:改成|改为|改到|换成|换到|改)(?P<new>.+)")
_TAIL = "。！？，,.!? 吧呢啊哈呀可以吗行吗好吗谢谢"


def requested_address(text: str) -> str | None:
    m = _ADDRESS.search(text)
    if not m:
        return None
    new = m.group("new").strip()
    for tail in ("可以吗", "行吗", "好吗", "谢谢"):
        new = new.removesuffix(tail)
    new = new.rstrip(_TAIL)
    return new if len(new) >= 4 else None


def order_status(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    if order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        return logistics_track(intent, order, u, ctx)
    text = render("order.status", order=_ref(order, ctx), status=_STATUS_WORDS[order.status])
    return Part(text, order.id, skill=Skill.GENERAL)


def order_cancel(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    ref = _ref(order, ctx)
    if order.status is OrderStatus.UNPAID:
        return Part(render("cancel.unpaid", order=ref), order.id, skill=Skill.AFTERSALE)
    if order.status is OrderStatus.PAID:
        offer = OfferTransfer(Skill.AFTERSALE, f"{order.id}未发货，客户要取消")
        return Part(render("cancel.open", order=ref), order.id, offer=offer, skill=Skill.AFTERSALE)
    return Part(render("cancel.shipped", order=ref), order.id, kb_ids=_kb_ids(ctx, "无理由退货"), skill=Skill.AFTERSALE)


# --- after-sales and the knowledge base --------------------------------------------------------


def refund_status(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    ref = _ref(order, ctx)
    r = order.refund
    if r is None:
        return Part(render("refund.none", order=ref), order.id, skill=Skill.AFTERSALE)
    expected = date_text(r.expected_by, ctx.today) if r.expected_by else "尽快"
    text = render("refund.status", order=ref, amount=yuan_text(r.amount_fen), status=r.status, expected=expected)
    if r.warehouse_received_at is not None:
        text += render(
            "refund.received", received=date_text(r.warehouse_received_at.astimezone(ctx.tz).date(), ctx.today)
        )
    offer = None
    if r.expected_by is not None and r.expected_by < ctx.today:
        text = render("refund.overdue", expected=expected) + text
        offer = OfferTransfer(Skill.AFTERSALE, f"{order.id}退款已超过预计日期")
    kb = _kb_ids(ctx, "退款时效")
    return Part(text, order.id, offer=offer, kb_ids=kb, skill=Skill.AFTERSALE)


def kb_answer(intent: Intent, u: Understanding, ctx: Context) -> Part:
    """A question no answer function covers (运费谁出, 价保…): the shop's own policy sentence, else a human."""
    return _kb_part("", TOPIC.get(intent.name, Skill.GENERAL), ctx, None, u.normalized or u.text)


def _own_words(u: Understanding) -> str:
    """The caller's words to search the policies with: not when the turn asks several things (the
    words of one need would pull in another need's policy)."""
    return u.normalized if len(u.intents) <= 1 else ""


def _kb_part(query: str, skill: Skill, ctx: Context, order_id: str | None = None, said: str = "") -> Part:
    """The policy sentence that answers the caller's words (``said``) on this topic (``query``)."""
    hits = ctx.shop.search_policies(f"{said} {query}".strip(), k=1)
    if not hits:
        return Part(render("kb.none"), order_id, offer=OfferTransfer(skill, "知识库没有答案"), skill=skill)
    return Part(render("kb.answer", answer=hits[0].answer), order_id, kb_ids=(hits[0].policy_id,), skill=skill)


def _signed_on(order: Order, ctx: Context) -> date | None:
    if order.shipment is None or order.status is not OrderStatus.DELIVERED or not order.shipment.events:
        return None
    return order.shipment.events[-1].at.astimezone(ctx.tz).date()


def aftersale_return(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    part = _kb_part("退货", Skill.AFTERSALE, ctx, order.id if order else None, _own_words(u))
    signed = _signed_on(order, ctx) if order else None
    days = ctx.info.fulfilment.return_days  # a window the shop does not state is read from its policy text only
    if order is None or signed is None or days is None:
        return part
    deadline = signed + timedelta(days=days)
    ref, on = _ref(order, ctx), date_text(signed, ctx.today)
    if ctx.today <= deadline:
        window = render("return.window", order=ref, signed=on, deadline=date_text(deadline, ctx.today))
    else:
        window = render("return.window_passed", order=ref, signed=on, days=days)
    return Part(window + part.text, order.id, kb_ids=part.kb_ids, skill=Skill.AFTERSALE)


def aftersale_exchange(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    if order is not None and order.status in _OPEN:
        return order_modify(intent, order, u, ctx)  # not shipped yet: the order itself can still change
    part = _kb_part("换货", Skill.AFTERSALE, ctx, order.id if order else None, _own_words(u))
    product = product_of(intent, order, ctx)
    color, size = intent.slots.get("color"), intent.slots.get("size")
    if product is None or not (color or size):
        return part
    target = [v for v in product.variants if matches(v, color, size)]
    if len(target) != 1:
        return part
    stock = stock_text(short_name(ctx.shop, product.id, product.name), target[0], product, ctx)
    return Part(stock + part.text, part.order_id, kb_ids=part.kb_ids, skill=Skill.AFTERSALE)


def aftersale_damage(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    if order is not None and order.status is OrderStatus.SHIPPED:
        return logistics_track(intent, order, u, ctx)  # not delivered yet: where the parcel is answers it
    part = _kb_part("破损 拍照反馈", Skill.AFTERSALE, ctx, order.id if order else None, _own_words(u))
    reason = f"{order.id}商品破损" if order else "商品破损"
    return Part(part.text, part.order_id, OfferTransfer(Skill.AFTERSALE, reason), part.kb_ids, reason, Skill.AFTERSALE)


def invoice(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    return _kb_part("发票 申请", Skill.GENERAL, ctx, order.id if order else None, _own_words(u))


def order_modify(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    """What can still change; a named change becomes a confirmation question, never a change."""
    assert order is not None
    ref = _ref(order, ctx)
    kb = _kb_ids(ctx, "修改订单 改地址")
    if order.status is OrderStatus.SHIPPED:
        return Part(render("modify.shipped", order=ref), order.id, kb_ids=kb, skill=Skill.GENERAL)
    if order.status not in _OPEN:
        text = render("modify.done_state", order=ref, status=_STATUS_WORDS[order.status])
        return Part(text, order.id, skill=Skill.GENERAL)
    change = requested_change(intent, order, u, ctx)
    if isinstance(change, Part):
        return change
    if change is not None:
        return Part("", order.id, offer=change, kb_ids=kb, skill=Skill.GENERAL)
    said = u.normalized or u.text
    if "地址" in said:  # 「我想改个收货地址」: ask for it, then read it back
        text = render("modify.address_open", order=ref)
        return Part(text, order.id, CollectAddress(order.id), kb, skill=Skill.GENERAL)
    field = next((f for f, words in _VARIANT_WORDS.items() if any(w in said for w in words)), None)
    if field is not None:  # 「我想换个颜色」: which one?
        text = render("modify.variant_open", order=ref)
        return Part(text, order.id, CollectVariant(order.id, field), kb, skill=Skill.GENERAL)
    return Part(render("modify.open", order=ref), order.id, kb_ids=kb, skill=Skill.GENERAL)


_VARIANT_WORDS = {"color": ("颜色", "色"), "size": ("尺码", "码", "大小", "号")}


def requested_change(intent: Intent, order: Order, u: Understanding, ctx: Context) -> ConfirmChange | Part | None:
    """The change the caller named (a new address, colour or size), checked against the catalogue."""
    address = requested_address(u.text)
    if address:
        return ConfirmChange(order.id, (("address", address),))
    color, size = intent.slots.get("color"), intent.slots.get("size")
    if not (color or size):
        return None
    pid = intent.slots.get("product")
    missing: Part | None = None
    for item in [i for i in order.items if pid is None or i.product_id == pid]:
        product = ctx.shop.product(item.product_id)
        new_color = color if color and not matches_color(item.color, color) else None
        new_size = size if size and size.upper().removesuffix("码") != item.size.upper() else None
        if product is None or not (new_color or new_size):
            continue
        target = [v for v in product.variants if matches(v, new_color or item.color, new_size or item.size)]
        if not target:
            missing = missing or Part(_no_variant(product, item, new_color, new_size, ctx), order.id)
            continue
        v = target[0]
        if v.stock <= 0:
            return Part(
                out_text(f"{short_name(ctx.shop, product.id, product.name)}{variant_text(v)}", v, ctx), order.id
            )
        changes: tuple[tuple[str, str], ...] = (("color", v.color),) if new_color else ()
        changes += (("size", v.size),) if new_size else ()
        return ConfirmChange(order.id, changes, product.id, v.sku)
    return missing


def _no_variant(product: Product, item: OrderItem, color: str | None, size: str | None, ctx: Context) -> str:
    """「T恤黑色没有L码，有M码和XL码」: what the caller asked for does not exist; what does."""
    name = short_name(ctx.shop, product.id, product.name)
    if color and not size:
        kept, options = size_text(item.size), [v.color for v in product.variants if v.size == item.size]
    elif size and not color:
        kept, options = item.color, [size_text(v.size) or v.size for v in product.variants if v.color == item.color]
    else:
        kept, options = "", [variant_text(v) for v in product.variants]
    wanted = f"{color or ''}{size_text(size or '') or (size or '')}"
    return render("modify.no_variant", item=name + kept, wanted=wanted, options=join_list(dict.fromkeys(options)))


def matches_color(current: str, wanted: str) -> bool:
    return wanted in current or current in wanted


def change_words(pending: ConfirmChange, ctx: Context) -> tuple[str, str]:
    """(「T恤的颜色和尺码」, 「黑色、XL码」) for a confirmation or a done message."""
    labels = {"address": "收货地址", "color": "颜色", "size": "尺码"}
    what = "和".join(labels[f] for f, _ in pending.changes)
    new = "、".join(size_text(v) or v if f == "size" else v for f, v in pending.changes)
    product = ctx.shop.product(pending.product_id) if pending.product_id else None
    owner = render("ref.item_of", product=short_name(ctx.shop, product.id, product.name)) if product else ""
    return owner + what, new


def change_question(pending: ConfirmChange, ctx: Context) -> str:
    if [f for f, _ in pending.changes] == ["address"]:
        return render("modify.confirm_address", new=pending.changes[0][1])
    what, new = change_words(pending, ctx)
    return render("modify.confirm", what=what, new=new)


def handoff(skill: Skill, reason: str) -> Answer:
    """A need the hotline does not settle itself (repair, installation, the courier…): offer the desk that does."""

    def answer(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
        oid = order.id if order else None
        return Part(render("kb.none"), oid, offer=OfferTransfer(skill, reason), note=reason, skill=skill)

    return answer


def shipping_fee(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    """Who pays shipping: the shop's policy sentence when it has one about 运费/邮费, else the desk."""
    hits = ctx.shop.search_policies(f"{u.normalized} 运费 邮费 包邮", k=1)
    if hits and any(word in hits[0].answer for word in ("运费", "邮费", "包邮")):
        return Part(
            render("kb.answer", answer=hits[0].answer),
            order.id if order else None,
            kb_ids=(hits[0].policy_id,),
            skill=Skill.GENERAL,
        )
    return handoff(Skill.GENERAL, "客户问运费")(intent, order, u, ctx)


ANSWERS: Mapping[str, Answer] = MappingProxyType(
    {
        "logistics.track": logistics_track,
        "logistics.ship_time": logistics_ship_time,
        "logistics.carrier": logistics_carrier,
        "logistics.expedite": logistics_expedite,
        "inventory.stock": inventory_stock,
        "product.info": product_info,
        "promotion.inquiry": inquiry,
        "promotion.not_applied": promotion_not_applied,
        "promotion.bundle": bundle_or_together,
        "service.hours": service_hours,
        "order.modify": order_modify,
        "order.cancel": order_cancel,
        "order.status": order_status,
        "aftersale.return": aftersale_return,
        "aftersale.refund_status": refund_status,
        "aftersale.exchange": aftersale_exchange,
        "aftersale.damage": aftersale_damage,
        "invoice": invoice,
        "logistics.appointment": handoff(Skill.LOGISTICS, "客户要约送货时间或改配送方式"),
        "logistics.refuse": handoff(Skill.LOGISTICS, "客户要拒收"),
        "logistics.courier": handoff(Skill.LOGISTICS, "客户要联系配送员"),
        "shipping.fee": shipping_fee,
        "aftersale.repair": handoff(Skill.AFTERSALE, "客户要报修或问维修进度"),
        "service.install": handoff(Skill.AFTERSALE, "客户要约安装"),
    }
)
