"""The always-there voice: espeak-ng's Mandarin, a formant synthesiser (robotic, but on every machine).

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

Licence: espeak-ng is GPL-3.0 and runs as a separate program, so a shop may use it commercially.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

import numpy as np

from core.errors import ConfigError, ModelMissingError
from voice.tts_engine import SynthesisError, VoiceInfo
from voice.wav import read_wav

NAME = "espeak"
ENGINE_RATE = 22050  # espeak-ng's output rate
MIN_WPM, MAX_WPM = 80, 450  # espeak-ng's -s range
# espeak-ng's -p (0-99, its own default 50). Measured with bench/tts.py --espeak-sweep (whisper base
# CER on 60 replies through the 8 kHz μ-law channel): pitch 65 beat 50 and 35 at 130, 150 and 175
# wpm (pooled CER 0.774 at 175 wpm against 0.822 at pitch 50); the rate changed less.
DEFAULT_PITCH = 65
INFO = VoiceInfo(
    name=NAME,
    engine="espeak-ng (formant synthesis)",
    description="espeak-ng's Mandarin (cmn-latn-pinyin): always there, hard to understand on the phone",
    licence="GPL-3.0 program run as a separate process: commercial use allowed",
    commercial=True,
    neural=False,
)
_VOICE_ALIASES = {"cmn": "cmn-latn-pinyin", "zh": "cmn-latn-pinyin", "zh-cmn": "cmn-latn-pinyin"}
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")
_TIMEOUT_S = 30.0


class EspeakVoice:
    """espeak-ng as a ``VoiceEngine``: one process per call, so any number of threads may call it."""

    info = INFO
    sample_rate = ENGINE_RATE

    def __init__(
        self, voice: str = "cmn", rate_wpm: int = 175, *, amplitude: int = 100, pitch: int = DEFAULT_PITCH
    ) -> None:
        if not MIN_WPM <= rate_wpm <= MAX_WPM:
            raise ConfigError(f"TTS rate must be {MIN_WPM}..{MAX_WPM} words per minute, got {rate_wpm}")
        if not 0 <= amplitude <= 200:
            raise ConfigError(f"TTS amplitude must be 0..200, got {amplitude}")
        if not 0 <= pitch <= 99:
            raise ConfigError(f"TTS pitch must be 0..99, got {pitch}")
        self.voice = resolve_voice(voice)
        self.rate_wpm = rate_wpm
        self.amplitude = amplitude
        self.pitch = pitch
        self._binary = _espeak_binary()

    def synthesize(self, text: str) -> np.ndarray:
        """22.05 kHz float32 speech of ``text`` (already normalised); empty when it has nothing to say."""
        if not any(ch.isalnum() for ch in text):
            return np.zeros(0, dtype=np.float32)
        args = [self._binary, "-v", self.voice, "-s", str(self.rate_wpm), "-a", str(self.amplitude)]
        args += ["-p", str(self.pitch), "--stdout"]
        try:
            done = subprocess.run(args, input=text.encode("utf-8"), capture_output=True, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"espeak-ng took more than {_TIMEOUT_S:.0f} s on {len(text)} characters") from None
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
            raise SynthesisError(f"espeak-ng exited with {done.returncode}: {reason[0]}")
        frame = read_wav(done.stdout)
        return np.frombuffer(frame.pcm, dtype="<i2").astype(np.float32) / 32768.0


def resolve_voice(voice: str) -> str:
    """The espeak-ng voice to run for ``voice`` (``cmn`` becomes ``cmn-latn-pinyin``, see above)."""
    if not _VOICE_NAME.fullmatch(voice):
        raise ConfigError(f"TTS voice must be an espeak-ng voice name such as cmn, got {voice!r}")
    base, _, variant = voice.partition("+")
    resolved = _VOICE_ALIASES.get(base.lower(), base)
    if resolved.lower() not in installed_voices():
        raise ConfigError(f"TTS voice {voice!r} is not installed in espeak-ng (see `espeak-ng --voices`)")
    return f"{resolved}+{variant}" if variant else resolved


def available() -> bool:
    """espeak-ng is installed."""
    return shutil.which("espeak-ng") is not None


@cache
def _espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise ModelMissingError("espeak-ng is not installed: apt-get install espeak-ng")
    return binary


@cache
def installed_voices() -> frozenset[str]:
    """Every voice and language name espeak-ng knows, lower case."""
    done = subprocess.run([_espeak_binary(), "--voices"], capture_output=True, text=True, timeout=_TIMEOUT_S)
    if done.returncode != 0:
        raise ModelMissingError(f"`espeak-ng --voices` failed ({done.returncode}): is espeak-ng-data installed?")
    names: set[str] = set()
    for line in done.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            names.add(fields[1].lower())  # language name, e.g. cmn-latn-pinyin
            names.add(fields[4].rsplit("/", 1)[-1].lower())  # voice file, e.g. sit/cmn -> cmn
    return frozenset(names)
