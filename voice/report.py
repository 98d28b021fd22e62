"""Calls and understandings as JSON: one shape for ``ivr call``, ``ivr understand`` and the HTTP API."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from core.types import Emotion, Intent, Understanding

if TYPE_CHECKING:
    from voice.session import CallOutcome, CallSession, TurnResult


def intents_json(intents: tuple[Intent, ...]) -> list[dict[str, Any]]:
    return [{"name": i.name, "confidence": i.confidence, "slots": dict(i.slots)} for i in intents]


def emotion_json(e: Emotion) -> dict[str, Any]:
    return {"label": e.label.value, "score": e.score, "cues": list(e.cues)}


def understanding_json(u: Understanding) -> dict[str, Any]:
    """``{"text", "normalized", "intents": [...], "emotion": {...}}``."""
    return {
        "text": u.text,
        "normalized": u.normalized,
        "intents": intents_json(u.intents),
        "emotion": emotion_json(u.emotion),
    }


def turn_json(r: TurnResult) -> dict[str, Any]:
    u = r.understanding
    return {
        "heard": r.heard,
        "intents": intents_json(u.intents),
        "emotion": emotion_json(u.emotion),
        "prosody": {k: round(v, 3) for k, v in dataclasses.asdict(r.prosody).items()} if r.prosody else None,
        "reply": r.reply,
        "latency_ms": dict(r.latency_ms),
    }


def outcome_json(o: CallOutcome) -> dict[str, Any]:
    return {
        "type": o.type,
        "skill": o.skill,
        "agent": {"id": o.agent.id, "name": o.agent.name} if o.agent else None,
        "priority": o.priority,
        "summary": list(o.summary),
        "reason": o.reason,
    }


def call_json(session: CallSession, greeting: str, results: list[TurnResult], outcome: CallOutcome) -> dict[str, Any]:
    customer = session.customer
    return {
        "call_id": session.call_id,
        "customer": {"id": customer.id, "name": customer.name} if customer else None,
        "greeting": greeting,
        "turns": [turn_json(r) for r in results],
        "outcome": outcome_json(outcome),
    }
