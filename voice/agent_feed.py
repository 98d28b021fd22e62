"""What the agent desk's socket (``WS /agent/ws``) pushes to one signed-in agent's page.

Server → page, JSON text messages:

- ``hello`` {me}: on connect; then an ``offer`` or ``call`` for each call the agent already has
- ``offer`` {call, ring_s}: a transfer rings for the agent (``call`` is the whole record)
- ``cancel`` {call_id, why}: an offer withdrawn (the caller hung up, it rang out, …)
- ``accepted`` {call_id}; ``call`` {call}: a call the agent holds (after a reconnect)
- ``line`` {call_id, speaker, text}: the accepted call's live transcript (lines said while it
  rang come right after ``accepted``)
- ``assist`` {call_id, clauses: [{id, title, text}]}: the shop's policy clauses for a caller line
- ``ended`` {call_id, outcome}; ``signed_out``: the session ended (then the socket closes)

The page sends nothing that matters (anything it sends is read and ignored; a disconnect ends the
feed). Each call followed is one task reading its ``call:<id>`` stream; the agent's own
``agent:<id>`` stream is read by the feed itself, which also checks the session every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from voice.agent_desk import CLOSE_POLICY, blocking, me_json, offered_to, session_agent, taken_by, the_agent

log = logging.getLogger(__name__)

POLL_S = 5.0  # longest wait on a stream before the session is checked again
MAX_RINGING_LINES = 200  # lines kept while an offer rings, sent once it is accepted
ASSIST_CLAUSES = 3


class DeskFeed:
    def __init__(self, ws: WebSocket, agent_id: str, cookie: str) -> None:
        self.ws, self.agent_id, self.cookie = ws, agent_id, cookie
        self.app = ws.app
        self.store = ws.app.state.store
        self._lock = asyncio.Lock()
        self._following: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        listening = asyncio.create_task(self._drain_page(), name=f"agent-desk-page-{self.agent_id}")
        feeding = asyncio.create_task(self._feed(), name=f"agent-desk-feed-{self.agent_id}")
        try:
            await asyncio.wait({listening, feeding}, return_when=asyncio.FIRST_COMPLETED)
            if feeding.done() and not feeding.cancelled() and feeding.exception() is not None:
                log.error("agent desk feed for %s failed", self.agent_id, exc_info=feeding.exception())
        finally:
            for task in (listening, feeding, *self._following.values()):
                task.cancel()
            for task in (listening, feeding, *self._following.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.close(1000)

    async def _drain_page(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while (await self.ws.receive())["type"] != "websocket.disconnect":
                pass

    async def _feed(self) -> None:
        stream = f"agent:{self.agent_id}"
        held = await self.store.read(stream, "0")
        after = held[-1][0] if held else "0"  # what happened before this page is in the agent's state
        await self.send({"type": "hello", "me": await me_json(self.app, await the_agent(self.app, self.agent_id))})
        for call_id in (await self.store.agent(self.agent_id)).calls:
            await self._offer(call_id)
        while True:
            events = await self.store.read(stream, after, timeout_s=POLL_S)
            if await session_agent(self.app, self.ws.cookies.get(self.cookie)) != self.agent_id:
                await self.send({"type": "signed_out"})
                await self.close(CLOSE_POLICY)
                return
            for event_id, event in events:
                after = event_id
                if event.get("type") == "offer":
                    await self._offer(str(event.get("call_id")))
                elif event.get("type") == "cancel":
                    call_id = str(event.get("call_id"))
                    self._unfollow(call_id)
                    await self.send({"type": "cancel", "call_id": call_id, "why": event.get("why")})

    async def _offer(self, call_id: str) -> None:
        """Push the call ringing for (or held by) the agent, and follow its stream."""
        record = await self.store.load_call(call_id)
        if record is None:
            return
        if offered_to(record, self.agent_id):
            until = float((record.get("offer") or {}).get("until") or 0)
            ring_s = max(0.0, until - self.app.state.desk.now()) if until else None
            await self.send({"type": "offer", "call": record, "ring_s": ring_s})
            self._follow(call_id, accepted=False)
        elif taken_by(record, self.agent_id) and record.get("status") == "accepted":
            await self.send({"type": "call", "call": record})
            self._follow(call_id, accepted=True)

    def _follow(self, call_id: str, *, accepted: bool) -> None:
        if call_id not in self._following:
            task = asyncio.create_task(self._call_events(call_id, accepted), name=f"agent-desk-call-{call_id}")
            self._following[call_id] = task
            task.add_done_callback(lambda done: self._forget(call_id, done))

    def _forget(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self._following.get(call_id) is task:
            del self._following[call_id]

    def _unfollow(self, call_id: str) -> None:
        task = self._following.pop(call_id, None)
        if task is not None:
            task.cancel()

    async def _call_events(self, call_id: str, accepted: bool) -> None:
        stream = f"call:{call_id}"
        held = await self.store.read(stream, "0")
        after = held[-1][0] if held else "0"  # the record holds the transcript so far
        ringing: list[Mapping[str, Any]] = []
        while True:
            for event_id, event in await self.store.read(stream, after, timeout_s=POLL_S):
                after = event_id
                kind = event.get("type")
                if kind == "line":
                    if accepted:
                        await self._line(call_id, event)
                    elif len(ringing) < MAX_RINGING_LINES:
                        ringing.append(event)
                elif kind == "accepted":
                    if event.get("agent") != self.agent_id:
                        return  # someone else took it (this agent's offer was withdrawn)
                    accepted = True
                    await self.send({"type": "accepted", "call_id": call_id})
                    for line in ringing:
                        await self._line(call_id, line)
                    ringing.clear()
                elif kind == "declined" and event.get("agent") == self.agent_id:
                    return
                elif kind == "cancelled":
                    await self.send({"type": "cancel", "call_id": call_id, "why": event.get("why")})
                    return
                elif kind == "ended":
                    await self.send({"type": "ended", "call_id": call_id, "outcome": event.get("outcome")})
                    return

    async def _line(self, call_id: str, event: Mapping[str, Any]) -> None:
        speaker, text = str(event.get("speaker") or ""), str(event.get("text") or "")
        await self.send({"type": "line", "call_id": call_id, "speaker": speaker, "text": text})
        if speaker == "caller" and text.strip():
            hits = await blocking(self.app, self.app.state.hotline.shop.search_policies, text, ASSIST_CLAUSES)
            clauses = [{"id": h.policy_id, "title": h.title, "text": h.answer} for h in hits]
            await self.send({"type": "assist", "call_id": call_id, "clauses": clauses})

    async def send(self, message: Mapping[str, Any]) -> None:
        async with self._lock:
            if self.ws.application_state is not WebSocketState.CONNECTED:
                return
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):  # the page is gone
                await self.ws.send_text(json.dumps(message, ensure_ascii=False))

    async def close(self, code: int) -> None:
        async with self._lock:
            if self.ws.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await self.ws.close(code)
