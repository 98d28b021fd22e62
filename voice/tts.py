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

Numbers are rewritten before synthesis (see ``voice.tts_text.speakable``): espeak-ng drops the decimal point
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
from voice.tts_text import has_speech, speakable, split_sentences
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
        if not has_speech(spoken):
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
