"""The HTTP server `make serve` runs: calls over the reference shop, errors, and a real start-up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from paths import REFERENCE_SHOP, shared
from shops import SHOPS, snapshot_data

from core.settings import Settings
from voice.app import create_app
from voice.hotline import open_hotline
from voice.wav import PCM, wav_bytes


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(db_path=tmp_path / "shop.sqlite3", model_dir=tmp_path / "models", trust_claimed_caller=True)
    return TestClient(create_app(open_hotline(settings, shared(REFERENCE_SHOP)), max_calls=2))


def test_health_names_the_shop_once_a_recogniser_is_installed(tmp_path: Path, whisper_model_dir: Path) -> None:
    settings = Settings(db_path=tmp_path / "shop.sqlite3", whisper_model=str(whisper_model_dir))
    health = TestClient(create_app(open_hotline(settings, shared(REFERENCE_SHOP)))).get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["speech"]["ready"] is True
    assert body["shop"] == "棉语生活旗舰店"
    assert body["now"].startswith("2026-11-20T10:0")  # the snapshot's as_of, ticking


def test_health_is_503_with_the_reason_while_no_recogniser_is_installed(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unavailable" and body["retryable"] is True and body["speech"]["ready"] is False
    assert "whisper-base" in body["error"] and "ivr models download whisper-base" in body["error"]
    call = client.post("/api/calls", json={}).json()  # text calls still work
    audio = client.post(f"/api/calls/{call['call_id']}/audio", content=wav_bytes(PCM, 8000, 16, bytes(16000)))
    assert audio.status_code == 503 and "not ready" in audio.json()["error"]


def test_a_known_caller_gets_the_owed_amount(client: TestClient) -> None:
    started = client.post("/api/calls", json={"caller": "+8613800138001"})
    assert started.status_code == 201
    call = started.json()
    assert call["customer"] == {"known": True, "name_hint": "张*"}  # whoever sends a number learns no name
    assert "张丽" not in started.text and "gold" not in started.text and "C001" not in started.text
    turn = client.post(
        f"/api/calls/{call['call_id']}/turns",
        json={"text": "我昨天买的衣服当时说有满减为什么付款时没显示"},
    ).json()
    # DD20261119001: T恤 89 + 连衣裙 239, both 上装 → 上装任选2件9折 saves 8.9 + 23.9 = 32.8
    assert "32.8" in turn["reply"]
    assert turn["intents"][0]["name"] == "promotion.not_applied"
    assert turn["ended"] is False
    outcome = client.post(f"/api/calls/{call['call_id']}/end").json()
    assert outcome["type"] == "resolved"
    assert client.post(f"/api/calls/{call['call_id']}/turns", json={"text": "喂"}).status_code == 404


@pytest.mark.parametrize("name", SHOPS)
def test_a_number_a_client_claims_is_not_caller_id_by_default(name: str, tmp_path: Path) -> None:
    """Anyone can POST someone's number: unless the operator trusts its clients, the call is anonymous."""
    data = snapshot_data(name)
    order = data["orders"][0]
    owner = next(c for c in data["customers"] if c["id"] == order["customer"])
    (tmp_path / "shop.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    settings = Settings(db_path=tmp_path / "api.sqlite3", model_dir=tmp_path / "models")
    client = TestClient(create_app(open_hotline(settings, tmp_path / "shop.json")))
    started = client.post("/api/calls", json={"caller": owner["phone"]})
    call = started.json()
    assert call["customer"] is None and owner["name"] not in started.text
    turn = client.post(f"/api/calls/{call['call_id']}/turns", json={"text": f"订单{order['id']}到哪了"}).json()
    assert "后四位" in turn["reply"]  # verification first: nothing of the order is told
    assert order["address"] not in turn["reply"] and all(i["sku"] not in turn["reply"] for i in order["items"])


def test_a_transfer_with_no_agent_signed_in_is_a_callback_and_the_call_goes_on(client: TestClient) -> None:
    call = client.post("/api/calls", json={"caller": "+8613800138008"}).json()
    turn = client.post(f"/api/calls/{call['call_id']}/turns", json={"text": "我要投诉 给我转人工"}).json()
    assert turn["ended"] is False and "回电" in turn["reply"] and "转接" not in turn["reply"]
    again = client.post(f"/api/calls/{call['call_id']}/turns", json={"text": "转人工"}).json()
    assert "已经给您登记" in again["reply"] and again["ended"] is False
    outcome = client.post(f"/api/calls/{call['call_id']}/end").json()
    assert outcome["type"] == "callback" and outcome["skill"] == "complaint"


def test_bad_requests_get_clear_errors(client: TestClient) -> None:
    assert client.post("/api/calls/nope/turns", json={"text": "你好"}).status_code == 404
    assert client.post("/api/calls", json={"caller": 123}).status_code == 422
    call = client.post("/api/calls", json={}).json()
    assert call["customer"] is None
    assert client.post(f"/api/calls/{call['call_id']}/turns", json={"text": "x" * 5000}).status_code == 422
    garbage = client.post(f"/api/calls/{call['call_id']}/audio", content=b"not a wav at all")
    assert garbage.status_code == 400
    assert "RIFF" in garbage.json()["error"] or "WAV" in garbage.json()["error"]


def test_the_call_limit_is_enforced(client: TestClient) -> None:
    for _ in range(2):
        assert client.post("/api/calls", json={}).status_code == 201
    full = client.post("/api/calls", json={})
    assert full.status_code == 503


def test_understand_endpoint(client: TestClient) -> None:
    body = client.post("/api/understand", json={"text": "快第到哪了"}).json()
    assert body["intents"][0]["name"] == "logistics.track"
    assert body["normalized"] != body["text"] or "快递" in body["normalized"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ivr_serve_starts_with_embedded_defaults(tmp_path: Path) -> None:
    """What `make serve` runs: the sample shop, SQLite in the cache folder, answering HTTP (no model
    install here: the tests never reach the internet; tests/test_serve_models.py covers installing)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(HOME=str(tmp_path), IVR_PORT=str(port), IVR_MODEL_INSTALL="false", IVR_TRUST_CLAIMED_CALLER="true")
    proc = subprocess.Popen([sys.executable, "-m", "voice.cli", "serve"], env=env, stderr=subprocess.PIPE)
    try:
        body = _wait_for_health(port, proc)
        assert body is not None, proc.stderr.read().decode() if proc.stderr else "server did not start"
        assert '"shop":"' in body and "speech recognition is not ready" in body  # 503 until it can recognise
        assert list((tmp_path / ".cache" / "ivr").glob("shop-*.sqlite3"))  # the sample shop's own store
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wait_for_health(port: int, proc: subprocess.Popen[bytes]) -> str | None:
    """The first /healthz body the server answers (200 or 503), or None if it never answers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.read().decode()
        except OSError:
            time.sleep(0.2)
    return None
