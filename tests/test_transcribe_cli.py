"""``ivr transcribe``: real recordings through the real models; bad input is one line and exit 2."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from paths import REAL_ZH, shared
from testmodels import INSTALL_HINT, concat, espeak, noise, require, silence, vosk_ko_dir, whisper_base_dir

from asr.textnorm import cer
from core.types import Prosody
from voice.cli import main
from voice.wav import read_wav, to_rate, write_wav

CLIP = "BAC009S0764W0121.wav"  # AISHELL-1 test set, human transcript
PROSODY_KEYS = {f.name for f in dataclasses.fields(Prosody)}


def reference(name: str) -> str:
    for line in shared(REAL_ZH / "transcripts.tsv").read_text(encoding="utf-8").splitlines():
        file, text, _source = line.split("\t")
        if file == name:
            return text
    raise KeyError(name)


def ivr(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["transcribe", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def whisper_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_WHISPER_MODEL", str(require(whisper_base_dir(), INSTALL_HINT)))


def assert_shape(doc: dict[str, object], file: Path, engine: str) -> list[dict[str, object]]:
    """The ``--json`` document has exactly the documented keys; returns its utterances."""
    assert set(doc) == {"file", "engine", "utterances"}
    assert (doc["file"], doc["engine"]) == (str(file), engine)
    utterances = doc["utterances"]
    assert isinstance(utterances, list)
    for u in utterances:
        assert set(u) == {"start", "end", "text", "confidence", "words", "prosody"}
        assert 0.0 <= u["start"] < u["end"] and 0.0 <= u["confidence"] <= 1.0
        assert all(set(w) == {"text", "start", "end", "confidence"} for w in u["words"])
        assert set(u["prosody"]) == PROSODY_KEYS
    return utterances


@pytest.mark.parametrize("name", ["16k-mono", "44k-stereo"])
@pytest.mark.usefixtures("whisper_env")
@pytest.mark.slow
@pytest.mark.models
def test_a_real_mandarin_recording_gives_its_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    file = shared(REAL_ZH / CLIP)
    if name == "44k-stereo":
        mono = np.frombuffer(to_rate(read_wav(file), 44100).pcm, dtype="<i2")
        file = tmp_path / "stereo44k.wav"
        sf.write(file, np.stack([mono, (mono * 0.7).astype(np.int16)], axis=1), 44100, subtype="PCM_16")
    code, out, err = ivr(capsys, str(file), "--engine", "whisper", "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    utterances = assert_shape(doc, file, "whisper")
    duration = read_wav(file).duration
    assert utterances and all(u["end"] <= duration for u in utterances)
    assert cer(reference(CLIP), "".join(u["text"] for u in utterances)) < 0.25
    assert utterances[0]["prosody"]["voiced_seconds"] > 1.0


@pytest.mark.usefixtures("whisper_env")
@pytest.mark.slow
@pytest.mark.models
def test_lines_show_times_text_confidence_and_prosody(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = ivr(capsys, str(shared(REAL_ZH / "IT0011W0001.wav")), "--engine", "whisper", "--rate", "8000")
    assert code == 0
    header, times, details = out.splitlines()
    assert header.endswith("1 utterance(s)")
    assert "–" in times and cer(reference("IT0011W0001.wav"), times.split()[-1]) < 0.5
    assert "confidence" in details and "syl/s" in details and "dBFS" in details


@pytest.mark.usefixtures("whisper_env")
@pytest.mark.slow
@pytest.mark.models
def test_minutes_of_silence_give_no_utterances(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = tmp_path / "hold.wav"
    write_wav(file, concat(silence(60.0), noise(60.0, -70.0), silence(60.0)))
    code, out, err = ivr(capsys, str(file), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["utterances"] == []


@pytest.mark.usefixtures("whisper_env")
@pytest.mark.slow
@pytest.mark.models
def test_a_recording_cut_off_mid_data_is_heard_as_far_as_it_goes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = shared(REAL_ZH / CLIP).read_bytes()
    file = tmp_path / "cut.wav"
    file.write_bytes(data[: len(data) * 2 // 3])  # the header still declares the whole length
    code, out, err = ivr(capsys, str(file), "--json")
    assert (code, err) == (0, "")
    text = "".join(u["text"] for u in json.loads(out)["utterances"])
    assert text and cer(reference(CLIP)[: len(text)], text) < 0.35


@pytest.mark.slow
@pytest.mark.models
def test_vosk_with_the_korean_model_runs_end_to_end(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVR_VOSK_MODEL", str(require(vosk_ko_dir(), INSTALL_HINT)))
    file = tmp_path / "ko.wav"
    speech = espeak("안녕하세요 주문 상태를 확인하고 싶습니다", "ko", rate=16000)
    write_wav(file, concat(silence(0.8, 16000), speech, silence(1.0, 16000), speech, silence(0.8, 16000)))
    code, out, _ = ivr(capsys, str(file), "--engine", "vosk", "--json")
    assert code == 0
    utterances = assert_shape(json.loads(out), file, "vosk")
    duration = read_wav(file).duration
    assert len(utterances) == 2  # Korean speech, Korean model: the words are poor, the mechanics are not
    for u in utterances:
        assert u["text"] and u["words"]
        assert all(u["start"] <= w["start"] <= w["end"] <= u["end"] <= duration for w in u["words"])


def _truncated_header(tmp_path: Path) -> Path:
    full = tmp_path / "full.wav"
    write_wav(full, silence(1.0))
    path = tmp_path / "cut.wav"
    path.write_bytes(full.read_bytes()[:30])
    return path


def _clipped_noise(tmp_path: Path) -> Path:
    x = np.random.default_rng(3).standard_normal(8000 * 5) * 32768 * 4  # +12 dB over full scale
    path = tmp_path / "clipped.wav"
    sf.write(path, np.clip(x, -32768, 32767).astype(np.int16), 8000, subtype="PCM_16")
    return path


BAD = {
    "empty": lambda tmp: (tmp / "empty.wav", b""),
    "not a wav": lambda tmp: (tmp / "notes.wav", "我的快递怎么还没到\n".encode()),
    "no samples": lambda tmp: (tmp / "none.wav", b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f"
                               b"\x00\x00\x80>\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"),
}  # fmt: skip


@pytest.mark.parametrize("kind", [*BAD, "truncated header", "clipping noise", "missing file"])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str) -> None:
    if kind in BAD:
        path, data = BAD[kind](tmp_path)
        path.write_bytes(data)
    elif kind == "truncated header":
        path = _truncated_header(tmp_path)
    elif kind == "clipping noise":
        path = _clipped_noise(tmp_path)
    else:
        path = tmp_path / "nowhere.wav"
    code, out, err = ivr(capsys, str(path))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("ivr: ") and "Traceback" not in err


def test_a_missing_model_is_the_one_line_from_asr_models(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVR_WHISPER_MODEL", str(tmp_path / "no-such-model"))
    file = tmp_path / "speech.wav"
    write_wav(file, noise(1.0, -20.0))
    code, out, err = ivr(capsys, str(file), "--engine", "whisper")
    assert (code, out) == (2, "")
    assert err.startswith("ivr: IVR_WHISPER_MODEL=") and "not a usable whisper model" in err
    assert len(err.splitlines()) == 1
    monkeypatch.setenv("IVR_MODEL_DIR", str(tmp_path))
    code, _, err = ivr(capsys, str(file), "--engine", "vosk")
    assert code == 2 and err.startswith("ivr: no Chinese vosk model is installed")
