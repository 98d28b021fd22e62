"""Slot values from normalised text: order ids, products, colours, sizes, dates, urgency, promotions.

Every value is a plain string (``core.types.Intent.slots``): order ids of the shop's own shape with
spoken digits resolved (幺两洞… → digits, letters as the ASR spells them), products as the shop's
product id, dates as ISO 8601 resolved against ``now``,
urgency as ``high`` or ``low`` (explicitly not urgent: 不急/慢慢来).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from rapidfuzz import fuzz

from core.shop import OrderNumbers
from dialog.normalize import is_common_word
from dialog.replies import render
from dialog.vocabulary import Vocabulary

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "幺": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_NUM = r"(?:\d{1,3}|[零〇一二两三四五六七八九十]{1,3})"
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_RELATIVE_DAYS = {
    "大前天": -3,
    "前天": -2,
    "昨天": -1,
    "昨晚": -1,
    "今天": 0,
    "今晚": 0,
    "明天": 1,
    "后天": 2,
    "大后天": 3,
}
_FESTIVALS = {"双十一": (11, 11), "双十二": (12, 12), "双11": (11, 11), "双12": (12, 12), "618": (6, 18)}
_GENERIC_COLORS = (
    "酒红色",
    "咖啡色",
    "卡其色",
    "藏青色",
    "军绿色",
    "墨绿色",
    "红色",
    "白色",
    "黑色",
    "蓝色",
    "绿色",
    "黄色",
    "紫色",
    "灰色",
    "粉色",
    "米色",
    "银色",
    "金色",
    "橙色",
    "棕色",
    "藏青",
)
_SHORT_COLOR = re.compile(r"([红白黑蓝绿黄紫灰粉米银金橙棕])(?:的|色)")
_LETTER_SIZE = re.compile(r"(?<![A-Z0-9])([2-4]?XL|X{2,3}L|XS|S|M|L)(?:码|号)?(?![A-Z0-9])")
_NUMBER_SIZE = re.compile(rf"({_NUM})码")
_TARGET_BEFORE = re.compile(r"(?:成|为|要|换|换个|买)$")  # 换成黑色, 改为L码, 要XL的, 想换黑色
_WORD_SIZES = ("加大码", "大一号", "小一号", "大一码", "小一码", "大码", "小码", "中码", "均码")
_ANY_ORDER_ID = r"[A-Z]{0,4}\d{8,}"  # a shop whose order numbers are unknown: letters then 8+ digits
_BARE_DIGITS = re.compile(r"(?<![A-Z0-9])\d+(?!\d)")
_LONG_DIGITS = re.compile(r"(?<![0-9A-Z])(\d{8,})(?![0-9])")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_QUANTITY = re.compile(rf"({_NUM})(件|双|条|套|盒|瓶|份|只|个)(?!月|小时|星期|礼拜|问题|事|人|电话|多|工作日|号)")
_URGENT = (
    "越快越好",
    "明天就要",
    "马上就要",
    "等着穿",
    "等着用",
    "赶时间",
    "来不及",
    "等不了",
    "急着",
    "急用",
    "着急",
    "加急",
    "赶紧",
    "尽快",
    "快点",
    "急",
)
_NOT_URGENT = ("不着急", "不用急", "不急", "别急", "不赶时间", "不赶", "慢慢来", "无所谓快慢")
_PROMOTIONS = (
    ("直播间价格", "直播价"),
    ("直播间的价格", "直播价"),
    ("直播价", "直播价"),
    ("满减", "满减"),
    ("第二件半价", "第二件半价"),
    ("半价", "半价"),
    ("打折", "折扣"),
    ("折扣", "折扣"),
    ("秒杀", "秒杀"),
    ("拼团", "拼团"),
    ("套装", "套装"),
    ("组合价", "套装"),
    ("搭配购", "套装"),
    ("赠品", "赠品"),
    ("价保", "价保"),
    ("保价", "价保"),
    ("补差价", "补差价"),
    ("降价", "降价"),
    ("包邮", "包邮"),
    ("凑单", "凑单"),
    ("活动", "活动"),
)
_COUPONS = (
    ("优惠券", "优惠券"),
    ("优惠码", "优惠码"),
    ("代金券", "优惠券"),
    ("消费券", "优惠券"),
    ("红包", "红包"),
    ("券", "优惠券"),
)
_FULL_REDUCTION = re.compile(r"满(\d+)减(\d+)")
FUZZY_PRODUCT_MIN = 80  # rapidfuzz ratio for a near-miss product name (防划学步鞋 ~ 防滑学步鞋)
FUZZY_MAX_TEXT = 200  # longer texts skip the fuzzy product pass


def cn_number(text: str) -> int | None:
    """十九 → 19, 二十一 → 21, 两 → 2, 42 → 42; None for anything else."""
    if text.isdigit():
        return int(text)
    if not text or any(c not in _CN_DIGITS and c != "十" for c in text):
        return None
    if "十" not in text:
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    tens, _, ones = text.partition("十")
    if "十" in ones or len(tens) > 1 or len(ones) > 1:
        return None
    return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)


def order_id(text: str, vocab: Vocabulary) -> str | None:
    """An order number of the shop's shape; its letters restored when the caller read only the digits."""
    numbers = vocab.order_numbers
    pattern = numbers.pattern() or _ANY_ORDER_ID
    for match in re.finditer(rf"(?<![A-Z0-9])(?:{pattern})(?![0-9])", text):
        if numbers.shapes or not _MOBILE.fullmatch(match.group()):
            return match.group()
    for match in _BARE_DIGITS.finditer(text):
        digits = match.group()
        prefixes = {s.prefix for s in numbers.shapes if s.prefix and s.min_digits <= len(digits) <= s.max_digits}
        candidate = prefixes.pop() + digits if len(prefixes) == 1 else None
        if candidate is not None and re.fullmatch(pattern, candidate):
            return candidate
    return None


def order_number_hint(numbers: OrderNumbers) -> str:
    """How the shop's order numbers look, for the question asking for one (「，是WY开头加11位数字」); "" if unsure."""
    if len(numbers.shapes) != 1:
        return ""
    shape = numbers.shapes[0]
    low, high = shape.min_digits, shape.max_digits
    digits = str(low) if low == high else f"{low}到{high}"
    if shape.prefix:
        return render("ask.order_id.prefixed", prefix=shape.prefix, digits=digits)
    return render("ask.order_id.digits", digits=digits)


def phone(text: str) -> str | None:
    for match in _LONG_DIGITS.finditer(text):
        if _MOBILE.fullmatch(match.group(1)):
            return match.group(1)
    return None


def product(text: str, vocab: Vocabulary) -> str | None:
    """The product id named in ``text`` by name, alias or a near-miss of a name (longest first)."""
    for term in sorted(vocab.terms, key=len, reverse=True):
        start = text.find(term)
        while start >= 0:
            if len(term) > 1 or _stands_alone(text, start):
                return vocab.terms[term]
            start = text.find(term, start + 1)
    return _fuzzy_product(text, vocab) if len(text) <= FUZZY_MAX_TEXT else None


def _stands_alone(text: str, i: int) -> bool:
    """A one-character alias (包) counts only when it is not part of a word (包裹, 包邮, 钱包)."""
    return not any(is_common_word(text[a : a + 2]) for a in (i - 1, i) if a >= 0 and len(text[a : a + 2]) == 2)


def _fuzzy_product(text: str, vocab: Vocabulary) -> str | None:
    best, best_score = None, float(FUZZY_PRODUCT_MIN)
    for term, product_id in vocab.terms.items():
        n = len(term)
        if n < 5:
            continue
        for start in range(0, max(1, len(text) - n + 1)):
            score = fuzz.ratio(term, text[start : start + n])
            if score >= best_score:
                best, best_score = product_id, score
    return best


def color(text: str, vocab: Vocabulary) -> str | None:
    """A colour as the shop spells it when it sells it (白的 → 白色), else the generic colour word.

    When several are named, the one asked for wins: 把白色换成黑色 → 黑色.
    """
    known = sorted((*vocab.colors, *_GENERIC_COLORS), key=len, reverse=True)
    mentions: list[tuple[int, str]] = []
    i = 0
    while i < len(text):
        word = next((c for c in known if text.startswith(c, i)), None)
        if word is None:
            short = _SHORT_COLOR.match(text, i)
            word = short.group(1) + "色" if short else None
            step = len(short.group()) if short else 1
        else:
            step = len(word)
        if word is not None:
            mentions.append((i, word))
        i += step
    return _shop_color(_wanted(text, mentions), vocab) if mentions else None


def _wanted(text: str, mentions: list[tuple[int, str]]) -> str:
    """The last value right after 换成/改成/要, else the first one mentioned."""
    targets = [word for at, word in mentions if _TARGET_BEFORE.search(text[max(0, at - 2) : at])]
    return targets[-1] if targets else mentions[0][1]


def _shop_color(word: str, vocab: Vocabulary) -> str:
    stem = word.removesuffix("色")
    for shop_color in vocab.colors:
        if shop_color == word or shop_color.removesuffix("色") == stem:
            return shop_color
    return word


def size(text: str, vocab: Vocabulary) -> str | None:
    """S/M/L/XL (L码, M号), 42码/四十二码, 大码/小码/均码, or a size the shop lists (500ML).

    When several are named, the one asked for wins: M码换成L码 → L.
    """
    mentions: list[tuple[int, str]] = []
    for shop_size in sorted(vocab.sizes, key=len, reverse=True):
        at = text.find(shop_size.upper())
        if len(shop_size) > 2 and at >= 0:
            mentions.append((at, shop_size))
    mentions += [(m.start(), m.group(1)) for m in _LETTER_SIZE.finditer(text)]
    mentions += [
        (m.start(), str(cn_number(m.group(1))))
        for m in _NUMBER_SIZE.finditer(text)
        if cn_number(m.group(1)) is not None
    ]
    mentions += [(text.find(w), w) for w in _WORD_SIZES if w in text]
    return _wanted(text, sorted(mentions)) if mentions else None


def resolve_date(text: str, now: datetime) -> tuple[date, date | None] | None:
    """The first date named in ``text``: a day, or a period (上周, 这个月) as (start, end)."""
    today = now.date()
    for finder in (_calendar_date, _festival, _weekday, _period, _relative_day, _days_ago):
        found = finder(text, today)
        if found is not None:
            return found
    return None


def _calendar_date(text: str, today: date) -> tuple[date, None] | None:
    match = re.search(rf"(?:(\d{{4}})年)?({_NUM})月({_NUM})(?:号|日)", text)
    if not match:
        return None
    month, day = cn_number(match.group(2)), cn_number(match.group(3))
    if month is None or day is None:
        return None
    year = int(match.group(1)) if match.group(1) else today.year
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    if not match.group(1) and (found - today).days > 180:  # 12月 said in January means last December
        found = found.replace(year=year - 1)
    return found, None


def _festival(text: str, today: date) -> tuple[date, None] | None:
    for word, (month, day) in _FESTIVALS.items():
        if word in text:
            found = date(today.year, month, day)
            return (found if found <= today else found.replace(year=today.year - 1)), None
    return None


def _weekday(text: str, today: date) -> tuple[date, None] | None:
    match = re.search(r"(上上|上|这|本|下)?(?:个)?(?:周|星期|礼拜)([一二三四五六日天])", text)
    if not match:
        return None
    weeks = {"上上": -2, "上": -1, "下": 1}.get(match.group(1) or "", 0)
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)
    return monday + timedelta(days=_WEEKDAYS[match.group(2)]), None


def _period(text: str, today: date) -> tuple[date, date] | None:
    monday = today - timedelta(days=today.weekday())
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    periods = (
        ("上个月", (last_month_end.replace(day=1), last_month_end)),
        ("上月", (last_month_end.replace(day=1), last_month_end)),
        ("这个月", (first, today)),
        ("本月", (first, today)),
        ("上周", (monday - timedelta(weeks=1), monday - timedelta(days=1))),
        ("上个星期", (monday - timedelta(weeks=1), monday - timedelta(days=1))),
        ("这周", (monday, today)),
        ("本周", (monday, today)),
        ("这个星期", (monday, today)),
    )
    return next((span for word, span in periods if word in text), None)


def _relative_day(text: str, today: date) -> tuple[date, None] | None:
    found = [(text.find(w), -len(w), w) for w in _RELATIVE_DAYS if w in text]
    if not found:
        return None
    word = min(found)[2]
    return today + timedelta(days=_RELATIVE_DAYS[word]), None


def _days_ago(text: str, today: date) -> tuple[date, None] | None:
    match = re.search(rf"({_NUM})天(?:以)?前", text)
    days = cn_number(match.group(1)) if match else None
    return (today - timedelta(days=days), None) if days is not None else None


def urgency(text: str) -> str | None:
    """``high`` for 急着穿/明天就要/越快越好, ``low`` for 不急/慢慢来 (negated urgency is not urgency)."""
    rest = text
    for word in _NOT_URGENT:
        rest = rest.replace(word, "")
    if any(word in rest for word in _URGENT):
        return "high"
    return "low" if rest != text else None


def promotion(text: str) -> str | None:
    match = _FULL_REDUCTION.search(text)
    if match:
        return f"满{match.group(1)}减{match.group(2)}"
    return next((value for word, value in _PROMOTIONS if word in text), None)


def coupon(text: str) -> str | None:
    return next((value for word, value in _COUPONS if word in text), None)


def quantity(text: str) -> str | None:
    for match in _QUANTITY.finditer(text):
        count = cn_number(match.group(1))
        if count is not None and 0 < count < 1000:
            return str(count)
    return None


def extract_slots(text: str, now: datetime, vocab: Vocabulary) -> dict[str, str]:
    """Every slot found in ``text`` (normalised), by name."""
    slots: dict[str, str] = {}
    finders: tuple[tuple[str, Callable[[], str | None]], ...] = (
        ("order_id", lambda: order_id(text, vocab)),
        ("phone", lambda: phone(text)),
        ("product", lambda: product(text, vocab)),
        ("color", lambda: color(text, vocab)),
        ("size", lambda: size(text, vocab)),
        ("urgency", lambda: urgency(text)),
        ("promotion", lambda: promotion(text)),
        ("coupon", lambda: coupon(text)),
        ("quantity", lambda: quantity(text)),
    )
    for name, finder in finders:
        value = finder()
        if value:
            slots[name] = value
    when = resolve_date(text, now)
    if when is not None:
        slots["date"] = when[0].isoformat()
        if when[1] is not None:
            slots["date_end"] = when[1].isoformat()
    return slots
