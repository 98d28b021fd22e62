"""Field readers for the snapshot importer.

Each reader takes one JSON value at a named path. A bad value records an error such as
``orders[3].items[0].qty: expected a positive integer, got -1`` and yields a neutral placeholder,
so one pass reports every problem; the importer drops any row whose ``mark`` saw a new error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from core.errors import ShopDataError
from core.money import to_fen

MAX_ERRORS = 20
EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_MISSING = object()
_HHMM = re.compile(r"^([01]\d|2[0-4]):[0-5]\d$")


def shown(value: object) -> str:
    """A JSON value as quoted in an error message, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


class Errors:
    """Problems found in one snapshot, reported together, one per line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path or '(root)'}: {message}")

    def mark(self) -> int:
        return len(self.items)

    def since(self, mark: int) -> bool:
        """True when an error was recorded after ``mark``."""
        return len(self.items) > mark

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown_items = self.items[:MAX_ERRORS]
        more = len(self.items) - len(shown_items)
        tail = [f"... and {more} more"] if more else []
        count = len(self.items)
        head = f"{self.source}: {count} problem{'s' if count > 1 else ''} in the shop snapshot"
        raise ShopDataError("\n".join([head, *shown_items, *tail]))


class Node:
    """A JSON object at ``path``; typed readers record errors in ``errors``."""

    def __init__(self, value: object, path: str, errors: Errors) -> None:
        self.value = value if isinstance(value, dict) else {}
        self.path = path
        self.errors = errors

    @classmethod
    def of(cls, value: object, path: str, errors: Errors) -> Node | None:
        if not isinstance(value, dict):
            errors.add(path, f"expected an object, got {shown(value)}")
            return None
        return cls(value, path, errors)

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> object:
        return self.value.get(key, _MISSING)

    def has(self, key: str) -> bool:
        return self.value.get(key) is not None

    def _bad(self, key: str, expected: str, value: object) -> None:
        got = "nothing (field missing)" if value is _MISSING else shown(value)
        self.errors.add(self.at(key), f"expected {expected}, got {got}")

    def text(self, key: str, default: str | None = None) -> str:
        """A non-empty string; ``default`` makes the field optional."""
        value = self.raw(key)
        if (value is _MISSING or value is None) and default is not None:
            return default
        if isinstance(value, str) and value.strip():
            return value.strip()
        self._bad(key, "a non-empty string", value)
        return ""

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(key)
        if isinstance(value, str) and value in allowed:
            return value
        self._bad(key, f"one of {'|'.join(allowed)}", value)
        return allowed[0]

    def integer(self, key: str, minimum: int = 0, default: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(key)
        if value is _MISSING and default is not None:
            return default
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        if ok and (maximum is None or value <= maximum):  # type: ignore[operator]
            return value  # type: ignore[return-value]
        span = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        if maximum is not None:
            span = f"an integer {minimum}..{maximum}"
        self._bad(key, span, value)
        return minimum

    def number(self, key: str, low: float, high: float) -> float:
        """A number strictly between ``low`` and ``high`` (a percentage, a rate)."""
        value = self.raw(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and low < value < high:
            return float(value)
        self._bad(key, f"a number between {low:g} and {high:g}", value)
        return low

    def money(self, key: str, default: int | None = None, positive: bool = False) -> int:
        """An amount in yuan (a JSON number, at most 2 decimals) as integer fen."""
        value = self.raw(key)
        if value is _MISSING and default is not None:
            return default
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                exact = Decimal(str(value))
            except InvalidOperation:
                exact = Decimal(-1)
            if exact >= 0 and exact == exact.quantize(Decimal("0.01")) and (exact > 0 or not positive):
                return to_fen(str(exact))
        what = "a positive amount in yuan" if positive else "an amount in yuan >= 0"
        self._bad(key, f"{what} with at most 2 decimals", value)
        return 0

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        self._bad(key, "true or false", value)
        return default

    def moment(self, key: str) -> datetime:
        """An ISO 8601 datetime with an offset; a naive time is ambiguous and rejected."""
        value = self.raw(key)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed
        self._bad(key, "an ISO 8601 datetime with offset (e.g. 2026-11-20T10:00:00+08:00)", value)
        return EPOCH

    def opt_moment(self, key: str) -> datetime | None:
        return self.moment(key) if self.has(key) else None

    def day(self, key: str) -> date:
        value = self.raw(key)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self._bad(key, "a date YYYY-MM-DD", value)
        return EPOCH.date()

    def opt_day(self, key: str) -> date | None:
        return self.day(key) if self.has(key) else None

    def hhmm_span(self, key: str, default: tuple[str, str]) -> tuple[str, str]:
        """``"09:00-22:00"`` as ("09:00", "22:00")."""
        value = self.raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, str) and value.count("-") == 1:
            start, end = (part.strip() for part in value.split("-"))
            if _HHMM.match(start) and _HHMM.match(end) and start < end:
                return (start, end)
        self._bad(key, 'a time span "HH:MM-HH:MM"', value)
        return default

    def strings(self, key: str, required: bool = False, non_empty: bool = False) -> tuple[str, ...]:
        value = self.raw(key)
        if (value is _MISSING or value is None) and not required:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            if value or not non_empty:
                return tuple(v.strip() for v in value)
        self._bad(key, "a non-empty list of strings" if non_empty else "a list of strings", value)
        return ()

    def string_map(self, key: str) -> dict[str, str]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return {}
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return {str(k): v for k, v in value.items()}
        self._bad(key, "an object of strings", value)
        return {}

    def child(self, key: str, required: bool = True) -> Node | None:
        value = self.raw(key)
        if (value is _MISSING or value is None) and not required:
            return None
        if isinstance(value, dict):
            return Node(value, self.at(key), self.errors)
        self._bad(key, "an object", value)
        return None

    def children(self, key: str, required: bool = True, non_empty: bool = False) -> Iterator[Node]:
        """The objects of a list field, each with its indexed path (``orders[3]``)."""
        value = self.raw(key)
        if (value is _MISSING or value is None) and not required:
            return
        if not isinstance(value, list) or (non_empty and not value):
            self._bad(key, "a non-empty list" if non_empty else "a list", value)
            return
        for i, item in enumerate(value):
            node = Node.of(item, f"{self.at(key)}[{i}]", self.errors)
            if node is not None:
                yield node
