"""The calls an HTTP server holds: bounded, idle ones expire, finished ones keep their outcome a while.

Time is an input (``clock``, seconds, monotonic), so tests move it instead of sleeping. The registry
itself never blocks: ending a session writes to the shop, so whoever removes a call (the app) ends it
in an executor. A call with a turn in flight is never expired under it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import IvrError, NotFoundError
from voice.session import CallOutcome, CallSession

KEEP_FINISHED = 1000  # outcomes kept for `POST /end` after the server already ended a call


class LineFullError(IvrError):
    """Every line is taken; a caller may try again shortly."""

    retryable = True


@dataclass
class HttpCall:
    session: CallSession
    last_seen: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    busy: int = 0  # turns in flight

    @property
    def call_id(self) -> str:
        return self.session.call_id


class CallRegistry:
    """Live calls, oldest first, at most ``limit``; a call idle for ``idle_seconds`` is due to expire."""

    def __init__(self, limit: int, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.idle_seconds, self.clock = limit, idle_seconds, clock
        self._calls: OrderedDict[str, HttpCall] = OrderedDict()
        self._finished: OrderedDict[str, CallOutcome] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def full(self) -> bool:
        return len(self._calls) >= self.limit

    def add(self, session: CallSession) -> HttpCall:
        if self.full:
            raise LineFullError(f"all {self.limit} lines are busy; try again shortly")
        live = self._calls[session.call_id] = HttpCall(session, self.clock())
        return live

    def get(self, call_id: str) -> HttpCall:
        live = self._calls.get(call_id)
        if live is None:
            raise NotFoundError(f"no live call {call_id!r}")
        live.last_seen = self.clock()
        return live

    def pop(self, call_id: str) -> HttpCall:
        live = self.get(call_id)
        del self._calls[call_id]
        return live

    def expired(self) -> list[HttpCall]:
        """Remove and return the calls idle for ``idle_seconds`` or more (none with a turn in flight)."""
        now = self.clock()
        due = [c for c in self._calls.values() if not c.busy and now - c.last_seen >= self.idle_seconds]
        for live in due:
            del self._calls[live.call_id]
        return due

    def drain(self) -> list[HttpCall]:
        """Remove and return every live call (server shutdown)."""
        calls = list(self._calls.values())
        self._calls.clear()
        return calls

    def finished(self, call_id: str, outcome: CallOutcome) -> None:
        self._finished[call_id] = outcome
        while len(self._finished) > KEEP_FINISHED:
            self._finished.popitem(last=False)

    def outcome(self, call_id: str) -> CallOutcome | None:
        """The recorded outcome of a call the server has already ended."""
        return self._finished.get(call_id)
