"""voice.tts_sherpa and the kokoro-zh catalogue entry: download, check, install, load and speak.

Everything is real except the model's weights. The test builds a tiny Kokoro-shaped ONNX graph
with the ``onnx`` package (the inputs, output and metadata sherpa-onnx's Kokoro loader reads:
``sherpa-onnx/csrc/offline-tts-kokoro-model.cc``), a ``voices.bin`` of the size its ``style_dim``
metadata implies, ``tokens.txt`` and the two lexicons, packs them as the release does
(``kokoro-int8-multi-lang-v1_1/`` inside a ``.tar.bz2``) and serves that from a local HTTP server
on 127.0.0.1. sherpa-onnx then loads the installed directory and synthesises through its real
frontend and onnxruntime. The toy's audio is a sine of the token ids: it proves the path, not the voice.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from test_models import Mirror

from asr import models
from core.errors import ConfigError, ModelDownloadError, ModelMissingError
from voice import tts_sherpa
from voice.cli import main
from voice.tts_engine import VoiceEngine

NAME = "kokoro-zh"
ARCHIVE = "kokoro-int8-multi-lang-v1_1.tar.bz2"
TOP = "kokoro-int8-multi-lang-v1_1/"
HQ_ARCHIVE = "kokoro-multi-lang-v1_1.tar.bz2"
REPO = Path(__file__).resolve().parents[1]
ROWS, DIM, SPEAKERS, RATE = 64, 8, 4, 24000  # the real model: 510, 256, 103, 24000
TOKENS = [" ", ";", ":", ",", ".", "!", "?", "—", "…", '"', "(", ")", "“", "”", *"nihao3elw"]


# -- the toy voice -----------------------------------------------------------------------------------


def toy_model(metadata: Mapping[str, object] | None = None) -> bytes:
    """A graph with Kokoro's interface: tokens [1, n] int64, style [1, DIM], speed [1] -> audio [240 n]."""
    nodes = [
        helper.make_node("Cast", ["tokens"], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids", "pitch"], ["phase"]),
        helper.make_node("ReduceMean", ["style"], ["style_mean"], keepdims=0),
        helper.make_node("Mul", ["style_mean", "speed"], ["offset"]),
        helper.make_node("Add", ["phase", "offset"], ["shifted"]),
        helper.make_node("Sin", ["shifted"], ["wave"]),
        helper.make_node("Mul", ["wave", "gain"], ["quiet"]),
        helper.make_node("Tile", ["quiet", "repeats"], ["tiled"]),
        helper.make_node("Reshape", ["tiled", "flat"], ["audio"]),
    ]
    constants = [
        helper.make_tensor("pitch", TensorProto.FLOAT, [], [0.37]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("repeats", TensorProto.INT64, [2], [1, 240]),
        helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
    ]
    inputs = [
        helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "n"]),
        helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, DIM]),
        helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1]),
    ]
    output = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["samples"])
    graph = helper.make_graph(nodes, "toy_kokoro", inputs, [output], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    defaults = {
        "model_type": "kokoro",
        "language": "multi-lang, e.g., English, Chinese",
        "has_espeak": 1,
        "sample_rate": RATE,
        "version": 2,
        "voice": "en-us",
        "style_dim": f"{ROWS},1,{DIM}",
        "n_speakers": SPEAKERS,
        "speaker_names": "af_maple,af_sol,bf_vale,zf_001",
    }
    for key, value in {**defaults, **(metadata or {})}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def toy_files(**changes: bytes) -> dict[str, bytes]:
    """The release's layout (model, voices, tokens, lexicons, dict/, espeak-ng-data/) with toy contents."""
    styles = np.random.default_rng(0).standard_normal(SPEAKERS * ROWS * DIM).astype(np.float32)
    files = {
        "model.int8.onnx": toy_model(),
        "voices.bin": styles.tobytes(),
        "tokens.txt": "".join(f"{token} {i}\n" for i, token in enumerate(TOKENS)).encode(),
        "lexicon-zh.txt": "你 n i 3\n好 h a o 3\n".encode(),
        "lexicon-us-en.txt": b"hello h e l o\nhi h a\n",
        "LICENSE": b"Apache License 2.0 (toy)\n",
        "README.md": b"toy kokoro\n",
        "dict/jieba.dict.utf8": "你好 10 l\n".encode(),
        "espeak-ng-data/phontab": b"unused since sherpa-onnx 2.0",
    }
    files.update(changes)
    return files


def tar_bz2(files: Mapping[str, bytes], top: str = TOP, extra: tuple[tarfile.TarInfo, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(top + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def toy_archive() -> bytes:
    return tar_bz2(toy_files())


PATH = f"/{NAME}/{ARCHIVE}"


@pytest.fixture
def mirror(toy_archive: bytes) -> Iterator[Mirror]:
    with Mirror() as server:
        server.files[PATH] = toy_archive
        yield server


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, toy_archive: bytes) -> models.ModelSpec:
    """kokoro-zh with the toy archive's SHA-256 in place of the real one (still a verified pin)."""
    import hashlib

    spec = replace(models.CATALOGUE[NAME], archive_sha256=hashlib.sha256(toy_archive).hexdigest())
    monkeypatch.setitem(models.CATALOGUE, NAME, spec)  # type: ignore[arg-type]
    return spec


@pytest.fixture
def unpinned(monkeypatch: pytest.MonkeyPatch) -> models.ModelSpec:
    """kokoro-zh with no archive checksum, so a bad archive reaches the unpacker."""
    spec = replace(models.CATALOGUE[NAME], archive_sha256="", sha256_verified=False)
    monkeypatch.setitem(models.CATALOGUE, NAME, spec)  # type: ignore[arg-type]
    return spec


def leftovers(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if p.name.startswith(".")) if model_dir.exists() else []


def nothing_installed(model_dir: Path) -> bool:
    return not (model_dir / NAME).exists() and leftovers(model_dir) == []


# -- the catalogue ---------------------------------------------------------------------------------------


def test_the_catalogue_pins_the_real_release_archives() -> None:
    small, hq = models.CATALOGUE["kokoro-zh"], models.CATALOGUE["kokoro-zh-hq"]
    assert small.engine == hq.engine == "tts" and small.is_archive and hq.is_archive
    assert small.base_url == hq.base_url == "https://github.com/k2-fsa/sherpa-onnx/releases/download/tts-models"
    assert small.files == ("kokoro-int8-multi-lang-v1_1.tar.bz2",)
    assert small.archive_sha256 == "a1e94694776049035c4f2c6529f003aaece993c76aae9a78995831c3c4dcafc6"
    assert hq.files == ("kokoro-multi-lang-v1_1.tar.bz2",)
    assert hq.archive_sha256 == "a3f4c73d043860e3fd2e5b06f36795eb81de0fc8e8de6df703245edddd87dbad"
    assert small.sha256_verified and hq.sha256_verified
    assert tts_sherpa.VOICE_INFO.commercial and tts_sherpa.VOICE_INFO.neural
    assert tts_sherpa.VOICE_INFO.name == "kokoro-zh" and "Apache-2.0" in tts_sherpa.VOICE_INFO.licence


# -- download --------------------------------------------------------------------------------------------


def test_download_checks_unpacks_and_installs_the_voice(
    mirror: Mirror, model_dir: Path, pinned: models.ModelSpec
) -> None:
    result = models.download(NAME, model_dir, mirror.url, progress=False)
    assert result.fetched and result.path == model_dir / NAME and result.warnings == ()
    assert mirror.requests == [PATH]
    installed = {str(p.relative_to(result.path)) for p in result.path.rglob("*") if p.is_file()}
    assert installed == {*toy_files(), models.PROVENANCE}
    record = json.loads((result.path / models.PROVENANCE).read_text(encoding="utf-8"))
    assert record["source"] == f"{mirror.url}/{NAME}" and record["sha256_verified"] is True
    assert tts_sherpa.kokoro_dir_problems(result.path) == []
    assert tts_sherpa.installed_path(model_dir) == result.path
    assert leftovers(model_dir) == []
    assert [(m.name, m.engine) for m in models.installed(model_dir)] == [(NAME, "tts")]


def test_a_wrong_archive_checksum_fails_before_unpacking(mirror: Mirror, model_dir: Path) -> None:
    """The real pin against the toy archive: what a corrupt or substituted download looks like."""
    with pytest.raises(ModelDownloadError) as err:
        models.download(NAME, model_dir, mirror.url, progress=False)
    message = str(err.value)
    assert message.startswith(f"download failed: {NAME}: {ARCHIVE} has SHA-256 ")
    assert "expected a1e9469477604903…" in message and "\n" not in message
    assert nothing_installed(model_dir) and tts_sherpa.installed_path(model_dir) is None


def test_a_truncated_transfer_fails_and_installs_nothing(
    mirror: Mirror, model_dir: Path, pinned: models.ModelSpec, toy_archive: bytes
) -> None:
    mirror.cut[PATH] = len(toy_archive) // 2
    with pytest.raises(ModelDownloadError, match=f"download failed: .*{ARCHIVE}") as err:
        models.download(NAME, model_dir, mirror.url, progress=False, timeout=10)
    assert err.value.retryable and "\n" not in str(err.value)
    assert nothing_installed(model_dir)


def test_a_truncated_archive_without_a_pin_fails_to_unpack(
    mirror: Mirror, model_dir: Path, unpinned: models.ModelSpec, toy_archive: bytes
) -> None:
    mirror.files[PATH] = toy_archive[: len(toy_archive) * 2 // 3]
    with pytest.raises(ModelDownloadError, match=f"{ARCHIVE} is not a valid tar.bz2 archive") as err:
        models.download(NAME, model_dir, mirror.url, progress=False)
    assert "\n" not in str(err.value)
    assert nothing_installed(model_dir)


def link(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (tarfile.TarInfo("../escape.txt"), "would unpack outside the model directory"),
        (tarfile.TarInfo("/tmp/escape.txt"), "would unpack outside the model directory"),
        (link(TOP + "tokens2.txt", tarfile.SYMTYPE, "/etc/passwd"), "is a symbolic link"),
        (link(TOP + "tokens3.txt", tarfile.LNKTYPE, "/etc/passwd"), "is a symbolic link"),
        (link(TOP + "fifo", tarfile.FIFOTYPE, ""), "is not a regular file"),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "fifo"],
)
def test_a_tar_member_that_escapes_or_links_is_refused(
    mirror: Mirror, tmp_path: Path, model_dir: Path, unpinned: models.ModelSpec, extra: tarfile.TarInfo, why: str
) -> None:
    mirror.files[PATH] = tar_bz2(toy_files(), extra=(extra,))
    with pytest.raises(ModelDownloadError, match=why) as err:
        models.download(NAME, model_dir, mirror.url, progress=False)
    assert not err.value.retryable
    assert not list(tmp_path.rglob("escape.txt")) and not Path("/tmp/escape.txt").exists()
    assert nothing_installed(model_dir)


def test_a_tar_bomb_stops_at_the_size_limit(
    mirror: Mirror, model_dir: Path, unpinned: models.ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "_MAX_UNPACKED", 4096)
    mirror.files[PATH] = tar_bz2(toy_files(**{"big.bin": bytes(64 * 1024)}))
    with pytest.raises(ModelDownloadError, match="refusing .* it would unpack to"):
        models.download(NAME, model_dir, mirror.url, progress=False)
    assert nothing_installed(model_dir)


def test_an_archive_without_a_voice_inside_installs_nothing(
    mirror: Mirror, model_dir: Path, unpinned: models.ModelSpec
) -> None:
    mirror.files[PATH] = tar_bz2({"README.md": b"hello"})
    with pytest.raises(ModelDownloadError, match="is not a usable tts model: model.int8.onnx or model.onnx is missing"):
        models.download(NAME, model_dir, mirror.url, progress=False)
    assert nothing_installed(model_dir)


# -- ivr models ------------------------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> Path:
    for var in ("IVR_VOSK_MODEL", "IVR_WHISPER_MODEL", "IVR_ASR_ENGINE", "IVR_MODEL_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IVR_MODEL_DIR", str(model_dir))
    return model_dir


def test_ivr_models_download_and_list_show_the_voice(
    env: Path, mirror: Mirror, pinned: models.ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list"]) == 0
    assert "kokoro-zh     tts      not installed  ~141.0 MB" in capsys.readouterr().out
    assert main(["models", "download", NAME, "--mirror", mirror.url, "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"{NAME} installed at {env / NAME}"
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "kokoro-zh     tts      installed" in listing and str(env / NAME) in listing
    assert f"  from: {mirror.url}/{NAME} on " in listing and "(SHA-256 verified)" in listing
    assert "kokoro-zh-hq  tts      not installed" in listing


def test_ivr_models_download_uses_the_configured_mirror(
    env: Path, mirror: Mirror, pinned: models.ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVR_MODEL_MIRROR", mirror.url)
    assert main(["models", "download", NAME, "--quiet"]) == 0
    assert mirror.requests == [PATH] and tts_sherpa.installed_path(env) == env / NAME


def test_ivr_models_download_with_a_bad_checksum_is_one_line_exit_2(
    env: Path, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "download", NAME, "--mirror", mirror.url, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ivr: download failed: {NAME}: {ARCHIVE} has SHA-256") and err.count("\n") == 1
    assert nothing_installed(env)


def test_ivr_models_in_a_subprocess_lists_the_voice_and_fails_in_one_line(
    mirror: Mirror, model_dir: Path, pinned: models.ModelSpec
) -> None:
    """A fresh interpreter: the lazy import of voice.tts_sherpa from asr.models works, errors stay one line."""
    models.download(NAME, model_dir, mirror.url, progress=False)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(model_dir.parent), "IVR_MODEL_DIR": str(model_dir)}
    cli = [sys.executable, "-m", "voice.cli", "models"]
    listing = subprocess.run([*cli, "list"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "kokoro-zh     tts      installed" in listing.stdout and "(SHA-256 verified)" in listing.stdout
    url = f"http://127.0.0.1:{closed_port()}"
    failed = subprocess.run(
        [*cli, "download", "kokoro-zh-hq", "--mirror", url], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().startswith(f"ivr: download failed: cannot fetch {url}/kokoro-zh-hq/{HQ_ARCHIVE}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- loading and speaking --------------------------------------------------------------------------------


@pytest.fixture
def voice_dir(mirror: Mirror, model_dir: Path, pinned: models.ModelSpec) -> Path:
    return models.download(NAME, model_dir, mirror.url, progress=False).path


def test_the_installed_voice_speaks(voice_dir: Path) -> None:
    voice: VoiceEngine = tts_sherpa.load(voice_dir)
    assert voice.info is tts_sherpa.VOICE_INFO and voice.sample_rate == RATE
    audio = voice.synthesize("你好")
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
    assert np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0.01
    longer = voice.synthesize("你好，你好。")
    assert longer.size > audio.size, "more tokens, more samples"
    assert voice.synthesize("").size == 0 and voice.synthesize("  ").size == 0
    assert voice.synthesize("hello").size > 0, "English words through lexicon-us-en.txt"


def test_one_model_per_directory_shared_by_speakers_and_threads(voice_dir: Path) -> None:
    first, other = tts_sherpa.load(voice_dir), tts_sherpa.load(voice_dir, speaker=0, speed=1.2)
    assert first._model is other._model and (first.speaker, other.speaker) == (tts_sherpa.DEFAULT_SPEAKER, 0)
    expected = first.synthesize("你好你好")
    results: list[np.ndarray] = []

    def speak() -> None:
        for _ in range(5):
            results.append(first.synthesize("你好你好"))

    threads = [threading.Thread(target=speak) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 20 and all(np.array_equal(r, expected) for r in results)


def test_a_bad_speaker_or_speed_is_a_config_error(voice_dir: Path) -> None:
    with pytest.raises(ConfigError, match=f"speaker must be 0..{SPEAKERS - 1}, got {SPEAKERS}"):
        tts_sherpa.load(voice_dir, speaker=SPEAKERS)
    with pytest.raises(ConfigError, match="speed must be above 0"):
        tts_sherpa.load(voice_dir, speed=0)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"voices.bin": b"\0" * 1000}, "voices.bin has 1000 bytes, model.int8.onnx expects 8192"),
        ({"tokens.txt": "你 1\nab 2\n".encode()}, "tokens.txt line 2 is not '<one character> <id>'"),
        ({"model.int8.onnx": b"garbage\n"}, "model.int8.onnx is not an ONNX model"),
        ({"model.int8.onnx": toy_model({"model_type": "vits"})}, "is not a Kokoro model"),
        ({"model.int8.onnx": toy_model({"version": 1})}, "is Kokoro version 1"),
        ({"lexicon-zh.txt": b""}, "lexicon-zh.txt is missing or empty"),
    ],
    ids=["voices-size", "tokens", "not-onnx", "not-kokoro", "english-only", "no-lexicon"],
)
def test_a_damaged_voice_is_named_and_never_handed_to_sherpa(
    tmp_path: Path, change: dict[str, bytes], why: str
) -> None:
    """Each of these makes sherpa-onnx end the process (or fail obscurely); here it is one clear line."""
    broken = tmp_path / "models" / NAME
    for rel, data in toy_files(**change).items():
        (broken / rel).parent.mkdir(parents=True, exist_ok=True)
        (broken / rel).write_bytes(data)
    problems = tts_sherpa.kokoro_dir_problems(broken)
    assert problems and why in problems[0]
    with pytest.raises(ModelMissingError, match=f"is not a usable Kokoro voice .*{why[:20]}") as err:
        tts_sherpa.load(broken)
    assert "\n" not in str(err.value)
    assert tts_sherpa.installed_path(tmp_path / "models") is None
    assert tts_sherpa.why_missing(tmp_path / "models").endswith(f"run `ivr models download {NAME} --force`")


def test_nothing_installed_says_what_to_run(model_dir: Path) -> None:
    assert tts_sherpa.installed_path(model_dir) is None
    assert tts_sherpa.why_missing(model_dir) == (
        f"no neural voice is installed in {model_dir}: run `ivr models download kokoro-zh`"
    )
    with pytest.raises(ModelMissingError, match="is not a directory"):
        tts_sherpa.load(model_dir / NAME)


def test_onnx_metadata_matches_what_onnx_reads(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(toy_model({"comment": "中文 metadata"}))
    expected = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert tts_sherpa.onnx_metadata(path) == expected and expected["comment"] == "中文 metadata"
    path.write_bytes(toy_model()[:-7])
    with pytest.raises(ValueError):
        tts_sherpa.onnx_metadata(path)
