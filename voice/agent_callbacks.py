"""The callbacks the hotline promised, on the agents' desk (``routing.callbacks``; signed-in agents only).

- ``GET /agent/api/callbacks``: the callbacks still to make — every open one, most urgent first,
  then oldest, and those this agent claimed — with the number to ring, the customer's name, the
  reason, the three-line summary and when the caller was told to expect it.
- ``POST /agent/api/callbacks/{call_id}/claim``: this agent makes it (409 when another agent has it
  or it is done: one agent per callback, across servers sharing the hotline database).
- ``POST /agent/api/callbacks/{call_id}/done`` ``{notes}``: made; the notes go into the customer's
  history as an agent's note (never read back to the caller), as a transfer's wrap-up does.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from core.shop import AGENT_NOTES, Contact
from routing.callbacks import Callback, Callbacks
from voice.agent_desk import MAX_NOTES, AgentId, blocking
from voice.hotline import Hotline

log = logging.getLogger(__name__)

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
    recorded = bool(notes and callback.customer_id)
    if recorded and callback.customer_id:
        contact = Contact(hotline.clock.now(), AGENT_NOTES, notes)
        await blocking(request.app, hotline.shop.record_contact, callback.customer_id, contact)
    log.info("agent %s made the callback of call %s (notes %s)", agent_id, call_id, "recorded" if recorded else "none")
    return {**(await _json(request, callback)), "recorded": recorded}
