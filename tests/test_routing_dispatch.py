"""The dispatcher over a shared LiveStore: offers, accepts, declines, ring-outs, cancels, the queue's
order and estimates, two servers on one store, a dead server's callers, stray lines. Time is a fake
clock. Each test runs on MemoryStore, on MemoryStore yielding to the event loop at every call (so
two dispatchers interleave), and on the real Redis (db 15, a key prefix of its own, deleted after)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, cast

import pytest
from paths import missing

from core.shop import Agent
from routing.dispatch import STRAY_AFTER_S, WAIT_HISTORY, Dispatcher, Placement
from routing.store import AgentState, LiveStore, MemoryStore, Presence, QueuedCall, StoreUnavailable
from routing.store_redis import RedisStore

REDIS_URL = "redis://127.0.0.1:6379/15"

T0 = 1_800_000_000.0
RING = 20.0
GRACE = 1.0
WIDEN = 30.0

AGENTS = (
    Agent("K1", "甲", {"aftersale": 5, "general": 3}, ("普通话",)),
    Agent("K2", "乙", {"aftersale": 4, "complaint": 4}, ("普通话", "闽南话")),
    Agent("K3", "丙", {"general": 4, "logistics": 2}, ("普通话",)),
)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class World:
    """A store, a fake clock and dispatchers (one per server name) over the same agents."""

    def __init__(self, store: LiveStore, clock: Clock, after: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store, self.clock, self.shop = store, clock, AGENTS
        self.servers: dict[str, Dispatcher] = {}
        self._after = after

    def run(self, test: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run the test, then clean the store up, in one event loop (a Redis client lives in one)."""

        async def main() -> None:
            try:
                await test()
            finally:
                if self._after is not None:
                    await self._after()

        asyncio.run(main())

    def on(self, server: str) -> Dispatcher:
        if server not in self.servers:
            self.servers[server] = Dispatcher(
                self.store, lambda: self.shop, server, self.clock, ring_s=RING, widen_after_s=WIDEN, ring_grace_s=GRACE
            )
        return self.servers[server]

    async def sign_in(self, *agent_ids: str, at: float | None = None) -> None:
        for agent_id in agent_ids:
            await self.store.set_presence(agent_id, Presence.AVAILABLE, self.clock.t if at is None else at, "desk-1")

    async def events(self, stream: str) -> list[dict[str, Any]]:
        return [e for _, e in await self.store.read(stream)]

    async def status(self, call_id: str) -> str | None:
        record = await self.store.load_call(call_id)
        return None if record is None else record["status"]

    async def state(self, agent_id: str) -> AgentState:
        return await self.store.agent(agent_id)


def call(call_id: str, skill: str = "aftersale", priority: int = 3, server: str = "A", **kw: Any) -> QueuedCall:
    return QueuedCall(call_id, skill, priority, kw.pop("at", T0), server, **kw)


PACKET = {"summary": ["客户询问退款进度", "", ""], "orders": ["X1"]}


class Interleaved:
    """A store whose every call first yields to the event loop, as a networked store does, so that
    two dispatchers run with ``asyncio.gather`` interleave their steps."""

    def __init__(self, store: LiveStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await method(*args, **kwargs)

        return call


def redis_world(clock: Clock) -> World:
    """A RedisStore under a fresh key prefix; every key under it is deleted after the test."""

    async def reachable() -> bool:
        probe = RedisStore(REDIS_URL)
        try:
            await probe.ping()
            return True
        except StoreUnavailable:
            return False
        finally:
            await probe.close()

    if not asyncio.run(reachable()):
        missing(f"no Redis at {REDIS_URL} (apt-get install redis-server)")  # a failure under CI=true
    prefix = f"test-dispatch-{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, prefix)

    async def after() -> None:
        client = store._redis  # this test's keys only: never FLUSHDB (db 15 is shared)
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
        await store.close()

    return World(store, clock, after)


@pytest.fixture(params=["memory", "interleaved", "redis"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    clock = Clock()
    if request.param == "redis":
        yield redis_world(clock)
    elif request.param == "interleaved":
        yield World(Interleaved(MemoryStore(clock)), clock)
    else:
        yield World(MemoryStore(clock), clock)


def test_request_offers_the_best_agent_who_then_accepts(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1", "K2", "K3")
        placed = await world.on("A").request(call("c1"), PACKET)
        assert placed.status == "offered" and placed.agent is not None and placed.agent.id == "K1"
        record = await world.store.load_call("c1")
        assert record is not None and record["status"] == "offered" and record["orders"] == ["X1"]
        assert record["offer"]["agent"] == "K1" and record["offer"]["until"] == T0 + RING
        assert (await world.state("K1")).presence is Presence.BUSY
        assert await world.events("agent:K1") == [{"type": "offer", "call_id": "c1"}]
        world.clock.t += 5
        assert not await world.on("A").accept("K2", "c1")  # not offered to K2
        assert await world.on("A").accept("K1", "c1")
        record = await world.store.load_call("c1")
        assert record is not None and (record["status"], record["agent"]) == ("accepted", "K1")
        types = [e["type"] for e in await world.events("call:c1")]
        assert types == ["queued", "offered", "accepted"]
        assert (await world.events("call:c1"))[-1] == {"type": "accepted", "agent": "K1", "server": "desk-1"}
        await world.on("A").finish("K1", "c1")
        assert await world.status("c1") == "done"
        state = await world.state("K1")
        assert state.presence is Presence.WRAP_UP and state.calls == ()

    world.run(test)


def test_decline_goes_to_the_next_agent_and_keeps_the_first_enqueued_at(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1", "K2")
        await world.on("A").request(call("c1"), PACKET)
        world.clock.t += 3
        await world.on("A").decline("K1", "c1")
        record = await world.store.load_call("c1")
        assert record is not None and record["offer"]["agent"] == "K2"  # widened: K1 tried, K2 is the best left
        assert QueuedCall.from_json(record["entry"]).enqueued_at == T0
        assert QueuedCall.from_json(record["entry"]).tried == ("K1",)
        assert (await world.state("K1")).presence is Presence.AVAILABLE
        assert {"type": "declined", "agent": "K1", "why": "declined"} in await world.events("call:c1")
        await world.on("A").decline("K1", "c1")  # a stale second decline changes nothing
        assert (await world.store.load_call("c1") or {})["offer"]["agent"] == "K2"

    world.run(test)


def test_an_offer_that_rings_out_goes_to_the_next_agent(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1", "K2")
        dispatcher = world.on("A")
        await dispatcher.request(call("c1"), PACKET)
        world.clock.t += RING - 1
        assert await dispatcher.dispatch() == []  # still ringing K1
        world.clock.t += 1
        assert not await dispatcher.accept("K1", "c1")  # too late
        await dispatcher.decline("K1", "c1")  # the ring-out's moment: left to it
        assert await dispatcher.dispatch() == []
        assert (await world.state("K1")).calls == ("c1",)
        world.clock.t += GRACE
        assert await dispatcher.dispatch() == [("c1", "K2")]
        assert {"type": "declined", "agent": "K1", "why": "no_answer"} in await world.events("call:c1")
        assert {"type": "cancel", "call_id": "c1", "why": "no_answer"} in await world.events("agent:K1")
        assert [e["type"] for e in await world.events("call:c1")].count("declined") == 1
        assert (await world.state("K1")).calls == ()

    world.run(test)


def test_accept_after_until_is_refused(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1")
        await world.on("A").request(call("c1"), PACKET)
        world.clock.t += RING
        assert not await world.on("A").accept("K1", "c1")

    world.run(test)


def test_cancel_while_ringing_withdraws_the_offer(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1")
        await world.on("A").request(call("c1"), PACKET)
        await world.on("A").cancel("c1", "hangup")
        assert await world.status("c1") == "cancelled"
        assert (await world.state("K1")).presence is Presence.AVAILABLE
        assert (await world.events("agent:K1"))[-1] == {"type": "cancel", "call_id": "c1", "why": "hangup"}
        assert (await world.events("call:c1"))[-1] == {"type": "cancelled", "why": "hangup"}
        assert not await world.on("A").accept("K1", "c1")
        assert await world.store.queue() == []

    world.run(test)


def test_cancel_while_queued_leaves_the_queue(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1")
        await world.on("A").request(call("c1"), PACKET)
        placed = await world.on("A").request(call("c2"), PACKET)
        assert placed.status == "queued" and placed.position == 1
        await world.on("A").cancel("c2", "back_to_bot")
        assert await world.store.queue() == [] and await world.status("c2") == "cancelled"
        await world.on("A").decline("K1", "c1")  # c2 gone: nothing else is offered to K1
        assert (await world.state("K1")).calls == ()

    world.run(test)


def test_no_agent_when_everyone_who_could_take_it_is_offline(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K3")  # general: a fallback of complaint
        await world.store.set_presence("K3", Presence.OFFLINE, T0)  # signed out again
        placed = await world.on("A").request(call("c1", "complaint"), PACKET)
        assert placed == Placement("no_agent")
        assert await world.store.queue() == [] and await world.status("c1") == "no_agent"
        await world.store.set_presence("K2", Presence.BUSY, T0)  # signed in, busy: the caller queues
        placed = await world.on("A").request(call("c2", "complaint"), PACKET)
        assert placed.status == "queued" and placed.position == 1 and placed.wait_s is None

    world.run(test)


def test_queue_order_by_priority_then_time_with_place_and_estimate(world: World) -> None:
    async def test() -> None:
        await world.store.set_presence("K1", Presence.BUSY, T0)  # on duty, no line free
        d = world.on("A")
        await d.request(call("late", priority=3, at=T0), PACKET)
        world.clock.t += 1
        await d.request(call("later", priority=3, at=T0 + 1), PACKET)
        placed = await d.request(call("urgent", priority=1, at=T0 + 1), PACKET)
        assert (placed.status, placed.position) == ("queued", 1)
        assert [e.call_id for e in await world.store.queue()] == ["urgent", "late", "later"]
        assert await d.estimate("later") == (3, None)  # no accepted call yet: no basis
        # history: "urgent" accepted after 40 s, then "late" after 50 s -> mean 45 s
        await world.store.set_presence("K2", Presence.AVAILABLE, world.clock.t)
        for at, first in ((T0 + 41, "urgent"), (T0 + 50, "late")):
            world.clock.t = at
            assert await d.dispatch() == [(first, "K2")]
            assert await d.accept("K2", first)
            await d.finish("K2", first)
            await world.store.set_presence("K2", Presence.AVAILABLE, world.clock.t)
        assert [e.call_id for e in await world.store.queue()] == ["later"]
        assert await d.estimate("later") == (1, pytest.approx(45.0))
        assert await d.estimate("urgent") == (None, None)

    world.run(test)


def test_two_servers_never_offer_one_agent_two_calls(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1")
        a, b = world.on("A"), world.on("B")
        await a.dispatch()
        await b.dispatch()  # both alive
        placed = await asyncio.gather(
            a.request(call("ca", server="A"), PACKET), b.request(call("cb", server="B"), PACKET)
        )
        assert sorted(p.status for p in placed) == ["offered", "queued"]
        assert len((await world.state("K1")).calls) == 1
        offers = [e for e in await world.events("agent:K1") if e["type"] == "offer"]
        assert len(offers) == 1
        await asyncio.gather(a.dispatch(), b.dispatch(), a.dispatch(), b.dispatch())
        assert len([e for e in await world.events("agent:K1") if e["type"] == "offer"]) == 1

    world.run(test)


def test_two_servers_race_for_one_caller_with_two_agents_free(world: World) -> None:
    async def test() -> None:
        a, b = world.on("A"), world.on("B")
        await b.dispatch()
        await world.store.set_presence("K1", Presence.BUSY, T0)
        await a.request(call("c1", server="A"), PACKET)  # queued: K1 busy
        world.clock.t += WIDEN  # any level of the skill now: K1 (5) or K2 (4)
        await world.sign_in("K1", "K2")
        offered = await asyncio.gather(a.dispatch(), b.dispatch())
        assert sum(len(o) for o in offered) == 1
        states = [await world.state(x) for x in ("K1", "K2")]
        assert sum(len(s.calls) for s in states) == 1  # the loser gave its line back

    world.run(test)


def test_a_dead_servers_callers_stay_queued(world: World) -> None:
    async def test() -> None:
        a, b = world.on("A"), world.on("B")
        await world.store.set_presence("K1", Presence.BUSY, T0)
        await b.request(call("cb", server="B"), PACKET)
        world.clock.t += 60  # B stopped heart-beating
        await world.sign_in("K1")
        assert await a.dispatch() == []
        assert [e.call_id for e in await world.store.queue()] == ["cb"]
        assert await world.status("cb") == "queued" and (await world.state("K1")).calls == ()
        await b.dispatch()  # B back: its caller is served
        assert (await world.store.load_call("cb") or {})["offer"]["agent"] == "K1"

    world.run(test)


def test_an_offer_made_by_a_dead_server_is_rung_out_by_another(world: World) -> None:
    async def test() -> None:
        a, b = world.on("A"), world.on("B")
        await a.dispatch()
        await world.sign_in("K1", "K2")
        await b.request(call("cb", server="A"), PACKET)  # B makes the offer for A's caller
        world.clock.t += RING / 2
        await a.dispatch()
        assert (await world.state("K1")).calls == ("cb",)  # B's offer: not A's to ring out yet (B alive)
        world.clock.t += RING  # B dead, offer expired
        assert await a.dispatch() == [("cb", "K2")]

    world.run(test)


def test_ring_out_by_the_offering_server_only_while_it_lives(world: World) -> None:
    async def test() -> None:
        a, b = world.on("A"), world.on("B")
        await world.sign_in("K1", "K2")
        await b.request(call("cb", server="B"), PACKET)
        world.clock.t += RING + GRACE
        await b.dispatch()  # B heart-beats, and rings its own offer out
        await a.dispatch()
        declines = [e for e in await world.events("call:cb") if e["type"] == "declined"]
        assert declines == [{"type": "declined", "agent": "K1", "why": "no_answer"}]

    world.run(test)


def test_wait_history_is_bounded_and_shared(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1")
        a = world.on("A")
        for n in range(WAIT_HISTORY + 5):
            world.clock.t = T0 + 1000 * n
            wait = 100.0 if n < 5 else 10.0  # the first five fall out of the window
            await a.request(call(f"c{n}", at=world.clock.t - wait), PACKET)
            assert await a.accept("K1", f"c{n}")
            await a.finish("K1", f"c{n}")
            await world.sign_in("K1")
        await world.store.set_presence("K1", Presence.BUSY, world.clock.t)
        await world.on("B").request(call("q", server="B"), PACKET)
        assert await world.on("B").estimate("q") == (1, pytest.approx(10.0))

    world.run(test)


def test_a_zombie_queue_entry_of_a_cancelled_call_is_dropped_not_offered(world: World) -> None:
    async def test() -> None:
        await world.store.set_presence("K1", Presence.BUSY, T0)
        d = world.on("A")
        await d.request(call("c1"), PACKET)
        await d.cancel("c1", "hangup")
        await world.store.enqueue(call("c1"))  # a decline on another server raced the cancel
        await world.sign_in("K1")
        assert await d.dispatch() == []
        assert await world.store.queue() == [] and (await world.state("K1")).calls == ()

    world.run(test)


def test_an_accept_at_the_last_moment_on_another_server_is_not_rung_out(world: World) -> None:
    async def test() -> None:
        a, b = world.on("A"), world.on("B")
        await world.sign_in("K1", "K2")
        await a.request(call("c1"), PACKET)
        world.clock.t += RING - 0.001
        assert await b.accept("K1", "c1")  # the agent's desktop is on server B
        world.clock.t += GRACE
        assert await a.dispatch() == []
        record = await world.store.load_call("c1")
        assert record is not None and (record["status"], record["agent"]) == ("accepted", "K1")
        assert (await world.state("K1")).calls == ("c1",)

    world.run(test)


def test_a_line_reserved_by_a_server_that_stopped_before_ringing_is_given_back(world: World) -> None:
    async def test() -> None:
        d = world.on("A")
        await world.store.set_presence("K1", Presence.BUSY, T0)
        await d.request(call("c1"), PACKET)  # queued: K1 busy
        await world.sign_in("K1", "K2")
        assert await world.store.reserve("K1", "c1", 1, T0)  # another server reserved K1, then stopped
        world.clock.t += WIDEN
        assert await d.dispatch() == [("c1", "K2")]
        assert (await world.state("K1")).calls == ("c1",)  # not yet: it may be ringing in a moment
        world.clock.t += STRAY_AFTER_S - 1
        await d.dispatch()
        assert (await world.state("K1")).calls == ("c1",)
        world.clock.t += 1
        await d.dispatch()
        assert (await world.state("K1")).calls == ()
        assert (await world.events("agent:K1"))[-1] == {"type": "cancel", "call_id": "c1", "why": "withdrawn"}
        assert (await world.store.load_call("c1") or {})["offer"]["agent"] == "K2"  # K2's offer untouched
        assert (await world.state("K2")).calls == ("c1",)

    world.run(test)


def test_lines_held_for_calls_the_dispatcher_does_not_know_are_left_alone(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1")
        assert await world.store.reserve("K1", "outbound-7", 1, T0)  # e.g. a callback the desk placed
        world.clock.t += 10 * STRAY_AFTER_S
        await world.on("A").dispatch()
        world.clock.t += 10 * STRAY_AFTER_S
        await world.on("A").dispatch()
        assert (await world.state("K1")).calls == ("outbound-7",)

    world.run(test)


def test_the_caller_hanging_up_during_the_conversation_ends_it_for_the_agent(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1")
        d = world.on("A")
        await d.request(call("c1"), PACKET)
        assert await d.accept("K1", "c1")
        await d.cancel("c1", "hangup")
        assert await world.status("c1") == "done"
        state = await world.state("K1")
        assert state.calls == () and state.presence is Presence.WRAP_UP
        assert (await world.events("agent:K1"))[-1] == {"type": "cancel", "call_id": "c1", "why": "hangup"}

    world.run(test)


class Flaky:
    """A MemoryStore whose heartbeat fails the first ``failures`` times, as an unreachable Redis does."""

    def __init__(self, store: MemoryStore, failures: int) -> None:
        self._store, self.failures = store, failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def heartbeat(self, server: str, now: float, ttl_s: float) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("Redis at 127.0.0.1:6379 is unreachable: heartbeat failed (test)")
        await self._store.heartbeat(server, now, ttl_s)


def test_the_dispatch_loop_survives_an_unreachable_store(caplog: pytest.LogCaptureFixture) -> None:
    async def test() -> None:
        clock = Clock()
        memory = MemoryStore(clock)
        store = Flaky(memory, failures=3)
        d = Dispatcher(store, lambda: AGENTS, "A", clock)
        await memory.set_presence("K1", Presence.BUSY, T0)
        await memory.heartbeat("A", T0, 5.0)
        await memory.enqueue(call("c1"))
        await memory.save_call("c1", {"status": "queued", "queued_at": T0, "entry": call("c1").to_json()}, 60)
        await memory.set_presence("K1", Presence.AVAILABLE, T0)
        loop = asyncio.create_task(d.run(interval_s=0))
        try:
            offers = await memory.read("agent:K1", timeout_s=10)  # a bound, not a timing: it comes at once
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        assert offers and offers[0][1] == {"type": "offer", "call_id": "c1"} and store.failures == 0

    with caplog.at_level("WARNING", logger="routing.dispatch"):
        asyncio.run(test())
    assert sum("StoreUnavailable" in r.getMessage() for r in caplog.records) == 3


class BeforeOffer:
    """A store that runs ``hook`` once, just before the first record update that marks a call offered."""

    def __init__(self, store: LiveStore, hook: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        self._hook: Callable[[], Awaitable[None]] | None = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_call(self, call_id: str, changes: Any) -> Any:
        hook, self._hook = self._hook, None
        if hook is not None and changes.get("status") == "offered":
            await hook()
        return await self._store.update_call(call_id, changes)


def test_a_cancel_on_another_server_while_an_offer_is_being_made_undoes_the_offer(world: World) -> None:
    async def test() -> None:
        b = world.on("B")
        a = Dispatcher(
            BeforeOffer(world.store, lambda: b.cancel("c1", "hangup")),
            lambda: AGENTS, "A", world.clock, ring_s=RING,
        )  # fmt: skip
        await world.sign_in("K1")
        placed = await a.request(call("c1"), PACKET)
        assert placed.status == "queued"  # not offered: the caller left meanwhile
        assert await world.status("c1") == "cancelled"
        assert (await world.state("K1")).calls == () and await world.events("agent:K1") == []
        assert await world.store.queue() == []
        world.clock.t += RING + 10 * STRAY_AFTER_S
        assert await a.dispatch() == [] and await world.status("c1") == "cancelled"

    world.run(test)


class Counted:
    """A store that counts the calls made to it (each one Redis round trip), by method."""

    def __init__(self, store: LiveStore) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return call


def test_a_pass_or_request_reads_the_agents_once_and_no_whole_record(world: World) -> None:
    async def test() -> None:
        await world.sign_in("K1", "K2", "K3")
        b = world.on("B")
        assert (await b.request(call("c1", server="B"), PACKET)).status == "offered"  # K1
        assert await b.accept("K1", "c1")
        counted = Counted(world.store)
        a = Dispatcher(cast(LiveStore, counted), lambda: AGENTS, "A", world.clock, ring_s=RING, widen_after_s=WIDEN)
        placed = await a.request(call("c2", "general"), PACKET)
        assert placed.status == "offered" and placed.agent is not None and placed.agent.id == "K3"
        assert (counted.calls["agents"], counted.calls["agent"], counted.calls["load_call"]) == (1, 0, 0)
        counted.calls.clear()
        assert await a.dispatch() == []  # K1 talking, K3 ringing: both lines' records in one read
        assert (counted.calls["agents"], counted.calls["call_fields"], counted.calls["load_call"]) == (1, 1, 0)
        counted.calls.clear()
        world.clock.t += RING + GRACE
        assert await a.dispatch() == []  # K3 rung out; K1 (the best general left) busy: c2 waits for them
        assert (counted.calls["agents"], counted.calls["agent"], counted.calls["load_call"]) == (1, 0, 0)
        assert counted.calls["call_fields"] == 2  # the scan, and the decline's re-read just before it writes
        assert await world.status("c2") == "queued" and (await world.state("K3")).calls == ()
        record = await world.store.load_call("c2")
        assert record is not None and QueuedCall.from_json(record["entry"]).tried == ("K3",)

    world.run(test)


class BeforeSwap:
    """A store that runs ``hook`` once, just before the first status swap (compare-and-set)."""

    def __init__(self, store: LiveStore, hook: Callable[[], Awaitable[Any]]) -> None:
        self._store = store
        self._hook: Callable[[], Awaitable[Any]] | None = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def swap_status(self, call_id: str, expect: Any, changes: Any) -> bool:
        hook, self._hook = self._hook, None
        if hook is not None:
            await hook()
        return bool(await self._store.swap_status(call_id, expect, changes))


def test_a_hang_up_on_another_server_during_an_accept_wins_and_the_accept_is_refused(world: World) -> None:
    async def test() -> None:
        b = world.on("B")
        a = Dispatcher(BeforeSwap(world.store, lambda: b.cancel("c1", "hangup")), lambda: AGENTS, "A", world.clock)
        await world.sign_in("K1")
        assert (await b.request(call("c1", server="B"), PACKET)).status == "offered"
        world.clock.t += 1
        assert not await a.accept("K1", "c1")
        assert await world.status("c1") == "cancelled"
        state = await world.state("K1")
        assert state.calls == () and state.presence is Presence.AVAILABLE
        assert [e["type"] for e in await world.events("call:c1")] == ["queued", "offered", "cancelled"]
        assert (await world.events("agent:K1"))[-1] == {"type": "cancel", "call_id": "c1", "why": "hangup"}

    world.run(test)


def test_an_accept_on_another_server_during_a_hang_up_wins_and_the_conversation_ends(world: World) -> None:
    async def test() -> None:
        b = world.on("B")
        a = Dispatcher(BeforeSwap(world.store, lambda: b.accept("K1", "c1")), lambda: AGENTS, "A", world.clock)
        await world.sign_in("K1")
        assert (await b.request(call("c1", server="B"), PACKET)).status == "offered"
        world.clock.t += 1
        await a.cancel("c1", "hangup")
        record = await world.store.load_call("c1")
        assert record is not None and (record["status"], record["agent"], record["why"]) == ("done", "K1", "hangup")
        state = await world.state("K1")
        assert state.calls == () and state.presence is Presence.WRAP_UP
        assert [e["type"] for e in await world.events("call:c1")] == ["queued", "offered", "accepted"]
        assert (await world.events("agent:K1"))[-1] == {"type": "cancel", "call_id": "c1", "why": "hangup"}

    world.run(test)
