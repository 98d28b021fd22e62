"""A SIP call's media leg (``voice.sip_media``) over real loopback UDP: aiortp's jitter buffer puts
reordered, duplicated and lost RTP back in order (the loss concealed), RFC 4733 events become keys,
the pacer sends one frame per tick with RTP timestamps 160 apart and reports a mark once the frames
before it are out, ``clear`` stops the audio at once, and nothing is sent on hold."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from aiortp import DtmfEvent, RtpPacket
from sipp import free_port

from core.types import AudioFrame
from voice.codec import pcm16_to_ulaw
from voice.sip_media import SipLeg
from voice.sip_wire import PCMU, Media


@dataclass
class Inbound:
    """What the leg hands the core (the ``LiveCall`` inbound calls), recorded."""

    leg: SipLeg | None = None
    frames: list[AudioFrame] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    marks: list[tuple[str, int]] = field(default_factory=list)  # (name, frames sent by then)

    def feed_audio(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    def feed_dtmf(self, digit: str) -> None:
        self.keys.append(digit)

    def mark_played(self, name: str) -> None:
        assert self.leg is not None
        self.marks.append((name, self.leg.frames_sent))


def _level(value: int) -> bytes:
    return pcm16_to_ulaw(np.full(160, value, "<i2").tobytes())


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _run(
    test: Callable[[SipLeg, Inbound, socket.socket], Awaitable[None]], held: bool = False, dtmf: int | None = 101
) -> None:
    """``test(leg, inbound, peer)`` on a real media leg whose far end is the UDP socket ``peer``."""

    async def main() -> None:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        media = Media(peer.getsockname(), PCMU, dtmf, held)
        leg = await SipLeg.open("127.0.0.1", free_port(), media, lambda: None, "test")
        inbound = Inbound(leg)
        leg.attach(inbound)  # type: ignore[arg-type]
        try:
            await test(leg, inbound, peer)
        finally:
            await leg.close()
            peer.close()

    asyncio.run(main())


def _received(peer: socket.socket) -> list[RtpPacket]:
    packets: list[RtpPacket] = []
    while True:
        try:
            data = peer.recv(2048)
        except BlockingIOError:
            return packets
        packets.append(RtpPacket.parse(data))


def test_reordered_duplicated_and_lost_packets_come_out_in_order() -> None:
    async def test(leg: SipLeg, inbound: Inbound, peer: socket.socket) -> None:
        order = [0, 2, 1, 3, 3, 4, 6, 5, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]  # 8 lost, 3 twice
        target = ("127.0.0.1", leg.rtp_port)
        for seq in order:
            packet = RtpPacket(payload_type=PCMU, sequence_number=1000 + seq, timestamp=160 * seq, ssrc=7)
            packet.payload = _level(1000 + 200 * seq)
            peer.sendto(packet.serialize(), target)
        await _until(lambda: len(inbound.frames) >= 15)
        levels = [int(np.frombuffer(f.pcm, "<i2").mean()) for f in inbound.frames]
        steps = [round((level - 1000) / 200) for level in levels]
        assert steps[:8] == list(range(8)), steps  # the reordering undone, the duplicate dropped
        assert steps[9:15] == list(range(9, 15)), steps  # frame 8 is the loss, concealed in its place
        assert steps[8] != 8 and all(f.sample_rate == 8000 and len(f.pcm) == 320 for f in inbound.frames)

    _run(test)


def test_rfc4733_events_become_keys_once_each() -> None:
    async def test(leg: SipLeg, inbound: Inbound, peer: socket.socket) -> None:
        seq = 0
        for n, digit in enumerate([1, 11]):  # "1", then "#"
            for end, repeats in ((False, 2), (True, 3)):  # progress packets, then three end packets
                for _ in range(repeats):
                    event = DtmfEvent(event=digit, end=end, volume=10, duration=800)
                    packet = RtpPacket(payload_type=101, sequence_number=seq, timestamp=8000 * (n + 1), ssrc=9)
                    packet.payload = event.serialize()
                    peer.sendto(packet.serialize(), ("127.0.0.1", leg.rtp_port))
                    seq += 1
        await _until(lambda: len(inbound.keys) >= 2)
        await asyncio.sleep(0.1)  # a repeated end packet would show up by now
        assert inbound.keys == ["1", "#"]

    _run(test)


def test_the_pacer_sends_in_order_and_reports_marks_behind_the_send_pointer() -> None:
    async def test(leg: SipLeg, inbound: Inbound, peer: socket.socket) -> None:
        for i in range(10):
            await leg.send_audio(AudioFrame(np.full(160, 500 + i, "<i2").tobytes(), 8000))
        await leg.mark("a")
        for _ in range(5):
            await leg.send_audio(AudioFrame(bytes(320), 8000))
        await leg.mark("b")
        await _until(lambda: len(inbound.marks) == 2)
        assert inbound.marks == [("a", 10), ("b", 15)]  # reported once the frames before each were sent
        packets = _received(peer)
        assert len(packets) == 15 and [p.sequence_number for p in packets] == sorted(p.sequence_number for p in packets)
        assert {(b.timestamp - a.timestamp) % 2**32 for a, b in zip(packets, packets[1:], strict=False)} == {160}
        await leg.mark("c")  # nothing queued: played at once
        assert inbound.marks[-1] == ("c", 15)

    _run(test)


def test_clear_drops_the_queued_audio_at_once() -> None:
    async def test(leg: SipLeg, inbound: Inbound, peer: socket.socket) -> None:
        for _ in range(100):
            await leg.send_audio(AudioFrame(np.full(160, 900, "<i2").tobytes(), 8000))
        await leg.mark("cut")
        await _until(lambda: leg.frames_sent >= 5)
        await leg.clear()
        sent = leg.frames_sent
        assert inbound.marks == [("cut", sent)]  # an outstanding mark is returned on clear, as Twilio does
        await asyncio.sleep(0.2)  # ten ticks
        assert leg.frames_sent == sent and leg.frames_dropped == 100 - sent
        assert len(_received(peer)) == sent

    _run(test)


def test_nothing_is_sent_on_hold() -> None:
    async def test(leg: SipLeg, inbound: Inbound, peer: socket.socket) -> None:
        for _ in range(5):
            await leg.send_audio(AudioFrame(bytes(320), 8000))
        await leg.mark("held")
        await _until(lambda: bool(inbound.marks))
        assert leg.frames_sent == 0 and leg.frames_dropped == 5 and _received(peer) == []
        leg.renegotiated(Media(leg.media.remote, PCMU, 101, False))  # unhold
        await leg.send_audio(AudioFrame(bytes(320), 8000))
        await _until(lambda: leg.frames_sent == 1)

    _run(test, held=True)
