"""Prometheus metrics of live calls (the only module that imports prometheus_client), and ``GET /metrics``.

Per-turn latency by stage, in seconds: ``asr`` (caller's speech end → recognised text, including
the VAD's end-of-segment silence), ``wait`` (text → end of turn decided), ``understand``
(normalise, intents, emotion), ``dialog`` (the rest of the turn's handling), ``reply`` (dialog
done → first reply frame sent, i.e. synthesis of the first sentence), ``total`` (speech end →
first reply frame) and ``first_audio`` (speech end → first audio of any kind, the acknowledgement
included).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

STAGES = ("asr", "wait", "understand", "dialog", "reply", "total", "first_audio")
# 25 ms steps to 1 s, 50 ms steps to 2 s: fine enough for a p50/p95 read off the buckets to mean something
_BUCKETS = (
    *(round(0.025 * i, 3) for i in range(1, 41)),
    *(round(1.0 + 0.05 * i, 3) for i in range(1, 21)),
    2.5,
    3.0,
    4.0,
    5.0,
    10.0,
)

TURN_STAGE_SECONDS = Histogram(
    "ivr_turn_stage_seconds", "Per-turn latency of a live call by stage", ["stage"], buckets=_BUCKETS
)
LIVE_CALLS = Counter("ivr_live_calls_total", "Live calls answered", ["wire"])
BARGE_INS = Counter("ivr_barge_ins_total", "Replies cut off by the caller speaking")
DROPPED_FRAMES = Counter("ivr_dropped_frames_total", "Caller audio frames dropped because recognition fell behind")

router = APIRouter()


def observe_turn(stages: Mapping[str, float]) -> None:
    """Record one turn's stage latencies (seconds)."""
    for stage, seconds in stages.items():
        if stage in STAGES:
            TURN_STAGE_SECONDS.labels(stage).observe(seconds)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
