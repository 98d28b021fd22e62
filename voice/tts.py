"""Mandarin speech synthesis for replies: espeak-ng to PCM, and 8 kHz μ-law 20 ms telephone frames.

Engine: the ``espeak-ng`` binary, one process per sentence, options as an argument list and the
text on stdin (so caller-influenced text is never parsed as an option or by a shell). pyttsx3
(2.99, espeak driver) was tried first and dropped: here it renders the same sentence to a
different length on every call, prints "Audio saved to ..." on stdout, keeps one process-wide
libespeak state that is not safe to share between executor threads, and silently keeps the
previous voice when asked for one that does not exist. The binary is deterministic, isolated
per call and costs about 15 ms of start-up per sentence.

Voice: espeak-ng 1.51's ``cmn`` voice reads most Han characters as pinyin spelled in English
("你好" -> "ni three hao three"; espeak-ng issues #1028, #1236). ``cmn`` (and ``zh``, ``zh-cmn``)
is therefore mapped to ``cmn-latn-pinyin``, which speaks the same dictionary as Mandarin.

Numbers are rewritten before synthesis (see ``speakable``): espeak-ng drops the decimal point
("32.8" -> "三十二八") and reads order numbers as one huge number, so amounts, percentages,
times and digit strings are spelled out in Chinese characters first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from core.errors import ConfigError, ModelMissingError
from core.types import AudioFrame
from voice.codec import ULAW_SILENCE, pcm16_to_ulaw
from voice.tts_engine import SynthesisError
from voice.wav import read_wav, to_rate

ENGINE_RATE = 22050  # espeak-ng's output rate (what an empty synthesis reports)
TELEPHONE_RATE = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
TAIL_S = 0.2  # silence kept after a sentence's last sound (a natural pause before the next)
SILENCE_RMS = 32768 * 10 ** (-50 / 20)  # quieter than -50 dBFS is silence
MIN_WPM, MAX_WPM = 80, 450  # espeak-ng's -s range
_VOICE_ALIASES = {"cmn": "cmn-latn-pinyin", "zh": "cmn-latn-pinyin", "zh-cmn": "cmn-latn-pinyin"}
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")
_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class SentenceAudio:
    """One sentence of a reply and its telephone frames (each ``FRAME_BYTES`` of μ-law)."""

    text: str
    frames: tuple[bytes, ...]

    @property
    def duration(self) -> float:
        return len(self.frames) * FRAME_BYTES / TELEPHONE_RATE


class Synthesizer:
    """Text to speech with espeak-ng; blocking, so run it in an executor from async code."""

    def __init__(self, voice: str = "cmn", rate_wpm: int = 175, *, amplitude: int = 100) -> None:
        if not MIN_WPM <= rate_wpm <= MAX_WPM:
            raise ConfigError(f"TTS rate must be {MIN_WPM}..{MAX_WPM} words per minute, got {rate_wpm}")
        if not 0 <= amplitude <= 200:
            raise ConfigError(f"TTS amplitude must be 0..200, got {amplitude}")
        self.voice = resolve_voice(voice)
        self.rate_wpm = rate_wpm
        self.amplitude = amplitude
        self._binary = _espeak_binary()

    def synthesize(self, text: str) -> AudioFrame:
        """PCM16 of ``text`` at the engine rate (22050 Hz); text with nothing to say gives an empty frame."""
        spoken = speakable(text).strip()
        if not _has_speech(spoken):
            return AudioFrame(b"", ENGINE_RATE)
        args = [self._binary, "-v", self.voice, "-s", str(self.rate_wpm), "-a", str(self.amplitude), "--stdout"]
        try:
            done = subprocess.run(args, input=spoken.encode("utf-8"), capture_output=True, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"espeak-ng took more than {_TIMEOUT_S:.0f} s on {len(spoken)} characters") from None
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
            raise SynthesisError(f"espeak-ng exited with {done.returncode}: {reason[0]}")
        return read_wav(done.stdout)

    def telephone_frames(self, text: str) -> Iterator[bytes]:
        """8 kHz μ-law 20 ms frames of ``text``, synthesised sentence by sentence as consumed."""
        for sentence in self.iter_sentences_frames(text):
            yield from sentence.frames

    def iter_sentences_frames(self, text: str) -> Iterator[SentenceAudio]:
        """Each sentence of ``text`` with its frames; the next one is synthesised only when asked for."""
        for sentence in split_sentences(text):
            yield self.sentence_audio(sentence)

    def sentence_audio(self, sentence: str) -> SentenceAudio:
        """Synthesise one sentence into telephone frames (blocking); its trailing silence kept to ``TAIL_S``."""
        frame = self.synthesize(sentence)
        pcm = trim_tail(to_rate(frame, TELEPHONE_RATE).pcm) if frame.pcm else b""
        return SentenceAudio(sentence, frames_of(pcm16_to_ulaw(pcm)))


class PromptCache:
    """Fixed prompts rendered once (at start-up) and served from memory by their text."""

    def __init__(self, synthesizer: Synthesizer, prompts: Iterable[str]) -> None:
        self._frames = {text: tuple(synthesizer.telephone_frames(text)) for text in dict.fromkeys(prompts)}

    def get(self, text: str) -> tuple[bytes, ...] | None:
        """The frames of a cached prompt, or None when ``text`` is not one of them."""
        return self._frames.get(text)

    def __contains__(self, text: object) -> bool:
        return text in self._frames

    def __len__(self) -> int:
        return len(self._frames)


def trim_tail(pcm: bytes, rate: int = TELEPHONE_RATE, tail_s: float = TAIL_S) -> bytes:
    """8 kHz PCM16 without the silence after its last sound beyond ``tail_s``.

    espeak-ng ends every sentence with ~0.3 s of silence: on the phone that is dead air after the
    last sentence, and a 「嗯。」 said while the answer is prepared holds the answer back that long.
    """
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    window = rate // 100  # 10 ms
    count = len(samples) // window
    if not count:
        return pcm
    rms = np.sqrt(np.mean(samples[: count * window].astype(np.float64).reshape(count, window) ** 2, axis=1))
    loud = np.flatnonzero(rms >= SILENCE_RMS)
    if not len(loud):
        return pcm
    end = (int(loud[-1]) + 1) * window + int(tail_s * rate)
    return pcm[: min(len(samples), end) * 2]


def frames_of(ulaw: bytes) -> tuple[bytes, ...]:
    """Split μ-law bytes into ``FRAME_BYTES`` frames, padding the last with μ-law silence."""
    padded = ulaw + bytes([ULAW_SILENCE]) * (-len(ulaw) % FRAME_BYTES)
    return tuple(padded[i : i + FRAME_BYTES] for i in range(0, len(padded), FRAME_BYTES))


def resolve_voice(voice: str) -> str:
    """The espeak-ng voice to run for ``voice`` (``cmn`` becomes ``cmn-latn-pinyin``, see above)."""
    if not _VOICE_NAME.fullmatch(voice):
        raise ConfigError(f"TTS voice must be an espeak-ng voice name such as cmn, got {voice!r}")
    base, _, variant = voice.partition("+")
    resolved = _VOICE_ALIASES.get(base.lower(), base)
    if resolved.lower() not in _installed_voices():
        raise ConfigError(f"TTS voice {voice!r} is not installed in espeak-ng (see `espeak-ng --voices`)")
    return f"{resolved}+{variant}" if variant else resolved


@cache
def _espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise ModelMissingError("espeak-ng is not installed: apt-get install espeak-ng")
    return binary


@cache
def _installed_voices() -> frozenset[str]:
    done = subprocess.run([_espeak_binary(), "--voices"], capture_output=True, text=True, timeout=_TIMEOUT_S)
    if done.returncode != 0:
        raise ModelMissingError(f"`espeak-ng --voices` failed ({done.returncode}): is espeak-ng-data installed?")
    listing = done.stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            names.add(fields[1].lower())  # language name, e.g. cmn-latn-pinyin
            names.add(fields[4].rsplit("/", 1)[-1].lower())  # voice file, e.g. sit/cmn -> cmn
    return frozenset(names)


# --- text preparation ------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;…\n])")
_CLAUSE_END = re.compile(r"(?<=[，、：]|,(?!\d))")
_MAX_SENTENCE_CHARS = 30  # longer sentences are cut at commas so the first audio comes sooner


def split_sentences(text: str) -> list[str]:
    """Cut a reply at 。！？；!?; and, in sentences over 30 characters, at commas."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        pieces.extend(_cut_long(sentence.strip()))
    return [p for p in pieces if _has_speech(p)]


def _cut_long(sentence: str) -> list[str]:
    if len(sentence) <= _MAX_SENTENCE_CHARS:
        return [sentence]
    out: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if out and len(out[-1]) + len(clause) <= _MAX_SENTENCE_CHARS // 2:
            out[-1] += clause  # keep very short clauses together
        else:
            out.append(clause)
    return [c.strip() for c in out]


def _has_speech(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


_DIGITS = "零一二三四五六七八九"
_MEASURE_WORDS = "件个天次位双条张份盒箱瓶袋周斤本台只套"
_UNITS_AFTER = "元块角分件个天次位双条张份盒箱瓶袋周斤本台只套米克岁年月日号点人%"
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?:\.(\d+))?(?![\d.])")


def speakable(text: str) -> str:
    """``text`` with numbers written the way a Chinese agent says them, for espeak-ng.

    "32.8元" -> "三十二点八元", "50%" -> "百分之五十", "18:30" -> "十八点三十分",
    "2024年" -> "二零二四年", "2件" -> "两件", "订单20240518001" -> "订单二零二四零五幺八零零幺"
    (digit strings of five or more digits not followed by a unit, and any with a leading zero,
    are read digit by digit with 幺 for 1, as on the phone).
    """
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,299 -> 1299
    text = re.sub(r"[¥￥](\d+(?:\.\d+)?)(?!\d|\.\d|元)", r"\1元", text)
    text = re.sub(r"[¥￥]", "", text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%", lambda m: "百分之" + _number_words(m.group(1)), text)
    text = re.sub(r"(?<!\d)([01]?\d|2[0-3])[:：]([0-5]\d)(?!\d)", _clock, text)
    return _NUMBER.sub(_number, text)


def _clock(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    spoken = _integer_words(hours) + "点"
    if minutes:
        spoken += ("零" if minutes < 10 else "") + _integer_words(minutes) + "分"
    return spoken


def _number(match: re.Match[str]) -> str:
    whole, fraction = match.group(1), match.group(2)
    following = match.string[match.end() : match.end() + 1]
    if fraction is not None:
        return _number_words(f"{whole}.{fraction}")
    if len(whole) == 4 and following == "年":
        return "".join(_DIGITS[int(d)] for d in whole)
    if (
        whole.startswith("0")
        and len(whole) > 1
        or (len(whole) >= 5 and (not following or following not in _UNITS_AFTER))
    ):
        return "".join("幺" if d == "1" else _DIGITS[int(d)] for d in whole)
    if (
        whole == "2"
        and following
        and following in _MEASURE_WORDS
        and match.string[match.start() - 1 : match.start()] != "第"
    ):
        return "两"
    return _integer_words(int(whole))


def _number_words(number: str) -> str:
    whole, _, fraction = number.partition(".")
    spoken = _integer_words(int(whole))
    return spoken + ("点" + "".join(_DIGITS[int(d)] for d in fraction) if fraction else "")


def _integer_words(value: int) -> str:
    """Chinese numerals for 0 <= value < 10**16: 15 -> 十五, 1005 -> 一千零五, 120000 -> 十二万."""
    if value == 0:
        return "零"
    if value >= 10**16:
        return "".join(_DIGITS[int(d)] for d in str(value))
    groups, words = [], ""
    while value:
        value, group = divmod(value, 10000)
        groups.append(group)
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        if words and group < 1000:
            words += "零"
        words += _group_words(group) + ("", "万", "亿", "万亿")[index]
    words = re.sub("零+", "零", words)
    return words[1:] if words.startswith("一十") else words


def _group_words(group: int) -> str:
    """Chinese numerals for 1 <= group <= 9999, zeros collapsed, no trailing 零."""
    out = ""
    for power, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = group // power % 10
        if digit:
            out += _DIGITS[digit] + name
        elif out and group % power:
            out += "零"
    return out
