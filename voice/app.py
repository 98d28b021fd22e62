"""The hotline over HTTP: start a call, send caller turns (text or WAV), end it, read the outcome.

This is what ``ivr serve`` runs; ``create_app(hotline, ...)`` is the one entry point, and the live
front doors add their routers to it. Calls live in process memory (``voice.calls``): at most
``IVR_MAX_CALLS``, idle ones expire after ``IVR_CALL_IDLE_SECONDS``, calls the bot ended are freed at
once, and every call that ends any way has ``CallSession.end()`` run (its outcome recorded).

Two executors, so call control never waits behind recognition: ``app.state.asr_executor``
(``IVR_ASR_WORKERS`` threads: decoding, VAD, ASR) and ``app.state.control_executor`` (greetings, text
turns, ending calls). Turns of one call are serialised by a per-call lock. At most
``ASR_BACKLOG_PER_WORKER`` audio turns per ASR thread may wait; beyond that an audio turn gets a
retryable 503 at once instead of queueing for minutes.

Shutdown (SIGTERM): the coroutines in ``app.state.on_shutdown`` run first (a live front door says
goodbye on its lines and ends its own sessions there), then every call still held is ended and
recorded. Errors all have one shape: ``{"error": "...", "retryable": bool}`` (``voice.app_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.errors import AudioFormatError, NotFoundError, TransientError
from voice import agent_callbacks, agent_desk, softphone
from voice.app_errors import BodyLimit, body_limit_for, install_error_handlers
from voice.calls import CallRegistry, HttpCall, LineFullError
from voice.hotline import Hotline
from voice.live_routes import live_router
from voice.report import outcome_json, turn_json, understanding_json
from voice.session import CallOutcome, CallSession, TurnResult
from voice.speech_ready import SpeechReadiness
from voice.wav import WavFormat, decode, parse_turn_wav

log = logging.getLogger("ivr.calls")

MAX_TEXT = 2000
CONTROL_WORKERS = 8
ASR_BACKLOG_PER_WORKER = 4
SHUTDOWN_HOOK_SECONDS = 10.0
T = TypeVar("T")


class CallStart(BaseModel):
    caller: str | None = Field(default=None, max_length=32, description="caller ID in E.164")


class TextTurn(BaseModel):
    text: str = Field(max_length=MAX_TEXT)


def create_app(
    hotline: Hotline,
    max_calls: int | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    prepare_speech: bool = False,
) -> FastAPI:
    """The HTTP app. ``clock`` drives idle expiry; ``prepare_speech`` installs and loads the recogniser
    in the background at start-up (``ivr serve``)."""
    settings = hotline.settings
    app = FastAPI(title="中文电商 AI 语音客服热线", version="0.1.0", lifespan=_lifespan(prepare_speech))
    app.state.hotline = hotline
    app.state.calls = CallRegistry(max_calls or settings.max_calls, settings.call_idle_seconds, clock)
    app.state.speech = SpeechReadiness(hotline)
    app.state.asr_executor = ThreadPoolExecutor(settings.asr_workers, thread_name_prefix="ivr-asr")
    app.state.asr_turns = 0  # audio turns running or waiting for an ASR thread
    app.state.control_executor = ThreadPoolExecutor(CONTROL_WORKERS, thread_name_prefix="ivr-call")
    app.state.on_shutdown = []  # list[Callable[[], Awaitable[None]]], run first on shutdown
    app.add_middleware(BodyLimit, limit_for=body_limit_for)
    install_error_handlers(app)
    _health_routes(app)
    _call_routes(app)
    app.include_router(live_router())
    app.include_router(softphone.router)
    agent_desk.attach(app, hotline)  # live store (IVR_REDIS_URL, else this process), agent accounts, dispatcher
    app.include_router(agent_desk.router)
    app.include_router(agent_callbacks.router)
    return app


def _lifespan(prepare_speech: bool) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if prepare_speech:
            install = app.state.hotline.settings.model_install
            threading.Thread(target=app.state.speech.prepare, args=(install,), name="ivr-speech", daemon=True).start()
        await agent_desk.start(app)
        sweeper = asyncio.create_task(_sweep_forever(app))
        try:
            yield
        finally:
            app.state.speech.stopping.set()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await shutdown(app)
            await agent_desk.stop(app)

    return lifespan


def _health_routes(app: FastAPI) -> None:
    hotline: Hotline = app.state.hotline
    calls: CallRegistry = app.state.calls

    @app.get("/healthz", response_model=None)
    async def healthz() -> dict[str, Any] | JSONResponse:
        await sweep(app)
        speech = app.state.speech.status()
        body: dict[str, Any] = {
            "status": "ok",
            "shop": hotline.shop.info().name,
            "calls": len(calls),
            "max_calls": calls.limit,
            "speech": {"ready": speech.ready, "state": speech.state, "reason": speech.reason},
            "now": hotline.clock.now().isoformat(),
            "warnings": list(hotline.warnings),
        }
        problems = [] if speech.ready else [f"speech recognition is not ready ({speech.state}): {speech.reason}"]
        if calls.full:
            problems.append(f"the line is full: {len(calls)} of {calls.limit} calls")
        if not problems:
            return body
        body.update(status="unavailable", error="; ".join(problems), retryable=True)
        return JSONResponse(body, status_code=503)

    @app.post("/api/understand")
    async def understand(turn: TextTurn) -> dict[str, Any]:
        result = await control(app, hotline.understander.understand, turn.text, hotline.clock.now())
        return understanding_json(result)


def _call_routes(app: FastAPI) -> None:
    hotline: Hotline = app.state.hotline
    calls: CallRegistry = app.state.calls

    @app.post("/api/calls", status_code=201)
    async def start_call(start: CallStart) -> dict[str, Any]:
        await sweep(app)
        if calls.full:
            raise LineFullError(f"all {calls.limit} lines are busy; try again shortly")
        session = hotline.session(hotline.claimed_caller(start.caller), channel="api")
        greeting = "".join(a.text for a in await control(app, session.greet))
        calls.add(session)
        return {"call_id": session.call_id, **masked(session, greeting)}

    @app.post("/api/calls/{call_id}/turns")
    async def text_turn(call_id: str, turn: TextTurn) -> dict[str, Any]:
        live = calls.get(call_id)
        result = await _turn(app, live, app.state.control_executor, live.session.hear_text, turn.text)
        return await _reply(app, live, result)

    @app.post("/api/calls/{call_id}/audio")
    async def audio_turn(call_id: str, request: Request) -> dict[str, Any]:
        live = calls.get(call_id)
        body = await request.body()
        if not body:
            raise AudioFormatError("empty request body: expected a WAV file")
        wav = parse_turn_wav(body, hotline.settings.max_turn_seconds)  # the caller's error before ours
        app.state.speech.require()
        if app.state.asr_turns >= ASR_BACKLOG_PER_WORKER * hotline.settings.asr_workers:
            raise TransientError(f"speech recognition is busy with {app.state.asr_turns} turns; try again shortly")
        app.state.asr_turns += 1
        try:
            result = await _turn(app, live, app.state.asr_executor, _hear_wav, hotline, live.session, *wav)
        finally:
            app.state.asr_turns -= 1
        return await _reply(app, live, result)

    @app.post("/api/calls/{call_id}/end")
    async def end_call(call_id: str) -> dict[str, Any]:
        outcome = calls.outcome(call_id)
        if outcome is None:
            outcome = await finish(app, calls.pop(call_id), "caller hung up")
        return outcome_json(outcome)


def masked(session: CallSession, greeting: str) -> dict[str, Any]:
    """What a client that only sent a number may see: whether it is a known customer and a masked name."""
    customer = session.customer
    if customer is None:
        return {"customer": None, "greeting": greeting}
    hint = customer.name[:1] + "*" * max(1, len(customer.name) - 1)
    return {"customer": {"known": True, "name_hint": hint}, "greeting": greeting.replace(customer.name, hint)}


async def control(app: FastAPI, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking call-control work (dialog, SQLite) on the control executor."""
    return await _run(app.state.control_executor, fn, *args)


async def _run(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)


async def _turn(app: FastAPI, live: HttpCall, executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    live.busy += 1
    try:
        async with live.lock:
            return await _run(executor, fn, *args)
    finally:
        live.busy -= 1
        live.last_seen = app.state.calls.clock()


async def _reply(app: FastAPI, live: HttpCall, result: TurnResult) -> dict[str, Any]:
    body = {**turn_json(result), "ended": result.ended}
    if result.ended:  # the bot hung up, transferred or booked a callback: free the line now
        with contextlib.suppress(NotFoundError):
            app.state.calls.pop(live.call_id)
        body["outcome"] = outcome_json(await finish(app, live, "ended by the hotline"))
    return body


def _hear_wav(hotline: Hotline, session: CallSession, fmt: WavFormat, payload: bytes) -> TurnResult:
    frame = decode(fmt, payload)
    if session.speech is None:
        session.speech = hotline.speech_for_call()
    return session.hear_audio(frame)


async def finish(app: FastAPI, live: HttpCall, why: str) -> CallOutcome:
    """End a call already removed from the registry: record it and keep its outcome for ``/end``."""
    async with live.lock:
        outcome = await control(app, live.session.end)
    app.state.calls.finished(live.call_id, outcome)
    log.info("call %s ended (%s): %s", live.call_id, why, outcome.type)
    return outcome


async def sweep(app: FastAPI) -> None:
    """End and free the calls idle for longer than ``IVR_CALL_IDLE_SECONDS``."""
    for live in app.state.calls.expired():
        await finish(app, live, f"idle for {app.state.calls.idle_seconds:g} s")


async def _sweep_forever(app: FastAPI) -> None:
    every = max(1.0, min(30.0, app.state.calls.idle_seconds / 4))
    while True:
        await asyncio.sleep(every)
        try:
            await sweep(app)
        except Exception:
            log.exception("expiring idle calls failed")


async def shutdown(app: FastAPI) -> None:
    """Run the front doors' goodbyes, then end and record every call still held."""
    hooks: list[Callable[[], Awaitable[None]]] = list(app.state.on_shutdown)
    for hook in hooks:
        try:
            await asyncio.wait_for(hook(), SHUTDOWN_HOOK_SECONDS)
        except Exception:
            log.exception("a shutdown hook failed")
    for live in app.state.calls.drain():
        try:
            await finish(app, live, "server shutting down")
        except Exception:
            log.exception("ending call %s at shutdown failed", live.call_id)
    for executor in (app.state.asr_executor, app.state.control_executor):
        executor.shutdown(wait=False, cancel_futures=True)
