"""The browser softphone's WebSocket protocol ⇄ core types, and nothing else.

The page (``voice/static/phone.js``) speaks this over ``/phone/ws``:

Page → server
    text ``{"type": "start", "caller": "+86…" | null, "sample_rate": 16000 | 8000}``, exactly once, first;
    binary: mono PCM16 little-endian at that rate, one 20 ms frame a message (up to ``MAX_FRAME_MS``);
    text ``{"type": "dtmf", "digit": "0"…"9" | "*" | "#"}``;
    text ``{"type": "mark", "name": …}`` when the audio sent before that mark has finished playing;
    text ``{"type": "cleared", "played_ms": …}`` after a ``clear``: how much of the cut reply was heard;
    text ``{"type": "hangup"}``.

Server → page
    binary: mono PCM16 little-endian reply audio at ``OUT_RATE``;
    text ``{"type": "ready", "call_id", "sample_rate"}`` once the call is open; ``{"type": "mark", "name"}``
    after each sentence's audio; ``{"type": "clear"}`` (barge-in: stop playing now, answer ``cleared``);
    ``{"type": "error", "message"}`` before closing on bad input; and every ``LiveEvent`` of the call
    as ``{"type": kind, "at": seconds, **data}`` (kinds in ``voice.live.LIVE_EVENT_KINDS``).

``SoftphoneWire`` is the protocol as a state machine for one connection: it turns each message
from the page into a core value (``AudioFrame`` with its stream timestamp, or one of the small
commands below) or raises ``ProtocolError`` saying what it expected and what it got. It checks
sizes, types, order (nothing before ``start``, no second ``start``, nothing after ``hangup``) and
that a mark the page acknowledges is one we sent and the oldest one still outstanding.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ProtocolError
from core.types import PCM_SAMPLE_WIDTH, AudioFrame
from voice.live import LiveEvent

IN_RATES = (8000, 16000)
OUT_RATE = 8000  # the TTS's telephone rate: reply audio is sent as it is synthesised
MAX_FRAME_MS = 100  # one binary message carries at most this much caller audio
MAX_AHEAD_S = 2.0  # a microphone makes audio in real time: a page this far ahead of the clock is not one
MAX_TEXT_CHARS = 512  # every text message the page sends is far shorter
MAX_PENDING_MARKS = 256
DTMF_DIGITS = frozenset("0123456789*#ABCD")
_CALLER = re.compile(r"\+?[0-9]{3,20}")
_MARK = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True, slots=True)
class Start:
    caller: str | None
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    name: str


@dataclass(frozen=True, slots=True)
class Cleared:
    played_ms: int


@dataclass(frozen=True, slots=True)
class HangupRequest:
    pass


Inbound = Start | AudioFrame | Dtmf | MarkPlayed | Cleared | HangupRequest


class SoftphoneWire:
    """One softphone connection's protocol state: page messages in, checked; server messages out."""

    def __init__(self) -> None:
        self.start: Start | None = None
        self.hung_up = False
        self._samples = 0  # caller samples received so far: the next frame's timestamp
        self._first_at: float | None = None  # when the first audio frame arrived
        self._marks: deque[str] = deque()  # sent and not yet acked, oldest first
        self._cut: deque[str] = deque()  # outstanding when we sent clear: acked only if played before it
        self._clears = 0  # clears sent and not yet answered by "cleared"

    # -- page → server ----------------------------------------------------------------------------

    def decode_text(self, text: str) -> Inbound:
        if len(text) > MAX_TEXT_CHARS:
            raise ProtocolError(f"expected a text message of at most {MAX_TEXT_CHARS} characters, got {len(text)}")
        message = _json_object(text)
        kind = message.get("type")
        if kind == "start":
            return self._on_start(message)
        self._require_started(f"a {kind!r} message" if isinstance(kind, str) else "a message")
        if kind == "dtmf":
            return Dtmf(_field(message, "digit", str, DTMF_DIGITS.__contains__, "one of 0-9 * # A-D"))
        if kind == "mark":
            return self._on_mark(_field(message, "name", str, _MARK.fullmatch, "a mark name"))
        if kind == "cleared":
            return self._on_cleared(_field(message, "played_ms", int, lambda v: 0 <= v <= 3_600_000, "0..3600000"))
        if kind == "hangup":
            self.hung_up = True
            return HangupRequest()
        raise ProtocolError(f"expected type start|dtmf|mark|cleared|hangup, got {kind!r}")

    def decode_binary(self, data: bytes, now: float) -> AudioFrame:
        """Caller audio received at ``now`` (monotonic seconds), stamped with its time in the stream."""
        self._require_started("binary audio")
        assert self.start is not None
        rate = self.start.sample_rate
        limit = rate * MAX_FRAME_MS // 1000 * PCM_SAMPLE_WIDTH
        if not data or len(data) > limit or len(data) % PCM_SAMPLE_WIDTH:
            raise ProtocolError(f"expected 2..{limit} bytes of PCM16 (even) in a binary message, got {len(data)}")
        if self._first_at is None:
            self._first_at = now
        frame = AudioFrame(data, rate, self._samples / rate)
        ahead = frame.timestamp + frame.duration - (now - self._first_at)
        if ahead > MAX_AHEAD_S:
            raise ProtocolError(f"expected audio in real time, got {ahead:.1f} s more than the time that has passed")
        self._samples += frame.samples
        return frame

    def _on_start(self, message: dict[str, Any]) -> Start:
        if self.start is not None:
            raise ProtocolError("expected one start per call, got a second start")
        caller = message.get("caller")
        if caller is not None and caller != "":
            if not isinstance(caller, str) or not _CALLER.fullmatch(caller):
                raise ProtocolError(f"expected caller as a phone number (+ and 3..20 digits), got {caller!r}")
        rate = _field(message, "sample_rate", int, IN_RATES.__contains__, f"one of {IN_RATES}")
        self.start = Start(caller or None, rate)
        return self.start

    def _on_mark(self, name: str) -> MarkPlayed:
        queue = self._cut if self._cut else self._marks
        if not queue:
            raise ProtocolError(f"expected no mark (none is outstanding), got mark {name!r}")
        if queue[0] != name:
            raise ProtocolError(f"expected mark {queue[0]!r} (the oldest outstanding), got {name!r}")
        queue.popleft()
        return MarkPlayed(name)

    def _on_cleared(self, played_ms: int) -> Cleared:
        if not self._clears:
            raise ProtocolError("expected cleared only in answer to a clear, got cleared")
        self._clears -= 1
        self._cut.clear()  # the page dropped the audio they followed: they will never be acked
        return Cleared(played_ms)

    def _require_started(self, what: str) -> None:
        if self.start is None:
            raise ProtocolError(f"expected a start message first, got {what}")
        if self.hung_up:
            raise ProtocolError(f"expected nothing after hangup, got {what}")

    # -- server → page ----------------------------------------------------------------------------

    @staticmethod
    def ready(call_id: str) -> str:
        """The call is open: reply audio will come as PCM16 at ``sample_rate``."""
        return _dump({"type": "ready", "call_id": call_id, "sample_rate": OUT_RATE})

    @staticmethod
    def event(event: LiveEvent) -> str:
        """A live call's event for the page: ``{"type": kind, "at": seconds, **data}``."""
        return _dump({**event.data, "type": event.kind, "at": event.at})

    def mark(self, name: str) -> str:
        """A mark after the audio sent so far; the page acks it once that audio has played."""
        if not _MARK.fullmatch(name):
            raise ValueError(f"a mark name must match {_MARK.pattern}, got {name!r}")
        if len(self._marks) + len(self._cut) >= MAX_PENDING_MARKS:
            raise ProtocolError(f"expected the page to ack marks, got {MAX_PENDING_MARKS} outstanding")
        self._marks.append(name)
        return _dump({"type": "mark", "name": name})

    def clear(self) -> str:
        """Stop playback at once; the marks still outstanding now may be acked only until "cleared"."""
        self._cut.extend(self._marks)
        self._marks.clear()
        self._clears += 1
        return _dump({"type": "clear"})

    @staticmethod
    def audio(frame: AudioFrame) -> bytes:
        if frame.sample_rate != OUT_RATE:
            raise ValueError(f"reply audio must be {OUT_RATE} Hz PCM16, got {frame.sample_rate} Hz")
        return frame.pcm

    @staticmethod
    def error(message: str) -> str:
        return _dump({"type": "error", "message": message})


def _json_object(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError(f"expected a JSON object, got {text[:40]!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a JSON object, got {type(message).__name__}")
    return message


def _field(message: dict[str, Any], name: str, kind: type, ok: Any, expected: str) -> Any:
    value = message.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) or not ok(value):
        raise ProtocolError(f"expected {name} as {expected}, got {value!r}")
    return value


def _dump(message: Mapping[str, Any]) -> str:
    # ASCII-only JSON: text from anywhere (even a lone surrogate) can always be sent as UTF-8
    return json.dumps(message, separators=(",", ":"), default=str)
