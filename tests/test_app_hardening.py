"""Defects of the HTTP server measured from outside, each against the real app on the embedded sample
shop: the line filling up, hostile WAV headers, call control waiting behind ASR, body sizes, bad
Unicode, error shapes, shutdown, and what a stranger learns from a phone number."""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import Settings
from voice.app import ASR_BACKLOG_PER_WORKER, create_app
from voice.hotline import Hotline, open_hotline
from voice.wav import PCM, wav_bytes

KNOWN = "+8613912340101"  # C101 in the embedded sample shop


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hotline(tmp_path: Path) -> Hotline:
    settings = Settings(db_path=tmp_path / "shop.sqlite3", model_dir=tmp_path / "models", trust_claimed_caller=True)
    return open_hotline(settings)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(hotline: Hotline, clock: FakeClock) -> FastAPI:
    return create_app(hotline, max_calls=2, clock=clock)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def one_shape(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error", "retryable"}, body
    assert isinstance(body["error"], str) and "\n" not in body["error"]
    return dict(body)


def history(hotline: Hotline) -> int:
    customer = hotline.shop.customer("C101")
    assert customer is not None
    return len(customer.history)


# -- the line -------------------------------------------------------------------------------------


def test_idle_calls_expire_with_their_outcome_recorded_and_free_the_line(
    client: TestClient, hotline: Hotline, clock: FakeClock
) -> None:
    before = history(hotline)
    first = client.post("/api/calls", json={"caller": KNOWN}).json()["call_id"]
    assert client.post(f"/api/calls/{first}/turns", json={"text": "我的快递到哪了"}).status_code == 200
    client.post("/api/calls", json={})
    full = client.post("/api/calls", json={})
    assert full.status_code == 503 and one_shape(full)["retryable"] is True
    health = client.get("/healthz")
    assert health.status_code == 503 and "the line is full: 2 of 2 calls" in health.json()["error"]

    clock.now += hotline.settings.call_idle_seconds - 1
    assert client.post("/api/calls", json={}).status_code == 503, "not idle long enough yet"
    clock.now += 1
    assert client.post("/api/calls", json={}).status_code == 201, "both idle calls expired"
    assert history(hotline) == before + 1, "the expired call is in the customer's history"
    outcome = client.post(f"/api/calls/{first}/end")
    assert outcome.status_code == 200 and outcome.json()["type"] in {"resolved", "abandoned"}
    assert client.post(f"/api/calls/{first}/turns", json={"text": "喂"}).status_code == 404


def test_a_call_in_use_does_not_expire(client: TestClient, hotline: Hotline, clock: FakeClock) -> None:
    call = client.post("/api/calls", json={}).json()["call_id"]
    clock.now += hotline.settings.call_idle_seconds - 1
    assert client.post(f"/api/calls/{call}/turns", json={"text": "有什么活动"}).status_code == 200
    clock.now += hotline.settings.call_idle_seconds - 1
    assert client.post(f"/api/calls/{call}/turns", json={"text": "好的"}).status_code == 200


def test_a_call_the_bot_ended_is_freed_at_once(client: TestClient, hotline: Hotline) -> None:
    before = history(hotline)
    first = client.post("/api/calls", json={"caller": KNOWN}).json()["call_id"]
    client.post("/api/calls", json={})
    booked = client.post(f"/api/calls/{first}/turns", json={"text": "我要投诉 给我转人工"}).json()
    assert booked["ended"] is False  # no agent signed in: a callback, and the bot serves the call on
    turn = client.post(f"/api/calls/{first}/turns", json={"text": "好的谢谢，再见"}).json()
    assert turn["ended"] is True and turn["outcome"]["type"] == "callback"
    assert history(hotline) == before + 1
    assert client.post("/api/calls", json={}).status_code == 201, "the ended call no longer holds a line"
    assert client.post(f"/api/calls/{first}/end").json() == turn["outcome"]


# -- audio ------------------------------------------------------------------------------------------


def wav_header(rate: int, channels: int = 1, bits: int = 16, data: int = 32_000) -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", PCM, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data) + bytes(data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (wav_header(1), "sample rate 1 Hz is outside 8000..48000 Hz"),
        (wav_header(4_000_000_000), "sample rate 4000000000 Hz"),
        (wav_header(8000, channels=6, data=48_000), "6 channels"),
        (wav_header(8000, bits=12), "12-bit"),
        (wav_header(8000, data=8000 * 2 * 61), "the turn is 61.0 s of audio; at most 60 s per turn"),
    ],
    ids=["1 Hz", "4 GHz", "6 channels", "12-bit", "61 s"],
)
def test_hostile_wav_headers_are_refused_before_decoding(client: TestClient, header: bytes, says: str) -> None:
    call = client.post("/api/calls", json={}).json()["call_id"]
    refused = client.post(f"/api/calls/{call}/audio", content=header)
    assert refused.status_code == 400 and says in one_shape(refused)["error"]
    assert client.post(f"/api/calls/{call}/turns", json={"text": "你好"}).status_code == 200, "the call goes on"


def test_call_control_never_waits_behind_recognition(app: FastAPI, client: TestClient) -> None:
    """Every ASR thread is busy (as with six long audio turns); a new caller is still greeted."""
    release = threading.Event()
    busy = [app.state.asr_executor.submit(release.wait, 120) for _ in range(app.state.hotline.settings.asr_workers)]
    answers: list[int] = []

    def new_caller() -> None:
        call = client.post("/api/calls", json={})
        answers.append(call.status_code)
        answers.append(client.post(f"/api/calls/{call.json()['call_id']}/turns", json={"text": "你好"}).status_code)

    caller = threading.Thread(target=new_caller)
    caller.start()
    caller.join(timeout=60)
    greeted, saturated = not caller.is_alive(), all(not f.done() for f in busy)
    release.set()
    caller.join()
    assert saturated, "every ASR thread was busy the whole time"
    assert greeted and answers == [201, 200]


# -- bodies and errors -------------------------------------------------------------------------------


def test_json_bodies_have_a_size_limit(client: TestClient) -> None:
    big = json.dumps({"text": "好" * 400_000}).encode()
    declared = client.post("/api/understand", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "over 65536 bytes" in one_shape(declared)["error"]
    streamed = client.post(
        "/api/understand", content=iter([big[:40_000], big[40_000:]]), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413 and one_shape(streamed)


def test_a_lone_surrogate_is_a_clear_422(client: TestClient) -> None:
    """It was a 500: the 422 echoed the input back and the surrogate could not be encoded."""
    call = client.post("/api/calls", json={}).json()["call_id"]
    for path, field in (("/api/understand", "text"), (f"/api/calls/{call}/turns", "text"), ("/api/calls", "caller")):
        raw = f'{{"{field}": "\\ud800abc"}}'.encode()
        bad = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert bad.status_code == 422, bad.text
        assert f"body.{field}:" in one_shape(bad)["error"] and "unicode" in str(one_shape(bad)["error"])


def test_validation_errors_do_not_echo_the_input(client: TestClient) -> None:
    marker = "秘密" * 1500
    bad = client.post("/api/understand", json={"text": marker})
    assert bad.status_code == 422
    assert "秘密" not in bad.text and "body.text" in one_shape(bad)["error"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/no/such/route", None, 404),
        ("GET", "/api/calls", None, 405),
        ("POST", "/api/calls/nope/turns", b'{"text": "x"}', 404),
        ("POST", "/api/understand", b"{not json", 422),
        ("POST", "/api/understand", b'{"words": 1}', 422),
        ("POST", "/api/calls/nope/end", None, 404),
    ],
)
def test_every_error_has_one_shape(client: TestClient, method: str, path: str, body: bytes | None, status: int) -> None:
    response = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert one_shape(response)["retryable"] is False


# -- who learns what ---------------------------------------------------------------------------------


def test_starting_a_call_with_someones_number_reveals_no_name_or_vip_level(client: TestClient) -> None:
    started = client.post("/api/calls", json={"caller": KNOWN})
    assert started.json()["customer"] == {"known": True, "name_hint": "林**"}
    for secret in ("林晓雯", "gold", "C101"):
        assert secret not in started.text


# -- shutdown ----------------------------------------------------------------------------------------


def test_shutdown_ends_every_call_after_the_front_doors_say_goodbye(app: FastAPI, hotline: Hotline) -> None:
    before = history(hotline)
    order: list[str] = []

    async def goodbye() -> None:
        order.append(f"goodbye with {len(app.state.calls)} calls held")

    app.state.on_shutdown.append(goodbye)
    with TestClient(app) as client:
        call = client.post("/api/calls", json={"caller": KNOWN}).json()["call_id"]
        client.post(f"/api/calls/{call}/turns", json={"text": "有什么优惠活动"})
    assert order == ["goodbye with 1 calls held"]
    assert len(app.state.calls) == 0 and app.state.calls.outcome(call) is not None
    assert history(hotline) == before + 1, "the call cut by shutdown is recorded"


def test_audio_turns_beyond_the_asr_backlog_are_refused_at_once(tmp_path: Path, whisper_model_dir: Path) -> None:
    settings = Settings(db_path=tmp_path / "shop.sqlite3", whisper_model=str(whisper_model_dir), asr_workers=1)
    app = create_app(open_hotline(settings), max_calls=20)
    client = TestClient(app)
    release = threading.Event()
    app.state.asr_executor.submit(release.wait, 120)  # the one ASR thread is busy
    second = wav_bytes(PCM, 8000, 16, bytes(16000))
    statuses: list[int] = []

    def audio_turn() -> None:
        call = client.post("/api/calls", json={}).json()["call_id"]
        statuses.append(client.post(f"/api/calls/{call}/audio", content=second).status_code)

    waiting = [threading.Thread(target=audio_turn) for _ in range(ASR_BACKLOG_PER_WORKER)]
    for thread in waiting:
        thread.start()
    while app.state.asr_turns < ASR_BACKLOG_PER_WORKER and all(t.is_alive() for t in waiting):
        release.wait(0.05)
    call = client.post("/api/calls", json={}).json()["call_id"]
    refused = client.post(f"/api/calls/{call}/audio", content=second)
    release.set()
    for thread in waiting:
        thread.join()
    assert refused.status_code == 503 and "speech recognition is busy" in one_shape(refused)["error"]
    assert one_shape(refused)["retryable"] is True
    assert statuses == [200] * ASR_BACKLOG_PER_WORKER, "the queued turns were heard once a thread was free"
