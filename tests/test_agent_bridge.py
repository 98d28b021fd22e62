"""The caller ⇄ agent audio bridge: frames in, frames out, bounded queues that count drops, close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from core.errors import AudioFormatError
from voice.bridge import FRAME_BYTES, Bridge
from voice.codec import pcm16_bytes, pcm16_samples


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return pcm16_bytes((8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16))


async def drain(frames: AsyncIterator[bytes]) -> list[bytes]:
    """Everything until the iterator ends (a guard, not a timing: an iterator that never ends fails)."""

    async def collect() -> list[bytes]:
        return [frame async for frame in frames]

    return await asyncio.wait_for(collect(), 5)


def test_caller_audio_reaches_the_agent_as_it_came_and_ends_on_close() -> None:
    async def run() -> None:
        bridge = Bridge("c1")
        chunks = [tone(8000, 0.02, hz) for hz in (300, 500, 700)]
        for chunk in chunks:
            bridge.from_caller(chunk)
        bridge.close()
        assert await drain(bridge.caller_audio()) == chunks  # drained, then the iterator ends
        bridge.from_caller(chunks[0])  # after close: nothing more is queued
        assert await drain(bridge.caller_audio()) == []

    asyncio.run(run())


def test_agent_audio_at_16k_leaves_as_20ms_frames_at_8k() -> None:
    async def run() -> None:
        bridge = Bridge("c1")
        mic = tone(16000, 0.5, 440)
        for start in range(0, len(mic), 640):  # the page's 20 ms frames at 16 kHz
            bridge.from_agent(mic[start : start + 640], 16000)
        bridge.close()
        frames = await drain(bridge.agent_audio())
        assert frames and all(len(f) == FRAME_BYTES for f in frames)
        assert 22 <= len(frames) <= 25  # 0.5 s at 8 kHz, less the resampler's delay
        samples = pcm16_samples(b"".join(frames)).astype(float)
        spectrum = np.abs(np.fft.rfft(samples[800:]))
        peak_hz = np.argmax(spectrum) * 8000 / len(samples[800:])
        assert abs(peak_hz - 440) < 10  # the same tone, now at 8 kHz

    asyncio.run(run())


def test_agent_audio_at_8k_is_cut_into_frames_without_loss() -> None:
    async def run() -> None:
        bridge = Bridge("c1")
        mic = tone(8000, 0.1)
        bridge.from_agent(mic[:500], 8000)  # odd-sized pieces: whole frames come out as they complete
        bridge.from_agent(mic[500:], 8000)
        bridge.close()
        assert b"".join(await drain(bridge.agent_audio())) == mic

    asyncio.run(run())


def test_a_listener_that_falls_behind_loses_the_oldest_audio_and_it_is_counted() -> None:
    async def run() -> None:
        bridge = Bridge("c1", "A01", max_frames=5)
        chunks = [bytes([i, 0]) * 160 for i in range(8)]
        for chunk in chunks:
            bridge.from_caller(chunk)
        bridge.from_agent(b"\x01\x00" * 160 * 7, 8000)
        assert bridge.dropped_to_agent == 3 and bridge.dropped_to_caller == 2
        bridge.close()
        assert await drain(bridge.caller_audio()) == chunks[3:]  # the newest five
        assert len(await drain(bridge.agent_audio())) == 5

    asyncio.run(run())


def test_a_waiting_reader_wakes_for_audio_and_for_close() -> None:
    async def run() -> None:
        bridge = Bridge("c1")
        reader = asyncio.create_task(drain(bridge.agent_audio()))
        listener = asyncio.create_task(drain(bridge.caller_audio()))
        await asyncio.sleep(0)
        assert not reader.done() and not listener.done()  # nothing yet: they wait
        bridge.from_agent(b"\x00\x00" * 160, 8000)
        bridge.from_caller(b"\x00\x00" * 80)
        await asyncio.sleep(0)
        bridge.close()
        assert await asyncio.wait_for(reader, 1) == [b"\x00\x00" * 160]
        assert await asyncio.wait_for(listener, 1) == [b"\x00\x00" * 80]

    asyncio.run(run())


def test_odd_length_audio_is_refused() -> None:
    bridge = Bridge("c1")
    with pytest.raises(AudioFormatError):
        bridge.from_caller(b"\x00\x00\x00")
    with pytest.raises(AudioFormatError):
        bridge.from_agent(b"\x00", 16000)
