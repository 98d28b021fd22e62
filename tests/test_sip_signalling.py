"""Digest authentication, session timers and blind transfer on the SIP front door, against real sipp.

Three servers: one with ``IVR_SIP_AUTH_USER``/``IVR_SIP_AUTH_PASSWORD`` set, one whose minimum session
interval is lowered to 3 s (the product's is 90 s, RFC 4028's floor; a test cannot wait a minute and a
half per call), and one as shipped (the 422 and the transfers). The server runs the Korean vosk model
as a compute stand-in (none of these checks what was said); callers speak a real Mandarin recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paths import REAL_ZH, shared
from sipp import SCENARIOS, RtpCounter, failed, free_media_ports, free_port, run_scenario, sip_server, sipp_path, until
from testmodels import telephone

from voice import sip_server as sip_door
from voice.codec import pcm16_to_ulaw
from voice.live_line import line_of
from voice.wav import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]
USER, PASSWORD = "shop-trunk", "s3cret-pass-1"
AGENT = "sip:agent-7@127.0.0.1:5099"  # the Refer-To the transferee scenarios check


def _server(tmp: Path, vosk: Path, **more: Any) -> Any:
    speech = telephone(read_wav(shared(REAL_ZH / "BAC009S0764W0121.wav").read_bytes())).pcm
    (tmp / "caller.ulaw").write_bytes(pcm16_to_ulaw(speech + bytes(2 * 8000)))
    return sip_server(tmp, asr_engine="vosk", vosk_model=str(vosk), **more)


@pytest.fixture(scope="module")
def auth_sip(tmp_path_factory: pytest.TempPathFactory, vosk_ko_model_dir: Path) -> Iterator[tuple[Any, int, Path]]:
    tmp = tmp_path_factory.mktemp("sip-auth")
    with _server(tmp, vosk_ko_model_dir, sip_auth_user=USER, sip_auth_password=PASSWORD) as (app, port):
        yield app, port, tmp


@pytest.fixture(scope="module")
def short_timer_sip(
    tmp_path_factory: pytest.TempPathFactory, vosk_ko_model_dir: Path
) -> Iterator[tuple[Any, int, Path]]:
    tmp = tmp_path_factory.mktemp("sip-timer")
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:  # only while this server starts: its front door keeps 3
            patch.setattr(sip_door, "MIN_SE_S", 3)
            app, port = stack.enter_context(_server(tmp, vosk_ko_model_dir))
        assert app.state.sip.min_se == 3
        yield app, port, tmp


@pytest.fixture(scope="module")
def plain_sip(tmp_path_factory: pytest.TempPathFactory, vosk_ko_model_dir: Path) -> Iterator[tuple[Any, int, Path]]:
    tmp = tmp_path_factory.mktemp("sip-plain")
    with _server(tmp, vosk_ko_model_dir) as (app, port):
        yield app, port, tmp


def _idle(app: Any) -> None:
    door = app.state.sip
    until(lambda: not door.calls and not line_of(app).calls, within=20)
    until(lambda: all(not uas.active_calls for uas in door._stacks), within=5)


class _Answered:
    """Keeps the first SIP call the server answers (it leaves the front door's table when it ends)."""

    def __init__(self, app: Any) -> None:
        self.app, self.call, self.at = app, None, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.call is None:
            for call in list(self.app.state.sip.calls.values()):
                if call.answered:
                    self.call, self.at = call, time.monotonic()
            time.sleep(0.01)

    def stop(self) -> Any:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.call


def _credentials(port: int, user: str, password: str) -> tuple[str, ...]:
    """sipp options for ``[authentication]``: the digest is over the Request-URI, as a trunk's or PBX's is
    (sipp's default digest URI is ``sip:<ip>:<port>``, which the hotline refuses: RFC 7616 §3.4.6)."""
    return ("-au", user, "-ap", password, "-auth_uri", f"hotline@127.0.0.1:{port}")


def _popen(name: str, port: int, cwd: Path, keys: dict[str, str]) -> subprocess.Popen[str]:
    command = [sipp_path(), f"127.0.0.1:{port}", "-sf", str(SCENARIOS / name), "-m", "1", "-i", "127.0.0.1"]
    command += ["-mi", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_media_ports()), "-nostdin"]
    command += ["-timeout", "90s", "-timeout_error"]
    for key, value in keys.items():
        command += ["-key", key, value]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- digest authentication ------------------------------------------------------------------------


def test_the_right_password_is_answered_and_greeted(auth_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = auth_sip
    challenged = app.state.sip.challenged
    with RtpCounter() as rtp:
        args = _credentials(port, USER, PASSWORD)
        result = run_scenario("auth_call.xml", port, tmp, keys={"listen": str(rtp.port)}, args=args, timeout=40)
        assert result.returncode == 0, failed(result)  # 401 first, then 200 (without Session-Expires), BYE 200
        assert len(rtp.loud) > 20  # the greeting was played to the caller
    assert app.state.sip.challenged == challenged + 1
    _idle(app)


def test_a_wrong_password_is_refused(auth_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = auth_sip
    with RtpCounter() as rtp:
        args = _credentials(port, USER, "not-the-password")
        result = run_scenario("auth_refused.xml", port, tmp, keys={"listen": str(rtp.port)}, args=args, timeout=20)
        assert result.returncode == 0, failed(result)  # 401, then 403 for the credentials
        time.sleep(0.5)
        assert rtp.arrivals == [] and not app.state.sip.calls and not line_of(app).calls


def test_a_wrong_user_is_refused(auth_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = auth_sip
    args = _credentials(port, "someone-else", PASSWORD)
    result = run_scenario("auth_refused.xml", port, tmp, keys={"listen": "9"}, args=args, timeout=20)
    assert result.returncode == 0, failed(result)


def _invite(me: int, call_id: str, authorization: str = "") -> bytes:
    extra = f"Authorization: {authorization}\r\n" if authorization else ""
    return (
        f"INVITE sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:hotline@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:a@127.0.0.1:{me}>\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def _final(sock: socket.socket, call_id: str) -> bytes:
    while True:
        data = sock.recv(4096)
        if f"Call-ID: {call_id}\r\n".encode() in data and not data.startswith(b"SIP/2.0 1"):
            return data


def test_no_or_forged_credentials_get_a_challenge(auth_sip: tuple[Any, int, Path]) -> None:
    app, port, _ = auth_sip
    forged = (
        f'Digest username="{USER}", realm="ivr-hotline", nonce="1700000000.000.00ff", '
        'uri="sip:hotline@127.0.0.1", response="00000000000000000000000000000000", algorithm=MD5'
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(5)
        me = raw.getsockname()[1]
        replies = []
        for call_id, authorization in (("no-credentials", ""), ("forged-nonce", forged)):
            raw.sendto(_invite(me, call_id, authorization), ("127.0.0.1", port))
            replies.append(_final(raw, call_id))
    for reply in replies:
        assert reply.startswith(b"SIP/2.0 401 "), reply[:40]
        challenge = reply.split(b"WWW-Authenticate: ", 1)[1].split(b"\r\n", 1)[0]
        assert challenge.startswith(b"Digest ") and b'realm="ivr-hotline"' in challenge and b'qop="auth"' in challenge
    nonces = [r.split(b'nonce="', 1)[1].split(b'"', 1)[0] for r in replies]
    assert nonces[0] != nonces[1]  # a fresh nonce for every challenge
    assert not app.state.sip.calls and not line_of(app).calls


def test_options_need_no_credentials(auth_sip: tuple[Any, int, Path]) -> None:
    _, port, tmp = auth_sip
    result = run_scenario("options.xml", port, tmp, timeout=20)
    assert result.returncode == 0, failed(result)


# -- session timers -------------------------------------------------------------------------------


def test_refreshes_keep_a_timed_call_up(short_timer_sip: tuple[Any, int, Path]) -> None:
    """Interval 6 s: without a refresh the hotline would hang up after 4 s; the call lasts 7.5 s."""
    app, port, tmp = short_timer_sip
    with RtpCounter() as rtp:
        keys = {"listen": str(rtp.port)}
        result = run_scenario("timer_refresh.xml", port, tmp, keys=keys, timeout=40)
        assert result.returncode == 0, failed(result)  # every 200 stated 6;refresher=uac, no BYE from us
    _idle(app)


def test_no_refresh_ends_the_call_with_bye(short_timer_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = short_timer_sip
    watch = _Answered(app)
    with RtpCounter() as rtp:
        result = run_scenario("timer_expiry.xml", port, tmp, keys={"listen": str(rtp.port)}, timeout=40)
        ended = time.monotonic()
        call = watch.stop()
        assert result.returncode == 0, failed(result)  # the hotline's BYE came
    assert call is not None
    assert ended - watch.at < sip_door.RTP_TIMEOUT_S  # the session timer, not the RTP watchdog
    _idle(app)
    assert call.live.session.ended  # the live call ended and its outcome was recorded
    assert call.live.session.end().type == "abandoned"  # (as a caller who hangs up without a word)


def test_the_hotline_refreshes_when_the_caller_leaves_it_the_role(short_timer_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = short_timer_sip
    with RtpCounter() as rtp:
        result = run_scenario("timer_uas.xml", port, tmp, keys={"listen": str(rtp.port)}, timeout=40)
        assert result.returncode == 0, failed(result)  # 200 with refresher=uas, then our UPDATE
    _idle(app)


def test_an_interval_below_the_minimum_gets_422(plain_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = plain_sip
    with RtpCounter() as rtp:
        result = run_scenario("timer_422.xml", port, tmp, keys={"listen": str(rtp.port)}, timeout=40)
        assert result.returncode == 0, failed(result)  # 422 with Min-SE: 90, then 200 with Session-Expires: 90
    _idle(app)


# -- transfer -------------------------------------------------------------------------------------


def _transfer(app: Any, target: str, wait: float = sip_door.TRANSFER_WAIT_S) -> Any:
    door = app.state.sip
    until(lambda: any(c.answered for c in door.calls.values()), within=30)
    label = next(c.label for c in door.calls.values() if c.answered)
    return asyncio.run_coroutine_threadsafe(door.transfer(label, target, wait), door.loop).result(timeout=60)


def test_a_transfer_the_target_answers_ends_our_leg(plain_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = plain_sip
    with RtpCounter() as rtp:
        sipp = _popen("refer_ok.xml", port, tmp, {"listen": str(rtp.port)})
        result = _transfer(app, AGENT)
        out, err = sipp.communicate(timeout=30)
        assert sipp.returncode == 0, f"{err[-800:]} {out[-800:]}"  # REFER (Refer-To, Referred-By) 202, NOTIFYs, our BYE
    assert (result.ok, result.status) == (True, 200)
    _idle(app)


@pytest.mark.parametrize(
    ("scenario", "refusal"),
    [("refer_busy.xml", (486, "Busy Here")), ("refer_refused.xml", (403, "Forbidden"))],
    ids=["the agent is busy (NOTIFY sipfrag 486)", "the REFER is refused (403)"],
)
def test_a_failed_transfer_keeps_the_call(
    plain_sip: tuple[Any, int, Path], scenario: str, refusal: tuple[int, str]
) -> None:
    app, port, tmp = plain_sip
    with RtpCounter() as rtp:
        sipp = _popen(scenario, port, tmp, {"listen": str(rtp.port)})
        result = _transfer(app, AGENT)
        assert (result.ok, result.status, result.reason) == (False, *refusal)
        assert any(c.answered and not c.live.session.ended for c in app.state.sip.calls.values())
        out, err = sipp.communicate(timeout=30)
        assert sipp.returncode == 0, f"{err[-800:]} {out[-800:]}"  # no BYE from us; the caller's BYE got 200
    _idle(app)


def test_a_caller_who_hangs_up_mid_transfer_ends_it(plain_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = plain_sip
    with RtpCounter() as rtp:
        sipp = _popen("refer_hangup.xml", port, tmp, {"listen": str(rtp.port)})
        result = _transfer(app, AGENT, wait=600)  # settled by the BYE, not by this wait (nor the 60 s result())
        assert (result.ok, result.status) == (False, 481)
        out, err = sipp.communicate(timeout=30)
        assert sipp.returncode == 0, f"{err[-800:]} {out[-800:]}"
    _idle(app)


def test_a_transfer_needs_a_sip_uri(plain_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = plain_sip
    with RtpCounter() as rtp:
        sipp = _popen("hotline_bye.xml", port, tmp, {"listen": str(rtp.port)})
        with pytest.raises(ValueError, match="expected a sip: or sips: URI"):
            _transfer(app, "agent-7\r\nX-Injected: 1")
        door = app.state.sip
        asyncio.run_coroutine_threadsafe(next(iter(door.calls.values())).live.close("test over"), door.loop).result(10)
        sipp.communicate(timeout=30)
        assert sipp.returncode == 0
    _idle(app)


# -- media ports ----------------------------------------------------------------------------------


def test_an_rtp_port_taken_after_the_probe_is_replaced_not_a_500(plain_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = plain_sip
    ports = app.state.sip.ports
    taken: list[socket.socket] = []
    allocate = ports.allocate

    async def allocate_then_lose_it() -> tuple[int, int]:
        rtp, rtcp = await allocate()
        if not taken:  # another program binds the first port between the allocator's probe and the leg
            squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            squatter.bind(("", rtp))
            taken.append(squatter)
        return rtp, rtcp

    ports.allocate = allocate_then_lose_it
    try:
        with RtpCounter() as rtp:
            result = run_scenario("short_call.xml", port, tmp, keys={"listen": str(rtp.port)}, timeout=40)
        assert result.returncode == 0, failed(result)  # answered on another port, not refused with 500
        assert len(taken) == 1
    finally:
        del ports.allocate
        for squatter in taken:
            squatter.close()
    _idle(app)
