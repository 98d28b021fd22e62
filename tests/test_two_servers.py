"""Two real ``ivr serve`` processes sharing one real Redis (database 15, a key prefix of their own).

- A call arriving at server A is offered to the agent whose desktop is connected to server B, with
  its handoff packet; the agent accepts and writes wrap-up notes on B; the next call from that
  number, again at A, reaches the agent with the notes in the customer's history.
- Server A is killed (SIGKILL) while its caller is queued: the caller's place and handoff packet
  stay in Redis, B's desk lists the call as a callback, and B never offers the dead server's caller
  to an agent as if they were still on the line.
- Failed desk sign-ins at A and at B add up to one lockout of that agent id on both.

The caller speaks through the HTTP text API (``IVR_TRUST_CLAIMED_CALLER`` so the number counts as
caller ID): the same ``CallSession``, dispatcher and live store a phone call uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
import websockets
from deskpackets import complainer, complaint_agents
from paths import REFERENCE_SHOP, missing, shared
from test_serve import free_port

from core.shop import Agent, Customer
from routing.store_redis import RedisStore
from shop.importer import load_snapshot
from shop.store import SqliteShop, import_snapshot

pytestmark = [pytest.mark.slow]

REDIS = "redis://127.0.0.1:6379/15"
PASSWORD = "two-servers-1"


class Server:
    """``ivr serve`` in a subprocess with its own port and server id."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name, self.port = name, free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        environ.update(env, IVR_PORT=str(self.port), IVR_SERVER_ID=name)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voice.cli", "serve"], env=environ, stderr=subprocess.PIPE, text=True
        )
        self.cookie = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        if self.cookie:
            req.add_header("cookie", self.cookie)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                cookie = resp.headers.get("set-cookie")
                if cookie:
                    jar = SimpleCookie(cookie)
                    self.cookie = "; ".join(f"{k}={v.value}" for k, v in jar.items())
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def wait_up(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server {self.name} exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            try:
                self.call("GET", "/healthz")
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"server {self.name} did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def _redis_or_skip() -> None:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        missing("Redis is not reachable at 127.0.0.1:6379 (apt-get install redis-server)")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    _redis_or_skip()
    prefix = f"test-two-{uuid.uuid4().hex[:8]}:"
    db = tmp_path / "hotline.sqlite3"
    shop_file = shared(REFERENCE_SHOP)
    environ = {
        "HOME": str(tmp_path), "IVR_DB_PATH": str(db), "IVR_SHOP_FILE": str(shop_file), "IVR_REDIS_URL": REDIS,
        "IVR_REDIS_PREFIX": prefix, "IVR_TRUST_CLAIMED_CALLER": "true", "IVR_MODEL_INSTALL": "false",
        "IVR_TTS_VOICE": "espeak", "IVR_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    yield environ
    asyncio.run(_delete_keys(prefix))


async def _delete_keys(prefix: str) -> None:
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(REDIS)
    keys = [key async for key in raw.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


def set_password(env: dict[str, str], agent_id: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "voice.cli", "agents", "passwd", agent_id, "--stdin"],
        input=PASSWORD + "\n", env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def reference_shop(tmp_path: Path) -> SqliteShop:
    import_snapshot(tmp_path / "read.sqlite3", load_snapshot(shared(REFERENCE_SHOP)))
    return SqliteShop(tmp_path / "read.sqlite3")


@contextmanager
def two_servers(env: dict[str, str]) -> Iterator[tuple[Server, Server]]:
    a, b = Server("A", env), Server("B", env)
    try:
        a.wait_up()
        b.wait_up()
        yield a, b
    finally:
        a.stop()
        b.stop()


def the_complainer(env: dict[str, str], tmp_path: Path) -> tuple[SqliteShop, Customer, int, Agent]:
    """The reference shop's repeat complainer and the best complaint agent (with a desk password)."""
    shop = reference_shop(tmp_path)
    customer, complaints = complainer("reference", shop)
    agent = complaint_agents(shop)[0]
    set_password(env, agent.id)
    return shop, customer, complaints, agent


def sign_in(server: Server, agent_id: str, presence: str) -> None:
    status, body = server.call("POST", "/agent/login", {"agent_id": agent_id, "password": PASSWORD})
    assert status == 200, body
    status, body = server.call("POST", "/agent/api/presence", {"presence": presence})
    assert status == 200, body


def complain(server: Server, phone: str, text: str = "我要投诉，你们太不负责了") -> tuple[str, dict[str, Any]]:
    status, started = server.call("POST", "/api/calls", {"caller": phone})
    assert status == 201, started
    call_id = started["call_id"]
    status, turn = server.call("POST", f"/api/calls/{call_id}/turns", {"text": text})
    assert status == 200, turn
    return call_id, turn


async def next_offer(server: Server, seconds: float = 20.0) -> dict[str, Any]:
    """The next ``offer`` pushed to the agent's desktop socket on ``server``."""
    url = f"ws://127.0.0.1:{server.port}/agent/ws"
    async with websockets.connect(url, additional_headers={"cookie": server.cookie}) as ws:
        deadline = time.monotonic() + seconds
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
            if message.get("type") == "offer":
                return message["call"]  # type: ignore[no-any-return]


def test_a_call_at_server_a_reaches_the_agent_at_server_b_and_is_remembered(
    env: dict[str, str], tmp_path: Path
) -> None:
    shop, customer, complaints, agent = the_complainer(env, tmp_path)
    with two_servers(env) as (a, b):
        sign_in(b, agent.id, "available")

        async def first() -> tuple[str, dict[str, Any], dict[str, Any]]:
            offer = asyncio.ensure_future(next_offer(b))
            await asyncio.sleep(0.5)  # the desk's socket is open
            call_id, turn = await asyncio.to_thread(complain, a, customer.phone)
            return call_id, turn, await offer

        call_id, turn, record = asyncio.run(first())
        assert "转接" in turn["reply"]
        assert record["call_id"] == call_id and record["customer"]["id"] == customer.id
        assert len(record["summary"]) == 3 and record["skill"] == "complaint"
        assert {o["id"] for o in record["orders"]} >= {o.id for o in shop.orders_for_customer(customer.id)[:1]}
        assert sum(1 for h in record["customer"]["history"] if h["complaint"]) == complaints
        status, accepted = b.call("POST", f"/agent/api/calls/{call_id}/accept")
        assert status == 200, accepted
        notes = f"跨服务器回访记录 {uuid.uuid4().hex[:6]}"
        status, body = b.call("POST", f"/agent/api/calls/{call_id}/wrapup", {"notes": notes})
        assert status == 200, body
        status, body = b.call("POST", "/agent/api/presence", {"presence": "available"})
        assert status == 200, body

        async def second() -> dict[str, Any]:
            offer = asyncio.ensure_future(next_offer(b))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(complain, a, customer.phone, "还是没解决，我要投诉")
            return await offer

        again = asyncio.run(second())
        assert notes in [h["summary"] for h in again["customer"]["history"]]  # the next call remembers


def test_a_server_killed_while_its_caller_is_queued_loses_neither_place_nor_packet(
    env: dict[str, str], tmp_path: Path
) -> None:
    _, customer, _, agent = the_complainer(env, tmp_path)
    with two_servers(env) as (a, b):
        sign_in(b, agent.id, "wrap_up")  # signed in, not yet free: the caller is queued
        call_id, turn = complain(a, customer.phone)
        assert "转接" in turn["reply"] and "第一位" in turn["reply"]
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        time.sleep(7)  # past the dead server's heartbeat

        status, body = b.call("GET", "/agent/api/queue")
        assert status == 200, body
        waiting = {entry["call_id"]: entry for entry in body["queue"]}
        assert call_id in waiting and waiting[call_id]["callback"]  # still in line, as a callback now
        assert waiting[call_id]["summary"]

        sign_in(b, agent.id, "available")
        time.sleep(3)  # several dispatch passes on B
        record = asyncio.run(_record(env["IVR_REDIS_PREFIX"], call_id))
        assert record is not None and record["status"] == "queued"  # never offered: the caller is gone
        assert record["customer"]["id"] == customer.id and len(record["summary"]) == 3 and record["transcript"]
        status, body = b.call("GET", "/agent/api/queue")
        assert call_id in {entry["call_id"] for entry in body["queue"]}


def test_failed_sign_ins_on_both_servers_add_up_to_one_lockout(env: dict[str, str], tmp_path: Path) -> None:
    agent = complaint_agents(reference_shop(tmp_path))[0]
    set_password(env, agent.id)
    guess = {"agent_id": agent.id, "password": "guess-guess"}
    with two_servers(env) as (a, b):
        for server in (a, b, a, b):
            assert server.call("POST", "/agent/login", guess)[0] == 401
        assert b.call("POST", "/agent/login", guess)[0] == 401  # the fifth, counted across both servers
        for server in (a, b):  # locked everywhere, even with the right password
            status, body = server.call("POST", "/agent/login", {"agent_id": agent.id, "password": PASSWORD})
            assert status == 429 and body["retryable"] is True, body


async def _record(prefix: str, call_id: str) -> Any:
    store = RedisStore(REDIS, prefix)
    try:
        return await store.load_call(call_id)
    finally:
        await store.close()
