"""The media leg of one SIP call: aiortp's RTP session, our 20 ms pacer, and the ``Wire`` for the core.

Inbound: aiortp parses RTP, puts it through its jitter buffer (reordering and duplicates sorted
out, a packet missing once later ones are in is taken as lost and concealed) and decodes it with
``voice.sip_wire.G711``; RFC 4733 events arrive as keys. Both go to the ``LiveCall``.

Keys out (``send_dtmf``): RFC 4733 events under the telephone-event payload type the offer/answer
agreed, queued behind the audio and sent by the same pacer, one packet per tick in the audio's
stream (same SSRC, sequence numbers and timestamp clock; ``voice.sip_wire.key_ticks`` says what
each tick sends). aiortp's ``DtmfSender`` is not used: it sends a key's packets in one burst, not
one per 20 ms as the durations say, sets the marker on the first end packet instead of the
event's first packet (RFC 4733 §2.5.1.1), and its timestamps are not the stream's.

Outbound: the core hands us 20 ms frames a little ahead of real time; they wait in a bounded
queue that the pacer drains one frame per 20 ms tick (aiortp's drift-free ``MediaClock``), with
our own RTP timestamp advancing every tick so silence shows as a timestamp gap (RFC 3550). A mark
is queued after the frames of its sentence: the pacer reports it played (``mark_played``) once
every frame before it has gone out — our send pointer is what the caller heard. ``clear``
(barge-in) drops the queued frames at once, so at most the frame on the wire still plays; marks
still waiting are reported, as Twilio does on ``clear``; queued keys are still sent (a key cut
short would leave the far end without its end packet). On hold nothing is sent (the frames are
counted as dropped) and what the caller sends (music on hold) is not listened to, until an offer
takes the hold back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiortp import MediaClock, RTPSession

from core.types import AudioFrame
from voice.live import LiveEvent
from voice.sip_wire import (
    DTMF_PAYLOAD_TYPE,
    FRAME_SAMPLES,
    G711,
    RATE,
    KeyTick,
    Media,
    SipMediaError,
    caller_audio,
    dtmf_digit,
    key_ticks,
    payload,
)

if TYPE_CHECKING:
    from routing.accounts import AgentContact
    from voice.live import LiveCall

log = logging.getLogger(__name__)

FRAME_S = FRAME_SAMPLES / RATE
MAX_QUEUED_FRAMES = 250  # 5 s; the core keeps only a few frames ahead, so this is never reached in practice
JITTER_PACKETS = 16  # aiortp's buffer (a power of two): reordering up to this many packets is repaired
JITTER_PREFETCH = 3  # frames held before the oldest is delivered: 60 ms of reordering absorbed


class SipLeg:
    """``Wire`` of one SIP call over its RTP session (see the module docstring)."""

    def __init__(self, rtp: RTPSession, port: int, media: Media, hangup: Callable[[], None], label: str) -> None:
        self.rtp, self.rtp_port, self.media, self._hangup, self.label = rtp, port, media, hangup, label
        self.codec = G711(media.payload_type)
        self.call: LiveCall | None = None
        self.refer: Callable[[str], Awaitable[bool]] | None = None  # the front door's REFER of this call
        self.frames_sent = 0
        self.frames_dropped = 0  # queue overflow, hold, or cut by ``clear``
        self.clears = 0
        self.last_heard = 0.0  # event-loop time of the caller's last RTP (audio or key)
        self._queue: deque[bytes | str | KeyTick] = deque()  # payloads, keys' ticks, and marks after them
        self._frames_queued = 0
        self._timestamp = random.getrandbits(32)
        self._key_timestamp = 0  # the timestamp of the key being sent (all its packets carry it)
        self._clock = MediaClock(FRAME_S, self._tick)
        self._closed = False

    async def hand_over(self, contact: AgentContact) -> bool | None:
        """An agent with a SIP URI gets the caller by REFER (True: they answered); None: no SIP URI."""
        if not contact.sip_uri or self.refer is None:
            return None
        return await self.refer(contact.sip_uri)

    @classmethod
    async def open(cls, host: str, port: int, media: Media, hangup: Callable[[], None], label: str) -> SipLeg:
        """Bind the RTP session on ``host:port`` (RTCP on ``port + 1``) towards ``media.remote``."""
        rtp = await RTPSession.create(
            local_addr=(host, port),
            remote_addr=media.remote,
            payload_type=media.payload_type,
            codec=G711(media.payload_type),
            dtmf_payload_type=media.dtmf_payload_type or DTMF_PAYLOAD_TYPE,
            jitter_capacity=JITTER_PACKETS,
            jitter_prefetch=JITTER_PREFETCH,
            skip_audio_gaps=True,
            plc=True,
        )
        return cls(rtp, port, media, hangup, label)

    def attach(self, call: LiveCall) -> None:
        """Caller audio and keys go to ``call`` from now on; the pacer starts."""
        self.call = call
        self.rtp.on_audio = self._on_audio
        self.rtp.on_dtmf = self._on_dtmf
        self.last_heard = asyncio.get_running_loop().time()
        self._clock.start()

    def _on_audio(self, pcm: bytes, _timestamp: int) -> None:
        self.last_heard = asyncio.get_running_loop().time()
        if self.call is not None and not self.media.held:  # on hold the caller may send music: not speech
            self.call.feed_audio(caller_audio(pcm))

    def _on_dtmf(self, digit: str, _duration: int) -> None:
        self.last_heard = asyncio.get_running_loop().time()
        key = dtmf_digit(digit)
        if key is not None and self.call is not None:
            self.call.feed_dtmf(key)

    def renegotiated(self, media: Media) -> None:
        """A re-INVITE agreed ``media``: new address, hold or unhold."""
        if media.remote != self.media.remote and not media.held:
            self.rtp.update_remote(media.remote)
        self.media = media

    # -- Wire -------------------------------------------------------------------------------------

    async def send_audio(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        if self._frames_queued >= MAX_QUEUED_FRAMES:
            self.frames_dropped += 1
            return
        self._queue.append(payload(self.codec, frame))
        self._frames_queued += 1

    async def clear(self) -> None:
        self.clears += 1
        marks = [item for item in self._queue if isinstance(item, str)]
        self.frames_dropped += self._frames_queued
        self._queue = deque(item for item in self._queue if isinstance(item, KeyTick))
        self._frames_queued = 0
        for name in marks:
            self._played(name)

    async def mark(self, name: str) -> None:
        if not self._queue:
            self._played(name)  # every frame before it is already on the wire
        else:
            self._queue.append(name)

    async def send_dtmf(self, keys: str) -> None:
        """Send ``keys`` (0-9 * # A-D) as RFC 4733 events after the audio queued so far.

        ``SipMediaError`` when the caller's offer had no telephone-event (nothing to send them as).
        """
        if self.media.dtmf_payload_type is None:
            raise SipMediaError("expected telephone-event in the caller's offer to send keys, got none")
        ticks = key_ticks(keys)
        if not self._closed:
            self._queue.extend(ticks)

    async def event(self, event: LiveEvent) -> None:
        """SIP has no screen: per-turn latency goes to the log, the rest is dropped."""
        if event.kind == "latency":
            log.info("turn latency", extra={"sip_call": self.label, **event.data})

    async def hangup(self) -> None:
        self._hangup()

    # -- the pacer --------------------------------------------------------------------------------

    def _tick(self) -> None:
        """One 20 ms tick: send the next frame (if any) and report the marks now behind the pointer."""
        self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self._report_marks()
        if not self._queue:
            return
        item = self._queue.popleft()
        if isinstance(item, KeyTick):
            self._send_key(item)
        else:
            assert isinstance(item, bytes)
            self._frames_queued -= 1
            if self.media.held:
                self.frames_dropped += 1
            else:
                self.rtp.send_audio(item, self._timestamp)
                self.frames_sent += 1
        self._report_marks()

    def _send_key(self, tick: KeyTick) -> None:
        """One tick of a key: its RFC 4733 packet (none in the pause after it, nor on hold)."""
        if tick.starts:
            self._key_timestamp = self._timestamp
        pt, sender = self.media.dtmf_payload_type, self.rtp._sender  # aiortp 0.8 sends other payload types only here
        if tick.payload is None or pt is None or sender is None or self.media.held:
            return
        sender.send_raw(pt, tick.payload, self._key_timestamp, int(tick.starts), self.media.remote)

    def _report_marks(self) -> None:
        while self._queue and isinstance(self._queue[0], str):
            self._played(self._queue.popleft())  # type: ignore[arg-type]

    def _played(self, name: str) -> None:
        if self.call is not None:
            self.call.mark_played(name)

    async def close(self) -> None:
        """Stop the pacer and close the RTP session (its RTCP BYE is sent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        await self._clock.stop()
        await self.rtp.close()
