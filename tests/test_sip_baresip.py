"""baresip (Debian ``baresip``), a second SIP user agent independent of sipp, calls the hotline:
it plays a real recording as its microphone, presses ``1#`` (RFC 4733) — the hotline takes the
keys as a caller turn and answers it — and hangs up, which ends the live call.

baresip is driven through its ``cons`` module (commands as UDP datagrams on loopback).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from paths import REAL_ZH, program, shared
from sipp import free_port, sip_server, until
from testmodels import telephone

from core.types import AudioFrame
from voice.live_line import line_of
from voice.wav import read_wav, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]


def _config(home: Path, sip_port: int, cons_port: int) -> None:
    """A headless baresip: G.711 only, a WAV file as the microphone, commands over UDP."""
    home.mkdir(exist_ok=True)
    lines = [
        "poll_method epoll",
        f"sip_listen 127.0.0.1:{sip_port}",
        "sip_transports udp",
        "audio_player aufile,/dev/null",
        f"audio_source aufile,{home / 'mic.wav'}",
        "audio_alert aufile,/dev/null",
        "module_path /usr/lib/baresip/modules",
        "module g711.so",
        "module aufile.so",
        "module cons.so",
        "module_app account.so",
        "module_app menu.so",
        f"cons_listen 127.0.0.1:{cons_port}",
    ]
    (home / "config").write_text("\n".join(lines) + "\n")
    (home / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    (home / "contacts").write_text("")


def test_baresip_calls_presses_1_hash_and_hangs_up(tmp_path: Path, vosk_ko_model_dir: Path) -> None:
    baresip = program("baresip", "baresip")
    home = tmp_path / "baresip"
    cons_port = free_port(socket.SOCK_STREAM)  # cons listens on UDP and TCP at this port
    _config(home, free_port(), cons_port)
    speech = telephone(read_wav(shared(REAL_ZH / "BAC009S0764W0121.wav").read_bytes())).pcm
    write_wav(home / "mic.wav", AudioFrame(speech + bytes(2 * 8000 * 60), 8000))  # a minute: baresip ends at EOF

    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_ko_model_dir)}
    with sip_server(tmp_path, **settings) as (app, port), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cons:
        agent = subprocess.Popen(
            [baresip, "-f", str(home)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:

            def command(text: str) -> None:
                cons.sendto(f"{text}\n".encode(), ("127.0.0.1", cons_port))

            def answered() -> bool:
                command(f"/dial sip:hotline@127.0.0.1:{port}") if not app.state.sip.calls else None
                return any(c.answered for c in app.state.sip.calls.values())

            until(answered, within=20)  # (the first /dial may come before baresip listens)
            live = next(c.live for c in app.state.sip.calls.values() if c.answered)
            until(lambda: live.session.started and live.session.state.transcript, within=20)  # greeted
            command("/sndcode 1#")
            until(lambda: any(line.speaker == "caller" for line in live.session.state.transcript), within=20)
            until(lambda: live.session.state.transcript[-1].speaker == "bot", within=20)  # the keys were answered
            command("/hangup")
            until(lambda: not line_of(app).calls and not app.state.sip.calls, within=20)
        finally:
            agent.terminate()
            output = agent.communicate(timeout=10)[0]
    caller = [line.text for line in live.session.state.transcript if line.speaker == "caller"]
    assert caller == ["1"], caller
    assert live.prompts.hold_on == ""  # vosk streams: its calls get no 「嗯」 before the answer
    assert "send DTMF digit: '1'" in output and "Call established" in output
    assert "terminated" in output and "audio error" not in output  # our /hangup ended it, not the end of the file
