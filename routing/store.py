"""Live state several servers share: agent presence and reserved calls, the transfer queue, each
call's handoff record, event streams, server heartbeats and agent sign-in sessions.

``LiveStore`` is the one interface; ``MemoryStore`` (here) serves one process — the embedded
default of ``make serve`` — and ``routing.store_redis.RedisStore`` serves several servers through
Redis (``IVR_REDIS_URL``). Both pass the same contract tests (``tests/test_routing_store.py``).

Times are wall-clock epoch seconds passed in by the caller (``now``), so tests drive them.

Streams are append-only logs of JSON-able events, read from an id onwards (``"0"``: from the
start): ``call:<call id>`` (what happens to a transfer, and the live transcript) and
``agent:<agent id>`` (offers and cancellations for that agent's desktop). A stream keeps about its
last 1000 events (``STREAM_MAXLEN``) and is dropped ``stream_ttl_s`` (a day) after its last event.
Ids are opaque strings: pass one back as ``after``; they increase within a stream (``MemoryStore``:
"1", "2", ...; Redis: "<ms>-<seq>"). Event ``type`` values:

- call stream: ``queued`` {position}, ``offered`` {agent}, ``declined`` {agent, why},
  ``accepted`` {agent, server}, ``cancelled`` {why}, ``line`` {speaker, text}, ``ended`` {outcome}
- agent stream: ``offer`` {call_id}, ``cancel`` {call_id, why}

Audio channels carry live PCM between servers (``send_audio``, ``audio``): a pub/sub of byte
frames, nothing stored. A subscriber gets every frame sent after it subscribed, in order; a
subscriber that falls behind loses its oldest frames (``AudioFeed.dropped``). ``voice.bridge_relay``
uses them for a transferred call's audio (``<call id>:caller``, ``<call id>:agent``).

Every ``LiveStore`` method may raise ``StoreUnavailable`` (retryable) when the shared store cannot be
reached; a write that raised it may or may not have been applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from core.errors import TransientError

STREAM_MAXLEN = 1000  # events a stream keeps (Redis trims approximately: a little more)
STREAM_TTL_S = 86400.0  # a stream is dropped this long after its last event
AUDIO_FRAMES = 50  # an audio subscriber's queue: a second of 20 ms frames


class StoreUnavailable(TransientError):
    """The shared live store (Redis) cannot be reached or did not answer in time; retryable.

    The message names the store's address (never its password) and what failed."""

    retryable = True


class Presence(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"  # every line taken (or on a call with max_concurrent 1)
    WRAP_UP = "wrap_up"  # writing notes after a call: offered nothing until they go available
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class AgentState:
    agent_id: str
    presence: Presence = Presence.OFFLINE
    since: float = 0.0  # when the presence last changed: "idle since" for an available agent
    calls: tuple[str, ...] = ()  # calls reserved for or held by the agent
    server: str | None = None  # the server the agent's desktop is connected to


@dataclass(frozen=True, slots=True)
class QueuedCall:
    """A caller waiting for an agent. Ordered by ``priority`` (1 first), then ``enqueued_at``."""

    call_id: str
    skill: str
    priority: int  # 1 (angry, complaint, VIP) .. 5
    enqueued_at: float
    server: str  # the server holding the caller's audio
    dialect: str | None = None
    vip: bool = False
    complaint: bool = False
    tried: tuple[str, ...] = ()  # agents who declined or did not answer this call

    def to_json(self) -> str:
        return json.dumps(
            {
                "call_id": self.call_id, "skill": self.skill, "priority": self.priority,
                "enqueued_at": self.enqueued_at, "server": self.server, "dialect": self.dialect,
                "vip": self.vip, "complaint": self.complaint, "tried": list(self.tried),
            },
            ensure_ascii=False,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str | bytes) -> QueuedCall:
        d = json.loads(text)
        return cls(
            d["call_id"], d["skill"], int(d["priority"]), float(d["enqueued_at"]), d["server"],
            d.get("dialect"), bool(d.get("vip")), bool(d.get("complaint")), tuple(d.get("tried", ())),
        )  # fmt: skip


Event = dict[str, Any]


class AudioFeed:
    """One subscription to an audio channel: ``async with store.audio(channel) as feed: async for pcm in feed``.

    Subscribed on entering the block (frames sent before are not received); each frame arrives once,
    in the order sent. The queue is bounded: when the reader falls behind the oldest frame goes and
    ``dropped`` counts it. Iterating ends once the feed is closed (``close()``, or leaving the block)
    and what was queued has been read; it raises ``StoreUnavailable`` when the subscription broke
    (the store went away). Event-loop only. The stores subclass it (``_subscribe``/``_unsubscribe``).
    """

    def __init__(self, channel: str, max_frames: int = AUDIO_FRAMES) -> None:
        self.channel = channel
        self.dropped = 0
        self._items: deque[bytes] = deque()
        self._limit = max_frames
        self._more = asyncio.Event()
        self._state = "new"  # new → open → closed
        self._error: StoreUnavailable | None = None

    async def __aenter__(self) -> AudioFeed:
        if self._state != "new":
            raise RuntimeError(f"expected a new audio feed, got a {self._state} one (a feed is entered once)")
        await self._subscribe()
        self._state = "open"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Unsubscribe; a reader ends after what is queued (idempotent)."""
        was_open, self._state = self._state == "open", "closed"
        self._more.set()
        if was_open:
            await self._unsubscribe()

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    def put(self, pcm: bytes) -> None:
        """A frame for the reader (the store's side)."""
        if self._state != "open":
            return
        if len(self._items) >= self._limit:
            self._items.popleft()
            self.dropped += 1
        self._items.append(pcm)
        self._more.set()

    def fail(self, err: StoreUnavailable) -> None:
        """The subscription broke (the store's side): the reader gets ``err`` after what is queued."""
        self._error = err
        self._more.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._state == "new":
            raise RuntimeError("expected an open audio feed (async with store.audio(...)), got a new one")
        while True:
            if self._items:
                yield self._items.popleft()
                continue
            if self._error is not None:
                raise self._error
            if self._state == "closed":
                return
            self._more.clear()
            await self._more.wait()

    async def _subscribe(self) -> None:
        """Start receiving (the store's side)."""

    async def _unsubscribe(self) -> None:
        """Stop receiving (the store's side)."""


class LiveStore(Protocol):
    """Shared live state (see the module docstring). Every method is a coroutine."""

    # -- agents ------------------------------------------------------------------------------------
    async def set_presence(
        self, agent_id: str, presence: Presence, now: float, server: str | None = None
    ) -> AgentState:
        """Change an agent's presence (``server``: where their desktop is; kept when None)."""
        ...

    async def agent(self, agent_id: str) -> AgentState:
        """An agent's state; one never seen is OFFLINE."""
        ...

    async def agents(self) -> dict[str, AgentState]: ...

    async def reserve(self, agent_id: str, call_id: str, max_concurrent: int, now: float) -> bool:
        """Atomically give ``call_id`` a line of an AVAILABLE agent with a free line; False otherwise
        (also when ``call_id`` already holds one of their lines: True means this call just got it).

        When the agent's lines are then all taken they become BUSY (``since`` = ``now``). Exactly
        one of many concurrent reservations of an agent's last line wins, across servers.
        """
        ...

    async def release(self, agent_id: str, call_id: str, now: float, *, wrap_up: bool = False) -> AgentState:
        """Give the line back (idempotent: a call not held changes nothing). A BUSY agent becomes
        AVAILABLE, or WRAP_UP when ``wrap_up`` (they talked to the caller; an AVAILABLE agent too);
        an OFFLINE agent stays offline. Returns the agent's state after it."""
        ...

    # -- the queue ---------------------------------------------------------------------------------
    async def enqueue(self, entry: QueuedCall) -> int:
        """Put a caller in the queue (again: replaces their entry); returns their 1-based place.

        Same priority and ``enqueued_at`` (to about 10 µs): ordered by ``call_id``."""
        ...

    async def dequeue(self, call_id: str) -> QueuedCall | None:
        """Take a caller out; exactly one of concurrent takers gets the entry, the others None."""
        ...

    async def queue(self) -> list[QueuedCall]:
        """Everyone waiting, first to be served first."""
        ...

    async def position(self, call_id: str) -> int | None:
        """A caller's 1-based place in the queue; None when not queued."""
        ...

    # -- calls -------------------------------------------------------------------------------------
    async def save_call(self, call_id: str, record: Mapping[str, Any], ttl_s: float) -> None:
        """Store (replace) a call's record: its handoff packet and where it is; kept ``ttl_s``.

        The record goes through JSON (tuples come back as lists, keys as strings)."""
        ...

    async def update_call(self, call_id: str, changes: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Merge ``changes`` into a stored record's top level, atomically; returns the merged record
        (None when there is none, or it expired). The record's expiry is unchanged."""
        ...

    async def swap_status(self, call_id: str, expect: Sequence[str], changes: Mapping[str, Any]) -> bool:
        """Compare-and-set on the record's ``status``: when it is one of ``expect``, merge ``changes``
        into the record as ``update_call`` does and return True; otherwise (another status, none, no
        record) change nothing and return False. Atomic: of concurrent swaps away from one status,
        across servers, exactly one wins."""
        ...

    async def load_call(self, call_id: str) -> Mapping[str, Any] | None: ...

    async def call_fields(self, call_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Some top-level ``fields`` of many records at once (one round trip): call id → {field: value}
        for each record there is (a missing or expired one is left out; so is a field the record lacks)."""
        ...

    # -- streams -----------------------------------------------------------------------------------
    async def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        """Append an event; returns its id (ids increase within a stream)."""
        ...

    async def read(self, stream: str, after: str = "0", timeout_s: float = 0.0) -> list[tuple[str, Event]]:
        """Events after id ``after`` (``"0"``: all), oldest first; when there are none, waits up to
        ``timeout_s`` for one (0: no wait) and returns [] if none came. A malformed id: ValueError."""
        ...

    # -- servers and sessions ---------------------------------------------------------------------
    async def heartbeat(self, server: str, now: float, ttl_s: float) -> None:
        """``server`` is alive until ``now + ttl_s``."""
        ...

    async def servers_alive(self, now: float) -> set[str]:
        """Servers whose last heartbeat's ``now + ttl_s`` is later than ``now``."""
        ...

    async def open_session(self, token_hash: str, agent_id: str, ttl_s: float) -> None:
        """Sign ``agent_id`` in under ``token_hash`` for ``ttl_s`` seconds (again: replaces)."""
        ...

    async def session_agent(self, token_hash: str) -> str | None:
        """The agent signed in with this session (None: unknown or expired)."""
        ...

    async def close_session(self, token_hash: str) -> None: ...

    async def count_failure(self, key: str, now: float, window_s: float) -> int:
        """One more failure under ``key`` (an agent id's sign-ins, shared by every server): the count
        of failures none more than ``window_s`` apart, this one included (a gap that long starts
        again at 1)."""
        ...

    async def failures(self, key: str, now: float) -> tuple[int, float]:
        """The failures counted under ``key`` and the seconds until their window closes ((0, 0.0): none)."""
        ...

    async def clear_failures(self, key: str) -> None: ...

    # -- audio ---------------------------------------------------------------------------------------
    async def send_audio(self, channel: str, pcm: bytes) -> None:
        """A frame to everyone subscribed to ``channel`` now (nobody: it is gone)."""
        ...

    def audio(self, channel: str, max_frames: int = AUDIO_FRAMES) -> AudioFeed:
        """A subscription to ``channel``, made when its ``async with`` block is entered (see ``AudioFeed``)."""
        ...

    async def close(self) -> None:
        """Release connections (the store's data stays where it is)."""
        ...


@dataclass
class _Stream:
    events: list[tuple[int, Event]] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    last: int = 0  # the last id given out (ids are never reused, even after trimming)
    touched: float = 0.0  # when the last event came


def _copy(value: Any) -> Any:
    """A JSON round trip: what a shared store would hand back, and no aliasing of the caller's objects."""
    return json.loads(json.dumps(value, ensure_ascii=False))


class MemoryStore:
    """``LiveStore`` in this process: one server, nothing survives a restart. Event-loop only.

    ``clock`` (epoch seconds) decides record, session and stream expiry; ``now`` arguments the rest."""

    def __init__(self, clock: Callable[[], float] | None = None, *, stream_ttl_s: float = STREAM_TTL_S) -> None:
        import time

        self._time = clock or time.time
        self._stream_ttl_s = stream_ttl_s
        self._agents: dict[str, AgentState] = {}
        self._queue: dict[str, QueuedCall] = {}
        self._calls: dict[str, tuple[float, dict[str, Any]]] = {}
        self._streams: OrderedDict[str, _Stream] = OrderedDict()  # least recently published first
        self._servers: dict[str, float] = {}
        self._sessions: dict[str, tuple[float, str]] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # key → (count, window's end)
        self._audio: dict[str, set[AudioFeed]] = {}  # channel → the feeds subscribed to it

    async def set_presence(
        self, agent_id: str, presence: Presence, now: float, server: str | None = None
    ) -> AgentState:
        old = self._agents.get(agent_id, AgentState(agent_id))
        state = replace(old, presence=presence, since=now if presence != old.presence else old.since)
        if server is not None:
            state = replace(state, server=server)
        self._agents[agent_id] = state
        return state

    async def agent(self, agent_id: str) -> AgentState:
        return self._agents.get(agent_id, AgentState(agent_id))

    async def agents(self) -> dict[str, AgentState]:
        return dict(self._agents)

    async def reserve(self, agent_id: str, call_id: str, max_concurrent: int, now: float) -> bool:
        state = self._agents.get(agent_id)
        if state is None or state.presence != Presence.AVAILABLE or call_id in state.calls:
            return False
        if len(state.calls) >= max_concurrent:
            return False
        calls = (*state.calls, call_id)
        full = len(calls) >= max_concurrent
        self._agents[agent_id] = replace(
            state, calls=calls, presence=Presence.BUSY if full else state.presence, since=now if full else state.since
        )
        return True

    async def release(self, agent_id: str, call_id: str, now: float, *, wrap_up: bool = False) -> AgentState:
        state = self._agents.get(agent_id, AgentState(agent_id))
        if call_id not in state.calls:
            return state
        calls = tuple(c for c in state.calls if c != call_id)
        presence = state.presence
        if wrap_up and presence != Presence.OFFLINE:
            presence = Presence.WRAP_UP
        elif presence == Presence.BUSY:
            presence = Presence.AVAILABLE
        state = replace(state, calls=calls, presence=presence, since=now if presence != state.presence else state.since)
        self._agents[agent_id] = state
        return state

    async def enqueue(self, entry: QueuedCall) -> int:
        self._queue[entry.call_id] = entry
        return await self.position(entry.call_id) or 0

    async def dequeue(self, call_id: str) -> QueuedCall | None:
        return self._queue.pop(call_id, None)

    async def queue(self) -> list[QueuedCall]:
        return sorted(self._queue.values(), key=lambda e: (e.priority, e.enqueued_at, e.call_id))

    async def position(self, call_id: str) -> int | None:
        for place, entry in enumerate(await self.queue(), 1):
            if entry.call_id == call_id:
                return place
        return None

    async def save_call(self, call_id: str, record: Mapping[str, Any], ttl_s: float) -> None:
        self._calls[call_id] = (self._time() + ttl_s, _copy(dict(record)))

    async def update_call(self, call_id: str, changes: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if await self.load_call(call_id) is None:
            return None
        record = self._calls[call_id][1]
        record.update(_copy(dict(changes)))
        return _copy(record)  # type: ignore[no-any-return]

    async def swap_status(self, call_id: str, expect: Sequence[str], changes: Mapping[str, Any]) -> bool:
        record = await self.load_call(call_id)
        if record is None or record.get("status") not in expect:
            return False
        self._calls[call_id][1].update(_copy(dict(changes)))
        return True

    async def load_call(self, call_id: str) -> Mapping[str, Any] | None:
        held = self._calls.get(call_id)
        if held is None or held[0] <= self._time():
            self._calls.pop(call_id, None)
            return None
        return _copy(held[1])  # type: ignore[no-any-return]

    async def call_fields(self, call_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for call_id in call_ids:
            held = self._calls.get(call_id)
            if held is None or held[0] <= self._time():
                self._calls.pop(call_id, None)
                continue
            found[call_id] = _copy({f: held[1][f] for f in fields if f in held[1]})
        return found

    async def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        now = self._time()
        s = self._streams.setdefault(stream, _Stream())
        self._streams.move_to_end(stream)
        s.last += 1
        s.touched = now
        s.events.append((s.last, _copy(dict(event))))
        del s.events[:-STREAM_MAXLEN]
        waiters, s.waiters = s.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drop_idle_streams(now)
        return str(s.last)

    def _drop_idle_streams(self, now: float) -> None:
        while self._streams:
            name, oldest = next(iter(self._streams.items()))
            if oldest.touched + self._stream_ttl_s > now or oldest.waiters:
                return
            del self._streams[name]

    async def read(self, stream: str, after: str = "0", timeout_s: float = 0.0) -> list[tuple[str, Event]]:
        start = int(after)
        s = self._streams.get(stream)
        if s is not None and s.touched + self._stream_ttl_s <= self._time() and not s.waiters:
            del self._streams[stream]
            s = None
        found = [] if s is None else [(str(n), _copy(e)) for n, e in s.events if n > start]
        if found or timeout_s <= 0:
            return found
        if s is None:  # a stream waited on before its first event: kept until that event (or the wait ends)
            s = self._streams.setdefault(stream, _Stream(touched=self._time()))
            self._streams.move_to_end(stream, last=False)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        s.waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout_s)
        finally:
            if waiter in s.waiters:
                s.waiters.remove(waiter)
        return [(str(n), _copy(e)) for n, e in s.events if n > start]

    async def heartbeat(self, server: str, now: float, ttl_s: float) -> None:
        self._servers[server] = now + ttl_s

    async def servers_alive(self, now: float) -> set[str]:
        return {name for name, until in self._servers.items() if until > now}

    async def open_session(self, token_hash: str, agent_id: str, ttl_s: float) -> None:
        self._sessions[token_hash] = (self._time() + ttl_s, agent_id)

    async def session_agent(self, token_hash: str) -> str | None:
        held = self._sessions.get(token_hash)
        if held is None or held[0] <= self._time():
            self._sessions.pop(token_hash, None)
            return None
        return held[1]

    async def close_session(self, token_hash: str) -> None:
        self._sessions.pop(token_hash, None)

    async def count_failure(self, key: str, now: float, window_s: float) -> int:
        count, _ = await self.failures(key, now)
        self._failures[key] = (count + 1, now + window_s)
        return count + 1

    async def failures(self, key: str, now: float) -> tuple[int, float]:
        count, until = self._failures.get(key, (0, 0.0))
        if until <= now:
            self._failures.pop(key, None)
            return 0, 0.0
        return count, until - now

    async def clear_failures(self, key: str) -> None:
        self._failures.pop(key, None)

    async def send_audio(self, channel: str, pcm: bytes) -> None:
        for feed in list(self._audio.get(channel, ())):
            feed.put(bytes(pcm))

    def audio(self, channel: str, max_frames: int = AUDIO_FRAMES) -> AudioFeed:
        return _MemoryFeed(self._audio, channel, max_frames)

    async def close(self) -> None:
        return None


class _MemoryFeed(AudioFeed):
    def __init__(self, channels: dict[str, set[AudioFeed]], channel: str, max_frames: int) -> None:
        super().__init__(channel, max_frames)
        self._channels = channels

    async def _subscribe(self) -> None:
        self._channels.setdefault(self.channel, set()).add(self)

    async def _unsubscribe(self) -> None:
        feeds = self._channels.get(self.channel, set())
        feeds.discard(self)
        if not feeds:
            self._channels.pop(self.channel, None)
