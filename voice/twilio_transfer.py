"""The agent's leg of a warm transfer on Twilio: the caller waits in a conference, the agent is dialled into it.

1. ``move_caller(settings, call_sid, room)`` redirects the caller's call (REST ``Calls(sid).update``
   with ``Twiml``) to ``conference_twiml``: ``<Dial><Conference>`` that does not start when the
   caller enters and ends when the caller leaves. Twilio ends the call's media stream (the bot's
   ``LiveCall`` stops) and plays ``GET /twilio/hold.wav`` (``voice.hold_audio``) to the caller, who is
   alone in the room until an agent joins.
2. ``dial_agent(settings, room, to, from_)`` adds the agent as a conference participant (REST
   ``Conferences(room)/Participants`` create: Twilio calls ``to`` and puts the answered call in the
   room, which starts the conference). It returns the agent leg's call SID; how the leg went comes
   later, to ``POST /twilio/participant?room=<room>`` (signed, checked like every webhook), as an
   ``AgentLegResult`` handed to ``app.state.on_agent_leg``. No answer, busy or failed: dial the next
   agent into the same room while the caller keeps hearing the hold audio.
3. The conference ends when either leaves (both end it on exit); its ``conference-end`` callback
   (``POST /twilio/conference``, signed) finishes the agent's call: the line is released, the agent
   goes to wrap-up and their desk is told the caller is gone, as when a desk-page talk ends.

The REST calls block (HTTP), so the async functions run them in the default executor, as the
hang-up does. A failure is an ``AgentLegError``: retryable when Twilio could not be reached, timed
out, was overloaded (429) or failed (5xx); not when it refused the request (4xx: a bad number, an
unknown call), and then the message says what Twilio said, phone numbers masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse

from core.errors import ConfigError, IvrError
from core.settings import Settings
from core.types import mask_phone

REST_TIMEOUT_S = 10.0  # one REST request; the library's default is to wait forever
AGENT_RING_S = 20  # how long Twilio rings the agent (Twilio adds ~5 s)
PARTICIPANT_EVENTS = ("initiated", "ringing", "answered", "completed")
CONFERENCE_EVENTS = "start end join leave"
ROOM_PREFIX = "ivr-"  # a live call's room: ROOM_PREFIX + its call SID (``room_of``)
_ROOM = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SIP = re.compile(r"sips?:[A-Za-z0-9._~+-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_NUMBER_IN_TEXT = re.compile(r"\+?[0-9]{7,15}")

Outcome = Literal["answered", "no-answer", "busy", "failed", "ended"]
# Twilio's CallStatus of the agent's leg -> what it means for the transfer (progress statuses are absent)
_OUTCOMES: Mapping[str, Outcome] = {
    "in-progress": "answered",
    "no-answer": "no-answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "failed",
    "completed": "ended",  # the agent hung up after answering
}


@dataclass(frozen=True, slots=True)
class AgentLegResult:
    """How the agent's leg into ``room`` went. ``answered``: the agent is with the caller; ``no-answer``,
    ``busy``, ``failed``: try the next agent; ``ended``: the agent's answered leg hung up."""

    room: str
    call_sid: str  # the agent's leg (not the caller's call)
    outcome: Outcome
    status: str  # Twilio's CallStatus, as sent


OnAgentLeg = Callable[[AgentLegResult], Awaitable[None]]  # what the app sets as ``app.state.on_agent_leg``


class AgentLegError(IvrError):
    """Twilio could not move the caller or dial the agent; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def hold_url(public_url: str) -> str:
    return public_url.rstrip("/") + "/twilio/hold.wav"


def conference_status_url(public_url: str) -> str:
    return public_url.rstrip("/") + "/twilio/conference"


def room_of(call_sid: str) -> str:
    """The conference room a live call's caller is moved into when an agent's phone answers."""
    return ROOM_PREFIX + call_sid


def call_of(room: str) -> str | None:
    """The call SID whose transfer ``room`` is (None: not a room of ours)."""
    sid = room.removeprefix(ROOM_PREFIX)
    return sid if sid != room and _CALL_SID.fullmatch(sid) else None


def participant_url(public_url: str, room: str) -> str:
    """Where Twilio reports the agent's leg into ``room`` (the room rides in the signed URL)."""
    return public_url.rstrip("/") + "/twilio/participant?room=" + _room(room)


def conference_twiml(room: str, wait_url: str, status_url: str) -> str:
    """TwiML that puts the caller in ``room``: waiting (``wait_url`` plays) until an agent starts it,
    and ending the conference when the caller leaves."""
    response, dial = VoiceResponse(), Dial()
    dial.conference(
        _room(room),
        start_conference_on_enter=False,
        end_conference_on_exit=True,
        wait_url=wait_url,
        wait_method="GET",
        beep=False,
        status_callback=status_url,
        status_callback_method="POST",
        status_callback_event=CONFERENCE_EVENTS,
    )
    response.append(dial)
    return str(response)


def leg_result(room: str, form: Mapping[str, str]) -> AgentLegResult | None:
    """The participant status callback's form as a result; ``None`` for progress (queued, initiated, ringing)."""
    status = form.get("CallStatus", "")
    outcome = _OUTCOMES.get(status)
    if outcome is None:
        return None
    return AgentLegResult(room, form.get("CallSid", ""), outcome, status)


class TwilioLegs:
    """The two REST requests of a transfer (blocking). ``http_client``: tests send them to loopback."""

    def __init__(self, settings: Settings, http_client: HttpClient | None = None) -> None:
        sid, token, public = settings.twilio_account_sid, settings.twilio_auth_token, settings.public_url
        if not sid or not token or not public:
            raise ConfigError(
                "a transfer through Twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and IVR_PUBLIC_URL"
            )
        self.public_url = public
        self._client = Client(sid, token, http_client=http_client or TwilioHttpClient(timeout=REST_TIMEOUT_S))

    def move_caller(self, call_sid: str, room: str) -> None:
        """Redirect the caller's call into ``room`` (its media stream ends; the hold audio plays)."""
        if not _CALL_SID.fullmatch(call_sid):
            raise ValueError(f"expected a Twilio call SID (CA + 32 hex digits), got {call_sid[:40]!r}")
        twiml = conference_twiml(room, hold_url(self.public_url), conference_status_url(self.public_url))
        with _errors(f"moving call {call_sid} into conference {room}"):
            self._client.calls(call_sid).update(twiml=twiml)

    def dial_agent(self, room: str, to: str, from_: str, ring_s: int = AGENT_RING_S) -> str:
        """Dial ``to`` (E.164 or a SIP URI) from ``from_`` (our Twilio number) into ``room``; the leg's call SID."""
        if not (_E164.fullmatch(to) or _SIP.fullmatch(to)):
            raise ValueError(f"expected the agent's number in E.164 or a sip: URI, got {mask_phone(to)!r}")
        if not _E164.fullmatch(from_):
            raise ValueError(f"expected our Twilio number in E.164, got {mask_phone(from_)!r}")
        with _errors(f"dialling agent {mask_phone(to)} into conference {room}"):
            participant = self._client.conferences(_room(room)).participants.create(
                from_=from_,
                to=to,
                label="agent",
                timeout=ring_s,
                beep="false",  # a string here: Twilio takes true, false, onEnter or onExit
                start_conference_on_enter=True,
                end_conference_on_exit=True,
                status_callback=participant_url(self.public_url, room),
                status_callback_method="POST",
                status_callback_event=list(PARTICIPANT_EVENTS),
            )
        return str(participant.call_sid or "")


async def move_caller(settings: Settings, call_sid: str, room: str, *, legs: TwilioLegs | None = None) -> None:
    """``TwilioLegs.move_caller`` off the event loop."""
    legs = legs or TwilioLegs(settings)
    await asyncio.get_running_loop().run_in_executor(None, legs.move_caller, call_sid, room)


async def dial_agent(
    settings: Settings, room: str, to: str, from_: str, *, legs: TwilioLegs | None = None, ring_s: int = AGENT_RING_S
) -> str:
    """``TwilioLegs.dial_agent`` off the event loop; the agent leg's call SID (its outcome comes to the webhook)."""
    legs = legs or TwilioLegs(settings)
    return await asyncio.get_running_loop().run_in_executor(None, legs.dial_agent, room, to, from_, ring_s)


def _room(room: str) -> str:
    if not _ROOM.fullmatch(room):
        raise ValueError(f"expected a conference room name of 1-64 letters, digits, - or _, got {room[:70]!r}")
    return room


@contextlib.contextmanager
def _errors(doing: str) -> Iterator[None]:
    """Twilio's and the network's failures as ``AgentLegError`` (retryable or not), numbers masked."""
    try:
        yield
    except TwilioRestException as err:
        retryable = err.status == 429 or err.status >= 500
        said = _NUMBER_IN_TEXT.sub(lambda m: mask_phone(m.group()), str(err.msg))
        message = f"Twilio refused {doing} (HTTP {err.status}, error {err.code}): {said}"
        raise AgentLegError(message, retryable=retryable) from err
    except OSError as err:  # requests' connection errors and timeouts are OSErrors
        raise AgentLegError(f"Twilio could not be reached {doing}: {type(err).__name__}", retryable=True) from err
    except TwilioException as err:
        raise AgentLegError(f"Twilio failed {doing}: {err}", retryable=False) from err
