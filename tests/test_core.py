"""Core vocabulary: settings validation, the fixed clock, money conversion, frozen values."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.clock import FixedClock, ShiftedClock, SystemClock
from core.errors import ConfigError, IvrError, ModelDownloadError, TransientError
from core.money import to_fen, yuan_text
from core.settings import Settings
from core.types import AudioFrame, Intent

CST = timezone(timedelta(hours=8))


def test_settings_defaults_and_overrides() -> None:
    s = Settings.from_env({"IVR_PORT": "9001", "IVR_ASR_ENGINE": "whisper", "IVR_VOSK_MODEL": ""})
    assert s.port == 9001
    assert s.asr_engine == "whisper"
    assert s.vosk_model is None
    assert "~" not in str(s.model_dir)
    assert s.whisper_partial_ms is None  # off unless asked for
    assert Settings.from_env({"IVR_WHISPER_PARTIAL_MS": "1500"}).whisper_partial_ms == 1500
    assert Settings.from_env({"IVR_WHISPER_PARTIAL_MS": "off"}).whisper_partial_ms is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"IVR_PORT": "eighty"}, "IVR_PORT"),
        ({"IVR_PORT": "70000"}, "IVR_PORT"),
        ({"IVR_ASR_ENGINE": "kaldi"}, "IVR_ASR_ENGINE"),
        ({"IVR_VAD_AGGRESSIVENESS": "7"}, "IVR_VAD_AGGRESSIVENESS"),
        ({"IVR_ASR_ENGNE": "vosk"}, "IVR_ASR_ENGNE"),
        ({"IVR_WHISPER_PARTIAL_MS": "50"}, "IVR_WHISPER_PARTIAL_MS"),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert names in str(err.value)
    assert "\n" not in str(err.value)


def test_settings_paths_are_paths() -> None:
    s = Settings.from_env({"IVR_SHOP_FILE": "~/shop.json"})
    assert isinstance(s.shop_file, Path)
    assert s.shop_file == Path("~/shop.json").expanduser()


def test_errors_say_whether_retryable() -> None:
    assert not ConfigError("x").retryable
    assert ModelDownloadError("x").retryable
    assert TransientError("x").retryable
    assert isinstance(TransientError("x"), IvrError)


def test_fixed_clock_moves_only_when_told() -> None:
    clock = FixedClock(datetime(2026, 11, 20, 10, 0, tzinfo=CST))
    assert clock.now() == clock.now()
    clock.advance(90)
    assert clock.now() == datetime(2026, 11, 20, 10, 1, 30, tzinfo=CST)
    assert clock.monotonic() == 90
    with pytest.raises(ValueError, match="expected seconds >= 0"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 11, 20))


def test_system_clock_is_aware_and_monotonic() -> None:
    clock = SystemClock(CST)
    assert clock.now().utcoffset() == timedelta(hours=8)
    assert clock.monotonic() <= clock.monotonic()


@pytest.mark.parametrize(
    ("yuan", "fen", "spoken"),
    [
        (89.0, 8900, "89元"),
        ("12.5", 1250, "12.5元"),
        (32.8, 3280, "32.8元"),
        (0.05, 5, "0.05元"),
        (295.2, 29520, "295.2元"),
    ],
)
def test_money_is_exact_fen(yuan: float | str, fen: int, spoken: str) -> None:
    assert to_fen(yuan) == fen
    assert yuan_text(fen) == spoken


def test_values_are_frozen() -> None:
    frame = AudioFrame(pcm=b"\0\0" * 160, sample_rate=8000)
    assert frame.samples == 160
    assert frame.duration == pytest.approx(0.02)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.sample_rate = 16000  # type: ignore[misc]
    intent = Intent("logistics.track", 0.9, {"order_id": "DD1"})
    with pytest.raises(TypeError):
        intent.slots["order_id"] = "DD2"  # type: ignore[index]


def test_shifted_clock_starts_at_the_snapshot_time_and_ticks() -> None:
    start = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
    clock = ShiftedClock(start, origin=clock_origin())
    first = clock.now()
    assert start <= first < start + timedelta(minutes=1)
    assert clock.now() >= first
    with pytest.raises(ValueError, match="timezone-aware"):
        ShiftedClock(datetime(2026, 11, 20))


def clock_origin() -> float:
    import time

    return time.monotonic()
