"""The agent desk's HTTP API and sockets on the real app (reference shop, in-process live store).

Sign-in (cookie flags, only the token's hash stored, lockout on a clock the test moves), every route
refusing an unsigned request (401) and another agent's call (403), presence through the dispatcher,
accept and decline, wrap-up notes landing in the customer's history in the shop's store, the queue
with callbacks, and the desk socket delivering an offer, the live transcript and assist clauses,
and the audio socket carrying PCM both ways through the call's bridge.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskpackets import complainer, complaint_agents, entry, packet, take_frames
from fastapi import FastAPI
from fastapi.testclient import TestClient
from paths import REFERENCE_SHOP, shared
from starlette.websockets import WebSocketDisconnect

from core.settings import Settings
from voice import agent_desk
from voice.agent_desk import COOKIE
from voice.app import create_app
from voice.bridge import FRAME_BYTES, Bridge
from voice.hotline import Hotline, open_hotline
from voice.live_line import line_of

PASSWORD = "desk-password-1"
_calls = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def hotline(tmp_path: Path) -> Hotline:
    settings = Settings(db_path=tmp_path / "hotline.sqlite3", model_dir=tmp_path, tts_voice="espeak")
    return open_hotline(settings, shared(REFERENCE_SHOP))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(hotline: Hotline, clock: Clock) -> FastAPI:
    app = create_app(hotline)
    agent_desk.attach(app, hotline, server="test-server", now=clock)  # the desk on the test's clock
    for agent in hotline.shop.agents():
        app.state.accounts.set_password(agent.id, PASSWORD)
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def sign_in(client: TestClient, agent_id: str, password: str = PASSWORD) -> dict[str, str]:
    """Headers carrying the agent's session cookie (the client's own jar is kept empty: several agents)."""
    response = client.post("/agent/login", json={"agent_id": agent_id, "password": password})
    assert response.status_code == 200, response.text
    token = response.cookies[COOKIE]
    client.cookies.clear()
    return {"Cookie": f"{COOKIE}={token}"}


def transfer(client: TestClient, app: FastAPI, skill: str = "complaint", server: str | None = None) -> tuple[str, Any]:
    """A transfer of the shop's most frequent complainer, requested through the app's dispatcher."""
    shop = app.state.hotline.shop
    customer, _ = complainer("reference", shop)
    call_id = f"call-{next(_calls)}"
    queued = entry(call_id, server or app.state.desk.server, app.state.desk.now(), customer, skill)
    placement = client.portal.call(app.state.dispatcher.request, queued, packet(shop, customer, call_id, skill))
    return call_id, placement


def available(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post("/agent/api/presence", json={"presence": "available"}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_every_desk_route_refuses_an_unsigned_request(client: TestClient) -> None:
    for method, path, body in [
        ("GET", "/agent/api/me", None),
        ("GET", "/agent/api/queue", None),
        ("POST", "/agent/api/presence", {"presence": "available"}),
        ("GET", "/agent/api/calls/x", None),
        ("POST", "/agent/api/calls/x/accept", None),
        ("POST", "/agent/api/calls/x/decline", None),
        ("POST", "/agent/api/calls/x/finish", None),
        ("POST", "/agent/api/calls/x/wrapup", {"notes": "n"}),
        ("POST", "/agent/logout", None),
    ]:
        response = client.request(method, path, json=body)
        assert response.status_code == 401, (path, response.text)
        assert response.json() == {"error": "not signed in", "retryable": False}
    forged = {"Cookie": f"{COOKIE}=not-a-session"}
    assert client.get("/agent/api/me", headers=forged).status_code == 401
    for path in ("/agent/ws", "/agent/audio/x"):
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(path, headers=forged):
            pass
    page = client.get("/agent")  # the page itself is public: it shows the sign-in form
    assert (
        page.status_code == 200
        and "坐席登录" in page.text
        and "default-src 'self'" in page.headers["content-security-policy"]
    )


def test_sign_in_sets_a_strict_http_only_cookie_and_stores_only_its_hash(client: TestClient, app: FastAPI) -> None:
    response = client.post("/agent/login", json={"agent_id": "A02", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["id"] == "A02" and response.json()["presence"] == "offline"
    cookie = response.headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=strict", "Path=/agent", "Max-Age=43200"):
        assert flag.lower() in cookie.lower(), cookie
    token = response.cookies[COOKIE]
    assert len(token) >= 40
    sessions = app.state.store._sessions
    assert token not in sessions and hashlib.sha256(token.encode()).hexdigest() in sessions
    me = client.get("/agent/api/me")  # the client's jar carries the cookie
    assert me.status_code == 200 and me.json()["name"] == "小周"
    assert client.post("/agent/logout").status_code == 200
    assert client.get("/agent/api/me", headers={"Cookie": f"{COOKIE}={token}"}).status_code == 401  # closed


def test_wrong_passwords_and_unknown_ids_are_refused_alike(client: TestClient) -> None:
    wrong = client.post("/agent/login", json={"agent_id": "A02", "password": "not-the-password"})
    unknown = client.post("/agent/login", json={"agent_id": "Z99", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "wrong agent id or password", "retryable": False}
    assert COOKIE not in wrong.cookies and COOKIE not in unknown.cookies


def test_five_failures_lock_the_id_for_a_minute(client: TestClient, clock: Clock) -> None:
    for _ in range(5):
        assert client.post("/agent/login", json={"agent_id": "A01", "password": "guess-guess"}).status_code == 401
    locked = client.post("/agent/login", json={"agent_id": "A01", "password": PASSWORD})
    assert locked.status_code == 429 and locked.json()["retryable"] is True and "60 s" in locked.json()["error"]
    assert client.post("/agent/login", json={"agent_id": "A03", "password": PASSWORD}).status_code == 200  # per id
    for _ in range(10):  # guessing ids nobody has locks nothing and fills nothing
        client.post("/agent/login", json={"agent_id": "Z99", "password": "guess-guess"})
    clock.t += 59
    assert client.post("/agent/login", json={"agent_id": "A01", "password": PASSWORD}).status_code == 429
    clock.t += 2
    assert client.post("/agent/login", json={"agent_id": "A01", "password": PASSWORD}).status_code == 200


def test_presence_is_recorded_with_the_server_and_drives_the_dispatcher(client: TestClient, app: FastAPI) -> None:
    best = complaint_agents(app.state.hotline.shop)[0].id
    headers = sign_in(client, best)
    me = available(client, headers)
    assert me["presence"] == "available" and me["server"] == "test-server"
    call_id, placement = transfer(client, app)
    assert placement.status == "offered" and placement.agent.id == best
    me = client.get("/agent/api/me", headers=headers).json()
    assert me["presence"] == "busy" and me["calls"] == [call_id]  # the line is reserved while it rings
    off = client.post("/agent/api/presence", json={"presence": "offline"}, headers=headers).json()
    assert off["presence"] == "offline" and off["calls"] == []  # the ringing offer went back to the queue
    record = client.portal.call(app.state.store.load_call, call_id)
    assert record["status"] == "queued"
    bad = client.post("/agent/api/presence", json={"presence": "busy"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["retryable"] is False


def test_a_call_is_shown_only_to_the_agent_it_rings_for(client: TestClient, app: FastAPI) -> None:
    first, second = (a.id for a in complaint_agents(app.state.hotline.shop)[:2])
    mine, theirs = sign_in(client, first), sign_in(client, second)
    available(client, mine)
    call_id, _ = transfer(client, app)
    record = client.get(f"/agent/api/calls/{call_id}", headers=mine)
    assert record.status_code == 200 and record.json()["offer"]["agent"] == first
    assert record.json()["summary"][1].startswith("涉及订单")
    for method, path in [
        ("GET", f"/agent/api/calls/{call_id}"),
        ("POST", f"/agent/api/calls/{call_id}/accept"),
        ("POST", f"/agent/api/calls/{call_id}/decline"),
        ("POST", f"/agent/api/calls/{call_id}/wrapup"),
    ]:
        response = client.request(method, path, headers=theirs, json={"notes": "x"} if "wrapup" in path else None)
        assert response.status_code == 403, (path, response.text)
    assert client.get("/agent/api/calls/no-such-call", headers=mine).status_code == 404
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(f"/agent/audio/{call_id}", headers=theirs):
        pass


def test_decline_goes_to_the_next_agent_who_accepts_and_wraps_up_into_the_history(
    client: TestClient, app: FastAPI
) -> None:
    shop = app.state.hotline.shop
    first, second = (a.id for a in complaint_agents(shop)[:2])
    mine, theirs = sign_in(client, first), sign_in(client, second)
    available(client, mine)
    available(client, theirs)
    call_id, placement = transfer(client, app)
    assert placement.agent.id == first  # the highest complaint level first
    assert client.post(f"/agent/api/calls/{call_id}/decline", headers=mine).status_code == 200
    assert client.get(f"/agent/api/calls/{call_id}", headers=mine).status_code == 403  # not theirs any more
    record = client.get(f"/agent/api/calls/{call_id}", headers=theirs).json()
    assert record["status"] == "offered" and record["offer"]["agent"] == second
    assert client.post(f"/agent/api/calls/{call_id}/accept", headers=mine).status_code == 403
    accepted = client.post(f"/agent/api/calls/{call_id}/accept", headers=theirs)
    assert (
        accepted.status_code == 200 and accepted.json()["status"] == "accepted" and accepted.json()["agent"] == second
    )
    assert client.post(f"/agent/api/calls/{call_id}/accept", headers=theirs).status_code == 409  # once

    customer_id = record["customer"]["id"]
    before = len(shop.customer(customer_id).history)
    notes = "客户第三次投诉包裹破损：已补发新件并赔付 20 元，三天内回访。"
    done = client.post(f"/agent/api/calls/{call_id}/wrapup", json={"notes": notes}, headers=theirs)
    assert done.status_code == 200 and done.json()["recorded"] is True
    assert done.json()["me"]["presence"] == "wrap_up" and done.json()["me"]["calls"] == []
    history = shop.customer(customer_id).history
    assert len(history) == before + 1
    assert [(h.channel, h.summary, h.complaint) for h in history if h.summary == notes] == [("agent", notes, False)]
    assert available(client, theirs)["presence"] == "available"
    too_long = client.post(f"/agent/api/calls/{call_id}/wrapup", json={"notes": "长" * 2001}, headers=theirs)
    assert too_long.status_code == 422


def test_the_queue_lists_waiting_callers_and_marks_a_dead_servers_as_callbacks(
    client: TestClient, app: FastAPI
) -> None:
    headers = sign_in(client, complaint_agents(app.state.hotline.shop)[0].id)
    client.post("/agent/api/presence", json={"presence": "wrap_up"}, headers=headers)  # on duty, not free
    live_call, placement = transfer(client, app)
    gone_call, _ = transfer(client, app, server="a-server-that-died")
    assert placement.status == "queued"
    waiting = {e["call_id"]: e for e in client.get("/agent/api/queue", headers=headers).json()["queue"]}
    assert set(waiting) == {live_call, gone_call}
    assert waiting[live_call]["callback"] is False and waiting[gone_call]["callback"] is True
    record = client.portal.call(app.state.store.load_call, live_call)
    assert waiting[live_call]["summary"] == record["summary"][0] and waiting[live_call]["skill"] == "complaint"


def receive_until(ws: Any, kind: str, limit: int = 20) -> dict[str, Any]:
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind:
            return message  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind!r} message in {limit}")


def test_the_desk_socket_delivers_the_offer_then_the_live_transcript_and_assist(
    client: TestClient, app: FastAPI
) -> None:
    agent_id = complaint_agents(app.state.hotline.shop)[0].id
    headers = sign_in(client, agent_id)
    available(client, headers)
    with client.websocket_connect("/agent/ws", headers=headers) as ws:
        assert ws.receive_json()["type"] == "hello"
        call_id, _ = transfer(client, app)
        offer = receive_until(ws, "offer")
        assert offer["call"]["call_id"] == call_id and offer["call"]["summary"][0].endswith("要求人工处理")
        assert offer["call"]["orders"] and 0 < offer["ring_s"] <= 20
        store = app.state.store
        client.portal.call(store.publish, f"call:{call_id}", {"type": "line", "speaker": "caller", "text": "喂？"})
        assert client.post(f"/agent/api/calls/{call_id}/accept", headers=headers).status_code == 200
        assert receive_until(ws, "accepted")["call_id"] == call_id
        said_while_ringing = receive_until(ws, "line")
        assert said_while_ringing["text"] == "喂？"
        receive_until(ws, "assist")
        line = {"type": "line", "speaker": "caller", "text": "我要退货，七天无理由可以吗"}
        client.portal.call(store.publish, f"call:{call_id}", line)
        assert receive_until(ws, "line")["text"] == line["text"]
        assist = receive_until(ws, "assist")
        titles = [c["title"] for c in assist["clauses"]]
        expected = [h.title for h in app.state.hotline.shop.search_policies(line["text"], 3)]
        assert titles == expected and titles and all(c["text"] for c in assist["clauses"])
        client.portal.call(app.state.dispatcher.cancel, call_id, "caller_hung_up")
        assert receive_until(ws, "cancel")["why"] == "caller_hung_up"
    me = client.get("/agent/api/me", headers=headers).json()
    assert me["presence"] == "wrap_up"  # the caller hung up on the agent: wrap-up, the page closing keeps it


def test_a_ringing_offer_made_before_the_page_connected_is_shown_on_connect(client: TestClient, app: FastAPI) -> None:
    agent_id = complaint_agents(app.state.hotline.shop)[0].id
    headers = sign_in(client, agent_id)
    available(client, headers)
    call_id, _ = transfer(client, app)
    with client.websocket_connect("/agent/ws", headers=headers) as ws:
        assert ws.receive_json()["type"] == "hello"
        assert ws.receive_json()["call"]["call_id"] == call_id
    assert client.get("/agent/api/me", headers=headers).json()["presence"] == "busy"  # still ringing for them


def test_closing_the_last_desk_page_takes_an_available_agent_offline(client: TestClient, app: FastAPI) -> None:
    headers = sign_in(client, "A01")
    available(client, headers)
    with client.websocket_connect("/agent/ws", headers=headers) as ws:
        assert ws.receive_json()["me"]["presence"] == "available"
    assert client.get("/agent/api/me", headers=headers).json()["presence"] == "offline"


def test_the_audio_socket_carries_pcm_both_ways_for_the_agent_on_the_call(client: TestClient, app: FastAPI) -> None:
    agent_id = complaint_agents(app.state.hotline.shop)[0].id
    headers = sign_in(client, agent_id)
    available(client, headers)
    call_id, _ = transfer(client, app)
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(f"/agent/audio/{call_id}", headers=headers):
        pass  # ringing, not accepted yet: refused
    assert client.post(f"/agent/api/calls/{call_id}/accept", headers=headers).status_code == 200
    with client.websocket_connect(f"/agent/audio/{call_id}", headers=headers) as ws:  # no bridge yet
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
        assert closed.value.code == agent_desk.CLOSE_NO_AUDIO
    line_of(app).bridges[call_id] = client.portal.call(make_bridge, call_id, "another-agent")
    with client.websocket_connect(f"/agent/audio/{call_id}", headers=headers) as ws:  # a bridge for someone else
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
        assert closed.value.code == agent_desk.CLOSE_NO_AUDIO
    bridge = client.portal.call(make_bridge, call_id, agent_id)
    line_of(app).bridges[call_id] = bridge
    with client.websocket_connect(f"/agent/audio/{call_id}?rate=16000", headers=headers) as ws:
        caller = bytes(range(256)) * 2
        client.portal.call(feed_caller, bridge, caller)
        assert ws.receive_bytes() == caller
        assert bridge.connected.is_set()
        ws.send_bytes(b"\x10\x00" * 320 * 10)  # 200 ms of the agent's microphone at 16 kHz
        frames = client.portal.call(take_frames, bridge, 8)
        assert len(frames) == 8 and all(len(f) == FRAME_BYTES for f in frames)
        with client.websocket_connect(f"/agent/audio/{call_id}", headers=headers) as second:
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_bytes()
            assert closed.value.code == agent_desk.CLOSE_TAKEN  # one page carries a call's audio
        client.portal.call(close_bridge, bridge)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
        assert closed.value.code == 1000  # the call ended: the socket closes


async def make_bridge(call_id: str, agent_id: str) -> Bridge:
    return Bridge(call_id, agent_id)  # made on the app's loop, as the live call makes it


async def feed_caller(bridge: Bridge, pcm: bytes) -> None:
    bridge.from_caller(pcm)


async def close_bridge(bridge: Bridge) -> None:
    bridge.close()


def test_an_offer_nobody_answers_rings_out_and_the_page_is_told(client: TestClient, app: FastAPI, clock: Clock) -> None:
    """The desk's lifespan runs the dispatcher's passes: this server is alive, and offers ring out."""
    assert "test-server" in client.portal.call(app.state.store.servers_alive, clock())
    agent_id = complaint_agents(app.state.hotline.shop)[0].id
    headers = sign_in(client, agent_id)
    available(client, headers)
    with client.websocket_connect("/agent/ws", headers=headers) as ws:
        assert ws.receive_json()["type"] == "hello"
        call_id, _ = transfer(client, app)
        assert receive_until(ws, "offer")["call"]["call_id"] == call_id
        clock.t += app.state.dispatcher.ring_s + 1  # the next pass (within a second) finds it rung out
        assert receive_until(ws, "cancel") == {"type": "cancel", "call_id": call_id, "why": "no_answer"}
    record = client.portal.call(app.state.store.load_call, call_id)
    assert record["status"] == "queued" and agent_id in record["entry"]
