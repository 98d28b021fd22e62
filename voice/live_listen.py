"""The listening half of a live call: speech events → turns, keypad → turns, and barge-in.

``Listener`` feeds caller audio to the speech path, follows its events, decides when a turn ends
(``LiveConfig.turn_wait`` by what the dialog expects) and collects keypad digits. ``Barge``
decides whether caller speech during a reply is a barge-in, a backchannel or our own echo (rules:
``voice.live_turns``). Both belong to one ``LiveCall`` and run on its event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from asr.textnorm import join_words
from core.types import AudioFrame, SpeechEnded, SpeechStarted, TranscriptEvent, TranscriptKind, Utterance
from voice.live_play import SentencePlay
from voice.live_turns import DTMF_KEYS, is_backchannel, is_echo
from voice.speech_async import AsyncSpeechPath

if TYPE_CHECKING:
    from voice.live import LiveCall

log = logging.getLogger(__name__)
_MAX_DIGITS = 32


class Listener:
    """Caller audio and keys of one call → turns for the dialog."""

    def __init__(self, call: LiveCall, path: AsyncSpeechPath) -> None:
        self.call, self.path = call, self._follow(path)
        self.dropped_frames = 0
        self._fed_s = 0.0  # seconds of audio handed to the speech path
        self._fed_at: deque[tuple[float, float]] = deque(maxlen=3000)  # (stream seconds, time fed)
        self._last_loud = -1e9
        self._utterances: list[Utterance] = []
        self._speech_end: float | None = None
        self._segment_s = 0.0
        self._final_at = 0.0
        self._swallowed = False
        self._speaking = False  # inside a segment: no turn is taken while the caller talks
        self._turn_start: float | None = None  # when the caller began the turn being collected
        self._commit: asyncio.Task[None] | None = None
        self._digits = ""
        self._dtmf_timer: asyncio.Task[None] | None = None

    # -- audio ------------------------------------------------------------------------------------

    def feed(self, frame: AudioFrame) -> None:
        now = self.call.time.now()
        if frame.pcm and _dbfs(frame.pcm) >= self.call.config.loud_dbfs:
            self._last_loud = now
        self._fed_s += frame.duration
        self._fed_at.append((self._fed_s, now))
        if not self.path.offer(frame):
            self.dropped_frames += 1

    @property
    def stream_s(self) -> float:
        """Seconds of caller audio handed to the speech path: the clock of its events' times."""
        return self._fed_s

    def quiet_for(self) -> float:
        """Seconds since the caller's last loud frame."""
        return self.call.time.now() - self._last_loud

    def _fed_time(self, stream_s: float) -> float:
        """When the audio at ``stream_s`` seconds into the stream was fed (now if not known)."""
        for fed_s, at in self._fed_at:
            if fed_s >= stream_s:
                return at
        return self.call.time.now()

    async def run(self) -> None:
        """Follow the speech path's events until the call ends; a failed recogniser is replaced."""
        while True:
            try:
                async for event in self.path:
                    self._on(event)
                return
            except Exception as err:  # the recogniser failed: say so to the caller, carry on with a new one
                log.warning("speech path failed: %s", err)
                self.call.emit("error", message=f"speech recognition failed: {err}")
                await self.path.aclose()
                self.path = self._follow(self.call.restart_speech())
                self._utterances.clear()
                self.call.take_turn_unheard(self.call.time.now())

    async def close(self) -> None:
        await self.path.aclose()

    def _follow(self, path: AsyncSpeechPath) -> AsyncSpeechPath:
        """``path``, telling this listener of each segment end before its text (``_segment_closed``)."""
        path.on_segment_end = self._segment_closed
        return path

    def _segment_closed(self, ended: SpeechEnded) -> None:
        """The VAD closed a segment; its ``SpeechEnded`` comes once the recogniser has its text."""
        self.call.hold_on_later(self._fed_time(ended.end), ended.end)

    def _on(self, event: object) -> None:
        if isinstance(event, SpeechStarted):
            self.call.drop_hold_on()
            self._cancel_commit()
            self._swallowed = False
            self._speaking = True
            if not self._utterances:  # no text held yet: this speech begins a turn
                self._turn_start = self.call.time.now()
            self.call.barge.speech_started()
        elif isinstance(event, TranscriptEvent) and event.kind is TranscriptKind.PARTIAL and event.text:
            self.call.emit("partial", text=event.text)
            self.call.barge.partial(event.text)
        elif isinstance(event, SpeechEnded):
            self.call.drop_hold_on()  # the text is here: the answer (or its acknowledgement) follows
            self._speaking = False
            self._speech_end = self._fed_time(event.end)
            self._segment_s = event.end - event.start
            self._schedule_commit(self._wait_left(None))
        elif isinstance(event, Utterance):
            self._on_utterance(event)

    def _wait_left(self, confidence: float | None) -> float:
        """What is left of the end-of-turn wait, which counts from the caller's speech end."""
        text = join_words(u.text for u in self._utterances)
        wait = self.call.config.turn_wait(self.call.session.expecting(), confidence, text)
        if wait == 0.0 or self._speech_end is None:
            return wait
        return max(0.0, self._speech_end + wait - self.call.time.now())

    def _on_utterance(self, utterance: Utterance) -> None:
        self.call.emit("final", text=utterance.text, confidence=round(utterance.confidence, 3))
        held = self.call.held_segment_end  # the text of the segment a 「嗯」 followed is no reaction to it
        if (held is None or utterance.start >= held) and self.call.barge.swallow(utterance.text):
            self._swallowed = True  # echo or a backchannel: no turn, and no "please repeat" either
            return
        self._utterances.append(utterance)
        self._final_at = self.call.time.now()
        if not self._speaking:  # a late final while the caller talks on: the next speech end decides
            self._schedule_commit(self._wait_left(utterance.confidence))

    # -- end of turn ------------------------------------------------------------------------------

    def _schedule_commit(self, wait: float) -> None:
        self._cancel_commit()
        self._commit = self.call.spawn(self._commit_after(wait), "commit")

    def _cancel_commit(self) -> None:
        if self._commit is not None and not self._commit.done():
            self._commit.cancel()
        self._commit = None

    async def _commit_after(self, wait: float) -> None:
        if wait > 0:
            await self.call.time.sleep(wait)
        self._commit = None
        now = self.call.time.now()
        speech_end = self._speech_end if self._speech_end is not None else now
        if self._utterances:
            utterance = joined(self._utterances)
            self._utterances = []
            start, self._turn_start = self._turn_start, None
            self.call.take_turn_heard(utterance, speech_end, min(self._final_at, now), start)
        elif self.call.barge.nothing_said() or self._swallowed:
            pass  # noise, echo or a backchannel over a reply: the reply goes on
        elif self._segment_s >= self.call.config.not_heard_s and self.call.playback is None:
            self.call.take_turn_unheard(speech_end)

    # -- keys -------------------------------------------------------------------------------------

    def dtmf(self, digit: str) -> None:
        if digit not in DTMF_KEYS:
            log.warning("ignoring DTMF key %r", digit[:8])
            return
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
            self._dtmf_timer = None
        if self.call.playback is not None:
            self.call.spawn(self.call.barge.confirm(), "confirm")  # a key press stops the reply, like speech
        if digit == "#":
            self._keys_done()
            return
        if len(self._digits) < _MAX_DIGITS:
            self._digits += digit
        self._dtmf_timer = self.call.spawn(self._keys_after(self.call.config.dtmf_timeout_s), "dtmf")

    async def _keys_after(self, wait: float) -> None:
        await self.call.time.sleep(wait)
        self._dtmf_timer = None
        self._keys_done()

    def _keys_done(self) -> None:
        digits, self._digits = self._digits, ""
        if digits:
            now = self.call.time.now()
            self.call.take_turn_heard(Utterance(digits, confidence=1.0), now, now)


class Barge:
    """Caller speech while a reply plays: barge-in, backchannel or echo (see ``voice.live_turns``)."""

    def __init__(self, call: LiveCall) -> None:
        self.call = call
        self.candidate_at: float | None = None  # a reply is held (paused, cleared) on caller speech since then
        self.cleared = False  # this reply was dropped by a barge-in
        self.count = 0  # confirmed barge-ins in the call
        self._held = False  # the far end was told ``clear`` for the reply as it stands now
        self._decide: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """A new reply starts."""
        self.candidate_at, self.cleared, self._held = None, False, False

    def _playing(self) -> SentencePlay | None:
        """The sentence that caller speech would interrupt (a reply that ends the call, none)."""
        playback = self.call.playback
        if playback is None or self.cleared or self.call.session.ended:
            return None  # 「正在为您转接……」 or the goodbye is heard whole, whatever the caller says over it
        return playback.current

    def speech_started(self) -> None:
        """Hold the reply at once: nothing more is sent and the far end drops what it has queued."""
        play = self._playing()
        if play is None or self.candidate_at is not None:
            return
        now = self.call.time.now()
        if play.started_at is not None and now - play.started_at < self.call.config.echo_guard_s:
            return  # too soon after our own sentence began: taken as its echo until the final says otherwise
        playback = self.call.playback
        assert playback is not None
        playback.pause()
        playback.rewind_unplayed()  # what ``clear`` drops is sent again if the reply resumes
        self.candidate_at = now
        self._held = True
        self.call.spawn(self.call.wire.clear(), "clear")
        self.call.emit("barge_in", confirmed=False, resumed=False)
        self._decide = self.call.spawn(self._decide_after(self.call.config.decide_after_s), "decide")

    async def _decide_after(self, wait: float) -> None:
        """Still speaking: a barge-in. Already quiet: resume now; the final may still confirm it later."""
        await self.call.time.sleep(wait)
        if self.candidate_at is None:
            return
        if self.call.listener.quiet_for() < self.call.config.quiet_s:
            await self.confirm()
        else:
            self._decide = None
            self._resume()

    def partial(self, text: str) -> None:
        play = self._playing()
        if self.candidate_at is not None and play is not None and not is_backchannel(text):
            if not is_echo(text, play.text):
                self.call.spawn(self.confirm(), "confirm")

    def swallow(self, text: str) -> bool:
        """Whether a final heard during a reply is not a caller turn (echo or backchannel)."""
        play = self._playing()
        if play is None:
            return False
        if is_echo(text, play.text) or is_backchannel(text):
            self._resume()
            return True
        self.call.spawn(self.confirm(), "confirm")
        return False

    def nothing_said(self) -> bool:
        """A segment ended without text: resume a held reply; ``True`` if one was held."""
        if self.candidate_at is None:
            return False
        self._resume()
        return True

    def _resume(self) -> None:
        """Not a barge-in: the reply goes on from the frame where the caller stopped hearing it."""
        if self.candidate_at is None:
            return
        self.candidate_at = None
        if self._decide is not None:
            self._decide.cancel()
        if self.call.playback is not None:
            self._held = False
            self.call.playback.resume()
            self.call.emit("barge_in", confirmed=False, resumed=True)

    async def confirm(self) -> None:
        """It is a barge-in: drop the rest of the reply (``clear``, unless the hold already sent it)."""
        if self.cleared or self.call.playback is None or self.call.session.ended:
            return  # (a reply that ends the call is heard whole)
        self.cleared = True
        self.candidate_at = None
        self.count += 1
        self.call.cut_off()
        self.call.emit("barge_in", confirmed=True, resumed=False)
        if not self._held:
            self._held = True
            await self.call.wire.clear()


def _dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    if not len(samples):
        return -100.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    return 20 * np.log10(rms / 32768.0) if rms > 0 else -100.0


def joined(utterances: list[Utterance]) -> Utterance:
    """Several segments of one turn as one utterance (prosody of the longest)."""
    if len(utterances) == 1:
        return utterances[0]
    main = max(utterances, key=lambda u: u.prosody.voiced_seconds if u.prosody else 0.0)
    text = join_words(u.text for u in utterances)
    confidence = min(u.confidence for u in utterances)
    words = tuple(w for u in utterances for w in u.words)
    return Utterance(text, utterances[0].start, utterances[-1].end, confidence, words, main.prosody)
