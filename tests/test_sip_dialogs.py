"""The SIP front door against real sipp: CANCEL before the answer, hold/unhold re-INVITEs, OPTIONS,
a 403 for a source outside ``IVR_SIP_ALLOW``, malformed datagrams beside a call that still
completes, 10 calls at once, and a BYE from the hotline when the server shuts down.

The server runs the Korean vosk model as a compute stand-in (none of these checks what was said),
and the callers speak a real Mandarin recording.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paths import REAL_ZH, shared
from sipp import RtpCounter, failed, free_media_ports, free_port, run_scenario, sip_server, sipp_path, until
from testmodels import telephone

from voice import sip_refer
from voice import sip_server as sip_door
from voice.codec import pcm16_to_ulaw
from voice.live_line import line_of
from voice.wav import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def vosk_sip(tmp_path_factory: pytest.TempPathFactory, vosk_ko_model_dir: Path) -> Iterator[tuple[Any, int, Path]]:
    tmp = tmp_path_factory.mktemp("sip")
    speech = telephone(read_wav(shared(REAL_ZH / "BAC009S0764W0121.wav").read_bytes())).pcm
    (tmp / "caller.ulaw").write_bytes(pcm16_to_ulaw(speech + bytes(2 * 8000)))
    with sip_server(tmp, asr_engine="vosk", vosk_model=str(vosk_ko_model_dir)) as (app, port):
        yield app, port, tmp


def _idle(app: Any) -> None:
    """Every SIP call is over: none set up, none live, none left in the SIP stack's tables."""
    door = app.state.sip
    until(lambda: not door.calls and not line_of(app).calls, within=20)
    until(lambda: all(not uas.active_calls for uas in door._stacks), within=5)


def test_options_is_answered(vosk_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = vosk_sip
    result = run_scenario("options.xml", port, tmp, timeout=20)
    assert result.returncode == 0, failed(result)


def test_cancel_before_answer_drops_the_call(tmp_path: Path, vosk_ko_model_dir: Path) -> None:
    """A fresh server loads its recogniser while the first call rings: the CANCEL comes in that time."""
    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_ko_model_dir)}
    with sip_server(tmp_path, **settings) as (app, port), RtpCounter() as rtp:
        result = run_scenario("cancel.xml", port, tmp_path, keys={"listen": str(rtp.port)}, timeout=20)
        assert result.returncode == 0, failed(result)  # 200 for the CANCEL, 487 for the INVITE
        _idle(app)
        time.sleep(0.5)
        assert rtp.arrivals == []  # never answered, never spoken to


def test_hold_and_unhold(vosk_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = vosk_sip
    holds: list[tuple[float, bool, int]] = []  # (when, held, frames sent so far) as the server's media leg changes
    legs: list[Any] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for call in list(app.state.sip.calls.values()):
                if call.leg is not None:
                    if not legs:
                        legs.append(call.leg)
                    held = call.leg.media.held
                    if not holds or holds[-1][1] != held:
                        holds.append((time.monotonic(), held, call.leg.frames_sent))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    with RtpCounter() as rtp:
        watcher.start()
        result = run_scenario("hold.xml", port, tmp, keys={"listen": str(rtp.port)}, timeout=40)
        done.set()
        watcher.join(timeout=2)
        assert result.returncode == 0, failed(result)  # the answers were recvonly, then sendrecv
    assert [held for _, held, _ in holds] == [False, True, False], holds
    (held_at, _, sent_at_hold), (unheld_at, _, sent_at_unhold) = holds[1], holds[2]
    assert sent_at_unhold - sent_at_hold <= 1  # (a tick may fall between the unhold and our look)
    during = [t for t in rtp.arrivals if held_at + 0.3 < t < unheld_at]  # (the counter thread may lag)
    assert during == [], f"{len(during)} RTP packets while on hold"
    assert any(t < held_at for t in rtp.loud) and any(t > unheld_at for t in rtp.loud)
    assert legs[0].frames_dropped > 0  # the greeting went on while we were held: those frames were not sent
    _idle(app)


def test_ten_calls_at_once(vosk_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = vosk_sip
    with RtpCounter() as rtp:
        result = run_scenario("short_call.xml", port, tmp, calls=10, keys={"listen": str(rtp.port)}, timeout=60)
        assert result.returncode == 0, failed(result)
        assert len(rtp.ssrcs) == 10  # every call heard the hotline
    _idle(app)


_GARBAGE = [
    b"\x00\xff" * 300,
    b"INVITE sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;bran",  # cut off mid-header
    b"INVITE sip:hotline@127.0.0.1 SIP/2.0\r\n\r\n",  # no headers at all
    b"SIP/2.0 200 OK\r\nCall-ID: nobody\r\n\r\n",  # a response to nothing
    b"BYE sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKx\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: nobody\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\r\n",
    b"\xe4\xbd\xa0\xe5\xa5\xbd \xff\xfe SIP/2.0\r\n" + b"X: " + b"y" * 3000 + b"\r\n\r\n",
]
_BAD_SDP = (
    "INVITE sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{n}\r\n"
    "From: <sip:a@127.0.0.1>;tag={n}\r\nTo: <sip:hotline@127.0.0.1>\r\nCall-ID: bad-sdp-{n}\r\nCSeq: 1 INVITE\r\n"
    "Contact: <sip:a@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n{body}"
)
_BAD_BODIES = {
    "v=0\r\nm=audio notaport RTP/AVP 0\r\n": 400,  # does not parse
    "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\n": 488,  # G.729 only
}


def test_malformed_datagrams_leave_a_parallel_call_alone(vosk_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = vosk_sip
    with RtpCounter() as rtp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(5)
        me = raw.getsockname()[1]
        command = [sipp_path(), f"127.0.0.1:{port}", "-sf", str(Path(__file__).parent / "sip" / "short_call.xml")]
        command += ["-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port())]
        command += ["-mp", str(free_media_ports())]
        command += ["-nostdin", "-timeout", "40s", "-timeout_error", "-key", "listen", str(rtp.port)]
        call = subprocess.Popen(command, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        until(lambda: app.state.sip.calls, within=20)
        for datagram in _GARBAGE:
            raw.sendto(datagram.replace(b"{port}", str(me).encode()), ("127.0.0.1", port))
        statuses = {}
        for n, (body, _) in enumerate(_BAD_BODIES.items()):
            text = _BAD_SDP.format(port=me, n=n, length=len(body), body=body)
            raw.sendto(text.encode(), ("127.0.0.1", port))
            statuses[body] = _final_status(raw, f"bad-sdp-{n}")
        out, err = call.communicate(timeout=60)
        assert call.returncode == 0, f"the parallel call failed: {err[-800:]} {out[-800:]}"
        assert len(rtp.loud) > 20
    assert statuses == _BAD_BODIES
    _idle(app)


def _final_status(sock: socket.socket, call_id: str) -> int:
    """The final status a raw socket receives for ``call_id`` (answers to the garbage are skipped)."""
    while True:
        data = sock.recv(4096)
        if data.startswith(b"SIP/2.0 ") and f"Call-ID: {call_id}\r\n".encode() in data:
            status = int(data.split(b" ", 2)[1])
            if status >= 200:
                return status


def test_a_source_outside_the_allowlist_gets_403(tmp_path: Path, vosk_ko_model_dir: Path) -> None:
    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_ko_model_dir), "sip_allow": "10.0.0.0/8"}
    with sip_server(tmp_path, **settings) as (app, port), RtpCounter() as rtp:
        result = run_scenario("forbidden.xml", port, tmp_path, keys={"listen": str(rtp.port)}, timeout=20)
        assert result.returncode == 0, failed(result)
        assert app.state.sip.rejected >= 1 and not app.state.sip.calls and not line_of(app).calls


def test_the_hotline_hangs_up_with_bye_on_shutdown(tmp_path: Path, vosk_ko_model_dir: Path) -> None:
    settings = {"asr_engine": "vosk", "vosk_model": str(vosk_ko_model_dir)}
    with RtpCounter() as rtp:
        with sip_server(tmp_path, **settings) as (app, port):
            command = [sipp_path(), f"127.0.0.1:{port}", "-sf", str(Path(__file__).parent / "sip" / "hotline_bye.xml")]
            command += ["-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port())]
            command += ["-nostdin", "-timeout", "60s", "-timeout_error", "-key", "listen", str(rtp.port)]
            call = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            until(lambda: any(c.answered for c in app.state.sip.calls.values()), within=30)
            until(lambda: len(rtp.loud) > 10, within=10)  # the greeting is playing
        # leaving the block shut the server down: goodbye, then BYE; sipp answered it 200 and finished
        out, err = call.communicate(timeout=30)
        assert call.returncode == 0, f"sipp never got the hotline's BYE: {err[-800:]} {out[-800:]}"


def test_a_caller_who_sends_no_rtp_is_hung_up(vosk_sip: tuple[Any, int, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    app, port, tmp = vosk_sip
    monkeypatch.setattr(sip_door, "RTP_TIMEOUT_S", 1.5)
    with RtpCounter() as rtp:
        result = run_scenario("hotline_bye.xml", port, tmp, keys={"listen": str(rtp.port)}, timeout=30)
        assert result.returncode == 0, failed(result)  # the caller sent nothing; the hotline's BYE came
    _idle(app)  # and the stack forgot the dialog we ended


def test_a_call_over_tcp(vosk_sip: tuple[Any, int, Path]) -> None:
    app, port, tmp = vosk_sip
    with RtpCounter() as rtp:
        result = run_scenario("short_call.xml", port, tmp, keys={"listen": str(rtp.port)}, transport="t1", timeout=30)
        assert result.returncode == 0, failed(result)
        assert len(rtp.loud) > 20
    _idle(app)


def _invite_text(
    me: int,
    listen: int,
    method: str = "INVITE",
    to_tag: str = "",
    cseq: int = 1,
    direction: str = "sendrecv",
    call_id: str = "retransmitted-invite",
) -> bytes:
    sdp = (
        f"v=0\r\no=- 1 {cseq} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {listen} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    )
    body = sdp if method == "INVITE" else ""
    branch = f"z9hG4bK{method}{cseq}"
    return (
        f"{method} sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch={branch}\r\n"
        f"From: <sip:+8613800138001@127.0.0.1>;tag=caller\r\nTo: <sip:hotline@127.0.0.1>{to_tag}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:a@127.0.0.1:{me}>\r\n"
        f"Max-Forwards: 70\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def _status(sock: socket.socket, cseq: bytes) -> bytes:
    """The next response for ``cseq`` (retransmitted 200s of earlier requests are skipped)."""
    while True:
        reply = sock.recv(4096)
        if cseq + b"\r\n" in reply:
            return reply


def test_a_retransmitted_invite_is_the_same_call(vosk_sip: tuple[Any, int, Path]) -> None:
    """aiosipua alone would take the second INVITE for a new call (the caller's BYE then gets 481) and
    answer a repeated re-INVITE with 500."""
    app, port, tmp = vosk_sip
    with RtpCounter() as rtp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(10)
        me = raw.getsockname()[1]
        for _ in range(2):
            raw.sendto(_invite_text(me, rtp.port), ("127.0.0.1", port))
        replies: list[bytes] = []
        while not any(r.startswith(b"SIP/2.0 200") for r in replies):
            replies.append(raw.recv(4096))
        tags = {r.split(b"To: ", 1)[1].split(b"\r\n", 1)[0] for r in replies if b"To: " in r}
        assert len(tags) == 1, tags  # every response names the same dialog
        to_tag = ";tag=" + tags.pop().split(b";tag=")[1].decode()
        raw.sendto(_invite_text(me, rtp.port, "ACK", to_tag), ("127.0.0.1", port))
        until(lambda: len(rtp.arrivals) > 10)  # the call is up: the greeting comes
        assert len(app.state.sip.calls) == 1
        hold = _invite_text(me, rtp.port, "INVITE", to_tag, cseq=2, direction="sendonly")
        raw.sendto(hold, ("127.0.0.1", port))
        assert _status(raw, b"CSeq: 2 INVITE").startswith(b"SIP/2.0 200")
        raw.sendto(hold, ("127.0.0.1", port))  # our 200 was "lost": the re-INVITE again
        again = _status(raw, b"CSeq: 2 INVITE")
        assert again.startswith(b"SIP/2.0 200") and b"a=recvonly" in again, again[:60]
        raw.sendto(_invite_text(me, rtp.port, "ACK", to_tag, cseq=2), ("127.0.0.1", port))
        raw.sendto(_invite_text(me, rtp.port, "BYE", to_tag, cseq=3), ("127.0.0.1", port))
        status = _status(raw, b"CSeq: 3 BYE")
        assert status.startswith(b"SIP/2.0 200"), status[:60]
    _idle(app)


def test_the_hotlines_bye_is_sent_again_until_answered(
    vosk_sip: tuple[Any, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over UDP a BYE can be lost: the hotline sends it again (timer E) until a response comes, then stops."""
    app, port, tmp = vosk_sip
    monkeypatch.setattr(sip_door, "RTP_TIMEOUT_S", 1.5)  # the caller sends no RTP: the hotline hangs up
    with RtpCounter() as rtp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(10)
        me = raw.getsockname()[1]
        text = functools.partial(_invite_text, me, rtp.port, call_id="bye-lost")
        raw.sendto(text(), ("127.0.0.1", port))
        ok = _status(raw, b"CSeq: 1 INVITE")
        while not ok.startswith(b"SIP/2.0 200"):
            ok = _status(raw, b"CSeq: 1 INVITE")
        to_tag = ";tag=" + ok.split(b"To: ", 1)[1].split(b"\r\n", 1)[0].split(b";tag=")[1].decode()
        raw.sendto(text("ACK", to_tag), ("127.0.0.1", port))
        byes = [_request(raw, b"BYE")]  # not answered: "lost"
        byes.append(_request(raw, b"BYE"))
        assert byes[0] == byes[1]  # the same request (same branch and CSeq), sent again
        head = byes[1].split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        echoed = [h for h in head if h.split(b":", 1)[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq")]
        raw.sendto(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(echoed) + b"\r\nContent-Length: 0\r\n\r\n", ("127.0.0.1", port))
        raw.settimeout(3 * sip_refer.T1_S * 4)
        with pytest.raises(TimeoutError):  # answered: no more BYEs
            _request(raw, b"BYE")
    until(lambda: not app.state.sip.byes.pending, within=5)
    _idle(app)


def _request(sock: socket.socket, method: bytes) -> bytes:
    """The next request ``method`` that arrives (responses and other requests are skipped)."""
    while True:
        message = sock.recv(4096)
        if message.startswith(method + b" "):
            return message
