"""Why a promotion or coupon applied or not, in the caller's words: ``core.shop.Reason`` facts → replies.json.

Facts are figures and names from the shop (``shop/promotions.py``); every word around them is a
``why.*`` template. Amounts (keys ending ``_fen``) are spoken through ``core.money.yuan_text``,
lists of names joined 「A、B和C」, channels by their ``channel.*`` name, moments as 「11月18日」
(with the time unless it is the start or end of the day).
"""

from __future__ import annotations

from datetime import datetime

from core.money import yuan_text
from core.shop import Reason
from dialog.replies import FIELDS, join_list, render

_WHOLE_DAY = {"starts": "00:00", "ends": "23:59"}  # a window bound at these times is said as a date


def why_text(reason: Reason) -> str:
    """One clause for the caller, without a final full stop."""
    facts = reason.facts
    if reason.code == "threshold_excluded":
        return "，".join(_excluded(reason)) or render("why.none_eligible")
    if reason.code == "threshold_short":
        return "，".join([*_excluded(reason), _short(reason)])
    return render(f"why.{reason.code}", **{_field(k): _spoken(k, v) for k, v in facts.items()})


def _field(key: str) -> str:
    return key.removesuffix("_fen")


def _spoken(key: str, value: object) -> str:
    if key.endswith("_fen") and isinstance(value, int):
        return yuan_text(value)
    if key == "channel":
        return channel_name(str(value))
    if isinstance(value, datetime):
        clock = f"{value:%H:%M}"
        return f"{value.month}月{value.day}日" + ("" if _WHOLE_DAY.get(key) == clock else clock)
    if isinstance(value, tuple):
        return join_list(str(v) for v in value)
    return str(value)


def channel_name(channel: str) -> str:
    """直播间 for ``livestream`` (``channel.*`` templates); an unknown channel is said as written."""
    key = f"channel.{channel}"
    return render(key) if key in FIELDS else channel


def _excluded(reason: Reason) -> list[str]:
    """「直播专享价商品不参与满减」 for each price type and the products a threshold leaves out."""
    f = reason.facts
    titles = [*_names(f.get("excluded_titles")), *(render("why.channel_price", channel=channel_name(c))
                                                    for c in _names(f.get("excluded_channels")))]  # fmt: skip
    notes = [render("why.excluded_type", name=t) for t in titles]
    products = _names(f.get("excluded_products"))
    return notes + ([render("why.excluded", names="、".join(products))] if products else [])


def _short(reason: Reason) -> str:
    """「打完9折后是295.2元，差4.8元到300元门槛」."""
    f = reason.facts
    rest = bool(
        _names(f.get("excluded_titles")) or _names(f.get("excluded_channels")) or _names(f.get("excluded_products"))
    )
    base = _spoken("base_fen", f.get("base_fen"))
    steps = [render("why.step.percent", zhe=f.get("zhe", "")) if s == "percent" else render("why.step.bundle")
             for s in _names(f.get("steps"))]  # fmt: skip
    if steps:
        head = render("why.after_rest" if rest else "why.after", steps="、".join(steps), base=base)
    else:
        head = render("why.total_rest" if rest else "why.total", base=base)
    gap = render("why.short_by", short=_spoken("short_fen", f.get("short_fen")),
                 threshold=_spoken("threshold_fen", f.get("threshold_fen")))  # fmt: skip
    return f"{head}，{gap}"


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, tuple) else ()
