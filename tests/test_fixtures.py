"""audio_fixtures/: the committed caller utterances are what the manifest and sidecars say."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

import numpy as np
import pytest

from voice.tts_text import speakable
from voice.wav import ULAW, parse_wav, read_wav

FIXTURES = Path(__file__).resolve().parent.parent / "audio_fixtures"
INTENTS = frozenset(
    "logistics.track logistics.ship_time logistics.carrier logistics.expedite inventory.stock product.info"
    " promotion.inquiry promotion.not_applied promotion.bundle order.modify order.cancel order.status"
    " aftersale.return aftersale.refund_status aftersale.exchange aftersale.damage invoice complaint"
    " human_agent greeting goodbye affirm deny other".split()
)
STYLES = {"normal", "fast", "loud", "fast_loud", "slow"}
SIDECAR_KEYS = {"text", "intent", "rate_wpm", "amplitude", "style", "voice", "spoken"}


def _manifest() -> list[dict[str, object]]:
    return list(json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))["fixtures"])


ENTRIES = _manifest()


def test_at_least_40_fixtures_cover_every_intent_and_style() -> None:
    assert len(ENTRIES) >= 40
    assert {e["intent"] for e in ENTRIES} == INTENTS
    assert {e["style"] for e in ENTRIES} == STYLES


def test_manifest_lists_every_fixture_file_and_nothing_else() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.wav")} | {p.name for p in FIXTURES.glob("[0-9]*.json")}
    listed = {str(e["wav"]) for e in ENTRIES} | {str(e["sidecar"]) for e in ENTRIES}
    assert on_disk == listed


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: str(e["wav"]))
def test_fixture_is_8k_ulaw_mono_with_a_valid_sidecar(entry: dict[str, object]) -> None:
    fmt, payload = parse_wav((FIXTURES / str(entry["wav"])).read_bytes(), strict=True)
    assert (fmt.tag, fmt.sample_rate, fmt.channels, fmt.bits) == (ULAW, 8000, 1, 8)
    assert 1.0 <= len(payload) / 8000 <= 5.0
    assert abs(len(payload) / 8000 - float(entry["duration"])) < 0.001  # type: ignore[arg-type]
    sidecar = json.loads((FIXTURES / str(entry["sidecar"])).read_text(encoding="utf-8"))
    assert set(sidecar) == SIDECAR_KEYS
    assert sidecar["intent"] in INTENTS and sidecar["style"] in STYLES
    assert {k: entry[k] for k in SIDECAR_KEYS} == sidecar
    assert str(sidecar["voice"]).startswith("cmn")


def _rms(entry: dict[str, object]) -> float:
    samples = np.frombuffer(read_wav(FIXTURES / str(entry["wav"])).pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


def test_fixtures_are_speech_not_silence() -> None:
    assert min(_rms(e) for e in ENTRIES) > 500


def test_fast_speech_is_shorter_per_character_than_slow() -> None:
    def per_char(style: str) -> float:
        return median(float(e["duration"]) / len(str(e["text"])) for e in ENTRIES if style in str(e["style"]))  # type: ignore[arg-type]

    assert per_char("fast") < per_char("normal") < per_char("slow")


def test_loud_fixtures_have_more_energy_than_normal_ones() -> None:
    def level(style: str) -> float:
        return median(_rms(e) for e in ENTRIES if e["style"] == style)

    assert level("loud") > 1.5 * level("normal")


def test_some_fixtures_carry_order_numbers_spoken_digit_by_digit() -> None:
    with_digits = [e for e in ENTRIES if any(ch.isdigit() for ch in str(e["text"]))]
    assert len(with_digits) >= 3
    for entry in with_digits:
        assert str(entry["spoken"]) == speakable(str(entry["text"]))
        assert not any("0" <= ch <= "9" for ch in str(entry["spoken"]))
    assert any("二零二四零五" in str(e["spoken"]) for e in with_digits)
