"""Transfers: a caller queued for the best-skilled agent, offered to one agent at a time, accepted,
declined or cancelled, across every server sharing a ``LiveStore``.

INTERFACE DRAFT (issue #10): signatures and semantics fixed for the parts built in parallel; the
implementation replaces every ``NotImplementedError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.shop import Agent
from routing.store import LiveStore, QueuedCall


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a transfer request stands right after ``Dispatcher.request``."""

    status: str  # "offered" (an agent is reserved and rung) | "queued" | "no_agent" (nobody on duty for it)
    position: int | None = None  # 1-based place in the queue when queued
    wait_s: float | None = None  # expected wait when queued (None: no basis for an estimate)
    agent: Agent | None = None  # the agent rung when offered


class Dispatcher:
    """One per server. ``agents`` gives the shop's agents (skills, languages, lines); ``now`` epoch seconds."""

    def __init__(
        self,
        store: LiveStore,
        agents: Callable[[], Sequence[Agent]],
        server: str,
        now: Callable[[], float],
        *,
        ring_s: float = 20.0,  # an offer not accepted within this is "no_answer": the next agent is tried
        widen_after_s: float = 30.0,  # each step of widening waits this long (see routing.agents)
    ) -> None:
        raise NotImplementedError

    async def request(self, entry: QueuedCall, packet: Mapping[str, Any]) -> Placement:
        """Save the call's record (``packet`` = the handoff packet, JSON-able) and queue the caller,
        then run a dispatch pass. ``no_agent``: no agent who could ever take it is signed in
        (all offline) — nothing is queued and the caller should hear the callback offer."""
        raise NotImplementedError

    async def dispatch(self) -> list[tuple[str, str]]:
        """One pass over the queue, first to be served first: each caller whose server is alive is
        offered to the best free agent (``routing.agents``, widening with the wait) whose line is
        reserved atomically; expired offers become ``no_answer`` declines. Returns (call, agent) offered."""
        raise NotImplementedError

    async def accept(self, agent_id: str, call_id: str) -> bool:
        """The agent takes the call offered to them (False: not theirs, or no longer offered)."""
        raise NotImplementedError

    async def decline(self, agent_id: str, call_id: str, why: str = "declined") -> None:
        """The agent turns the offer down (or it rang out: ``why="no_answer"``): line released, the
        caller queued again at their old place, this agent not offered it again."""
        raise NotImplementedError

    async def cancel(self, call_id: str, why: str) -> None:
        """The caller hung up or went back to the bot: out of the queue, a ringing agent's offer withdrawn."""
        raise NotImplementedError

    async def finish(self, agent_id: str, call_id: str) -> None:
        """The agent's conversation is over: their line is released and they go to wrap-up."""
        raise NotImplementedError

    async def estimate(self, call_id: str) -> tuple[int | None, float | None]:
        """The caller's place and expected wait in seconds."""
        raise NotImplementedError
