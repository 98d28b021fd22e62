"""The Twilio front door: signatures (vectors from the twilio library), TwiML, tokens, status, REST hang-up,
and malformed Media Streams input against a real server over a real WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.testclient import TestClient
from liveserver import serve
from twilio.request_validator import RequestValidator
from twiliosim import TwilioLoopback, TwilioPeer, answer_call, on_loopback, signed_post

from core.errors import ConfigError
from core.settings import Settings
from voice import twilio_wire as tw
from voice.app import create_app
from voice.cli_serve import WS_MAX_BYTES
from voice.hotline import open_hotline
from voice.twilio_rest import TwilioRest
from voice.twilio_routes import calls_of

AUTH = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a1" * 16
PUBLIC = "https://ivr.example.com"


def twilio_settings(tmp: Path, **more: Any) -> Settings:
    base = {"db_path": tmp / "shop.sqlite3", "model_dir": tmp / "models", "public_url": PUBLIC}
    # no account SID: a test server must never call Twilio's REST API (hang-up is tested against loopback)
    return Settings(**{**base, "twilio_auth_token": AUTH, **more})


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(open_hotline(twilio_settings(tmp_path))))


def _form(caller: str = "+8613800138001", sid: str = "CA" + "f" * 32) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": ACCOUNT, "From": caller, "To": "+14155550100", "CallStatus": "ringing"}


def _post(client: TestClient, path: str, form: dict[str, str], signature: str | None) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return client.post(path, data=form, headers=headers)


def test_twilio_settings_use_twilio_names_and_are_validated() -> None:
    env = {"TWILIO_AUTH_TOKEN": AUTH, "TWILIO_ACCOUNT_SID": ACCOUNT, "IVR_PUBLIC_URL": PUBLIC}
    settings = Settings.from_env(env)
    assert (settings.twilio_auth_token, settings.twilio_account_sid, settings.public_url) == (AUTH, ACCOUNT, PUBLIC)
    assert AUTH not in repr(settings)
    bad = {
        "IVR_PUBLIC_URL": ("ivr.example.com", "IVR_PUBLIC_URL"),
        "TWILIO_ACCOUNT_SID": ("SK123", "TWILIO_ACCOUNT_SID"),
        "TWILIO_AUTH_TOKEN": ("short", "TWILIO_AUTH_TOKEN"),
        "IVR_TWILIO_AUTH_TOKEN": (AUTH, "IVR_TWILIO_AUTH_TOKEN is not a known setting"),
    }
    for var, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            Settings.from_env({var: value})


def test_a_signed_call_is_connected_to_the_stream_with_a_token(client: TestClient) -> None:
    form = _form()
    signature = RequestValidator(AUTH).compute_signature(PUBLIC + "/twilio/voice", form)
    response = _post(client, "/twilio/voice", form, signature)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://ivr.example.com/twilio/stream"
    (param,) = stream.findall("Parameter")
    grant = tw.check_token(AUTH, param.get("value", ""))
    assert (grant.call_sid, grant.caller) == (form["CallSid"], form["From"])
    assert grant.expires - time.time() == pytest.approx(tw.TOKEN_TTL_S, abs=5)


def test_a_full_line_rejects_the_call_as_busy(client: TestClient) -> None:
    from voice.live_line import line_of

    line_of(client.app).max_calls = 0
    form = _form()
    signature = RequestValidator(AUTH).compute_signature(PUBLIC + "/twilio/voice", form)
    twiml = ET.fromstring(_post(client, "/twilio/voice", form, signature).text)
    reject = twiml.find("Reject")
    assert reject is not None and reject.get("reason") == "busy" and twiml.find("Connect") is None


@pytest.mark.parametrize("case", ["tampered", "missing", "wrong_url", "wrong_token"])
def test_unsigned_or_tampered_webhooks_are_refused(client: TestClient, case: str) -> None:
    form = _form()
    url = PUBLIC + ("/twilio/status" if case == "wrong_url" else "/twilio/voice")
    signature = RequestValidator("f" * 32 if case == "wrong_token" else AUTH).compute_signature(url, form)
    if case == "tampered":
        form["From"] = "+8613900000000"
    response = _post(client, "/twilio/voice", form, None if case == "missing" else signature)
    assert response.status_code == 403
    assert "<Connect>" not in response.text


def test_without_an_auth_token_the_webhook_refuses_everything(tmp_path: Path) -> None:
    settings = twilio_settings(tmp_path, twilio_auth_token=None)
    client = TestClient(create_app(open_hotline(settings)))
    form = _form()
    signature = RequestValidator(AUTH).compute_signature(PUBLIC + "/twilio/voice", form)
    response = _post(client, "/twilio/voice", form, signature)
    assert response.status_code == 503
    assert "TWILIO_AUTH_TOKEN" in response.text


def test_status_callbacks_are_recorded_with_the_call(client: TestClient) -> None:
    sid = "CA" + "b" * 32
    for status in ("ringing", "in-progress", "completed"):
        form = {**_form(sid=sid), "CallStatus": status, "SequenceNumber": status[:2]}
        signature = RequestValidator(AUTH).compute_signature(PUBLIC + "/twilio/status", form)
        assert _post(client, "/twilio/status", form, signature).status_code == 200
    forged = {**_form(sid=sid), "CallStatus": "failed"}
    assert _post(client, "/twilio/status", forged, "bm90IGEgc2lnbmF0dXJl").status_code == 403
    recorded = [e["CallStatus"] for e in calls_of(client.app).statuses[sid]]
    assert recorded == ["ringing", "in-progress", "completed"]


def test_stream_tokens_refuse_forgery_expiry_and_garbage() -> None:
    token = tw.issue_token(AUTH, "CA1", "+861", now=1000.0)
    assert tw.check_token(AUTH, token, now=1001.0).call_sid == "CA1"
    with pytest.raises(tw.WireError, match="expired"):
        tw.check_token(AUTH, token, now=1000.0 + tw.TOKEN_TTL_S + 1)
    with pytest.raises(tw.WireError, match="signature"):
        tw.check_token("f" * 32, token, now=1001.0)
    body, _, sig = token.partition(".")
    other = base64.urlsafe_b64encode(json.dumps(["CA2", "+861", 9e12]).encode()).decode()
    with pytest.raises(tw.WireError, match="signature"):
        tw.check_token(AUTH, f"{other}.{sig}", now=1001.0)
    for garbage in ("", "abc", "x.y", "." + sig):
        with pytest.raises(tw.WireError):
            tw.check_token(AUTH, garbage, now=1001.0)


def test_media_streams_messages_parse_or_say_what_was_expected() -> None:
    frame = tw.parse(json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\xff" * 160).decode()}}))
    assert isinstance(frame, tw.Media) and frame.frame.sample_rate == 8000 and len(frame.frame.pcm) == 320
    assert tw.parse('{"event": "dtmf", "dtmf": {"digit": "7"}}') == tw.Dtmf("7")
    assert tw.parse('{"event": "mark", "mark": {"name": "r1.0"}}') == tw.Mark("r1.0")
    bad = {
        "not json": "expected a JSON message",
        "[1, 2]": "expected a JSON object",
        '{"event": "hello"}': "expected event",
        '{"event": "media", "media": {"payload": "***"}}': "expected base64",
        '{"event": "media"}': "expected an object in 'media'",
        '{"event": "dtmf", "dtmf": {"digit": "A"}}': "expected a DTMF digit",
        "x" * (tw.MAX_MESSAGE_CHARS + 1): "at most",
    }
    for text, message in bad.items():
        with pytest.raises(tw.WireError, match=message):
            tw.parse(text)
    out = json.loads(tw.mark_message("MZ1", "r1.0"))
    assert out == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "r1.0"}}
    assert json.loads(tw.clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        _Recorder.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "form": parse_qs(body)})
        sid = self.path.rsplit("/", 1)[-1].removesuffix(".json")
        reply = json.dumps({"sid": sid, "status": "completed", "account_sid": ACCOUNT}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def recording_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_hang_up_goes_to_the_twilio_rest_api() -> None:
    _Recorder.seen = []
    with recording_server() as base:
        TwilioRest(ACCOUNT, AUTH, http_client=TwilioLoopback(base)).hang_up("CA" + "c" * 32)
    (request,) = _Recorder.seen
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/CA{'c' * 32}.json"
    assert request["auth"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{AUTH}".encode()).decode()
    assert request["form"] == {"Status": ["completed"]}
    with pytest.raises(ConfigError):
        TwilioRest(None, AUTH)


# -- a real server ------------------------------------------------------------------------------


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """``app`` on a free loopback port (``tests/liveserver.py``); yields its base URL."""
    with serve(app) as host:
        yield f"http://{host}"


@pytest.fixture(scope="module")
def vosk_server(tmp_path_factory: pytest.TempPathFactory, vosk_ko_model_dir: Path) -> Iterator[tuple[str, FastAPI]]:
    """A real server with the Korean vosk model as a compute stand-in (these tests need no Mandarin)."""
    tmp = tmp_path_factory.mktemp("twilio")
    settings = twilio_settings(tmp, asr_engine="vosk", vosk_model=str(vosk_ko_model_dir))
    app = create_app(open_hotline(settings))
    with running(app) as base:
        yield base, app


async def _expect_closed(url: str, messages: list[str | bytes], code: int) -> tuple[int, str]:
    async with websockets.connect(url) as ws:
        for message in messages:
            try:
                await ws.send(message)
            except websockets.ConnectionClosed:
                break
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(200):
                await asyncio.wait_for(ws.recv(), 10)
    rcvd = closed.value.rcvd
    assert rcvd is not None and rcvd.code == code, (rcvd, messages[:1])
    return rcvd.code, rcvd.reason


def _start(call_sid: str, token: str) -> str:
    start = {"callSid": call_sid, "streamSid": "MZ" + "2" * 32, "customParameters": {"token": token}}
    return json.dumps({"event": "start", "start": start, "streamSid": "MZ" + "2" * 32})


def test_malformed_streams_are_closed_and_a_live_call_goes_on(vosk_server: tuple[str, FastAPI]) -> None:
    base, app = vosk_server

    async def main() -> None:
        stream_url, token = answer_call(base, PUBLIC, AUTH, "CA" + "1" * 32, "+8613800138001")
        good = TwilioPeer(on_loopback(stream_url, base), token, "CA" + "1" * 32)
        async with good:
            await _wait(lambda: len(good.media) > 10)
            url = on_loopback(stream_url, base)
            media = json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\xff" * 160).decode()}})
            expired = tw.issue_token(AUTH, "CA" + "3" * 32, "+861", now=time.time() - 3600)
            unknown = tw.issue_token(AUTH, "CA" + "4" * 32, "+861")  # signed by us, but no such call was answered
            forged = tw.issue_token("f" * 32, "CA" + "5" * 32, "+861")
            cases: list[tuple[list[str | bytes], int, str]] = [
                ([media], tw_policy, "expected start"),
                (["{not json"], tw_policy, "JSON"),
                ([_start("CA" + "3" * 32, expired)], tw_policy, "expired"),
                ([_start("CA" + "4" * 32, unknown)], tw_policy, "answered"),
                ([_start("CA" + "5" * 32, forged)], tw_policy, "signature"),
                ([_start("CA" + "6" * 32, "")], tw_policy, "signature"),
                ([b"\x00\x01binary"], 1003, "binary"),
                (["x" * (tw.MAX_MESSAGE_CHARS + 10)], 1009, "at most"),
                (["x" * (WS_MAX_BYTES + 1)], 1009, f"limit of {WS_MAX_BYTES}"),  # uvicorn: not buffered whole
            ]
            for messages, code, reason in cases:
                _, said = await _expect_closed(url, messages, code)
                assert reason in said, (reason, said)
            second_sid = "CA" + "7" * 32
            url2, token2 = answer_call(base, PUBLIC, AUTH, second_sid, "+8613900139001")
            broken = '{"event": "media", "media": {"payload": "%%%not base64"}}'
            await _expect_closed(on_loopback(url2, base), [_start(second_sid, token2), broken], 1007)
            replay = [_start(second_sid, token2)]  # the token was used: a second stream for that call is refused
            await _expect_closed(on_loopback(url2, base), replay, tw_policy)
            before = len(good.media)
            await _wait(lambda: len(good.echoed) >= 1 and len(good.media) > before + 20)
            assert good.closed is None  # the good call was never disturbed

    asyncio.run(main())
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200
    assert 'ivr_live_calls_total{wire="twilio"}' in httpx.get(base + "/metrics", timeout=10).text


tw_policy = 1008


async def _wait(condition: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_signed_post_helper_matches_the_server(vosk_server: tuple[str, FastAPI]) -> None:
    base, _ = vosk_server
    assert signed_post(base, PUBLIC, AUTH, "/twilio/voice", _form()).status_code == 200
    assert signed_post(base, "https://elsewhere.example.com", AUTH, "/twilio/voice", _form()).status_code == 403


def test_when_the_hotline_ends_a_call_twilio_is_asked_to_hang_up(tmp_path: Path) -> None:
    from voice.twilio_routes import TwilioCalls, TwilioWire

    _Recorder.seen = []
    with recording_server() as base:
        calls = TwilioCalls(twilio_settings(tmp_path), rest=TwilioRest(ACCOUNT, AUTH, http_client=TwilioLoopback(base)))
        wire = TwilioWire(None, "MZ1", "CA" + "d" * 32, calls)  # type: ignore[arg-type]
        asyncio.run(wire.hangup())
    assert [r["path"].rsplit("/", 1)[-1] for r in _Recorder.seen] == [f"CA{'d' * 32}.json"]
    assert _Recorder.seen[0]["form"] == {"Status": ["completed"]}
