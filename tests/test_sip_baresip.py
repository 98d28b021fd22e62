"""baresip (Debian ``baresip``), a second SIP user agent independent of sipp, calls the hotline:
it plays a real recording as its microphone, presses ``1#`` (RFC 4733) — the hotline takes the
keys as a caller turn and answers it — and hangs up, which ends the live call.

baresip is driven through its ``cons`` module (commands as UDP datagrams on loopback).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from paths import REAL_ZH, program, shared
from sipp import baresip_config, free_baresip_port, free_port, sip_server, until
from testmodels import telephone

from core.types import AudioFrame
from voice.live_line import line_of
from voice.wav import read_wav, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]


@dataclass
class Baresip:
    """A baresip call to the hotline in progress: the server app, our side of the call, its console."""

    app: Any
    call: Any  # the answered ``SipCall``
    console: socket.socket
    console_port: int
    output: list[str]  # baresip's stdout lines so far

    def command(self, text: str) -> None:
        self.console.sendto(f"{text}\n".encode(), ("127.0.0.1", self.console_port))


@contextmanager
def baresip_call(tmp_path: Path, microphone: bytes, vosk_model: Path) -> Iterator[Baresip]:
    """baresip (its microphone: ``microphone``, 8 kHz PCM16) dials a vosk hotline; hung up on leaving."""
    baresip = program("baresip", "baresip")
    home = tmp_path / "baresip"
    cons_port = free_port(socket.SOCK_STREAM)  # cons listens on UDP and TCP at this port
    baresip_config(home, free_baresip_port(), cons_port, "<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU")
    write_wav(home / "mic.wav", AudioFrame(microphone, 8000))
    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_model)}
    with sip_server(tmp_path, **settings) as (app, port), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cons:
        agent = subprocess.Popen(
            [baresip, "-f", str(home)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.extend(iter(agent.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        session = Baresip(app, None, cons, cons_port, output)
        try:
            dialled = [-1.0]

            def answered() -> bool:
                # the first /dial may come before baresip listens: dial again, once a second at most (a
                # /dial every poll queued dozens of calls in a baresip slow to start on a loaded machine)
                if not app.state.sip.calls and time.monotonic() - dialled[0] > 1.0:
                    session.command(f"/dial sip:hotline@127.0.0.1:{port}")
                    dialled[0] = time.monotonic()
                return any(c.answered for c in app.state.sip.calls.values())

            try:
                until(answered, within=20)
            except AssertionError:
                raise AssertionError(f"baresip's call was not answered; baresip said: {output[-30:]}") from None
            session.call = next(c for c in app.state.sip.calls.values() if c.answered)
            yield session
            session.command("/hangup")
            until(lambda: not line_of(app).calls and not app.state.sip.calls, within=20)
        finally:
            agent.terminate()
            agent.wait(timeout=10)
            reader.join(timeout=5)


def test_baresip_calls_presses_1_hash_and_hangs_up(tmp_path: Path, vosk_ko_model_dir: Path) -> None:
    speech = telephone(read_wav(shared(REAL_ZH / "BAC009S0764W0121.wav").read_bytes())).pcm
    microphone = speech + bytes(2 * 8000 * 60)  # then a minute of silence: baresip ends the call at EOF
    with baresip_call(tmp_path, microphone, vosk_ko_model_dir) as agent:
        live = agent.call.live
        until(lambda: live.session.started and live.session.state.transcript, within=20)  # greeted
        agent.command("/sndcode 1#")
        until(lambda: any(line.speaker == "caller" for line in live.session.state.transcript), within=20)
        until(lambda: live.session.state.transcript[-1].speaker == "bot", within=20)  # the keys were answered
    output = "".join(agent.output)
    caller = [line.text for line in live.session.state.transcript if line.speaker == "caller"]
    assert caller == ["1"], caller
    assert "send DTMF digit: '1'" in output and "Call established" in output
    assert "terminated" in output and "audio error" not in output  # our /hangup ended it, not the end of the file
