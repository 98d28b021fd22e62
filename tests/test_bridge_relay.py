"""A transferred call's audio between two servers: the caller's bridge on "server A", the agent's
page on "server B" (the real app with its agent desk), the live store between them.

Server B is the app under ``TestClient``; server A is what it runs for a bridged call: a ``Bridge``
and its ``CallerSide`` relay, on the same event loop with a store of its own on the same state
(``MemoryStore``: the very same one; Redis: a second ``RedisStore``, database 15, a fresh prefix,
its keys deleted afterwards). Checked: caller audio reaches the page, the page's microphone reaches
A's ``bridge.agent_audio()`` in 20 ms frames at 8 kHz, A's ``connected`` follows the page coming and
going, a second page is refused, the call ending closes the page, and no answer means "try again".
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deskpackets import complainer, complaint_agents, entry, packet, take_frames
from fastapi import FastAPI
from fastapi.testclient import TestClient
from paths import REFERENCE_SHOP, missing, shared
from starlette.websockets import WebSocketDisconnect
from test_routing_store import REDIS_URL, _delete_keys, _redis_down, _skip_without_redis

from core.settings import Settings
from routing.store import LiveStore, MemoryStore
from routing.store_redis import RedisStore
from voice import agent_desk, bridge_relay
from voice.agent_desk import COOKIE
from voice.app import create_app
from voice.bridge import FRAME_BYTES, Bridge
from voice.bridge_relay import CallerSide
from voice.hotline import open_hotline

PASSWORD = "relay-password-1"
SERVER_A, SERVER_B = "server-a", "server-b"
NOW = 1_800_000_000.0
_calls = itertools.count(1)


@dataclass
class TwoServers:
    client: TestClient  # server B: the agent's desk and audio socket
    app: FastAPI
    store_a: LiveStore  # server A's handle on the live store

    def call(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the app's event loop (where server A's side runs too)."""
        assert self.client.portal is not None
        return self.client.portal.call(fn, *args)


@pytest.fixture(params=["memory", pytest.param("redis", marks=_skip_without_redis())])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TwoServers]:
    if request.param == "redis" and (why := _redis_down()):
        missing(why)
    prefix = f"test:relay:{uuid.uuid4().hex}:"
    store_b: LiveStore = MemoryStore() if request.param == "memory" else RedisStore(REDIS_URL, prefix)
    store_a: LiveStore = store_b if request.param == "memory" else RedisStore(REDIS_URL, prefix)
    hotline = open_hotline(
        Settings(db_path=tmp_path / "hotline.sqlite3", model_dir=tmp_path, tts_voice="espeak"),
        shared(REFERENCE_SHOP),
    )
    app = create_app(hotline)
    agent_desk.attach(app, hotline, store=store_b, server=SERVER_B, now=lambda: NOW)
    for agent in hotline.shop.agents():
        app.state.accounts.set_password(agent.id, PASSWORD)
    try:
        with TestClient(app) as client:
            world = TwoServers(client, app, store_a)
            world.call(store_a.heartbeat, SERVER_A, NOW, 1e6)  # server A is alive
            yield world
            if store_a is not store_b:
                world.call(store_a.close)
    finally:
        if request.param == "redis":
            asyncio.run(_delete_keys(prefix))


def accepted_call(w: TwoServers) -> tuple[str, str, dict[str, str], str]:
    """A call held by server A, accepted by an agent signed in at server B: (call, agent, their
    cookie headers, the call stream's id of the accept)."""
    shop = w.app.state.hotline.shop
    agent_id = complaint_agents(shop)[0].id
    response = w.client.post("/agent/login", json={"agent_id": agent_id, "password": PASSWORD})
    assert response.status_code == 200, response.text
    headers = {"Cookie": f"{COOKIE}={response.cookies[COOKIE]}"}
    w.client.cookies.clear()
    assert w.client.post("/agent/api/presence", json={"presence": "available"}, headers=headers).status_code == 200
    customer, _ = complainer("reference", shop)
    call_id = f"relay-call-{next(_calls)}"
    queued = entry(call_id, SERVER_A, NOW, customer, "complaint")
    placement = w.call(w.app.state.dispatcher.request, queued, packet(shop, customer, call_id, "complaint"))
    assert placement.status == "offered" and placement.agent.id == agent_id
    assert w.client.post(f"/agent/api/calls/{call_id}/accept", headers=headers).status_code == 200
    events = w.call(w.store_a.read, f"call:{call_id}")
    after = next(i for i, e in events if e["type"] == "accepted")
    return call_id, agent_id, headers, after


async def gave_up(store: LiveStore, call_id: str, after: str) -> None:
    """Until B's ``agent_audio_closed`` for the ask it stopped waiting on is in the call stream."""
    for _ in range(100):
        events = await store.read(f"call:{call_id}", after, timeout_s=0.1)
        if any(e.get("type") == "agent_audio_closed" for _, e in events):
            return
    raise AssertionError("B never said it stopped waiting")


async def hold(store: LiveStore, call_id: str, agent_id: str, after: str) -> tuple[Bridge, CallerSide]:
    """What server A's live call does on the accept: a bridge for the agent, and its relay."""
    bridge = Bridge(call_id, agent_id)
    side = CallerSide(store, bridge, after=after, now=lambda: NOW)
    side.start()
    return bridge, side


async def connected(bridge: Bridge, expected: bool) -> bool:
    for _ in range(250):
        if bridge.connected.is_set() == expected:
            return True
        await asyncio.sleep(0.02)
    return False


async def feed_caller(bridge: Bridge, pcm: bytes) -> None:
    bridge.from_caller(pcm)


async def end_call(bridge: Bridge, side: CallerSide) -> None:
    bridge.close()
    await side.stop()


def closed_with(ws: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_bytes()
    return closed.value.code


def test_the_agents_page_on_b_talks_with_the_caller_on_a(servers: TwoServers) -> None:
    w = servers
    call_id, agent_id, headers, after = accepted_call(w)
    assert agent_desk.bridge_of(w.app, call_id) is None  # server B holds no bridge of this call
    bridge, side = w.call(hold, w.store_a, call_id, agent_id, after)
    with w.client.websocket_connect(f"/agent/audio/{call_id}?rate=16000", headers=headers) as ws:
        assert w.call(connected, bridge, True)  # A learnt that the page attached
        assert side.remote
        caller = [bytes([i, 0x80]) * 160 for i in range(5)]  # 20 ms chunks of the caller at 8 kHz
        for chunk in caller:
            w.call(feed_caller, bridge, chunk)
        assert [ws.receive_bytes() for _ in caller] == caller  # as they came, in order
        ws.send_bytes(b"\x10\x00" * 320 * 10)  # 200 ms of the agent's microphone at 16 kHz
        frames = w.call(take_frames, bridge, 8)
        assert len(frames) == 8 and all(len(f) == FRAME_BYTES for f in frames)  # 8 kHz, 20 ms each
        with w.client.websocket_connect(f"/agent/audio/{call_id}", headers=headers) as second:
            assert closed_with(second) == agent_desk.CLOSE_TAKEN  # one page carries a call's audio
        assert bridge.connected.is_set()
    assert w.call(connected, bridge, False)  # the page closed: A sees it as for a local page
    assert not side.remote

    with w.client.websocket_connect(f"/agent/audio/{call_id}", headers=headers) as ws:  # the page comes back
        assert w.call(connected, bridge, True)
        w.call(feed_caller, bridge, b"\x01\x02" * 80)
        assert ws.receive_bytes() == b"\x01\x02" * 80
        w.call(end_call, bridge, side)  # the call is over on A
        assert closed_with(ws) == 1000  # the page is told, as by a local bridge


def test_no_answer_from_the_callers_server_tells_the_page_to_try_again(
    servers: TwoServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = servers
    monkeypatch.setattr(bridge_relay, "ANSWER_WAIT_S", 0.3)
    call_id, agent_id, headers, after = accepted_call(w)
    with w.client.websocket_connect(f"/agent/audio/{call_id}", headers=headers) as ws:  # A has no bridge yet
        assert closed_with(ws) == agent_desk.CLOSE_NO_AUDIO
    w.call(gave_up, w.store_a, call_id, after)  # B said it stopped waiting (before A's bridge: this test's case)
    bridge, side = w.call(hold, w.store_a, call_id, agent_id, after)  # (the ask B gave up is not answered)
    with w.client.websocket_connect(f"/agent/audio/{call_id}?rate=8000", headers=headers) as ws:  # the retry
        assert w.call(connected, bridge, True)
        ws.send_bytes(b"\x00\x00" * 160)  # 20 ms at 8 kHz
        assert w.call(take_frames, bridge, 1) == [b"\x00\x00" * 160]
    assert w.call(connected, bridge, False)
    w.call(end_call, bridge, side)


def test_a_caller_whose_server_is_gone_has_no_audio_to_relay(servers: TwoServers) -> None:
    w = servers
    call_id, _, headers, _ = accepted_call(w)
    w.call(w.store_a.heartbeat, SERVER_A, NOW - 10, 1.0)  # A's last heartbeat ran out
    with w.client.websocket_connect(f"/agent/audio/{call_id}", headers=headers) as ws:
        assert closed_with(ws) == agent_desk.CLOSE_NO_AUDIO
