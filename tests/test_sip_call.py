"""A whole SIP call from real sipp to a running server, with a real human recording over RTP and the
real whisper base model: INVITE (PCMU/PCMA/telephone-event) → 200 with our SDP answer → ACK, the
greeting and the answer come back as RTP, the question is transcribed, the caller is identified by
the number in ``From`` as Twilio's ``From`` identifies them, and sipp's BYE ends the call.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from paths import REAL_ZH, shared
from rapidfuzz.distance import Levenshtein
from sipp import RtpCounter, failed, run_scenario, sip_server, until
from testmodels import telephone

from voice.codec import pcm16_to_ulaw
from voice.live_line import line_of
from voice.wav import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]
KNOWN = "+8613912340101"  # C101 in the embedded sample shop
QUESTION = "BAC009S0764W0121.wav"
WAIT_MS = 6000  # the greeting plays before the caller speaks


def _transcript(name: str) -> str:
    rows = dict(line.split("\t")[:2] for line in shared(REAL_ZH / "transcripts.tsv").read_text().splitlines())
    return rows[name]


class _Watch:
    """Polls the server's SIP front door and keeps the live call it answers (it is gone after BYE)."""

    def __init__(self, app: Any) -> None:
        self.app, self.live, self.answered_at = app, None, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.live is None:
            door = getattr(self.app.state, "sip", None)
            for call in list(door.calls.values()) if door is not None else []:
                if call.answered:
                    self.live, self.answered_at = call.live, time.monotonic()
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def test_a_sip_call_with_real_speech(tmp_path: Path, whisper_model_dir: Path) -> None:
    speech = telephone(read_wav(shared(REAL_ZH / QUESTION).read_bytes())).pcm
    (tmp_path / "caller.ulaw").write_bytes(pcm16_to_ulaw(speech + bytes(2 * 8000 * 3)))  # then 3 s of silence
    settings = {"asr_engine": "whisper", "whisper_model": str(whisper_model_dir)}
    with sip_server(tmp_path, **settings) as (app, port), RtpCounter() as rtp:
        watch = _Watch(app)
        keys = {"caller": KNOWN, "listen": str(rtp.port), "wait": str(WAIT_MS), "talk": "15000"}
        result = run_scenario("uac_call.xml", port, tmp_path, keys=keys)
        watch.stop()
        assert result.returncode == 0, failed(result)
        until(lambda: not line_of(app).calls, within=20)  # the BYE ended the live call
    live = watch.live
    assert live is not None, "the server never answered"
    assert live.prompts.hold_on  # whisper gives its text after the utterance: a 「嗯」 may come first
    state = live.session.state
    assert state.customer is not None and state.customer.phone.endswith("13912340101")  # caller ID from From
    caller_lines = [line.text for line in state.transcript if line.speaker == "caller"]
    assert caller_lines, "nothing the caller said was heard"
    assert Levenshtein.normalized_distance(caller_lines[0], _transcript(QUESTION)) <= 0.35, caller_lines
    speakers = [line.speaker for line in state.transcript]
    assert speakers.index("caller") < len(speakers) - 1, "the question was not answered"
    assert len(rtp.ssrcs) == 1 and len(rtp.loud) > 50, (rtp.ssrcs, len(rtp.loud))
    spoken_end = watch.answered_at + WAIT_MS / 1000 + len(speech) / 16000
    assert any(t > spoken_end for t in rtp.loud), "no reply audio after the question"
    gaps = [b - a for a, b in zip(rtp.arrivals, rtp.arrivals[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.02, abs=0.005)  # paced at 20 ms
