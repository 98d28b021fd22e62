"""Time as an input: production uses the system clock, tests and snapshots fix it."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        ...


class SystemClock:
    def __init__(self, tz: tzinfo | None = None) -> None:
        self._tz = tz

    def now(self) -> datetime:
        return datetime.now(self._tz).astimezone(self._tz)

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {start.isoformat()}")
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"expected seconds >= 0, got {seconds}")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class ShiftedClock:
    """Real time moved to start at ``start``: a snapshot shop's "now" that still ticks during a call."""

    def __init__(self, start: datetime, origin: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {start.isoformat()}")
        self._start = start
        self._origin = time.monotonic() if origin is None else origin

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin)

    def monotonic(self) -> float:
        return time.monotonic()
