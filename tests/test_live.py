"""The live core with virtual time, a recording wire and scripted speech events (real dialog, sample shop).

Feed typed events in (speech events, audio levels, keys, marks), assert what reaches the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from livefakes import FrameVoice, ScriptedSpeech, ScriptedWire, VirtualTime, play_out, settle

from core.settings import Settings
from core.types import AudioFrame, SpeechEnded, SpeechStarted, Utterance
from voice.hotline import Hotline, open_hotline
from voice.live import LiveCall
from voice.live_turns import LiveConfig, LivePrompts, is_backchannel, is_echo, unheard_tail
from voice.session import Expectation

LOUD = AudioFrame((np.sin(np.arange(160) / 3) * 8000).astype("<i2").tobytes(), 8000)
QUIET = AudioFrame(bytes(320), 8000)
CONFIG = LiveConfig()


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Hotline:
    tmp = tmp_path_factory.mktemp("live")
    return open_hotline(Settings(db_path=tmp / "shop.sqlite3", model_dir=tmp / "models"))


class Rig:
    def __init__(self, hotline: Hotline, caller: str | None) -> None:
        self.time = VirtualTime()
        self.wire = ScriptedWire(self.time)
        self.speech = ScriptedSpeech()
        self.voice = FrameVoice()
        prompts = LivePrompts(goodbye="感谢来电，再见。")
        self.call = LiveCall(
            hotline.session(caller),
            lambda: self.speech,
            self.voice,
            self.wire,
            time=self.time,
            prompts=prompts,  # type: ignore[arg-type,return-value]
        )

    async def play_out(self) -> None:
        await play_out(self.call, self.wire, self.time)

    async def speak(self, text: str, seconds: float = 0.8, confidence: float = 0.5) -> None:
        """The caller says ``text``: speech start, loud frames, speech end and its final."""
        start = self.time.now()
        self.speech.say(SpeechStarted(start))
        for _ in range(int(seconds / 0.02)):
            self.call.feed_audio(LOUD)
            await self.time.advance(0.02)
        self.speech.say(SpeechEnded(start, self.time.now(), QUIET), Utterance(text, confidence=confidence))
        await asyncio.sleep(0)

    def turns(self) -> list[str]:
        return [str(e.data["text"]) for e in self.wire.kinds("turn")]


def live(caller: str | None = None) -> Callable[[Callable[[Rig], Awaitable[None]]], Callable[[Hotline], None]]:
    """Run an async test body with a greeted call; the call is stopped and awaited afterwards."""

    def wrap(body: Callable[[Rig], Awaitable[None]]) -> Callable[[Hotline], None]:
        def test(hotline: Hotline) -> None:
            async def main() -> None:
                rig = Rig(hotline, caller)
                task = asyncio.get_running_loop().create_task(rig.call.run())
                await rig.play_out()  # the greeting
                await body(rig)
                rig.call.stop()
                await asyncio.wait_for(task, 10)

            asyncio.run(main())

        test.__name__ = body.__name__
        return test

    return wrap


@live()
async def test_greeting_is_paced_in_real_time_with_a_mark_after_each_sentence(rig: Rig) -> None:
    times = [t for t, _ in rig.wire.frames]
    assert len(times) > 20
    gaps = np.diff(times)
    assert abs(float(np.median(gaps)) - 0.02) < 1e-6  # 20 ms frames, sent as they are due
    assert times[-1] - times[0] == pytest.approx((len(times) - 1) * 0.02, abs=0.05)
    assert rig.wire.marks == [f"r1.{i}" for i in range(len(rig.voice.spoken))]
    heard = [e.data["text"] for e in rig.wire.kinds("heard") if e.data["complete"]]
    assert heard == rig.voice.spoken  # every sentence's mark came back: the session knows they were heard
    assert rig.call.session.heard == [(s, True) for s in rig.voice.spoken]


@live()
async def test_a_turn_ends_after_the_wait_the_dialog_expects(rig: Rig) -> None:
    assert rig.call.session.expecting() is Expectation.FREE
    await rig.speak("我的快递到哪了")
    await rig.time.advance(CONFIG.waits[Expectation.FREE] - 0.1)
    assert rig.turns() == []  # still inside the wait: the caller may go on
    await rig.time.advance(0.15)
    await settle(lambda: rig.turns() == ["我的快递到哪了"])
    await rig.play_out()  # an unknown caller is asked for the order number
    assert rig.call.session.expecting() is Expectation.DIGITS
    await rig.speak("幺二三", confidence=0.95)  # even a confident final waits while digits are dictated
    await rig.time.advance(CONFIG.waits[Expectation.FREE] + 0.1)
    assert rig.turns() == ["我的快递到哪了"]
    await rig.speak("四五六")  # the caller goes on: the same turn
    await rig.time.advance(CONFIG.waits[Expectation.DIGITS] + 0.05)
    await settle(lambda: len(rig.turns()) == 2)
    assert rig.turns()[1] == "幺二三四五六"
    latency = rig.wire.kinds("latency")
    stages = {"asr_ms", "wait_ms", "understand_ms", "dialog_ms", "reply_ms", "total_ms"}
    assert latency and stages <= set(latency[0].data)
    assert latency[0].data["wait_ms"] == pytest.approx(CONFIG.waits[Expectation.FREE] * 1000, abs=30)


@live()
async def test_a_confident_final_ends_the_turn_at_once(rig: Rig) -> None:
    await rig.speak("你们有什么优惠活动", confidence=0.95)
    await rig.time.advance(0.02)
    await settle(lambda: rig.turns() == ["你们有什么优惠活动"])


@live()
async def test_keys_are_a_turn_when_hash_is_pressed(rig: Rig) -> None:
    for key in "2026#":
        rig.call.feed_dtmf(key)
    rig.call.feed_dtmf("x")  # not a key: ignored
    await settle(lambda: rig.turns() == ["2026"])
    await rig.play_out()
    for key in "77":
        rig.call.feed_dtmf(key)
    await rig.time.advance(CONFIG.dtmf_timeout_s - 0.1)
    assert rig.turns() == ["2026"]
    await rig.time.advance(0.2)  # no # but the keys stopped: taken as the answer
    await settle(lambda: rig.turns() == ["2026", "77"])


async def _reply_playing(rig: Rig) -> None:
    await rig.speak("你们有什么优惠活动", confidence=0.95)
    await settle(lambda: rig.call.playback is not None and len(rig.wire.frames) > 0)
    await rig.time.advance(CONFIG.echo_guard_s + 0.1)  # past the echo guard of the first sentence


def _clears(rig: Rig) -> list[float]:
    return [t for t, op in rig.wire.log if op == "clear"]


@live()
async def test_barge_in_holds_and_clears_at_once_then_drops_the_reply(rig: Rig) -> None:
    await _reply_playing(rig)
    marks_before = len(rig.wire.marks)
    rig.speech.say(SpeechStarted(rig.time.now()))
    await asyncio.sleep(0)
    detected = rig.time.now()
    sent = len(rig.wire.frames)
    await rig.time.advance(0.02)
    assert _clears(rig) == [pytest.approx(detected, abs=0.021)]  # clear goes out the moment speech is detected
    for _ in range(int(CONFIG.decide_after_s / 0.02) + 3):
        rig.call.feed_audio(LOUD)  # the caller keeps talking
        await rig.time.advance(0.02)
    assert len(rig.wire.frames) == sent  # nothing more was sent from the moment speech was detected
    assert len(_clears(rig)) == 1  # confirming the barge-in needs no second clear
    cut = [e.data["text"] for e in rig.wire.kinds("heard") if not e.data["complete"]]
    assert cut and rig.call.session.heard[-1] == (cut[-1], False)
    await rig.time.advance(1.0)
    assert len(rig.wire.frames) == sent and len(rig.wire.marks) == marks_before  # the reply is dropped
    assert rig.call.barge.count == 1


def _reply_frames(rig: Rig) -> int:
    return sum(len(t) * rig.voice.frames_per_char for t in rig.wire.kinds("reply")[-1].data["sentences"])  # type: ignore[union-attr]


@live()
async def test_a_backchannel_clears_but_the_reply_resumes_where_it_was_cut(rig: Rig) -> None:
    before = len(rig.wire.frames)
    await _reply_playing(rig)
    rig.speech.say(SpeechStarted(rig.time.now()))
    for _ in range(3):
        rig.call.feed_audio(LOUD)  # a short 嗯
        await rig.time.advance(0.02)
    assert len(_clears(rig)) == 1 and rig.call.playback is not None and rig.call.playback.paused
    for _ in range(20):
        rig.call.feed_audio(QUIET)
        await rig.time.advance(0.02)
    rig.speech.say(SpeechEnded(0.0, 0.1, QUIET), Utterance("嗯", confidence=0.6))
    await rig.play_out()
    assert len(_clears(rig)) == 1 and rig.call.barge.count == 0  # held, not interrupted
    assert "嗯" not in rig.turns()
    reply = rig.wire.kinds("reply")[-1].data["sentences"]
    assert rig.voice.spoken[-len(reply) :] == list(reply)  # every sentence of the reply played, none dropped
    assert all(e.data["complete"] for e in rig.wire.kinds("heard"))
    resent = len(rig.wire.frames) - before - _reply_frames(rig)
    assert resent == round(CONFIG.lead_s / CONFIG.frame_s)  # what the clear dropped was sent again, once


@live()
async def test_speech_right_after_a_sentence_starts_is_taken_as_echo(rig: Rig) -> None:
    await rig.speak("你们有什么优惠活动", confidence=0.95)
    # (the greeting's frames are on the wire already: wait for the answer's first sentence itself)
    await settle(lambda: rig.call.playback is not None and rig.call.playback.current is not None)
    playing = rig.call.playback.current.text  # type: ignore[union-attr]
    rig.speech.say(SpeechStarted(rig.time.now()))
    await rig.time.advance(0.1)
    assert rig.call.barge.candidate_at is None and not rig.call.playback.paused  # type: ignore[union-attr]
    rig.speech.say(SpeechEnded(0.0, 0.5, QUIET), Utterance(playing, confidence=0.7))  # our own sentence came back
    await rig.play_out()
    assert not rig.wire.cleared and rig.turns() == ["你们有什么优惠活动"]


@live()
async def test_speech_with_no_text_gets_a_please_repeat(rig: Rig) -> None:
    rig.speech.say(SpeechStarted(rig.time.now()))
    await rig.time.advance(1.0)
    rig.speech.say(SpeechEnded(0.0, 1.0, QUIET))
    await rig.time.advance(CONFIG.waits[Expectation.FREE] + 0.05)
    await settle(lambda: len(rig.wire.kinds("reply")) == 2)
    assert rig.wire.kinds("reply")[-1].data["text"] == rig.call.prompts.not_heard


@live("+8613900139001")
async def test_goodbye_hangs_up_after_the_last_mark(rig: Rig) -> None:
    await rig.speak("没有了，再见", confidence=0.95)
    await settle(lambda: rig.call.playback is not None)
    await rig.time.advance(0.1)
    assert not rig.wire.hung_up
    await rig.play_out()
    await settle(lambda: rig.wire.hung_up)
    last_mark = max(i for i, (_, op) in enumerate(rig.wire.log) if op.startswith("mark:"))
    assert rig.wire.log[-1][1] == "hangup" and last_mark < len(rig.wire.log) - 1


def test_backchannels_and_echo() -> None:
    assert all(is_backchannel(t) for t in ("嗯", "对", "好的", "哦", "是是是", "行", "嗯嗯。"))
    assert not any(is_backchannel(t) for t in ("", "不对", "好的我要退货", "等一下"))
    assert is_echo("欢迎致电棉语", "您好，欢迎致电棉语生活旗舰店")
    assert not is_echo("我要退货", "您好，欢迎致电棉语生活旗舰店")
    assert unheard_tail(["a", "b", "c"], ["a"]) == ["b", "c"]
    assert unheard_tail(["a"], ["a"]) == ["a"]


def test_waits_follow_the_expectation() -> None:
    waits = [CONFIG.turn_wait(e, 0.5) for e in (Expectation.YES_NO, Expectation.CHOICE, Expectation.FREE)]
    assert waits == sorted(waits) and waits[-1] < CONFIG.turn_wait(Expectation.DIGITS, 0.5)
    assert CONFIG.turn_wait(Expectation.FREE, 0.95) == 0.0
    assert CONFIG.turn_wait(Expectation.DIGITS, 0.95) == CONFIG.waits[Expectation.DIGITS]


@live()
async def test_short_speech_resumes_the_reply_but_a_real_final_still_interrupts(rig: Rig) -> None:
    await _reply_playing(rig)
    rig.speech.say(SpeechStarted(rig.time.now()))
    for _ in range(4):
        rig.call.feed_audio(LOUD)
        await rig.time.advance(0.02)
    paused_at = len(rig.wire.frames)
    await rig.time.advance(CONFIG.decide_after_s + 0.05)
    assert len(_clears(rig)) == 1 and len(rig.wire.frames) > paused_at  # quiet by then: the reply went on
    assert rig.call.barge.count == 0
    rig.speech.say(SpeechEnded(0.0, 0.3, QUIET), Utterance("等一下", confidence=0.7))  # the final: not a backchannel
    await rig.time.advance(0.04)
    assert len(_clears(rig)) == 2 and rig.call.barge.count == 1  # the resumed reply is cleared again
    await rig.time.advance(CONFIG.waits[Expectation.FREE] + 0.05)
    # spoken 0.4 s into the answer, before a sentence of it was heard whole: it goes on from the question
    await settle(lambda: rig.turns()[-1:] == ["你们有什么优惠活动等一下"])


@live()
async def test_server_shutdown_says_goodbye_hangs_up_and_records(rig: Rig) -> None:
    await rig.speak("你们有什么优惠活动", confidence=0.95)
    await settle(lambda: rig.call.playback is not None and len(rig.wire.frames) > 0)
    closing = asyncio.get_running_loop().create_task(rig.call.close("server shutting down"))
    await settle(lambda: rig.voice.spoken[-1:] == ["感谢来电，再见。"])
    while not closing.done():
        await rig.time.advance(0.02)
        for name in rig.wire.marks:
            rig.call.mark_played(name)
    assert rig.wire.hung_up
    await settle(lambda: len(rig.wire.kinds("ended")) == 1)
    ended = rig.wire.kinds("ended")
    assert ended[0].data["reason"] == "server shutting down" and ended[0].data["outcome"] == "resolved"


@live()
async def test_a_key_pressed_during_a_reply_stops_it(rig: Rig) -> None:
    await _reply_playing(rig)
    rig.call.feed_dtmf("1")
    await rig.time.advance(0.02)
    assert rig.wire.cleared
    rig.call.feed_dtmf("#")
    await settle(lambda: rig.turns()[-1:] == ["1"])


@live()
async def test_a_failed_recogniser_gets_a_spoken_fallback_and_a_fresh_path(rig: Rig) -> None:
    rig.speech.say(RuntimeError("decoder crashed"))
    await settle(lambda: len(rig.wire.kinds("reply")) == 2)
    assert rig.wire.kinds("reply")[-1].data["text"] == rig.call.prompts.not_heard
    assert "decoder crashed" in str(rig.wire.kinds("error")[0].data["message"])
    await rig.play_out()
    await rig.speak("你们有什么优惠活动", confidence=0.95)  # the call goes on with the new path
    await settle(lambda: rig.turns() == ["你们有什么优惠活动"])


async def _speak_slowly_recognised(rig: Rig, text: str, recognised_after: float) -> float:
    """The caller says ``text``; the VAD closes the segment at once, its text comes ``recognised_after`` later."""
    start = rig.call.listener.stream_s  # (speech events carry stream times)
    rig.speech.say(SpeechStarted(start))
    for _ in range(40):
        rig.call.feed_audio(LOUD)
        await rig.time.advance(0.02)
    end = rig.call.listener.stream_s
    await asyncio.sleep(0)
    rig.speech.segment_closed(SpeechEnded(start, end, QUIET))
    await rig.time.advance(recognised_after)
    rig.speech.say(SpeechEnded(start, end, QUIET), Utterance(text, confidence=0.95))
    return end


def _replies(rig: Rig) -> list[str]:
    return [str(e.data["text"]) for e in rig.wire.kinds("reply")]


@live()
async def test_a_segment_still_being_recognised_gets_a_hold_on_then_the_answer(rig: Rig) -> None:
    before = len(_replies(rig))
    await _speak_slowly_recognised(rig, "你们有什么优惠活动", recognised_after=CONFIG.hold_on_s + 0.3)
    assert _replies(rig)[before:] == [rig.call.prompts.hold_on]  # the caller hears 「嗯」 while whisper works
    await settle(lambda: rig.turns() == ["你们有什么优惠活动"])
    await rig.play_out()
    replies = _replies(rig)[before:]
    assert len(replies) == 2 and replies[1] != rig.call.prompts.acknowledge  # 「嗯」 stands for the acknowledgement
    latency = rig.wire.kinds("latency")[-1].data
    assert latency["first_audio_ms"] == pytest.approx(CONFIG.hold_on_s * 1000, abs=30)
    assert latency["total_ms"] > CONFIG.hold_on_s * 1000 + 250


@live()
async def test_text_that_comes_in_time_gets_no_hold_on(rig: Rig) -> None:
    before = len(_replies(rig))
    await _speak_slowly_recognised(rig, "你们有什么优惠活动", recognised_after=0.1)  # vosk: the final is quick
    await settle(lambda: rig.turns() == ["你们有什么优惠活动"])
    await rig.time.advance(CONFIG.hold_on_s)
    await rig.play_out()
    assert rig.call.prompts.hold_on not in _replies(rig)[before:]


@live()
async def test_no_hold_on_when_the_caller_goes_on_speaking(rig: Rig) -> None:
    before = len(_replies(rig))
    start = rig.time.now()
    rig.speech.say(SpeechStarted(start))
    await rig.time.advance(0.5)
    rig.speech.segment_closed(SpeechEnded(start, rig.time.now(), QUIET))
    await rig.time.advance(0.2)
    rig.speech.say(SpeechStarted(rig.time.now()))  # a pause inside the sentence, then more speech
    await asyncio.sleep(0)
    await rig.time.advance(CONFIG.hold_on_s + 0.2)
    assert _replies(rig)[before:] == []


@live()
async def test_a_yes_recognised_while_its_hold_on_plays_is_still_the_callers_turn(rig: Rig) -> None:
    rig.call.prompts = dataclasses.replace(rig.call.prompts, hold_on="嗯，您稍等。")  # ~0.25 s of frames
    await _speak_slowly_recognised(rig, "对", recognised_after=CONFIG.hold_on_s + 0.1)
    assert rig.call.playback is not None and _replies(rig)[-1] == rig.call.prompts.hold_on  # 「嗯」 is playing
    await settle(lambda: rig.turns() == ["对"])  # not taken for a backchannel over our 「嗯」
    assert rig.call.barge.count == 0


@live()
async def test_no_hold_on_when_the_line_is_loud_though_the_recogniser_lags(rig: Rig) -> None:
    before = len(_replies(rig))
    start = rig.call.listener.stream_s
    rig.speech.say(SpeechStarted(start))
    for _ in range(20):
        rig.call.feed_audio(LOUD)
        await rig.time.advance(0.02)
    rig.speech.segment_closed(SpeechEnded(start, rig.call.listener.stream_s, QUIET))
    for _ in range(int((CONFIG.hold_on_s + 0.2) / 0.02)):  # the caller goes on; no SpeechStarted yet (busy path)
        rig.call.feed_audio(LOUD)
        await rig.time.advance(0.02)
    assert _replies(rig)[before:] == []


def test_a_caller_who_hangs_up_before_the_greeting_is_recorded_as_abandoned(hotline: Hotline) -> None:
    session = hotline.session("+8613800000000")
    assert session.end().type == "abandoned" and not session.started  # never greeted: no error, no record

    async def main() -> str:
        rig = Rig(hotline, None)
        task = asyncio.get_running_loop().create_task(rig.call.run())
        await asyncio.sleep(0)
        rig.call.stop("caller hung up")
        outcome = await asyncio.wait_for(task, 10)
        return outcome.type

    assert asyncio.run(main()) == "abandoned"


@live()
async def test_the_reply_that_ends_the_call_is_heard_whole_over_caller_speech(rig: Rig) -> None:
    await rig.speak("没有了，再见", confidence=0.95)
    await settle(lambda: rig.call.playback is not None and len(rig.wire.frames) > 0)
    await rig.time.advance(CONFIG.echo_guard_s + 0.1)
    rig.speech.say(SpeechStarted(rig.time.now()))  # the caller talks over the goodbye
    for _ in range(int(CONFIG.decide_after_s / 0.02) + 5):
        rig.call.feed_audio(LOUD)
        await rig.time.advance(0.02)
    rig.call.feed_dtmf("1")
    rig.speech.say(SpeechEnded(0.0, 1.0, QUIET), Utterance("等一下我还有个问题", confidence=0.9))
    await rig.play_out()
    await settle(lambda: rig.wire.hung_up)
    assert _clears(rig) == [] and rig.call.barge.count == 0
    assert all(complete for _, complete in rig.call.session.heard)  # every sentence of it was heard


@live()
async def test_the_answer_follows_a_hold_on_without_waiting_for_its_mark(rig: Rig) -> None:
    await _speak_slowly_recognised(rig, "你们有什么优惠活动", recognised_after=CONFIG.hold_on_s + 0.1)
    await settle(lambda: rig.turns() == ["你们有什么优惠活动"])
    sent = len(rig.wire.frames)
    for _ in range(10):  # no mark comes back from the far end meanwhile
        await rig.time.advance(0.02)
        await asyncio.sleep(0.01)
    assert _replies(rig)[-1] != rig.call.prompts.hold_on and len(rig.wire.frames) > sent  # the answer is going out
    await rig.play_out()


@live()
async def test_an_answer_ready_while_the_hold_on_plays_cuts_it_short(rig: Rig) -> None:
    rig.call.prompts = dataclasses.replace(rig.call.prompts, hold_on="嗯，好的，我这边听到了，您稍等一下。")  # 0.68 s
    hold_s = len(rig.call.prompts.hold_on) * rig.voice.frames_per_char * 0.02
    await _speak_slowly_recognised(rig, "你们有什么优惠活动", recognised_after=CONFIG.hold_on_s + 0.1)
    assert rig.call.playback is not None and _replies(rig)[-1] == rig.call.prompts.hold_on  # 「嗯…」 is playing
    for _ in range(int(hold_s / 0.02)):
        await rig.time.advance(0.02)
        await asyncio.sleep(0.005)  # (the dialog runs in a real thread)
        if _replies(rig)[-1] != rig.call.prompts.hold_on:
            break
    hold, answer = rig.wire.kinds("reply")[-2:]
    assert hold.data["text"] == rig.call.prompts.hold_on and answer.data["text"] != rig.call.prompts.hold_on
    assert answer.at - hold.at < hold_s - 0.2, "the answer did not wait for the whole 「嗯…」"
    started = rig.time.now() - rig.call.elapsed()
    sent = [t for t, _ in rig.wire.frames if hold.at <= t - started < answer.at]
    assert len(sent) < hold_s / 0.02, "no frame of the 「嗯…」 goes out once the answer plays"
    await rig.play_out()
