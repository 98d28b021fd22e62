"""Keys sent by the hotline as RFC 4733 telephone-events (``SipLeg.send_dtmf``).

The packet layout is checked against RFC 4733's rules, first as ``key_ticks`` plans it and then as
it goes out on a real loopback socket inside the audio's RTP stream; two independent receivers
decode the keys back: aiortp's own RTP session (digits and their durations), and baresip
(Debian ``baresip``, libre's telephone-event decoder) on a real call to the hotline.
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortp import DtmfEvent, RTPSession
from sipp import free_port, until
from test_sip_baresip import baresip_call
from test_sip_media import Inbound, _received, _run, _until

from core.types import AudioFrame
from voice.sip_media import SipLeg
from voice.sip_wire import PCMU, KeyTick, Media, SipMediaError, key_ticks

KEYS = "159#"
EVENT_PT = 96  # the caller's telephone-event number (not our 101): what we send must use the offer's


def _events(ticks: list[KeyTick]) -> list[DtmfEvent | None]:
    return [None if t.payload is None else DtmfEvent.parse(t.payload) for t in ticks]


def test_key_ticks_follow_rfc_4733() -> None:
    ticks = key_ticks("1#", tone_ms=100, pause_ms=100)
    assert len(ticks) == 20  # per key: 5 ticks of tone, 5 of pause (two of them the end repeats)
    events = _events(ticks)
    for key, part in ((1, events[:10]), (11, events[10:])):
        tone = part[:7]
        assert all(e is not None and e.event == key and e.volume == 10 for e in tone)
        assert [e.duration for e in tone if e] == [160, 320, 480, 640, 800, 800, 800]  # grows a frame a tick
        assert [e.end for e in tone if e] == [False] * 4 + [True] * 3  # the final packet, three times
        assert part[7:] == [None] * 3  # then quiet until the pause is over
    assert [t.starts for t in ticks] == ([True] + [False] * 9) * 2  # the marker: each key's first packet only
    assert all(t.payload is None or len(t.payload) == 4 and t.payload[1] & 0x40 == 0 for t in ticks)  # R bit 0
    short = _events(key_ticks("*", tone_ms=20, pause_ms=0))
    assert [(e.event, e.end, e.duration) for e in short if e] == [(10, True, 160)] * 3  # repeats fit anyway


@pytest.mark.parametrize("keys", ["", "12x", "E", "1" * 33])
def test_key_ticks_refuses_what_is_not_a_key(keys: str) -> None:
    with pytest.raises(ValueError, match="expected 1-32 keys"):
        key_ticks(keys)


@pytest.mark.parametrize("tone_ms", [10, 8200])  # under one frame; over what 16 bits of duration hold
def test_key_ticks_refuses_a_length_rfc_4733_cannot_carry(tone_ms: int) -> None:
    with pytest.raises(ValueError, match="expected a key length of 20-8180 ms"):
        key_ticks("1", tone_ms=tone_ms)


def _leg_test(test: Any, dtmf: int | None = EVENT_PT) -> None:
    """``test(leg, peer, inbound)`` on a real media leg (``test_sip_media._run``) with ``dtmf`` negotiated."""
    _run(lambda leg, inbound, peer: test(leg, peer, inbound), dtmf=dtmf)


def _frame() -> AudioFrame:
    return AudioFrame(np.full(160, 700, "<i2").tobytes(), 8000)


def test_keys_go_out_in_the_audio_stream_as_rfc_4733_packets() -> None:
    async def test(leg: SipLeg, peer: socket.socket, inbound: Inbound) -> None:
        for _ in range(3):
            await leg.send_audio(_frame())
        await leg.send_dtmf("5#")
        await leg.send_audio(_frame())
        await leg.mark("done")
        await _until(lambda: bool(inbound.marks))
        packets = _received(peer)
        assert len(packets) == 3 + 2 * 7 + 1  # the quiet ticks send nothing
        assert len({p.ssrc for p in packets}) == 1  # one stream: audio and events
        steps = [(b.sequence_number - a.sequence_number) % 65536 for a, b in zip(packets, packets[1:], strict=False)]
        assert steps == [1] * 17
        audio, five, pound, after = packets[:3], packets[3:10], packets[10:17], packets[17]
        assert {p.payload_type for p in audio + [after]} == {PCMU}
        for key, event in ((5, five), (11, pound)):
            assert {p.payload_type for p in event} == {EVENT_PT}  # the number the caller offered
            assert [p.marker for p in event] == [1] + [0] * 6  # marker on the event's first packet only
            assert len({p.timestamp for p in event}) == 1  # every packet carries the event's start
            parsed = [DtmfEvent.parse(p.payload) for p in event]
            assert {e.event for e in parsed} == {key}
            assert [(e.duration, e.end) for e in parsed][-4:] == [(640, False)] + [(800, True)] * 3
        step = 160  # the stream's clock: one frame per tick, silence (the pause) included
        assert five[0].timestamp == audio[-1].timestamp + step
        assert pound[0].timestamp == five[0].timestamp + 10 * step  # 100 ms of key, 100 ms of pause
        assert after.timestamp == pound[0].timestamp + 10 * step

    _leg_test(test)


def test_a_barge_in_does_not_cut_a_key_short() -> None:
    async def test(leg: SipLeg, peer: socket.socket, inbound: Inbound) -> None:
        await leg.send_dtmf("7")
        await leg.send_audio(_frame())
        await leg.clear()  # the audio queued behind the key goes; the key is sent whole
        await leg.mark("after")
        await _until(lambda: bool(inbound.marks))
        events = [DtmfEvent.parse(p.payload) for p in _received(peer)]
        assert [(e.event, e.end) for e in events] == [(7, False)] * 4 + [(7, True)] * 3
        assert leg.frames_sent == 0 and leg.frames_dropped == 1


def test_keys_need_telephone_event_in_the_offer() -> None:
    async def test(leg: SipLeg, peer: socket.socket, inbound: Inbound) -> None:
        with pytest.raises(SipMediaError, match="telephone-event"):
            await leg.send_dtmf("1")

    _leg_test(test, dtmf=None)


def test_aiortp_decodes_the_keys_we_send_with_their_durations() -> None:
    async def main() -> list[tuple[str, int]]:
        port = free_port()
        heard: list[tuple[str, int]] = []
        receiver = await RTPSession.create(("127.0.0.1", port), ("127.0.0.1", 9), PCMU, dtmf_payload_type=EVENT_PT)
        receiver.on_dtmf = lambda digit, duration: heard.append((digit, duration))
        leg = await SipLeg.open(
            "127.0.0.1", free_port(), Media(("127.0.0.1", port), PCMU, EVENT_PT, False), lambda: None, "t"
        )
        leg.attach(Inbound(leg))  # type: ignore[arg-type]
        try:
            await leg.send_dtmf("159#*0D")
            await _until(lambda: len(heard) == 7)
            await asyncio.sleep(0.1)  # a repeated end packet taken for a new key would show by now
        finally:
            await leg.close()
            await receiver.close()
        return heard

    assert asyncio.run(main()) == [(key, 800) for key in "159#*0D"]  # 100 ms at 8 kHz each


def _server_loop(app: Any) -> asyncio.AbstractEventLoop:
    """The server's event loop (the SIP front door's call tasks run on it)."""
    return next(iter(app.state.sip._tasks)).get_loop()  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.models
def test_baresip_hears_the_keys_the_hotline_sends(tmp_path: Path, vosk_ko_model_dir: Path) -> None:
    with baresip_call(tmp_path, bytes(2 * 8000 * 60), vosk_ko_model_dir) as agent:  # a quiet caller
        send = agent.call.leg.send_dtmf(KEYS)
        asyncio.run_coroutine_threadsafe(send, _server_loop(agent.app)).result(timeout=5)
        until(lambda: any(f"received event: '{KEYS[-1]}' (end=1)" in line for line in agent.output), within=20)
    output = agent.output
    events = [m.groups() for m in (re.search(r"received event: '(.)' \(end=(\d)\)", line) for line in output) if m]
    assert events == [(key, end) for key in KEYS for end in "01"], events  # each key once: begun, then ended
