"""Shipping promises read from the shop's own policy articles, with documented fallbacks.

Each figure is parsed from the policy text when a sentence says it (the reference shop's ids are
given as examples); when no article says it, the constant below is assumed and ``sources`` says
"assumed". ``sources`` maps each field to the policy id it came from.

- ``dispatch_hours`` 48 — KB-SHIP-TIME 「现货商品付款后48小时内发货」
- ``same_day_cutoff`` 16:00 — KB-SHIP-TIME 「每天16点前付款当天发出」
- ``default_carrier`` 中通快递, ``fast_regions`` 江浙沪 in 1 day, elsewhere 2-4 days —
  KB-CARRIER 「默认发中通快递，江浙沪次日达，其他地区2到4天」; arrival "at the latest" uses 4.
- ``upgrade_fee_fen`` 1200 to ``upgrade_carrier`` 顺丰速运, 1 day — KB-CARRIER
  「可补差价12元升级顺丰速运，大部分城市次日达」
- ``priority_from`` gold — KB-VIP 「金卡会员享受优先发货」; ``free_upgrade_from`` platinum —
  KB-VIP 「铂金会员另享免费顺丰升级」 (另享: platinum keeps every gold benefit).
- ``stall_hours`` 48 — KB-LOST-PACKAGE 「物流信息超过48小时未更新视为物流异常」

Assumed everywhere (no article says it): "ships today" means by 23:59 shop time that day; VIP
priority shipping means the next daily dispatch (today if before the cut-off, else tomorrow);
an out-of-stock item with a restock date ships within ``dispatch_hours`` of that date.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import time

from core.money import to_fen
from core.shop import Policy

VIP_RANKS = {"normal": 0, "silver": 1, "gold": 2, "platinum": 3, "diamond": 4}
VIP_NAMES = {"silver": "银卡会员", "gold": "金卡会员", "platinum": "铂金会员", "diamond": "钻石会员"}
_REGION_ABBR = {
    "江": "江苏", "苏": "江苏", "浙": "浙江", "沪": "上海", "皖": "安徽", "京": "北京", "津": "天津",
    "冀": "河北", "粤": "广东", "闽": "福建", "鲁": "山东", "豫": "河南", "鄂": "湖北", "湘": "湖南",
}  # fmt: skip
_VIP_WORDS = {"银卡": "silver", "金卡": "gold", "铂金": "platinum", "钻石": "diamond"}
_CN = r"[\u4e00-\u9fff]"


@dataclass(frozen=True, slots=True)
class ShippingRules:
    dispatch_hours: int = 48
    same_day_cutoff: time = time(16, 0)
    default_carrier: str = "中通快递"
    fast_regions: tuple[str, ...] = ("江苏", "浙江", "上海")
    fast_days: int = 1
    other_days: tuple[int, int] = (2, 4)
    upgrade_carrier: str = "顺丰速运"
    upgrade_fee_fen: int = 1200
    upgrade_days: int = 1
    priority_from: str = "gold"
    free_upgrade_from: str = "platinum"
    stall_hours: int = 48
    sources: dict[str, str] = field(default_factory=dict)

    def transit_days(self, address: str) -> int:
        """Days on the road with the default carrier, at the latest."""
        fast = any(region in address for region in self.fast_regions)
        return self.fast_days if fast else self.other_days[1]

    def is_fast_region(self, address: str) -> bool:
        return any(region in address for region in self.fast_regions)

    def has_priority(self, vip_level: str) -> bool:
        return VIP_RANKS.get(vip_level, 0) >= VIP_RANKS.get(self.priority_from, 99)

    def free_upgrade(self, vip_level: str) -> bool:
        return VIP_RANKS.get(vip_level, 0) >= VIP_RANKS.get(self.free_upgrade_from, 99)


def shipping_rules(policies: Sequence[Policy]) -> ShippingRules:
    """The shipping promises stated in ``policies`` (first article that says each one wins)."""
    rules = ShippingRules()
    found: dict[str, object] = {}
    sources: dict[str, str] = {}
    for policy in policies:
        for name, value in _read(policy.text).items():
            if name not in found:
                found[name] = value
                sources[name] = policy.id
    all_fields = ShippingRules.__dataclass_fields__
    sources.update({name: "assumed" for name in all_fields if name not in sources and name != "sources"})
    return replace(rules, **found, sources=sources)  # type: ignore[arg-type]


def _read(text: str) -> dict[str, object]:
    out: dict[str, object] = {}
    if m := re.search(r"付款后(\d+)小时内发货", text):
        out["dispatch_hours"] = int(m[1])
    if m := re.search(r"(\d{1,2})(?:点|:00)前付款当天发", text):
        out["same_day_cutoff"] = time(int(m[1]) % 24, 0)
    if m := re.search(rf"默认发({_CN}+?(?:快递|速运|速递|物流))", text):
        out["default_carrier"] = m[1]
    if m := re.search(rf"({_CN}{{2,12}}?)次日达，其他地区(\d+)到(\d+)天", text):
        regions = _regions(m[1])
        if regions:
            out["fast_regions"], out["fast_days"] = regions, 1
        out["other_days"] = (int(m[2]), int(m[3]))
    if m := re.search(rf"补差价(\d+(?:\.\d+)?)元升级({_CN}+?(?:速运|快递|速递|物流))", text):
        out["upgrade_fee_fen"], out["upgrade_carrier"] = to_fen(m[1]), m[2]
        if re.search(r"升级[^。]*次日达", text):
            out["upgrade_days"] = 1
    if m := re.search(r"超过(\d+)小时未更新", text):
        out["stall_hours"] = int(m[1])
    for word, level in _VIP_WORDS.items():
        if re.search(rf"{word}会员[^。；]*优先发货", text):
            out.setdefault("priority_from", level)
        if re.search(rf"{word}会员[^。；]*免费(?:顺丰)?升级", text):
            out.setdefault("free_upgrade_from", level)
    return out


def _regions(phrase: str) -> tuple[str, ...]:
    """江浙沪 -> (江苏, 浙江, 上海); 北京、天津 -> (北京, 天津)."""
    parts = [p for p in re.split(r"[、和及]", phrase) if p]
    if len(parts) > 1:
        return tuple(parts)
    if all(ch in _REGION_ABBR for ch in phrase):
        return tuple(dict.fromkeys(_REGION_ABBR[ch] for ch in phrase))
    return ()
