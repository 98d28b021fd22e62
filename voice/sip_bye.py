"""The hotline's own BYE, sent again over UDP until the caller's side answers it (RFC 3261 §17.1.2).

aiosipua's ``IncomingCall.hangup()`` sends a BYE once and forgets it: over UDP a lost BYE would leave
the caller's phone or trunk holding a call we ended, until its own timers give up. ``Byes`` keeps
each BYE until a response with its Call-ID and CSeq arrives, sending it again at timer E (T1
doubling to T2) and giving up at timer F, as a non-INVITE client transaction does. Over TCP the
stack's single send is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiosipua import IncomingCall, SipResponse

from voice.sip_refer import TIMER_F_S, send_retransmitted


@dataclass
class Byes:
    """Our BYEs not yet answered, by Call-ID: (CSeq number, the task sending them again)."""

    pending: dict[str, tuple[int, asyncio.Task[None]]] = field(default_factory=dict)

    def hang_up(self, invite: IncomingCall) -> None:
        """Send a BYE on ``invite``'s confirmed dialog; keep sending it over UDP until it is answered."""
        bye = invite.hangup()
        if bye is None or bye.cseq is None or getattr(invite.transport, "reliable", False):
            return
        call_id = invite.call_id
        again = asyncio.wait_for(send_retransmitted(invite, bye, sent=True), TIMER_F_S)
        task = asyncio.get_running_loop().create_task(again, name="sip-bye-send")  # type: ignore[arg-type]
        self.pending[call_id] = (bye.cseq.seq, task)
        task.add_done_callback(lambda done: self._done(call_id, done))

    def response(self, response: SipResponse) -> bool:
        """A response to one of our BYEs (any status ends the transaction): taken, else not ours."""
        call_id, cseq = response.call_id or "", response.cseq
        sent = self.pending.get(call_id)
        if sent is None or cseq is None or (cseq.method.upper(), cseq.seq) != ("BYE", sent[0]):
            return False
        if response.status_code >= 200:
            sent[1].cancel()
        return True

    def stop(self) -> None:
        for _, task in list(self.pending.values()):
            task.cancel()

    def _done(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self.pending.get(call_id, (0, None))[1] is task:
            del self.pending[call_id]
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            task.exception()  # (timer F: the far end never answered; nothing more to do)
