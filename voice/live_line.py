"""The server's live line: what every live call shares, and the one way a front door opens a call.

``LiveLine`` holds the thread pools (one for recognition, one for the dialog and speech
synthesis, so a long recognition never delays another caller's greeting), the voice with its
fixed prompts rendered once at start-up, and the live calls in progress. A front door calls
``await line.open(wire, caller=...)`` and then ``await call.run()``; ``line_of(app)`` finds the
line of a FastAPI app (made on first use from ``app.state.hotline``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from core.errors import IvrError
from voice.bridge import Bridge
from voice.hotline import Hotline
from voice.live import LiveCall, Wire
from voice.live_metrics import BARGE_INS, DROPPED_FRAMES, observe_turn
from voice.live_play import CachedVoice, Timebase, prompt_sentences
from voice.live_transfer import AgentDesk
from voice.live_turns import LiveConfig, LivePrompts
from voice.speech import TELEPHONE_RATE, SpeechPath
from voice.speech_async import AsyncSpeechPath

log = logging.getLogger(__name__)


class LiveLine:
    """Shared parts of live calls (see the module docstring)."""

    def __init__(
        self,
        hotline: Hotline,
        *,
        asr_pool: Executor | None = None,
        work_pool: Executor | None = None,
        max_calls: int = 100,
        config: LiveConfig | None = None,
        prompts: LivePrompts | None = None,
        desk: AgentDesk | None = None,
        audio_base: str | None = None,
    ) -> None:
        self.hotline = hotline
        self.desk = desk  # the agents a transfer waits for (None: transfers become callbacks)
        self.audio_base = audio_base  # ws://host:port: an agent page sends audio to <base>/agent/audio/<call>
        self.config = config or LiveConfig()
        self.prompts = prompts or _prompts(hotline)
        self.max_calls = max_calls
        self._own_pools = asr_pool is None or work_pool is None
        self.asr_pool = asr_pool or ThreadPoolExecutor(2, thread_name_prefix="live-asr")
        self.work_pool = work_pool or ThreadPoolExecutor(4, thread_name_prefix="live-work")
        self.calls: dict[str, LiveCall] = {}
        self.bridges: dict[str, Bridge] = {}  # transferred calls' audio to and from the agent desktop
        self._voice: CachedVoice | None = None
        self._ready: asyncio.Lock | None = None
        self._opening = 0  # calls being set up: each holds its place on the line

    @property
    def full(self) -> bool:
        """No room for another live call."""
        return len(self.calls) + self._opening >= self.max_calls

    def fixed_prompts(self) -> list[str]:
        """Sentences known before any call: the unknown caller's greeting, goodbye, our own prompts."""
        from dialog.manager import greeting
        from dialog.replies import render
        from dialog.state import Context

        ctx = Context.create(self.hotline.shop, self.hotline.clock.now())
        texts = [greeting(None, ctx), render("reprompt"), *self.prompts.all()]
        return prompt_sentences(texts)

    def _prepare(self) -> CachedVoice:
        from voice import voices
        from voice.tts import PromptCache

        synthesizer = voices.synthesizer(self.hotline.settings)
        cache = PromptCache(synthesizer, self.fixed_prompts())
        self.hotline.warm_up()
        log.info("live line ready: %d prompts rendered", len(cache))
        return CachedVoice(synthesizer, cache, self.work_pool)

    async def ready(self) -> CachedVoice:
        """Render the fixed prompts and warm the brain (once, at start-up); later calls return at once."""
        if self._ready is None:
            self._ready = asyncio.Lock()
        async with self._ready:
            if self._voice is None:
                loop = asyncio.get_running_loop()
                self._voice = await loop.run_in_executor(self.work_pool, self._prepare)
        return self._voice

    async def open(
        self,
        wire: Wire,
        *,
        caller: str | None,
        call_id: str | None = None,
        rate: int = 8000,
        time: Timebase | None = None,
        channel: str = "phone",
    ) -> LiveCall:
        """A live call on ``wire`` (caller audio recognised at ``rate`` Hz: 8000 or 16000).

        ``LineFullError`` when ``max_calls`` calls are live; the recogniser's own error
        (``ModelMissingError``…) when no speech engine can serve.
        """
        if self.full:
            raise LineFullError(f"the live line is holding {self.max_calls} calls; try again shortly")
        self._opening += 1  # held across the awaits below, or a burst of calls would all pass the check
        try:
            call = await self._open(wire, caller, call_id or uuid.uuid4().hex[:12], rate, time, channel)
        finally:
            self._opening -= 1
        self.calls[call.session.call_id] = call
        return call

    async def _open(  # noqa: PLR0913 - the call's facts
        self, wire: Wire, caller: str | None, call_id: str, rate: int, time: Timebase | None, channel: str
    ) -> LiveCall:
        voice = await self.ready()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.work_pool, self.hotline.engine)
        # A new recogniser costs ~0.1 s of CPU (vosk builds its decoder): off the loop, or 20 calls
        # arriving at once stall every call's RTP pacer for seconds.
        first = [await loop.run_in_executor(self.work_pool, self._speech, rate)]
        audio_url = f"{self.audio_base}/agent/audio/{call_id}" if self.audio_base and self.desk else None
        session = self.hotline.session(caller, call_id, channel=channel, audio_url=audio_url)
        return LiveCall(
            session,
            lambda: first.pop() if first else self._speech(rate),
            voice,
            wire,
            rate=rate,
            config=self.config,
            prompts=self.prompts,
            time=time,
            work=self.work_pool,
            observe=observe_turn,
            desk=self.desk,
            agent_speech=(lambda: self._speech(TELEPHONE_RATE)) if self.desk is not None else None,
        )

    def closed(self, call: LiveCall) -> None:
        """``call`` has ended: forget it and count what it dropped."""
        self.calls.pop(call.session.call_id, None)
        BARGE_INS.inc(call.barge.count)
        DROPPED_FRAMES.inc(call.listener.dropped_frames)

    def _speech(self, rate: int) -> AsyncSpeechPath:
        vad: dict[str, object] = {"hangover_ms": self.config.hangover_ms, "start_ms": self.config.vad_start_ms}
        settings = self.hotline.settings
        engine, pause = self.hotline.engine(), self.config.pause_ms
        path = SpeechPath(engine, rate, settings.vad_aggressiveness, pause_ms=pause, vad_options=vad)
        return AsyncSpeechPath(path, max_frames=250, executor=self.asr_pool)  # 5 s: whisper may be busy that long

    async def shutdown(self) -> None:
        """Server shutdown: every live call hears goodbye and is hung up and recorded; pools released."""
        calls = list(self.calls.values())
        if calls:
            await asyncio.wait([asyncio.ensure_future(c.close("server shutting down")) for c in calls], timeout=8.0)
        if self._own_pools:
            for pool in (self.asr_pool, self.work_pool):
                pool.shutdown(wait=False, cancel_futures=True)


def _prompts(hotline: Hotline) -> LivePrompts:
    from dialog.replies import render

    return LivePrompts(
        go_on=render("prompt.go_on"),
        hold_on=render("prompt.hold_on"),
        goodbye=render("goodbye", shop=hotline.shop.info().name),
    )


class LineFullError(IvrError):
    """Every live line is busy; a new call may succeed shortly."""

    retryable = True


def line_of(app: Any) -> LiveLine:
    """The live line of a FastAPI app, made on first use from ``app.state`` (its hotline and executors)."""
    line = getattr(app.state, "live_line", None)
    if line is None:
        state = app.state
        asr, work = getattr(state, "asr_executor", None), getattr(state, "control_executor", None)
        line = state.live_line = LiveLine(state.hotline, asr_pool=asr, work_pool=work)
    return line
