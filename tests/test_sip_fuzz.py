"""Bad SIP and SDP: hypothesis-generated messages and torture cases written from the descriptions in
RFC 4475 (our own text, not the RFC's). The conversions in ``voice.sip_wire`` answer or refuse
cleanly; a running server (no recogniser: calls it cannot serve get 503) answers what it can, drops
the rest, and still answers OPTIONS afterwards with no call left behind."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosipua import SipMessage, SipRequest, parse_sdp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sipp import sip_server, until

from voice.live_line import line_of
from voice.sip_server import _sdp_parses
from voice.sip_wire import PCMA, PCMU, SipMediaError, answer, caller_number

_SDP_LINES = [
    "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0", "t=0 0",
    "m=audio 4000 RTP/AVP 0 8 101", "m=audio 0 RTP/AVP 0", "m=video 4002 RTP/AVP 96", "m=audio x RTP/AVP",
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=sendonly", "a=inactive", "a=ptime:abc",
]  # fmt: skip
_HEADERS = [
    "Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m", "Max-Forwards",
    "Content-Type", "c", "Content-Length", "l", "P-Asserted-Identity", "Require", "Session-Expires",
]  # fmt: skip
_VALUES = {
    "Via": "SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{n}",
    "From": "<sip:+8613800138001@127.0.0.1>;tag={n}",
    "To": "<sip:hotline@127.0.0.1>",
    "Call-ID": "fuzz-{n}",
    "CSeq": "1 {method}",
    "Content-Type": "application/sdp",
}
_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40)
_sdp = st.lists(st.one_of(st.sampled_from(_SDP_LINES), _text), max_size=14).map("\r\n".join)


@st.composite
def sip_messages(draw: st.DrawFn) -> bytes:
    """A message shaped like SIP, with some parts well formed and some anything."""
    method = draw(st.sampled_from(["INVITE", "OPTIONS", "BYE", "CANCEL", "ACK", "UPDATE", "REFER", "NOTIFY", "X"]))
    n = draw(st.integers(0, 10**6))
    lines = [draw(st.one_of(st.just(f"{method} sip:hotline@127.0.0.1 SIP/2.0"), _text))]
    for name in draw(st.lists(st.sampled_from(_HEADERS), max_size=12)):
        good = _VALUES.get(name, "x").format(port="{port}", n=n, method=method)
        lines.append(f"{name}: {draw(st.one_of(st.just(good), _text))}")
    body = draw(st.one_of(st.just(""), _sdp))
    if draw(st.booleans()):
        lines.append(f"Content-Length: {draw(st.one_of(st.just(len(body.encode())), st.integers(-5, 10**6)))}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@given(sip_messages())
@settings(max_examples=300, deadline=None)
def test_the_conversions_answer_or_refuse_cleanly(raw: bytes) -> None:
    try:
        message = SipMessage.parse(raw.replace(b"{port}", b"5060"))
    except ValueError:
        return  # the stack drops what it cannot parse
    if not isinstance(message, SipRequest):
        return
    number = caller_number(message)
    assert number is None or number.lstrip("+").isdigit()
    if not _sdp_parses(message) or not message.body or message.content_type != "application/sdp":
        return  # refused with 400, or no SDP offer to answer
    try:
        _, media = answer(parse_sdp(message.text), "127.0.0.1", 20000, 1)
    except SipMediaError:
        return
    assert media.payload_type in (PCMU, PCMA) and 0 <= media.remote[1] <= 65535


def _request(method: str, extra: str, body: str, n: str = "t") -> bytes:
    head = (
        f"{method} sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{{port}};branch=z9hG4bK{n}{method}\r\n"
        f"From: <sip:a@127.0.0.1>;tag={n}\r\nTo: <sip:hotline@127.0.0.1>\r\nCall-ID: torture-{n}-{method}\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}"
    )
    if "Content-Length" not in extra:
        head += f"Content-Length: {len(body.encode())}\r\n"
    return (head + "\r\n" + body).encode()


def _options(change: tuple[bytes, bytes] = (b"", b"")) -> bytes:
    return _request("OPTIONS", "", "").replace(*change, 1) if change[0] else _request("OPTIONS", "", "")


# torture cases in the manner of RFC 4475, each written from its description of what it exercises
_TORTURE: dict[str, bytes] = {
    "missing mandatory headers": b"INVITE sip:hotline@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKa\r\n\r\n",
    "content-length past the end": _request("OPTIONS", "Content-Length: 9999\r\n", "v=0"),
    "negative content-length": _request("OPTIONS", "Content-Length: -5\r\n", ""),
    "cseq method not the request's": _options((b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")),
    "huge cseq number": _options((b"CSeq: 1 ", b"CSeq: 36893488147419103232 ")),
    "max-forwards zero": _options((b"Max-Forwards: 70", b"Max-Forwards: 0")),
    "nulls and escapes in a display name": _options((b"From: <sip:", b'From: "\\x00 %00 \xe4\xbd\xa0" <sip:')),
    "unknown required extension": _request("INVITE", "Require: nothing-we-know\r\n", ""),
    "two call-ids": _request("OPTIONS", "Call-ID: second\r\n", ""),
    "long header value": _request("OPTIONS", "Subject: " + "x" * 4000 + "\r\n", ""),
    "sdp without media": _request("INVITE", "Content-Type: application/sdp\r\n", "v=0\r\ns=-\r\nt=0 0"),
    "sdp that does not parse": _request("INVITE", "Content-Type: application/sdp\r\n", "m=audio x RTP/AVP 0"),
    "request-uri of another scheme": _options((b"sip:hotline@127.0.0.1 SIP", b"tel:+1 SIP")),
    "unknown protocol version": _options((b" SIP/2.0\r\n", b" SIP/7.0\r\n")),
    "folded header line": _options((b"Max-Forwards: 70", b"Max-Forwards:\r\n 70")),
    "a response to nothing": b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{port}\r\nCall-ID: x\r\n\r\n",
    "binary": bytes(range(256)),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int, socket.socket]]:
    tmp = tmp_path_factory.mktemp("sip-fuzz")
    with sip_server(tmp, asr_engine="vosk", vosk_model=str(tmp / "no-model")) as (app, port):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(0.3)
            yield app, port, peer


def _send(peer: socket.socket, port: int, raw: bytes) -> None:
    peer.sendto(raw.replace(b"{port}", str(peer.getsockname()[1]).encode()), ("127.0.0.1", port))


def _drain(peer: socket.socket) -> list[bytes]:
    replies = []
    while True:
        try:
            replies.append(peer.recv(65536))
        except TimeoutError:
            return replies


def _still_serving(app: Any, port: int, peer: socket.socket) -> None:
    """OPTIONS is answered 200 and no call is left set up or live."""
    _drain(peer)
    _send(peer, port, _request("OPTIONS", "", "", n="alive"))
    assert any(r.startswith(b"SIP/2.0 200") and b"torture-alive-OPTIONS" in r for r in _drain(peer))
    until(lambda: not app.state.sip.calls and not line_of(app).calls, within=10)


def test_torture_messages(server: tuple[Any, int, socket.socket]) -> None:
    app, port, peer = server
    statuses = {}
    for name, raw in _TORTURE.items():
        _send(peer, port, raw)
        replies = [r.split(b" ", 2)[1] for r in _drain(peer) if r.startswith(b"SIP/2.0 ")]
        statuses[name] = [int(code) for code in replies if code.isdigit()]
    assert 400 in statuses["missing mandatory headers"]
    assert 400 in statuses["sdp that does not parse"]
    assert 488 in statuses["sdp without media"]
    assert statuses["a response to nothing"] == [] and statuses["binary"] == []
    _still_serving(app, port, peer)


@given(raw=sip_messages())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_messages_leave_the_server_serving(server: tuple[Any, int, socket.socket], raw: bytes) -> None:
    app, port, peer = server
    _send(peer, port, raw)


def test_the_server_is_still_serving_after_the_generated_messages(server: tuple[Any, int, socket.socket]) -> None:
    _still_serving(*server)
