"""Benchmark the cross-server audio relay of a transferred call (``voice.bridge_relay``).

Server A holds the caller's ``Bridge`` (``CallerSide``); the agent's page is on server B
(``PageSide``, its own store connection). Frames of 20 ms at 8 kHz (320 bytes, a sequence number
in the first 4) go both ways at the real pace — the caller's into A's bridge, arriving at the page's
stand-in bridge on B; the agent's into B's, arriving at A's bridge — and each frame's one-way
latency is measured (send → out of the other bridge), with the frames lost or out of order.
Both servers run in this one process, on one event loop: the numbers are the relay's own (the
store's pub/sub round trip and the bridges), without a network between hosts.

Stores: the real Redis (``--redis``, db 15; keys under a prefix of this run's own, deleted at the
end) and, for comparison, ``MemoryStore``. Prints a table and writes ``bench/results/relay.json``.
Run: ``.venv/bin/python bench/relay.py [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from bench.routing import run_facts, summary_ms  # noqa: E402  (reported as the routing benchmark does)
from routing.store import MemoryStore  # noqa: E402
from routing.store_redis import RedisStore  # noqa: E402
from voice.bridge import Bridge  # noqa: E402
from voice.bridge_relay import CallerSide, PageSide  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "relay.json"
REDIS_URL = "redis://127.0.0.1:6379/15"
FRAME_S = 0.02
FRAME_BYTES = 320


def frame(seq: int) -> bytes:
    return struct.pack("<I", seq) + bytes(FRAME_BYTES - 4)


def seq_of(pcm: bytes) -> int:
    return int(struct.unpack("<I", pcm[:4])[0])


async def _direction(send: Any, frames_out: Any, count: int) -> dict[str, Any]:
    """Send ``count`` frames through ``send`` at 20 ms and time each one out of ``frames_out``."""
    sent: dict[int, float] = {}
    got: list[float] = []
    order: list[int] = []

    async def receive() -> None:
        async for pcm in frames_out:
            seq = seq_of(pcm)
            if seq in sent:
                got.append(time.perf_counter() - sent[seq])
                order.append(seq)
            if len(order) >= count:
                return

    reader = asyncio.create_task(receive())
    start = time.perf_counter()
    for seq in range(count):
        await asyncio.sleep(max(0.0, start + seq * FRAME_S - time.perf_counter()))
        sent[seq] = time.perf_counter()
        send(frame(seq))
    try:
        await asyncio.wait_for(reader, 2.0)
    except TimeoutError:
        pass
    reordered = sum(1 for a, b in zip(order, order[1:], strict=False) if b < a)
    return {"latency_ms": summary_ms(got) if got else None, "lost": count - len(got), "out_of_order": reordered}


async def run_store(name: str, make: Any, seconds: float) -> dict[str, Any]:
    a_store, b_store = make(), make()
    call_id = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        now = time.time()
        await a_store.heartbeat("A", now, 3600)
        await a_store.heartbeat("B", now, 3600)
        bridge = Bridge(call_id, "agent-1")
        caller = CallerSide(a_store, bridge)
        caller.start()
        page = PageSide(b_store, call_id, "agent-1", server="B", holder="A")
        opened = time.perf_counter()
        answer = await page.open()
        attach_ms = round((time.perf_counter() - opened) * 1000, 1)
        if answer != "ok":
            raise RuntimeError(f"the page was not attached: {answer}")
        count = int(seconds / FRAME_S)
        to_page = await _direction(bridge.from_caller, page.bridge.caller_audio(), count)
        to_caller = await _direction(lambda pcm: page.bridge.from_agent(pcm, 8000), bridge.agent_audio(), count)
        bridge.close()
        await page.close()
        await caller.stop()
        return {
            "store": name, "frames": count, "attach_ms": attach_ms,
            "caller_to_page": to_page, "agent_to_caller": to_caller,
            "relay_lost": {"caller_side": caller.lost, "page_side": page.lost},
        }  # fmt: skip
    finally:
        if a_store is not b_store:
            await b_store.close()
        await a_store.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench:relay:{uuid.uuid4().hex[:8]}:"
    memory = MemoryStore()
    runs = [await run_store("memory", lambda: memory, args.seconds)]
    try:
        runs.append(await run_store("redis", lambda: RedisStore(args.redis, prefix), args.seconds))
    finally:
        raw = aioredis.from_url(args.redis)
        keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
    return {"runs": runs}


def print_table(runs: list[dict[str, Any]]) -> None:
    print(
        f"{'store':8} {'direction':16} {'frames':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'lost':>5} {'reord':>5}"
    )
    for run in runs:
        for direction in ("caller_to_page", "agent_to_caller"):
            d = run[direction]
            lat = d["latency_ms"] or {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
            print(
                f"{run['store']:8} {direction:16} {run['frames']:>6} {lat['p50']:>8.2f} {lat['p95']:>8.2f} "
                f"{lat['max']:>8.2f} {d['lost']:>5} {d['out_of_order']:>5}"
            )
        print(f"{run['store']:8} {'attach (page)':16} {'':>6} {run['attach_ms']:>8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio each way (default 10 s)")
    parser.add_argument("--redis", default=REDIS_URL, help=f"Redis URL (default {REDIS_URL})")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = asyncio.run(main(args))
    doc = {
        "run": {
            **run_facts(load_before, started),
            "redis": args.redis,
            "audio_s_each_way": args.seconds,
        },
        **result,
    }
    print_table(result["runs"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
