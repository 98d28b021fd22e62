"""Keeping the thread across turns: the product talked about, and an address said on its own.

``carry`` fills what a follow-up leaves out from what came before: 「卡其色M码呢」 after a question
about a product is about that product. ``remember`` notes the product a turn was about.
``address_from`` takes the words said after 「新地址是哪里？」 as the address, without the lead-in.
"""

from __future__ import annotations

import re
from dataclasses import replace

from core.types import Intent, Understanding
from dialog.state import CallState, Context

PRODUCT_INTENTS = frozenset({"inventory.stock", "product.info", "promotion.inquiry", "promotion.bundle"})
_VARIANT_SLOTS = ("color", "size")
_LEAD = re.compile(r"^(?:嗯|哦|好|那|就是|是|新的?|收货|的)*(?:地址|改成|改为|改到|换成|送到|寄到|发到|是)*[:：，,\s]*")
_TAIL = "。！？，,.!? 吧呢啊哈呀"
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


def remember(state: CallState, intent: Intent) -> CallState:
    product = intent.slots.get("product")
    return replace(state, product=product) if product and product != state.product else state


def address_from(u: Understanding) -> str | None:
    """「就是北京市朝阳区建国路88号」 → 「北京市朝阳区建国路88号」; None when it does not sound like one."""
    text = _LEAD.sub("", u.text.strip()).rstrip(_TAIL)
    for tail in ("可以吗", "行吗", "好吗", "谢谢"):
        text = text.removesuffix(tail).rstrip(_TAIL)
    if len(text) < MIN_ADDRESS or not _PLACE.search(text):
        return None
    return text
