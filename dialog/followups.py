"""Keeping the thread across turns: the product talked about, and an address said on its own.

``carry`` fills what a follow-up leaves out from what came before: 「卡其色M码呢」 after a question
about a product is about that product. ``remember`` notes the product a turn was about.
``address_from`` takes the words said after 「新地址是哪里？」 as the address, without the lead-in.
"""

from __future__ import annotations

import re
from dataclasses import replace

from core.shop import OrderStatus
from core.types import Intent, Understanding
from dialog.deals import named_products
from dialog.state import CallState, Context

_ADD_ON_ASKS = frozenset({"promotion.bundle", "promotion.inquiry"})  # 凑单 may be classified as either
_UNSHIPPED = (OrderStatus.UNPAID, OrderStatus.PAID)
PRODUCT_INTENTS = frozenset({"inventory.stock", "product.info", "promotion.inquiry", "promotion.bundle"})
_VARIANT_SLOTS = ("color", "size")
_LEAD = re.compile(r"^.{0,8}?(?:地址是|地址改成|地址改为|地址|改成|改为|改到|换成|送到|寄到|发到|就是|是)[:：，,\s]*")
_TAIL = "。！？，,.!? 吧呢啊哈呀"
_HOURS = re.compile(r"(几点|什么时候|时间|几时).{0,4}(上班|下班|营业|在线|有人)|(上班|下班|营业|服务)时间")
_PLACE = re.compile(r"[省市区县镇乡村路街道巷弄号楼栋室幢苑园]")
MIN_ADDRESS = 6


def carry(intents: tuple[Intent, ...], state: CallState, u: Understanding, ctx: Context) -> tuple[Intent, ...]:
    """The turn's intents with the product of the conversation filled in where they name none."""
    if state.product is None:
        return intents
    if not intents:
        slots = {k: v for i in u.intents for k, v in i.slots.items() if k in _VARIANT_SLOTS}
        return (Intent("inventory.stock", 0.8, {**slots, "product": state.product}),) if slots else ()
    out = []
    for intent in intents:
        if intent.name in PRODUCT_INTENTS and "product" not in intent.slots:
            intent = Intent(intent.name, intent.confidence, {**intent.slots, "product": state.product})
        out.append(intent)
    return tuple(out)


def reread(u: Understanding) -> Understanding:
    """「你们人工客服几点上班」 asks when humans are there; it is not a request for one now."""
    if not _HOURS.search(u.normalized or u.text):
        return u
    intents = tuple(Intent("service.hours", i.confidence, i.slots) if i.name == "human_agent" else i for i in u.intents)
    return replace(u, intents=intents)


def complained_about(state: CallState, u: Understanding, ctx: Context) -> CallState:
    """A complaint about a product: the caller's orders holding it go to the agent with the call."""
    if state.customer is None:
        return state
    named = {i.slots["product"] for i in u.intents if "product" in i.slots}
    named |= {p.id for p in named_products(u, ctx)}
    if state.product and not named:
        named = {state.product}
    for order in ctx.shop.orders_for_customer(state.customer.id):
        if any(item.product_id in named for item in order.items):
            state = state.touch(order.id)
    return state


def remember(state: CallState, intent: Intent) -> CallState:
    product = intent.slots.get("product")
    return replace(state, product=product) if product and product != state.product else state


def address_from(u: Understanding) -> str | None:
    """「就是北京市朝阳区建国路88号」 → 「北京市朝阳区建国路88号」; None when it does not sound like one."""
    text = _LEAD.sub("", u.text.strip(), count=1).strip().rstrip(_TAIL)
    for tail in ("可以吗", "行吗", "好吗", "谢谢"):
        text = text.removesuffix(tail).rstrip(_TAIL)
    if len(text) < MIN_ADDRESS or not _PLACE.search(text):
        return None
    return text


def retarget(intent: Intent, state: CallState, u: Understanding, ctx: Context) -> Intent:
    """「怎么凑单」, 「再买个袜子能凑满减吗」 from a caller with an unshipped order: that order's unmet threshold."""
    topping_up = intent.slots.get("promotion") == "凑单" or "凑" in (u.normalized or u.text)
    if intent.name not in _ADD_ON_ASKS or not topping_up or state.customer is None:
        return intent
    open_orders = [o for o in ctx.shop.orders_for_customer(state.customer.id) if o.status in _UNSHIPPED]
    if not open_orders:
        return intent
    slots = {**intent.slots, "promotion": "凑单"}
    if len(open_orders) == 1 and "order_id" not in slots:
        slots["order_id"] = open_orders[0].id  # only an unshipped order can still be topped up
    return Intent("promotion.not_applied", intent.confidence, slots)
