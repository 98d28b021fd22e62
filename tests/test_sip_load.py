"""20 calls at once from real sipp: each INVITEs, hears the greeting over RTP, speaks a real
Mandarin recording as G.711 RTP, and hangs up with BYE — all 20 overlapping on one server.

sipp's own statistics must show 20 successful calls and none failed. On the server every call was
answered, played its greeting (loud RTP on the call's own SSRC) and recorded an outcome, and its
recogniser was built off the event loop (built on it, 20 of them stalled every call's RTP pacer
0.25-0.35 s). Afterwards no call is left in the front door, the live line or the SIP stack, and
the RTP ports are free: the server's range holds exactly 20 port pairs, so a second wave of 20
calls is answered only if every pair of the first was released.

The Korean vosk model is the compute stand-in, so what it hears of Mandarin is not Mandarin: a
call's transcript is compared with what the same model hears of the same recording offline. Two
cores cannot recognise 20 callers' first words in real time (a fresh vosk recogniser spends ~3x
the CPU of a warm one on its first utterance), so the 19 other calls hang up before their turn is
recognised; the first call stays on until it is, and its words are checked.

A burst beyond the line's capacity gets 503 for the calls it cannot hold, even when they all arrive
while the first ones are still being set up.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from paths import REAL_ZH, shared
from rapidfuzz.distance import Levenshtein
from sipp import RtpCounter, failed, run_scenario, sip_server, until
from testmodels import telephone

from asr.vosk_engine import VoskEngine
from core.types import AudioFrame
from voice.codec import pcm16_to_ulaw, ulaw_to_pcm16
from voice.live_line import line_of
from voice.sip_server import SipCall
from voice.speech import transcribe
from voice.wav import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]
CALLS = 20
KNOWN = "+8613912340101"  # C101 in the embedded sample shop
RTP_PORTS = "31000-31040"  # exactly 20 even ports: a pair not released refuses a later call
WAIT_MS = 4000  # into the greeting, so callers speak while 20 greetings still play
TALK_MS = 12000  # from the recording's start to BYE: its 4 s, 3 s of silence, then 5 s more
MAX_DISTANCE = 0.5  # the live path (its VAD, chunking) and the offline one differ by a syllable or two
LAST_TALK_MS = 24000  # the first call stays on while its speech is recognised (see the module docstring)


class _Watch:
    """Polls the server's SIP front door and keeps every call it sets up (gone from it after BYE)."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, dict[str, SipCall]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for call in list(self.app.state.sip.calls.values()):
                if call.answered:
                    self.calls.setdefault(call.label, call)
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _statistic(output: str, name: str) -> int:
    """A cumulative counter from the statistics sipp prints at its end (``Successful call | .. | 20``)."""
    rows = re.findall(rf"^\s*{name}\s*\|\s*\d+\s*\|\s*(\d+)", output, re.MULTILINE)
    assert rows, f"sipp printed no {name!r} statistic"
    return int(rows[-1])


def _idle(app: Any) -> None:
    door = app.state.sip
    until(lambda: not door.calls and not line_of(app).calls, within=20)
    until(lambda: all(not uas.active_calls for uas in door._stacks), within=5)


def test_twenty_calls_at_once_complete(
    tmp_path: Path, vosk_ko_model_dir: Path, vosk_ko_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    speech = telephone(read_wav(shared(REAL_ZH / "BAC009S0764W0121.wav").read_bytes())).pcm
    (tmp_path / "caller.ulaw").write_bytes(pcm16_to_ulaw(speech + bytes(2 * 8000 * 3)))
    on_the_line = AudioFrame(ulaw_to_pcm16(pcm16_to_ulaw(speech)), 8000)  # what the server receives
    offline = " ".join(u.text for u in transcribe(vosk_ko_engine, on_the_line))
    built_in: list[str] = []  # the thread each call's recogniser was built in
    new_stream = VoskEngine.new_stream

    def recorded(engine: VoskEngine, *args: Any, **kwargs: Any) -> Any:
        built_in.append(threading.current_thread().name)
        return new_stream(engine, *args, **kwargs)

    monkeypatch.setattr(VoskEngine, "new_stream", recorded)
    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_ko_model_dir), "sip_rtp_ports": RTP_PORTS}
    with sip_server(tmp_path, **settings) as (app, port), RtpCounter() as rtp:
        watch = _Watch(app)
        keys = {"caller": KNOWN, "listen": str(rtp.port), "wait": str(WAIT_MS)}
        started = time.monotonic()
        talks = [str(LAST_TALK_MS)] + [str(TALK_MS)] * (CALLS - 1)
        result = run_scenario("uac_load.xml", port, tmp_path, calls=CALLS, keys=keys, fields=talks, timeout=60)
        wall = time.monotonic() - started
        watch.stop()
        assert result.returncode == 0, failed(result)
        assert _statistic(result.stdout, "Successful call") == CALLS, failed(result)
        assert _statistic(result.stdout, "Failed call") == 0, failed(result)
        assert wall < (WAIT_MS + LAST_TALK_MS + TALK_MS) / 1000, f"the 20 calls did not overlap: {wall:.1f} s"
        _idle(app)

        calls = list(watch.calls.values())
        assert len(calls) == CALLS, f"{len(calls)} calls answered"
        for call in calls:
            assert call.leg is not None and call.live is not None
            ssrc = call.leg.rtp.stats["ssrc"]
            assert rtp.loud_by_ssrc[ssrc] > 25, (call.label, rtp.loud_by_ssrc[ssrc])  # > 0.5 s of greeting
            session = call.live.session
            assert session.ended, f"{call.label} recorded no outcome"
            assert session.heard and session.heard[0][0], f"{call.label} played nothing"
        assert len(built_in) >= CALLS and "test-server" not in built_in, built_in  # never on the event loop
        heard = [[t.text for t in c.live.session.state.transcript if t.speaker == "caller"] for c in calls]  # type: ignore[union-attr]
        recognised = [" ".join(lines) for lines in heard if lines]
        assert offline and recognised, f"no call's speech was recognised (offline: {offline!r})"
        best = min(Levenshtein.normalized_distance(text, offline) for text in recognised)
        assert best <= MAX_DISTANCE, (offline, recognised)

        again = run_scenario("short_call.xml", port, tmp_path, calls=CALLS, keys={"listen": str(rtp.port)}, timeout=40)
        assert again.returncode == 0 and _statistic(again.stdout, "Successful call") == CALLS, failed(again)
        _idle(app)


def test_a_burst_beyond_the_line_gets_503(
    tmp_path: Path, vosk_ko_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Five INVITEs at once to a line that holds two: two are answered, three get 503 (none slips in
    while the others are still being set up)."""
    speech = telephone(read_wav(shared(REAL_ZH / "BAC009S0764W0121.wav").read_bytes())).pcm
    (tmp_path / "caller.ulaw").write_bytes(pcm16_to_ulaw(speech))
    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_ko_model_dir)}
    with sip_server(tmp_path, **settings) as (app, port), RtpCounter() as rtp:
        line_of(app).max_calls = 2
        watch = _Watch(app)
        result = run_scenario("short_call.xml", port, tmp_path, calls=5, keys={"listen": str(rtp.port)}, timeout=30)
        watch.stop()
        assert _statistic(result.stdout, "Successful call") == 2, failed(result)
        assert _statistic(result.stdout, "Failed call") == 3, failed(result)
        assert len(watch.calls) == 2
        refused = [r for r in caplog.records if r.getMessage().startswith("SIP call refused: the live line is holding")]
        assert len(refused) == 3, [r.getMessage() for r in caplog.records]  # the 503s
        _idle(app)
