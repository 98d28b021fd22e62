"""How a shop writes its order numbers, learnt from its own orders (or declared in the snapshot).

Each order number of the form letters-then-digits (``WY20261207001``, ``71000091300000``) gives a
shape: its letter prefix and its digit count. Shapes with the same prefix merge into one digit
range, most common first. Numbers of any other form are left out of the shapes: a caller can
still read them out, the hotline just cannot describe or pick them out of speech.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.shop import OrderIdShape, OrderNumbers

_SHAPE = re.compile(r"([A-Z]{0,6})(\d{4,})")


def learn_order_numbers(order_ids: Iterable[str], declared: str | None = None) -> OrderNumbers:
    """The shapes of ``order_ids``, with the shop's declared pattern (already validated) if any."""
    spans: dict[str, tuple[int, int, int]] = {}
    for order_id in order_ids:
        match = _SHAPE.fullmatch(order_id.strip().upper())
        if match is None:
            continue
        prefix, digits = match.group(1), len(match.group(2))
        low, high, count = spans.get(prefix, (digits, digits, 0))
        spans[prefix] = (min(low, digits), max(high, digits), count + 1)
    shapes = [OrderIdShape(prefix, low, high, count) for prefix, (low, high, count) in spans.items()]
    shapes.sort(key=lambda s: (-s.orders, -len(s.prefix), s.prefix))
    return OrderNumbers(tuple(shapes), declared)


def check_pattern(pattern: str, order_ids: Iterable[str]) -> str | None:
    """Why ``pattern`` cannot be the shop's order-number pattern, or None when it fits every order."""
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        return f"expected a regular expression, got an invalid one ({err})"
    if compiled.fullmatch(""):
        return "expected a pattern that does not match an empty string"
    for order_id in order_ids:
        if not compiled.fullmatch(order_id):
            return f"expected a pattern every order number matches, but {order_id!r} does not"
    return None
