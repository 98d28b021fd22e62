"""The agent desktop: ``GET /agent`` (the page), sign-in, presence, the queue, transfers offered to
the agent, and the call's record, live transcript, live assist and audio.

``attach(app, hotline)`` puts the shared parts on the app (``app.state.store``: the live store,
``MemoryStore`` for one server; ``app.state.accounts``; ``app.state.dispatcher``) and ``router``
serves:

- ``POST /agent/login`` {agent_id, password}: a random session token in an HttpOnly SameSite=Strict
  cookie; the store keeps only its SHA-256 (12 h). Five failures in a row lock the id for 60 s (429).
  ``POST /agent/logout``: the agent goes offline, the session is closed.
- ``GET /agent/api/me``, ``POST /agent/api/presence`` {presence}, ``GET /agent/api/queue`` (callers
  whose server is gone are marked ``callback``: they must be called back from the record).
- ``GET /agent/api/calls/{id}`` (only the agent it is offered to or taken by: 403 otherwise),
  ``POST .../accept``, ``.../decline``, ``.../finish`` (the talk is over: wrap-up),
  ``.../wrapup`` {notes} (the notes go into the customer's history, then wrap-up).
- ``WS /agent/ws`` (``voice.agent_feed``): offers, cancellations, the live transcript, assist.
- ``WS /agent/audio/{call_id}``: binary PCM16 both ways with the call's ``voice.bridge.Bridge``;
  when the caller is held by another server, relayed to it through the live store
  (``voice.bridge_relay``).

Everything but the page and the sign-in needs the session cookie (401 without). Errors have the
app's one shape (``voice.app_errors``). ``start`` (from the app's lifespan) runs ``Dispatcher.run``:
this server's heartbeat and a dispatch pass every second (offers ring out, waiting callers meet
agents come free), and connects the hotline's calls to the dispatcher; ``stop`` ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect

from core.errors import AudioFormatError, IvrError, NotFoundError
from core.shop import AGENT_NOTES, Agent, Contact
from routing.accounts import Accounts, Lockout
from routing.dispatch import Dispatcher
from routing.store import LiveStore, MemoryStore, Presence
from routing.store_redis import RedisStore
from voice.bridge import Bridge
from voice.bridge_relay import PageSide
from voice.hotline import Hotline
from voice.live_line import line_of
from voice.live_transfer import AgentDesk
from voice.softphone import _PAGE_HEADERS, _same_site
from voice.transfers import LoopTransfers

log = logging.getLogger(__name__)

COOKIE = "ivr_agent"
SESSION_S = 12 * 3600.0
DISPATCH_EVERY_S = 1.0  # the dispatcher's heartbeat and dispatch pass
STORE_CLOSE_S = 5.0
MAX_NOTES = 2000
CLOSE_POLICY = 1008
CLOSE_NO_AUDIO = 4404  # no audio for this call on this server (yet): the page may try again
CLOSE_TAKEN = 4409  # another socket already carries this call's audio
_STATIC = {"agent.js": "text/javascript; charset=utf-8", "agent.css": "text/css; charset=utf-8"}
T = TypeVar("T")


@dataclass
class DeskState:
    """What the desk keeps in this process: its clock, sign-in lockouts (counted in the live store,
    shared by every server), desk sockets per agent."""

    now: Callable[[], float]
    server: str
    lockout: Lockout
    sockets: dict[str, int] = field(default_factory=dict)


def attach(
    app: FastAPI,
    hotline: Hotline,
    *,
    store: LiveStore | None = None,
    server: str | None = None,
    now: Callable[[], float] = time.time,
) -> None:
    """Put the live store (Redis when ``IVR_REDIS_URL`` is set, else this process's), the agent accounts
    and this server's dispatcher on ``app.state``; ``start``/``stop`` run them with the app."""
    settings = hotline.settings
    if store is None:
        store = RedisStore(settings.redis_url, settings.redis_prefix) if settings.redis_url else MemoryStore()
    server = server or settings.server_id or f"{socket.gethostname()}-{os.getpid()}"
    app.state.store = store
    app.state.accounts = Accounts(settings.db_path)
    app.state.dispatcher = Dispatcher(store, hotline.shop.agents, server, now, ring_s=settings.agent_ring_seconds)
    app.state.desk = DeskState(now, server, Lockout(store))


async def start(app: Any) -> None:
    """At start-up: check the live store answers (a wrong ``IVR_REDIS_URL`` stops the server here),
    give the hotline's calls the way to the agents (transfers from sessions, the wait and the audio
    bridge of live calls), and run this server's heartbeat and a dispatch pass every second."""
    store, dispatcher, hotline = app.state.store, app.state.dispatcher, app.state.hotline
    settings = hotline.settings
    await store.servers_alive(time.time())  # StoreUnavailable / ConfigError when Redis is not there
    hotline.transfers = LoopTransfers(dispatcher, asyncio.get_running_loop(), dispatcher.server)
    line = line_of(app)
    line.desk = AgentDesk(
        store, dispatcher, hotline.shop.agents, contact=app.state.accounts.contact, bridges=line.bridges,
        max_wait_s=float(settings.transfer_wait_seconds),
    )  # fmt: skip
    host = settings.public_url or f"http://{settings.host}:{settings.port}"
    line.audio_base = "ws" + host.removeprefix("http")
    app.state.dispatch_task = asyncio.create_task(dispatcher.run(DISPATCH_EVERY_S), name="agent-desk-dispatch")
    from voice.agent_callbacks import orphans_loop  # (it builds on this module's routes)

    app.state.orphans_task = asyncio.create_task(orphans_loop(app), name="agent-desk-orphans")
    where = f"Redis {settings.redis_prefix}" if settings.redis_url else "this process only"
    log.info("agent desk: %s/agent, live state in %s, server %s", host, where, dispatcher.server)
    agents = await blocking(app, hotline.shop.agents)
    ready = [a.id for a in agents if await blocking(app, app.state.accounts.has_password, a.id)]
    if agents and not ready:
        log.info("no agent can sign in yet: set a password with `ivr agents passwd %s`", agents[0].id)


async def stop(app: Any) -> None:
    """At shutdown, after every call has ended (their transfers withdrawn): stop dispatching, close the store."""
    for name in ("dispatch_task", "orphans_task"):
        task = getattr(app.state, name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    app.state.hotline.transfers = None
    with contextlib.suppress(Exception):  # (a store that cannot close in time must not hold the shutdown)
        await asyncio.wait_for(app.state.store.close(), STORE_CLOSE_S)


router = APIRouter()


# -- the page ---------------------------------------------------------------------------------------


def _static(name: str) -> bytes:
    return resources.files("voice").joinpath("static", name).read_bytes()


@router.get("/agent", include_in_schema=False)
async def desk_page() -> Response:
    return Response(_static("agent.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/agent/static/{name}", include_in_schema=False)
async def desk_static(name: str) -> Response:
    media_type = _STATIC.get(name)
    if media_type is None:
        raise HTTPException(404, f"no agent desk file {name!r}")
    return Response(_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})


# -- sign-in ---------------------------------------------------------------------------------------


class Login(BaseModel):
    agent_id: str = Field(min_length=1, max_length=32)
    password: str = Field(max_length=256)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def blocking(app: Any, fn: Callable[..., T], *args: Any) -> T:
    """SQLite, scrypt and the knowledge base off the event loop (the app's control executor)."""
    return await asyncio.get_running_loop().run_in_executor(getattr(app.state, "control_executor", None), fn, *args)


async def shop_agents(app: Any) -> dict[str, Agent]:
    agents = await blocking(app, app.state.hotline.shop.agents)
    return {agent.id: agent for agent in agents}


@router.post("/agent/login")
async def login(body: Login, request: Request) -> JSONResponse:
    app, desk = request.app, request.app.state.desk
    now = desk.now()
    wait = await desk.lockout.locked_for(body.agent_id, now)
    if wait > 0:
        raise HTTPException(429, f"too many failed sign-ins for this id; try again in {math.ceil(wait)} s")
    agents = await shop_agents(app)
    ok = await blocking(app, app.state.accounts.verify, body.agent_id, body.password)
    if not ok or body.agent_id not in agents:
        if body.agent_id in agents:  # unknown ids are not tracked: nobody can fill memory with guesses
            await desk.lockout.failed(body.agent_id, now)
        log.info("agent sign-in refused for %s", body.agent_id if body.agent_id in agents else "an unknown id")
        raise HTTPException(401, "wrong agent id or password")
    await desk.lockout.succeeded(body.agent_id)
    token = secrets.token_urlsafe(32)
    await app.state.store.open_session(token_hash(token), body.agent_id, SESSION_S)
    response = JSONResponse(await me_json(app, agents[body.agent_id]))
    secure = request.url.scheme == "https" or (app.state.hotline.settings.public_url or "").startswith("https:")
    response.set_cookie(
        COOKIE, token, max_age=int(SESSION_S), path="/agent", httponly=True, samesite="strict", secure=secure
    )
    log.info("agent %s signed in", body.agent_id)
    return response


async def session_agent(app: Any, token: str | None) -> str | None:
    if not token:
        return None
    return await app.state.store.session_agent(token_hash(token))  # type: ignore[no-any-return]


async def signed_in(request: Request) -> str:
    """The signed-in agent's id (401 without a valid session)."""
    agent_id = await session_agent(request.app, request.cookies.get(COOKIE))
    if agent_id is None:
        raise HTTPException(401, "not signed in")
    return agent_id


AgentId = Annotated[str, Depends(signed_in)]


@router.post("/agent/logout")
async def logout(request: Request, agent_id: AgentId) -> JSONResponse:
    await go_offline(request.app, agent_id)
    token = request.cookies.get(COOKIE)
    if token:
        await request.app.state.store.close_session(token_hash(token))
    response = JSONResponse({"signed_out": agent_id})
    response.delete_cookie(COOKIE, path="/agent", httponly=True, samesite="strict")
    log.info("agent %s signed out", agent_id)
    return response


# -- presence and the queue ------------------------------------------------------------------------


class PresenceChange(BaseModel):
    presence: Literal["available", "wrap_up", "offline"]


async def me_json(app: Any, agent: Agent) -> dict[str, Any]:
    state = await app.state.store.agent(agent.id)
    return {
        "id": agent.id,
        "name": agent.name,
        "skills": dict(agent.skills),
        "languages": list(agent.languages),
        "max_concurrent": agent.max_concurrent,
        "presence": state.presence.value,
        "since": state.since,
        "calls": list(state.calls),
        "server": state.server,
    }


async def the_agent(app: Any, agent_id: str) -> Agent:
    agent = (await shop_agents(app)).get(agent_id)
    if agent is None:  # signed in, then removed from the shop's data
        raise HTTPException(403, f"the shop has no agent {agent_id} any more")
    return agent


@router.get("/agent/api/me")
async def me(request: Request, agent_id: AgentId) -> dict[str, Any]:
    return await me_json(request.app, await the_agent(request.app, agent_id))


@router.post("/agent/api/presence")
async def presence(change: PresenceChange, request: Request, agent_id: AgentId) -> dict[str, Any]:
    app, desk = request.app, request.app.state.desk
    agent = await the_agent(app, agent_id)
    wanted = Presence(change.presence)
    if wanted is Presence.OFFLINE:
        await go_offline(app, agent_id)
    else:
        state = await app.state.store.agent(agent_id)
        if wanted is Presence.AVAILABLE and len(state.calls) >= agent.max_concurrent:
            wanted = Presence.BUSY  # every line is taken: available again when one comes free
        await app.state.store.set_presence(agent_id, wanted, desk.now(), server=desk.server)
        await app.state.dispatcher.dispatch()
    return await me_json(app, agent)


async def go_offline(app: Any, agent_id: str) -> None:
    """Offline: calls ringing for the agent go to someone else; calls they talk on stay theirs."""
    store, desk = app.state.store, app.state.desk
    for call_id in (await store.agent(agent_id)).calls:
        record = await store.load_call(call_id)
        if record is not None and offered_to(record, agent_id):
            await app.state.dispatcher.decline(agent_id, call_id, "offline")
    await store.set_presence(agent_id, Presence.OFFLINE, desk.now(), server=desk.server)
    await app.state.dispatcher.dispatch()


@router.get("/agent/api/queue")
async def queue(request: Request, agent_id: AgentId) -> dict[str, Any]:
    store, now = request.app.state.store, request.app.state.desk.now()
    alive = await store.servers_alive(now)
    waiting = []
    for entry in await store.queue():
        record = await store.load_call(entry.call_id) or {}
        summary = record.get("summary") or [""]
        waiting.append(
            {
                "call_id": entry.call_id,
                "skill": entry.skill,
                "priority": entry.priority,
                "wait_s": max(0, round(now - entry.enqueued_at)),
                "summary": summary[0] if summary else "",
                "vip": entry.vip,
                "dialect": entry.dialect,
                "callback": entry.server not in alive,
            }
        )
    return {"queue": waiting}


# -- one call --------------------------------------------------------------------------------------


class WrapUp(BaseModel):
    notes: str = Field(default="", max_length=MAX_NOTES)


def offered_to(record: Mapping[str, Any], agent_id: str) -> bool:
    offer = record.get("offer") or {}
    return record.get("status") == "offered" and offer.get("agent") == agent_id


def taken_by(record: Mapping[str, Any], agent_id: str) -> bool:
    return record.get("agent") == agent_id and record.get("status") in ("accepted", "done")


async def record_for(app: Any, agent_id: str, call_id: str) -> Mapping[str, Any]:
    """The call's record when it is offered to ``agent_id`` or taken by them (403 otherwise)."""
    record = await app.state.store.load_call(call_id)
    if record is None:
        raise NotFoundError(f"no call {call_id} (ended, or never transferred)")
    if not (offered_to(record, agent_id) or taken_by(record, agent_id)):
        raise HTTPException(403, "this call is neither offered to you nor taken by you")
    return record  # type: ignore[no-any-return]


@router.get("/agent/api/calls/{call_id}")
async def call_record(call_id: str, request: Request, agent_id: AgentId) -> Mapping[str, Any]:
    return await record_for(request.app, agent_id, call_id)


@router.post("/agent/api/calls/{call_id}/accept")
async def accept(call_id: str, request: Request, agent_id: AgentId) -> Mapping[str, Any]:
    app = request.app
    record = await record_for(app, agent_id, call_id)
    if not offered_to(record, agent_id) or not await app.state.dispatcher.accept(agent_id, call_id):
        raise HTTPException(409, "the call is no longer offered to you")
    log.info("agent %s accepted call %s", agent_id, call_id)
    return await record_for(app, agent_id, call_id)


@router.post("/agent/api/calls/{call_id}/decline")
async def decline(call_id: str, request: Request, agent_id: AgentId) -> dict[str, Any]:
    app = request.app
    record = await record_for(app, agent_id, call_id)
    if not offered_to(record, agent_id):
        raise HTTPException(409, "the call is no longer offered to you")
    await app.state.dispatcher.decline(agent_id, call_id, "declined")
    await app.state.dispatcher.dispatch()
    return {"declined": call_id}


@router.post("/agent/api/calls/{call_id}/finish")
async def finish(call_id: str, request: Request, agent_id: AgentId) -> dict[str, Any]:
    """The conversation is over: the line is released and the agent goes to wrap-up."""
    app = request.app
    await _taken(app, agent_id, call_id)
    await app.state.dispatcher.finish(agent_id, call_id)
    return await me_json(app, await the_agent(app, agent_id))


@router.post("/agent/api/calls/{call_id}/wrapup")
async def wrapup(call_id: str, body: WrapUp, request: Request, agent_id: AgentId) -> dict[str, Any]:
    """The agent's notes go into the customer's history; the call is finished (wrap-up)."""
    app = request.app
    record = await _taken(app, agent_id, call_id)
    notes = body.notes.strip()
    customer = record.get("customer") or {}
    recorded = False
    if notes and customer.get("id"):
        hotline: Hotline = app.state.hotline
        # the call's own record already counts a complaint: the notes are not a second one
        contact = Contact(hotline.clock.now(), AGENT_NOTES, notes)
        await blocking(app, hotline.shop.record_contact, str(customer["id"]), contact)
        recorded = True
    await app.state.store.update_call(call_id, {"notes": notes})
    await app.state.dispatcher.finish(agent_id, call_id)
    log.info("agent %s wrapped up call %s (notes %s)", agent_id, call_id, "recorded" if recorded else "none")
    return {"call_id": call_id, "recorded": recorded, "me": await me_json(app, await the_agent(app, agent_id))}


async def _taken(app: Any, agent_id: str, call_id: str) -> Mapping[str, Any]:
    record = await record_for(app, agent_id, call_id)
    if not taken_by(record, agent_id):
        raise HTTPException(409, "you have not accepted this call")
    return record


# -- sockets ---------------------------------------------------------------------------------------


async def socket_agent(ws: WebSocket) -> str | None:
    """The signed-in agent behind a socket from one of our pages; None: refuse it."""
    if not _same_site(ws):
        log.warning("agent desk socket from another site refused (Origin %s)", ws.headers.get("origin"))
        return None
    return await session_agent(ws.app, ws.cookies.get(COOKIE))


@router.websocket("/agent/ws")
async def desk_socket(ws: WebSocket) -> None:
    from voice.agent_feed import DeskFeed

    agent_id = await socket_agent(ws)
    if agent_id is None:
        await ws.close(CLOSE_POLICY)  # before accepting: the handshake gets 403
        return
    await ws.accept()
    desk: DeskState = ws.app.state.desk
    desk.sockets[agent_id] = desk.sockets.get(agent_id, 0) + 1
    try:
        await DeskFeed(ws, agent_id, COOKIE).run()
    finally:
        desk.sockets[agent_id] -= 1
        if not desk.sockets[agent_id]:
            del desk.sockets[agent_id]
            await _deaf(ws.app, agent_id)


async def _deaf(app: Any, agent_id: str) -> None:
    """The agent's last desk socket here closed: an available agent would be offered calls nobody sees."""
    state = await app.state.store.agent(agent_id)
    if state.presence is Presence.AVAILABLE and state.server == app.state.desk.server:
        await go_offline(app, agent_id)
        log.info("agent %s went offline: their desk page closed", agent_id)


@router.websocket("/agent/audio/{call_id}")
async def audio_socket(ws: WebSocket, call_id: str, rate: int = 16000) -> None:
    """Binary PCM16 both ways: the caller's audio (8 kHz) out, the agent's microphone (``rate`` Hz) in."""
    agent_id = await socket_agent(ws)
    record = await ws.app.state.store.load_call(call_id) if agent_id else None
    if agent_id is None or record is None or record.get("status") != "accepted" or record.get("agent") != agent_id:
        await ws.close(CLOSE_POLICY)
        return
    if not 8000 <= rate <= 48000:
        await ws.close(CLOSE_POLICY)
        return
    bridge = bridge_of(ws.app, call_id)
    if bridge is not None and bridge.agent_id not in (None, agent_id):
        bridge = None  # the bridge waits for another agent's page (the call was handed on)
    await ws.accept()
    holder = record.get("server")
    if bridge is None and holder and holder != ws.app.state.desk.server:
        await _relay(ws, call_id, agent_id, rate, str(holder))  # the caller is on another server
        return
    if bridge is None or bridge.connected.is_set():
        await ws.close(CLOSE_NO_AUDIO if bridge is None else CLOSE_TAKEN)
        return
    bridge.connected.set()
    try:
        await _carry(ws, bridge, rate)
    finally:
        bridge.connected.clear()


async def _carry(ws: WebSocket, bridge: Bridge, rate: int) -> None:
    """The page's audio socket on ``bridge`` until the page or the call goes away."""
    sending = asyncio.create_task(_send_caller_audio(ws, bridge), name=f"agent-audio-{bridge.call_id}")
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes"):
                bridge.from_agent(message["bytes"], rate)
    except (WebSocketDisconnect, AudioFormatError) as err:
        if isinstance(err, AudioFormatError):
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close(CLOSE_POLICY)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending


async def _relay(ws: WebSocket, call_id: str, agent_id: str, rate: int, holder: str) -> None:
    """The page's audio through the live store to the server holding the call (``voice.bridge_relay``)."""
    store, desk = ws.app.state.store, ws.app.state.desk
    side = PageSide(store, call_id, agent_id, server=desk.server, holder=holder, now=desk.now)
    try:
        answer = None
        if holder in await store.servers_alive(desk.now()):  # a dead server's caller has no audio to give
            answer = await side.open()
        if answer != "ok":
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # (the page may have left meanwhile)
                await ws.close(CLOSE_TAKEN if answer == "taken" else CLOSE_NO_AUDIO)
            return
        side.bridge.connected.set()
        await _carry(ws, side.bridge, rate)
    except IvrError as err:  # the live store is away: the page may try again
        log.warning("agent audio relay failed: %s", err, extra={"call_id": call_id})
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(CLOSE_NO_AUDIO)
    finally:
        await side.close()


def bridge_of(app: Any, call_id: str) -> Bridge | None:
    """The call's bridge on this server: the live line's, or its agent desk's (``voice.live_transfer``)."""
    line = line_of(app)
    desk = getattr(line, "desk", None)
    return line.bridges.get(call_id) or (desk.bridges.get(call_id) if desk is not None else None)


async def _send_caller_audio(ws: WebSocket, bridge: Bridge) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        async for chunk in bridge.caller_audio():
            await ws.send_bytes(chunk)
        await ws.close(1000, "call ended")
