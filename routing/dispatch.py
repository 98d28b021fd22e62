"""Transfers: a caller queued for the best-skilled agent, offered to one agent at a time, accepted,
declined or cancelled, across every server sharing a ``LiveStore``.

One ``Dispatcher`` runs per server; all of them work on the same queue. A dispatch pass
(``dispatch``, every ``interval_s`` in ``run`` and after each request or decline) walks the queue
first-to-be-served first and, for each caller whose server is alive (``LiveStore.servers_alive``,
fed by each dispatcher's heartbeat), offers the call to the first agent of
``routing.agents.candidates`` whose line ``LiveStore.reserve`` gives it (atomic across servers),
then takes the caller out of the queue (``dequeue``: exactly one server wins; the loser gives the
line back). Callers of a dead server are left queued, never offered: the agents' desktop marks
them, and once the server has been silent a while they become callbacks (``voice.agent_callbacks``).

The call's record (``save_call``) is where it stands, under ``status``:
``queued`` → ``offered`` (``offer`` = {agent, until, by}: the agent rung, until when, by which
server) → ``accepted`` (``agent``, ``accepted_at``) → ``done`` (``finished_at``); or ``cancelled``
(``why``; and the flag ``cancelled``, set once and never cleared, so an offer made in the same
instant is undone); or ``no_agent`` when nobody on duty could take it (nothing queued). ``entry``
keeps the queue entry (JSON) so a declined call goes back with its first ``enqueued_at`` and who
has tried.

Open offers are found again through the agents' reserved lines (``AgentState.calls``) and the call
records, so any server sees every offer. The agent may accept or decline while ``now < until``; the
offer rings out ``ring_grace_s`` after ``until``, when the server that made it turns it into a
``no_answer`` decline (any server does when that one is dead). In between, nothing happens to it,
so an accept or decline at the last moment on the agent's server never meets the ring-out of
another. Within a server every change runs under one lock. Across servers, ``accept`` and ``cancel``
change the status by compare-and-set (``LiveStore.swap_status``): of an accept and a hang-up at the
same moment on two servers exactly one wins, and a cancel that lost looks again (an accepted call's
conversation is then ended as ``finish`` does). What remains racy is healed: a decline re-reads
the record just before it writes; a caller found in the queue whose record is no longer ``queued``
is dropped from it instead of being offered twice; and a line held for a transfer call that is
neither ringing nor talking to that agent (a server stopped between reserve and ring, a decline
racing a cancel) is given back after ``STRAY_AFTER_S`` (agent stream
``cancel`` {why: "withdrawn"}). Lines held for calls without a dispatcher record are left alone.

Wait estimate: position × the mean time from queued (first ``enqueued_at``) to accepted over the
last ``WAIT_HISTORY`` accepted calls of every server, kept in the store as the record ``WAITS_KEY``;
None before any call was accepted. Two servers accepting at the same instant may lose one sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.errors import IvrError
from core.shop import Agent
from routing.agents import candidates, reachable
from routing.store import AgentState, LiveStore, Presence, QueuedCall

log = logging.getLogger(__name__)

RECORD_TTL_S = 2 * 3600.0  # a call's record outlives any transfer
WAITS_KEY = "routing:waits"  # the shared record of recent waits (queued → accepted, seconds)
WAITS_TTL_S = 30 * 86400.0
WAIT_HISTORY = 20
# where a call stands: the fields of its record read to decide (never the handoff packet, ~2 KB)
_STATE_FIELDS = ("status", "offer", "agent", "entry", "cancelled", "queued_at")
CANCEL_TRIES = 5  # a cancel that lost its status swap this often just flags the call (see ``cancel``)
STRAY_AFTER_S = 5.0  # a transfer line held for a call that is not with that agent is given back after this


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
        heartbeat_s: float = 5.0,  # this server counts as alive this long after each heartbeat
        ring_grace_s: float = 1.0,  # the ring-out waits this long past ``until`` (see the module docstring)
    ) -> None:
        self.store = store
        self.agents = agents
        self.server = server
        self.now = now
        self.ring_s = ring_s
        self.widen_after_s = widen_after_s
        self.heartbeat_s = heartbeat_s
        self.ring_grace_s = ring_grace_s
        self._orphans: dict[tuple[str, str], float] = {}  # (agent, call) -> when first seen holding a stray line
        self._lock = asyncio.Lock()

    async def request(self, entry: QueuedCall, packet: Mapping[str, Any]) -> Placement:
        """Save the call's record (``packet`` = the handoff packet, JSON-able) and queue the caller,
        then run a dispatch pass. ``no_agent``: no agent who could ever take it is signed in
        (all offline) — nothing is queued and the caller should hear the callback offer."""
        async with self._lock:
            now = self.now()
            states = dict(await self.store.agents())  # read once: the reachable check, ring-out, ranking
            record = {
                **packet, "status": "queued", "skill": entry.skill, "priority": entry.priority,
                "server": entry.server, "queued_at": entry.enqueued_at, "entry": entry.to_json(),
            }  # fmt: skip
            if not reachable(entry, self.agents(), states):
                await self.store.save_call(entry.call_id, {**record, "status": "no_agent"}, RECORD_TTL_S)
                return Placement("no_agent")
            await self.store.save_call(entry.call_id, record, RECORD_TTL_S)
            position = await self.store.enqueue(entry)
            await self.store.publish(f"call:{entry.call_id}", {"type": "queued", "position": position})
            for call_id, agent_id in await self._dispatch(now, states):
                if call_id == entry.call_id:
                    return Placement("offered", agent=self._agent(agent_id))
            position_now, wait = await self._estimate(entry.call_id)
            return Placement("queued", position_now, wait)

    async def dispatch(self) -> list[tuple[str, str]]:
        """One pass over the queue, first to be served first: each caller whose server is alive is
        offered to the best free agent (``routing.agents``, widening with the wait) whose line is
        reserved atomically; expired offers become ``no_answer`` declines. Returns (call, agent) offered."""
        async with self._lock:
            return await self._dispatch(self.now())

    async def accept(self, agent_id: str, call_id: str) -> bool:
        """The agent takes the call offered to them (False: not theirs, or no longer offered)."""
        async with self._lock:
            now = self.now()
            record = await self._where(call_id)
            offer = _offer(record, agent_id)
            if record is None or offer is None or record.get("cancelled") or now >= float(offer["until"]):
                return False
            state = await self.store.agent(agent_id)
            changes = {"status": "accepted", "agent": agent_id, "accepted_at": now}
            if not await self.store.swap_status(call_id, ("offered",), changes):
                return False  # cancelled meanwhile (the caller hung up; another server)
            await self.store.publish(f"call:{call_id}", {"type": "accepted", "agent": agent_id, "server": state.server})
            await self._note_wait(now - float(record.get("queued_at", now)))
            return True

    async def decline(self, agent_id: str, call_id: str, why: str = "declined") -> None:
        """The agent turns the offer down (or it rang out: ``why="no_answer"``): line released, the
        caller queued again at their old place, this agent not offered it again."""
        async with self._lock:
            now = self.now()
            offer = _offer(await self._where(call_id), agent_id)
            if offer is None:
                return  # not ringing this agent (already accepted, declined, rung out or cancelled)
            until = float(offer["until"])
            if until <= now < until + self.ring_grace_s:
                return  # the ring-out's moment: it declines the call as no_answer
            if await self._decline(agent_id, call_id, why, now):
                await self._dispatch(now)

    async def unreached(self, agent_id: str, call_id: str, why: str = "unreached") -> None:
        """The agent accepted but could not be connected (their phone did not answer, their page's
        audio never came): line released, the caller queued again at their old place, not offered to
        this agent again, and their desktop told the call is gone."""
        async with self._lock:
            now = self.now()
            record = await self.store.load_call(call_id)
            if record is None or record.get("status") != "accepted" or record.get("agent") != agent_id:
                return
            entry = QueuedCall.from_json(str(record["entry"]))
            if agent_id not in entry.tried:
                entry = replace(entry, tried=(*entry.tried, agent_id))
            await self.store.release(agent_id, call_id, now)
            changes = {"status": "queued", "agent": None, "offer": None, "entry": entry.to_json()}
            await self.store.update_call(call_id, changes)
            await self.store.enqueue(entry)
            await self._withdraw(agent_id, call_id, why)
            await self.store.publish(f"call:{call_id}", {"type": "declined", "agent": agent_id, "why": why})
            await self._dispatch(now)

    async def cancel(self, call_id: str, why: str) -> None:
        """The caller hung up or went back to the bot: out of the queue, a ringing agent's offer withdrawn.

        On a call an agent already accepted it ends their conversation as ``finish`` does (status
        ``done``) and tells their desktop (agent stream ``cancel``)."""
        async with self._lock:
            now = self.now()
            for _ in range(CANCEL_TRIES):
                await self.store.dequeue(call_id)  # again on each try: a decline elsewhere may have queued it
                record = await self._where(call_id)
                status = record.get("status") if record else None
                if record is None or status in ("cancelled", "done", "no_agent"):
                    return
                if status == "accepted":
                    agent_id = str(record["agent"])
                    await self._withdraw(agent_id, call_id, why)
                    await self._finish(agent_id, call_id, now, why)
                    return
                changes = {"status": "cancelled", "cancelled": True, "why": why, "offer": None}
                if not isinstance(status, str):  # not a dispatcher record: marked all the same
                    await self.store.update_call(call_id, changes)
                elif not await self.store.swap_status(call_id, (status,), changes):
                    continue  # it moved meanwhile (offered, accepted, declined on another server): look again
                offer = record.get("offer")
                if status == "offered" and isinstance(offer, Mapping):
                    agent_id = str(offer["agent"])
                    await self.store.release(agent_id, call_id, now)
                    await self._withdraw(agent_id, call_id, why)
                await self.store.publish(f"call:{call_id}", {"type": "cancelled", "why": why})
                return
            # still moving after that many looks: flag it (an offer being made sees the flag and is undone)
            log.warning("a cancel kept losing to other servers", extra={"call_id": call_id})
            await self.store.update_call(call_id, {"cancelled": True, "why": why})

    async def finish(self, agent_id: str, call_id: str) -> None:
        """The agent's conversation is over: their line is released and they go to wrap-up."""
        async with self._lock:
            await self._finish(agent_id, call_id, self.now(), None)

    async def estimate(self, call_id: str) -> tuple[int | None, float | None]:
        """The caller's place and expected wait in seconds (position × mean recent wait; see the module)."""
        return await self._estimate(call_id)

    async def run(self, interval_s: float = 1.0) -> None:
        """Heartbeat and dispatch every ``interval_s`` until cancelled; a failed pass is logged and retried."""
        while True:
            try:
                await self.dispatch()
            except IvrError as err:  # the store unreachable (retryable) or a bad record: next pass
                log.warning("dispatch pass failed: %s (retryable=%s)", type(err).__name__, err.retryable)
            except Exception:  # a bug must not stop every transfer on this server
                log.exception("dispatch pass failed")
            await asyncio.sleep(interval_s)

    # -- inside the lock ---------------------------------------------------------------------------

    async def _where(self, call_id: str) -> Mapping[str, Any] | None:
        """Where the call stands: its record's ``_STATE_FIELDS`` (None: no record)."""
        return (await self.store.call_fields([call_id], _STATE_FIELDS)).get(call_id)

    async def _heartbeat(self, now: float) -> None:
        await self.store.heartbeat(self.server, now, self.heartbeat_s)

    async def _dispatch(self, now: float, states: dict[str, AgentState] | None = None) -> list[tuple[str, str]]:
        """``states``: the agents' states as just read (read here when None); kept up to date with
        this pass's own changes, so each agent's state is read from the store once per pass."""
        await self._heartbeat(now)
        alive = await self.store.servers_alive(now)
        if states is None:
            states = dict(await self.store.agents())
        await self._ring_out(now, alive, states)
        shop = list(self.agents())
        offered: list[tuple[str, str]] = []
        for entry in await self.store.queue():
            if entry.server not in alive:
                continue  # a dead server's caller: left queued as a callback
            agent_id = await self._offer_one(entry, shop, states, now)
            if agent_id is not None:
                offered.append((entry.call_id, agent_id))
        return offered

    async def _offer_one(
        self, entry: QueuedCall, shop: list[Agent], states: dict[str, AgentState], now: float
    ) -> str | None:
        """Reserve the first candidate that can be reserved, take the caller out of the queue, ring."""
        for candidate in candidates(entry, shop, states, now, self.widen_after_s):
            agent_id, call_id = candidate.agent.id, entry.call_id
            won = await self.store.reserve(agent_id, call_id, candidate.agent.max_concurrent, now)
            if not won:
                states[agent_id] = await self.store.agent(agent_id)  # changed meanwhile (another server)
                continue  # taken meanwhile: the next one
            states[agent_id] = _reserved(states[agent_id], call_id, candidate.agent.max_concurrent, now)
            taken = await self.store.dequeue(call_id)
            record = await self._where(call_id) if taken is not None else None
            if taken is None or record is None or record.get("status") != "queued":
                # another server took the caller, or the call ended meanwhile: drop it, free the line
                states[agent_id] = await self.store.release(agent_id, call_id, now)
                return None
            offer = {"agent": agent_id, "until": now + self.ring_s, "by": self.server}
            merged = await self.store.update_call(
                call_id, {"status": "offered", "offer": offer, "entry": taken.to_json()}
            )
            if merged is None or merged.get("cancelled"):  # the caller left while we reserved: undo
                await self.store.update_call(call_id, {"status": "cancelled", "offer": None})
                states[agent_id] = await self.store.release(agent_id, call_id, now)
                return None
            await self.store.publish(f"agent:{agent_id}", {"type": "offer", "call_id": call_id})
            await self.store.publish(f"call:{call_id}", {"type": "offered", "agent": agent_id})
            log.info("transfer offered", extra={"call_id": call_id, "agent": agent_id, "step": candidate.step})
            return agent_id
        return None

    async def _ring_out(self, now: float, alive: set[str], states: dict[str, AgentState]) -> None:
        """Offers past ``until`` (and the grace) become ``no_answer`` declines, by the server that made
        them (any server when that one is dead); lines that stray from their call are given back.

        The held lines' records are read in one round trip, and only the fields this needs (not the
        handoff packet); a line released here updates ``states``."""
        held = [(agent_id, call_id) for agent_id, state in states.items() for call_id in state.calls]
        records = await self.store.call_fields(sorted({c for _, c in held}), _STATE_FIELDS) if held else {}
        strays: set[tuple[str, str]] = set()
        for agent_id, call_id in held:
            record = records.get(call_id)
            offer = _offer(record, agent_id)
            if offer is None:
                if record is not None and "entry" in record and not _holds(record, agent_id):
                    strays.add((agent_id, call_id))
                continue
            if now < float(offer["until"]) + self.ring_grace_s:
                continue
            if offer.get("by") != self.server and offer.get("by") in alive:
                continue  # its own server rings it out
            if await self._decline(agent_id, call_id, "no_answer", now, states):
                await self._withdraw(agent_id, call_id, "no_answer")
        await self._release_strays(strays, now, states)

    async def _release_strays(
        self, strays: set[tuple[str, str]], now: float, states: dict[str, AgentState] | None = None
    ) -> None:
        """A line held for a transfer call that is neither ringing nor talking to that agent (a server
        stopped between reserving it and ringing, or two servers declined one offer at once) is
        given back once it has been seen so for ``STRAY_AFTER_S``: the reserve-then-ring of a live
        server takes milliseconds."""
        self._orphans = {key: self._orphans.get(key, now) for key in strays}
        for (agent_id, call_id), since in list(self._orphans.items()):
            if now - since >= STRAY_AFTER_S:
                state = await self.store.release(agent_id, call_id, now)
                if states is not None:
                    states[agent_id] = state
                await self._withdraw(agent_id, call_id, "withdrawn")
                del self._orphans[agent_id, call_id]
                log.warning("a stray agent line was given back", extra={"call_id": call_id, "agent": agent_id})

    async def _decline(
        self, agent_id: str, call_id: str, why: str, now: float, states: dict[str, AgentState] | None = None
    ) -> bool:
        """Give the line back and queue the caller again (False: no longer ringing this agent).
        ``states``: updated with the agent's state after the release."""
        record = await self._where(call_id)  # again, just before: another server may have moved it
        if record is None or _offer(record, agent_id) is None:
            return False
        if record.get("cancelled"):  # the caller left while it rang (a cancel raced an offer): not queued again
            state = await self.store.release(agent_id, call_id, now)
            if states is not None:
                states[agent_id] = state
            await self.store.update_call(call_id, {"status": "cancelled", "offer": None})
            return False
        entry = QueuedCall.from_json(str(record["entry"]))
        if agent_id not in entry.tried:
            entry = replace(entry, tried=(*entry.tried, agent_id))
        state = await self.store.release(agent_id, call_id, now)
        if states is not None:
            states[agent_id] = state
        await self.store.update_call(call_id, {"status": "queued", "offer": None, "entry": entry.to_json()})
        await self.store.enqueue(entry)
        await self.store.publish(f"call:{call_id}", {"type": "declined", "agent": agent_id, "why": why})
        return True

    async def _withdraw(self, agent_id: str, call_id: str, why: str) -> None:
        """Tell the agent's desktop the call is no longer theirs to take (it stops ringing)."""
        await self.store.publish(f"agent:{agent_id}", {"type": "cancel", "call_id": call_id, "why": why})

    async def _finish(self, agent_id: str, call_id: str, now: float, why: str | None) -> None:
        await self.store.release(agent_id, call_id, now, wrap_up=True)
        record = await self._where(call_id)
        if record is not None and record.get("agent") in (None, agent_id):
            await self.store.update_call(call_id, {"status": "done", "finished_at": now, "why": why})

    async def _estimate(self, call_id: str) -> tuple[int | None, float | None]:
        position = await self.store.position(call_id)
        if position is None:
            return None, None
        held = await self.store.load_call(WAITS_KEY)
        waits = [float(w) for w in held.get("waits", ())] if held else []
        return position, (position * sum(waits) / len(waits) if waits else None)

    async def _note_wait(self, wait_s: float) -> None:
        held = await self.store.load_call(WAITS_KEY)
        waits = [*(held.get("waits", ()) if held else ()), max(0.0, wait_s)][-WAIT_HISTORY:]
        await self.store.save_call(WAITS_KEY, {"waits": waits}, WAITS_TTL_S)

    def _agent(self, agent_id: str) -> Agent | None:
        return next((a for a in self.agents() if a.id == agent_id), None)


def _reserved(state: AgentState, call_id: str, max_concurrent: int, now: float) -> AgentState:
    """``state`` after ``LiveStore.reserve`` gave ``call_id`` a line (BUSY once every line is taken)."""
    calls = (*state.calls, call_id)
    if len(calls) >= max_concurrent:
        return replace(state, calls=calls, presence=Presence.BUSY, since=now)
    return replace(state, calls=calls)


def _holds(record: Mapping[str, Any], agent_id: str) -> bool:
    """The agent talks to this call (accepted, not yet finished)."""
    return record.get("status") == "accepted" and record.get("agent") == agent_id


def _offer(record: Mapping[str, Any] | None, agent_id: str) -> Mapping[str, Any] | None:
    """The open offer of ``record`` when it rings ``agent_id``."""
    if record is None or record.get("status") != "offered":
        return None
    offer = record.get("offer")
    return offer if isinstance(offer, Mapping) and offer.get("agent") == agent_id else None
