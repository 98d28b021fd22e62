"""Barge-in over SIP: a caller (``bench/sip_peer.py``: aiosipua's client and our own 20 ms RTP, so
the send time of every caller frame is known) speaks a real recording over the greeting; the
hotline's RTP stops within 200 ms of the speech onset and stays stopped while the caller talks.

Timing is judged on the wire, as the caller sees it, like the Twilio barge-in test.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from paths import REAL_ZH, shared
from sipp import sip_server, until
from test_twilio_call import _onset
from testmodels import telephone

from voice.live_line import line_of
from voice.wav import read_wav

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.sip_peer import SipPeer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.models]


def test_speech_over_the_greeting_stops_our_rtp_within_200_ms(tmp_path: Path, vosk_ko_model_dir: Path) -> None:
    speech = telephone(read_wav(shared(REAL_ZH / "BAC009S0764W0122.wav").read_bytes())).pcm

    async def call(port: int) -> tuple[list[float], list[float]]:
        async with SipPeer(port, "+8613800138001") as peer:
            deadline = time.monotonic() + 30
            while len(peer.media) < 25:  # half a second of the greeting has come
                assert time.monotonic() < deadline, "no greeting"
                await asyncio.sleep(0.02)
            sent = await peer.say(speech)
            return sent, list(peer.media)

    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_ko_model_dir)}
    with sip_server(tmp_path, **settings) as (app, port):
        sent, media = asyncio.run(call(port))
        until(lambda: not line_of(app).calls, within=20)
    onset = sent[_onset(speech)]
    before = [t for t in media if t < onset]
    late = [t for t in media if onset + 0.2 < t < sent[-1]]
    assert before and onset - before[-1] < 0.1, "the greeting was not playing when the caller spoke"
    assert late == [], f"reply RTP kept coming {late[-1] - onset:.3f} s after the speech onset"
