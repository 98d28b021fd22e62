"""How a call's session reaches the agents: a transfer placed with the ``Dispatcher``, from the
session's thread, on the event loop that owns the live store.

``CallSession`` runs in a worker thread (its dialog and shop calls block); the dispatcher and the
live store are coroutines on an event loop. ``LoopTransfers`` carries each request over with
``run_coroutine_threadsafe`` and waits for the answer a bounded time. ``LocalDesk`` is a whole
in-process desk on its own loop thread with chosen agents signed in and available: what
``ivr call --agents-online`` and the behaviour tests use.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from core.errors import ConfigError, IvrError
from core.shop import Agent
from core.types import Skill, TransferRequest
from routing.dispatch import Dispatcher, Placement
from routing.store import MemoryStore, Presence, QueuedCall

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PLACE_TIMEOUT_S = 3.0  # a transfer request the live store cannot answer in this long: the caller gets a callback


class TransferPort(Protocol):
    """What a session needs of the agents (blocking; called from the session's thread)."""

    server: str

    def place(self, entry: QueuedCall, packet: Mapping[str, Any]) -> Placement:
        """Queue the caller for an agent (see ``Dispatcher.request``)."""
        ...

    def withdraw(self, call_id: str, why: str) -> None:
        """The call no longer wants an agent (hung up, ended): out of the queue, a ringing offer withdrawn."""
        ...

    def now(self) -> float: ...


class LoopTransfers:
    """``TransferPort`` over a dispatcher that lives on ``loop`` (the server's)."""

    def __init__(self, dispatcher: Dispatcher, loop: asyncio.AbstractEventLoop, server: str) -> None:
        self.dispatcher, self.loop, self.server = dispatcher, loop, server

    def now(self) -> float:
        return time.time()

    def _run(self, make: Callable[[], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(PLACE_TIMEOUT_S)

    def place(self, entry: QueuedCall, packet: Mapping[str, Any]) -> Placement:
        try:
            return self._run(lambda: self.dispatcher.request(entry, packet))
        except TimeoutError:
            raise TransferUnavailable("the live store did not answer a transfer request in time") from None

    def withdraw(self, call_id: str, why: str) -> None:
        try:
            self._run(lambda: self.dispatcher.cancel(call_id, why))
        except (IvrError, TimeoutError) as err:  # the queue entry expires with its record
            log.warning("could not withdraw a transfer: %s", err)


class LocalDesk(LoopTransfers):
    """An in-process desk on its own loop thread, with ``online`` agents signed in and available."""

    def __init__(self, agents: Sequence[Agent], online: Iterable[str], server: str = "local") -> None:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="ivr-desk", daemon=True)
        self._thread.start()
        self.store = MemoryStore()
        self.agents = tuple(agents)
        super().__init__(Dispatcher(self.store, lambda: self.agents, server, time.time), loop, server)
        for agent_id in online:
            self._run(lambda a=agent_id: self.store.set_presence(a, Presence.AVAILABLE, time.time(), server))  # type: ignore[misc]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=2.0)


def online_agents(spec: str, agents: Sequence[Agent]) -> list[str]:
    """``--agents-online A01,A04`` (or ``all``) → agent ids, each one the shop has."""
    known = {a.id for a in agents}
    if spec.strip().lower() == "all":
        return sorted(known)
    wanted = [part.strip() for part in spec.split(",") if part.strip()]
    unknown = [a for a in wanted if a not in known]
    if unknown:
        raise ConfigError(
            f"--agents-online names {', '.join(unknown)}, not agents of this shop: {', '.join(sorted(known))}"
        )
    return wanted


def queued_call(call_id: str, request: TransferRequest, server: str, now: float, **facts: Any) -> QueuedCall:
    """The queue entry of a transfer request (``facts``: dialect, vip)."""
    complaint = request.skill is Skill.COMPLAINT
    return QueuedCall(call_id, request.skill.value, request.priority, now, server, complaint=complaint, **facts)


class TransferUnavailable(IvrError):
    """The agents' queue cannot be reached now (the live store is down or slow)."""

    retryable = True
