"""The softphone's WebSocket protocol as a state machine: page messages in, checked, core values out."""

from __future__ import annotations

import json

import pytest

from core.errors import ProtocolError
from core.types import AudioFrame
from voice.live import LiveEvent
from voice.softphone_wire import (
    MAX_TEXT_CHARS,
    OUT_RATE,
    Cleared,
    Dtmf,
    HangupRequest,
    MarkPlayed,
    SoftphoneWire,
    Start,
)


def started(rate: int = 16000, caller: str | None = "+8613800138000") -> SoftphoneWire:
    wire = SoftphoneWire()
    assert wire.decode_text(json.dumps({"type": "start", "caller": caller, "sample_rate": rate})) == Start(caller, rate)
    return wire


def test_binary_frames_become_audio_frames_stamped_with_their_stream_time() -> None:
    wire = started(16000)
    first = wire.decode_binary(bytes(640), 100.0)
    second = wire.decode_binary(bytes(320), 100.02)
    third = wire.decode_binary(bytes(640), 100.03)
    assert (first.sample_rate, first.timestamp, first.duration) == (16000, 0.0, 0.02)
    assert (second.timestamp, third.timestamp) == (0.02, pytest.approx(0.03))


def test_commands_after_start() -> None:
    wire = started(8000, caller=None)
    assert wire.decode_text('{"type":"dtmf","digit":"#"}') == Dtmf("#")
    assert wire.decode_text('{"type":"hangup"}') == HangupRequest()


def test_empty_caller_is_no_caller() -> None:
    wire = SoftphoneWire()
    assert wire.decode_text('{"type":"start","caller":"","sample_rate":8000}') == Start(None, 8000)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("hello", "expected a JSON object, got 'hello'"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"type":"dtmf","digit":"1"}', "expected a start message first, got a 'dtmf' message"),
        ('{"type":"start","sample_rate":44100}', "expected sample_rate as one of (8000, 16000), got 44100"),
        ('{"type":"start","sample_rate":true}', "expected sample_rate as one of (8000, 16000), got True"),
        ('{"type":"start","sample_rate":"16000"}', "expected sample_rate as one of (8000, 16000), got '16000'"),
        ('{"type":"start","caller":"call me","sample_rate":8000}', "expected caller as a phone number"),
        ('{"type":"start","caller":["+86"],"sample_rate":8000}', "expected caller as a phone number"),
        ('{"sample_rate":8000}', "expected a start message first, got a message"),
    ],
)
def test_bad_messages_before_or_at_start_say_what_was_expected(message: str, expected: str) -> None:
    with pytest.raises(ProtocolError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
        SoftphoneWire().decode_text(message)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"type":"start","sample_rate":8000}', "expected one start per call, got a second start"),
        ('{"type":"ring"}', "expected type start|dtmf|mark|cleared|hangup, got 'ring'"),
        ('{"type":"dtmf","digit":"12"}', "expected digit as one of 0-9 * # A-D, got '12'"),
        ('{"type":"dtmf"}', "expected digit as one of 0-9 * # A-D, got None"),
        ('{"type":"mark","name":"r1.0"}', "expected no mark (none is outstanding), got mark 'r1.0'"),
        ('{"type":"mark","name":"<script>"}', "expected name as a mark name, got '<script>'"),
        ('{"type":"cleared","played_ms":0}', "expected cleared only in answer to a clear, got cleared"),
        ('{"type":"cleared","played_ms":-5}', "expected played_ms as 0..3600000, got -5"),
    ],
)
def test_bad_messages_in_a_call_say_what_was_expected(message: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as err:
        started().decode_text(message)
    assert str(err.value) == expected


def test_oversized_text_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match=f"at most {MAX_TEXT_CHARS} characters, got {MAX_TEXT_CHARS + 1}"):
        started().decode_text("x" * (MAX_TEXT_CHARS + 1))


def test_lone_surrogates_are_reported_escaped() -> None:
    with pytest.raises(ProtocolError) as err:
        started().decode_text('{"type":"dtmf","digit":"\\ud800"}')
    str(err.value).encode("utf-8")  # the message can be sent back to the page


@pytest.mark.parametrize(("size", "rate"), [(0, 16000), (3, 16000), (3202, 16000), (1602, 8000)])
def test_binary_of_the_wrong_size_is_refused(size: int, rate: int) -> None:
    with pytest.raises(ProtocolError, match=f"got {size}$"):
        started(rate).decode_binary(bytes(size), 0.0)


def test_binary_before_start_is_refused() -> None:
    with pytest.raises(ProtocolError, match="expected a start message first, got binary audio"):
        SoftphoneWire().decode_binary(bytes(640), 0.0)


def test_nothing_is_accepted_after_hangup() -> None:
    wire = started()
    wire.decode_text('{"type":"hangup"}')
    with pytest.raises(ProtocolError, match="expected nothing after hangup, got binary audio"):
        wire.decode_binary(bytes(640), 0.0)


def test_audio_faster_than_real_time_is_refused() -> None:
    wire = started(8000)
    for _ in range(100):  # two seconds of audio at once: a burst a stalled page may send
        wire.decode_binary(bytes(320), 50.0)
    wire.decode_binary(bytes(320), 50.03)  # 2.02 s sent, 0.03 s passed: within the slack
    with pytest.raises(ProtocolError, match="expected audio in real time, got 2.0 s more"):
        wire.decode_binary(bytes(320), 50.03)
    assert wire.decode_binary(bytes(320), 50.5).timestamp == pytest.approx(2.02)  # time caught up


def test_marks_are_acked_oldest_first() -> None:
    wire = started()
    assert json.loads(wire.mark("r1.0")) == {"type": "mark", "name": "r1.0"}
    wire.mark("r1.1")
    with pytest.raises(ProtocolError, match="expected mark 'r1.0' \\(the oldest outstanding\\), got 'r1.1'"):
        wire.decode_text('{"type":"mark","name":"r1.1"}')
    assert wire.decode_text('{"type":"mark","name":"r1.0"}') == MarkPlayed("r1.0")
    assert wire.decode_text('{"type":"mark","name":"r1.1"}') == MarkPlayed("r1.1")


def test_after_a_clear_cut_marks_may_still_arrive_until_the_page_answers() -> None:
    wire = started()
    wire.mark("r1.0")
    wire.mark("r1.1")
    assert json.loads(wire.clear()) == {"type": "clear"}
    wire.mark("r2.0")  # the next reply starts before the page has answered the clear
    assert wire.decode_text('{"type":"mark","name":"r1.0"}') == MarkPlayed("r1.0")  # played before the clear
    assert wire.decode_text('{"type":"cleared","played_ms":340}') == Cleared(340)
    with pytest.raises(ProtocolError, match="expected mark 'r2.0'"):
        wire.decode_text('{"type":"mark","name":"r1.1"}')  # dropped by the clear: never acked
    assert wire.decode_text('{"type":"mark","name":"r2.0"}') == MarkPlayed("r2.0")


def test_server_messages() -> None:
    wire = SoftphoneWire()
    assert json.loads(wire.ready("abc")) == {"type": "ready", "call_id": "abc", "sample_rate": OUT_RATE}
    assert json.loads(wire.error("坏消息")) == {"type": "error", "message": "坏消息"}
    assert wire.audio(AudioFrame(b"\x01\x02", OUT_RATE)) == b"\x01\x02"
    with pytest.raises(ValueError, match="8000 Hz"):
        wire.audio(AudioFrame(b"\x01\x02", 16000))


def test_live_events_go_to_the_page_as_typed_json() -> None:
    event = LiveEvent("turn", 3.25, {"text": "我的快递到哪了", "intents": [{"name": "logistics.track"}]})
    text = SoftphoneWire.event(event)
    assert text.isascii()
    assert json.loads(text) == {
        "type": "turn",
        "at": 3.25,
        "text": "我的快递到哪了",
        "intents": [{"name": "logistics.track"}],
    }
    assert json.loads(SoftphoneWire.event(LiveEvent("final", 1.0, {"text": "\ud800"}))) == {
        "type": "final",
        "at": 1.0,
        "text": "\ud800",
    }
