"""One live call: caller audio in, turn-taking, the dialog, reply audio out, barge-in, marks, hang-up.

Every front door (Twilio Media Streams, the browser softphone, SIP/RTP) is a thin adapter: it
implements ``Wire`` (how audio, marks, events and the hang-up reach its far end) and feeds the
call's inbound side (``feed_audio``, ``feed_dtmf``, ``mark_played``, ``stop``). Everything else —
the speech path (``AsyncSpeechPath``), when a turn ends, barge-in, what the caller heard, the
acknowledgement when an answer is slow, the fallback when nothing was understood, metrics — is
here, once. ``CallSession`` stays the brain (greet / hear / end).

Threads: recognition runs in the speech path's executor (``LiveLine``: one pool for all calls'
ASR), the dialog and speech synthesis in a separate ``work`` executor, so a long recognition never
delays another caller's greeting. Time is ``Timebase`` (a virtual one in tests). See
``voice.live_turns`` for the turn-taking and barge-in rules and ``voice.live_play`` for playback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, TypeVar

from core.errors import IvrError
from core.types import AudioFrame, EmotionLabel, Utterance
from voice.codec import Resampler
from voice.live_listen import Barge, Listener, joined
from voice.live_play import Playback, RealTime, Timebase, Voice
from voice.live_turns import LiveConfig, LivePrompts, is_preamble, unheard_tail
from voice.session import CallOutcome, CallSession, Expectation, TurnResult
from voice.speech_async import AsyncSpeechPath
from voice.tts import SentenceAudio
from voice.tts_text import split_sentences

if TYPE_CHECKING:
    from voice.bridge import Bridge
    from voice.live_transfer import AgentDesk, Handover

log = logging.getLogger(__name__)
_R = TypeVar("_R")

LIVE_EVENT_KINDS = (
    "state",  # {"state": "listening" | "thinking" | "speaking"}
    "partial",  # {"text"}: the caller's words so far (vosk; whisper has no partials)
    "final",  # {"text", "confidence"}: a recognised segment
    "turn",  # {"text", "intents": [...{"name", "confidence", "slots"}], "emotion": {"label", "score"}, "continued"}
    "reply",  # {"text", "sentences"}
    "heard",  # {"text", "complete"}: a reply sentence reached the caller whole, or was cut off
    "barge_in",  # {"confirmed", "resumed"}: speech held the reply (clear sent); dropped it; or it went on
    "latency",  # {"asr_ms", "wait_ms", "understand_ms", "dialog_ms", "reply_ms", "total_ms", "first_audio_ms"}
    "ended",  # {"outcome": ..., "reason"}
    "error",  # {"message"}
)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """Something a screen may show (the softphone page); ``at`` is seconds since the call started."""

    kind: str  # one of LIVE_EVENT_KINDS
    at: float
    data: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))


class Wire(Protocol):
    """What a front door does for the core. Every method may be called only from the event loop."""

    async def send_audio(self, frame: AudioFrame) -> None:
        """Play 20 ms of reply audio (PCM16, 8 kHz); the core paces these in real time."""

    async def clear(self) -> None:
        """Drop reply audio already sent but not yet played (barge-in)."""

    async def mark(self, name: str) -> None:
        """A sentence ends here: call ``LiveCall.mark_played(name)`` when the far end has played it."""

    async def event(self, event: LiveEvent) -> None:
        """Show ``event`` (softphone page); a wire without a screen ignores it."""

    async def hangup(self) -> None:
        """The hotline ends the call: hang up the far end."""


class LiveCall:
    """The life of one call (see the module docstring). ``run()`` until it returns the outcome."""

    def __init__(
        self,
        session: CallSession,
        speech: Callable[[], AsyncSpeechPath],
        voice: Voice,
        wire: Wire,
        *,
        rate: int = 8000,
        config: LiveConfig | None = None,
        prompts: LivePrompts | None = None,
        time: Timebase | None = None,
        work: Executor | None = None,
        observe: Callable[[Mapping[str, float]], None] | None = None,
        desk: AgentDesk | None = None,
        agent_speech: Callable[[], AsyncSpeechPath] | None = None,
    ) -> None:
        self.session, self.voice, self.wire = session, voice, wire
        self.desk = desk  # the server's agents: a transfer waits for one here (None: nobody to wait for)
        self.agent_speech = agent_speech  # a speech path for a desk agent's 8 kHz audio (blocking: in_work)
        self.holding = False  # on hold for an agent: the caller's audio is not recognised
        self.bridge: Bridge | None = None  # talking to an agent's desktop page
        self.handover: Handover | None = None
        self._to_agent: Resampler | None = None if rate == 8000 else Resampler(rate, 8000)
        self.rate = rate
        self.config = config or LiveConfig()
        self.prompts = prompts or LivePrompts()
        self.time = time or RealTime()
        self.work = work
        self._observe = observe
        self._make_speech = speech
        self.listener = Listener(self, speech())
        self.barge = Barge(self)
        self.playback: Playback | None = None
        self.dropped_turns = 0
        self._resamplers: dict[int, Resampler] = {}
        self._turns: asyncio.Queue[_Turn] = asyncio.Queue(4)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self._reason = ""
        self._hung_up = False
        self._started = self.time.now()
        self._replies = 0
        self._last_heard: list[str] = []
        self._generation = 0  # bumped by every confirmed barge-in: a reply begun before it is not played
        self._last_turn: _Turn | None = None  # the caller may still be continuing it (see take_turn_heard)
        self._preamble: _Turn | None = None  # a turn that was only a preamble: the next turn goes on from it
        self._answering = False  # the brain is working on a turn (or saying its answer)
        self._hold: asyncio.Task[None] | None = None  # the 「嗯」 of a segment still being recognised
        self._hold_at: float | None = None  # when that 「嗯」 began playing
        self.held_segment_end: float | None = None  # stream time of the segment end the last 「嗯」 followed

    # -- inbound, from the wire (never blocks) ----------------------------------------------------

    def feed_audio(self, frame: AudioFrame) -> None:
        """Caller audio at any sample rate (PCM16); resampled once to the recogniser's rate."""
        if self._stopped.is_set() or not frame.pcm:
            return
        if frame.sample_rate != self.rate:
            resampler = self._resamplers.setdefault(frame.sample_rate, Resampler(frame.sample_rate, self.rate))
            frame = AudioFrame(resampler.process(frame.pcm), self.rate)
        if self.holding:
            return  # hold audio may echo back: nothing said on hold is taken as a turn
        if self.bridge is not None:
            self.bridge.from_caller(self._to_agent.process(frame.pcm) if self._to_agent else frame.pcm)
        self.listener.feed(AudioFrame(frame.pcm, self.rate))  # contiguous: the wire's own timestamps are not used

    def feed_dtmf(self, digit: str) -> None:
        """A keypad key; digits are collected until ``#`` (or a pause) and taken as a caller turn."""
        if not self._stopped.is_set():
            self.listener.dtmf(digit)

    def mark_played(self, name: str) -> None:
        """The far end played everything up to the mark ``name``."""
        play = self.playback.sentence_for_mark(name) if self.playback else None
        if play is None or play.heard or self.barge.cleared:
            return
        play.heard = True
        if self._last_turn is not None and self.playback is not None and self.playback.answers is self._last_turn:
            self._last_turn = None  # the caller heard a sentence of the answer whole: what they say next is new
        self.session.note_heard(play.text, True)
        self.emit("heard", text=play.text, complete=True)

    def stop(self, reason: str = "caller hung up") -> None:
        """The far end is gone (or the server shuts down): end the call now."""
        if not self._stopped.is_set():
            self._reason = reason
            self._stopped.set()
            handing = self.handover is not None and self.handover.handing
            if self.session.waiting_for_agent and not self._hung_up and not handing:
                self.session.left_queue()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # -- life -------------------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        """Greet, converse until either side ends the call, then record it; returns the outcome."""
        self.spawn(self.listener.run(), "listen")
        self.spawn(self._brain(), "brain")
        try:
            await self._stopped.wait()
        finally:
            await self._shutdown()
        outcome = await self.in_work(self.session.end)
        self.emit("ended", outcome=outcome.type, reason=self._reason)
        await self._flush_events()
        return outcome

    def spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        """A task owned by this call (reference kept, cancelled at the end, failures logged)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("live call task %s failed", task.get_name(), exc_info=task.exception())
            self.stop(f"internal error in {task.get_name()}")

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self.listener.close()

    def elapsed(self) -> float:
        return round(self.time.now() - self._started, 3)

    def emit(self, kind: str, **data: object) -> None:
        """Hand ``LiveEvent(kind, data)`` to the wire without waiting for it."""
        self.spawn(self._send_event(LiveEvent(kind, self.elapsed(), data)), f"event-{kind}")

    async def _send_event(self, event: LiveEvent) -> None:
        with contextlib.suppress(Exception):
            await self.wire.event(event)

    async def _flush_events(self) -> None:
        pending = [t for t in self._tasks if t.get_name().startswith("event-")]
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    async def in_work(self, call: Callable[..., _R], *args: object) -> _R:
        return await asyncio.get_running_loop().run_in_executor(self.work, call, *args)

    # -- turns ------------------------------------------------------------------------------------

    def take_turn_heard(
        self, utterance: Utterance, speech_end: float, final_at: float, speech_start: float | None = None
    ) -> None:
        """A caller turn is complete (speech or keys): queue it for the dialog.

        Speech that began within ``continue_s`` of the last turn being taken, before the caller heard a
        sentence of its answer whole, continues that turn: its answer is dropped and the two are
        heard as one (``_answer`` retracts the last turn in the session).
        """
        if self.handover is not None:  # talking to an agent: the caller's words are their live transcript
            on_hold = self.holding or (speech_start is not None and speech_start < self.handover.hold_ended_at)
            if utterance.text and not on_hold:
                self.spawn(self.handover.publish_line("caller", utterance.text), "line")
            return
        turn = _Turn(utterance, speech_end, final_at, self.time.now())
        last = self._last_turn
        if speech_start is not None and last is not None and speech_start - last.committed <= self.config.continue_s:
            turn.continues = last
            self._generation += 1  # an answer still being prepared is not played
            if self.playback is not None:
                self.spawn(self.barge.confirm(), "confirm")
        self._last_turn = turn if speech_start is not None else None
        self._queue(turn)

    def take_turn_unheard(self, speech_end: float) -> None:
        """The caller spoke but nothing was recognised: ask them to repeat."""
        if self.handover is not None:
            return
        now = self.time.now()
        self._queue(_Turn(Utterance("", confidence=0.0), speech_end, now, now))

    def _queue(self, turn: _Turn) -> None:
        if self._turns.full():
            self._turns.get_nowait()
            self.dropped_turns += 1
        self._turns.put_nowait(turn)

    async def _brain(self) -> None:
        greeting = await self.in_work(self.session.greet)
        await self.say("".join(a.text for a in greeting))
        while True:
            while not self.session.ended:
                turn = await self._turns.get()
                self._answering = True
                try:
                    await self._answer(turn)
                finally:
                    self._answering = False
            await self._await_last_marks()
            if self.desk is None or not self.session.waiting_for_agent:
                break
            from voice.live_transfer import Handover

            self.handover = Handover(self, self.desk)
            await self.handover.run()
            if self.stopped or self.session.ended:
                return
            self.handover = None  # nobody came: the caller heard the booked callback, the bot serves them again
        await self.hang_up()

    async def _answer(self, turn: _Turn) -> None:
        self.emit("state", state="thinking")
        generation = self._generation
        await self._join_earlier(turn)
        if turn.utterance.text and is_preamble(turn.utterance.text) and self.session.expecting() is Expectation.FREE:
            self._preamble = turn  # nothing asked yet: no intent's answer, the caller is asked to go on
            neutral = {"label": EmotionLabel.NEUTRAL.value, "score": 0.0}
            self.emit(
                "turn", text=turn.utterance.text, intents=[], emotion=neutral, continued=turn.continues is not None
            )
            await self.say(self.prompts.go_on, turn, generation=generation)
            return
        ack = self._held_on(turn) or self.spawn(self._acknowledge_later(turn), "ack")
        result = await self._hear(turn) if turn.utterance.text else None
        turn.answered = result is not None
        turn.dialog_done = self.time.now()
        text = turn.reply = result.reply if result is not None else self.prompts.not_heard
        if result is not None:
            self._emit_turn(result, continued=turn.continues is not None)
            turn.understand_s = result.latency_ms.get("understand", 0.0) / 1000
        await self.say(text, turn, ack=ack, generation=generation)

    async def _join_earlier(self, turn: _Turn) -> None:
        """A continued turn (retracted from the session) or a preamble goes in front of this turn's text."""
        earlier, self._preamble = turn.continues or self._preamble, None
        if earlier is None or not turn.utterance.text or not earlier.utterance.text:
            turn.continues = None
            return
        if earlier.answered and not await self.in_work(self.session.retract_last_turn):
            turn.continues = None  # the earlier turn changed something: its answer is due, this turn is new
            await self.say(earlier.reply)
            return
        turn.utterance = joined([earlier.utterance, turn.utterance])

    async def _hear(self, turn: _Turn) -> TurnResult | None:
        try:
            return await self.in_work(self.session.hear, turn.utterance, turn.asr_ms)
        except IvrError as err:
            log.warning("turn failed: %s", err)
            self.emit("error", message=str(err))
            return None
        except Exception:  # a bug must not leave the caller on a dead line: they hear the fallback
            log.exception("turn failed")
            self.emit("error", message="internal error")
            return None

    def hold_on_later(self, speech_end: float, segment_end: float) -> None:
        """The VAD closed a segment whose text is still being recognised: 「嗯」 at ``speech_end + hold_on_s``.

        Only on a quiet line with no turn being answered; dropped (``drop_hold_on``) when the text
        comes first or the caller speaks again. With whisper the text of a turn comes ~0.5-1 s after
        the speech end: this is the first thing the caller hears then, not silence.
        """
        if not self.prompts.hold_on or self._answering or self.playback is not None or not self._turns.empty():
            return
        if self.handover is not None:  # the caller is waiting for or talking to an agent: the bot keeps quiet
            return
        self.drop_hold_on()
        self._hold_at, self.held_segment_end = None, segment_end
        self._hold = self.spawn(self._hold_on_at(speech_end + self.config.hold_on_s), "hold")

    def drop_hold_on(self) -> None:
        """A 「嗯」 not yet begun is not needed any more; one playing is let finish."""
        if self._hold is not None and self._hold_at is None and not self._hold.done():
            self._hold.cancel()

    async def _hold_on_at(self, at: float) -> None:
        await self.time.sleep(max(0.0, at - self.time.now()))
        if self._answering or self.playback is not None or self.listener.quiet_for() < self.config.hold_quiet_s:
            return  # (loud frames since: the caller went on, and the recogniser has not caught up yet)
        self._hold_at = self.time.now()
        await self.say(self.prompts.hold_on, marks=False)  # the answer may follow it at once

    def _held_on(self, turn: _Turn) -> asyncio.Task[None] | None:
        """The 「嗯」 heard (or being heard) since this turn's speech end: it stands for the acknowledgement."""
        hold, at = self._hold, self._hold_at
        self._hold = None
        if hold is not None and at is None:
            hold.cancel()
        if hold is None or at is None or at < turn.speech_end:
            return None
        turn.first_audio = at
        return hold

    async def _acknowledge_later(self, turn: _Turn) -> None:
        await self.time.sleep(self.config.ack_after_s)
        turn.first_audio = self.time.now()
        await self.say(self.prompts.acknowledge)

    def _emit_turn(self, result: TurnResult, *, continued: bool) -> None:
        u = result.understanding
        intents = [{"name": i.name, "confidence": round(i.confidence, 3), "slots": dict(i.slots)} for i in u.intents]
        emotion = {"label": u.emotion.label.value, "score": round(u.emotion.score, 3)}
        self.emit("turn", text=result.heard, intents=intents, emotion=emotion, continued=continued)

    # -- speaking ---------------------------------------------------------------------------------

    async def say(
        self,
        text: str,
        turn: _Turn | None = None,
        *,
        ack: asyncio.Task[None] | None = None,
        generation: int | None = None,
        marks: bool = True,
    ) -> bool:
        """Play ``text``; ``False`` when a barge-in cut it off. Sentences heard last time are skipped.

        The first sentence is synthesised before anything else happens; an acknowledgement
        (``ack``) still waiting by then is dropped, one already playing is let finish — unless it is
        a 「嗯」 (the "hold" task), which is cut short: the answer is what the caller waits for. Returns once
        the far end has played it (its marks came back), or with ``marks=False`` once it is all
        sent: what is said next queues behind it at the far end.
        """
        sentences = unheard_tail(split_sentences(text), self._last_heard)
        audio = aiter(self.voice.sentences(sentences))
        first = await anext(audio, None)
        if ack is not None:
            if ack.get_name() == "hold" or (turn is not None and turn.first_audio is None):
                ack.cancel()
            await asyncio.wait({ack})
        if first is None or (generation is not None and generation != self._generation):
            return False
        self._replies += 1
        self.emit("reply", text=text, sentences=sentences)
        self.emit("state", state="speaking")
        playback = Playback(
            self.wire, self.time, f"r{self._replies}", self.config.frame_s, self.config.lead_s,
            on_first_frame=(lambda at: self._first_audio(turn, at)) if turn else None,
        )  # fmt: skip
        playback.answers = turn
        self.playback = playback
        self.barge.reset()
        try:
            task = self.spawn(playback.play(_chain(first, audio)), "playback")
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:  # (a 「嗯」 cut short by its answer): no frame of it after this
                task.cancel()
                raise
            if marks:
                await self._await_marks(playback)
        finally:  # also when this say() itself is cancelled (an acknowledgement cut off by a barge-in)
            if self.playback is playback:
                self.playback = None
        self._last_heard = [s.text for s in playback.sentences if s.heard]
        self.emit("state", state="listening")
        return not task.cancelled()

    def cut_off(self) -> None:
        """Barge-in confirmed: drop the reply; the sentences not played whole were not heard."""
        playback = self.playback
        if playback is None:
            return
        self._generation += 1
        for task in list(self._tasks):
            if task.get_name() in ("playback", "ack", "hold"):
                task.cancel()
        for play in playback.sentences:
            if not play.heard:
                self.session.note_heard(play.text, False)
                self.emit("heard", text=play.text, complete=False)

    async def _await_marks(self, playback: Playback) -> None:
        deadline = self.time.now() + self.config.mark_timeout_s
        while not self.barge.cleared and not all(s.heard for s in playback.sentences):
            if self.time.now() >= deadline:
                return
            await self.time.sleep(self.config.frame_s)

    async def _await_last_marks(self) -> None:
        """Before hanging up: the goodbye has been played (its marks came back), or the timeout."""
        if self.playback is not None:
            await self._await_marks(self.playback)

    def _first_audio(self, turn: _Turn | None, at: float) -> None:
        if turn is None or turn.dialog_done is None:
            return
        stages = turn.stages(at)
        turn.dialog_done = None  # one latency report per turn
        self.emit("latency", **{f"{k}_ms": round(v * 1000, 1) for k, v in stages.items()})
        if self._observe is not None:
            self._observe(stages)

    async def close(self, reason: str) -> None:
        """End the call from our side now (server shutdown): goodbye, hang up; ``run()`` records it."""
        if self._stopped.is_set():
            return
        for task in list(self._tasks):
            if task.get_name() in ("brain", "ack", "hold", "playback", "commit", "decide", "dtmf"):
                task.cancel()
        self.playback = None
        if self.prompts.goodbye:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.say(self.prompts.goodbye), self.config.mark_timeout_s * 2)
        await self.hang_up(reason)

    async def hang_up(self, reason: str = "the hotline ended the call") -> None:
        if not self._hung_up:
            self._hung_up = True
            with contextlib.suppress(Exception):
                await self.wire.hangup()
        self.stop(reason)

    def restart_speech(self) -> AsyncSpeechPath:
        """A fresh speech path after the recogniser failed (the failed one is never reused)."""
        return self._make_speech()


@dataclass(slots=True)
class _Turn:
    """A caller turn on its way to the dialog, with the times of its stages (``Timebase`` seconds)."""

    utterance: Utterance
    speech_end: float  # the caller's last loud frame arrived (keys: the last key)
    final_at: float  # the recogniser's text was ready
    committed: float  # the end of turn was decided
    dialog_done: float | None = None
    first_audio: float | None = None  # first audio of any kind (the acknowledgement counts)
    understand_s: float = 0.0  # of the dialog stage, the understanding (normalise, NLU, emotion)
    continues: _Turn | None = None  # the earlier turn this one goes on with (its answer is dropped)
    answered: bool = False  # the session heard this turn (so continuing it retracts it there)
    reply: str = ""  # what the dialog answered

    @property
    def asr_ms(self) -> float:
        return max(0.0, self.final_at - self.speech_end) * 1000

    def stages(self, first_reply_frame: float) -> dict[str, float]:
        """Seconds per stage: speech end → final → turn → dialog → first reply frame; and the total."""
        done = self.dialog_done if self.dialog_done is not None else first_reply_frame
        return {
            "asr": max(0.0, self.final_at - self.speech_end),
            "wait": max(0.0, self.committed - self.final_at),
            "understand": self.understand_s,
            "dialog": max(0.0, done - self.committed - self.understand_s),
            "reply": max(0.0, first_reply_frame - done),
            "total": max(0.0, first_reply_frame - self.speech_end),
            "first_audio": max(0.0, min(first_reply_frame, self.first_audio or first_reply_frame) - self.speech_end),
        }


async def _chain(first: SentenceAudio, rest: AsyncIterator[SentenceAudio]) -> AsyncIterator[SentenceAudio]:
    yield first
    async for item in rest:
        yield item
