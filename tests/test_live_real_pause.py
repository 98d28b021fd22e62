"""A real caller pausing mid-sentence, over a real Twilio Media Stream with the real whisper model:
「我想问……我在滨海新区有房」 (a long pause after 我想问) is one caller turn, and no answer to the
fragment alone (the understander reads 我想问 as asking about promotions) is played before it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from paths import REAL_ZH, shared
from test_twilio import AUTH, PUBLIC
from test_twilio_call import _clip, _quiet, _until, whisper_server
from twiliosim import TwilioPeer, answer_call, on_loopback

from core.types import Utterance
from voice.live_line import line_of
from voice.session import TurnResult

pytestmark = [pytest.mark.slow, pytest.mark.models]
__all__ = ["whisper_server"]  # the module fixture: a running server with whisper base
CALL_SID = "CA" + "7" * 32


def _spy(hear: Callable[[Utterance, float], TurnResult], seen: list[TurnResult]) -> Callable[..., TurnResult]:
    """``hear`` that also keeps every result (retracted turns included)."""

    def spying(utterance: Utterance, asr_ms: float = 0.0) -> TurnResult:
        result = hear(utterance, asr_ms)
        seen.append(result)
        return result

    return spying


def test_a_pause_after_a_preamble_is_one_turn_with_real_speech(whisper_server: tuple[str, FastAPI]) -> None:
    base, app = whisper_server
    recording = _clip(shared(REAL_ZH / "funasr_llamacpp_sample.wav"))
    seen: list[TurnResult] = []

    async def main() -> None:
        stream_url, token = answer_call(base, PUBLIC, AUTH, CALL_SID, "+8613800138002")
        async with TwilioPeer(on_loopback(stream_url, base), token, CALL_SID) as peer:
            await _until(lambda: CALL_SID in line_of(app).calls)
            call = line_of(app).calls[CALL_SID]
            call.session.hear = _spy(call.session.hear, seen)  # type: ignore[method-assign]
            await _until(lambda: len(peer.media) > 40)
            await _quiet(peer)  # the greeting was played
            await peer.say(recording)
            await _until(lambda: any("有房" in r.heard or "有方" in r.heard for r in seen), within=90)
            await _quiet(peer, 1.0)
            caller = [line.text for line in call.session.state.transcript if line.speaker == "caller"]
            assert len(caller) == 1, caller  # one turn in the call's record
            assert "我想问" in caller[0] and ("有房" in caller[0] or "有方" in caller[0]), caller
            played = {sentence for sentence, _ in call.session.heard}
            for result in seen[:-1]:  # answers to a fragment: none of them reached the caller
                assert not played & {a.text for a in result.actions}, (result.heard, result.reply)

    asyncio.run(main())
    deadline = time.monotonic() + 20
    while CALL_SID in line_of(app).calls:
        assert time.monotonic() < deadline
        time.sleep(0.05)
