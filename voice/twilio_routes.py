"""The Twilio front door: the voice webhook, the status callback and the Media Streams WebSocket.

``POST /twilio/voice`` (signed by Twilio) answers with TwiML that connects the call's audio to
``wss://<IVR_PUBLIC_URL host>/twilio/stream`` with a short-lived signed token as a
``<Parameter>``. ``/twilio/stream`` checks the token, opens a ``LiveCall`` on the shared
``LiveLine`` and adapts the WebSocket to its ``Wire``; the JSON itself is read and written by
``voice.twilio_wire`` only. ``POST /twilio/status`` (signed) records Twilio's status callbacks
with the call. A call the hotline ends is hung up through Twilio's REST API.

A transfer to an agent (``voice.twilio_transfer``): ``GET /twilio/hold.wav`` is what the caller hears
waiting in the conference; ``POST /twilio/participant?room=`` (signed) reports the agent's leg, handed
as an ``AgentLegResult`` to ``app.state.on_agent_leg`` (an async callable, awaited before the webhook
answers: keep it short); ``POST /twilio/conference`` (signed) records the room's events, and its
``conference-end`` finishes the agent's call (wrap-up; their desk is told the caller is gone).

Signatures: ``X-Twilio-Signature`` is checked with the twilio library's ``RequestValidator``
over ``IVR_PUBLIC_URL`` + the path (what Twilio requested) and the form fields. Without
``TWILIO_AUTH_TOKEN`` or ``IVR_PUBLIC_URL`` the webhooks answer 503 and accept nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from core.errors import IvrError
from core.settings import Settings
from core.types import AudioFrame, mask_phone
from routing.accounts import AgentContact
from voice import twilio_wire as tw
from voice.hold_audio import hold_wav
from voice.live import LiveCall, LiveEvent
from voice.live_line import line_of
from voice.live_metrics import LIVE_CALLS
from voice.twilio_rest import TwilioRest
from voice.twilio_transfer import (
    AGENT_RING_S,
    AgentLegError,
    AgentLegResult,
    OnAgentLeg,
    TwilioLegs,
    call_of,
    dial_agent,
    leg_result,
    move_caller,
    room_of,
)

log = logging.getLogger(__name__)
LEG_GRACE_S = 15.0  # beyond the agent's ring time, how long to wait for Twilio's word on their leg
router = APIRouter(prefix="/twilio")

MAX_FORM_BYTES = 64 * 1024
POLICY, BAD_DATA, UNSUPPORTED, TOO_BIG, TRY_LATER = 1008, 1007, 1003, 1009, 1013
_STATUS_KEEP = 50  # status callbacks kept per call
_STATUS_FIELDS = ("CallStatus", "Timestamp", "CallDuration", "SequenceNumber")
_ROOM_FIELDS = ("StatusCallbackEvent", "CallSid", "ConferenceSid", "Timestamp", "SequenceNumber")


@dataclass
class TwilioCalls:
    """What the Twilio front door remembers: calls answered, their status callbacks, the REST client."""

    settings: Settings
    answered: dict[str, float] = field(default_factory=dict)  # call SID -> when its stream token expires
    statuses: dict[str, deque[dict[str, str]]] = field(default_factory=dict)
    live: dict[str, LiveCall] = field(default_factory=dict)
    rest: TwilioRest | None = None
    rooms: dict[str, deque[dict[str, str]]] = field(default_factory=dict)  # conference events by room name
    dialled: dict[str, str] = field(default_factory=dict)  # call SID -> the number the caller dialled (ours)
    agent_legs: dict[str, asyncio.Future[AgentLegResult]] = field(default_factory=dict)  # room -> leg awaited
    transfer: TwilioLegs | None = None  # the REST requests of transfers (made on first use)
    moved: set[str] = field(default_factory=set)  # call SIDs handed to a conference: never hung up through REST

    async def leg_result(self, result: AgentLegResult) -> None:
        """An agent leg's outcome (``app.state.on_agent_leg``): the hand-over waiting for it goes on."""
        waiting = self.agent_legs.get(result.room)
        if waiting is not None and not waiting.done() and result.outcome != "ended":
            waiting.set_result(result)

    def transfer_legs(self) -> TwilioLegs:
        if self.transfer is None:
            self.transfer = TwilioLegs(self.settings)
        return self.transfer

    def rest_client(self) -> TwilioRest:
        if self.rest is None:
            self.rest = TwilioRest(self.settings.twilio_account_sid, self.settings.twilio_auth_token)
        return self.rest

    def forget_expired(self, now: float) -> None:
        for sid in [sid for sid, expires in self.answered.items() if expires < now]:
            del self.answered[sid]


def calls_of(app: Any) -> TwilioCalls:
    """The Twilio state of a FastAPI app (made on first use)."""
    calls = getattr(app.state, "twilio_calls", None)
    if calls is None:
        calls = app.state.twilio_calls = TwilioCalls(app.state.hotline.settings)
        if getattr(app.state, "on_agent_leg", None) is None:
            app.state.on_agent_leg = calls.leg_result
    return calls


# -- webhooks -------------------------------------------------------------------------------------


async def _signed_form(request: Request, path: str) -> dict[str, str]:
    """The form Twilio posted, after its ``X-Twilio-Signature`` checked out; else an HTTP error."""
    settings = calls_of(request.app).settings
    if not settings.twilio_auth_token or not settings.public_url:
        raise HTTPException(503, "Twilio is not configured: set TWILIO_AUTH_TOKEN and IVR_PUBLIC_URL")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"form over {MAX_FORM_BYTES} bytes")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    url = settings.public_url.rstrip("/") + path + (f"?{request.url.query}" if request.url.query else "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(settings.twilio_auth_token).validate(url, form, signature):
        raise HTTPException(403, "X-Twilio-Signature does not match this request")
    return form


def stream_url(public_url: str) -> str:
    """``wss://host/.../twilio/stream`` for ``https://host/...`` (``ws://`` for plain http)."""
    scheme, rest = public_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/twilio/stream"


@router.post("/voice")
async def voice_webhook(request: Request) -> Response:
    """A call came in: connect its audio to our Media Streams WebSocket."""
    form = await _signed_form(request, "/twilio/voice")
    calls = calls_of(request.app)
    call_sid, caller = form.get("CallSid", ""), form.get("From", "")
    if not call_sid:
        raise HTTPException(400, "expected CallSid in the form")
    assert calls.settings.twilio_auth_token is not None and calls.settings.public_url is not None
    if line_of(request.app).full:
        busy = VoiceResponse()
        busy.reject(reason="busy")
        log.warning("twilio call rejected: the line is full", extra={"call_sid": call_sid})
        return Response(str(busy), media_type="application/xml")
    now = time.time()
    calls.forget_expired(now)
    token = tw.issue_token(calls.settings.twilio_auth_token, call_sid, caller, now)
    calls.answered[call_sid] = now + tw.TOKEN_TTL_S
    calls.dialled[call_sid] = form.get("To", "")
    response, connect = VoiceResponse(), Connect()
    stream = connect.stream(url=stream_url(calls.settings.public_url))
    stream.parameter(name="token", value=token)
    response.append(connect)
    log.info("twilio call answered", extra={"call_sid": call_sid, "caller": mask_phone(caller)})
    return Response(str(response), media_type="application/xml")


@router.post("/status")
async def status_callback(request: Request) -> JSONResponse:
    """Twilio's call status callback, recorded with the call (and a completed call is stopped)."""
    form = await _signed_form(request, "/twilio/status")
    calls = calls_of(request.app)
    call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
    entry: dict[str, str] = {k: form[k] for k in _STATUS_FIELDS if k in form}
    calls.statuses.setdefault(call_sid, deque(maxlen=_STATUS_KEEP)).append(entry)
    live = calls.live.get(call_sid)
    if live is not None and status in ("completed", "busy", "failed", "no-answer", "canceled"):
        live.stop(f"twilio status {status}")
    log.info("twilio status", extra={"call_sid": call_sid, "status": status})
    return JSONResponse({"recorded": True})


# -- a transfer to an agent (voice.twilio_transfer) ----------------------------------------------


@router.get("/hold.wav")
async def hold_audio() -> Response:
    """The hold audio the caller hears alone in the conference (public: a synthesised chord, nothing private)."""
    return Response(hold_wav(), media_type="audio/wav", headers={"Cache-Control": "public, max-age=86400"})


@router.post("/participant")
async def participant_callback(request: Request) -> JSONResponse:
    """The agent's leg into a conference: recorded, and an outcome handed to ``app.state.on_agent_leg``."""
    form = await _signed_form(request, "/twilio/participant")
    calls = calls_of(request.app)
    room, call_sid = request.query_params.get("room", ""), form.get("CallSid", "")
    entry: dict[str, str] = {k: form[k] for k in _STATUS_FIELDS if k in form}
    calls.statuses.setdefault(call_sid, deque(maxlen=_STATUS_KEEP)).append(entry)
    result = leg_result(room, form)
    log.info("twilio agent leg", extra={"room": room, "call_sid": call_sid, "status": form.get("CallStatus", "")})
    on_agent_leg = getattr(request.app.state, "on_agent_leg", None)
    if result is not None and on_agent_leg is not None:
        await _hand_over(on_agent_leg, result)
    return JSONResponse({"recorded": True, "outcome": None if result is None else result.outcome})


async def _hand_over(on_agent_leg: OnAgentLeg, result: AgentLegResult) -> None:
    try:
        await on_agent_leg(result)
    except Exception:  # Twilio cannot act on our failure: log it and answer 200
        log.exception("on_agent_leg failed", extra={"room": result.room, "outcome": result.outcome})


@router.post("/conference")
async def conference_callback(request: Request) -> JSONResponse:
    """The conference's status callback (start, end, join, leave), recorded by room."""
    form = await _signed_form(request, "/twilio/conference")
    room = form.get("FriendlyName", "")
    entry: dict[str, str] = {k: form[k] for k in _ROOM_FIELDS if k in form}
    calls_of(request.app).rooms.setdefault(room, deque(maxlen=_STATUS_KEEP)).append(entry)
    log.info("twilio conference", extra={"room": room, "event": form.get("StatusCallbackEvent", "")})
    if form.get("StatusCallbackEvent") == "conference-end" and (call_id := call_of(room)) is not None:
        await _talk_over(request.app, call_id)
    return JSONResponse({"recorded": True})


async def _talk_over(app: Any, call_id: str) -> None:
    """The caller and the agent are done talking: the agent goes to wrap-up and their desk is told
    (nothing when no agent had accepted the call, or they already pressed finish)."""
    store, dispatcher = getattr(app.state, "store", None), getattr(app.state, "dispatcher", None)
    if store is None or dispatcher is None:
        return
    try:
        record = await store.load_call(call_id)
        if record is None or record.get("status") != "accepted" or not record.get("agent"):
            return
        await dispatcher.finish(str(record["agent"]), call_id)
        await store.publish(f"call:{call_id}", {"type": "ended", "outcome": "transferred"})
    except IvrError as err:  # Twilio cannot act on our failure: the agent's finish button still can
        log.warning("the end of a transfer's conference was not recorded: %s", err, extra={"call_sid": call_id})


# -- the media stream -----------------------------------------------------------------------------


class TwilioWire:
    """``Wire`` over a Media Streams WebSocket (sends are serialised; a dead socket stops the call)."""

    def __init__(self, ws: WebSocket, stream_sid: str, call_sid: str, calls: TwilioCalls) -> None:
        self.ws, self.stream_sid, self.call_sid, self.calls = ws, stream_sid, call_sid, calls
        self.call: LiveCall | None = None
        self._lock = asyncio.Lock()
        self._gone = False

    async def _send(self, text: str) -> None:
        if self._gone:
            return
        try:
            async with self._lock:
                await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._gone = True
            if self.call is not None:
                self.call.stop("the media stream closed")

    async def send_audio(self, frame: AudioFrame) -> None:
        await self._send(tw.media_message(self.stream_sid, frame))

    async def clear(self) -> None:
        await self._send(tw.clear_message(self.stream_sid))

    async def mark(self, name: str) -> None:
        await self._send(tw.mark_message(self.stream_sid, name))

    async def event(self, event: LiveEvent) -> None:
        """Twilio has no screen: per-turn latency goes to the log, the rest is dropped."""
        if event.kind == "latency":
            log.info("turn latency", extra={"call_sid": self.call_sid, **event.data})

    async def hand_over(self, contact: AgentContact) -> bool | None:
        """An agent with a phone number: dialled into a conference room of this call; once they answer,
        the caller is moved in (True) — until then the caller stays on the hotline's hold audio. False:
        they did not answer (or Twilio refused); None: no phone number, or no Twilio REST account."""
        settings = self.calls.settings
        if not contact.phone or not settings.twilio_account_sid or not settings.public_url:
            return None
        room = room_of(self.call_sid)
        waiting: asyncio.Future[AgentLegResult] = asyncio.get_running_loop().create_future()
        self.calls.agent_legs[room] = waiting
        legs = self.calls.transfer_legs()
        try:
            our_number = self.calls.dialled.get(self.call_sid) or contact.phone
            await dial_agent(settings, room, contact.phone, our_number, legs=legs)
            result = await asyncio.wait_for(waiting, AGENT_RING_S + LEG_GRACE_S)
        except (AgentLegError, TimeoutError) as err:
            log.warning("twilio agent leg failed: %s", err, extra={"call_sid": self.call_sid})
            return False
        finally:
            self.calls.agent_legs.pop(room, None)
        if result.outcome != "answered":
            return False
        self.calls.moved.add(self.call_sid)
        try:
            await move_caller(settings, self.call_sid, room, legs=legs)
        except AgentLegError as err:
            self.calls.moved.discard(self.call_sid)
            log.warning("twilio caller not moved to the agent: %s", err, extra={"call_sid": self.call_sid})
            return False
        return True

    async def hangup(self) -> None:
        if self.call_sid in self.calls.moved:
            return  # the caller is with the agent in the conference: their call must go on
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.calls.rest_client().hang_up, self.call_sid)
        except Exception as err:  # the caller still gets the stream closed below
            log.warning("twilio hang-up failed: %s", err, extra={"call_sid": self.call_sid})


@router.websocket("/stream")
async def media_stream(ws: WebSocket) -> None:
    await ws.accept()
    calls = calls_of(ws.app)
    try:
        start = await _await_start(ws, calls)
    except tw.WireError as err:
        await _close(ws, POLICY, str(err))
        return
    except WebSocketDisconnect:
        return
    if start is None:
        return
    await _serve(ws, calls, start)


async def _await_start(ws: WebSocket, calls: TwilioCalls) -> tuple[tw.Start, tw.StreamGrant] | None:
    """``connected`` (optional) then ``start`` with a valid token for a call we answered."""
    while True:
        message = await _receive(ws)
        if message is None:
            return None
        event = tw.parse(message)
        if isinstance(event, tw.Connected):
            continue
        if not isinstance(event, tw.Start):
            raise tw.WireError(f"expected start, got {type(event).__name__.lower()} before it")
        token, auth = event.parameters.get("token", ""), calls.settings.twilio_auth_token
        if not auth:
            raise tw.WireError("expected Twilio to be configured (TWILIO_AUTH_TOKEN), got no token to check with")
        grant = tw.check_token(auth, token)
        if grant.call_sid != event.call_sid or calls.answered.pop(grant.call_sid, None) is None:
            raise tw.WireError(f"expected a stream for a call this hotline answered, got call {event.call_sid[:40]!r}")
        return event, grant


async def _receive(ws: WebSocket) -> str | None:
    """The next text message; ``None`` (socket closed with a code) for binary or oversized ones."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        await _close(ws, UNSUPPORTED, "expected text messages, got binary")
        return None
    if len(text) > tw.MAX_MESSAGE_CHARS:
        await _close(ws, TOO_BIG, f"expected messages of at most {tw.MAX_MESSAGE_CHARS} characters")
        return None
    return str(text)


async def _serve(ws: WebSocket, calls: TwilioCalls, started: tuple[tw.Start, tw.StreamGrant]) -> None:
    start, grant = started
    wire = TwilioWire(ws, start.stream_sid, start.call_sid, calls)
    line = line_of(ws.app)
    try:
        call = await line.open(wire, caller=grant.caller or None, call_id=start.call_sid, channel="twilio")
    except IvrError as err:  # the line is full, or no recogniser can serve
        log.warning("twilio call refused: %s", err, extra={"call_sid": start.call_sid})
        await _close(ws, TRY_LATER, str(err))
        return
    wire.call = call
    calls.live[start.call_sid] = call
    LIVE_CALLS.labels("twilio").inc()
    running = asyncio.get_running_loop().create_task(call.run(), name=f"call-{start.call_sid[-6:]}")
    reader = asyncio.get_running_loop().create_task(_read(ws, call), name="twilio-reader")
    try:
        await asyncio.wait({running, reader}, return_when=asyncio.FIRST_COMPLETED)
        call.stop("caller hung up" if reader.done() else "the hotline ended the call")
        outcome = await running
        log.info("twilio call ended", extra={"call_sid": start.call_sid, "outcome": outcome.type})
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        calls.live.pop(start.call_sid, None)
        line.closed(call)
        await _close(ws, 1000, "call ended")


async def _read(ws: WebSocket, call: LiveCall) -> None:
    """Inbound messages to the call until ``stop``, a disconnect or a malformed message."""
    try:
        while True:
            text = await _receive(ws)
            if text is None:
                return
            event = tw.parse(text)
            if isinstance(event, tw.Media):
                call.feed_audio(event.frame)
            elif isinstance(event, tw.Dtmf):
                call.feed_dtmf(event.digit)
            elif isinstance(event, tw.Mark):
                call.mark_played(event.name)
            elif isinstance(event, tw.Stop):
                return
            elif isinstance(event, tw.Start):
                raise tw.WireError("expected media, dtmf, mark or stop, got a second start")
    except tw.WireError as err:
        log.warning("twilio stream closed: %s", err)
        await _close(ws, BAD_DATA, str(err))
    except WebSocketDisconnect:
        return


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code, reason[:120])
