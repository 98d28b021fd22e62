"""The hotline over HTTP: start a call, send caller turns (text or WAV), end it, read the outcome.

This is what ``ivr serve`` runs. Calls live in process memory (bounded); the Twilio and SIP front
doors and Redis-shared state come in later issues and reuse the same ``CallSession``.
Blocking work (understanding, recognition) runs in a worker thread, never on the event loop, and
turns of one call are serialised by a per-call lock.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.errors import AudioFormatError, IvrError, ProtocolError
from voice import softphone
from voice.hotline import Hotline
from voice.report import outcome_json, turn_json, understanding_json
from voice.session import CallSession

MAX_TEXT = 2000
MAX_AUDIO_BYTES = 8 * 1024 * 1024  # about 8 minutes of 8 kHz 16-bit audio


class CallStart(BaseModel):
    caller: str | None = Field(default=None, max_length=32, description="caller ID in E.164")


class TextTurn(BaseModel):
    text: str = Field(max_length=MAX_TEXT)


@dataclass
class LiveCall:
    session: CallSession
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class CallRegistry:
    """The calls this server holds, oldest first; bounded so a flood cannot exhaust memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._calls: OrderedDict[str, LiveCall] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, session: CallSession) -> LiveCall:
        if len(self._calls) >= self.limit:
            raise HTTPException(503, f"the hotline is holding {self.limit} calls; try again shortly")
        live = self._calls[session.call_id] = LiveCall(session)
        return live

    def get(self, call_id: str) -> LiveCall:
        live = self._calls.get(call_id)
        if live is None:
            raise HTTPException(404, f"no live call {call_id!r}")
        return live

    def pop(self, call_id: str) -> LiveCall:
        live = self.get(call_id)
        del self._calls[call_id]
        return live


def create_app(hotline: Hotline, max_calls: int = 500) -> FastAPI:
    app = FastAPI(title="中文电商 AI 语音客服热线", version="0.1.0")
    calls = CallRegistry(max_calls)
    app.state.hotline, app.state.calls = hotline, calls

    @app.exception_handler(IvrError)
    async def ivr_error(_: Request, err: IvrError) -> JSONResponse:
        status = 409 if isinstance(err, ProtocolError) else 503 if err.retryable else 400
        return JSONResponse({"error": str(err), "retryable": err.retryable}, status_code=status)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        info = hotline.shop.info()
        return {"status": "ok", "shop": info.name, "calls": len(calls), "now": hotline.clock.now().isoformat()}

    @app.post("/api/understand")
    async def understand(turn: TextTurn) -> dict[str, Any]:
        result = await asyncio.to_thread(hotline.understander.understand, turn.text, hotline.clock.now())
        return understanding_json(result)

    @app.post("/api/calls", status_code=201)
    async def start_call(start: CallStart) -> dict[str, Any]:
        session = hotline.session(start.caller)
        live = calls.add(session)
        async with live.lock:
            greeting = await asyncio.to_thread(session.greet)
        customer = session.customer
        return {
            "call_id": session.call_id,
            "customer": {"id": customer.id, "name": customer.name} if customer else None,
            "greeting": "".join(a.text for a in greeting),
        }

    @app.post("/api/calls/{call_id}/turns")
    async def text_turn(call_id: str, turn: TextTurn) -> dict[str, Any]:
        live = calls.get(call_id)
        async with live.lock:
            result = await asyncio.to_thread(live.session.hear_text, turn.text)
        return {**turn_json(result), "ended": result.ended}

    @app.post("/api/calls/{call_id}/audio")
    async def audio_turn(call_id: str, request: Request) -> dict[str, Any]:
        live = calls.get(call_id)
        body = await _bounded_body(request, MAX_AUDIO_BYTES)
        async with live.lock:
            result = await asyncio.to_thread(_hear_wav, hotline, live.session, body)
        return {**turn_json(result), "ended": result.ended}

    @app.post("/api/calls/{call_id}/end")
    async def end_call(call_id: str) -> dict[str, Any]:
        live = calls.pop(call_id)
        async with live.lock:
            outcome = await asyncio.to_thread(live.session.end)
        return outcome_json(outcome)

    app.include_router(softphone.router)
    return app


def _hear_wav(hotline: Hotline, session: CallSession, body: bytes):  # type: ignore[no-untyped-def]
    from voice.wav import read_wav

    frame = read_wav(body)  # bad audio is the caller's error, before any model is loaded
    if session.speech is None:
        session.speech = hotline.speech_for_call()
    return session.hear_audio(frame)


async def _bounded_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"audio over {limit} bytes")
        chunks.append(chunk)
    if not size:
        raise AudioFormatError("empty request body: expected a WAV file")
    return b"".join(chunks)
