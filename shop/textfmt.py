"""Speakable Chinese for figures the shop computes: counts, dates, times, discounts, channels."""

from __future__ import annotations

from datetime import date, datetime

_DIGITS = "零一二三四五六七八九"

# How a caller hears an order channel or a price type; unknown names are spoken as written.
CHANNEL_NAMES = {
    "livestream": "直播间",
    "short_video": "短视频",
    "app": "App",
    "mini_program": "小程序",
    "wechat": "微信",
    "web": "网页",
    "phone": "电话",
    "any": "任意渠道",
}


def cn_count(n: int) -> str:
    """0..99 as spoken before a measure word: 2 -> 两, 3 -> 三, 12 -> 十二, 20 -> 二十."""
    if n == 2:
        return "两"
    return cn_number(n)


def cn_number(n: int) -> str:
    """0..99 in Chinese numerals (larger numbers stay Arabic)."""
    if n < 0 or n > 99:
        return str(n)
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else _DIGITS[tens]
    return f"{head}十{_DIGITS[ones] if ones else ''}"


def day_text(day: date, today: date | None = None, relative: bool = True) -> str:
    """A date as said on the phone: 今天, 明天 (when ``relative``), 18号 (this month), 12月5号."""
    if today is not None:
        named = {-1: "昨天", 0: "今天", 1: "明天", 2: "后天"}
        delta = (day - today).days
        if relative and delta in named:
            return named[delta]
        if day.year == today.year and day.month == today.month:
            return f"{day.day}号"
    return f"{day.month}月{day.day}号"


def moment_text(at: datetime, today: date | None = None) -> str:
    """A date and time: 今天16:00, 11月21号21:16."""
    return f"{day_text(at.date(), today)}{at:%H:%M}"


def zhe_text(percent_off: float) -> str:
    """A percentage off as a 折 figure: 10 -> 9折, 15 -> 8.5折, 5 -> 9.5折."""
    tenths = (100 - percent_off) / 10
    return f"{tenths:g}折"


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)
