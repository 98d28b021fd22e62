"""A desk agent's words as text (``voice.live_transfer.AgentWords``): their 8 kHz audio through a real
speech path (webrtcvad, whisper base) becomes ``agent`` lines of the live transcript.

The agent's voice here is a real human recording (AISHELL-1, human transcript), telephone-rate, fed
before the path is ready (it is made on a worker, as a live call makes it) and after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from paths import REAL_ZH, shared

from asr.textnorm import cer
from asr.whisper_engine import WhisperEngine
from core.types import AudioFrame
from voice.codec import resample
from voice.live_transfer import AgentWords
from voice.speech import SpeechPath
from voice.speech_async import AsyncSpeechPath
from voice.wav import read_wav

pytestmark = [pytest.mark.models, pytest.mark.slow]

RECORDING = "BAC009S0764W0121.wav"


def reference(name: str) -> str:
    rows = (line.split("\t") for line in shared(REAL_ZH / "transcripts.tsv").read_text("utf-8").splitlines())
    return next(row[1] for row in rows if row[0] == name)


def frames(pcm: bytes, rate: int = 8000, frame_s: float = 0.02) -> list[AudioFrame]:
    step = int(rate * frame_s) * 2
    return [AudioFrame(pcm[i : i + step], rate) for i in range(0, len(pcm) - step + 1, step)]


def test_the_agents_speech_becomes_agent_lines(whisper_engine: WhisperEngine) -> None:
    audio = read_wav(shared(REAL_ZH / RECORDING).read_bytes())
    voice = resample(audio.pcm, audio.sample_rate, 8000)
    silence = bytes(8000 * 2)  # 1 s
    said = frames(silence + voice + silence * 2)
    published: list[tuple[str, str]] = []

    async def main() -> AgentWords:
        ready = asyncio.Event()

        async def make() -> AsyncSpeechPath:
            await ready.wait()  # still being made while the agent starts talking
            return AsyncSpeechPath(SpeechPath(whisper_engine, 8000, 2), max_frames=len(said))

        async def publish(speaker: str, text: str) -> None:
            published.append((speaker, text))

        def spawn(coro: Awaitable[None], name: str) -> asyncio.Task[Any]:
            return asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]

        words = AgentWords(make, publish, spawn)
        words.CLOSE_WAIT_S = 120.0  # a cold whisper on a loaded machine: the last words may take a while
        for frame in said[:40]:
            words.feed(frame)  # before the path: kept for it
        ready.set()
        for frame in said[40:]:
            words.feed(frame)
            await asyncio.sleep(0)
        await words.close()  # the talk ends: the last words still come
        return words

    words = asyncio.run(main())
    assert published and {speaker for speaker, _ in published} == {"agent"}
    heard = "".join(text for _, text in published)
    assert cer(reference(RECORDING), heard) <= 0.3, heard
    assert words.lines == len(published)
    assert words.path is not None and words.path.dropped_frames == 0


def test_a_path_that_cannot_be_made_leaves_the_talk_alone() -> None:
    published: list[tuple[str, str]] = []

    async def main() -> None:
        async def make() -> AsyncSpeechPath:
            raise RuntimeError("no recogniser")

        async def publish(speaker: str, text: str) -> None:
            published.append((speaker, text))

        def spawn(coro: Awaitable[None], name: str) -> asyncio.Task[Any]:
            return asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]

        words = AgentWords(make, publish, spawn)
        for frame in frames(bytes(8000 * 2)):
            words.feed(frame)
        await asyncio.sleep(0.05)
        await words.close()
        assert words.path is None and len(words._early) <= AgentWords.EARLY_FRAMES

    asyncio.run(main())
    assert published == []
