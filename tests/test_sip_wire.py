"""SIP/SDP ⇄ core types (``voice.sip_wire``) and the SIP settings: SDP answers, hold, caller numbers
from ``P-Asserted-Identity``/``From``/``tel:``, G.711 through ``voice.codec``, one-line config errors."""

from __future__ import annotations

import numpy as np
import pytest
from aiosipua import SipMessage, SipRequest, parse_sdp, serialize_sdp

from core.errors import ConfigError
from core.settings import Settings
from voice.codec import pcm16_to_alaw, pcm16_to_ulaw
from voice.sip_wire import G711, PCMA, PCMU, SipMediaError, answer, caller_number, dtmf_digit

OFFER = (
    "v=0\r\no=- 7 7 IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP {formats}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:20\r\n{extra}"
)


def _offer(formats: str = "0 8 96", extra: str = "a=sendrecv\r\n") -> object:
    return parse_sdp(OFFER.format(formats=formats, extra=extra))


def test_the_answer_takes_the_callers_first_g711_and_telephone_event() -> None:
    sdp, media = answer(_offer("8 0 96"), "127.0.0.1", 20000, 1)  # type: ignore[arg-type]
    text = serialize_sdp(sdp)
    assert media.payload_type == PCMA and media.dtmf_payload_type == 96
    assert media.remote == ("10.1.2.3", 40000) and not media.held
    assert "m=audio 20000 RTP/AVP 8 96" in text and "a=rtpmap:8 PCMA/8000" in text
    assert "a=rtpmap:96 telephone-event/8000" in text and "c=IN IP4 127.0.0.1" in text  # the offer's number
    assert "a=sendrecv" in text


def test_a_reinvite_keeps_the_codec_and_bumps_the_version() -> None:
    sdp, media = answer(_offer("8 0 96"), "127.0.0.1", 20000, 3, codecs=(PCMU,))  # type: ignore[arg-type]
    assert media.payload_type == PCMU and "o=- 1 3 IN IP4 127.0.0.1" in serialize_sdp(sdp)


@pytest.mark.parametrize(
    ("extra", "connection", "direction"),
    [("a=sendonly\r\n", "10.1.2.3", "recvonly"), ("a=inactive\r\n", "10.1.2.3", "inactive"), ("", "0.0.0.0", None)],
)
def test_hold_is_recognised(extra: str, connection: str, direction: str | None) -> None:
    offer = parse_sdp(
        OFFER.format(formats="0 96", extra=extra).replace("IN IP4 10.1.2.3\r\nt=", f"IN IP4 {connection}\r\nt=")
    )
    sdp, media = answer(offer, "127.0.0.1", 20000, 2)
    assert media.held
    if direction is not None:
        assert f"a={direction}" in serialize_sdp(sdp)


def test_an_offer_without_g711_or_audio_is_refused() -> None:
    with pytest.raises(SipMediaError, match="PCMU or PCMA"):
        answer(_offer("18 96"), "127.0.0.1", 20000, 1)  # type: ignore[arg-type]
    with pytest.raises(SipMediaError, match="audio"):
        answer(parse_sdp("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"), "127.0.0.1", 20000, 1)


def _invite(*headers: str) -> SipRequest:
    text = (
        "INVITE sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1\r\n"
        + "".join(h + "\r\n" for h in headers)
        + "To: <sip:hotline@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    message = SipMessage.parse(text)
    assert isinstance(message, SipRequest)
    return message


@pytest.mark.parametrize(
    ("headers", "number"),
    [
        (['From: "Li" <sip:+8613912340101@10.0.0.9>;tag=1'], "+8613912340101"),
        (["From: <sip:13912340101@pbx.example;user=phone>;tag=1"], "13912340101"),
        (
            ["From: <sip:anonymous@anonymous.invalid>;tag=1", "P-Asserted-Identity: <sip:+8613800138001@trunk>"],
            "+8613800138001",
        ),
        (["From: <sip:0571-8888-1234@pbx>;tag=1", "P-Asserted-Identity: <tel:+86-138-0013-8001>"], "+8613800138001"),
        (['From: "x" <tel:+8613912340101>;tag=1'], "+8613912340101"),
        (["From: <sip:alice@pbx.example>;tag=1"], None),
        (["From: <sip:12@pbx>;tag=1"], None),  # an extension, not a number
    ],
)
def test_the_caller_number_comes_from_pai_or_from(headers: list[str], number: str | None) -> None:
    assert caller_number(_invite(*headers)) == number


def test_g711_goes_through_the_projects_codec() -> None:
    pcm = (np.sin(np.arange(160) / 5) * 8000).astype("<i2").tobytes()
    assert G711(PCMU).encode(pcm) == pcm16_to_ulaw(pcm) and G711(PCMA).encode(pcm) == pcm16_to_alaw(pcm)
    assert G711(PCMU).samples_per_frame == 160 and G711(PCMA).name == "PCMA"
    with pytest.raises(ValueError, match="PCMU"):
        G711(18)


def test_dtmf_events_that_are_keys() -> None:
    assert [dtmf_digit(d) for d in "19*#A?"] == ["1", "9", "*", "#", "A", None]


def test_sip_settings_are_validated() -> None:
    assert Settings.from_env({}).sip_port is None
    assert Settings.from_env({"IVR_SIP_PORT": "off"}).sip_port is None
    assert Settings.from_env({"IVR_SIP_PORT": "5060"}).sip_port == 5060
    bad = {
        "IVR_SIP_PORT": ("70000", "IVR_SIP_PORT must be 1..65535"),
        "IVR_SIP_ALLOW": ("10.0.0.0/8,not-a-net", "IVR_SIP_ALLOW must be comma-separated CIDRs"),
        "IVR_SIP_RTP_PORTS": ("20000", "IVR_SIP_RTP_PORTS must be LOW-HIGH"),
    }
    for var, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            Settings.from_env({var: value})
    with pytest.raises(ConfigError, match="whole number"):
        Settings.from_env({"IVR_SIP_PORT": "sip"})
    with pytest.raises(ConfigError, match="IVR_HOST must be the address callers reach"):
        Settings.from_env({"IVR_SIP_PORT": "5060", "IVR_HOST": "0.0.0.0"})
