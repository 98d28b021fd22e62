"""SIP/RTP ⇄ core types, and nothing else: the SDP offer/answer, G.711 payloads, the caller's number.

The SIP stack is ``aiosipua`` (messages, dialogs, transactions, SDP parse and RFC 3264 answer) and
the RTP stack ``aiortp`` (packets, jitter buffer, RFC 4733 events); see ``voice.sip_server`` for
why. This module is where their values meet ours:

- ``answer(offer, host, port, version)``: our SDP answer to an offer (PCMU or PCMA, the first the
  caller prefers, and telephone-event under the offer's payload type when offered) and the
  ``Media`` it agrees: where to send RTP, the payload types, and whether the caller has put us on
  hold (``sendonly``/``inactive``, or the old-style ``c=0.0.0.0``). An offer we cannot answer is a
  ``SipMediaError`` (the INVITE gets 488).
- ``G711``: aiortp's codec interface over ``voice.codec`` (our μ-law/A-law tables), so RTP payloads
  become PCM16 at 8 kHz here and nowhere else.
- ``caller_number(request)``: the number in ``P-Asserted-Identity`` (set by a trusted trunk or PBX)
  or else ``From``, as the hotline's caller ID — what Twilio's ``From`` is to a Twilio call.
- ``dtmf_digit``: an RFC 4733 event as a keypad key; ``key_ticks``: keys to send, as the RFC 4733
  packets of each 20 ms tick (``voice.sip_media`` sends them in its pacer, in the audio's stream).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiortp import Codec, DtmfEvent
from aiosipua import SdpMessage, SdpNegotiationError, SipRequest, negotiate_sdp, parse_address

from core.errors import ProtocolError
from core.types import AudioFrame
from voice.codec import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the ptime we answer and send
PCMU, PCMA = 0, 8
DTMF_PAYLOAD_TYPE = 101  # telephone-event's number when the offer has none (then no keys either way)
_CODECS: dict[int, tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    PCMU: ("PCMU", pcm16_to_ulaw, ulaw_to_pcm16),
    PCMA: ("PCMA", pcm16_to_alaw, alaw_to_pcm16),
}
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_TEL = re.compile(r"^\s*(?:\"[^\"]*\"\s*)?<?tel:([-+0-9]+)", re.IGNORECASE)
_EVENT_CODES = "0123456789*#ABCD"  # RFC 4733 §3.2: events 0-15, in this order
_DIGITS = frozenset(_EVENT_CODES)
KEY_TONE_MS = 100  # how long each key we send lasts
KEY_PAUSE_MS = 100  # silence after each key (its repeated end packets go out in it)
KEY_VOLUME = 10  # -10 dBm0, the usual DTMF level (RFC 4733 §2.3.3: the power without its sign)
END_PACKETS = 3  # RFC 4733 §2.5.1.4: the final packet of an event is sent three times
MAX_KEYS = 32  # keys in one send: the pacer's queue stays bounded
_HOLD_DIRECTIONS = ("sendonly", "inactive")


class SipMediaError(ProtocolError):
    """An SDP offer the hotline cannot answer (no audio, no G.711, no address)."""


@dataclass(frozen=True, slots=True)
class Media:
    """What an offer/answer agreed: where our RTP goes and how it is encoded."""

    remote: tuple[str, int]  # the caller's RTP address
    payload_type: int  # PCMU (0) or PCMA (8)
    dtmf_payload_type: int | None  # the caller's telephone-event type; None: no RFC 4733 events
    held: bool  # the caller put us on hold: send nothing until an offer takes it back


def answer(
    offer: SdpMessage, host: str, port: int, version: int, codecs: Sequence[int] = (PCMU, PCMA)
) -> tuple[SdpMessage, Media]:
    """Our SDP answer on ``host:port`` (session version ``version``) and the media it agrees.

    The codec is the first of ``codecs`` the caller offers in its order of preference (a re-INVITE
    passes the one in use).
    """
    audio, remote = offer.audio, offer.rtp_address
    if audio is None or remote is None:
        raise SipMediaError("expected an SDP offer with an audio stream and an address, got none")
    dtmf = next((c.payload_type for c in audio.codecs if c.encoding_name.lower() == "telephone-event"), None)
    try:
        sdp, chosen = negotiate_sdp(
            offer,
            host,
            port,
            supported_codecs=[c for c in codecs if c in _CODECS],
            dtmf_payload_type=DTMF_PAYLOAD_TYPE if dtmf is None else dtmf,  # the offer's number (RFC 3264 §6.1)
            session_id="1",
        )
    except SdpNegotiationError as err:
        raise SipMediaError(f"expected PCMU or PCMA in the offer: {err}") from None
    sdp.origin.session_id, sdp.origin.session_version = "1", str(version)
    held = audio.direction in _HOLD_DIRECTIONS or remote[0] in ("0.0.0.0", "::") or remote[1] == 0
    return sdp, Media(remote, chosen, dtmf, held)


class G711(Codec):
    """aiortp's codec interface over ``voice.codec`` (20 ms frames at 8 kHz)."""

    def __init__(self, payload_type: int) -> None:
        if payload_type not in _CODECS:
            raise ValueError(f"expected payload type PCMU (0) or PCMA (8), got {payload_type}")
        self._name, self._encode, self._decode = _CODECS[payload_type]

    @property
    def name(self) -> str:
        return self._name

    @property
    def sample_rate(self) -> int:
        return RATE

    @property
    def samples_per_frame(self) -> int:
        return FRAME_SAMPLES

    def encode(self, pcm: bytes) -> bytes:
        return self._encode(pcm)

    def decode(self, payload: bytes) -> bytes:
        return self._decode(payload)


def payload(codec: G711, frame: AudioFrame) -> bytes:
    """One reply frame (PCM16, 8 kHz) as an RTP payload."""
    if frame.sample_rate != RATE:
        raise ValueError(f"reply audio must be {RATE} Hz PCM16, got {frame.sample_rate} Hz")
    return codec.encode(frame.pcm)


def caller_audio(pcm: bytes) -> AudioFrame:
    """Decoded caller audio (aiortp's ``on_audio``) as a core frame."""
    return AudioFrame(pcm[: len(pcm) - len(pcm) % 2], RATE)


def caller_number(request: SipRequest) -> str | None:
    """The caller's number from ``P-Asserted-Identity``, else ``From``; ``None`` when it is not a number."""
    for header in ("p-asserted-identity", "from"):
        for value in request.headers.get(header):
            number = _number(value)
            if number is not None:
                return number
    return None


def _number(value: str) -> str | None:
    tel = _TEL.search(value)  # aiosipua parses sip:/sips: URIs only; a tel: URI (RFC 3966) is read here
    if tel is not None:
        user = tel[1].replace("-", "")
        return user if _NUMBER.fullmatch(user) else None
    try:
        uri = parse_address(value.split(",")[0]).uri
    except (ValueError, IndexError):
        return None
    user = uri.user
    if user is None:
        return None
    user = user.split(";")[0].replace("-", "")
    return user if _NUMBER.fullmatch(user) else None


def dtmf_digit(digit: str) -> str | None:
    """An RFC 4733 event (aiortp's digit) as a keypad key; ``None`` for events that are not keys."""
    return digit if digit in _DIGITS else None


@dataclass(frozen=True, slots=True)
class KeyTick:
    """What one 20 ms tick of outgoing keys sends: an RFC 4733 payload, or nothing (the pause after a key)."""

    payload: bytes | None
    starts: bool = False  # a key's first packet: RTP marker set; its timestamp is the whole key's


def key_ticks(keys: str, tone_ms: int = KEY_TONE_MS, pause_ms: int = KEY_PAUSE_MS) -> list[KeyTick]:
    """``keys`` (0-9 * # A-D) as RFC 4733 telephone-events, one ``KeyTick`` per 20 ms.

    Each key: a packet every tick while it lasts, its duration growing by 160 (the time since the
    key's timestamp); the last has the E bit, and is sent three times in all; then silence until
    ``pause_ms`` after the key ends (at least the two repeats).
    """
    bad = [key for key in keys if key not in _DIGITS]
    if not 1 <= len(keys) <= MAX_KEYS or bad:
        raise ValueError(f"expected 1-{MAX_KEYS} keys from 0-9 * # A-D, got {keys[:40]!r}")
    frame_ms = 1000 * FRAME_SAMPLES // RATE
    tone, longest = tone_ms // frame_ms, 0xFFFF // FRAME_SAMPLES  # the duration field has 16 bits
    if not 1 <= tone <= longest:
        raise ValueError(f"expected a key length of {frame_ms}-{longest * frame_ms} ms, got {tone_ms} ms")
    quiet = max(0, pause_ms // frame_ms - (END_PACKETS - 1))
    ticks: list[KeyTick] = []
    for key in keys:
        code = _EVENT_CODES.index(key)
        for n in range(1, tone + 1):
            payload = DtmfEvent(code, end=n == tone, volume=KEY_VOLUME, duration=n * FRAME_SAMPLES).serialize()
            ticks.append(KeyTick(payload, starts=n == 1))
        ticks += [KeyTick(ticks[-1].payload)] * (END_PACKETS - 1) + [KeyTick(None)] * quiet
    return ticks
