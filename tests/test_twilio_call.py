"""A whole Twilio call over a real WebSocket against a running server, with real human recordings at
8 kHz μ-law and the real whisper base model: the greeting plays with marks, a backchannel (a real 好)
holds it with a ``clear`` within 200 ms but does not interrupt it (it resumes where it was cut), a
question is transcribed and answered, and speech over the answer stops it (``clear`` within 200 ms).

Timing is judged on the wire, as the simulated Twilio sees it (arrival times of ``media``/``clear``
against the send times of the caller's frames).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from paths import REAL_ZH, shared
from rapidfuzz.distance import Levenshtein
from test_twilio import AUTH, PUBLIC, running, twilio_settings
from testmodels import telephone
from twiliosim import TwilioPeer, answer_call, on_loopback

from voice.app import create_app
from voice.hotline import open_hotline
from voice.live_line import line_of
from voice.wav import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.models]
CALL_SID = "CA" + "9" * 32


def _clip(path: Path, start: float = 0.0, end: float | None = None) -> bytes:
    """A real recording as a telephone line carries it (8 kHz, through μ-law), optionally cut."""
    pcm = telephone(read_wav(path.read_bytes())).pcm
    return pcm[int(start * 8000) * 2 : None if end is None else int(end * 8000) * 2]


def _onset(pcm: bytes, dbfs: float = -40.0) -> int:
    """Index of the first 20 ms frame at least ``dbfs`` loud."""
    x = np.frombuffer(pcm, "<i2").astype(float)
    for i in range(len(x) // 160):
        rms = np.sqrt(np.mean(x[i * 160 : (i + 1) * 160] ** 2))
        if rms > 0 and 20 * np.log10(rms / 32768) >= dbfs:
            return i
    raise AssertionError("no speech in clip")


def _offset(pcm: bytes, dbfs: float = -40.0) -> int:
    """Index of the last 20 ms frame at least ``dbfs`` loud (the speech ends there; silence may follow)."""
    x = np.frombuffer(pcm, "<i2").astype(float)
    for i in reversed(range(len(x) // 160)):
        rms = np.sqrt(np.mean(x[i * 160 : (i + 1) * 160] ** 2))
        if rms > 0 and 20 * np.log10(rms / 32768) >= dbfs:
            return i
    raise AssertionError("no speech in clip")


def _transcript(name: str) -> str:
    rows = dict(line.split("\t")[:2] for line in shared(REAL_ZH / "transcripts.tsv").read_text().splitlines())
    return rows[name]


@pytest.fixture(scope="module")
def whisper_server(tmp_path_factory: pytest.TempPathFactory, whisper_model_dir: Path) -> Iterator[tuple[str, FastAPI]]:
    tmp = tmp_path_factory.mktemp("twilio-call")
    settings = twilio_settings(tmp, asr_engine="whisper", whisper_model=str(whisper_model_dir))
    app = create_app(open_hotline(settings))
    with running(app) as base:
        yield base, app


async def _until(condition: object, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _quiet(peer: TwilioPeer, for_s: float = 0.6) -> None:
    """Wait until no reply audio has arrived for ``for_s`` seconds."""
    await _until(lambda: peer.media and time.monotonic() - peer.media[-1] > for_s)


def test_a_twilio_call_with_real_speech(whisper_server: tuple[str, FastAPI]) -> None:
    base, app = whisper_server
    backchannel = _clip(shared(REAL_ZH.parent / "zh_more" / "wenet_nst_data_example_ID001_48k.wav"), 2.18, 2.5)
    question_name = "BAC009S0764W0121.wav"
    question = _clip(shared(REAL_ZH / question_name))
    interruption = _clip(shared(REAL_ZH / "BAC009S0764W0122.wav"))

    async def main() -> None:
        stream_url, token = answer_call(base, PUBLIC, AUTH, CALL_SID, "+8613800138001")
        async with TwilioPeer(on_loopback(stream_url, base), token, CALL_SID) as peer:
            # the greeting; a real 好 while it plays holds it at once (clear within 200 ms of the onset),
            # then, being a backchannel, does not interrupt it: the greeting resumes where it was cut
            await _until(lambda: len(peer.media) > 40)
            sent = await peer.say(backchannel)
            onset = sent[_onset(backchannel)]
            await _until(lambda: any(t > sent[-1] + 0.5 for t in peer.media))  # the greeting goes on
            await _quiet(peer)
            assert len(peer.clears) == 1 and 0 < peer.clears[0] - onset <= 0.2, [c - onset for c in peer.clears]
            greeting_marks = [name for _, name in peer.marks]
            assert greeting_marks and set(greeting_marks) <= set(peer.echoed)
            call = line_of(app).calls[CALL_SID]
            assert call.barge.count == 0 and call.session.heard  # held, not interrupted
            assert all(complete for _, complete in call.session.heard)  # every greeting sentence heard whole

            # a question: transcribed right, answered with reply audio and marks in order
            before, lines = len(peer.media), len(call.session.state.transcript)
            await peer.say(question)
            await _until(lambda: len(call.session.state.transcript) >= lines + 2)  # heard and answered
            await _until(lambda: len(peer.media) > before + 50)  # (a 「嗯」 may come first) the answer is playing
            caller_lines = [line.text for line in call.session.state.transcript if line.speaker == "caller"]
            expected = _transcript(question_name)
            assert Levenshtein.normalized_distance(caller_lines[-1], expected) <= 0.35, caller_lines
            names = [name for _, name in peer.marks]
            order = [tuple(int(p) for p in name[1:].split(".")) for name in names]
            assert order == sorted(order) and len(set(order)) == len(order)

            # speaking over the answer: clear within 200 ms of speech onset, and no reply audio after it
            clears_before = len(peer.clears)
            sent = await peer.say(interruption)
            onset = sent[_onset(interruption)]
            assert len(peer.clears) > clears_before, "no clear after speech over the reply"
            clear = peer.clears[clears_before]
            assert 0 < clear - onset <= 0.2, f"clear {clear - onset:.3f} s after speech onset"
            cut = {name.split(".")[0] for t, name in peer.marks if t <= clear}  # the reply spoken over
            assert not [n for t, n in peer.marks if t > clear and n.split(".")[0] in cut], "the cut reply went on"
            # while the caller speaks (the recording's trailing silence is not speech: a 「嗯」 may follow it)
            late = [t for t in peer.media if onset + 0.2 < t < sent[_offset(interruption)]]
            assert late == [], f"reply audio kept coming {late[-1] - onset:.3f} s after speech onset"
            assert call.barge.count == 1
            assert any(not complete for _, complete in call.session.heard)  # the session knows what was cut
            await _until(lambda: any(t > clear + 0.1 for t in peer.media))  # and the interruption is answered

    asyncio.run(main())
    deadline = time.monotonic() + 20
    while CALL_SID in line_of(app).calls:  # the server has yet to see the hang-up
        assert time.monotonic() < deadline
        time.sleep(0.05)
    metrics = httpx.get(base + "/metrics", timeout=10).text
    assert 'ivr_turn_stage_seconds_count{stage="total"}' in metrics
    assert "ivr_barge_ins_total 0.0" not in metrics  # the call's barge-in was counted when it ended
