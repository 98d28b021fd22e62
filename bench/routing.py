"""Benchmark transfer routing: ``routing.dispatch.Dispatcher`` on the real Redis (``RedisStore``) and,
for comparison, in-process (``MemoryStore``).

Agents and callers are generated here from a fixed seed (skills and levels, dialects, lines per
agent, caller skills, priorities, VIP and complaint flags; nothing from any shop), and each call
carries a handoff packet of the usual size (customer, orders, intents, summary, transcript: ~2 KB).
Measured:

1. ``request`` → ``offered``: one caller at a time with 5, 50 and 200 agents signed in and free
   (each offer is cancelled, untimed, so the agents stay free);
2. one dispatch pass (``Dispatcher.dispatch``: what every server runs each second) with every line
   of 50 and of 200 agents taken by an accepted call and 0, 20 or 200 callers queued (waiting
   0-150 s, so every widening step is in the queue; nobody can be offered);
3. the reservation race: two dispatchers ("servers", each with its own ``RedisStore`` connection
   pool) each get ``--race-calls`` requests at once for 10 agents; checked afterwards: nobody holds
   more lines than ``max_concurrent``, every held line is the open offer of its call to that agent,
   and every caller is either offered (once) or queued (once) — none lost; repeated ``--rounds``
   times;
4. ``accept`` and ``finish`` after an offer (50 agents), and the whole request → accept → finish.

Besides the times, each operation's calls to the store are counted (each is one Redis round trip:
a script or a pipeline), which is what grows with agents and queue.

Redis: ``--redis`` (db 15 by default), every key under a key prefix of this run's own, deleted at
the end (never FLUSHDB: the db is shared). Prints a table and writes ``bench/results/routing.json``.
Run: ``.venv/bin/python bench/routing.py [--samples 100] [--passes 20] [--rounds 5] [--race-calls 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from core.shop import Agent  # noqa: E402
from routing.dispatch import RECORD_TTL_S, Dispatcher  # noqa: E402
from routing.store import LiveStore, MemoryStore, Presence, QueuedCall  # noqa: E402
from routing.store_redis import RedisStore  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "routing.json"
REDIS_URL = "redis://127.0.0.1:6379/15"
SEED = 20261202

SKILLS = ("logistics", "aftersale", "promotion", "complaint", "vip", "sales")  # besides "general"
CALLER_SKILLS = {  # how often callers ask for each desk
    "logistics": 30, "aftersale": 25, "general": 15, "complaint": 10, "promotion": 8, "sales": 7, "vip": 5,
}  # fmt: skip
DIALECTS = ("粤语", "四川话", "上海话", "闽南语", "河南话", "东北话")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


# -- pure helpers (tests/test_bench_routing.py) ---------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between the closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/max (and n) of durations in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    p50, p95 = percentile(ms, 50), percentile(ms, 95)
    return {"n": len(ms), "p50": round(p50, 2), "p95": round(p95, 2), "max": round(max(ms), 2)}


def run_facts(load_before: tuple[float, float, float], started: float) -> dict[str, Any]:
    """When and where a benchmark ran: date, machine, Python, load average before and after, seconds taken."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "load": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
            "note": "shared machine, other work running: load average 1/5/15 min",
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def make_agents(n: int, rng: random.Random) -> list[Agent]:
    """``n`` agents: general (most of them, always the first) plus 1-3 other desks, levels 1-5;
    Mandarin and sometimes a dialect; one line mostly, some two or three."""
    agents = []
    for i in range(n):
        skills: dict[str, int] = {}
        if i == 0 or rng.random() < 0.85:
            skills["general"] = rng.randint(1, 5)
        for skill in rng.sample(SKILLS, rng.randint(1, 3)):
            skills[skill] = rng.choices((1, 2, 3, 4, 5), weights=(1, 2, 4, 3, 2))[0]
        languages = ("普通话", *rng.sample(DIALECTS, rng.choices((0, 1, 2), weights=(5, 4, 1))[0]))
        lines = rng.choices((1, 2, 3), weights=(7, 2, 1))[0]
        agents.append(Agent(f"B{i + 1:03d}", rng.choice(SURNAMES) + rng.choice(GIVEN), skills, languages, lines))
    return agents


def make_caller(call_id: str, rng: random.Random, now: float, server: str, waited_s: float = 0.0) -> QueuedCall:
    """A transfer request: the desk, priority, dialect, VIP and complaint flags drawn from ``rng``."""
    skill = rng.choices(list(CALLER_SKILLS), weights=list(CALLER_SKILLS.values()))[0]
    complaint = skill == "complaint" or rng.random() < 0.05
    vip = skill == "vip" or rng.random() < 0.05
    priority = 1 if complaint or vip else rng.choices((2, 3, 4, 5), weights=(2, 5, 2, 1))[0]
    dialect = rng.choice(DIALECTS) if rng.random() < 0.3 else None
    return QueuedCall(call_id, skill, priority, now - waited_s, server, dialect, vip, complaint)


def make_packet(entry: QueuedCall, rng: random.Random) -> dict[str, Any]:
    """A handoff packet the size of a real one (~2 KB of JSON): customer, orders, intents, summary, transcript."""
    name = rng.choice(SURNAMES) + rng.choice(GIVEN)
    orders = [
        {
            "id": f"SO{rng.randint(10**9, 10**10 - 1)}",
            "status": rng.choice(("已发货", "待发货", "已签收", "退款中")),
            "total": f"{rng.randint(20, 3000)}.00元",
            "items": [f"商品{rng.randint(1, 999)}" for _ in range(rng.randint(1, 3))],
        }
        for _ in range(rng.randint(1, 4))
    ]
    said = "我想问一下我的订单什么时候能到，已经等了好几天了"
    transcript = [
        {"speaker": "caller" if i % 2 == 0 else "bot", "text": said, "at": i * 4.0} for i in range(rng.randint(6, 14))
    ]
    return {
        "call_id": entry.call_id, "caller": f"+86138{rng.randint(10**7, 10**8 - 1)}", "channel": "sip",
        "skill": entry.skill, "priority": entry.priority, "reason": "caller asked for a person",
        "customer": {"id": f"C{rng.randint(1, 99999):05d}", "name": name, "vip_level": int(entry.vip) * 3,
                     "dialect": entry.dialect, "history": []},
        "orders": orders,
        "intents": [{"name": "query_logistics", "confidence": 0.91, "slots": {"order_id": orders[0]["id"]}}],
        "emotion_trend": ["neutral", "neutral", "angry" if entry.complaint else "neutral"],
        "summary": ["客户询问订单物流", "已告知预计送达时间", "客户要求转人工"],
        "transcript": transcript, "kb": [], "audio_url": None,
    }  # fmt: skip


# -- the store, counted ----------------------------------------------------------------------------


class Counting:
    """A ``LiveStore`` that counts the calls made to the one it wraps (one Redis round trip each)."""

    def __init__(self, inner: LiveStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted

    def total(self) -> int:
        return sum(self.calls.values())


@dataclass
class Backend:
    name: str  # "memory" | "redis"
    url: str
    run_prefix: str  # every Redis key of this run starts with it
    n: int = 0

    def store(self, space: str) -> LiveStore:
        """A fresh store: in memory, or on Redis under a key space of its own (``space``)."""
        if self.name == "memory":
            return MemoryStore()
        return RedisStore(self.url, f"{self.run_prefix}{space}:")


@asynccontextmanager
async def dispatcher(
    backend: Backend, space: str, agents: list[Agent], server: str = "bench-1", store: LiveStore | None = None
) -> AsyncIterator[tuple[Dispatcher, Counting]]:
    inner = store or backend.store(space)
    counting = Counting(inner)
    try:
        yield Dispatcher(cast(LiveStore, counting), lambda: agents, server, time.time), counting
    finally:
        await inner.close()


async def sign_in(store: LiveStore, agents: Sequence[Agent], server: str) -> None:
    for agent in agents:
        await store.set_presence(agent.id, Presence.AVAILABLE, time.time(), server)


async def timed(call: Awaitable[Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call
    return time.perf_counter() - started, result


# -- 1. request → offered --------------------------------------------------------------------------


async def bench_request(backend: Backend, n_agents: int, samples: int) -> dict[str, Any]:
    rng = random.Random(f"{SEED}-request-{n_agents}")
    agents = make_agents(n_agents, rng)
    async with dispatcher(backend, f"req{n_agents}", agents) as (d, counting):
        await sign_in(d.store, agents, d.server)
        times: list[float] = []
        statuses: Counter[str] = Counter()
        store_calls = 0
        for i in range(samples + 10):  # the first 10 warm up (scripts loaded, connections opened)
            entry = make_caller(f"req{n_agents}-{i}", rng, time.time(), d.server)
            packet = make_packet(entry, rng)
            before = counting.total()
            elapsed, placement = await timed(d.request(entry, packet))
            if i >= 10:
                times.append(elapsed)
                statuses[placement.status] += 1
                store_calls += counting.total() - before
            await d.cancel(entry.call_id, "bench")  # the agent is free again
    return {
        "agents": n_agents, "ms": summary_ms(times), "statuses": dict(statuses),
        "store_calls_per_request": round(store_calls / samples, 1),
    }  # fmt: skip


# -- 2. a dispatch pass, every line taken ----------------------------------------------------------


async def bench_pass(backend: Backend, n_agents: int, n_queued: int, passes: int) -> dict[str, Any]:
    rng = random.Random(f"{SEED}-pass-{n_agents}-{n_queued}")
    agents = make_agents(n_agents, rng)
    async with dispatcher(backend, f"pass{n_agents}-{n_queued}", agents) as (d, counting):
        store, now = d.store, time.time()
        await sign_in(store, agents, d.server)
        lines = 0
        for agent in agents:  # every line: an accepted transfer, as the dispatcher leaves it
            for k in range(agent.max_concurrent):
                call_id = f"talk-{agent.id}-{k}"
                entry = make_caller(call_id, rng, now - 200, d.server)
                assert await store.reserve(agent.id, call_id, agent.max_concurrent, now)
                record = {
                    **make_packet(entry, rng), "status": "accepted", "agent": agent.id, "accepted_at": now - 60,
                    "offer": None, "server": d.server, "queued_at": entry.enqueued_at, "entry": entry.to_json(),
                }  # fmt: skip
                await store.save_call(call_id, record, RECORD_TTL_S)
                lines += 1
        for i in range(n_queued):
            entry = make_caller(f"wait-{i}", rng, now, d.server, waited_s=rng.uniform(0, 150))
            record = {**make_packet(entry, rng), "status": "queued", "entry": entry.to_json()}
            await store.save_call(entry.call_id, record, RECORD_TTL_S)
            await store.enqueue(entry)
        times: list[float] = []
        offered = 0
        counting.calls.clear()
        for i in range(passes + 3):
            elapsed, made = await timed(d.dispatch())
            offered += len(made)
            if i == 2:
                counting.calls.clear()
            if i >= 3:
                times.append(elapsed)
        assert offered == 0, f"a pass offered {offered} calls with every line taken"
        assert len(await store.queue()) == n_queued
    return {
        "agents": n_agents, "lines_taken": lines, "queued": n_queued, "ms": summary_ms(times),
        "store_calls_per_pass": round(counting.total() / passes, 1),
        "load_call_per_pass": round(counting.calls["load_call"] / passes, 1),
        "call_fields_per_pass": round(counting.calls["call_fields"] / passes, 1),
    }  # fmt: skip


# -- 3. the reservation race -----------------------------------------------------------------------


async def race_round(backend: Backend, round_no: int, calls_each: int, n_agents: int) -> dict[str, Any]:
    rng = random.Random(f"{SEED}-race-{round_no}")
    agents = make_agents(n_agents, rng)
    limits = {a.id: a.max_concurrent for a in agents}
    space = f"race{round_no}"
    async with (
        dispatcher(backend, space, agents, "bench-A") as (a, count_a),
        dispatcher(backend, space, agents, "bench-B") as (b, count_b),
    ):
        await sign_in(a.store, agents, a.server)
        now = time.time()
        requests = []
        for i in range(calls_each):
            for d in (a, b):
                entry = make_caller(f"r{round_no}-{d.server}-{i}", rng, now, d.server)
                requests.append((d, entry, make_packet(entry, rng)))
        rng.shuffle(requests)
        started = time.perf_counter()
        placements = await asyncio.gather(*(d.request(e, p) for d, e, p in requests))
        elapsed = time.perf_counter() - started
        store = a.store  # what both servers see
        states = await store.agents()
        queue = [e.call_id for e in await store.queue()]
        records = {e.call_id: await store.load_call(e.call_id) for _, e, _ in requests}
    held = Counter({agent_id: len(state.calls) for agent_id, state in states.items()})
    over = {agent_id: n for agent_id, n in held.items() if n > limits[agent_id]}
    offers = {c: r["offer"]["agent"] for c, r in records.items() if r and r.get("status") == "offered"}
    queued = {c for c, r in records.items() if r and r.get("status") == "queued"}
    lines = {(agent_id, c) for agent_id, state in states.items() for c in state.calls}
    problems = []
    if over:
        problems.append(f"agents over max_concurrent: {over}")
    if lines != {(agent_id, c) for c, agent_id in offers.items()}:
        problems.append("held lines differ from open offers")
    if len(queue) != len(set(queue)) or set(queue) != queued:
        problems.append("queue differs from the callers recorded as queued")
    lost = [c for c, r in records.items() if not r or r.get("status") not in ("offered", "queued")]
    if lost:
        problems.append(f"callers neither offered nor queued: {lost[:5]}")
    statuses = Counter(p.status for p in placements)
    return {
        "round": round_no, "requests": len(requests), "place_all_ms": round(elapsed * 1000, 1),
        "offered": len(offers), "queued": len(queued), "lost": len(lost),
        "offered_in_own_request": statuses["offered"], "no_agent": statuses["no_agent"],
        "lines": sum(limits.values()), "lines_held": sum(held.values()),
        "max_over_limit": max((held[agent_id] - limits[agent_id] for agent_id in limits), default=0),
        "undone_reservations": count_a.calls["release"] + count_b.calls["release"],  # no cancel/decline ran
        "problems": problems,
    }  # fmt: skip


# -- 4. accept → finish ----------------------------------------------------------------------------


async def bench_accept_finish(backend: Backend, n_agents: int, samples: int) -> dict[str, Any]:
    rng = random.Random(f"{SEED}-accept-{n_agents}")
    agents = make_agents(n_agents, rng)
    async with dispatcher(backend, f"accept{n_agents}", agents) as (d, counting):
        await sign_in(d.store, agents, d.server)
        accept_s: list[float] = []
        finish_s: list[float] = []
        round_trip_s: list[float] = []
        calls = Counter[str]()
        for i in range(samples + 10):
            entry = make_caller(f"acc-{i}", rng, time.time(), d.server)
            t_request, placement = await timed(d.request(entry, make_packet(entry, rng)))
            assert placement.status == "offered" and placement.agent is not None, placement
            agent_id = placement.agent.id
            before = counting.total()
            t_accept, accepted = await timed(d.accept(agent_id, entry.call_id))
            assert accepted
            middle = counting.total()
            t_finish, _ = await timed(d.finish(agent_id, entry.call_id))
            if i >= 10:
                accept_s.append(t_accept)
                finish_s.append(t_finish)
                round_trip_s.append(t_request + t_accept + t_finish)
                calls["accept"] += middle - before
                calls["finish"] += counting.total() - middle
            record = await d.store.load_call(entry.call_id)
            assert record is not None and record["status"] == "done", record
            await d.store.set_presence(agent_id, Presence.AVAILABLE, time.time())  # wrap-up over
    return {
        "agents": n_agents, "accept_ms": summary_ms(accept_s), "finish_ms": summary_ms(finish_s),
        "request_accept_finish_ms": summary_ms(round_trip_s),
        "store_calls": {k: round(v / samples, 1) for k, v in calls.items()},
    }  # fmt: skip


# -- the run -------------------------------------------------------------------------------------------


async def delete_keys(url: str, prefix: str) -> int:
    """Delete this run's keys (never FLUSHDB); returns how many are left after."""
    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        return len([key async for key in client.scan_iter(match=prefix + "*", count=1000)])
    finally:
        await client.aclose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench-routing-{uuid.uuid4().hex[:12]}:"
    out: dict[str, Any] = {"request": [], "dispatch_pass": [], "race": [], "accept_finish": []}
    try:
        for name in ("memory", "redis"):
            backend = Backend(name, args.redis, prefix)
            for n in (5, 50, 200):
                row = await bench_request(backend, n, args.samples)
                out["request"].append({"store": name, **row})
                print(f"request {name:6} {n:3} agents: {row['ms']}", flush=True)
            for n in (50, 200):
                for q in (0, 20, 200):
                    row = await bench_pass(backend, n, q, args.passes)
                    out["dispatch_pass"].append({"store": name, **row})
                    print(f"pass    {name:6} {n:3} agents {q:3} queued: {row['ms']}", flush=True)
            row = await bench_accept_finish(backend, 50, args.samples)
            out["accept_finish"].append({"store": name, **row})
            print(f"accept/finish {name}: {row['accept_ms']} / {row['finish_ms']}", flush=True)
        redis = Backend("redis", args.redis, prefix)
        for r in range(args.rounds):
            row = await race_round(redis, r, args.race_calls, 10)
            out["race"].append(row)
            print(f"race round {r}: {row}", flush=True)
    finally:
        out["redis_keys_left"] = await delete_keys(args.redis, prefix)
    out["redis_prefix"] = prefix
    return out


def print_table(out: dict[str, Any]) -> None:
    def ms(s: dict[str, float]) -> str:
        return f"{s['p50']:8.2f} {s['p95']:8.2f}"

    print(f"\n{'measure':62} {'store':6} {'p50 ms':>8} {'p95 ms':>8} {'store calls':>11}")
    for r in out["request"]:
        what = f"request → offered, {r['agents']} agents"
        print(f"{what:62} {r['store']:6} {ms(r['ms'])} {r['store_calls_per_request']:11}")
    for r in out["dispatch_pass"]:
        what = f"dispatch pass, {r['agents']} agents busy ({r['lines_taken']} lines), {r['queued']} queued"
        print(f"{what:62} {r['store']:6} {ms(r['ms'])} {r['store_calls_per_pass']:11}")
    for r in out["accept_finish"]:
        labels = (
            ("accept_ms", "accept"),
            ("finish_ms", "finish"),
            ("request_accept_finish_ms", "request+accept+finish"),
        )
        for key, label in labels:
            calls = r["store_calls"].get(label, "")
            print(f"{label + ', ' + str(r['agents']) + ' agents':62} {r['store']:6} {ms(r[key])} {calls:>11}")
    race = out["race"]
    if not race:
        return
    print(f"\nreservation race on redis: 2 servers, {race[0]['requests']} requests at once, 10 agents")
    print(f"{'round':>5} {'requests':>8} {'place all ms':>12} {'offered':>7} {'queued':>6} {'lost':>4} "
          f"{'lines':>9} {'over max':>8} {'undone':>6}  problems")  # fmt: skip
    for r in race:
        lines, problems = f"{r['lines_held']}/{r['lines']}", "; ".join(r["problems"]) or "none"
        print(f"{r['round']:5} {r['requests']:8} {r['place_all_ms']:12} {r['offered']:7} {r['queued']:6} {r['lost']:4} "
              f"{lines:>9} {r['max_over_limit']:8} {r['undone_reservations']:6}  {problems}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=REDIS_URL, help="Redis URL (its keys: a prefix of this run's own)")
    parser.add_argument(
        "--samples", type=int, default=100, help="requests timed per agent count (accept/finish: as many)"
    )
    parser.add_argument("--passes", type=int, default=20, help="dispatch passes timed per row")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the reservation race")
    parser.add_argument("--race-calls", type=int, default=50, help="concurrent requests per server in the race")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    out = asyncio.run(run(args))
    print_table(out)
    doc = {
        "run": {
            **run_facts(load_before, started),
            "redis": args.redis,
            "seed": SEED,
            "samples": args.samples,
            "passes": args.passes,
        },
        **out,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nload average before {doc['run']['load']['before']}, after {doc['run']['load']['after']} "
          f"on {os.cpu_count()} cores; took {doc['run']['seconds']} s; Redis keys left: {out['redis_keys_left']}; "
          f"wrote {args.output}")  # fmt: skip


if __name__ == "__main__":
    main()
