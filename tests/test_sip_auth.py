"""Digest authentication's check on its own (``voice.sip_auth``), with time as an input: nonce expiry,
a replayed INVITE, RFC 2617 answers without qop, and the settings that turn it on.

The answers are computed here with hashlib from RFC 7616 §3.4.1 (not with the code under test), so a
check that drifted from the RFC would fail. sipp answering real challenges: tests/test_sip_signalling.py.
"""

from __future__ import annotations

import hashlib

import pytest
from aiosipua import SipRequest

from core.errors import ConfigError
from core.settings import Settings
from voice.sip_auth import NONCE_TTL_S, DigestGuard

URI = "sip:hotline@127.0.0.1:5060"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _invite(call_id: str, authorization: str | None = None, uri: str = URI) -> SipRequest:
    request = SipRequest(method="INVITE", uri=uri)
    request.headers.set_single("Call-ID", call_id)
    if authorization is not None:
        request.headers.set_single("Authorization", authorization)
    return request


def _answer(
    challenge: str, user: str = "trunk", password: str = "right-password", uri: str = URI, qop: bool = True
) -> str:
    nonce = challenge.split('nonce="', 1)[1].split('"', 1)[0]
    ha1, ha2 = _md5(f"{user}:ivr-hotline:{password}"), _md5(f"INVITE:{uri}")
    if not qop:  # RFC 2617 without qop, as older PBXes answer
        response = _md5(f"{ha1}:{nonce}:{ha2}")
        return f'Digest username="{user}", realm="ivr-hotline", nonce="{nonce}", uri="{uri}", response="{response}"'
    response = _md5(f"{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="ivr-hotline", nonce="{nonce}", uri="{uri}", response="{response}", '
        'algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b"'
    )


@pytest.fixture
def guard() -> tuple[DigestGuard, Clock]:
    clock = Clock()
    return DigestGuard("trunk", "right-password", "ivr-hotline", clock=clock), clock


def test_answers_by_the_rfc_pass_and_wrong_ones_are_forbidden(guard: tuple[DigestGuard, Clock]) -> None:
    auth, _ = guard
    assert auth.verdict(_invite("a")) == "challenge"
    assert auth.verdict(_invite("b", _answer(auth.challenge()))) == "ok"
    assert auth.verdict(_invite("c", _answer(auth.challenge(), qop=False))) == "ok"
    assert auth.verdict(_invite("d", _answer(auth.challenge(), password="wrong-password"))) == "forbidden"
    assert auth.verdict(_invite("e", _answer(auth.challenge(), user="someone"))) == "forbidden"
    other_uri = _answer(auth.challenge(), uri="sip:other@127.0.0.1")  # a digest for another resource
    assert auth.verdict(_invite("f", other_uri)) == "forbidden"


def test_a_nonce_we_did_not_issue_is_challenged(guard: tuple[DigestGuard, Clock]) -> None:
    auth, _ = guard
    stranger = DigestGuard("trunk", "right-password", "ivr-hotline")  # another server's key
    assert auth.verdict(_invite("a", _answer(stranger.challenge()))) == "challenge"
    forged = _answer(auth.challenge()).replace('nonce="', 'nonce="9', 1)
    assert auth.verdict(_invite("b", forged)) == "challenge"
    assert auth.verdict(_invite("c", 'Digest username="trunk", realm="ivr-hotline", nonce="1.2.你好"')) == "challenge"


def test_an_expired_nonce_is_stale(guard: tuple[DigestGuard, Clock]) -> None:
    auth, clock = guard
    answer = _answer(auth.challenge())
    clock.now += NONCE_TTL_S + 1
    assert auth.verdict(_invite("a", answer)) == "stale"
    assert auth.challenge(stale=True).endswith(", stale=true")  # RFC 7616 §3.3: the client retries without asking


def test_a_nonce_belongs_to_the_call_it_opened(guard: tuple[DigestGuard, Clock]) -> None:
    auth, _ = guard
    answer = _answer(auth.challenge())
    assert auth.verdict(_invite("first", answer)) == "ok"
    assert auth.verdict(_invite("first", answer)) == "ok"  # its retransmission
    assert auth.verdict(_invite("replayed", answer)) == "stale"  # the same credentials opening another call


def test_every_challenge_has_its_own_nonce(guard: tuple[DigestGuard, Clock]) -> None:
    auth, _ = guard
    assert len({auth.challenge() for _ in range(50)}) == 50  # same clock reading, still fresh


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"IVR_SIP_AUTH_USER": "trunk"}, "IVR_SIP_AUTH_PASSWORD must be set with IVR_SIP_AUTH_USER"),
        ({"IVR_SIP_AUTH_PASSWORD": "right-password"}, "IVR_SIP_AUTH_USER must be set with IVR_SIP_AUTH_PASSWORD"),
        ({"IVR_SIP_AUTH_USER": "trunk", "IVR_SIP_AUTH_PASSWORD": "short"}, "IVR_SIP_AUTH_PASSWORD must be 8..128"),
        ({"IVR_SIP_AUTH_USER": 'a"b', "IVR_SIP_AUTH_PASSWORD": "right-password"}, "IVR_SIP_AUTH_USER must be"),
        ({"IVR_SIP_AUTH_REALM": "my realm"}, "IVR_SIP_AUTH_REALM must be"),
    ],
)
def test_auth_settings_are_both_or_neither(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_auth_settings_read() -> None:
    settings = Settings.from_env({"IVR_SIP_AUTH_USER": "trunk", "IVR_SIP_AUTH_PASSWORD": "right-password"})
    assert (settings.sip_auth_user, settings.sip_auth_realm) == ("trunk", "ivr-hotline")
    assert "right-password" not in repr(settings)
