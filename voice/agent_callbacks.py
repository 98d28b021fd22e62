"""The callbacks the hotline promised, on the agents' desk (``routing.callbacks``; signed-in agents only).

- ``GET /agent/api/callbacks``: the callbacks still to make — every open one, most urgent first,
  then oldest, and those this agent claimed — with the number to ring, the customer's name, the
  reason, the three-line summary and when the caller was told to expect it.
- ``POST /agent/api/callbacks/{call_id}/claim``: this agent makes it (409 when another agent has it
  or it is done: one agent per callback, across servers sharing the hotline database).
- ``POST /agent/api/callbacks/{call_id}/done`` ``{notes}``: made; the notes go into the customer's
  history as an agent's note (never read back to the caller), as a transfer's wrap-up does.

A caller still queued for an agent when their server died has lost the call: once that server has
been silent for ``ORPHAN_AFTER_S``, ``book_orphans`` (every server runs it) takes the caller out of
the queue — one server wins the dequeue — and books their callback from the handoff packet. An HTTP
API call has no line and stays queued for the agents as it is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from core.shop import AGENT_NOTES, Contact
from dialog.replies import render
from routing.callbacks import Callback, Callbacks
from voice.agent_desk import MAX_NOTES, AgentId, blocking
from voice.hotline import Hotline

log = logging.getLogger(__name__)

ORPHAN_AFTER_S = 30.0  # a server silent this long (heartbeats every second, alive for 5 s) has died
ORPHANS_EVERY_S = 10.0

router = APIRouter()


class Done(BaseModel):
    notes: str = Field(default="", max_length=MAX_NOTES)


def _callbacks(request: Request) -> tuple[Hotline, Callbacks]:
    hotline: Hotline = request.app.state.hotline
    if hotline.callbacks is None:
        raise HTTPException(503, "this server keeps no callbacks (no hotline database)")
    return hotline, hotline.callbacks


async def _json(request: Request, callback: Callback) -> dict[str, Any]:
    shop = request.app.state.hotline.shop
    customer = await blocking(request.app, shop.customer, callback.customer_id) if callback.customer_id else None
    return {**callback.to_json(), "customer": customer.name if customer is not None else None}


@router.get("/agent/api/callbacks")
async def pending(request: Request, agent_id: AgentId) -> dict[str, Any]:
    _, callbacks = _callbacks(request)
    found = await blocking(request.app, callbacks.pending, agent_id)
    return {"callbacks": [await _json(request, c) for c in found]}


@router.post("/agent/api/callbacks/{call_id}/claim")
async def claim(call_id: str, request: Request, agent_id: AgentId) -> dict[str, Any]:
    hotline, callbacks = _callbacks(request)
    callback = await blocking(request.app, callbacks.claim, call_id, agent_id, hotline.clock.now())
    log.info("agent %s claimed the callback of call %s", agent_id, call_id)
    return await _json(request, callback)


@router.post("/agent/api/callbacks/{call_id}/done")
async def done(call_id: str, body: Done, request: Request, agent_id: AgentId) -> dict[str, Any]:
    hotline, callbacks = _callbacks(request)
    notes = body.notes.strip()
    callback = await blocking(request.app, callbacks.close, call_id, agent_id, notes, hotline.clock.now())
    recorded = False
    if notes and callback.customer_id:  # (an unknown caller has no history to keep them in)
        contact = Contact(hotline.clock.now(), AGENT_NOTES, notes)
        await blocking(request.app, hotline.shop.record_contact, callback.customer_id, contact)
        recorded = True
    log.info("agent %s made the callback of call %s (notes %s)", agent_id, call_id, "recorded" if recorded else "none")
    return {**(await _json(request, callback)), "recorded": recorded}


async def book_orphans(app: Any) -> int:
    """Callers queued at a server dead for ``ORPHAN_AFTER_S``: out of the queue, into the callbacks.
    Returns how many this server booked."""
    store, hotline = app.state.store, app.state.hotline
    if hotline.callbacks is None:
        return 0
    recently = await store.servers_alive(app.state.desk.now() - ORPHAN_AFTER_S)
    booked = 0
    for entry in await store.queue():
        if entry.server in recently:
            continue
        record = await store.load_call(entry.call_id) or {}
        number = record.get("caller") or (record.get("customer") or {}).get("phone")
        if record.get("channel") == "api" or not number:
            continue  # no line to have lost (the agents take it from the queue), or no number to ring
        if await store.dequeue(entry.call_id) is None:
            continue  # another server booked it
        customer = (record.get("customer") or {}).get("id")
        summary = tuple(str(line) for line in record.get("summary") or ())
        task = Callback(
            entry.call_id, str(number), customer, entry.skill, entry.priority, str(record.get("reason") or ""),
            summary, render("callback.soon"), hotline.clock.now(),
        )  # fmt: skip
        await blocking(app, hotline.callbacks.book, task)
        await store.update_call(entry.call_id, {"status": "callback", "why": "来电所在服务器已停止"})
        booked += 1
        log.info("call %s lost with its server %s: callback booked", entry.call_id, entry.server)
    return booked


async def orphans_loop(app: Any, every_s: float = ORPHANS_EVERY_S) -> None:
    """``book_orphans`` every ``every_s`` until cancelled (a failed pass is logged and tried again)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await book_orphans(app)
        except Exception:
            log.exception("booking the callbacks of a dead server's callers failed")
