"""Twilio's REST API, for the one thing the hotline asks of it: hang up a call it ended.

Blocking (an HTTP request): run it in an executor. The request is the twilio library's own
(``POST /2010-04-01/Accounts/{sid}/Calls/{call}.json`` with ``Status=completed``, basic auth);
tests pass an ``http_client`` that sends it to a local server and check what arrived there.
"""

from __future__ import annotations

from twilio.base.exceptions import TwilioException
from twilio.http import HttpClient
from twilio.rest import Client

from core.errors import ConfigError, IvrError


class HangupError(IvrError):
    """Twilio refused or could not be reached to end a call."""

    retryable = True


class TwilioRest:
    def __init__(self, account_sid: str | None, auth_token: str | None, http_client: HttpClient | None = None) -> None:
        if not account_sid or not auth_token:
            raise ConfigError("hanging up through Twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        self._client = Client(account_sid, auth_token, http_client=http_client)

    def hang_up(self, call_sid: str) -> None:
        """End ``call_sid`` (``status=completed``)."""
        try:
            self._client.calls(call_sid).update(status="completed")
        except TwilioException as err:
            raise HangupError(f"Twilio did not end call {call_sid}: {err}") from err
