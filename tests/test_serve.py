"""``ivr serve`` as a user runs it, in a subprocess on a free port: SIGTERM ends every call with a
record, a bad ``IVR_DB_PATH`` is one line, and a fresh machine gets a recogniser while /healthz
says why it is not ready yet. Models come from a local HTTP server, never the internet."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_models import Mirror

from shop.store import SqliteShop
from voice.cli import main

KNOWN = "+8613912340101"  # C101 in the embedded sample shop
WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Server:
    def __init__(self, home: Path, **env: str) -> None:
        self.port = free_port()
        self.home = home
        environ = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        environ.update(HOME=str(home), IVR_PORT=str(self.port), **env)
        command = [sys.executable, "-m", "voice.cli", "serve"]
        self.proc = subprocess.Popen(command, env=environ, stderr=subprocess.PIPE, text=True)

    def health(self) -> tuple[int, dict[str, Any]] | None:
        try:
            return request(self.port, "GET", "/healthz")
        except OSError:
            return None

    def wait_until(self, ok: Any, seconds: float = 120) -> tuple[int, dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.proc.poll() is None:
            answer = self.health()
            if answer is not None and ok(answer):
                return answer
            time.sleep(0.2)
        raise AssertionError(f"server never got there: {self.health()}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return err


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_sigterm_ends_every_call_with_its_record(home: Path) -> None:
    server = Server(home, IVR_MODEL_INSTALL="false", IVR_TRUST_CLAIMED_CALLER="true")
    try:
        server.wait_until(lambda answer: True, seconds=60)
        status, call = request(server.port, "POST", "/api/calls", {"caller": KNOWN})
        assert status == 201
        status, _ = request(server.port, "POST", f"/api/calls/{call['call_id']}/turns", {"text": "有什么优惠活动"})
        assert status == 200
    finally:
        err = server.stop()
    assert server.proc.returncode in (0, -signal.SIGTERM), err  # uvicorn re-raises the signal it handled
    assert f"call {call['call_id']} ended (server shutting down)" in err
    (store,) = (home / ".cache" / "ivr").glob("shop-*.sqlite3")  # the sample shop's own store
    customer = SqliteShop(store).customer("C101")
    assert customer is not None and len(customer.history) == 2, "the sample shop's one contact, then this call"


@pytest.mark.parametrize("kind", ["a directory", "under a file"])
def test_a_bad_db_path_is_one_line_and_exit_2(home: Path, kind: str) -> None:
    (home / "file").write_text("x")
    path = home if kind == "a directory" else home / "file" / "shop.sqlite3"
    server = Server(home, IVR_DB_PATH=str(path))
    _, err = server.proc.communicate(timeout=60)
    assert server.proc.returncode == 2
    assert err.count("\n") == 1 and err.startswith(f"ivr: IVR_DB_PATH={path} ") and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.models
def test_a_fresh_machine_gets_a_recogniser_while_healthz_says_why_not_yet(home: Path, whisper_model_dir: Path) -> None:
    with Mirror() as mirror:
        for name in WHISPER_FILES:
            mirror.files[f"/whisper-base/{name}"] = (whisper_model_dir / name).read_bytes()
        mirror.gate.clear()  # hold every download until healthz has been seen saying so
        server = Server(home, IVR_MODEL_MIRROR=mirror.url, IVR_PYPI_INDEX=f"{mirror.url}/pypi")
        try:
            status, body = server.wait_until(lambda answer: "installing whisper-base" in str(answer[1]), seconds=60)
            assert status == 503 and body["speech"]["state"] == "installing" and body["retryable"] is True
            assert f"installing whisper-base from {mirror.url}/whisper-base" in body["error"]
            mirror.gate.set()
            status, body = server.wait_until(lambda answer: answer[0] == 200)
            assert body["status"] == "ok" and body["speech"] == {"ready": True, "state": "ready", "reason": None}
        finally:
            err = server.stop()
    assert mirror.requests[0] == "/vosk-zh/vosk-model-small-cn-0.22.zip", "vosk's home is tried first"
    assert "model.bin" in err, "the progress bar names each file"
    record = json.loads((home / ".cache" / "ivr" / "models" / "whisper-base" / "ivr-source.json").read_text())
    assert record["source"] == f"{mirror.url}/whisper-base" and record["sha256_verified"] is True


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("IVR_MAX_CALLS", "0", "IVR_MAX_CALLS must be 1..100000, got 0"),
        ("IVR_CALL_IDLE_SECONDS", "1", "IVR_CALL_IDLE_SECONDS must be 5..86400, got 1"),
        ("IVR_MAX_TURN_SECONDS", "many", "IVR_MAX_TURN_SECONDS must be a whole number, got 'many'"),
        ("IVR_ASR_WORKERS", "0", "IVR_ASR_WORKERS must be 1..64, got 0"),
        ("IVR_MODEL_INSTALL", "maybe", "IVR_MODEL_INSTALL must be true or false, got 'maybe'"),
        ("IVR_PYPI_INDEX", "ftp://x", "IVR_PYPI_INDEX must be an http(s):// URL, got 'ftp://x'"),
    ],
)
def test_the_new_settings_fail_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], var: str, value: str, says: str
) -> None:
    monkeypatch.setenv(var, value)
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == f"ivr: {says}\n"
