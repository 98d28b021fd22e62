"""How well whisper base recognises Mandarin on a telephone line: character error rate (CER) bounds.

Real recordings (../shared/audio/real/zh, 16 kHz) go through the G.711 channel first: 8 kHz,
μ-law encoded and decoded, then into an 8 kHz stream in 20 ms frames, as a call would. CER is the
Levenshtein distance over characters after normalising both sides (Simplified, no punctuation or
spaces, Chinese digits as Arabic; ``asr.textnorm.cer``). Each bound is the mean measured here plus a
margin, so a real regression fails while run-to-run noise does not. The human-transcribed clips and
the clips whose "reference" is itself some model's output (SOURCES.md: funasr_*, cosyvoice) are
reported and bounded separately. Run with ``-s`` to see the per-file table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from paths import REAL_ZH, shared
from testmodels import telephone

from asr.engine import split_frame
from asr.textnorm import cer
from asr.whisper_engine import WhisperEngine
from core.types import AudioFrame, TranscriptKind
from voice.wav import read_wav

FIXTURES = Path(__file__).resolve().parents[1] / "audio_fixtures"
MODEL_REFERENCES = {"funasr_asr_example.wav", "funasr_llamacpp_sample.wav", "cosyvoice_zero_shot_prompt_16k.wav"}
FIXTURE_STRIDE = 3  # every third espeak fixture: 17 utterances, a spread of intents, speeds and voices

# Measured with whisper base (int8, beam 5, no prompt) on 8 kHz μ-law when these bounds were set,
# plus 0.08. Per file (human): 0.077 0.000 0.000 0.397 0.333 0.154; (model refs): 0.158 0.182 0.071.
BOUND_HUMAN = 0.24  # measured 0.160
BOUND_MODEL_REFERENCE = 0.22  # measured 0.137
BOUND_FIXTURES = 0.82  # measured 0.742 on these 17 (0.829 on all 51: espeak Mandarin is hard for whisper base)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("广州市房地产中介协会分析", "廣州市房地產中介協會分析。", 0.0),  # Traditional and punctuation: no error
        ("订单20240518001到哪了", "订单二零二四零五幺八零零幺，到哪了？", 0.0),  # digits as said
        ("甚至出现交易几乎停滞的情况", "甚至出现交易几乎停止的情况", 1 / 13),
        ("换一首歌", "换 一 首 歌 吧", 1 / 4),
        ("换一首歌", "", 1.0),
    ],
)
def test_cer_compares_normalised_characters(reference: str, hypothesis: str, expected: float) -> None:
    assert cer(reference, hypothesis) == pytest.approx(expected)


@dataclass(frozen=True)
class Scored:
    name: str
    reference: str
    hypothesis: str
    cer: float


def recognise(engine: WhisperEngine, audio: AudioFrame) -> str:
    stream = engine.new_stream(audio.sample_rate)
    events = [e for chunk in split_frame(audio) for e in stream.accept(chunk)] + stream.close()
    return "".join(e.text for e in events if e.kind is TranscriptKind.FINAL)


def mean(scores: Sequence[Scored]) -> float:
    return sum(s.cer for s in scores) / len(scores)


def table(title: str, scores: Sequence[Scored]) -> str:
    rows = [f"  {s.cer:5.3f}  {s.name:<44} {s.reference} | {s.hypothesis}" for s in scores]
    return "\n".join([f"{title}: mean CER {mean(scores):.3f} over {len(scores)}", *rows])


@pytest.fixture(scope="module")
def real_zh(whisper_engine: WhisperEngine) -> list[Scored]:
    scores = []
    for line in shared(REAL_ZH / "transcripts.tsv").read_text(encoding="utf-8").splitlines():
        name, reference, _source = line.split("\t")
        hypothesis = recognise(whisper_engine, telephone(read_wav(REAL_ZH / name)))
        scores.append(Scored(name, reference, hypothesis, cer(reference, hypothesis)))
    return scores


@pytest.fixture(scope="module")
def espeak_fixtures(whisper_engine: WhisperEngine) -> list[Scored]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    scores = []
    for item in manifest["fixtures"][::FIXTURE_STRIDE]:
        hypothesis = recognise(whisper_engine, read_wav(FIXTURES / item["wav"]))
        scores.append(Scored(item["wav"], item["text"], hypothesis, cer(item["text"], hypothesis)))
    return scores


@pytest.mark.models
@pytest.mark.slow
def test_real_human_transcribed_speech(real_zh: list[Scored]) -> None:
    human = [s for s in real_zh if s.name not in MODEL_REFERENCES]
    print("\n" + table("real zh, human transcripts, 8 kHz μ-law", human))
    assert len(human) == 6
    assert mean(human) <= BOUND_HUMAN, table("CER above its bound", human)


@pytest.mark.models
@pytest.mark.slow
def test_real_speech_with_model_output_references(real_zh: list[Scored]) -> None:
    model_ref = [s for s in real_zh if s.name in MODEL_REFERENCES]
    print("\n" + table("real zh, model-output references, 8 kHz μ-law", model_ref))
    assert len(model_ref) == 3
    assert mean(model_ref) <= BOUND_MODEL_REFERENCE, table("CER above its bound", model_ref)


@pytest.mark.models
@pytest.mark.slow
def test_espeak_fixtures(espeak_fixtures: list[Scored]) -> None:
    print("\n" + table("espeak fixtures (every 3rd), 8 kHz μ-law", espeak_fixtures))
    assert len(espeak_fixtures) == 17
    assert mean(espeak_fixtures) <= BOUND_FIXTURES, table("CER above its bound", espeak_fixtures)
