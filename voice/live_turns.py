"""Turn-taking and barge-in rules of a live call: pure functions of text, expectation and time.

End of turn: the VAD closes a segment after ``LiveConfig.hangover_ms`` of silence, when the text
is final; whisper has usually started on it already, at the first ``pause_ms`` of silence
(speculation, see ``voice.speech``), so its text is ready about when the segment closes. The turn
is taken ``turn_wait`` after the caller's speech end, chosen by what the dialog expects: 0.3 s
after a yes/no question, 0.45 s for free speech, 1.5 s while the caller dictates digits (an order
number, a phone number, an address) — or as soon as the text is there when the final is confident
and no digits are expected. The wait counts from the speech end, so the VAD's hangover is part of
it, not added to it. Speech that starts inside the wait continues the same turn.

Unfinished turns: callers pause mid-sentence (「我想问……」「那个……」「我的那个……」). When the text so
far only opens a sentence (``is_preamble``: greetings, 请问 / 我想问 / 那个 / 就是 …) or ends like an
unfinished clause (``sounds_unfinished``: a trailing 的话 / 因为 / 然后 / 还有 / 我的 / 和 …), the
wait is ``unfinished_wait`` (1.2 s) from the speech end, even after a confident final. A turn that
is only a preamble is never answered as a question: the caller is asked to go on
(``LivePrompts.go_on``) and what they say next is heard after the preamble. Speech that starts
within ``continue_s`` of a turn being taken, before the caller heard a sentence of its reply
whole, continues that turn: the reply is dropped, the session retracts the turn
(``CallSession.retract_last_turn``) and the joined text is heard as one turn.

Barge-in: speech detected while a reply plays (the VAD opens a segment after ``vad_start_ms`` of
mostly voiced audio, ~0.1 s after the onset) *holds* the reply at once: nothing more is sent, the
far end is told ``clear`` (it drops the at most ``lead_s`` of audio it had queued), and the frames
it dropped are taken back. So the caller hears the reply stop, and ``clear`` reaches the wire,
within ~0.15 s of speaking. Then the hold is decided: speech still going ``decide_after_s`` later,
or a final that is neither a backchannel nor our echo, confirms the barge-in: the rest of the reply
is dropped and the session is told which sentences were cut off. Speech that has stopped by then
(嗯, 对, 好 last about 0.2–0.35 s) resumes the reply where the caller stopped hearing it (nothing
is lost, nothing repeated), and its final still decides: a backchannel (嗯 / 对 / 好 / 哦 / 是 / 行)
or nothing is not a turn; anything else confirms the barge-in late (a second ``clear``).

Why ``clear`` goes out before the backchannel is ruled out: ``clear`` within 200 ms of speech
start leaves ~80 ms after detection to decide, and the first 150 ms of 好 or 对 are the first
150 ms of 好的我要退货 or 对不起: no honest rule tells them apart that early. Holding at once and
resuming costs a backchannel a gap of ~0.4 s in the reply and nothing else; deciding first would
either clear on every 嗯 anyway or keep talking over a real interruption for half a second.

Echo of our own reply: speech detected within ``echo_guard_s`` of a sentence's first frame is not
taken as a barge-in (the far end's echo canceller has not converged yet), and a final whose
characters are mostly those of the sentence being played is our own voice coming back, never a
caller turn (a hold it caused is resumed).
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

# Openers that say a question is coming but carry none of it yet (attention, asking, hesitation).
_PREAMBLE_WORDS = (
    "喂", "您好", "你好", "在吗", "在不在", "请问", "问一下", "问下", "想问", "我想问", "我问", "我想",
    "想咨询", "咨询", "咨询一下", "我要", "我想要", "那个", "这个", "就是", "就是说", "然后", "还有",
    "另外", "是这样", "是这样的", "我跟你说", "麻烦", "麻烦你", "麻烦您", "一下", "我",
)  # fmt: skip
# Endings that leave a clause open: a conjunction, a condition, a possessive waiting for its noun.
_OPEN_ENDINGS = (
    "的话", "因为", "所以", "但是", "可是", "而且", "然后", "还有", "或者", "就是", "那个", "这个",
    "如果", "要是", "我的", "你们的", "您的", "和", "跟", "想问", "请问", "问一下",
)  # fmt: skip
_PREAMBLE = re.compile("(?:" + "|".join(sorted(map(re.escape, _PREAMBLE_WORDS), key=len, reverse=True)) + ")+")

# silence after the caller's last word before the turn is taken (the VAD's hangover is part of it)
_WAITS = {Expectation.FREE: 0.45, Expectation.YES_NO: 0.3, Expectation.CHOICE: 0.4, Expectation.DIGITS: 1.5}


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """Timing of a live call (seconds unless named otherwise)."""

    waits: Mapping[Expectation, float] = field(default_factory=lambda: MappingProxyType(_WAITS))
    unfinished_wait: float = 1.2  # the text so far sounds unfinished (a preamble, an open clause)
    continue_s: float = 1.5  # speech starting this soon after a turn was taken may continue that turn
    confident: float = 0.8  # a final this confident ends the turn without waiting (unless digits are expected)
    hangover_ms: int = 300  # VAD silence that closes a segment (recognition is final then)
    pause_ms: int = 140  # silence inside a segment after which whisper starts recognising speculatively
    vad_start_ms: int = 120  # speech this long (80 % voiced) opens a segment: barge-in reacts this fast
    dtmf_timeout_s: float = 4.0  # keys without a # are taken as the answer after this long
    echo_guard_s: float = 0.25
    decide_after_s: float = 0.4  # a hold becomes a barge-in when speech goes on this long after detection
    quiet_s: float = 0.1  # no loud caller frame for this long: the caller has stopped
    loud_dbfs: float = -45.0  # a caller frame at least this loud counts as sound for the barge-in decision
    ack_after_s: float = 0.4  # no reply audio this long after the turn ended: play the acknowledgement
    hold_on_s: float = 0.3  # the VAD closed a segment, its text is still being recognised this long after
    # the speech end, nothing is playing: a short 「嗯」 says the caller was heard (whisper; vosk on a busy line). As
    # soon as the segment closes (hangover_ms): at 0.4 s, callers at the far end of a Twilio or SIP line
    # heard it 0.56-0.74 s (p95) after their last loud frame (bench/turns.py), past the 0.6 s target
    hold_quiet_s: float = 0.2  # ... and no loud caller frame for this long (the VAD may lag behind the line)
    not_heard_s: float = 0.6  # a segment this long that gave no text gets the "please repeat" prompt
    frame_s: float = 0.02  # reply frames are 20 ms
    lead_s: float = 0.04  # reply audio is sent at most this far ahead of real time
    mark_timeout_s: float = 3.0  # longest wait for the last mark before hanging up

    def turn_wait(self, expect: Expectation, confidence: float | None, text: str = "") -> float:
        """How long after the caller's speech end the turn is taken (0: as soon as the text is there)."""
        if text and sounds_unfinished(text):
            return max(self.unfinished_wait, self.waits[expect])
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


def is_preamble(text: str) -> bool:
    """Only an opener (喂 / 请问 / 我想问一下 / 那个 …), with fillers: nothing asked yet."""
    chars = "".join(c for c in bare(text) if c not in _FILLER_CHARS and c != "嗯")  # 嗯 here: hesitation
    return bool(chars) and _PREAMBLE.fullmatch(chars) is not None


def sounds_unfinished(text: str) -> bool:
    """The text so far is a preamble, or ends with a clause left open (…的话 / …因为 / 我的 …)."""
    chars = bare(text)
    spoken = chars.rstrip("".join(_FILLER_CHARS))  # 我想问啊 → 我想问
    if not spoken:
        return False
    return is_preamble(spoken) or chars.endswith(_OPEN_ENDINGS) or spoken.endswith(_OPEN_ENDINGS)


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
    go_on: str = "嗯，您请说。"  # a turn that is only a preamble (dialog/data/replies.json ``prompt.go_on``)
    hold_on: str = "嗯。"  # heard you, still recognising (``prompt.hold_on``; empty: never)
    goodbye: str = ""  # the dialog's goodbye (dialog/data/replies.json), said when the server shuts down

    def all(self) -> tuple[str, ...]:
        return tuple(t for t in (self.acknowledge, self.not_heard, self.go_on, self.hold_on, self.goodbye) if t)
