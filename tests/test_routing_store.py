"""The ``LiveStore`` contract: every test runs on ``MemoryStore`` and on ``RedisStore`` (real Redis,
database 15, a fresh key prefix per test, its keys deleted afterwards).

Redis not reachable at 127.0.0.1:6379: the Redis variants are skipped (a failure under ``CI=true``).
Expiry: ``MemoryStore`` runs on a fake clock that the test moves; Redis on short real TTLs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from paths import in_ci, missing, program

from core.errors import ConfigError, IvrError
from routing.store import (
    STREAM_MAXLEN,
    AudioFeed,
    LiveStore,
    MemoryStore,
    Presence,
    QueuedCall,
    StoreUnavailable,
)
from routing.store_redis import RedisStore, connect

REDIS_URL = "redis://127.0.0.1:6379/15"  # database 15 only: other test runs share it, so never FLUSHDB
NOBODY_URL = "redis://:s3cret@127.0.0.1:1/15"  # nothing listens on port 1
T0 = 1_800_000_000.0  # an epoch time in 2027
SHORT_TTL = 0.2


@functools.cache
def _redis_down() -> str | None:
    """Why Redis cannot be used here, or None."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(64).startswith(b"+PONG"):
                return "Redis at 127.0.0.1:6379 did not answer PING"
    except OSError as err:
        return f"Redis is not reachable at 127.0.0.1:6379 ({err}); start redis-server to run the RedisStore variants"
    return None


def _skip_without_redis() -> list[pytest.MarkDecorator]:
    """Redis down: a skip mark (pytest folds those into one line); under CI=true ``redis_only`` fails instead."""
    why = _redis_down()
    return [pytest.mark.skip(reason=why)] if why and not in_ci() else []


@pytest.fixture(params=[pytest.param("redis", marks=_skip_without_redis())])
def redis_only() -> None:
    if why := _redis_down():
        missing(why)


@pytest.fixture(params=["memory", pytest.param("redis", marks=_skip_without_redis())])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and (why := _redis_down()):
        missing(why)
    return str(request.param)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@dataclass
class World:
    """The store(s) under test: ``servers`` handles on one shared state (Redis: one RedisStore each)."""

    kind: str
    stores: list[LiveStore]
    clock: Clock

    @property
    def store(self) -> LiveStore:
        return self.stores[0]

    async def pass_time(self, seconds: float) -> None:
        """Let expiry happen: the fake clock moves for MemoryStore; Redis's TTLs need real time."""
        if self.kind == "memory":
            self.clock.t += seconds
        else:
            await asyncio.sleep(seconds)


async def _delete_keys(prefix: str) -> None:
    raw = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in raw.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await raw.delete(*keys)
    finally:
        await raw.aclose()


def run(kind: str, body: Callable[[World], Awaitable[None]], *, servers: int = 1, **options: Any) -> None:
    async def main() -> None:
        clock = Clock()
        prefix = f"test:store:{uuid.uuid4().hex}:"
        stores: list[LiveStore]
        if kind == "memory":
            stores = [MemoryStore(clock=clock, **options)] * servers
        else:
            stores = [RedisStore(REDIS_URL, prefix, **options) for _ in range(servers)]
        try:
            await body(World(kind, stores, clock))
        finally:
            for store in stores:
                await store.close()
            if kind == "redis":
                await _delete_keys(prefix)

    asyncio.run(main())


def entry(call_id: str, priority: int = 3, at: float = 0.0, **more: Any) -> QueuedCall:
    return QueuedCall(call_id, "after_sales", priority, T0 + at, "srv-1", **more)


def order(event_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in event_id.split("-"))


# -- presence -----------------------------------------------------------------------------------------
def test_an_agent_never_seen_is_offline_with_no_calls(kind: str) -> None:
    async def body(w: World) -> None:
        state = await w.store.agent("a9")
        assert (state.agent_id, state.presence, state.since, state.calls, state.server) == (
            "a9", Presence.OFFLINE, 0.0, (), None,
        )  # fmt: skip
        assert await w.store.agents() == {}

    run(kind, body)


def test_presence_records_since_when_it_changes_and_keeps_the_server(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        state = await s.set_presence("a1", Presence.AVAILABLE, T0 + 1.25, server="srv-1")
        assert (state.presence, state.since, state.server) == (Presence.AVAILABLE, T0 + 1.25, "srv-1")
        again = await s.set_presence("a1", Presence.AVAILABLE, T0 + 9)  # no change: idle since stays
        assert (again.since, again.server) == (T0 + 1.25, "srv-1")
        moved = await s.set_presence("a1", Presence.AVAILABLE, T0 + 10, server="srv-2")
        assert (moved.since, moved.server) == (T0 + 1.25, "srv-2")
        away = await s.set_presence("a1", Presence.OFFLINE, T0 + 20)
        assert (away.presence, away.since, away.server) == (Presence.OFFLINE, T0 + 20, "srv-2")
        await s.set_presence("a2", Presence.WRAP_UP, T0 + 3)
        assert await s.agent("a1") == away
        agents = await s.agents()
        assert set(agents) == {"a1", "a2"}
        assert (agents["a2"].presence, agents["a2"].since, agents["a2"].server) == (Presence.WRAP_UP, T0 + 3, None)

    run(kind, body)


# -- reserve / release --------------------------------------------------------------------------------
def test_reserve_fills_the_lines_then_the_agent_is_busy(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        await s.set_presence("a1", Presence.AVAILABLE, T0)
        assert await s.reserve("a1", "c1", 2, T0 + 1)
        one = await s.agent("a1")
        assert (one.presence, one.since, one.calls) == (Presence.AVAILABLE, T0, ("c1",))
        assert not await s.reserve("a1", "c1", 2, T0 + 2)  # already holds a line: not given a second
        assert await s.reserve("a1", "c2", 2, T0 + 3)
        full = await s.agent("a1")
        assert (full.presence, full.since, full.calls) == (Presence.BUSY, T0 + 3, ("c1", "c2"))
        assert not await s.reserve("a1", "c3", 2, T0 + 4)
        assert not await s.reserve("a1", "c3", 3, T0 + 4)  # BUSY: offered nothing, whatever the lines
        assert (await s.agent("a1")).calls == ("c1", "c2")

    run(kind, body)


def test_only_an_available_agent_can_be_reserved(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert not await s.reserve("ghost", "c1", 1, T0)
        for agent_id, presence in [("off", Presence.OFFLINE), ("wrap", Presence.WRAP_UP), ("busy", Presence.BUSY)]:
            await s.set_presence(agent_id, presence, T0)
            assert not await s.reserve(agent_id, "c1", 3, T0 + 1), presence
            assert (await s.agent(agent_id)).calls == ()
        assert not await s.reserve("ghost", "c1", 1, T0)
        await s.set_presence("zero", Presence.AVAILABLE, T0)
        assert not await s.reserve("zero", "c1", 0, T0)

    run(kind, body)


def test_release_frees_the_line_once_and_sets_presence(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        await s.set_presence("a1", Presence.AVAILABLE, T0)
        assert await s.reserve("a1", "c1", 1, T0 + 1)
        back = await s.release("a1", "c1", T0 + 5)
        assert (back.presence, back.since, back.calls) == (Presence.AVAILABLE, T0 + 5, ())
        assert await s.release("a1", "c1", T0 + 9) == back  # idempotent
        assert await s.release("a1", "never", T0 + 9, wrap_up=True) == back
        assert await s.agent("a1") == back

        assert await s.reserve("a1", "c2", 1, T0 + 10)
        notes = await s.release("a1", "c2", T0 + 20, wrap_up=True)
        assert (notes.presence, notes.since, notes.calls) == (Presence.WRAP_UP, T0 + 20, ())
        assert not await s.reserve("a1", "c3", 1, T0 + 21)

        await s.set_presence("a2", Presence.AVAILABLE, T0)
        assert await s.reserve("a2", "c4", 2, T0 + 1)
        assert await s.reserve("a2", "c5", 2, T0 + 2)
        await s.set_presence("a2", Presence.OFFLINE, T0 + 3)
        gone = await s.release("a2", "c4", T0 + 4, wrap_up=True)
        assert (gone.presence, gone.since, gone.calls) == (Presence.OFFLINE, T0 + 3, ("c5",))
        unknown = await s.release("nobody", "c1", T0)
        assert (unknown.presence, unknown.calls) == (Presence.OFFLINE, ())

    run(kind, body)


def test_a_busy_agent_with_two_lines_is_available_again_after_one_call(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        await s.set_presence("a1", Presence.AVAILABLE, T0)
        for n, call in enumerate(["c1", "c2", "c3"]):
            assert await s.reserve("a1", call, 3, T0 + n)
        state = await s.release("a1", "c2", T0 + 10)
        assert (state.presence, state.since, state.calls) == (Presence.AVAILABLE, T0 + 10, ("c1", "c3"))
        assert await s.reserve("a1", "c4", 3, T0 + 11)
        assert (await s.agent("a1")).calls == ("c1", "c3", "c4")

    run(kind, body)


def test_exactly_one_of_fifty_concurrent_reservations_gets_the_last_line(kind: str) -> None:
    async def body(w: World) -> None:
        a, b = w.stores
        await a.set_presence("a1", Presence.AVAILABLE, T0)
        assert await a.reserve("a1", "held-1", 3, T0)
        assert await b.reserve("a1", "held-2", 3, T0)
        await asyncio.gather(*[store.agent("a1") for store in w.stores for _ in range(25)])  # connections open
        tries = [(a if n % 2 else b).reserve("a1", f"race-{n}", 3, T0 + 1) for n in range(50)]
        won = await asyncio.gather(*tries)
        assert sum(won) == 1
        state = await b.agent("a1")
        assert state.presence == Presence.BUSY
        assert state.calls[:2] == ("held-1", "held-2") and state.calls[2] == f"race-{won.index(True)}"

    run(kind, body, servers=2)


# -- the queue ----------------------------------------------------------------------------------------
def test_the_queue_serves_priority_first_then_the_longest_waiting(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert await s.queue() == []
        assert await s.enqueue(entry("a", 2, 10)) == 1
        assert await s.enqueue(entry("b", 1, 20)) == 1
        assert await s.enqueue(entry("c", 1, 5)) == 1
        assert await s.enqueue(entry("d", 2, 10)) == 4  # same priority and time as a: by call id
        assert await s.enqueue(entry("e", 5, 0)) == 5
        assert await s.enqueue(entry("f", 2, 10.001)) == 5  # a millisecond later than a and d
        assert [e.call_id for e in await s.queue()] == ["c", "b", "a", "d", "f", "e"]
        assert [await s.position(c) for c in "abcdef"] == [3, 2, 1, 4, 6, 5]
        assert await s.position("nobody") is None

    run(kind, body)


def test_enqueue_again_replaces_the_entry(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        await s.enqueue(entry("a", 2, 1))
        await s.enqueue(entry("b", 3, 2))
        again = entry("b", 1, 2, tried=("a1",), dialect="粤语", vip=True)
        assert await s.enqueue(again) == 1
        assert await s.queue() == [again, entry("a", 2, 1)]

    run(kind, body)


def test_dequeue_hands_the_entry_back_once(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        waiting = QueuedCall("c1", "sales", 2, T0 + 0.123456, "srv-2", "四川话", True, True, ("a1", "a2"))
        await s.enqueue(waiting)
        await s.enqueue(entry("c2"))
        assert await s.dequeue("c1") == waiting
        assert await s.dequeue("c1") is None
        assert await s.position("c1") is None
        assert [e.call_id for e in await s.queue()] == ["c2"]
        assert await s.dequeue("never") is None

    run(kind, body)


def test_exactly_one_of_twenty_concurrent_takers_gets_the_entry(kind: str) -> None:
    async def body(w: World) -> None:
        a, b = w.stores
        await a.enqueue(entry("c1"))
        await asyncio.gather(*[store.queue() for store in w.stores for _ in range(10)])  # connections open
        got = await asyncio.gather(*[(a if n % 2 else b).dequeue("c1") for n in range(20)])
        assert [g for g in got if g is not None] == [entry("c1")]
        assert await b.queue() == []

    run(kind, body, servers=2)


# -- call records -------------------------------------------------------------------------------------
PACKET = {"caller": "138****8001", "summary": "要退货", "order": "E20260101", "emotion": {"anger": 0.75}}


def test_a_call_record_is_saved_loaded_and_merged(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert await s.load_call("c1") is None
        await s.save_call("c1", {**PACKET, "items": ("a", "b"), "at": T0 + 0.123456}, ttl_s=600)
        loaded = await s.load_call("c1")
        assert loaded == {**PACKET, "items": ["a", "b"], "at": T0 + 0.123456}
        assert isinstance(loaded, dict)
        loaded["summary"] = "changed by the reader"
        assert (await s.load_call("c1") or {})["summary"] == "要退货"

        merged = await s.update_call("c1", {"agent": "a1", "emotion": {"calm": 1}})
        assert merged == {**PACKET, "items": ["a", "b"], "at": T0 + 0.123456, "agent": "a1", "emotion": {"calm": 1}}
        assert await s.load_call("c1") == merged
        assert await s.update_call("c1", {}) == merged
        assert await s.update_call("never", {"agent": "a1"}) is None
        assert await s.load_call("never") is None

        await s.save_call("c1", {"only": None}, ttl_s=600)  # replaces the whole record
        assert await s.load_call("c1") == {"only": None}
        await s.save_call("c2", {}, ttl_s=600)
        assert await s.load_call("c2") == {}

    run(kind, body)


def test_a_call_record_expires_and_an_update_keeps_its_expiry(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        await s.save_call("c1", PACKET, ttl_s=SHORT_TTL)
        await s.save_call("c2", PACKET, ttl_s=600)
        assert await s.update_call("c1", {"agent": "a1"}) == {**PACKET, "agent": "a1"}
        await w.pass_time(SHORT_TTL + 0.15)
        assert await s.load_call("c1") is None
        assert await s.update_call("c1", {"agent": "a2"}) is None
        assert await s.load_call("c1") is None
        assert await s.load_call("c2") == PACKET

    run(kind, body)


def test_swap_status_changes_the_record_only_from_an_expected_status(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert not await s.swap_status("never", ["offered"], {"status": "accepted"})
        assert await s.load_call("never") is None
        await s.save_call("c1", {**PACKET, "status": "offered", "offer": {"agent": "a1"}}, ttl_s=600)
        assert not await s.swap_status("c1", ["queued", "accepted"], {"status": "cancelled"})
        assert not await s.swap_status("c1", [], {"status": "cancelled"})
        assert await s.load_call("c1") == {**PACKET, "status": "offered", "offer": {"agent": "a1"}}
        assert await s.swap_status("c1", ["queued", "offered"], {"status": "accepted", "agent": "a1", "offer": None})
        assert await s.load_call("c1") == {**PACKET, "status": "accepted", "offer": None, "agent": "a1"}
        assert not await s.swap_status("c1", ["offered"], {"status": "cancelled"})
        assert await s.swap_status("c1", ["accepted"], {})  # a bare check: nothing changes
        assert (await s.load_call("c1") or {})["status"] == "accepted"
        await s.save_call("c2", {"state": "offered"}, ttl_s=600)  # no status field at all
        assert not await s.swap_status("c2", ["offered"], {"status": "cancelled"})
        await s.save_call("c3", {"status": "queued"}, ttl_s=SHORT_TTL)
        await w.pass_time(SHORT_TTL + 0.15)
        assert not await s.swap_status("c3", ["queued"], {"status": "cancelled"})
        assert await s.load_call("c3") is None

    run(kind, body)


def test_exactly_one_of_twenty_concurrent_swaps_from_a_status_wins(kind: str) -> None:
    async def body(w: World) -> None:
        a, b = w.stores
        await a.save_call("c1", {"status": "offered"}, ttl_s=600)
        await asyncio.gather(*[store.queue() for store in w.stores for _ in range(10)])  # connections open
        changes = [{"status": "accepted" if n % 3 else "cancelled", "by": n} for n in range(20)]
        won = await asyncio.gather(*[(a if n % 2 else b).swap_status("c1", ["offered"], changes[n]) for n in range(20)])
        assert won.count(True) == 1
        assert await b.load_call("c1") == changes[won.index(True)]

    run(kind, body, servers=2)


def test_some_fields_of_many_records_in_one_call(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert await s.call_fields([], ["status"]) == {}
        await s.save_call("c1", {**PACKET, "status": "offered", "offer": {"agent": "a1", "until": T0}}, ttl_s=600)
        await s.save_call("c2", {"status": "accepted", "agent": None, "entry": "{}"}, ttl_s=600)
        await s.save_call("c3", {"status": "queued"}, ttl_s=SHORT_TTL)
        await s.save_call("c4", {}, ttl_s=600)
        await w.pass_time(SHORT_TTL + 0.15)
        got = await s.call_fields(["c1", "c2", "c3", "c4", "never"], ["status", "offer", "agent", "entry"])
        assert got == {
            "c1": {"status": "offered", "offer": {"agent": "a1", "until": T0}},
            "c2": {"status": "accepted", "agent": None, "entry": "{}"},  # a null field is there, as None
            "c4": {},  # an empty record exists; an expired one (c3) and one never saved do not
        }
        got["c1"]["offer"]["agent"] = "changed by the reader"
        assert (await s.call_fields(["c1"], ["offer", "summary"]))["c1"] == {
            "offer": {"agent": "a1", "until": T0}, "summary": PACKET["summary"],
        }  # fmt: skip
        assert await s.call_fields(["c1", "c2"], []) == {"c1": {}, "c2": {}}

    run(kind, body)


# -- streams ------------------------------------------------------------------------------------------
def test_stream_ids_increase_and_read_after_an_id(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert await s.read("call:c1") == []
        events: list[dict[str, Any]] = [
            {"type": "queued", "position": 2},
            {"type": "offered", "agent": "a1"},
            {"type": "line", "text": "你好"},
        ]
        ids = [await s.publish("call:c1", e) for e in events]
        assert [order(i) for i in ids] == sorted(order(i) for i in ids) and len(set(ids)) == 3
        assert await s.read("call:c1") == list(zip(ids, events, strict=True))
        assert await s.read("call:c1", after="0") == list(zip(ids, events, strict=True))
        assert await s.read("call:c1", after=ids[0]) == list(zip(ids[1:], events[1:], strict=True))
        assert await s.read("call:c1", after=ids[2]) == []
        assert await s.read("agent:a1") == []  # another stream
        later = await s.publish("call:c1", {"type": "ended", "outcome": "handled"})
        assert order(later) > order(ids[2])
        assert await s.read("call:c1", after=ids[2]) == [(later, {"type": "ended", "outcome": "handled"})]
        with pytest.raises(ValueError):
            await s.read("call:c1", after="not an id")

    run(kind, body)


def test_a_waiting_read_wakes_when_another_server_publishes(kind: str) -> None:
    async def body(w: World) -> None:
        reader, writer = w.stores
        first = await writer.publish("agent:a1", {"type": "offer", "call_id": "c0"})

        async def publish_soon() -> str:
            await asyncio.sleep(0.1)
            return await writer.publish("agent:a1", {"type": "offer", "call_id": "c1"})

        publishing = asyncio.create_task(publish_soon())
        # the read may wait 30 s; it must be woken by the event, long before this 5 s bound
        got = await asyncio.wait_for(reader.read("agent:a1", after=first, timeout_s=30), 5)
        assert got == [(await publishing, {"type": "offer", "call_id": "c1"})]

    run(kind, body, servers=2)


def test_a_read_that_times_out_returns_nothing(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert await s.read("call:quiet", timeout_s=0.1) == []
        last = await s.publish("call:c1", {"type": "queued", "position": 1})
        assert await s.read("call:c1", after=last, timeout_s=0.1) == []

    run(kind, body)


def test_a_stream_keeps_about_its_last_thousand_events(kind: str) -> None:
    async def body(w: World) -> None:
        ids = [await w.store.publish("call:long", {"type": "line", "n": n}) for n in range(STREAM_MAXLEN + 500)]
        kept = await w.store.read("call:long")
        assert STREAM_MAXLEN <= len(kept) <= STREAM_MAXLEN + 100  # Redis trims whole nodes (100 entries)
        assert kept[-1] == (ids[-1], {"type": "line", "n": STREAM_MAXLEN + 499})
        assert [event["n"] for _, event in kept] == list(range(STREAM_MAXLEN + 500 - len(kept), STREAM_MAXLEN + 500))

    run(kind, body)


def test_a_stream_is_dropped_a_while_after_its_last_event(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        await s.publish("call:old", {"type": "queued", "position": 1})
        await s.publish("call:new", {"type": "queued", "position": 1})
        await w.pass_time(0.25)
        await s.publish("call:new", {"type": "offered", "agent": "a1"})
        await w.pass_time(0.25)  # call:old: 0.5 s since its last event, call:new 0.25 s
        assert await s.read("call:old") == []
        assert [e["type"] for _, e in await s.read("call:new")] == ["queued", "offered"]

    run(kind, body, stream_ttl_s=0.4)


# -- servers and sessions -----------------------------------------------------------------------------
async def _frames(feed: AudioFeed, count: int) -> list[bytes]:
    """The next ``count`` frames of ``feed`` (a guard, not a timing: a feed that stalls fails)."""

    async def take() -> list[bytes]:
        got: list[bytes] = []
        async for pcm in feed:
            got.append(pcm)
            if len(got) == count:
                break
        return got

    return await asyncio.wait_for(take(), 5)


def test_audio_frames_reach_every_subscriber_in_order_as_bytes(kind: str) -> None:
    async def body(w: World) -> None:
        sender, receiver = w.stores
        frames = [bytes([i, 0x80, 0xFF, 0x00]) * 80 for i in range(20)]  # not text: every byte value matters
        await sender.send_audio("c1:caller", b"before anyone listened")
        async with receiver.audio("c1:caller") as first, sender.audio("c1:caller") as second:
            async with receiver.audio("c2:caller") as other:
                for pcm in frames:
                    await sender.send_audio("c1:caller", pcm)
                assert await _frames(first, 20) == frames
                assert await _frames(second, 20) == frames
                await sender.send_audio("c2:caller", b"\x01\x02")
                assert await _frames(other, 1) == [b"\x01\x02"]  # channels are apart
        assert first.closed and first.dropped == second.dropped == 0

    run(kind, body, servers=2)


def test_closing_an_audio_feed_ends_its_reader_and_it_hears_no_more(kind: str) -> None:
    async def body(w: World) -> None:
        sender, receiver = w.stores
        feed = receiver.audio("c1:agent")
        with pytest.raises(RuntimeError, match="expected an open audio feed"):
            await _frames(feed, 1)
        async with feed:
            reader = asyncio.create_task(_frames(feed, 1000))
            await sender.send_audio("c1:agent", b"\x00\x01")
            await asyncio.sleep(0.2)  # let it arrive (over Redis: another connection)
            await feed.close()
            assert await asyncio.wait_for(reader, 5) == [b"\x00\x01"]  # ended, not waiting on
            await sender.send_audio("c1:agent", b"\x02\x03")
            assert [pcm async for pcm in feed] == []
        with pytest.raises(RuntimeError, match="expected a new audio feed"):
            async with feed:
                pass

    run(kind, body, servers=2)


def test_a_slow_audio_reader_loses_the_oldest_frames_and_they_are_counted(kind: str) -> None:
    async def body(w: World) -> None:
        async with w.store.audio("c1:caller", max_frames=5) as feed:
            for i in range(8):
                await w.store.send_audio("c1:caller", bytes([i, 0]))
            if w.kind == "redis":  # frames come in on the feed's own connection
                for _ in range(100):
                    if feed.dropped == 3:
                        break
                    await asyncio.sleep(0.02)
            assert feed.dropped == 3
            assert await _frames(feed, 5) == [bytes([i, 0]) for i in range(3, 8)]

    run(kind, body)


def test_a_server_is_alive_until_its_heartbeat_runs_out(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert await s.servers_alive(T0) == set()
        await s.heartbeat("srv-1", T0, ttl_s=10)
        await s.heartbeat("srv-2", T0, ttl_s=30)
        assert await s.servers_alive(T0 + 5) == {"srv-1", "srv-2"}
        assert await s.servers_alive(T0 + 10) == {"srv-2"}
        await s.heartbeat("srv-1", T0 + 20, ttl_s=10)
        assert await s.servers_alive(T0 + 25) == {"srv-1", "srv-2"}
        assert await s.servers_alive(T0 + 31) == set()

    run(kind, body)


def test_a_session_names_its_agent_until_it_expires_or_is_closed(kind: str) -> None:
    async def body(w: World) -> None:
        s = w.store
        assert await s.session_agent("h0") is None
        await s.open_session("h1", "a1", ttl_s=SHORT_TTL)
        await s.open_session("h2", "a2", ttl_s=600)
        await s.open_session("h3", "a3", ttl_s=600)
        assert [await s.session_agent(h) for h in ("h1", "h2", "h3")] == ["a1", "a2", "a3"]
        await s.close_session("h3")
        await s.close_session("h3")
        await w.pass_time(SHORT_TTL + 0.15)
        assert [await s.session_agent(h) for h in ("h1", "h2", "h3")] == [None, "a2", None]

    run(kind, body)


def test_failures_are_counted_per_key_within_their_window_on_every_server(kind: str) -> None:
    async def body(w: World) -> None:
        one, two = w.stores
        assert await one.failures("signin:A01", T0) == (0, 0.0)
        assert await one.count_failure("signin:A01", T0, 60) == 1
        assert await two.count_failure("signin:A01", T0 + 30, 60) == 2  # another server, the same count
        assert await one.failures("signin:A01", T0 + 31) == (2, pytest.approx(59.0))  # from the last failure
        assert await two.failures("signin:A02", T0 + 31) == (0, 0.0)  # per key
        assert await one.failures("signin:A01", T0 + 90) == (0, 0.0)  # the window closed
        assert await two.count_failure("signin:A01", T0 + 91, 60) == 1  # and the count starts again
        await one.clear_failures("signin:A01")
        await one.clear_failures("signin:A01")
        assert await two.failures("signin:A01", T0 + 91) == (0, 0.0)
        counts = await asyncio.gather(*(w.stores[i % 2].count_failure("signin:A03", T0, 60) for i in range(20)))
        assert sorted(counts) == list(range(1, 21))  # concurrent failures each counted once

    run(kind, body, servers=2)


# -- Redis only ---------------------------------------------------------------------------------------
def test_stores_with_different_prefixes_share_nothing(redis_only: None) -> None:
    async def main() -> None:
        prefixes = [f"test:store:{uuid.uuid4().hex}:" for _ in range(2)]
        one, two = (RedisStore(REDIS_URL, p) for p in prefixes)
        try:
            await one.set_presence("a1", Presence.AVAILABLE, T0)
            await one.enqueue(entry("c1"))
            await one.save_call("c1", PACKET, 600)
            await one.open_session("h1", "a1", 600)
            assert (await two.agents(), await two.queue(), await two.load_call("c1")) == ({}, [], None)
            assert await two.session_agent("h1") is None
            raw = aioredis.from_url(REDIS_URL, decode_responses=True)
            keys = [k async for k in raw.scan_iter(match=f"{prefixes[0]}*")]
            await raw.aclose()
            assert len(keys) >= 5 and all(k.startswith(prefixes[0]) for k in keys)
        finally:
            await one.close()
            await two.close()
            for p in prefixes:
                await _delete_keys(p)

    asyncio.run(main())


def test_connect_pings_redis(redis_only: None) -> None:
    async def main() -> None:
        store = await connect(REDIS_URL, prefix=f"test:store:{uuid.uuid4().hex}:")
        try:
            assert await store.agent("a1") == await MemoryStore().agent("a1")
        finally:
            await store.close()

    asyncio.run(main())


def test_a_store_on_a_given_client_that_answers_bytes(redis_only: None) -> None:
    async def main() -> None:
        prefix = f"test:store:{uuid.uuid4().hex}:"
        store = RedisStore(aioredis.from_url(REDIS_URL), prefix)  # decode_responses=False: replies are bytes
        try:
            assert store.address == "redis://127.0.0.1:6379/15"
            await store.set_presence("a1", Presence.AVAILABLE, T0, server="srv-1")
            assert await store.reserve("a1", "c1", 1, T0 + 1)
            state = await store.agent("a1")
            assert (state.presence, state.calls, state.server) == (Presence.BUSY, ("c1",), "srv-1")
            await store.enqueue(entry("c2", 1, 0, dialect="粤语"))
            assert await store.queue() == [entry("c2", 1, 0, dialect="粤语")]
            assert await store.dequeue("c2") == entry("c2", 1, 0, dialect="粤语")
            await store.save_call("c1", PACKET, 600)
            assert await store.update_call("c1", {"agent": "a1"}) == {**PACKET, "agent": "a1"}
            first = await store.publish("call:c1", {"type": "line", "text": "您好"})
            assert await store.read("call:c1", timeout_s=1) == [(first, {"type": "line", "text": "您好"})]
            await store.open_session("h1", "a1", 600)
            assert await store.session_agent("h1") == "a1"
            await store.heartbeat("srv-1", T0, 10)
            assert await store.servers_alive(T0) == {"srv-1"}
        finally:
            await store.close()
            await _delete_keys(prefix)

    asyncio.run(main())


# -- Redis unreachable (needs no Redis) ---------------------------------------------------------------
def test_connect_to_unreachable_redis_says_so_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        asyncio.run(connect(NOBODY_URL))
    err = caught.value
    assert isinstance(err, IvrError) and err.retryable
    assert "redis://127.0.0.1:1/15" in str(err) and "PING" in str(err)
    assert "s3cret" not in str(err)


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.reserve("a1", "c1", 1, T0),
        lambda s: s.set_presence("a1", Presence.AVAILABLE, T0),
        lambda s: s.enqueue(entry("c1")),
        lambda s: s.queue(),
        lambda s: s.update_call("c1", {"agent": "a1"}),
        lambda s: s.call_fields(["c1", "c2"], ["status"]),
        lambda s: s.swap_status("c1", ["offered"], {"status": "accepted"}),
        lambda s: s.publish("call:c1", {"type": "queued"}),
        lambda s: s.read("call:c1", timeout_s=5),
        lambda s: s.servers_alive(T0),
        lambda s: s.send_audio("c1:caller", b"\x00\x00"),
        lambda s: s.audio("c1:caller").__aenter__(),
    ],
    ids=[
        "reserve",
        "set_presence",
        "enqueue",
        "queue",
        "update_call",
        "call_fields",
        "swap_status",
        "publish",
        "read_waiting",
        "servers_alive",
        "send_audio",
        "audio",
    ],
)
def test_an_operation_on_unreachable_redis_raises_store_unavailable(
    operation: Callable[[RedisStore], Awaitable[Any]],
) -> None:
    async def main() -> None:
        store = RedisStore(NOBODY_URL)
        try:
            with pytest.raises(StoreUnavailable) as caught:
                await operation(store)
            assert caught.value.retryable and "127.0.0.1:1" in str(caught.value)
            assert "s3cret" not in str(caught.value)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_url_that_is_not_redis_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redis://"):
        RedisStore("http://127.0.0.1:6379/15")


# -- Redis going away (a private redis-server this test starts, stops and restarts) ------------------
class PrivateRedis:
    """A throwaway redis-server on a free port, no persistence; only this process is ever signalled."""

    def __init__(self, binary: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:pw@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([*args, "--requirepass", "pw"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not listen on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(program("redis-server", "redis-server"))
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def test_redis_going_away_and_coming_back(private_redis: PrivateRedis) -> None:
    async def main() -> None:
        store = await connect(private_redis.url)
        try:
            await store.set_presence("a1", Presence.AVAILABLE, T0)
            private_redis.stop()
            with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{private_redis.port}/0.*reserving") as caught:
                await store.reserve("a1", "c1", 1, T0)
            assert caught.value.retryable and ":pw@" not in str(caught.value)
            private_redis.start()  # empty again: nothing was saved
            assert await store.reserve("a1", "c1", 1, T0) is False  # the same store works again
            await store.set_presence("a1", Presence.AVAILABLE, T0)
            assert await store.reserve("a1", "c1", 1, T0)
        finally:
            await store.close()

    asyncio.run(main())


def test_redis_that_stops_answering_times_out_as_store_unavailable(private_redis: PrivateRedis) -> None:
    async def main() -> None:
        process = private_redis.process
        assert process is not None
        store = await connect(private_redis.url)
        try:
            os.kill(process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
            with pytest.raises(StoreUnavailable, match="reading agent"):
                await store.agent("a1")  # the 2 s command timeout
            with pytest.raises(StoreUnavailable, match="reading a stream"):
                await store.read("call:c1", timeout_s=0.2)  # the wait plus 2 s
        finally:
            os.kill(process.pid, signal.SIGCONT)
            await store.close()

    asyncio.run(main())


def test_a_wrong_or_missing_password_is_a_config_error_not_retryable(private_redis: PrivateRedis) -> None:
    for url in (private_redis.url.replace(":pw@", ":nope@"), private_redis.url.replace(":pw@", "")):
        with pytest.raises(ConfigError, match="password") as caught:
            asyncio.run(connect(url))
        assert not caught.value.retryable and "nope" not in str(caught.value)


def test_an_audio_feed_whose_redis_goes_away_raises_store_unavailable(private_redis: PrivateRedis) -> None:
    async def main() -> None:
        store = await connect(private_redis.url)
        try:
            async with store.audio("c1:caller") as feed:
                await store.send_audio("c1:caller", b"\x00\x01")
                assert await _frames(feed, 1) == [b"\x00\x01"]
                private_redis.stop()
                with pytest.raises(StoreUnavailable, match="receiving audio") as caught:
                    await _frames(feed, 1)
                assert caught.value.retryable and ":pw@" not in str(caught.value)
        finally:
            await store.close()

    asyncio.run(main())
