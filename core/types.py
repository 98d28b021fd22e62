"""Frozen values that flow between packages. Every package speaks these; nobody passes vendor JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

PCM_SAMPLE_WIDTH = 2  # bytes per sample of signed 16-bit little-endian PCM


def _frozen_map(value: Mapping[str, object] | None) -> Mapping[str, object]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A chunk of mono signed 16-bit little-endian PCM, stamped with its offset in the stream."""

    pcm: bytes
    sample_rate: int
    timestamp: float = 0.0

    @property
    def samples(self) -> int:
        return len(self.pcm) // PCM_SAMPLE_WIDTH

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word (for Chinese usually one or more Han characters) with its timing."""

    text: str
    start: float
    end: float
    confidence: float = 1.0


class TranscriptKind(StrEnum):
    START = "start"  # speech started (from VAD)
    PARTIAL = "partial"  # unstable hypothesis, may change
    FINAL = "final"  # stable text of one utterance
    END = "end"  # the stream is over, nothing more will come


@dataclass(frozen=True, slots=True)
class TranscriptEvent:
    kind: TranscriptKind
    text: str = ""
    start: float = 0.0
    end: float = 0.0
    confidence: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """VAD: the caller started speaking at ``at`` seconds into the stream."""

    at: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """VAD: the caller stopped speaking; ``audio`` holds the utterance (with a short pre-roll)."""

    start: float
    end: float
    audio: AudioFrame


VadEvent = SpeechStarted | SpeechEnded


@dataclass(frozen=True, slots=True)
class Prosody:
    """How an utterance was spoken, in absolute figures and relative to the caller's baseline.

    ``rel_*`` compare this utterance with the caller's earlier utterances in the same call:
    ``rel_rate`` and ``rel_f0`` are ratios (1.0 = as before), ``rel_energy_db`` is a difference
    in dB (0.0 = as loud as before). The first utterance of a call is its own baseline.
    """

    speech_rate: float  # syllables per second of voiced time
    f0_mean: float  # Hz over voiced frames; 0.0 when nothing was voiced
    f0_std: float  # Hz
    energy_db: float  # RMS level in dBFS over voiced frames
    pause_ratio: float  # share of the utterance that is silence, 0..1
    voiced_seconds: float
    rel_rate: float = 1.0
    rel_f0: float = 1.0
    rel_energy_db: float = 0.0


@dataclass(frozen=True, slots=True)
class Utterance:
    """One turn of caller speech as text, with timings and (for audio turns) prosody."""

    text: str
    start: float = 0.0
    end: float = 0.0
    confidence: float = 1.0
    words: tuple[Word, ...] = ()
    prosody: Prosody | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    """One need the caller expressed. ``slots`` values are plain strings (dates in ISO 8601)."""

    name: str
    confidence: float
    slots: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", _frozen_map(self.slots))


class EmotionLabel(StrEnum):
    NEUTRAL = "neutral"
    ANXIOUS = "anxious"
    ANGRY = "angry"


@dataclass(frozen=True, slots=True)
class Emotion:
    label: EmotionLabel
    score: float  # 0..1, how strongly the label holds
    cues: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Understanding:
    """What one caller turn means: every need (main need first) and how the caller feels."""

    text: str
    normalized: str
    intents: tuple[Intent, ...]
    emotion: Emotion


class Skill(StrEnum):
    LOGISTICS = "logistics"
    AFTERSALE = "aftersale"
    PROMOTION = "promotion"
    COMPLAINT = "complaint"
    VIP = "vip"
    SALES = "sales"
    GENERAL = "general"


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    speaker: str  # "caller" or "bot" or "agent"
    text: str
    at: float = 0.0  # seconds since the call started


@dataclass(frozen=True, slots=True)
class Handoff:
    """What the human agent sees when a call is transferred."""

    customer_id: str | None
    customer_name: str | None
    orders: tuple[str, ...]
    intents: tuple[Intent, ...]
    emotion_trend: tuple[EmotionLabel, ...]
    summary: tuple[str, ...]  # three short lines
    transcript: tuple[TranscriptLine, ...]
    kb_suggestions: tuple[str, ...] = ()  # policy ids


@dataclass(frozen=True, slots=True)
class TransferRequest:
    skill: Skill
    priority: int  # 1 (highest) .. 5
    reason: str
    handoff: Handoff


@dataclass(frozen=True, slots=True)
class Say:
    """Speak and keep listening."""

    text: str


@dataclass(frozen=True, slots=True)
class Ask:
    """Speak a question; ``expect`` lists phrases that constrain the answer (ASR grammar)."""

    text: str
    expect: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Transfer:
    """Speak ``text`` then hand the call to a human with ``request``; when no agent can take it,
    speak ``busy_text`` instead (an apology and a callback, never a claimed transfer)."""

    text: str
    request: TransferRequest
    busy_text: str = ""


@dataclass(frozen=True, slots=True)
class Hangup:
    text: str = ""


@dataclass(frozen=True, slots=True)
class ChangeOrder:
    """Change an order the caller confirmed; the session carries it out and tells the dialog how it went.

    ``steps`` are ``(field, new value)`` applied in order (field: address | color | size | sku);
    ``requested_by`` says who asked and how they were identified (owner by caller ID, verified by
    the phone's last four digits or the recipient's name), for the shop's change log.
    """

    order_id: str
    steps: tuple[tuple[str, str], ...]
    requested_by: str
    text: str = ""  # nothing is spoken for the action itself


DialogAction = Say | Ask | Transfer | Hangup | ChangeOrder


def mask_phone(phone: str) -> str:
    """A phone number fit for a log line: 138****8001 (every front door logs callers this way)."""
    digits = phone.lstrip("+")
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "****"
