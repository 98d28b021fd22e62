"""voice.speech_ready: ``prepare`` loads the recogniser, pays prosody's first-use cost before it says
ready, then warms the recogniser's pool at low priority, stopping when the server stops. Real Korean
vosk model, real espeak-ng voice (the hotline's greeting is the warm-up speech)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from asr import prosody
from asr.vosk_engine import VoskEngine
from core.settings import Settings
from voice.speech_ready import SpeechReadiness

pytestmark = [pytest.mark.models, pytest.mark.slow]


@dataclass
class _Line:
    """What SpeechReadiness uses of a Hotline: its settings and its engine."""

    settings: Settings
    loaded: VoskEngine
    calls: int = 0

    def engine(self) -> VoskEngine:
        self.calls += 1
        return self.loaded


def _line(model_dir: Path, pool: int) -> _Line:
    settings = replace(Settings(), asr_engine="vosk", vosk_model=str(model_dir))
    return _Line(settings, VoskEngine(model_dir, pool_size=pool))


def test_prepare_says_ready_then_fills_the_pool_with_warm_recognizers(vosk_ko_model_dir: Path) -> None:
    line = _line(vosk_ko_model_dir, pool=2)
    speech = SpeechReadiness(line)  # type: ignore[arg-type]
    speech.prepare(install=False, progress=False)
    status = speech.status()
    assert status.ready and status.state == "ready"
    assert line.calls == 1 and line.loaded.pooled() == 2


def test_a_stopping_server_does_not_warm(vosk_ko_model_dir: Path) -> None:
    line = _line(vosk_ko_model_dir, pool=2)
    speech = SpeechReadiness(line)  # type: ignore[arg-type]
    speech.stopping.set()
    speech.prepare(install=False, progress=False)
    assert speech.status().ready and line.loaded.pooled() == 0


def test_prosody_is_warmed_before_ready_and_the_pool_after(
    vosk_ko_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = _line(vosk_ko_model_dir, pool=1)
    speech = SpeechReadiness(line)  # type: ignore[arg-type]
    seen: list[tuple[str, str]] = []
    warm_prosody, warm_pool = prosody.warm_up, line.loaded.warm_up

    def prosody_first() -> None:
        seen.append(("prosody", speech.status().state))
        warm_prosody()

    def pool_after(*args: object, **kwargs: object) -> int:
        seen.append(("pool", speech.status().state))
        return warm_pool(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(prosody, "warm_up", prosody_first)
    monkeypatch.setattr(line.loaded, "warm_up", pool_after)
    worker = threading.Thread(target=speech.prepare, args=(False, False))
    worker.start()
    worker.join(timeout=120)
    assert seen[0] == ("prosody", "loading"), "the first caller's turn must not pay librosa's start-up"
    assert seen[1:] and set(seen[1:]) == {("pool", "ready")}, "callers are served while the pool warms"
    assert line.loaded.pooled() == 1
