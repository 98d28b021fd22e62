"""State that must survive restarts and neighbours: contact history order, and one store per shop.

On the three shops of tests/shops.py: a snapshot shop's clock restarts at its ``as_of``, yet what
the hotline records after a restart must sort after what it recorded before; and a command run for
another shop on the same machine must never change the shop a running server answers from.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from shops import SHOPS, snapshot_data

from core.settings import Settings
from core.shop import Contact
from dialog import manager
from dialog.state import Context
from shop import open_shop
from voice.hotline import shop_clock

REPO = Path(__file__).resolve().parents[1]


def write_shop(name: str, folder: Path) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(snapshot_data(name), ensure_ascii=False), encoding="utf-8")
    return path


def calm_customer(data: dict[str, Any]) -> dict[str, Any]:
    """A customer with no complaint on record (so the greeting recalls the last contact)."""
    return next(c for c in data["customers"] if not any(h.get("complaint") for h in c.get("history", [])))


@pytest.mark.parametrize("name", SHOPS)
def test_history_written_after_two_restarts_sorts_after_the_older_records(name: str, tmp_path: Path) -> None:
    customer = calm_customer(snapshot_data(name))
    settings = Settings(db_path=tmp_path / "shop.sqlite3", shop_file=write_shop(name, tmp_path))
    recorded = []
    for start in ("第一次启动", "重启一次", "再重启一次"):
        shop = open_shop(settings)  # a fresh process: the store is reopened, the clock built again
        clock = shop_clock(shop.info(), shop.last_recorded_at())
        served = timedelta(minutes=20)  # the process served calls for a while before this one
        contact = Contact(clock.now() + served, "phone", f"{start}后来电查询物流")
        shop.record_contact(customer["id"], contact)
        recorded.append(contact)
    assert [c.at for c in recorded] == sorted(c.at for c in recorded) and len({c.at for c in recorded}) == 3
    found = shop.customer(customer["id"])
    assert found is not None and max(found.history, key=lambda c: c.at) == recorded[-1]
    greeting = manager.greeting(found, Context.create(shop, recorded[-1].at + served))
    assert f"您上次{recorded[-1].summary}" in greeting


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> dict[str, Any]:
    """The JSON body, also of a 503 (``/healthz`` while no recogniser is installed: these tests need none)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as err:
        if err.code != 503:
            raise
        return dict(json.loads(err.read()))


def _post(port: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def _wait_for_health(port: int, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return _get(port, "/healthz")
        except OSError:
            time.sleep(0.2)
    return None


@pytest.mark.parametrize("served", SHOPS)
def test_a_command_for_another_shop_never_switches_a_running_server(served: str, tmp_path: Path) -> None:
    other = SHOPS[(SHOPS.index(served) + 1) % len(SHOPS)]
    data = snapshot_data(served)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    port = _free_port()
    env.update(HOME=str(tmp_path), IVR_PORT=str(port), IVR_SHOP_FILE=str(write_shop(served, tmp_path)))
    env["IVR_MODEL_INSTALL"] = "false"  # no recogniser is needed here, and nothing may be fetched
    env["IVR_TRUST_CLAIMED_CALLER"] = "true"  # the posted number is the caller (a trusted test client)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    log = (tmp_path / "serve.log").open("wb")  # a file, not a pipe nobody reads: the server never blocks on it
    server = subprocess.Popen([sys.executable, "-m", "voice.cli", "serve"], env=env, stderr=log, stdout=log)
    try:
        health = _wait_for_health(port, server)
        assert health is not None, (tmp_path / "serve.log").read_text(errors="replace")
        assert health["shop"] == data["shop"]["name"]
        # the README's examples, in another process on the same machine: the default shop and --shop PATH
        cli = [sys.executable, "-m", "voice.cli", "call", "--say", "你好", "--json"]
        quiet = {k: v for k, v in env.items() if k != "IVR_SHOP_FILE"}
        for extra in ([], ["--shop", str(write_shop(other, tmp_path))]):
            done = subprocess.run(cli + extra, env=quiet, capture_output=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr.decode()
        assert _get(port, "/healthz")["shop"] == data["shop"]["name"]
        call = _post(port, "/api/calls", {"caller": calm_customer(data)["phone"]})
        assert call["customer"] is not None  # still the served shop's customers
        stores = list((tmp_path / ".cache" / "ivr").glob("shop-*.sqlite3"))
        assert len(stores) == 3, stores  # the served shop, the sample shop, the other shop: one store each
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
