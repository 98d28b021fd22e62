"""Callbacks the hotline promised (``routing.callbacks``, ``voice.agent_callbacks``): booked when a call
ends with one, listed on the agents' desk, claimed by exactly one agent, closed with notes that go
into the customer's history. A caller with no number to ring is never promised one.

The calls run on every test shop (a real ``CallSession`` with the dialog's rules pinned by ``U``),
the desk through the real app with signed-in agents.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from brain import Script, U
from deskpackets import complainer, entry, packet
from fastapi.testclient import TestClient
from shops import SHOPS, open_test_shop
from test_agent_desk import PASSWORD, sign_in

from core.clock import FixedClock
from core.errors import ConflictError, NotFoundError
from core.settings import Settings
from routing.callbacks import Callback, Callbacks
from voice import agent_desk
from voice.agent_callbacks import book_orphans
from voice.app import create_app
from voice.hotline import open_hotline
from voice.session import CallSession
from voice.transfers import LocalDesk

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
NUMBER = "+8613900139001"  # a stranger's caller ID


def task(call_id: str, priority: int = 3, at: timedelta = timedelta(0), customer: str | None = None) -> Callback:
    summary = ("客户投诉快递一周未动", "已查物流无更新", "要求人工处理")
    return Callback(call_id, NUMBER, customer, "complaint", priority, "客户投诉", summary, "稍后", T0 + at)


# -- the store ----------------------------------------------------------------------------------------


def test_a_booked_callback_waits_for_one_agent_then_is_done(tmp_path: Path) -> None:
    callbacks = Callbacks(tmp_path / "hotline.sqlite3")
    assert callbacks.book(task("c1", priority=3))
    assert not callbacks.book(task("c1", priority=1))  # one per call: booking again keeps the first
    callbacks.book(task("c2", priority=1, at=timedelta(minutes=5)))
    callbacks.book(task("c3", priority=3, at=timedelta(minutes=1)))
    assert [c.call_id for c in callbacks.pending("A01")] == ["c2", "c1", "c3"]  # most urgent, then oldest
    assert callbacks.get("c1").priority == 3 and callbacks.get("c1").summary[0] == "客户投诉快递一周未动"
    claimed = callbacks.claim("c3", "A01", T0)
    assert (claimed.status, claimed.agent_id) == ("claimed", "A01")
    assert callbacks.claim("c3", "A01", T0).status == "claimed"  # claiming one's own again is fine
    with pytest.raises(ConflictError, match="claimed"):
        callbacks.claim("c3", "A02", T0)
    assert [c.call_id for c in callbacks.pending("A01")] == ["c3", "c2", "c1"]  # mine first
    assert [c.call_id for c in callbacks.pending("A02")] == ["c2", "c1"]  # not another agent's
    with pytest.raises(ConflictError, match="claim it first"):
        callbacks.close("c2", "A01", "打过了", T0)
    with pytest.raises(ConflictError):
        callbacks.close("c3", "A02", "打过了", T0)
    closed = callbacks.close("c3", "A01", "客户说快递已到", T0)
    assert (closed.status, closed.notes) == ("done", "客户说快递已到")
    with pytest.raises(ConflictError):
        callbacks.claim("c3", "A01", T0)
    assert callbacks.counts() == {"open": 2, "claimed": 0, "done": 1}
    with pytest.raises(NotFoundError):
        callbacks.claim("nope", "A01", T0)
    assert Callbacks(tmp_path / "hotline.sqlite3").get("c3").status == "done"  # it outlives the process's handle


def test_agents_on_two_servers_claiming_at_once_get_it_once(tmp_path: Path) -> None:
    path = tmp_path / "hotline.sqlite3"
    Callbacks(path).book(task("c1"))
    servers = [Callbacks(path), Callbacks(path)]  # two servers' handles on one database
    won: list[str] = []
    start = threading.Barrier(20)

    def claim(i: int) -> None:
        start.wait()
        try:
            servers[i % 2].claim("c1", f"A{i:02d}", T0)
            won.append(f"A{i:02d}")
        except ConflictError:
            pass

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and Callbacks(path).get("c1").agent_id == won[0]


# -- calls that book one ------------------------------------------------------------------------------


def _call(shop_name: str, tmp_path: Path, caller: str | None) -> tuple[CallSession, Callbacks, Script]:
    shop = open_test_shop(shop_name, tmp_path)
    as_of = shop.info().as_of
    assert as_of is not None
    desk = LocalDesk(shop.agents(), [])  # nobody signed in: a transfer becomes a callback
    callbacks = Callbacks(tmp_path / "hotline.sqlite3")
    script = Script()
    session = CallSession(
        shop, script, FixedClock(as_of.replace(hour=10)), caller=caller, transfers=desk, callbacks=callbacks
    )
    session.greet()
    return session, callbacks, script


def _say(session: CallSession, script: Script, u: object) -> str:
    script.next.append(u)  # type: ignore[arg-type]
    return session.hear_text(u.text).reply  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SHOPS)
def test_a_callback_the_caller_was_promised_is_on_the_desk(name: str, tmp_path: Path) -> None:
    session, callbacks, script = _call(name, tmp_path, NUMBER)
    reply = _say(session, script, U("我要投诉，给我转人工", ("complaint", {}), ("human_agent", {})))
    assert "已为您登记回电" in reply and "转接" not in reply
    outcome = session.end()
    assert outcome.type == "callback"
    (booked,) = callbacks.pending("A01")
    assert (booked.call_id, booked.number, booked.skill, booked.status) == (
        session.call_id,
        NUMBER,
        "complaint",
        "open",
    )
    assert booked.summary == outcome.summary and len(booked.summary) == 3
    assert booked.promised in reply  # what the caller was told, as they heard it


@pytest.mark.parametrize("name", SHOPS)
def test_a_caller_with_no_number_is_asked_to_call_again_not_promised_a_callback(name: str, tmp_path: Path) -> None:
    session, callbacks, script = _call(name, tmp_path, None)
    reply = _say(session, script, U("我要投诉，给我转人工", ("complaint", {}), ("human_agent", {})))
    assert "再打过来" in reply and "登记回电" not in reply and "转接" not in reply
    assert session.state.callback is None and not session.ended  # the bot serves them on
    again = _say(session, script, U("那你给我转人工", ("human_agent", {})))  # tried again: still nobody
    assert "再打过来" in again and "转接" not in again and not session.ended
    outcome = session.end()  # not served: the report says so, with what they wanted
    assert (outcome.type, outcome.skill) == ("abandoned", "complaint") and "无回拨号码" in (outcome.reason or "")
    assert callbacks.pending("A01") == []


@pytest.mark.parametrize("name", SHOPS)
def test_a_caller_queued_once_is_not_queued_again_in_the_same_call(name: str, tmp_path: Path) -> None:
    shop = open_test_shop(name, tmp_path)
    as_of = shop.info().as_of
    assert as_of is not None
    desk = LocalDesk(shop.agents(), [a.id for a in shop.agents()])  # everyone free: the call is offered
    try:
        script = Script()
        session = CallSession(shop, script, FixedClock(as_of.replace(hour=10)), caller=None, transfers=desk)
        session.greet()
        assert "转接" in _say(session, script, U("我要投诉，给我转人工", ("complaint", {}), ("human_agent", {})))
        assert session.placement is not None and session.placement.status == "offered"
        assert "再打过来" in session.no_agent_came()  # nobody answered in time; no number to ring back
        again = _say(session, script, U("那你给我转人工", ("human_agent", {})))
        assert "转接" not in again and "再打过来" in again and not session.ended  # no 转接 nothing stands behind
        assert session.end().type == "abandoned"
    finally:
        desk.close()


# -- the desk -----------------------------------------------------------------------------------------


@pytest.fixture
def desk(tmp_path: Path) -> TestClient:
    hotline = open_hotline(Settings(db_path=tmp_path / "hotline.sqlite3", model_dir=tmp_path, tts_voice="espeak"))
    app = create_app(hotline)
    agent_desk.attach(app, hotline, server="test-server")
    for agent in hotline.shop.agents():
        app.state.accounts.set_password(agent.id, PASSWORD)
    return TestClient(app)


def test_the_desk_lists_callbacks_and_one_agent_makes_each(desk: TestClient) -> None:
    hotline = desk.app.state.hotline  # type: ignore[attr-defined]
    customer, _ = complainer("sample", hotline.shop)
    assert hotline.callbacks.book(task("call-1", customer=customer.id))
    assert desk.get("/agent/api/callbacks").status_code == 401  # signed-in agents only
    first, second = (a.id for a in hotline.shop.agents()[:2])
    mine, theirs = sign_in(desk, first), sign_in(desk, second)
    (listed,) = desk.get("/agent/api/callbacks", headers=mine).json()["callbacks"]
    assert listed["number"] == NUMBER and listed["customer"] == customer.name and listed["status"] == "open"
    assert desk.post("/agent/api/callbacks/call-1/claim", headers=mine).status_code == 200
    taken = desk.post("/agent/api/callbacks/call-1/claim", headers=theirs)
    assert taken.status_code == 409 and "another agent" in taken.json()["error"]
    assert desk.get("/agent/api/callbacks", headers=theirs).json()["callbacks"] == []
    refused = desk.post("/agent/api/callbacks/call-1/done", json={"notes": "x"}, headers=theirs)
    assert refused.status_code == 409
    notes = "已回电：快递已到，客户满意"
    done = desk.post("/agent/api/callbacks/call-1/done", json={"notes": notes}, headers=mine)
    assert done.status_code == 200 and done.json()["recorded"] is True and done.json()["status"] == "done"
    history = hotline.shop.customer(customer.id).history
    assert any(h.summary == notes and h.channel == "agent" for h in history)  # the next call remembers
    assert desk.get("/agent/api/callbacks", headers=mine).json()["callbacks"] == []
    assert desk.post("/agent/api/callbacks/nope/claim", headers=mine).status_code == 404


def test_callers_queued_at_a_dead_server_become_callbacks(tmp_path: Path) -> None:
    hotline = open_hotline(Settings(db_path=tmp_path / "hotline.sqlite3", model_dir=tmp_path, tts_voice="espeak"))
    app = create_app(hotline)
    now = 1_800_000_000.0
    agent_desk.attach(app, hotline, server="B", now=lambda: now)
    with TestClient(app) as client:
        _dead_server(client, app, hotline, now)


def _dead_server(client: TestClient, app: Any, hotline: Any, now: float) -> None:
    store = app.state.store
    customer, _ = complainer("sample", hotline.shop)

    def queued(call_id: str, server: str, channel: str = "phone", caller: str | None = NUMBER) -> None:
        record = {**packet(hotline.shop, customer, call_id), "channel": channel, "caller": caller}
        if caller is None:
            record["customer"] = None  # nobody known, no number: nothing to ring
        client.portal.call(store.save_call, call_id, record, 3600)
        client.portal.call(store.enqueue, entry(call_id, server, now, customer))

    client.portal.call(store.heartbeat, "A", now - 100, 5)  # died 95 s ago
    client.portal.call(store.heartbeat, "C", now - 10, 5)  # silent for 5 s only: maybe a hiccup
    client.portal.call(store.heartbeat, "B", now, 5)
    queued("lost", "A")
    queued("api", "A", channel="api")  # no line to lose: it stays with the agents
    queued("anonymous", "A", caller=None)
    queued("hiccup", "C")
    queued("alive", "B")
    assert client.portal.call(book_orphans, app) == 1
    assert client.portal.call(book_orphans, app) == 0  # once
    (booked,) = hotline.callbacks.pending("A01")
    assert (booked.call_id, booked.number, booked.customer_id) == ("lost", NUMBER, customer.id)
    assert booked.summary and booked.reason
    left = [q.call_id for q in client.portal.call(store.queue)]
    assert sorted(left) == ["alive", "anonymous", "api", "hiccup"]
    assert client.portal.call(store.load_call, "lost")["status"] == "callback"
