"""A SIP caller on loopback for ``bench/turns.py --wire sip``: what a trunk does, the way
``tests/twiliosim.py`` is what Twilio does.

Signalling is aiosipua's client (INVITE with a PCMU + telephone-event offer, ACK, BYE; the
hotline's BYE ends the call); media is our own RTP socket: a PCMU packet every 20 ms of real time
(the clip being said, else line silence, as a phone sends), and the arrival time of every RTP
packet the hotline sends (its reply audio: the hotline sends nothing between replies).
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiortp import RtpPacket
from aiosipua import SipUAC, SipUAS, parse_sdp

from voice.codec import pcm16_to_ulaw
from voice.sip_server import UdpTransport

FRAME_S = 0.02
FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES  # μ-law zero
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self, arrivals: list[float]) -> None:
        self.arrivals = arrivals

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7F == 0:  # PCMU RTP (RTCP is on port + 1)
            self.arrivals.append(time.monotonic())


@dataclass
class SipPeer:
    sip_port: int  # the hotline's IVR_SIP_PORT on 127.0.0.1
    caller: str  # the number in From
    media: list[float] = field(default_factory=list)  # arrival time of each reply RTP packet
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # the hotline sent BYE

    async def __aenter__(self) -> SipPeer:
        loop = asyncio.get_running_loop()
        self.transport = UdpTransport(local_addr=("127.0.0.1", _free_port()))
        self.uac = SipUAC(self.transport)
        self.uas = SipUAS(self.transport, uac=self.uac)
        self.uas.on_bye = lambda _call, _request: self.hung_up.set()
        await self.uas.start()
        rtp_port = _free_port()
        self.rtp, _ = await loop.create_datagram_endpoint(lambda: _Rtp(self.media), local_addr=("127.0.0.1", rtp_port))
        target = ("127.0.0.1", self.sip_port)
        offer = parse_sdp(OFFER.format(port=rtp_port))
        self.call = self.uac.send_invite(
            f"sip:{self.caller}@127.0.0.1", f"sip:hotline@127.0.0.1:{self.sip_port}", target, offer
        )
        await self.call.wait_answered(timeout=30)
        answer = self.call.sdp_answer
        assert answer is not None and answer.rtp_address is not None, "the hotline's 200 had no SDP answer"
        self.remote = answer.rtp_address
        self._clip: list[bytes] = []
        self._clip_done = asyncio.Event()
        self._sent_at: list[float] = []
        self._talker = asyncio.create_task(self._talk())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._talker.cancel()
        await asyncio.gather(self._talker, return_exceptions=True)
        if not self.hung_up.is_set():
            self.call.hangup(self.uac)
            await asyncio.sleep(0.05)
        self.rtp.close()
        await self.uas.stop()

    async def say(self, pcm8k: bytes) -> list[float]:
        """Send ``pcm8k`` as the caller's next audio; returns the send time of each of its frames."""
        ulaw = pcm16_to_ulaw(pcm8k)
        self._clip = [ulaw[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff") for i in range(0, len(ulaw), FRAME_BYTES)]
        self._sent_at = []
        self._clip_done = asyncio.Event()
        said = asyncio.ensure_future(self._clip_done.wait())
        bye = asyncio.ensure_future(self.hung_up.wait())
        await asyncio.wait({said, bye}, return_when=asyncio.FIRST_COMPLETED)
        for task in (said, bye):
            task.cancel()
        if not self._clip_done.is_set():
            raise ConnectionError("the hotline hung up while the caller was speaking")
        return list(self._sent_at)

    async def _talk(self) -> None:
        """A PCMU packet every 20 ms of real time: the clip being said, else line silence."""
        origin, n = time.monotonic(), 0
        seq, stamp, ssrc = random.getrandbits(16), random.getrandbits(32), random.getrandbits(32)
        while not self.hung_up.is_set():
            payload = self._clip.pop(0) if self._clip else SILENCE
            packet = RtpPacket(
                payload_type=0, sequence_number=(seq + n) & 0xFFFF, timestamp=(stamp + 160 * n) & 0xFFFFFFFF, ssrc=ssrc
            )
            packet.payload = payload
            self.rtp.sendto(packet.serialize(), self.remote)
            if payload is not SILENCE:
                self._sent_at.append(time.monotonic())
                if not self._clip:
                    self._clip_done.set()
            n += 1
            await asyncio.sleep(max(0.0, origin + n * FRAME_S - time.monotonic()))
