"""Digest authentication of the INVITEs that open SIP calls (RFC 3261 §22.4, RFC 7616, MD5, qop=auth).

Set ``IVR_SIP_AUTH_USER`` and ``IVR_SIP_AUTH_PASSWORD`` (realm ``IVR_SIP_AUTH_REALM``) and an INVITE
that opens a call must carry credentials for them: without any, or with a nonce that is not ours or
has expired, it gets 401 and a fresh challenge; with the wrong user or password, 403.

What is aiosipua's: parsing ``Authorization`` and writing ``WWW-Authenticate`` (``parse_auth``,
``stringify_auth``) and the digest itself (``build_credentials``: the same code its client uses to
answer a challenge computes the response we expect). What is ours, because aiosipua has only the
client side: the challenge, nonces and the check. A nonce is stateless (issue time, a salt, and an HMAC of
both under a key made at start-up), valid ``NONCE_TTL_S``; once it has opened a call it belongs to that
Call-ID (its retransmissions pass), so a captured INVITE replayed as another call is challenged again.

Only the dialog-opening INVITE is challenged. Requests inside a dialog (ACK, BYE, re-INVITE, UPDATE,
NOTIFY) must match its Call-ID and both tags, which only the authenticated caller knows; CANCEL
cannot be challenged (RFC 3261 §22.1) and must match the INVITE's transaction. OPTIONS stays open:
trunks and PBXes send it as a keep-alive without answering challenges, and it reveals nothing but
that the hotline is up (the allowlist still applies to every request).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiosipua import SipRequest
from aiosipua.auth import SipDigestAuth, build_credentials
from aiosipua.headers import AuthChallenge, parse_auth, stringify_auth

NONCE_TTL_S = 60.0  # a challenge is answered within a round trip; a minute allows for slow PBXes
Verdict = Literal["ok", "challenge", "stale", "forbidden"]


@dataclass
class DigestGuard:
    """Checks an INVITE's ``Authorization`` against one user, password and realm."""

    user: str
    password: str
    realm: str
    clock: Callable[[], float] = time.time
    _key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    _used: dict[str, tuple[str, float]] = field(default_factory=dict, repr=False)  # nonce -> (Call-ID, issued)

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        params = {"realm": self.realm, "nonce": self._nonce(), "algorithm": "MD5", "qop": "auth"}
        if stale:
            params["stale"] = "true"
        return stringify_auth(AuthChallenge("Digest", params))

    def verdict(self, request: SipRequest) -> Verdict:
        """``ok``, ``challenge`` (401: none or not ours), ``stale`` (401, stale=true) or ``forbidden`` (403)."""
        header = request.get_header("authorization")
        if not header:
            return "challenge"
        given = parse_auth(header, credentials=True).params
        nonce = given.get("nonce", "")
        issued = self._issued(nonce)
        if parse_auth(header).scheme.lower() != "digest" or issued is None or given.get("realm") != self.realm:
            return "challenge"
        if given.get("username") != self.user or not _same(given.get("response", ""), self._expected(request, given)):
            return "forbidden"
        if self.clock() - issued > NONCE_TTL_S:
            return "stale"
        owner = self._used.setdefault(nonce, (request.call_id or "", issued))[0]
        return "ok" if owner == request.call_id else "stale"

    def _expected(self, request: SipRequest, given: dict[str, str]) -> str:
        """The response the right password gives for this request (aiosipua's digest)."""
        qop = given.get("qop")
        challenge = AuthChallenge("Digest", {"realm": self.realm, "nonce": given["nonce"], "algorithm": "MD5"})
        if qop is not None:
            if qop.lower() != "auth":
                return ""
            challenge.params["qop"] = "auth"
        try:
            count = int(given.get("nc", "1"), 16)
        except ValueError:
            return ""
        uri = given.get("uri", "")
        if uri != request.uri:  # the digest must be for this request's URI (RFC 7616 §3.4.6)
            return ""
        auth = SipDigestAuth(self.user, self.password)
        credentials = build_credentials(
            auth, challenge, request.method.upper(), uri, nonce_count=count, cnonce=given.get("cnonce")
        )
        return credentials.params["response"] if credentials is not None else ""

    def _nonce(self) -> str:
        now = self.clock()
        self._used = {n: used for n, used in self._used.items() if now - used[1] <= NONCE_TTL_S}
        issue = f"{now:.3f}.{os.urandom(6).hex()}"  # the issue time and a salt: no two challenges share a nonce
        return f"{issue}.{self._sign(issue)}"

    def _issued(self, nonce: str) -> float | None:
        """When we issued ``nonce``; ``None`` when it is not ours."""
        issue, _, signature = nonce.rpartition(".")
        if not issue or not _same(signature, self._sign(issue)):
            return None
        return float(issue.rsplit(".", 1)[0])

    def _sign(self, issue: str) -> str:
        return hmac.new(self._key, issue.encode(), hashlib.sha256).hexdigest()[:32]


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes what a caller may send (any text, not only ASCII)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
