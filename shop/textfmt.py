"""Speakable Chinese for the promotion engine's reasons: discounts as 折, channels by name."""

from __future__ import annotations

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


def zhe_text(percent_off: float) -> str:
    """A percentage off as a 折 figure: 10 -> 9折, 15 -> 8.5折, 5 -> 9.5折."""
    tenths = (100 - percent_off) / 10
    return f"{tenths:g}折"


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)
