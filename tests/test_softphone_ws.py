"""The softphone's front door against the running server, over a real WebSocket.

A well-behaved page (``Page``: acks every mark as if it had played it) gets the greeting as 8 kHz
PCM16 with a mark after each sentence, can key an order number on the keypad and hang up. Pages
that break the protocol (text that is not JSON, audio before start, unknown types, oversized
messages, silence instead of start) get one ``error`` message and close code 1008, and the server
stays up: a call open the whole time keeps working and a new call afterwards works too.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from liveserver import serve
from paths import REAL_ZH, shared
from shops import snapshot_data
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from asr.textnorm import cer
from core.settings import Settings
from core.types import AudioFrame
from dialog.manager import greeting
from dialog.state import Context
from voice import softphone
from voice.app import create_app
from voice.hotline import Hotline, open_hotline
from voice.live_line import line_of
from voice.softphone_wire import MAX_TEXT_CHARS, OUT_RATE
from voice.wav import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def hotline(whisper_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Hotline:
    home = tmp_path_factory.mktemp("softphone")
    settings = Settings(
        asr_engine="whisper",
        whisper_model=str(whisper_model_dir),
        db_path=home / "shop.sqlite3",
        model_dir=home,
        trust_claimed_caller=True,  # the page's typed number is the caller (checked untrusted in test_app)
    )
    return open_hotline(settings)


@pytest.fixture(scope="module")
def app(hotline: Hotline) -> FastAPI:
    return create_app(hotline)


@pytest.fixture(scope="module")
def server(app: FastAPI) -> Iterator[str]:
    with serve(app) as address:
        yield address


class Page:
    """A page on ``/phone/ws``: what it received, split into events and reply audio."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.audio = bytearray()

    def start(self, caller: str | None = None, rate: int = 16000) -> dict[str, Any]:
        self.send({"type": "start", "caller": caller, "sample_rate": rate})
        return self.until(lambda e: e["type"] == "ready")

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Read until an event matches ``wanted``; return it."""
        while True:
            event = self._take(self.ws.recv(timeout=timeout))
            if event is not None and wanted(event):
                return event

    def seen(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """The first event received so far that matches ``wanted``, else the next one that does."""
        return next((e for e in self.events if wanted(e)), None) or self.until(wanted, timeout)

    def speak(self, audio: AudioFrame) -> None:
        """Send ``audio`` as 20 ms frames in real time, reading what arrives meanwhile."""
        step = audio.sample_rate // 50 * 2
        began = time.monotonic()
        for index, offset in enumerate(range(0, len(audio.pcm) - step + 1, step)):
            self.ws.send(audio.pcm[offset : offset + step])
            while (delay := began + (index + 1) * 0.02 - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    self._take(self.ws.recv(timeout=delay))

    def _take(self, message: str | bytes) -> dict[str, Any] | None:
        """Keep ``message``; answer it as the page does (ack marks as played, answer a clear)."""
        if isinstance(message, bytes):
            self.audio += message
            return None
        event: dict[str, Any] = json.loads(message)
        self.events.append(event)
        if event["type"] == "mark":
            self.send({"type": "mark", "name": event["name"]})
        if event["type"] == "clear":
            self.send({"type": "cleared", "played_ms": 0})
        return event

    def refused(self) -> tuple[str, int]:
        """The error message and close code of a page the server is refusing."""
        error = self.until(lambda e: e["type"] == "error")
        with pytest.raises(ConnectionClosed):
            while True:
                self.ws.recv(timeout=10)
        assert self.ws.close_code is not None
        return error["message"], self.ws.close_code


@contextmanager
def opened(address: str) -> Iterator[Page]:
    with connect(f"ws://{address}/phone/ws", open_timeout=10) as ws:
        yield Page(ws)


@contextmanager
def greeted(address: str, caller: str | None = None) -> Iterator[Page]:
    with opened(address) as page:
        ready = page.start(caller)
        assert ready["sample_rate"] == OUT_RATE and ready["call_id"]
        page.until(lambda e: e["type"] == "state" and e["state"] == "listening")  # greeting played, marks acked
        yield page


def test_the_page_and_its_files_are_served(server: str) -> None:
    with urllib.request.urlopen(f"http://{server}/phone") as response:
        page = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "呼叫" in page and "/phone/static/phone.js" in page
    files = [("phone.js", "text/javascript"), ("phone-capture.js", "text/javascript"), ("phone.css", "text/css")]
    for name, kind in files:
        with urllib.request.urlopen(f"http://{server}/phone/static/{name}") as response:
            assert response.headers["Content-Type"].startswith(kind)
            assert response.read()
    for name in ["app.py", "..%2Fapp.py", "phone.html.bak"]:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{server}/phone/static/{name}")
        assert err.value.code == 404


def test_a_known_caller_is_greeted_by_name_with_audio_and_marks(server: str, hotline: Hotline) -> None:
    phone = snapshot_data("sample")["customers"][0]["phone"]
    with greeted(server, phone) as page:
        events, audio = page.events, page.audio
    customer = hotline.shop.customer_by_phone(phone)
    reply = next(e for e in events if e["type"] == "reply")
    assert reply["text"] == greeting(customer, Context.create(hotline.shop, hotline.clock.now()))
    marks = [e["name"] for e in events if e["type"] == "mark"]
    assert len(marks) == len(reply["sentences"])
    heard = [e["text"] for e in events if e["type"] == "heard" and e["complete"]]
    assert heard == reply["sentences"]
    assert len(audio) % 2 == 0 and len(audio) / 2 / OUT_RATE > 1.0  # over a second of speech


def test_speech_during_the_greeting_clears_it_and_becomes_the_turn(server: str) -> None:
    name = "BAC009S0764W0121.wav"
    words = read_wav(shared(REAL_ZH / name).read_bytes())
    said = dict(line.split("\t")[:2] for line in (REAL_ZH / "transcripts.tsv").read_text("utf-8").splitlines())[name]
    assert words.sample_rate == 16000
    with opened(server) as page:
        page.start(rate=16000)
        page.until(lambda e: e["type"] == "reply")  # the greeting starts
        page.speak(words)
        page.speak(AudioFrame(bytes(16000 * 2), 16000))  # a second of silence: the caller is done
        turn = page.seen(lambda e: e["type"] == "turn")
        kinds = [e["type"] for e in page.events]
        assert "clear" in kinds and kinds.index("clear") < kinds.index("turn")
        assert any(e["type"] == "barge_in" and e["confirmed"] for e in page.events)
        greeting = next(e for e in page.events if e["type"] == "reply")
        cut = [e["text"] for e in page.events if e["type"] == "heard" and not e["complete"]]
        assert cut == greeting["sentences"][-len(cut) :] and cut
        final = next(e for e in page.events if e["type"] == "final")
        assert cer(said, final["text"]) <= 0.25, final  # whisper base on real human clips: mean 0.16
        page.seen(lambda e: e["type"] == "reply" and e["at"] >= turn["at"])  # and it is answered


def test_keyed_digits_are_a_turn_and_hangup_records_the_call(server: str) -> None:
    with greeted(server) as page:
        for key in "20261119001#":
            page.send({"type": "dtmf", "digit": key})
        turn = page.until(lambda e: e["type"] == "turn")
        assert turn["text"] == "20261119001"
        reply = page.until(lambda e: e["type"] == "reply")
        assert reply["text"]
        latency = page.until(lambda e: e["type"] == "latency")
        assert latency["total_ms"] >= latency["dialog_ms"] >= 0
        page.send({"type": "hangup"})
        ended = page.until(lambda e: e["type"] == "ended")
        assert ended["reason"] == "caller hung up" and ended["outcome"]
        with pytest.raises(ConnectionClosed):
            page.ws.recv(timeout=10)
        assert page.ws.close_code == 1000


BAD_OPENINGS = [
    ("not json", "expected a JSON object, got 'not json'"),
    (b"\x00\x01" * 320, "expected a start message first, got binary audio"),
    ({"type": "dtmf", "digit": "1"}, "expected a start message first, got a 'dtmf' message"),
    ({"type": "start", "sample_rate": 44100}, "expected sample_rate as one of (8000, 16000), got 44100"),
    ({"type": "start", "caller": "<script>", "sample_rate": 16000}, "expected caller as a phone number"),
    ("{" + " " * MAX_TEXT_CHARS + "}", f"at most {MAX_TEXT_CHARS} characters"),
]
BAD_IN_CALL = [
    ({"type": "ring"}, "expected type start|dtmf|mark|cleared|hangup, got 'ring'"),
    ({"type": "start", "sample_rate": 16000}, "expected one start per call, got a second start"),
    ({"type": "mark", "name": "r9.9"}, "'r9.9'"),
    ({"type": "cleared", "played_ms": 10}, "expected cleared only in answer to a clear, got cleared"),
    (bytes(4000), "expected 2..3200 bytes of PCM16 (even) in a binary message, got 4000"),
    (bytes(641), "got 641"),
    ('{"type":"dtmf","digit":"\\ud800"}', "expected digit as one of 0-9 * # A-D, got '\\ud800'"),
]


def _send_raw(page: Page, message: str | bytes | dict[str, Any]) -> None:
    page.ws.send(json.dumps(message) if isinstance(message, dict) else message)


def test_bad_pages_are_refused_and_other_calls_carry_on(server: str) -> None:
    with greeted(server) as bystander:
        for message, expected in BAD_OPENINGS:
            with opened(server) as page:
                _send_raw(page, message)
                error, code = page.refused()
            assert expected in error and code == 1008, (message, error, code)
        for message, expected in BAD_IN_CALL:
            with opened(server) as page:
                page.start()
                _send_raw(page, message)
                error, code = page.refused()
            assert expected in error and code == 1008, (message, error, code)
        with opened(server) as page:  # three seconds of "microphone" audio at once
            page.start()
            with contextlib.suppress(ConnectionClosed):  # the server may refuse before the last one
                for _ in range(150):
                    page.ws.send(bytes(640))
            error, code = page.refused()
        assert error.startswith("expected audio in real time") and code == 1008
        # the call open all along still answers, and a new call is greeted
        bystander.send({"type": "dtmf", "digit": "1"})
        bystander.send({"type": "dtmf", "digit": "#"})
        assert bystander.until(lambda e: e["type"] == "turn")["text"] == "1"
    with greeted(server) as page:
        assert page.audio


def test_a_full_line_refuses_the_page_with_try_again_later(server: str, app: FastAPI) -> None:
    line = line_of(app)
    with greeted(server) as first:
        full = len(line.calls)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(line, "max_calls", full)
            with opened(server) as page:
                page.send({"type": "start", "caller": None, "sample_rate": 16000})
                error, code = page.refused()
        assert error.startswith("热线暂时无法接听") and code == 1013
        assert first.ws.ping().wait(10)  # the call that held the line is still up


def test_a_page_of_another_site_cannot_open_a_call(server: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://{server}/phone/ws", origin=Origin("http://shop-data-thief.example"), open_timeout=10)
    assert refused.value.response.status_code == 403
    with connect(f"ws://{server}/phone/ws", origin=Origin(f"http://{server}"), open_timeout=10) as ws:
        page = Page(ws)
        assert page.start()["call_id"]


def test_a_page_that_never_starts_is_closed(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(softphone, "START_TIMEOUT_S", 0.3)
    with opened(server) as page:
        error, code = page.refused()
    assert (error, code) == ("expected a start message within 0.3 s, got nothing", 1008)
