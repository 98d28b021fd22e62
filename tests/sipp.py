"""Real sipp as the caller of a real ``ivr`` server's SIP front door (tests only).

``sipp_path()`` is ``/usr/bin/sipp`` (Debian ``sip-tester``) or skips the test (fails under ``CI=true``).
``sip_server(tmp, **settings)`` runs the app on loopback (tests/liveserver.py) with SIP on a free
port and yields ``(app, sip_port)``. ``run_scenario`` runs one of the scenarios in ``tests/sip/``
against it; ``RtpCounter`` is the side socket a scenario's SDP names, so the hotline's RTP lands
there and is counted and decoded.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from liveserver import serve
from paths import program

from core.settings import Settings
from voice.app import create_app
from voice.codec import ulaw_to_pcm16
from voice.hotline import open_hotline

SCENARIOS = Path(__file__).parent / "sip"


def sipp_path() -> str:
    return program("sipp", "sip-tester")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def baresip_config(home: Path, sip_port: int, cons_port: int, account: str) -> None:
    """A headless baresip in ``home``: G.711 only, ``home/mic.wav`` as the microphone, commands over
    UDP/TCP at ``cons_port``; ``account`` is its accounts line (e.g. ``<sip:caller@127.0.0.1>;regint=0``)."""
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
    (home / "accounts").write_text(account + "\n")
    (home / "contacts").write_text("")


def free_baresip_port() -> int:
    """A port for baresip's ``sip_listen``: free for UDP and TCP, and the next one for TCP too —
    baresip 1.0 listens on UDP, TCP and TLS whatever ``sip_transports`` says, TLS one port up (a
    TCP port taken by another program there once stopped it: "SIP/TLS transport failed")."""
    while True:
        port = free_port()
        sockets = []
        try:
            for kind, number in ((socket.SOCK_DGRAM, port), (socket.SOCK_STREAM, port), (socket.SOCK_STREAM, port + 1)):
                s = socket.socket(socket.AF_INET, kind)
                sockets.append(s)
                s.bind(("127.0.0.1", number))
            return port
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()


def free_media_ports() -> int:
    """An even UDP port whose next three are free too: sipp binds audio RTP/RTCP there and video two
    ports up (one free port alone once met a video port in use: sipp exit 254, "Unable to bind")."""
    while True:
        base = free_port()
        base -= base % 2
        sockets = []
        try:
            for offset in range(4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()


@contextmanager
def sip_server(tmp: Path, **more: Any) -> Iterator[tuple[Any, int]]:
    """The app with its SIP front door on a free loopback port (no Twilio account, no model install)."""
    port = free_port()
    base = {"db_path": tmp / "shop.sqlite3", "model_dir": tmp / "models", "model_install": False, "sip_port": port}
    app = create_app(open_hotline(Settings(**{**base, **more})))
    with serve(app):
        yield app, port


def run_scenario(
    name: str,
    port: int,
    cwd: Path,
    *,
    calls: int = 1,
    keys: dict[str, str] | None = None,
    timeout: float = 120,
    transport: str = "u1",
    args: tuple[str, ...] = (),
    fields: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """sipp running ``tests/sip/<name>`` against ``127.0.0.1:port``, ``calls`` at once (u1: UDP, t1: TCP).

    ``args`` are more sipp options (``-au``/``-ap``: the credentials ``[authentication]`` answers with).
    ``fields``: one line of ``;``-separated values per call, in order (sipp's injection file: ``[field0]``…).
    """
    command = [sipp_path(), f"127.0.0.1:{port}", "-sf", str(SCENARIOS / name), "-m", str(calls), "-l", str(calls)]
    command += ["-t", transport]
    command += ["-r", str(calls), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port())]
    command += ["-mp", str(free_media_ports()), "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error"]
    for key, value in (keys or {}).items():
        command += ["-key", key, value]
    command += list(args)
    if fields is not None:
        (cwd / "calls.csv").write_text("SEQUENTIAL\n" + "".join(f"{line};\n" for line in fields))
        command += ["-inf", str(cwd / "calls.csv")]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout + 30)


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """What to print when a sipp run failed: its exit code and the end of its output."""
    return f"sipp exit {result.returncode}: {result.stderr[-800:]} {result.stdout[-1500:]}"


@dataclass
class RtpCounter:
    """A loopback UDP socket that receives the hotline's RTP (μ-law): arrival times and loud packets."""

    sock: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    arrivals: list[float] = field(default_factory=list)
    loud: list[float] = field(default_factory=list)  # arrival times of packets louder than -50 dBFS
    ssrcs: set[int] = field(default_factory=set)
    loud_by_ssrc: Counter[int] = field(default_factory=Counter)  # loud packets of each stream (each call)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RtpCounter:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._receive, name="rtp-counter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12 or data[0] >> 6 != 2 or data[1] & 0x7F != 0:
                continue  # not an RTP PCMU packet (RTCP goes to the next port)
            self.arrivals.append(time.monotonic())
            ssrc = int.from_bytes(data[8:12], "big")
            self.ssrcs.add(ssrc)
            pcm = np.frombuffer(ulaw_to_pcm16(data[12:]), "<i2").astype(float)
            if pcm.size and 20 * np.log10(np.sqrt(np.mean(pcm**2)) / 32768 + 1e-9) > -50:
                self.loud.append(self.arrivals[-1])
                self.loud_by_ssrc[ssrc] += 1


def until(condition: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
