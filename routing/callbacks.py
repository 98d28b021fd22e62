"""Callbacks the hotline promised: each one a task on the agents' desk until an agent has called back.

A call that ends with a callback booked (nobody could take the transfer, the wait ran out, the
caller chose it, or agents were off duty) leaves one row here, with what the agent needs to call
back: the number, the customer, the skill and priority, the reason, the three-line summary and
when it was promised for. An agent claims it (one agent per callback: the claim is a single
conditional UPDATE, so two desks on two servers never both get it) and closes it with notes,
which the desk also writes into the customer's history.

Kept in the hotline's own SQLite file (``Settings.db_path``, table ``callbacks``) beside the agent
accounts: a promise must outlive a restart, unlike the live state. Blocking: call from a worker
thread in a server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConflictError, NotFoundError
from routing.hotline_db import HotlineTable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS callbacks (
    call_id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    customer_id TEXT,
    skill TEXT NOT NULL,
    priority INTEGER NOT NULL,
    reason TEXT NOT NULL,
    summary TEXT NOT NULL,
    promised TEXT NOT NULL,
    booked_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    agent_id TEXT,
    claimed_at TEXT,
    closed_at TEXT,
    notes TEXT
)
"""
STATUSES = ("open", "claimed", "done")


@dataclass(frozen=True, slots=True)
class Callback:
    call_id: str
    number: str  # the caller's number (E.164 as the caller ID gave it)
    customer_id: str | None
    skill: str
    priority: int  # 1 (highest) .. 5
    reason: str
    summary: tuple[str, ...]  # the handoff's three lines
    promised: str  # when the caller was told to expect it, as they heard it (「稍后」「明天09:00以后」)
    booked_at: datetime
    status: str = "open"  # open | claimed | done
    agent_id: str | None = None
    notes: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "call_id": self.call_id, "number": self.number, "customer_id": self.customer_id,
            "skill": self.skill, "priority": self.priority, "reason": self.reason,
            "summary": list(self.summary), "promised": self.promised,
            "booked_at": self.booked_at.isoformat(), "status": self.status, "agent_id": self.agent_id,
        }  # fmt: skip


class Callbacks(HotlineTable):
    """The ``callbacks`` table in the SQLite file at ``path`` (created when missing)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA)

    def book(self, callback: Callback) -> bool:
        """Add ``callback`` (status open); False when this call already booked one (kept as it was)."""
        with self._db() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO callbacks (call_id, number, customer_id, skill, priority, reason, summary,"
                " promised, booked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    callback.call_id, callback.number, callback.customer_id, callback.skill, callback.priority,
                    callback.reason, json.dumps(list(callback.summary), ensure_ascii=False), callback.promised,
                    _iso(callback.booked_at),
                ),
            )  # fmt: skip
        return cursor.rowcount == 1

    def pending(self, agent_id: str | None = None) -> list[Callback]:
        """Callbacks still to make: the open ones (most urgent, then oldest first), then ``agent_id``'s claimed."""
        with self._db() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM callbacks WHERE status = 'open' OR (status = 'claimed' AND agent_id = ?)"
                " ORDER BY status = 'claimed' DESC, priority, booked_at, call_id",
                (agent_id,),
            ).fetchall()
        return [_row(r) for r in rows]

    def get(self, call_id: str) -> Callback:
        with self._db() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM callbacks WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no callback booked for call {call_id}")
        return _row(row)

    def claim(self, call_id: str, agent_id: str, now: datetime) -> Callback:
        """``agent_id`` will make this callback; ``ConflictError`` when another agent has it or it is done."""
        with self._db() as conn:
            cursor = conn.execute(
                "UPDATE callbacks SET status = 'claimed', agent_id = ?, claimed_at = ?"
                " WHERE call_id = ? AND (status = 'open' OR (status = 'claimed' AND agent_id = ?))",
                (agent_id, _iso(now), call_id, agent_id),
            )
        if cursor.rowcount != 1:
            current = self.get(call_id)
            raise ConflictError(f"callback {call_id} is {current.status} by another agent; it was not claimed")
        return self.get(call_id)

    def close(self, call_id: str, agent_id: str, notes: str, now: datetime) -> Callback:
        """The callback was made (``notes``: how it went); only by the agent who claimed it."""
        with self._db() as conn:
            cursor = conn.execute(
                "UPDATE callbacks SET status = 'done', closed_at = ?, notes = ?"
                " WHERE call_id = ? AND status = 'claimed' AND agent_id = ?",
                (_iso(now), notes, call_id, agent_id),
            )
        if cursor.rowcount != 1:
            current = self.get(call_id)
            raise ConflictError(f"callback {call_id} is {current.status}, not claimed by {agent_id}: claim it first")
        return self.get(call_id)

    def counts(self) -> dict[str, int]:
        with self._db() as conn:
            rows: Sequence[tuple[str, int]] = conn.execute(
                "SELECT status, COUNT(*) FROM callbacks GROUP BY status"
            ).fetchall()
        return {status: dict(rows).get(status, 0) for status in STATUSES}


_COLUMNS = (
    "call_id, number, customer_id, skill, priority, reason, summary, promised, booked_at, status, agent_id, notes"
)


def _row(row: Sequence[object]) -> Callback:
    call_id, number, customer_id, skill, priority, reason, summary, promised, booked_at, status, agent, notes = row
    return Callback(
        str(call_id), str(number), None if customer_id is None else str(customer_id), str(skill), int(str(priority)),
        str(reason), tuple(json.loads(str(summary))), str(promised), datetime.fromisoformat(str(booked_at)),
        str(status), None if agent is None else str(agent), None if notes is None else str(notes),
    )  # fmt: skip


def _iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
