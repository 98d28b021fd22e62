"""The hotline's own spoken replies, as the corpus of the TTS intelligibility benchmark.

A voice is measured on what the hotline actually says, not on generic Chinese sentences: every reply
template in ``dialog/data/replies.json`` is filled with one realistic sample value per field, in the
exact shape the dialog code computes it at run time (``dialog/*.py``, ``shop/promotions.py``):

- money through ``core.money.yuan_text``: 「32.8元」, 「1299元」 (no trailing zeros, no thousands separator);
- dates through ``dialog.replies.date_text``: 「明天」, 「12月6号」; promotion windows and coupon expiry
  through ``dialog.reasons``: 「12月12日」, 「12月5日19:30」, 「12月6日23:59」 (the time unless a
  promotion starts at 00:00 or ends at 23:59);
- moments as 「今天14:30」, durations through ``duration_text``: 「5个多小时」, 「2天多」;
- sizes through ``size_text``: 「XL码」 (a 500ml bottle has no size; its volume is in its name);
- order numbers and tracking numbers as the shop stores them: 「WY20261207001」, 「YT7712345678901」;
- a discount as its 折 figure: 「8.5」 (the templates say 「打{zhe}折」), percentages inside shop facts;
- an order as the caller recognises it (``order_ref``): 「12月3号买连体衣和袜子的那单」.

Clauses the code builds from other templates (``order``, ``description``, ``timing``, ``option``,
``few``, ``net``, ``reason``, …) are rendered here from those templates too, so their wording follows
``replies.json``; some start with a comma (「，预计12月6号送达」) exactly as the code passes them.

Each field has one value for every template that uses it, so a few templates read oddly out of their
usual context (``ref.order`` with ``what`` = 「收货地址」, ``why.excluded_type`` with a person's name,
``track.in_transit`` with an order's status): the words and figures a TTS normaliser must handle are
still those of the hotline. ``title`` does not end in a digit, so that ``why.channel_applied``
(「{title}{price}」) does not run two figures together as no real channel-price title would.

``reply_texts()`` gives (template key, filled text) for every template, in the file's order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from dialog.replies import FIELDS, render, templates

# Values the code takes from shop data or computes as one figure (leaves).
_LEAVES: dict[str, str] = {
    # money (core.money.yuan_text)
    "amount": "32.8元",
    "after": "1184.6元",
    "before": "1299元",
    "saved": "114.4元",
    "base": "176.5元",
    "threshold": "199元",
    "short": "22.5元",
    "total": "176.5元",
    "paid": "159.7元",
    "price": "89.9元",
    "saving": "25元",
    "discount": "10元",
    "fee": "15元",
    # dates (date_text: 号; reasons: 日, with the time unless the whole day)
    "arrive": "12月12号",
    "day": "12月6号",
    "deadline": "12月15号",
    "expected": "12月9号",
    "received": "12月5号",
    "restock": "12月20号",
    "signed": "12月8号",
    "starts": "12月5日19:30",
    "ends": "12月12日",
    "until": "12月6日23:59",
    # moments and clock times (ShopInfo.agent_hours, logistics._by / _moment)
    "when": "今天14:30",
    "ship": "明天16:00",
    "start": "09:00",
    "end": "21:00",
    # durations (duration_text) and counts
    "duration": "5个多小时",
    "idle": "2天多",
    "hours": "48",
    "days": "3",
    "count": "2",
    "need": "3",
    "sets": "2",
    "digits": "11",
    "zhe": "8.5",
    # identifiers
    "order_id": "WY20261207001",
    "tracking_no": "YT7712345678901",
    "prefix": "WY",
    # names: shop, caller, desk, carrier, places
    "shop": "暖芽母婴生活馆",
    "name": "林晓雯",
    "desk": "售后专员",
    "carrier": "顺丰速运",
    "where": "上海闵行营业部",
    "who": "菜鸟驿站",
    "channel": "小程序",
    "summary": "咨询连体衣尺码",
    # the agents' queue: the caller's place and expected wait (``manager.queue_text``)
    "ahead": "2",
    "minutes": "3",
    "wait": "大约要等3分钟",
    "callback": "已为您登记回电，稍后售后专员会打给您。",  # the booked callback (``policy.callback_text``)
    # products, variants (variant_text: colour + size_text) and their lists (join_list)
    "product": "卫衣",
    "products": "玻璃宽口奶瓶240ml和奶瓶刷套装",
    "lacking": "奶瓶刷套装",
    "names": "轻便婴儿推车、安抚摇铃玩具",
    "item": "卫衣黑色XL码",
    "items": "奶瓶和奶瓶刷",
    "in_stock": "黑色M码、黑色L码和灰色XL码",
    "value": "黑色L码",
    "wanted": "XXL码",
    "options": "M码、L码和XL码",
    "categories": "婴儿服饰",
    "facts": "材质95%棉5%氨纶，洗涤可机洗，水温不超过30度",
    # promotions and coupons: titles and rules as the shop writes them
    "title": "双12小程序专享券",
    "titles": "婴儿服饰任选3件8.5折和全店满199减25",
    "blockers": "直播间推车特价",
    "rules": "在小程序首页领取，满99元可用，仅小程序下单可用，有效期至12月31日。",
    # order state words (answers._STATUS_WORDS) and what a change is about
    "status": "正在退款",
    "what": "收货地址",
    "new": "浙江省杭州市西湖区文三路90号3幢502室",
    # a shop policy sentence read out as it is (kb.answer)
    "answer": "订单满99元包邮，不满99元收取运费8元，新疆、西藏等偏远地区另加10元。",
}


def _clauses(v: Mapping[str, str]) -> dict[str, str]:
    """Fields the code builds from other templates, rendered as the code does (``dialog/*.py``)."""
    c: dict[str, str] = {}
    c["order"] = render("ref.order", when="12月3号", what="连体衣和袜子")
    c["choices"] = c["order"] + "，还是" + render("ref.order", when="昨天", what="推车")
    c["first"] = render("order.status", order=c["order"], status="已经发货了")
    c["history"] = render("greet.history", summary=v["summary"])
    c["shape"] = render("ask.order_id.prefixed", prefix=v["prefix"], digits=v["digits"])
    c["ago"] = render("track.ago", duration=v["duration"])
    c["timing"] = render("track.due", day=v["day"])
    c["by"] = render("track.signed_pickup", who=v["who"])
    c["description"] = render("track.in_transit", ago=c["ago"], where=v["where"], status="到达", timing=c["timing"])
    c["overdue"] = render("logistics.overdue", days=v["days"])
    c["option"] = render("expedite.upgrade", carrier=v["carrier"], fee=v["fee"]) + render(
        "expedite.expected", arrive=v["arrive"]
    )
    c["few"] = render("stock.few", count=v["count"])
    c["net"] = render("net.more", amount="64.9元")
    c["steps"] = "、".join([render("why.step.percent", zhe=v["zhe"]), render("why.step.bundle")])
    c["reason"] = (
        render("why.after", steps=c["steps"], base=v["base"])
        + "，"
        + render("why.short_by", short=v["short"], threshold=v["threshold"])
    )
    c["why"] = render("change.sold_out", item=v["item"])
    return c


SAMPLE_VALUES: Mapping[str, str] = MappingProxyType({**_LEAVES, **_clauses(_LEAVES)})


def reply_texts() -> list[tuple[str, str]]:
    """(template key, filled text) for every reply template, in ``replies.json`` order."""
    return [(key, render(key, **{f: SAMPLE_VALUES[f] for f in FIELDS[key]})) for key in templates()]


def characters(texts: list[tuple[str, str]] | None = None) -> set[str]:
    """The distinct characters of the corpus (whitespace excluded)."""
    return {ch for _, text in (texts or reply_texts()) for ch in text if not ch.isspace()}


_HAN = re.compile(r"[\u4e00-\u9fff]")


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))
