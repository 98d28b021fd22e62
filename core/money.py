"""Money is integer fen (1 yuan = 100 fen) everywhere; these convert at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def to_fen(yuan: float | int | str) -> int:
    """Convert a yuan amount as written in shop data (e.g. 89.0, "12.5") to integer fen."""
    return int((Decimal(str(yuan)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def yuan_text(fen: int) -> str:
    """Speakable yuan amount: 4000 -> "40元", 1250 -> "12.5元", 1205 -> "12.05元"."""
    sign = "负" if fen < 0 else ""
    fen = abs(fen)
    whole, cents = divmod(fen, 100)
    if cents == 0:
        return f"{sign}{whole}元"
    frac = f"{cents:02d}".rstrip("0")
    return f"{sign}{whole}.{frac}元"
