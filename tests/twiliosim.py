"""A simulated Twilio on loopback: the signed voice webhook, the TwiML it answers, and a Media Streams peer.

What Twilio does, done the same way: ``answer_call`` posts the voice webhook form signed with
``RequestValidator.compute_signature`` over ``IVR_PUBLIC_URL + /twilio/voice``, parses the TwiML
``<Connect><Stream url><Parameter name="token">``. ``TwilioPeer`` opens that stream (on the
loopback server instead of the public host), sends ``connected`` and ``start`` (with the token in
``customParameters``), then 20 ms μ-law ``media`` frames in real time — silence unless a clip is
being said — and plays what it receives in real time: a ``mark`` is echoed back when the audio
before it has played, ``clear`` empties the buffer and returns the marks still waiting, as Twilio
does. Everything received is logged with its arrival time (``time.monotonic``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator

from voice.codec import pcm16_to_ulaw

FRAME_S = 0.02
FRAME_BYTES = 160
SILENCE = bytes([0xFF]) * FRAME_BYTES


def signed_post(base_url: str, public_url: str, auth_token: str, path: str, form: dict[str, str]) -> httpx.Response:
    """POST ``form`` to ``base_url + path`` signed as Twilio signs it for ``public_url + path``."""
    signature = RequestValidator(auth_token).compute_signature(public_url.rstrip("/") + path, form)
    return httpx.post(base_url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=30)


def answer_call(base_url: str, public_url: str, auth_token: str, call_sid: str, caller: str) -> tuple[str, str]:
    """Post the voice webhook as Twilio would; returns (stream URL from the TwiML, stream token)."""
    form = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": caller, "To": "+14155550100"}
    response = signed_post(base_url, public_url, auth_token, "/twilio/voice", form)
    response.raise_for_status()
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None, response.text
    token = next(p.get("value", "") for p in stream.findall("Parameter") if p.get("name") == "token")
    return stream.get("url", ""), token


def on_loopback(stream_url: str, base_url: str) -> str:
    """The stream URL with its public host replaced by the loopback server's."""
    public, local = urllib.parse.urlsplit(stream_url), urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(("ws", local.netloc, public.path, public.query, ""))


def ulaw_frames(pcm8k: bytes) -> list[bytes]:
    ulaw = pcm16_to_ulaw(pcm8k)
    ulaw += SILENCE[: -len(ulaw) % FRAME_BYTES]
    return [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]


@dataclass
class TwilioPeer:
    url: str
    token: str
    call_sid: str
    stream_sid: str = "MZ" + "1" * 32
    media: list[float] = field(default_factory=list)  # arrival time of each reply media frame
    marks: list[tuple[float, str]] = field(default_factory=list)  # (arrival, name)
    clears: list[float] = field(default_factory=list)
    echoed: list[str] = field(default_factory=list)  # marks we sent back as played
    closed: tuple[int, str] | None = None

    async def __aenter__(self) -> TwilioPeer:
        self.ws = await websockets.connect(self.url, max_size=2**20)
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = {
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "accountSid": "AC" + "0" * 32,
            "tracks": ["inbound"],
            "customParameters": {"token": self.token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self._send({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": self.stream_sid})
        self._clip: list[bytes] = []
        self._clip_done = asyncio.Event()
        self._sent_at: list[float] = []
        self._play_end = 0.0
        self._echoes: dict[str, asyncio.Task[None]] = {}
        self._seq = 1
        self._tasks = [asyncio.create_task(self._talk()), asyncio.create_task(self._listen())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def hang_up(self) -> None:
        if self.closed is None:
            try:
                await self._send({"event": "stop", "streamSid": self.stream_sid, "stop": {"callSid": self.call_sid}})
            except websockets.ConnectionClosed:
                pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.close()

    async def _send(self, message: dict[str, object]) -> None:
        await self.ws.send(json.dumps(message))

    async def say(self, pcm8k: bytes) -> list[float]:
        """Send ``pcm8k`` as the caller's next audio; returns the send time of each of its frames."""
        self._sent_at = []
        self._clip_done = asyncio.Event()
        self._clip = ulaw_frames(pcm8k)
        said = asyncio.ensure_future(self._clip_done.wait())
        await asyncio.wait({said, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        if not said.done():
            said.cancel()
            raise ConnectionError(f"the media stream ended while the caller was speaking: {self.closed}")
        return list(self._sent_at)

    async def _talk(self) -> None:
        """A media frame every 20 ms of real time: the clip being said, else line silence."""
        origin, n = time.monotonic(), 0
        while True:
            payload = self._clip.pop(0) if self._clip else SILENCE
            self._seq += 1
            stamp = str(int(n * FRAME_S * 1000))
            data = base64.b64encode(payload).decode()
            media = {"track": "inbound", "chunk": str(n), "timestamp": stamp, "payload": data}
            await self._send({"event": "media", "sequenceNumber": str(self._seq), "media": media})
            if payload is not SILENCE:
                self._sent_at.append(time.monotonic())
                if not self._clip:
                    self._clip_done.set()
            n += 1
            await asyncio.sleep(max(0.0, origin + n * FRAME_S - time.monotonic()))

    async def _listen(self) -> None:
        try:
            async for raw in self.ws:
                self._on(json.loads(raw), time.monotonic())
        except websockets.ConnectionClosed as closed:
            self.closed = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (1006, "")
            return
        self.closed = (self.ws.close_code or 1006, self.ws.close_reason or "")

    def _on(self, message: dict[str, object], now: float) -> None:
        event = message.get("event")
        if event == "media":
            self.media.append(now)
            self._play_end = max(self._play_end, now) + FRAME_S
        elif event == "mark":
            name = str(message["mark"]["name"])  # type: ignore[index]
            self.marks.append((now, name))
            self._echoes[name] = asyncio.create_task(self._echo_at(name, self._play_end))
        elif event == "clear":
            self.clears.append(now)
            self._play_end = now
            for name, task in list(self._echoes.items()):
                task.cancel()
                self._echoes[name] = asyncio.create_task(self._echo_at(name, now))

    async def _echo_at(self, name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        self._echoes.pop(name, None)
        self.echoed.append(name)
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})


class TwilioLoopback(TwilioHttpClient):
    """The twilio library's own HTTP client, sending to a local server (``base``) instead of api.twilio.com."""

    def __init__(self, base: str) -> None:
        super().__init__(timeout=10)
        self.base = base

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urllib.parse.urlsplit(url)
        assert parts.netloc == "api.twilio.com", url
        return super().request(method, self.base + parts.path, *args, **kwargs)
