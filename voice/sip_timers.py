"""Session timers (RFC 4028): our two corrections to aiosipua's, which does the rest.

aiosipua (``session_timer.py``, driven by ``SipUAS(session_expires=, min_se=)``) answers 422 with
``Min-SE`` below the minimum, negotiates the refresher (the caller's choice; else us when it allows
UPDATE), arms a watchdog at the ACK that sends BYE when no refresh comes in time (RFC 4028 §10),
re-arms it on a refresh re-INVITE or UPDATE, and sends our UPDATEs when we refresh. Ours, here:

- ``untimed(invite)``: a caller that offered no ``Session-Expires`` gets no timer (aiosipua would
  impose its default on every call, which callers that do not refresh would not survive);
- ``answer_update(...)``: a bodyless refresh UPDATE is answered with ``Session-Expires`` (aiosipua's
  200 has none, and RFC 4028 §7.4 tells a caller that sees none to stop refreshing: our watchdog
  would then end a live call as dead);
- ``refreshed(invite, request, min_se)``: a refresh that asks for a new interval (at least ``min_se``)
  gets it; aiosipua keeps the first one.
"""

from __future__ import annotations

from aiosipua import IncomingCall, SipRequest, SipTransport
from aiosipua.dialog import dialog_matches, remote_cseq_valid
from aiosipua.session_timer import parse_session_expires


def untimed(invite: IncomingCall) -> None:
    """No session timer on a call whose INVITE offered none."""
    if not invite.invite.get_header("session-expires"):
        invite.session_interval = None


def answer_update(
    invite: IncomingCall, transport: SipTransport, request: SipRequest, min_se: int, user_agent: str
) -> bool:
    """A bodyless UPDATE on ``invite``'s timed dialog: re-armed and answered 200 with ``Session-Expires``.

    ``False`` when it is not one (an UPDATE with an offer, an untimed call, wrong tags or CSeq): the
    stack answers it.
    """
    if request.method.upper() != "UPDATE" or request.body or not invite.session_interval:
        return False
    dialog = invite.dialog
    if not dialog_matches(dialog, request) or not remote_cseq_valid(dialog, request):
        return False  # the stack answers 481, or 500 for the CSeq
    refreshed(invite, request, min_se)
    timer = invite._session_timer  # aiosipua 0.7 keeps the timer on the call, with no public accessor
    if timer is not None:
        timer.refreshed()
    response = dialog.create_response(request, 200, "OK")
    for name, value in headers(invite).items():
        response.headers.set_single(name, value)
    response.headers.set_single("User-Agent", user_agent)
    transport.send_reply(response)
    return True


def refreshed(invite: IncomingCall, request: SipRequest, min_se: int) -> None:
    """A refresh may ask for a new interval: taken when it is at least ``min_se``, else ours stands."""
    offered = request.get_header("session-expires")
    interval = parse_session_expires(offered)[0] if offered else 0
    if not invite.session_interval or interval < min_se or interval == invite.session_interval:
        return
    invite.session_interval = interval
    timer = invite._session_timer
    if timer is not None:
        timer.interval = interval
        timer.start()


def headers(invite: IncomingCall) -> dict[str, str]:
    """``Session-Expires`` (and ``Require: timer`` when the caller supports it) for a timed call's 2xx."""
    refresher = "uas" if invite.session_refresher_us else "uac"
    result = {"Session-Expires": f"{invite.session_interval};refresher={refresher}"}
    if invite._caller_supports("timer"):
        result["Require"] = "timer"
    return result
