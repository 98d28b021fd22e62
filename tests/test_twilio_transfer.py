"""The agent's leg on Twilio: conference TwiML, the two REST requests as the twilio library sends them
(to a loopback server standing in for api.twilio.com), Twilio's errors, and the signed webhooks.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from deskpackets import complainer, complaint_agents, entry, packet
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator
from twiliosim import TwilioLoopback

from core.errors import ConfigError
from core.settings import Settings
from routing.store import Presence
from voice.app import create_app
from voice.hold_audio import hold_wav
from voice.hotline import open_hotline
from voice.twilio_routes import calls_of
from voice.twilio_transfer import (
    AgentLegError,
    AgentLegResult,
    TwilioLegs,
    call_of,
    conference_twiml,
    dial_agent,
    leg_result,
    move_caller,
    room_of,
)

AUTH = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a1" * 16
PUBLIC = "https://ivr.example.com"
CALLER_SID = "CA" + "c" * 32
AGENT_SID = "CA" + "e" * 32
ROOM = "transfer-CA0123"
AGENT_PHONE, OUR_NUMBER = "+8613800138001", "+14155550100"


def _settings(tmp: Path, **more: Any) -> Settings:
    base = {"db_path": tmp / "shop.sqlite3", "model_dir": tmp / "models", "public_url": PUBLIC}
    return Settings(**{**base, "twilio_auth_token": AUTH, "twilio_account_sid": ACCOUNT, **more})


# -- TwiML ----------------------------------------------------------------------------------------


def test_the_caller_waits_in_a_conference_that_starts_with_the_agent() -> None:
    twiml = ET.fromstring(conference_twiml(ROOM, PUBLIC + "/twilio/hold.wav", PUBLIC + "/twilio/conference"))
    conference = twiml.find("./Dial/Conference")
    assert conference is not None and conference.text == ROOM
    assert conference.attrib == {
        "startConferenceOnEnter": "false",
        "endConferenceOnExit": "true",
        "waitUrl": PUBLIC + "/twilio/hold.wav",
        "waitMethod": "GET",
        "beep": "false",
        "statusCallback": PUBLIC + "/twilio/conference",
        "statusCallbackMethod": "POST",
        "statusCallbackEvent": "start end join leave",
    }
    for bad in ("", "room with spaces", "a</Conference><Hangup/>", "x" * 65):
        with pytest.raises(ValueError, match="conference room name"):
            conference_twiml(bad, PUBLIC, PUBLIC)


# -- REST, recorded -------------------------------------------------------------------------------


class _Twilio(http.server.BaseHTTPRequestHandler):
    """api.twilio.com on loopback: records each request, answers with ``reply`` (status, JSON)."""

    seen: ClassVar[list[dict[str, Any]]] = []
    reply: ClassVar[tuple[int, dict[str, Any]]] = (200, {})

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        _Twilio.seen.append({"method": "POST", "path": self.path, "form": parse_qs(body)})
        status, payload = _Twilio.reply
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def twilio_api(status: int, payload: dict[str, Any]) -> Iterator[str]:
    _Twilio.seen, _Twilio.reply = [], (status, payload)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Twilio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_moving_the_caller_updates_its_call_with_the_conference_twiml(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with twilio_api(200, {"sid": CALLER_SID, "status": "in-progress"}) as base:
        asyncio.run(move_caller(settings, CALLER_SID, ROOM, legs=TwilioLegs(settings, TwilioLoopback(base))))
    (request,) = _Twilio.seen
    assert (request["method"], request["path"]) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALLER_SID}.json")
    expected = conference_twiml(ROOM, PUBLIC + "/twilio/hold.wav", PUBLIC + "/twilio/conference")
    assert request["form"] == {"Twiml": [expected]}


def test_dialling_the_agent_adds_a_participant_who_starts_the_conference(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    answer = {"call_sid": AGENT_SID, "conference_sid": "CF" + "0" * 32, "label": "agent", "status": "queued"}
    with twilio_api(201, answer) as base:
        legs = TwilioLegs(settings, TwilioLoopback(base))
        call_sid = asyncio.run(dial_agent(settings, ROOM, AGENT_PHONE, OUR_NUMBER, legs=legs))
    assert call_sid == AGENT_SID
    (request,) = _Twilio.seen
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{ROOM}/Participants.json"
    assert (request["method"], request["path"]) == ("POST", path)
    assert request["form"] == {
        "From": [OUR_NUMBER],
        "To": [AGENT_PHONE],
        "Label": ["agent"],
        "Timeout": ["20"],
        "Beep": ["false"],
        "StartConferenceOnEnter": ["true"],
        "EndConferenceOnExit": ["true"],
        "StatusCallback": [f"{PUBLIC}/twilio/participant?room={ROOM}"],
        "StatusCallbackMethod": ["POST"],
        "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
    }


def test_an_agent_with_a_sip_uri_is_dialled_by_twilio_too(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with twilio_api(201, {"call_sid": AGENT_SID}) as base:
        TwilioLegs(settings, TwilioLoopback(base)).dial_agent(ROOM, "sip:agent-7@pbx.example.com", OUR_NUMBER)
    assert _Twilio.seen[0]["form"]["To"] == ["sip:agent-7@pbx.example.com"]


def test_bad_arguments_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with twilio_api(200, {}) as base:
        legs = TwilioLegs(settings, TwilioLoopback(base))
        with pytest.raises(ValueError, match="E.164") as err:
            legs.dial_agent(ROOM, "13800138001", OUR_NUMBER)
        assert "13800138001" not in str(err.value)  # masked
        with pytest.raises(ValueError, match="our Twilio number"):
            legs.dial_agent(ROOM, AGENT_PHONE, "hotline")
        with pytest.raises(ValueError, match="call SID"):
            legs.move_caller("CA1/../Conferences", ROOM)
        with pytest.raises(ValueError, match="room name"):
            legs.move_caller(CALLER_SID, "room/../x")
    assert _Twilio.seen == []
    for missing in ("twilio_account_sid", "twilio_auth_token", "public_url"):
        with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and IVR_PUBLIC_URL"):
            TwilioLegs(_settings(tmp_path, **{missing: None}))


@pytest.mark.parametrize(
    ("status", "payload", "retryable"),
    [
        (
            400,
            {"code": 21217, "message": f"Phone number {AGENT_PHONE} is not a valid phone number", "status": 400},
            False,
        ),
        (404, {"code": 20404, "message": "The requested resource was not found", "status": 404}, False),
        (429, {"code": 20429, "message": "Too Many Requests", "status": 429}, True),
        (503, {"code": 20503, "message": "Service unavailable", "status": 503}, True),
    ],
    ids=["a bad number", "no such call", "too many requests", "Twilio is down"],
)
def test_twilio_refusals_are_typed_and_say_whether_to_retry(
    tmp_path: Path, status: int, payload: dict[str, Any], retryable: bool
) -> None:
    settings = _settings(tmp_path)
    with twilio_api(status, payload) as base, pytest.raises(AgentLegError) as err:
        asyncio.run(
            dial_agent(settings, ROOM, AGENT_PHONE, OUR_NUMBER, legs=TwilioLegs(settings, TwilioLoopback(base)))
        )
    assert err.value.retryable is retryable
    assert f"HTTP {status}, error {payload['code']}" in str(err.value)
    assert AGENT_PHONE.lstrip("+") not in str(err.value) and "861****8001" in str(err.value)  # numbers masked


def test_twilio_out_of_reach_is_retryable(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with twilio_api(200, {}) as base:
        pass  # the server is gone: its port refuses connections
    with pytest.raises(AgentLegError, match="could not be reached") as err:
        asyncio.run(move_caller(settings, CALLER_SID, ROOM, legs=TwilioLegs(settings, TwilioLoopback(base))))
    assert err.value.retryable is True


# -- the webhooks ---------------------------------------------------------------------------------


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, list[AgentLegResult]]]:
    app = create_app(open_hotline(_settings(tmp_path, twilio_account_sid=None)))
    handed: list[AgentLegResult] = []

    async def on_agent_leg(result: AgentLegResult) -> None:
        handed.append(result)

    app.state.on_agent_leg = on_agent_leg
    yield TestClient(app), handed


def _leg_form(status: str) -> dict[str, str]:
    return {
        "CallSid": AGENT_SID,
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": AGENT_PHONE,
        "CallStatus": status,
        "SequenceNumber": "1",
        "CallbackSource": "call-progress-events",
    }


def _signed(client: TestClient, path: str, form: dict[str, str], signed_for: str | None = None) -> Any:
    signature = RequestValidator(AUTH).compute_signature(PUBLIC + (signed_for or path), form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("in-progress", "answered"),
        ("no-answer", "no-answer"),
        ("busy", "busy"),
        ("failed", "failed"),
        ("canceled", "failed"),
        ("completed", "ended"),
    ],
)
def test_a_signed_participant_callback_is_handed_over_as_a_typed_result(
    app_client: tuple[TestClient, list[AgentLegResult]], status: str, outcome: str
) -> None:
    client, handed = app_client
    response = _signed(client, f"/twilio/participant?room={ROOM}", _leg_form(status))
    assert response.status_code == 200 and response.json() == {"recorded": True, "outcome": outcome}
    assert handed == [AgentLegResult(ROOM, AGENT_SID, outcome, status)]  # type: ignore[arg-type]
    assert calls_of(client.app).statuses[AGENT_SID][-1]["CallStatus"] == status


def test_progress_is_recorded_but_not_handed_over(app_client: tuple[TestClient, list[AgentLegResult]]) -> None:
    client, handed = app_client
    for status in ("queued", "initiated", "ringing"):
        response = _signed(client, f"/twilio/participant?room={ROOM}", _leg_form(status))
        assert response.status_code == 200 and response.json()["outcome"] is None
        assert leg_result(ROOM, _leg_form(status)) is None
    assert handed == []
    assert [e["CallStatus"] for e in calls_of(client.app).statuses[AGENT_SID]] == ["queued", "initiated", "ringing"]


@pytest.mark.parametrize("case", ["unsigned", "forged", "another room", "tampered status"])
def test_a_participant_callback_not_from_twilio_is_refused(
    app_client: tuple[TestClient, list[AgentLegResult]], case: str
) -> None:
    client, handed = app_client
    path, form = f"/twilio/participant?room={ROOM}", _leg_form("no-answer")
    if case == "unsigned":
        response = client.post(path, data=form)
    elif case == "forged":
        response = client.post(path, data=form, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    elif case == "another room":
        response = _signed(client, "/twilio/participant?room=other-room", form, signed_for=path)
    else:
        signature = RequestValidator(AUTH).compute_signature(PUBLIC + path, form)
        response = client.post(
            path, data={**form, "CallStatus": "in-progress"}, headers={"X-Twilio-Signature": signature}
        )
    assert response.status_code == 403
    assert handed == [] and AGENT_SID not in calls_of(client.app).statuses


def test_a_failing_callback_does_not_fail_the_webhook(app_client: tuple[TestClient, list[AgentLegResult]]) -> None:
    client, _ = app_client

    async def broken(result: AgentLegResult) -> None:
        raise RuntimeError("the dispatcher is down")

    client.app.state.on_agent_leg = broken  # type: ignore[attr-defined]
    assert _signed(client, f"/twilio/participant?room={ROOM}", _leg_form("busy")).status_code == 200


def test_conference_events_are_recorded_by_room(app_client: tuple[TestClient, list[AgentLegResult]]) -> None:
    client, _ = app_client
    for event in ("participant-join", "conference-start"):
        form = {
            "FriendlyName": ROOM,
            "ConferenceSid": "CF" + "1" * 32,
            "StatusCallbackEvent": event,
            "CallSid": CALLER_SID,
        }
        assert _signed(client, "/twilio/conference", form).status_code == 200
    forged = {"FriendlyName": ROOM, "StatusCallbackEvent": "conference-end"}
    assert client.post("/twilio/conference", data=forged, headers={"X-Twilio-Signature": "AAAA"}).status_code == 403
    events = [e["StatusCallbackEvent"] for e in calls_of(client.app).rooms[ROOM]]
    assert events == ["participant-join", "conference-start"]


def test_the_end_of_the_conference_finishes_the_agents_call(tmp_path: Path) -> None:
    app = create_app(open_hotline(_settings(tmp_path, twilio_account_sid=None)))
    with TestClient(app) as client:
        store, dispatcher, shop = app.state.store, app.state.dispatcher, app.state.hotline.shop
        customer, _ = complainer("sample", shop)
        agent = complaint_agents(shop)[0]
        now = app.state.desk.now()
        client.portal.call(store.set_presence, agent.id, Presence.AVAILABLE, now, app.state.desk.server)
        queued = entry(CALLER_SID, app.state.desk.server, now, customer)
        placement = client.portal.call(dispatcher.request, queued, packet(shop, customer, CALLER_SID))
        assert placement.status == "offered" and placement.agent.id == agent.id
        room = room_of(CALLER_SID)
        form = {"FriendlyName": room, "ConferenceSid": "CF" + "1" * 32, "StatusCallbackEvent": "conference-end"}
        assert _signed(client, "/twilio/conference", form).status_code == 200  # not accepted yet: nothing to end
        assert client.portal.call(store.agent, agent.id).calls == (CALLER_SID,)
        assert client.portal.call(dispatcher.accept, agent.id, CALLER_SID)
        assert (
            _signed(client, "/twilio/conference", {**form, "StatusCallbackEvent": "participant-leave"}).status_code
            == 200
        )
        assert client.portal.call(store.agent, agent.id).presence is Presence.BUSY  # one leaving is not the end
        assert _signed(client, "/twilio/conference", form).status_code == 200
        state = client.portal.call(store.agent, agent.id)
        assert state.calls == () and state.presence is Presence.WRAP_UP  # the line is free, notes are due
        assert client.portal.call(store.load_call, CALLER_SID)["status"] == "done"
        events = [e for _, e in client.portal.call(store.read, f"call:{CALLER_SID}")]
        assert events[-1] == {"type": "ended", "outcome": "transferred"}  # the desk shows the caller gone
        assert _signed(client, "/twilio/conference", form).status_code == 200  # Twilio retrying: no harm
        other = {**form, "FriendlyName": "someone-elses-room"}
        assert _signed(client, "/twilio/conference", other).status_code == 200
    assert call_of(room) == CALLER_SID and call_of("someone-elses-room") is None and call_of("ivr-x") is None


def test_the_hold_audio_is_served_for_twilio_to_play(app_client: tuple[TestClient, list[AgentLegResult]]) -> None:
    client, _ = app_client
    response = client.get("/twilio/hold.wav")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert response.content == hold_wav() and response.content[:4] == b"RIFF"


# -- the hand-over of a live Twilio call to an agent's phone (voice.twilio_routes.TwilioWire) ------


def _wire(settings: Settings, base: str) -> tuple[Any, Any]:
    from voice.twilio_rest import TwilioRest
    from voice.twilio_routes import TwilioCalls, TwilioWire

    calls = TwilioCalls(settings, transfer=TwilioLegs(settings, TwilioLoopback(base)))
    calls.rest = TwilioRest(ACCOUNT, AUTH, http_client=TwilioLoopback(base))  # a REST hang-up would be seen too
    calls.dialled[CALLER_SID] = OUR_NUMBER
    return calls, TwilioWire(None, "MZ" + "1" * 32, CALLER_SID, calls)  # type: ignore[arg-type]


async def _hand_over(calls: Any, wire: Any, status: str) -> bool | None:
    """The agent's phone is dialled; Twilio then reports their leg ``status``; the hand-over's answer."""
    from routing.accounts import AgentContact

    task = asyncio.ensure_future(wire.hand_over(AgentContact(phone=AGENT_PHONE)))
    for _ in range(1000):  # until the dialling request reached "Twilio"
        if _Twilio.seen:
            break
        await asyncio.sleep(0.01)
    room = f"ivr-{CALLER_SID}"
    await calls.leg_result(leg_result(room, {"CallSid": AGENT_SID, "CallStatus": status}))
    handed = await asyncio.wait_for(task, 10)
    await wire.hangup()  # what the live call does when it ends
    return handed  # type: ignore[no-any-return]


def test_an_agent_phone_that_answers_gets_the_caller_moved_into_the_conference(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    payload = {"call_sid": AGENT_SID, "sid": CALLER_SID, "status": "in-progress"}
    with twilio_api(201, payload) as base:
        calls, wire = _wire(settings, base)
        assert asyncio.run(_hand_over(calls, wire, "in-progress")) is True
    dial, move = _Twilio.seen  # and no REST hang-up: the caller is with the agent now
    room = f"ivr-{CALLER_SID}"
    assert dial["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{room}/Participants.json"
    assert (dial["form"]["To"], dial["form"]["From"]) == ([AGENT_PHONE], [OUR_NUMBER])
    assert move["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALLER_SID}.json"
    assert move["form"] == {
        "Twiml": [conference_twiml(room, PUBLIC + "/twilio/hold.wav", PUBLIC + "/twilio/conference")]
    }
    assert CALLER_SID in calls.moved


def test_an_agent_phone_that_does_not_answer_leaves_the_caller_with_the_hotline(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with twilio_api(201, {"call_sid": AGENT_SID, "sid": CALLER_SID, "status": "queued"}) as base:
        calls, wire = _wire(settings, base)
        assert asyncio.run(_hand_over(calls, wire, "no-answer")) is False
        hung_up = _Twilio.seen[-1]
    assert [r["path"].rsplit("/", 1)[-1] for r in _Twilio.seen] == ["Participants.json", f"{CALLER_SID}.json"]
    assert hung_up["form"] == {"Status": ["completed"]}  # not moved: the hotline's own hang-up still works
    assert CALLER_SID not in calls.moved


def test_a_wire_without_a_phone_for_the_agent_leaves_it_to_the_desk(tmp_path: Path) -> None:
    from routing.accounts import AgentContact

    with twilio_api(201, {}) as base:
        _, wire = _wire(_settings(tmp_path), base)
        assert asyncio.run(wire.hand_over(AgentContact(sip_uri="sip:a@pbx"))) is None
    assert _Twilio.seen == []


def test_the_participant_webhook_reaches_the_waiting_hand_over(tmp_path: Path) -> None:
    app = create_app(open_hotline(_settings(tmp_path)))
    calls = calls_of(app)
    assert app.state.on_agent_leg == calls.leg_result  # the signed webhook's results go to the hand-over
