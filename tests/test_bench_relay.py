"""The relay benchmark's own parts: its numbered frames, and one short run on the in-process store that
must carry every frame both ways, in order (its times are the benchmark's business, not checked here)."""

from __future__ import annotations

import asyncio

from bench.relay import FRAME_BYTES, frame, run_store, seq_of
from routing.store import MemoryStore


def test_a_frame_carries_its_sequence_number() -> None:
    assert len(frame(7)) == FRAME_BYTES and seq_of(frame(7)) == 7 and seq_of(frame(2**31)) == 2**31


def test_a_short_run_carries_every_frame_both_ways_in_order() -> None:
    store = MemoryStore()
    run = asyncio.run(run_store("memory", lambda: store, 0.4))
    assert run["frames"] == 20
    for direction in ("caller_to_page", "agent_to_caller"):
        assert run[direction]["lost"] == 0 and run[direction]["out_of_order"] == 0
        assert run[direction]["latency_ms"]["n"] == 20
