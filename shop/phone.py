"""Caller-ID normalisation: every way a Chinese number is written maps to one lookup key."""

from __future__ import annotations

import re

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def is_e164(phone: str) -> bool:
    return bool(_E164.match(phone))


def phone_key(raw: str) -> str | None:
    """The national significant number for lookups, or None when ``raw`` holds no usable number.

    ``+86 138 0013 8001``, ``8613800138001``, ``008613800138001``, ``138-0013-8001`` all give
    ``13800138001``; a landline ``010-6552 9988`` and ``+86 10 6552 9988`` both give ``1065529988``.
    Numbers of other countries keep their country code (``+1 415 555 0100`` -> ``14155550100``).
    """
    digits = re.sub(r"\D", "", raw)
    if digits.startswith("00"):
        digits = digits[2:]
    elif raw.strip().startswith("+") or len(digits) > 11:
        pass
    elif digits.startswith("0"):  # a national trunk prefix: 010..., 0755...
        digits = "86" + digits[1:]
    else:  # 11-digit mobiles and short national numbers are Chinese without the country code
        digits = "86" + digits
    if digits.startswith("86"):
        digits = digits[2:].lstrip("0")
    if len(digits) < 5 or len(digits) > 15:
        return None
    return digits
