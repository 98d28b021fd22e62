"""The SIP front door: a shop's SIP trunk or PBX calls the hotline directly (``IVR_SIP_PORT``).

The stack is ``aiosipua`` (SIP over UDP and TCP: parsing, dialogs, the INVITE server transaction
with 100 Trying, 2xx retransmission until the ACK, CANCEL → 487, OPTIONS, BYE, 400 for requests
missing mandatory headers) with ``aiortp`` for the media (``voice.sip_media``). Both are pure
asyncio and run on the server's own event loop beside the HTTP front doors, so a SIP call is a
``LiveCall`` on the shared ``LiveLine`` exactly as a Twilio call is.

Why this stack: ``aiosipua`` + ``aiortp`` were tried first against real sipp (INVITE with PCMU/PCMA
and telephone-event, RTP both ways, CANCEL, OPTIONS, re-INVITE hold/unhold, BYE both ways,
garbage datagrams) and did the whole job; the PJSIP bindings (``pjsua2``) would bring a C
media engine with its own threads, sound devices and event loop to bridge into asyncio, for
nothing this front door needs. What the library lacks is here, each with a test: the source
allowlist (``IVR_SIP_ALLOW``, a 403 for any other source, checked before the stack sees the
message), ``tel:`` caller numbers (``voice.sip_wire``), our own pacer and marks, the server side
of digest authentication (``voice.sip_auth``: aiosipua answers challenges only as a client), and
sending a REFER and following it (``voice.sip_refer``: aiosipua sends a bare REFER and drops its
responses), sending our BYE again until answered (``voice.sip_bye``), and keys sent as RFC 4733
events in our own RTP stream (``voice.sip_media``).

Session timers (RFC 4028) are aiosipua's (the 422 below ``MIN_SE_S``, the negotiated refresher,
the watchdog that sends BYE when no refresh comes, our UPDATEs when we refresh), offered only to
callers that ask, with the corrections in ``voice.sip_timers``.

A call: INVITE (allowed source, credentials when ``IVR_SIP_AUTH_USER`` is set, SDP offer) → 100 → 180
→ the live call opens (a full line or no recogniser: 503; an offer without G.711: 488) → 200 with
our answer → ACK → the call runs. A BYE from the caller stops it; when the hotline ends it, we send
BYE. CANCEL before the 200 drops it. A session timer that expires without a refresh sends BYE and
ends the call as a hang-up does. ``transfer(call_id, uri)`` hands an answered call to an agent
(REFER; BYE once the target answered). Media binds on ``IVR_HOST`` like the signalling, on even
ports from ``IVR_SIP_RTP_PORTS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortp import PortAllocator
from aiosipua import (
    IncomingCall,
    SipRequest,
    SipResponse,
    SipTransport,
    SipUAS,
    TcpSipTransport,
    UdpSipTransport,
    create_dialog_from_request,
    parse_sdp,
)
from aiosipua.session_timer import DEFAULT_SESSION_EXPIRES

from core.errors import IvrError
from core.settings import Settings, rtp_port_range, sip_networks
from core.types import mask_phone
from voice import sip_timers
from voice.live import LiveCall
from voice.live_line import LiveLine, line_of
from voice.live_metrics import LIVE_CALLS
from voice.sip_auth import DigestGuard
from voice.sip_bye import Byes
from voice.sip_media import SipLeg
from voice.sip_refer import TransferResult, Transfers
from voice.sip_wire import SipMediaError, answer, caller_number

log = logging.getLogger(__name__)
RTP_BIND_TRIES = 5  # the allocator probes a port, then we bind it: another program may win in between
USER_AGENT = "ivr-hotline"
RTP_TIMEOUT_S = 30.0  # a caller not on hold who sends no RTP this long is gone: BYE
MIN_SE_S = 90  # the shortest session timer interval we accept (RFC 4028 §4: never below 90 s in service)
TRANSFER_WAIT_S = 60.0  # after the REFER's 202: how long the transferee may ring the target
_Handler = Callable[[SipRequest | SipResponse, tuple[str, int]], None]


class UdpTransport(UdpSipTransport):
    """aiosipua's UDP transport, bound through our own protocol.

    Its protocol asserts that the transport is an ``asyncio.DatagramTransport``, which Python 3.11's
    selector datagram transport is not a subclass of (the assertion fails and is logged at every
    start); the datagrams go to the library's own parse-and-dispatch all the same.
    """

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp_transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=self.local_addr
        )


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpSipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner._dispatch(data, (str(addr[0]), int(addr[1])))


@dataclass
class SipCall:
    """One SIP call: its INVITE transaction/dialog, media leg and live call."""

    invite: IncomingCall
    label: str  # our call id (the SIP Call-ID is the caller's to choose, so it is not used as a key)
    port: int = 0
    leg: SipLeg | None = None
    live: LiveCall | None = None
    answered: bool = False
    cancelled: bool = False
    version: int = 1  # our SDP's session version, bumped by every answer to a re-INVITE
    reinvite_cseq: int = -1  # the CSeq of the re-INVITE we last answered
    sdp: Any = None  # our last SDP answer


@dataclass
class SipFrontDoor:
    """The SIP listener of one app (see the module docstring)."""

    line: LiveLine
    host: str
    port: int
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    ports: PortAllocator
    auth: DigestGuard | None = None  # None: no digest authentication (IVR_SIP_AUTH_USER unset)
    min_se: int = MIN_SE_S  # the shortest session timer interval accepted (read when the door is built)
    calls: dict[str, SipCall] = field(default_factory=dict)  # by SIP Call-ID
    rejected: int = 0  # requests refused by the allowlist
    challenged: int = 0  # INVITEs answered 401 or 403 by digest authentication
    transfers: Transfers = field(default_factory=Transfers)
    byes: Byes = field(default_factory=Byes)  # our BYEs not yet answered (sent again over UDP)
    loop: asyncio.AbstractEventLoop | None = None  # the loop the front door runs on, once started
    _stacks: list[SipUAS] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def of(cls, app: Any, settings: Settings) -> SipFrontDoor:
        assert settings.sip_port is not None
        ports = PortAllocator(rtp_port_range(settings.sip_rtp_ports))
        auth = None
        if settings.sip_auth_user is not None and settings.sip_auth_password is not None:
            auth = DigestGuard(settings.sip_auth_user, settings.sip_auth_password, settings.sip_auth_realm)
        networks = sip_networks(settings.sip_allow)
        return cls(line_of(app), settings.host, settings.sip_port, networks, ports, auth, MIN_SE_S)

    async def start(self) -> None:
        """Listen on UDP and TCP ``host:port``."""
        self.loop = asyncio.get_running_loop()
        for transport in (
            UdpTransport(local_addr=(self.host, self.port)),
            TcpSipTransport(local_addr=(self.host, self.port)),
        ):
            uas = SipUAS(transport, user_agent=USER_AGENT, session_expires=DEFAULT_SESSION_EXPIRES, min_se=self.min_se)
            uas.on_invite = self._invited
            uas.on_reinvite = self._reinvite
            uas.on_bye = lambda call, _request: self._ended(call.call_id, "caller hung up")
            uas.on_cancel = lambda request, _addr: self._cancelled(request.call_id or "")
            uas.on_ack_timeout = lambda call: self._ended(call.call_id, "no ACK for our 200")
            uas.on_session_expired = lambda call: self._ended(call.call_id, "session timer expired: no refresh")
            uas.on_transfer_progress = self.transfers.progress
            await uas.start()
            transport.on_message = self._guarded(transport, transport.on_message)
            self._stacks.append(uas)
        log.info("SIP listening on %s:%d (UDP, TCP)", self.host, self.port)

    async def stop(self) -> None:
        """Hang up every call still up (BYE) and close the listeners."""
        for call in list(self.calls.values()):
            if call.live is not None:
                await call.live.close("server shutting down")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        self.byes.stop()
        for uas in self._stacks:
            await uas.stop()
        self._stacks.clear()

    # -- the allowlist ----------------------------------------------------------------------------

    def _guarded(self, transport: SipTransport, inner: _Handler | None) -> _Handler:
        """The stack's message handler behind the allowlist and an SDP check.

        A source outside ``IVR_SIP_ALLOW`` gets 403 (its ACKs and responses are dropped). An SDP body
        aiosipua cannot parse would raise inside its INVITE handling and leave the caller unanswered:
        it gets 400 here instead.
        """

        def admit(message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
            if not self.allowed(addr[0]):
                self.rejected += 1
                log.warning("SIP message from a source outside IVR_SIP_ALLOW refused", extra={"source": addr[0]})
                _refuse(transport, message, 403, "Forbidden")
            elif not _sdp_parses(message):
                _refuse(transport, message, 400, "Bad SDP")
            elif isinstance(message, SipResponse) and (self.transfers.response(message) or self.byes.response(message)):
                return
            elif not self._authenticated(transport, message, addr[0]):
                return
            elif self._retransmitted_invite(message) or self._session_update(transport, message):
                return
            elif inner is not None:
                inner(message, addr)

        return admit

    def _authenticated(self, transport: SipTransport, message: SipRequest | SipResponse, source: str) -> bool:
        """A new INVITE with valid credentials, or anything else (see ``voice.sip_auth``); else 401/403 sent."""
        if self.auth is None or not isinstance(message, SipRequest) or message.method.upper() != "INVITE":
            return True
        if message.to_addr is not None and message.to_addr.tag:  # in a dialog: its tags are the proof
            return True
        verdict = self.auth.verdict(message)
        if verdict == "ok":
            return True
        self.challenged += 1
        if verdict == "forbidden":
            log.warning("SIP INVITE with wrong credentials refused", extra={"source": source})
            _refuse(transport, message, 403, "Forbidden")
        else:
            challenge = self.auth.challenge(stale=verdict == "stale")
            _refuse(transport, message, 401, "Unauthorized", {"WWW-Authenticate": challenge})
        return False

    def _session_update(self, transport: SipTransport, message: SipRequest | SipResponse) -> bool:
        """A refresh UPDATE on a timed call, answered with its interval (``voice.sip_timers``)."""
        if not isinstance(message, SipRequest):
            return False
        call = self.calls.get(message.call_id or "")
        if call is None:
            return False
        return sip_timers.answer_update(call.invite, transport, message, self.min_se, USER_AGENT)

    def _retransmitted_invite(self, message: SipRequest | SipResponse) -> bool:
        """A retransmitted INVITE (the caller saw no answer in time): answered again, not handed on.

        aiosipua has no INVITE server transaction to absorb them. Without a To tag it would take the
        INVITE for a new call (a new local tag, its dialog replacing the first), so the caller's ACK
        and BYE would no longer match: it gets our 100 again (a 200 already sent is retransmitted by
        the stack until the ACK). A re-INVITE with the CSeq we last answered gets that 200 again.
        """
        if not isinstance(message, SipRequest) or message.method.upper() != "INVITE":
            return False
        call = self.calls.get(message.call_id or "")
        to, cseq = message.to_addr, message.cseq
        if call is None or to is None or cseq is None:
            return False
        if to.tag:  # in the dialog: the re-INVITE we last answered, again (the stack would answer 500)
            if cseq.seq != call.reinvite_cseq or call.sdp is None:
                return False
            call.invite.accept(call.sdp)
        elif not call.answered and not call.cancelled:
            call.invite.trying()
        return True

    def allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    # -- a call -----------------------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP task %s failed", task.get_name(), exc_info=task.exception())

    def _invited(self, invite: IncomingCall) -> None:
        """A new INVITE (the stack sent 100): known at once, so a CANCEL right behind it finds it.

        A caller that offered no session timer gets none (aiosipua would impose its default).
        """
        sip_timers.untimed(invite)
        call = SipCall(invite, f"sip-{uuid.uuid4().hex[:12]}")
        self.calls[invite.call_id] = call
        self._spawn(self._answer(call), "sip-answer")

    async def _answer(self, call: SipCall) -> None:
        invite = call.invite
        try:
            if await self._set_up(call):
                await self._run(call)
        except Exception:  # a bug must not leave the caller ringing until its INVITE times out
            log.exception("SIP call failed", extra={"sip_call": call.label})
            if not call.answered and not call.cancelled:
                invite.reject(500, "Server Internal Error")
        finally:
            self.calls.pop(invite.call_id, None)
            self.transfers.gone(invite.call_id)
            self._forget(call)
            if call.leg is not None:
                await call.leg.close()
            if call.port:
                await self.ports.release(call.port)

    async def _set_up(self, call: SipCall) -> bool:
        """Ringing, media and the live call; ``True`` once the 200 is sent."""
        invite = call.invite
        if call.cancelled:
            return False
        if invite.sdp_offer is None:
            invite.reject(488, "Not Acceptable Here")  # an offer in the ACK (late offer) is not supported
            return False
        for attempt in range(1, RTP_BIND_TRIES + 1):
            try:
                call.port, _ = await self.ports.allocate()
                call.sdp, media = answer(invite.sdp_offer, self.host, call.port, call.version)
            except SipMediaError as err:
                log.info("SIP offer refused: %s", err, extra={"sip_call": call.label})
                invite.reject(488, "Not Acceptable Here")
                return False
            except RuntimeError:  # no free RTP port
                invite.reject(503, "Service Unavailable")
                return False
            if attempt == 1:
                invite.ringing()
            try:
                call.leg = await SipLeg.open(self.host, call.port, media, lambda: self._bye(call), call.label)
                break
            except OSError as err:  # another program took the port between the allocator's probe and our bind
                await self.ports.release(call.port)
                call.port = 0
                log.warning("RTP port taken (%s), try %d of %d", err, attempt, RTP_BIND_TRIES)
        else:
            invite.reject(503, "Service Unavailable")
            return False
        caller = caller_number(invite.invite)
        try:
            call.leg.refer = lambda target, label=call.label: self._refer(label, target)
            call.live = await self.line.open(call.leg, caller=caller, call_id=call.label, channel="sip")
        except IvrError as err:  # the line is full, or no recogniser can serve
            log.warning("SIP call refused: %s", err, extra={"sip_call": call.label})
            if not call.cancelled:
                invite.reject(503, "Service Unavailable")
            return False
        if call.cancelled:
            self.line.closed(call.live)
            return False
        invite.accept(call.sdp)
        call.answered = True
        log.info("SIP call answered", extra={"sip_call": call.label, "caller": mask_phone(caller or "")})
        return True

    async def _run(self, call: SipCall) -> None:
        assert call.live is not None and call.leg is not None
        LIVE_CALLS.labels("sip").inc()
        call.leg.attach(call.live)
        watchdog = asyncio.get_running_loop().create_task(self._watch_media(call), name="sip-rtp-watch")
        try:
            outcome = await call.live.run()
            log.info("SIP call ended", extra={"sip_call": call.label, "outcome": outcome.type})
        finally:
            watchdog.cancel()
            self._bye(call)  # however the call ended, the dialog ends with it (a no-op after the caller's BYE)
            self.line.closed(call.live)

    async def _watch_media(self, call: SipCall) -> None:
        """No RTP from a caller not on hold for ``RTP_TIMEOUT_S``: the far end is gone (BYE, stop)."""
        assert call.leg is not None and call.live is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, RTP_TIMEOUT_S / 4))
            if call.leg.media.held:
                call.leg.last_heard = loop.time()
            elif loop.time() - call.leg.last_heard > RTP_TIMEOUT_S:
                log.warning("SIP call has no RTP: hanging up", extra={"sip_call": call.label})
                self._bye(call)
                call.live.stop("no RTP from the caller")
                return

    def _forget(self, call: SipCall) -> None:
        """Drop the stack's record of a call that is over.

        aiosipua drops it on the caller's BYE or CANCEL, or on the ACK of our error response; a call we
        ended with BYE, or refused to a caller who never ACKs, would stay in its table for good.
        """
        call.invite._stop_retransmissions()  # and its session timer (aiosipua stops it only on the caller's BYE)
        for uas in self._stacks:
            if uas.get_call(call.invite.call_id) is call.invite:
                uas._calls.pop(call.invite.call_id, None)  # no public way to forget a call in aiosipua 0.7

    def _bye(self, call: SipCall) -> None:
        """The hotline ends the call: BYE (a call not yet answered is refused instead)."""
        if call.answered:
            self.byes.hang_up(call.invite)

    def _ended(self, call_id: str, reason: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.live is not None:
            call.live.stop(reason)

    def _cancelled(self, call_id: str) -> None:
        """CANCEL: the stack answered 200 and 487; a call still being set up is dropped."""
        call = self.calls.get(call_id)
        if call is None:
            return
        call.cancelled = True
        if call.answered and call.live is not None:  # CANCEL crossed our 200: the dialog is gone, end it
            self.byes.hang_up(call.invite)
            call.live.stop("caller cancelled")

    def _reinvite(self, invite: IncomingCall) -> None:
        """A re-INVITE (hold, unhold, new address): answer with the codec already in use."""
        call = self.calls.get(invite.call_id)
        if call is None or call.leg is None:
            return
        call.reinvite_cseq = invite.invite.cseq.seq if invite.invite.cseq is not None else -1
        sip_timers.refreshed(invite, invite.invite, self.min_se)  # (aiosipua re-armed the watchdog)
        if invite.sdp_offer is None:  # an offerless re-INVITE: our 200 offers the session as it stands
            invite.accept(call.sdp)
            return
        try:
            sdp, media = answer(
                invite.sdp_offer, self.host, call.port, call.version + 1, codecs=(call.leg.media.payload_type,)
            )
        except SipMediaError as err:
            log.info("SIP re-INVITE refused: %s", err, extra={"sip_call": call.label})
            invite.accept(call.sdp)  # the session stays as it was
            return
        call.version += 1
        call.sdp = sdp

        call.leg.renegotiated(media)
        invite.accept(sdp)
        log.info("SIP re-INVITE", extra={"sip_call": call.label, "held": media.held})

    # -- transfer (REFER) ------------------------------------------------------------------------

    async def _refer(self, call_id: str, target: str) -> bool:
        """An agent's hand-over: True when the agent at ``target`` answered the caller."""
        try:
            return (await self.transfer(call_id, target)).ok
        except ValueError:  # the call ended meanwhile
            return False

    async def transfer(self, call_id: str, target: str, wait: float = TRANSFER_WAIT_S) -> TransferResult:
        """Blind-transfer the answered call ``call_id`` (our call id) to the SIP URI ``target``.

        On success (the target answered the transferee) our leg ends with BYE and the live call stops;
        on failure the call stays with the hotline and the result says why.
        """
        call = next((c for c in self.calls.values() if c.label == call_id), None)
        if call is None or not call.answered or call.live is None:
            raise ValueError(f"expected an answered SIP call {call_id!r}, got none")
        referred_by = f"sip:{USER_AGENT}@{self.host}:{self.port}"
        result = await self.transfers.refer(call.invite, target, referred_by, wait)
        log.info("SIP transfer", extra={"sip_call": call.label, "status": result.status, "ok": result.ok})
        if result.ok:
            self._bye(call)
            call.live.stop("transferred")
        return result


def _refuse(
    transport: SipTransport,
    message: SipRequest | SipResponse,
    status: int,
    reason: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer a request outside any dialog with ``status`` (an ACK or a response is dropped)."""
    if isinstance(message, SipRequest) and message.method.upper() != "ACK":
        with contextlib.suppress(Exception):  # no Via to answer on: dropped
            response = create_dialog_from_request(message).create_response(message, status, reason)
            for name, value in (headers or {}).items():
                response.headers.set_single(name, value)
            transport.send_reply(response)


def _sdp_parses(message: SipRequest | SipResponse) -> bool:
    if not message.body or message.content_type != "application/sdp":
        return True
    try:
        parse_sdp(message.text)
    except (ValueError, IndexError, UnicodeDecodeError):
        return False
    return True


async def start(app: Any, settings: Settings) -> SipFrontDoor | None:
    """The app's SIP front door, listening, when ``IVR_SIP_PORT`` is set; else ``None``."""
    if settings.sip_port is None:
        return None
    door = SipFrontDoor.of(app, settings)
    await door.start()
    app.state.sip = door
    return door
