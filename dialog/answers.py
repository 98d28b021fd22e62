"""One answer per intent, key fact first, with every figure computed by the ShopPort.

``answer(intent, order, understanding, ctx) -> Part``. The manager has already picked the order
(or ``None`` for intents about the shop in general). Wording comes from ``replies.render``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from types import MappingProxyType

from core.money import yuan_text
from core.shop import (
    AddOnSuggestion,
    ExpediteOption,
    IneligiblePromotion,
    LogisticsStatus,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    ShipmentState,
)
from core.types import Intent, Skill, Understanding
from dialog.catalogue import (
    inventory_stock,
    matches,
    out_text,
    product_info,
    product_of,
    promotion_bundle,
    promotion_inquiry,
    stock_text,
)
from dialog.replies import (
    date_text,
    duration_text,
    join_list,
    order_ref,
    render,
    short_name,
    size_text,
    variant_text,
)
from dialog.state import ConfirmChange, Context, OfferTransfer, Part

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
_MOVING = (ShipmentState.IN_TRANSIT, ShipmentState.OUT_FOR_DELIVERY, ShipmentState.STALLED)
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


def _status(order: Order, ctx: Context) -> LogisticsStatus | None:
    return ctx.shop.logistics(order.id, ctx.now)


# --- logistics ---------------------------------------------------------------------------------


def logistics_track(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    st = _status(order, ctx)
    if st is None:
        return Part(render("order.not_found", order_id=order.id))
    if st.state is ShipmentState.STALLED:
        return _stalled(order, st, ctx)
    text = render("logistics.status", order=_ref(order, ctx), description=_sentence(st.description))
    return Part(text, order.id, skill=Skill.LOGISTICS)


def _stalled(order: Order, st: LogisticsStatus, ctx: Context) -> Part:
    where = st.last_event.where if st.last_event else "途中"
    idle = duration_text(st.hours_since_last_event or 0.0)
    overdue = render("logistics.overdue", days=st.days_overdue) if st.days_overdue > 0 else ""
    text = render("logistics.stalled", order=_ref(order, ctx), where=where, idle=idle, overdue=overdue)
    note = f"{order.id}物流停在{where}{idle}未更新"
    offer = OfferTransfer(Skill.LOGISTICS, note)
    return Part(text, order.id, offer=offer, note=note, skill=Skill.LOGISTICS)


def logistics_ship_time(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    st = _status(order, ctx)
    if st is None or st.state is not ShipmentState.NOT_SHIPPED:
        return logistics_track(intent, order, u, ctx)
    text = render("logistics.status", order=_ref(order, ctx), description=_sentence(st.description))
    options = ctx.shop.expedite_options(order.id, ctx.now)
    if intent.slots.get("urgency") == "high" and options:
        text += expedite_text(options, ctx)
    return Part(text, order.id, skill=Skill.LOGISTICS)


def logistics_expedite(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    options = ctx.shop.expedite_options(order.id, ctx.now)
    if options:
        return Part(expedite_text(options, ctx), order.id, skill=Skill.LOGISTICS)
    st = _status(order, ctx)
    if st is not None and st.state in _MOVING:
        return logistics_track(intent, order, u, ctx)
    return Part(render("expedite.none", order=_ref(order, ctx)), order.id, skill=Skill.LOGISTICS)


def fastest_first(options: Sequence[ExpediteOption]) -> list[ExpediteOption]:
    """Earliest arrival first, then earliest dispatch, then cheapest."""

    def key(o: ExpediteOption) -> tuple[float, float, int]:
        arrives = o.arrives_by.toordinal() if o.arrives_by else float("inf")
        ships = o.ships_by.timestamp() if o.ships_by else float("inf")
        return (arrives, ships, o.cost_fen)

    return sorted(options, key=key)


def expedite_text(options: Sequence[ExpediteOption], ctx: Context) -> str:
    """The fastest option first; a free one too when the fastest costs money."""
    ranked = fastest_first(options)
    best = ranked[0]
    text = render("expedite.fastest", option=_sentence(best.description))
    free = next((o for o in ranked[1:] if o.cost_fen == 0), None)
    if best.cost_fen and free is not None:
        text += render("expedite.also", option=_sentence(free.description))
    return text


def _sentence(text: str) -> str:
    """A shop sentence to embed in a template: without its final full stop."""
    return text.strip().rstrip("。.")


def logistics_carrier(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    assert order is not None
    st = _status(order, ctx)
    if st is not None and st.carrier:
        text = render("logistics.carrier", order=_ref(order, ctx), carrier=st.carrier, tracking_no=st.tracking_no or "")
        return Part(text, order.id, skill=Skill.LOGISTICS)
    hits = ctx.shop.search_policies("快递选择 顺丰 中通", k=1)
    policy = hits[0].answer if hits else ""
    text = render("logistics.not_shipped_carrier", order=_ref(order, ctx), policy=policy)
    return Part(text, order.id, kb_ids=tuple(h.policy_id for h in hits), skill=Skill.LOGISTICS)


# --- promotions --------------------------------------------------------------------------------


def promotion_not_applied(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    """Money owed back (补差) first; else why a promotion did not apply and the cheapest 凑单."""
    assert order is not None
    audit = ctx.shop.audit_promotions(order.id)
    if audit is None:
        return Part(render("order.not_found", order_id=order.id))
    ref = _ref(order, ctx)
    if audit.owed_back_fen > 0:
        amount = yuan_text(audit.owed_back_fen)
        titles = join_list(m.title for m in audit.missed)
        text = render("promo.owed", order=ref, titles=titles, amount=amount) + render("promo.owed_how", amount=amount)
        note = f"{order.id}应享{titles}未减，已登记补差{amount}"
        return Part(text, order.id, kb_ids=_kb_ids(ctx, "优惠补差"), note=note, skill=Skill.PROMOTION)
    add_ons = ctx.shop.add_on_suggestions(order.id, ctx.now) if order.status in _OPEN else ()
    add_on = add_ons[0] if add_ons else None
    why = _main_ineligible(audit.ineligible, add_on, ctx)
    if why is not None:
        text = render("promo.ineligible", order=ref, title=why.title, reason=_sentence(why.reason))
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
        net = f"反而少花{yuan_text(-s.net_extra_fen)}"
    elif s.net_extra_fen == 0:
        net = "一分钱不多花"
    else:
        net = f"只多花{yuan_text(s.net_extra_fen)}"
    price, saving = yuan_text(s.price_fen), yuan_text(s.saving_fen)
    return render("promo.add_on", product=s.product_name, price=price, saving=saving, net=net)


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
    return Part(
        render("cancel.shipped", order=ref), order.id, kb_ids=_kb_ids(ctx, "七天无理由退货"), skill=Skill.AFTERSALE
    )


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


def _kb_part(query: str, skill: Skill, ctx: Context, order_id: str | None = None, said: str = "") -> Part:
    """The policy sentence that answers the caller's words (``said``) on this topic (``query``)."""
    hits = ctx.shop.search_policies(f"{said} {query}".strip(), k=1)
    if not hits:
        return Part(render("kb.none"), order_id, skill=skill)
    return Part(render("kb.answer", answer=hits[0].answer), order_id, kb_ids=(hits[0].policy_id,), skill=skill)


def _signed_on(order: Order, ctx: Context) -> date | None:
    if order.shipment is None or order.status is not OrderStatus.DELIVERED or not order.shipment.events:
        return None
    return order.shipment.events[-1].at.astimezone(ctx.tz).date()


def aftersale_return(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    part = _kb_part("退货", Skill.AFTERSALE, ctx, order.id if order else None, u.normalized)
    signed = _signed_on(order, ctx) if order else None
    if order is None or signed is None:
        return part
    deadline = signed + timedelta(days=7)
    ref, on = _ref(order, ctx), date_text(signed, ctx.today)
    if ctx.today <= deadline:
        window = render("return.window", order=ref, signed=on, deadline=date_text(deadline, ctx.today))
    else:
        window = render("return.window_passed", order=ref, signed=on)
    return Part(window + part.text, order.id, kb_ids=part.kb_ids, skill=Skill.AFTERSALE)


def aftersale_exchange(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    if order is not None and order.status in _OPEN:
        return order_modify(intent, order, u, ctx)  # not shipped yet: the order itself can still change
    part = _kb_part("换货", Skill.AFTERSALE, ctx, order.id if order else None, u.normalized)
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
    part = _kb_part("破损 拍照反馈", Skill.AFTERSALE, ctx, order.id if order else None, u.normalized)
    reason = f"{order.id}商品破损" if order else "商品破损"
    return Part(part.text, part.order_id, OfferTransfer(Skill.AFTERSALE, reason), part.kb_ids, reason, Skill.AFTERSALE)


def invoice(intent: Intent, order: Order | None, u: Understanding, ctx: Context) -> Part:
    return _kb_part("发票 申请", Skill.GENERAL, ctx, order.id if order else None, u.normalized)


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
    return Part(render("modify.open", order=ref), order.id, kb_ids=kb, skill=Skill.GENERAL)


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
    owner = f"{short_name(ctx.shop, product.id, product.name)}的" if product else ""
    return owner + what, new


def change_question(pending: ConfirmChange, ctx: Context) -> str:
    order = ctx.shop.order(pending.order_id)
    ref = _ref(order, ctx) if order else pending.order_id
    what, new = change_words(pending, ctx)
    return render("modify.confirm", order=ref, what=what, new=new)


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
        return Part(render("kb.answer", answer=hits[0].answer), order.id if order else None,
                    kb_ids=(hits[0].policy_id,), skill=Skill.GENERAL)
    return handoff(Skill.GENERAL, "客户问运费")(intent, order, u, ctx)


ANSWERS: Mapping[str, Answer] = MappingProxyType(
    {
        "logistics.track": logistics_track,
        "logistics.ship_time": logistics_ship_time,
        "logistics.carrier": logistics_carrier,
        "logistics.expedite": logistics_expedite,
        "inventory.stock": inventory_stock,
        "product.info": product_info,
        "promotion.inquiry": promotion_inquiry,
        "promotion.not_applied": promotion_not_applied,
        "promotion.bundle": promotion_bundle,
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
