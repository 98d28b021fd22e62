"""The browser softphone: ``GET /phone`` (the page) and ``/phone/ws`` (its call), one more front door.

The page sends the microphone as 20 ms PCM16 frames and plays the reply audio it gets back (the
protocol, and every check of what the page sends: ``voice.softphone_wire``). Each connection is
one live call on the server's ``LiveLine``: ``BrowserLine`` is its ``Wire``, the receive loop feeds
the call's inbound side. Bad input from a page ends that page's call with an ``error`` message and
close code 1008; other calls never notice. A socket opened by a page of another site is refused
(browsers let any site open a WebSocket to 127.0.0.1; a call hears shop data).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from importlib import resources
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect, WebSocketState

from core.errors import IvrError, ProtocolError
from core.types import AudioFrame
from voice.live import LiveCall, LiveEvent
from voice.live_line import line_of
from voice.softphone_wire import Cleared, Dtmf, HangupRequest, Inbound, MarkPlayed, SoftphoneWire, Start

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0  # a page that connects says start at once
CLOSE_POLICY = 1008  # the page broke the protocol
CLOSE_UNAVAILABLE = 1011  # the hotline cannot take the call (no recogniser, ...)
CLOSE_TRY_LATER = 1013  # every line is busy
_STATIC = {
    "phone.js": "text/javascript; charset=utf-8",
    "phone-capture.js": "text/javascript; charset=utf-8",
    "phone.css": "text/css; charset=utf-8",
}

router = APIRouter()


def _static(name: str) -> bytes:
    return resources.files("voice").joinpath("static", name).read_bytes()


# the page loads nothing from anywhere else (no CDN, no fonts) and talks only to this server
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
}


@router.get("/phone", include_in_schema=False)
async def phone_page() -> Response:
    return Response(_static("phone.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/phone/static/{name}", include_in_schema=False)
async def phone_static(name: str) -> Response:
    media_type = _STATIC.get(name)
    if media_type is None:
        raise HTTPException(404, f"no softphone file {name!r}")
    return Response(_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})


class BrowserLine:
    """The softphone's ``Wire``: reply audio, marks, clears and events to one page, sends serialised."""

    def __init__(self, ws: WebSocket, wire: SoftphoneWire) -> None:
        self.ws, self.wire = ws, wire
        self._lock = asyncio.Lock()

    async def send_audio(self, frame: AudioFrame) -> None:
        await self.send(self.wire.audio(frame))

    async def clear(self) -> None:
        await self.send(self.wire.clear())

    async def mark(self, name: str) -> None:
        await self.send(self.wire.mark(name))

    async def event(self, event: LiveEvent) -> None:
        await self.send(self.wire.event(event))

    async def hangup(self) -> None:
        """Nothing to do yet: the socket is closed once ``run()`` returns, after the call's last events."""

    async def send(self, message: str | bytes) -> None:
        async with self._lock:
            if self.ws.application_state is not WebSocketState.CONNECTED:
                return
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):  # the page is gone
                if isinstance(message, bytes):
                    await self.ws.send_bytes(message)
                else:
                    await self.ws.send_text(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        async with self._lock:
            if self.ws.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await self.ws.close(code, reason)


def _same_site(ws: WebSocket) -> bool:
    """The page that opens the socket is ours (browsers send ``Origin``; any site may try a WebSocket).

    Ours: served from the host the socket is on, or from ``IVR_PUBLIC_URL``'s host (behind a proxy).
    A client without ``Origin`` is not a browser page, so no other site can be driving it.
    """
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    public = ws.app.state.hotline.settings.public_url
    ours = {ws.headers.get("host"), urlsplit(public).netloc if public else None} - {None}
    return urlsplit(origin).netloc in ours


@router.websocket("/phone/ws")
async def phone_call(ws: WebSocket) -> None:
    if not _same_site(ws):
        log.warning("softphone socket from another site refused (Origin %s)", ws.headers.get("origin"))
        await ws.close(CLOSE_POLICY)  # before accepting: the handshake gets 403
        return
    await ws.accept()
    wire = SoftphoneWire()
    line = BrowserLine(ws, wire)
    try:
        start = await asyncio.wait_for(_receive(ws, wire), START_TIMEOUT_S)
        assert isinstance(start, Start)  # the wire refuses anything else first
    except TimeoutError:
        await _refuse(line, f"expected a start message within {START_TIMEOUT_S:g} s, got nothing", CLOSE_POLICY)
        return
    except ProtocolError as err:
        await _refuse(line, str(err), CLOSE_POLICY)
        return
    except WebSocketDisconnect:
        return
    try:
        caller = ws.app.state.hotline.claimed_caller(start.caller)  # a typed number proves nothing by default
        call = await line_of(ws.app).open(line, caller=caller, rate=start.sample_rate)
    except IvrError as err:  # the line is full, or no recogniser can serve
        log.warning("softphone call refused: %s", err)
        await _refuse(line, f"热线暂时无法接听：{err}", CLOSE_TRY_LATER if err.retryable else CLOSE_UNAVAILABLE)
        return
    await _converse(ws, wire, line, call)


async def _converse(ws: WebSocket, wire: SoftphoneWire, line: BrowserLine, call: LiveCall) -> None:
    """Run ``call`` while feeding it what the page sends; close the socket when either side ends it."""
    await line.send(wire.ready(call.session.call_id))
    listening = asyncio.create_task(_listen(ws, wire, line, call), name="softphone-listen")
    try:
        await call.run()
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        line_of(ws.app).closed(call)
    await line.close(1000, "call ended")


async def _listen(ws: WebSocket, wire: SoftphoneWire, line: BrowserLine, call: LiveCall) -> None:
    try:
        while True:
            match await _receive(ws, wire):
                case AudioFrame() as frame:
                    call.feed_audio(frame)
                case Dtmf(digit):
                    call.feed_dtmf(digit)
                case MarkPlayed(name):
                    call.mark_played(name)
                case Cleared():
                    pass  # the answer to a clear: the core already counts the cut sentences as unheard
                case HangupRequest():
                    call.stop("caller hung up")
                    return
    except WebSocketDisconnect:
        call.stop("caller hung up")
    except ProtocolError as err:
        log.info("softphone call %s: bad input from the page: %s", call.session.call_id, err)
        await line.send(wire.error(str(err)))
        await line.close(CLOSE_POLICY, "protocol error")
        call.stop("protocol error")


async def _receive(ws: WebSocket, wire: SoftphoneWire) -> Inbound:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("bytes") is not None:
        return wire.decode_binary(message["bytes"], time.monotonic())
    if message.get("text") is not None:
        return wire.decode_text(message["text"])
    raise ProtocolError("expected a text or binary message, got an empty one")


async def _refuse(line: BrowserLine, message: str, code: int) -> None:
    await line.send(SoftphoneWire.error(message))
    await line.close(code, "refused")
