"""The agent desk in a real browser: headless Chromium (Debian's, driven by playwright) on the real server.

For each shop (the reference shop, then the embedded sample shop) the agent who takes complaints
best signs in and goes available; the shop's most frequent complainer (chosen by the data: the
customer with the most complaint entries in their history) calls — through the HTTP call API, the
real session, dialog and dispatcher — and complains with words carrying markup. The card must show
the call's three summary lines, the customer and the order number; the caller's words must stay
text. The agent accepts: the call view shows the transcript, history and policy clauses, hears the
caller's audio through the call's bridge while the (fake) microphone reaches the caller, and gets a
live line with its assist clauses. The agent finishes, types wrap-up notes and saves: the customer's
history in the shop's store holds them, and the agent is available again. A second call from that
number is transferred too, and the agent finds the notes in the customer's history on its card.
And a callback: the complainer calls while nobody is signed in and is promised one; the agent signs
in, finds it under 待回电, claims it, notes how it went, and the notes land in the history.

Routes added to the app here stand in for a live call's audio (a bridge, a live line) and show the
stored record, each running on the server's own event loop as the live call would.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deskpackets import complainer, complaint_agents
from fastapi import FastAPI
from liveserver import serve
from paths import REFERENCE_SHOP, missing, shared

from core.settings import Settings
from voice.app import create_app
from voice.bridge import Bridge
from voice.codec import pcm16_bytes
from voice.hotline import Hotline, open_hotline
from voice.live_line import line_of

pytestmark = [pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "desk-password-1"
MARKUP = '<img src=x onerror="window.injected=1">我要投诉<b>快递</b>'
WAIT_MS = 20_000


class Harness:
    """Test routes on the app: what the live call and the integrator do, on the server's loop."""

    def __init__(self, app: FastAPI, shop_name: str) -> None:
        self.app, self.shop_name = app, shop_name
        self.agent_frames: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        app.add_api_route("/test/record/{call_id}", self.record, methods=["GET"])
        app.add_api_route("/test/bridge/{call_id}", self.bridge, methods=["POST"])
        app.add_api_route("/test/bridge/{call_id}", self.frames, methods=["GET"])
        app.add_api_route("/test/line/{call_id}", self.line, methods=["POST"])

    async def record(self, call_id: str) -> dict[str, Any]:
        return dict(await self.app.state.store.load_call(call_id) or {})

    async def bridge(self, call_id: str) -> dict[str, Any]:
        record = await self.app.state.store.load_call(call_id)
        bridge = line_of(self.app).bridges[call_id] = Bridge(call_id, record["agent"])
        self.agent_frames[call_id] = 0
        task = asyncio.create_task(self._talk(bridge))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return {"bridge": call_id}

    async def _talk(self, bridge: Bridge) -> None:
        """Once the agent's page attaches: 3 s of the caller's voice (a tone), and count the agent's frames."""

        async def count() -> None:
            async for _ in bridge.agent_audio():
                self.agent_frames[bridge.call_id] += 1

        counting = asyncio.create_task(count())
        await bridge.connected.wait()
        tone = pcm16_bytes((6000 * np.sin(2 * np.pi * 440 * np.arange(160) / 8000)).astype(np.int16))
        for _ in range(150):
            bridge.from_caller(tone)
            await asyncio.sleep(0.02)
        await counting

    async def frames(self, call_id: str) -> dict[str, Any]:
        return {"agent_frames": self.agent_frames.get(call_id, 0)}

    async def line(self, call_id: str, text: str) -> dict[str, Any]:
        await self.app.state.store.publish(f"call:{call_id}", {"type": "line", "speaker": "caller", "text": text})
        return {"line": text}


@pytest.fixture(params=["reference", "sample"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Hotline, str]]:
    settings = Settings(
        db_path=tmp_path / "hotline.sqlite3", model_dir=tmp_path, tts_voice="espeak", trust_claimed_caller=True
    )
    shop_file = shared(REFERENCE_SHOP) if request.param == "reference" else None
    hotline = open_hotline(settings, shop_file)
    app = create_app(hotline)
    for agent in hotline.shop.agents():
        app.state.accounts.set_password(agent.id, PASSWORD)
    Harness(app, request.param)
    with serve(app) as address:
        yield request.param, hotline, address


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing("Debian chromium missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright missing: .venv/bin/pip install -e '.[dev]'")
    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    ]  # fmt: skip
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), args=args, viewport={"width": 1440, "height": 960}
        )
        try:
            yield context
        finally:
            context.close()


def post(address: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(f"http://{address}{path}", method="POST", data=data)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def call_in(address: str, phone: str, words: str) -> str:
    """A call from ``phone`` through the HTTP call API whose one turn is ``words``: its call id."""
    call_id = str(post(address, "/api/calls", {"caller": phone})["call_id"])
    turn = post(address, f"/api/calls/{call_id}/turns", {"text": words})
    assert "转接" in turn["reply"] and turn["outcome"]["type"] == "transferred", turn
    return call_id


def get(address: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def until(page: Any, condition: str, timeout: float = WAIT_MS) -> None:
    page.wait_for_function(f"() => {condition}", timeout=timeout)


def test_an_agent_takes_a_repeat_complainer_and_their_notes_land_in_the_history(
    desk: tuple[str, Hotline, str], browser: Any, tmp_path: Path
) -> None:
    shop_name, hotline, address = desk
    shop = hotline.shop
    customer, complaints = complainer(shop_name, shop)
    if shop_name == "reference":
        assert complaints >= 2  # the reference shop has a repeat complainer
    else:
        assert complaints >= 1  # the sample shop's most frequent complainer complained once
    agent = complaint_agents(shop)[0]

    page = browser.new_page()
    failures: list[str] = []
    page.on("pageerror", lambda err: failures.append(str(err)))
    page.on("console", lambda msg: failures.append(msg.text) if msg.type == "error" else None)
    page.goto(f"http://{address}/agent")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#agent-id", agent.id)
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    until(page, "document.getElementById('login-error').textContent.length > 0")
    assert page.text_content("#login-error") == "工号或密码不正确"
    failures.clear()  # the browser logs the refused sign-in (401) as a console error
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#desk:not([hidden])")
    assert agent.name in page.text_content("#agent-name")
    until(page, "desk.events.some((e) => e.type === 'hello')")
    page.click("#go-available")
    until(page, "document.getElementById('presence').dataset.presence === 'available'")

    call_id = call_in(address, customer.phone, MARKUP)
    expected = get(address, f"/test/record/{call_id}")
    assert expected["status"] == "offered" and expected["offer"]["agent"] == agent.id
    page.wait_for_selector("#offer:not([hidden])", timeout=WAIT_MS)
    assert page.locator("#offer-summary li").all_text_contents() == expected["summary"]
    newest = expected["orders"][0]["id"]
    assert newest in page.text_content("#offer-orders")
    assert customer.name in page.text_content("#offer-customer")
    assert page.text_content("#offer-reason") == expected["reason"]
    assert 1 <= int(page.text_content("#ring")) <= 20

    page.click("#accept")
    page.wait_for_selector("#call:not([hidden])")
    assert page.evaluate("desk.call.status") == "accepted"
    transcript = page.text_content("#transcript")
    assert MARKUP in transcript  # the caller's words as text
    assert page.locator("#transcript img, #transcript b").count() == 0 and page.evaluate("window.injected") is None
    history = page.locator("#history li").all_text_contents()
    assert len(history) == len(customer.history) and page.locator("#history li.complaint").count() == complaints
    assert newest in page.text_content("#orders")
    if expected["kb"]:
        assert page.locator("#kb li").all_text_contents()[0].startswith(expected["kb"][0]["title"])

    # audio: the caller's voice reaches the page, the agent's (fake) microphone reaches the caller
    post(address, f"/test/bridge/{call_id}")
    until(page, "desk.audio.state === 'on' && desk.audio.received > 8000", timeout=30_000)
    deadline_frames = 10
    for _ in range(100):
        if get(address, f"/test/bridge/{call_id}")["agent_frames"] >= deadline_frames:
            break
        page.wait_for_timeout(200)
    assert get(address, f"/test/bridge/{call_id}")["agent_frames"] >= deadline_frames

    # a live line and its assist clauses
    said = "收到的东西坏了，我要退货退款"
    post(address, f"/test/line/{call_id}?text={urllib.request.quote(said)}")
    until(page, f"desk.lines.some((l) => l.text === {json.dumps(said)})")
    until(page, "desk.assists.length >= 1")
    live_titles = [h.title for h in shop.search_policies(said, 3)]
    assert [t.split("\n")[0] for t in page.locator("#kb li.live .title").all_text_contents()] == live_titles
    page.screenshot(path=str(tmp_path / f"agent-desk-{shop_name}.png"), full_page=True)

    page.click("#finish")
    page.wait_for_selector("#wrapup:not([hidden])")
    until(page, "document.getElementById('presence').dataset.presence === 'wrap_up'")
    notes = f"{customer.name}再次投诉：已登记，承诺 24 小时内回电处理订单 {newest}。"
    page.fill("#notes", notes)
    page.click("#save")
    until(page, "desk.saved.length === 1")
    assert page.evaluate("desk.saved[0].recorded") is True
    until(page, "document.getElementById('presence').dataset.presence === 'available'")
    assert page.locator("#call").is_hidden()

    held = shop.customer(customer.id)
    assert held is not None
    assert [(h.channel, h.complaint) for h in held.history if h.summary == notes] == [("agent", False)]

    # the next call from that number: the agent finds the notes in the customer's history
    again = call_in(address, customer.phone, "东西还是没收到，我要投诉")
    assert again != call_id
    page.wait_for_selector("#offer:not([hidden])", timeout=WAIT_MS)
    page.click("#accept")
    page.wait_for_selector("#call:not([hidden])")
    until(page, f"document.getElementById('history').textContent.includes({json.dumps(notes)})")
    assert failures == []


def test_a_callback_promised_while_nobody_was_free_is_made_from_the_desk(
    desk: tuple[str, Hotline, str], browser: Any
) -> None:
    shop_name, hotline, address = desk
    customer, _ = complainer(shop_name, hotline.shop)
    agent = complaint_agents(hotline.shop)[0]
    call_id = str(post(address, "/api/calls", {"caller": customer.phone})["call_id"])  # nobody signed in yet
    turn = post(address, f"/api/calls/{call_id}/turns", {"text": MARKUP})
    assert "已为您登记回电" in turn["reply"] and not turn["ended"], turn  # promised, and the bot serves on
    assert post(address, f"/api/calls/{call_id}/end")["type"] == "callback"

    page = browser.new_page()
    failures: list[str] = []
    page.on("pageerror", lambda err: failures.append(str(err)))
    page.goto(f"http://{address}/agent")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#agent-id", agent.id)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#callbacks li", timeout=WAIT_MS)
    item = page.locator("#callbacks li").first
    assert customer.phone in item.text_content() and customer.name in item.text_content()
    assert page.text_content("#callbacks-count") == "1"
    assert page.text_content("#queue-count") == "0" and page.is_visible("#queue-empty")  # (nobody queued)
    item.locator("button").click()  # 我来回电
    page.wait_for_selector("#callbacks li.claimed textarea", timeout=WAIT_MS)
    notes = f"已回电，客户问题已解决 <b>{call_id}</b>"
    page.fill("#callbacks li.claimed textarea", notes)
    page.click("#callbacks li.claimed button")  # 已回电
    until(page, "document.querySelectorAll('#callbacks li').length === 0")
    assert page.text_content("#callbacks-count") == "0"
    refreshed = hotline.shop.customer(customer.id)
    assert refreshed is not None and any(h.summary == notes and h.channel == "agent" for h in refreshed.history)
    assert failures == [] and not page.evaluate("window.injected === 1")
