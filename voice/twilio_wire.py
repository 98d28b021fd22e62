"""Twilio Media Streams JSON ⇄ core types, and nothing else (the only module that reads that JSON).

Inbound (Twilio → us), one JSON text message each: ``connected``, ``start`` (stream and call
SIDs, our ``<Parameter>``s as ``customParameters``, the media format), ``media`` (base64 μ-law
8 kHz, usually 20 ms), ``dtmf``, ``mark`` (a mark we sent has been played), ``stop``. Outbound:
``media`` (μ-law base64), ``mark`` and ``clear``. A message that is not one of these — not JSON,
not an object, an unknown event, a missing field, broken base64, an oversized payload — is a
``WireError`` that says what was expected and what came.

Stream tokens: ``/twilio/voice`` puts a short-lived token in the TwiML as ``<Parameter
name="token">``; it names the call SID and the caller and is signed with HMAC-SHA256 under a key
derived from the Twilio auth token, so only a stream that Twilio opened for a call we answered is
served.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from core.errors import ProtocolError
from core.types import AudioFrame
from voice.codec import pcm16_to_ulaw, resample, ulaw_to_pcm16

RATE = 8000
MAX_MESSAGE_CHARS = 16_384  # a 20 ms media message is ~400 characters; Twilio sends at most a few hundred ms
MAX_PAYLOAD_BYTES = 8_000  # one second of μ-law
TOKEN_TTL_S = 120.0
_DTMF = frozenset("0123456789*#")


class WireError(ProtocolError):
    """A Media Streams message that is not what the protocol allows here."""


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    parameters: Mapping[str, str]
    encoding: str
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Media:
    frame: AudioFrame  # PCM16 at 8 kHz
    track: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str


Inbound = Connected | Start | Media | Dtmf | Mark | Stop


def parse(text: str) -> Inbound:
    """One inbound message as a core-side value; ``WireError`` for anything else."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise WireError(f"expected a message of at most {MAX_MESSAGE_CHARS} characters, got {len(text)}")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise WireError(f"expected a JSON message, got {text[:40]!r}") from None
    if not isinstance(message, dict):
        raise WireError(f"expected a JSON object, got {type(message).__name__}")
    event = message.get("event")
    reader = _READERS.get(event) if isinstance(event, str) else None
    if reader is None:
        raise WireError(f"expected event connected|start|media|dtmf|mark|stop, got {str(event)[:40]!r}")
    return reader(message)


def _connected(m: dict[str, object]) -> Inbound:
    return Connected(_text(m, "protocol", required=False))


def _start(m: dict[str, object]) -> Inbound:
    start = _object(m, "start")
    fmt = start.get("mediaFormat") if isinstance(start.get("mediaFormat"), dict) else {}
    assert isinstance(fmt, dict)
    params = start.get("customParameters") or {}
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise WireError("expected start.customParameters to be an object of strings")
    rate = fmt.get("sampleRate", RATE)
    if fmt.get("encoding", "audio/x-mulaw") != "audio/x-mulaw" or rate != RATE:
        raise WireError(f"expected audio/x-mulaw at 8000 Hz, got {fmt.get('encoding')!r} at {rate!r}")
    return Start(
        _text(m, "streamSid") or _text(start, "streamSid"),
        _text(start, "callSid"),
        _text(start, "accountSid", required=False),
        MappingProxyType({str(k): v for k, v in params.items()}),
        "audio/x-mulaw",
        RATE,
    )


def _media(m: dict[str, object]) -> Inbound:
    media = _object(m, "media")
    payload = _text(media, "payload")
    if len(payload) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
        raise WireError(f"expected a media payload of at most {MAX_PAYLOAD_BYTES} bytes, got ~{len(payload) * 3 // 4}")
    try:
        ulaw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise WireError("expected base64 in media.payload, got something else") from None
    stamp = media.get("timestamp", "0")
    try:
        timestamp = float(stamp) / 1000 if isinstance(stamp, str | int | float) else 0.0
    except ValueError:
        raise WireError(f"expected media.timestamp in milliseconds, got {str(stamp)[:20]!r}") from None
    return Media(AudioFrame(ulaw_to_pcm16(ulaw), RATE, timestamp), _text(media, "track", required=False) or "inbound")


def _dtmf(m: dict[str, object]) -> Inbound:
    digit = _text(_object(m, "dtmf"), "digit")
    if digit not in _DTMF:
        raise WireError(f"expected a DTMF digit 0-9 * #, got {digit[:8]!r}")
    return Dtmf(digit)


def _mark(m: dict[str, object]) -> Inbound:
    return Mark(_text(_object(m, "mark"), "name"))


def _stop(m: dict[str, object]) -> Inbound:
    stop = m.get("stop")
    return Stop(_text(stop, "callSid", required=False) if isinstance(stop, dict) else "")


_READERS = {"connected": _connected, "start": _start, "media": _media, "dtmf": _dtmf, "mark": _mark, "stop": _stop}


def _object(m: dict[str, object], key: str) -> dict[str, object]:
    value = m.get(key)
    if not isinstance(value, dict):
        raise WireError(f"expected an object in {key!r}, got {type(value).__name__}")
    return value


def _text(m: dict[str, object], key: str, *, required: bool = True) -> str:
    value = m.get(key)
    if isinstance(value, str) and len(value) <= 256:
        return value
    if value is None and not required:
        return ""
    raise WireError(f"expected a string of at most 256 characters in {key!r}, got {type(value).__name__}")


# -- outbound -------------------------------------------------------------------------------------


def media_message(stream_sid: str, frame: AudioFrame) -> str:
    """Reply audio (PCM16 at any rate) as an outbound ``media`` message of μ-law at 8 kHz."""
    pcm = frame.pcm if frame.sample_rate == RATE else resample(frame.pcm, frame.sample_rate, RATE)
    payload = base64.b64encode(pcm16_to_ulaw(pcm)).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})


# -- stream tokens --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamGrant:
    call_sid: str
    caller: str
    expires: float


def _token_key(auth_token: str) -> bytes:
    return hmac.new(auth_token.encode(), b"ivr media stream token", hashlib.sha256).digest()


def issue_token(auth_token: str, call_sid: str, caller: str, now: float | None = None) -> str:
    """A token for the media stream of ``call_sid``, valid for ``TOKEN_TTL_S`` seconds."""
    expires = (time.time() if now is None else now) + TOKEN_TTL_S
    body = base64.urlsafe_b64encode(json.dumps([call_sid, caller, round(expires, 3)]).encode()).decode()
    signature = hmac.new(_token_key(auth_token), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


def check_token(auth_token: str, token: str, now: float | None = None) -> StreamGrant:
    """The grant ``token`` carries; ``WireError`` when it is forged, malformed or expired."""
    body, _, signature = token.partition(".")
    expected = hmac.new(_token_key(auth_token), body.encode(), hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature, expected):
        raise WireError("expected a stream token signed by this hotline, got a bad signature")
    try:
        call_sid, caller, expires = json.loads(base64.urlsafe_b64decode(body))
    except (ValueError, TypeError):
        raise WireError("expected a stream token of this hotline, got a malformed one") from None
    if (time.time() if now is None else now) > expires:
        raise WireError("expected an unexpired stream token, got one that has expired")
    return StreamGrant(str(call_sid), str(caller), float(expires))
