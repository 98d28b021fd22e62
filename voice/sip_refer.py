"""Blind transfer of an answered SIP call (RFC 3515 REFER, RFC 3892 Referred-By).

``Transfers.refer(invite, target, referred_by)`` asks the caller's side (trunk, PBX or phone) to call
``target``; the REFER's final response and the ``Event: refer`` NOTIFYs that follow (message/sipfrag
bodies, RFC 3515 §2.4.5) settle it as a ``TransferResult``. The caller of ``refer`` ends our leg with
BYE on success; on failure the call stays with the hotline.

What is aiosipua's: the dialog (``create_request`` numbers and addresses the REFER), answering the
transferee's NOTIFYs with 200 and reading their sipfrag status (``SipUAS.on_transfer_progress``).
What is ours, because aiosipua only sends a bare REFER and drops the responses to requests it did not
send through its client: ``Referred-By``, retransmitting the REFER over UDP (RFC 3261 §17.1.2, timer
E doubling from T1 to T2, given up after timer F), matching its response, and waiting for the
final NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

from aiosipua import IncomingCall, SipRequest, SipResponse
from aiosipua.utils import format_addr

T1_S, T2_S, TIMER_F_S = 0.5, 4.0, 32.0  # RFC 3261 non-INVITE client transaction timers
_URI = re.compile(r"sips?:[^\s<>\"]+")


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a transfer ended: ``ok`` when the target answered the transferee (sipfrag 2xx)."""

    ok: bool
    status: int  # the REFER's refusal, the final sipfrag status, 408 when either never came, 481: the call ended
    reason: str


@dataclass
class _Refer:
    request: SipRequest
    # the REFER's final response, then the final sipfrag status: (status, reason) each
    answered: asyncio.Future[tuple[int, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    final: asyncio.Future[tuple[int, str]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class Transfers:
    """The REFERs in flight, one per call at most, by SIP Call-ID."""

    pending: dict[str, _Refer] = field(default_factory=dict)

    async def refer(self, invite: IncomingCall, target: str, referred_by: str, wait: float) -> TransferResult:
        """Send a REFER to ``target`` on ``invite``'s dialog; the result once the final NOTIFY (or a refusal) is in.

        ``wait`` bounds the wait for the final NOTIFY after the 202: the transferee rings the target.
        """
        if not _URI.fullmatch(target):
            raise ValueError(f"expected a sip: or sips: URI to transfer to, got {target!r}")
        if invite.call_id in self.pending:
            raise RuntimeError("expected no transfer in progress on this call, got one")
        refer = _Refer(_request(invite, target, referred_by))
        self.pending[invite.call_id] = refer
        try:
            return await self._settle(invite, refer, wait)
        finally:
            self.pending.pop(invite.call_id, None)

    async def _settle(self, invite: IncomingCall, refer: _Refer, wait: float) -> TransferResult:
        loop = asyncio.get_running_loop()
        sending = loop.create_task(send_retransmitted(invite, refer.request), name="sip-refer-send")
        try:
            status, reason = await asyncio.wait_for(asyncio.shield(refer.answered), TIMER_F_S)
        except TimeoutError:
            return TransferResult(False, 408, "no answer to the REFER")
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
        if status >= 300:
            return TransferResult(False, status, reason)
        try:
            status, reason = await asyncio.wait_for(asyncio.shield(refer.final), wait)
        except TimeoutError:
            return TransferResult(False, 408, "no final NOTIFY from the transferee")
        return TransferResult(200 <= status < 300, status, reason)

    def response(self, response: SipResponse) -> bool:
        """A response to one of our REFERs: taken (``True``), else it is not ours."""
        cseq, refer = response.cseq, self.pending.get(response.call_id or "")
        sent = refer.request.cseq if refer is not None else None
        if refer is None or cseq is None or sent is None or (cseq.method.upper(), cseq.seq) != ("REFER", sent.seq):
            return False
        if response.status_code >= 200 and not refer.answered.done():
            refer.answered.set_result((response.status_code, response.reason_phrase))
        return True

    def progress(self, call_id: str, status: int, reason: str) -> None:
        """A NOTIFY's sipfrag status (aiosipua's ``on_transfer_progress``): a final one settles the transfer."""
        refer = self.pending.get(call_id)
        if refer is not None and status >= 200 and not refer.final.done():
            refer.final.set_result((status, reason))

    def gone(self, call_id: str) -> None:
        """The call ended (the caller hung up): a transfer on it fails now rather than at its timeout."""
        refer = self.pending.get(call_id)
        if refer is not None:
            for future in (refer.answered, refer.final):
                if not future.done():
                    future.set_result((481, "the call ended"))


def _request(invite: IncomingCall, target: str, referred_by: str) -> SipRequest:
    addr = invite._signaling_addr()  # where our Via and Contact point (aiosipua's own choice for BYE)
    request = invite.dialog.create_request("REFER", via_host=addr[0], via_port=addr[1])
    request.headers.set_single("Contact", f"<sip:{format_addr(*addr)}>")
    request.headers.set_single("Refer-To", f"<{target}>")
    request.headers.set_single("Referred-By", f"<{referred_by}>")
    return request


async def send_retransmitted(invite: IncomingCall, request: SipRequest, *, sent: bool = False) -> None:
    """Send ``request`` (unless ``sent`` already), and again at timer E over UDP until cancelled (answered)."""
    transport = invite.transport
    assert transport is not None
    interval = T1_S
    while True:
        if not sent:
            transport.send(request, invite.source_addr)
        sent = False
        if getattr(transport, "reliable", False):
            return
        await asyncio.sleep(interval)
        interval = min(interval * 2, T2_S)
