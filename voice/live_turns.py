"""Turn-taking and barge-in rules of a live call: pure functions of text, expectation and time.

End of turn: the VAD closes a segment after a short silence (``LiveConfig.hangover_ms``), which is
when recognition runs, so the text is ready early; the turn is then committed after a further wait
chosen by what the dialog expects (short after a yes/no question, long while the caller dictates
digits), or at once when the final is confident and no digits are expected. Speech that starts
inside the wait continues the same turn.

Barge-in: speech detected while a reply plays (the VAD opens a segment after ``vad_start_ms`` of
mostly voiced audio, ~0.1 s after the onset) pauses the reply at once: nothing more is sent and at
most ``lead_s`` of audio is queued at the far end, so the caller hears it stop within ~0.15 s of
speaking. ``decide_after_s`` later, speech still going confirms the barge-in: ``clear``, the rest
of the reply is dropped and the session is told which sentences were cut off. Speech that has
stopped by then (嗯, 对, 好 last about 0.2–0.35 s) resumes the reply where it paused, and its final
still decides: a backchannel (嗯 / 对 / 好 / 哦 / 是 / 行) or nothing is not a turn; anything else
confirms the barge-in late. So ``clear`` itself goes out ~0.5 s after the onset: deciding sooner
would clear on every 嗯.

Echo of our own reply: speech detected within ``echo_guard_s`` of a sentence's first frame is not
taken as a barge-in (the far end's echo canceller has not converged yet), and a final whose
characters are mostly those of the sentence being played is our own voice coming back, never a
caller turn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from voice.session import Expectation

BACKCHANNEL_CHARS = frozenset("嗯对好哦是行")
_FILLER_CHARS = frozenset("的啊呀嘛吧呢哈哼唔噢喔额呃")
_NOT_TEXT = re.compile(r"[\s\W_]+", re.UNICODE)
DTMF_KEYS = frozenset("0123456789*#")

_WAITS = {Expectation.FREE: 0.2, Expectation.YES_NO: 0.0, Expectation.CHOICE: 0.15, Expectation.DIGITS: 1.2}


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """Timing of a live call (seconds unless named otherwise)."""

    waits: Mapping[Expectation, float] = field(default_factory=lambda: MappingProxyType(_WAITS))
    confident: float = 0.8  # a final this confident ends the turn without waiting (unless digits are expected)
    hangover_ms: int = 300  # VAD silence that closes a segment (recognition runs then)
    vad_start_ms: int = 120  # speech this long (80 % voiced) opens a segment: barge-in reacts this fast
    dtmf_timeout_s: float = 4.0  # keys without a # are taken as the answer after this long
    echo_guard_s: float = 0.25
    decide_after_s: float = 0.4  # barge-in confirmed when speech goes on this long after detection
    quiet_s: float = 0.1  # no loud caller frame for this long: the caller has stopped
    loud_dbfs: float = -45.0  # a caller frame at least this loud counts as sound for the barge-in decision
    ack_after_s: float = 0.4  # no reply audio this long after the turn ended: play the acknowledgement
    not_heard_s: float = 0.6  # a segment this long that gave no text gets the "please repeat" prompt
    frame_s: float = 0.02  # reply frames are 20 ms
    lead_s: float = 0.04  # reply audio is sent at most this far ahead of real time
    mark_timeout_s: float = 3.0  # longest wait for the last mark before hanging up

    def turn_wait(self, expect: Expectation, confidence: float | None) -> float:
        """How long to wait for more speech after a segment ended, before taking the turn."""
        if confidence is not None and expect is not Expectation.DIGITS and confidence >= self.confident:
            return 0.0
        return self.waits[expect]


def bare(text: str) -> str:
    """``text`` without spaces and punctuation."""
    return _NOT_TEXT.sub("", text)


def is_backchannel(text: str) -> bool:
    """嗯 / 对 / 好的 / 是是是 / 哦 …: the caller signals they are listening, not taking the turn."""
    chars = bare(text)
    if not chars or len(chars) > 4:
        return False
    return any(c in BACKCHANNEL_CHARS for c in chars) and all(
        c in BACKCHANNEL_CHARS or c in _FILLER_CHARS for c in chars
    )


def is_echo(text: str, playing: str) -> bool:
    """``text`` is mostly the characters of ``playing`` (our own sentence heard back on the line)."""
    heard, ours = bare(text), set(bare(playing))
    if len(heard) < 2 or not ours:
        return False
    return sum(c in ours for c in heard) / len(heard) >= 0.7


def unheard_tail(sentences: list[str], heard_before: list[str]) -> list[str]:
    """``sentences`` without its leading ones that the caller already heard whole in the last reply."""
    known = set(heard_before)
    start = 0
    while start < len(sentences) - 1 and sentences[start] in known:
        start += 1
    return sentences[start:]


@dataclass(frozen=True, slots=True)
class LivePrompts:
    """The live line's own fixed sentences (the dialog's wording is in dialog/data/replies.json)."""

    acknowledge: str = "好的，我帮您查一下。"  # an answer is taking a while
    not_heard: str = "抱歉，我没听清，请再说一遍。"  # speech that gave no text, or recognition failed
    goodbye: str = ""  # the dialog's goodbye (dialog/data/replies.json), said when the server shuts down

    def all(self) -> tuple[str, ...]:
        return tuple(t for t in (self.acknowledge, self.not_heard, self.goodbye) if t)
