"""The agent's leg of a SIP transfer, with a real agent: the hotline REFERs the caller to the agent's SIP URI.

The caller is sipp (``tests/sip/agent_transferee.xml``) acting as a PBX or phone does when it is
transferred: it answers the hotline's REFER with 202, INVITEs the Refer-To target itself and reports
the agent's answer in NOTIFY sipfrags. The agent is baresip, a separate SIP user agent on a loopback
port, answering automatically (or ringing without answering, or rejecting: a busy agent; then the
hotline REFERs the same call to the next agent, as the dispatcher will). The server
runs the Korean vosk model as a compute stand-in (nothing here checks what was said).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from paths import program
from sipp import (
    SCENARIOS,
    RtpCounter,
    baresip_config,
    free_baresip_port,
    free_media_ports,
    free_port,
    sip_server,
    sipp_path,
    until,
)

from core.types import AudioFrame
from voice.live_line import line_of
from voice.sip_refer import TransferResult
from voice.wav import write_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory, vosk_ko_model_dir: Path) -> Iterator[tuple[Any, int, Path]]:
    tmp = tmp_path_factory.mktemp("sip-agent")
    with sip_server(tmp, asr_engine="vosk", vosk_model=str(vosk_ko_model_dir)) as (app, port):
        yield app, port, tmp


@dataclass
class Agent:
    """A baresip agent on a loopback port: its SIP URI, its console, what it printed."""

    uri: str
    console_port: int
    output: list[str]

    def command(self, text: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as console:
            console.sendto(f"{text}\n".encode(), ("127.0.0.1", self.console_port))

    def said(self, text: str) -> bool:
        return text in "".join(self.output)


@contextmanager
def baresip_agent(home: Path, answer: str) -> Iterator[Agent]:
    """baresip listening as ``sip:agent@127.0.0.1:<port>``; ``answer``: ``auto`` (answers at once) or ``manual``."""
    baresip = program("baresip", "baresip")
    sip_port, cons_port = free_baresip_port(), free_port(socket.SOCK_STREAM)
    home.mkdir()
    write_wav(home / "mic.wav", AudioFrame(bytes(2 * 8000 * 30), 8000))  # the agent says nothing
    baresip_config(home, sip_port, cons_port, f"<sip:agent@127.0.0.1>;regint=0;answermode={answer};audio_codecs=PCMU")
    process = subprocess.Popen([baresip, "-f", str(home)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    agent = Agent(f"sip:agent@127.0.0.1:{sip_port}", cons_port, output)
    try:
        try:
            until(lambda: agent.said("baresip is ready"), within=20)
        except AssertionError:
            raise AssertionError(f"baresip did not start: {output[-20:]}") from None
        yield agent
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=5)


def _transferee(hotline: tuple[Any, int, Path], rtp: RtpCounter, tmp: Path) -> subprocess.Popen[str]:
    """sipp calling the hotline as the transferee; every SIP message it sends and gets is logged in ``tmp``."""
    port = hotline[1]
    command = [sipp_path(), f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "agent_transferee.xml"), "-m", "1"]
    command += ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_media_ports())]
    command += ["-nostdin", "-timeout", "90s", "-timeout_error", "-key", "listen", str(rtp.port), "-key", "hport"]
    command += [str(port), "-trace_msg", "-message_file", str(tmp / "sipp-messages.log")]
    return subprocess.Popen(command, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _start_transfer(app: Any, target: str) -> concurrent.futures.Future[TransferResult]:
    """``SipFrontDoor.transfer`` of the first answered call to ``target``, on the server's loop."""
    door = app.state.sip
    until(lambda: any(c.answered for c in door.calls.values()), within=30)
    label = next(c.label for c in door.calls.values() if c.answered)
    return asyncio.run_coroutine_threadsafe(door.transfer(label, target), door.loop)


def _finished(sipp: subprocess.Popen[str], tmp: Path) -> None:
    out, err = sipp.communicate(timeout=60)
    log = (tmp / "sipp-messages.log").read_text(errors="replace") if (tmp / "sipp-messages.log").exists() else ""
    assert sipp.returncode == 0, f"sipp exit {sipp.returncode}: {err[-800:]} {out[-800:]} {log[-3000:]}"


def _idle(app: Any) -> None:
    door = app.state.sip
    until(lambda: not door.calls and not line_of(app).calls, within=20)


def test_the_agent_answers_and_the_hotline_leaves_the_call(hotline: tuple[Any, int, Path], tmp_path: Path) -> None:
    app = hotline[0]
    with baresip_agent(tmp_path / "agent", "auto") as agent, RtpCounter() as rtp:
        sipp = _transferee(hotline, rtp, tmp_path)
        call = None
        try:
            transfer = _start_transfer(app, agent.uri)
            call = next(c for c in app.state.sip.calls.values() if c.answered)
            result = transfer.result(timeout=60)
        finally:
            _finished(sipp, tmp_path)  # REFER, 202, the agent's INVITE answered, NOTIFY 200, our BYE, BYE to the agent
        assert (result.ok, result.status) == (True, 200), result
        assert agent.said("Call established"), agent.output[-20:]  # baresip took the transferee's INVITE
        until(lambda: agent.said("terminated"), within=10)  # and the transferee's BYE ended it
    _idle(app)
    assert call is not None and call.live.session.ended


def test_an_agent_who_rejects_the_call_is_a_failed_transfer(hotline: tuple[Any, int, Path], tmp_path: Path) -> None:
    app = hotline[0]
    with baresip_agent(tmp_path / "agent", "manual") as agent, RtpCounter() as rtp:
        sipp = _transferee(hotline, rtp, tmp_path)
        try:
            transfer = _start_transfer(app, agent.uri)
            until(lambda: agent.said("Incoming call"), within=20)
            agent.command("/hangup")  # the agent declines the ringing call
            result = transfer.result(timeout=60)
            assert (result.ok, result.status, result.reason) == (False, 486, "Rejected"), result  # baresip's refusal
            assert any(c.answered and not c.live.session.ended for c in app.state.sip.calls.values())
        finally:
            _finished(sipp, tmp_path)  # NOTIFY with the agent's refusal, no BYE from us; the caller hung up later
        assert not agent.said("Call established")
    _idle(app)


def test_an_agent_who_does_not_answer_is_a_failed_transfer(hotline: tuple[Any, int, Path], tmp_path: Path) -> None:
    app = hotline[0]
    with baresip_agent(tmp_path / "agent", "manual") as agent, RtpCounter() as rtp:
        sipp = _transferee(hotline, rtp, tmp_path)
        try:
            result = _start_transfer(app, agent.uri).result(timeout=60)
            assert (result.ok, result.status) == (False, 487), result  # the transferee gave up ringing after 6 s
            assert any(c.answered and not c.live.session.ended for c in app.state.sip.calls.values())
        finally:
            _finished(sipp, tmp_path)
        assert agent.said("Incoming call") and not agent.said("Call established")
    _idle(app)


def test_when_the_first_agent_rejects_the_next_one_is_tried(hotline: tuple[Any, int, Path], tmp_path: Path) -> None:
    app = hotline[0]
    with (
        baresip_agent(tmp_path / "busy-agent", "manual") as busy,
        baresip_agent(tmp_path / "free-agent", "auto") as free,
        RtpCounter() as rtp,
    ):
        sipp = _transferee(hotline, rtp, tmp_path)
        try:
            first = _start_transfer(app, busy.uri)
            until(lambda: busy.said("Incoming call"), within=20)
            busy.command("/hangup")
            assert (first.result(timeout=60).ok, first.result().status) == (False, 486)
            second = _start_transfer(app, free.uri).result(timeout=60)  # the same call, the next agent
        finally:
            _finished(sipp, tmp_path)  # two REFERs on one call; the second agent's INVITE answered; our BYE
        assert (second.ok, second.status) == (True, 200), second
        assert free.said("Call established") and not busy.said("Call established")
    _idle(app)
