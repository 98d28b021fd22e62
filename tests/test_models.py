"""asr.models and ``ivr models``: the download path against a real HTTP server on 127.0.0.1.

The archives are built here and mimic the vosk layout (a top directory holding am/, conf/, graph/,
ivector/); their contents are placeholders, so the small-cn checksums (never verified, see
asr/models.py) mismatch and must only warn.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import testmodels

from asr import models
from asr.engine import create_engine
from core.errors import ModelDownloadError, ModelMissingError
from core.settings import Settings
from voice.cli import main

REPO = Path(__file__).resolve().parents[1]
VOSK_FILES = {
    "am/final.mdl": b"acoustic model",
    "conf/model.conf": b"--min-active=200\n",
    "conf/mfcc.conf": b"--use-energy=false\n",
    "graph/HCLr.fst": b"lexicon graph",
    "graph/Gr.fst": b"grammar graph",
    "ivector/final.ie": b"ivector extractor",
}
ZIP_NAME = "vosk-model-small-cn-0.22.zip"


def vosk_zip(files: Mapping[str, bytes] = VOSK_FILES, top: str = "vosk-model-small-cn-0.22/") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(top + name, data)
    return buffer.getvalue()


class Mirror:
    """A model mirror: serves ``files`` (``/<model>/<file>`` → bytes) and counts requests;
    ``cut[path] = n`` promises the whole file and sends only its first n bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[str] = []
        self.gate = threading.Event()  # cleared: every answer waits until it is set (or 60 s pass)
        self.gate.set()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                mirror.requests.append(self.path)
                mirror.gate.wait(60)
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: mirror.cut.get(self.path, len(body))])
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    with Mirror() as server:
        server.files[f"/vosk-zh/{ZIP_NAME}"] = vosk_zip()
        yield server


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leftovers(model_dir: Path) -> list[str]:
    """Anything in model_dir that is not an installed model: staging or swapped-out directories."""
    return sorted(p.name for p in model_dir.iterdir() if p.name.startswith(".")) if model_dir.exists() else []


# -- download ------------------------------------------------------------------------------------


def test_download_fetches_unpacks_and_installs_with_progress(
    mirror: Mirror, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = models.download("vosk-zh", model_dir, mirror.url, progress=True)
    assert result.fetched and result.path == model_dir / "vosk-zh"
    files = {str(p.relative_to(result.path)) for p in result.path.rglob("*") if p.is_file()}
    assert files == {*VOSK_FILES, models.PROVENANCE}
    assert (result.path / "am/final.mdl").read_bytes() == VOSK_FILES["am/final.mdl"]
    assert mirror.requests == [f"/vosk-zh/{ZIP_NAME}"]
    record = json.loads((result.path / models.PROVENANCE).read_text(encoding="utf-8"))
    assert record["source"] == f"{mirror.url}/vosk-zh" and record["sha256_verified"] is False
    assert leftovers(model_dir) == []
    assert ZIP_NAME in capsys.readouterr().err, "tqdm's progress bar names the file on stderr"


def test_unverified_checksums_warn_but_install(mirror: Mirror, model_dir: Path) -> None:
    result = models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert len(result.warnings) == len(models.CATALOGUE["vosk-zh"].sha256)
    assert all("never checked against a real copy" in w for w in result.warnings)
    assert not models.vosk_dir_problems(result.path)


def test_a_second_download_is_a_no_op(mirror: Mirror, model_dir: Path) -> None:
    models.download("vosk-zh", model_dir, mirror.url, progress=False)
    again = models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert not again.fetched and again.path == model_dir / "vosk-zh"
    assert len(mirror.requests) == 1


def test_force_replaces_an_installed_model(mirror: Mirror, model_dir: Path) -> None:
    models.download("vosk-zh", model_dir, mirror.url, progress=False)
    mirror.files[f"/vosk-zh/{ZIP_NAME}"] = vosk_zip({**VOSK_FILES, "am/final.mdl": b"newer model"})
    result = models.download("vosk-zh", model_dir, mirror.url, progress=False, force=True)
    assert result.fetched and (result.path / "am/final.mdl").read_bytes() == b"newer model"
    assert leftovers(model_dir) == []


def test_a_broken_install_is_replaced(mirror: Mirror, model_dir: Path) -> None:
    broken = model_dir / "vosk-zh"
    (broken / "am").mkdir(parents=True)
    (broken / "am/final.mdl").write_bytes(b"")
    result = models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert result.fetched and not models.vosk_dir_problems(broken)


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"this is not a zip file at all", "not a valid zip"), (vosk_zip()[:-200], "not a valid zip")],
    ids=["garbage", "truncated"],
)
def test_a_corrupt_archive_is_a_clear_error_and_installs_nothing(
    mirror: Mirror, model_dir: Path, body: bytes, why: str
) -> None:
    mirror.files[f"/vosk-zh/{ZIP_NAME}"] = body
    with pytest.raises(ModelDownloadError, match=why) as err:
        models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert "\n" not in str(err.value)
    assert not (model_dir / "vosk-zh").exists() and leftovers(model_dir) == []


def test_an_archive_without_a_model_inside_installs_nothing(mirror: Mirror, model_dir: Path) -> None:
    mirror.files[f"/vosk-zh/{ZIP_NAME}"] = vosk_zip({"README": b"hello"})
    with pytest.raises(ModelDownloadError, match="not a usable vosk model: am/final.mdl is missing") as err:
        models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert not err.value.retryable
    assert not (model_dir / "vosk-zh").exists() and leftovers(model_dir) == []


def test_http_404_is_a_retryable_download_error(mirror: Mirror, model_dir: Path) -> None:
    del mirror.files[f"/vosk-zh/{ZIP_NAME}"]
    with pytest.raises(ModelDownloadError, match=rf"HTTP 404 .* from {mirror.url}/vosk-zh/{ZIP_NAME}") as err:
        models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert err.value.retryable and "\n" not in str(err.value)
    assert not (model_dir / "vosk-zh").exists() and leftovers(model_dir) == []


def test_connection_refused_is_a_retryable_download_error(model_dir: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(ModelDownloadError, match=f"cannot fetch {url}/vosk-zh/{ZIP_NAME}") as err:
        models.download("vosk-zh", model_dir, url, progress=False, timeout=5)
    assert err.value.retryable
    assert not (model_dir / "vosk-zh").exists() and leftovers(model_dir) == []


@pytest.mark.parametrize("name", ["../escape.txt", "/abs/escape.txt", "top/../../escape.txt"])
def test_an_archive_reaching_outside_the_model_dir_is_refused(
    mirror: Mirror, tmp_path: Path, model_dir: Path, name: str
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for rel, data in VOSK_FILES.items():
            zf.writestr("vosk-model-small-cn-0.22/" + rel, data)
        zf.writestr(zipfile.ZipInfo(name), b"pwned")
    mirror.files[f"/vosk-zh/{ZIP_NAME}"] = buffer.getvalue()
    with pytest.raises(ModelDownloadError, match="would unpack outside the model directory") as err:
        models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert not err.value.retryable
    assert not list(tmp_path.rglob("escape.txt")) and not Path("/abs/escape.txt").exists()
    assert not (model_dir / "vosk-zh").exists() and leftovers(model_dir) == []


def test_a_symlink_in_the_archive_is_refused(mirror: Mirror, model_dir: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        link = zipfile.ZipInfo("vosk-model-small-cn-0.22/am/final.mdl")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    mirror.files[f"/vosk-zh/{ZIP_NAME}"] = buffer.getvalue()
    with pytest.raises(ModelDownloadError, match="is a symbolic link"):
        models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert not (model_dir / "vosk-zh").exists()


def test_whisper_files_with_a_wrong_verified_checksum_are_refused(mirror: Mirror, model_dir: Path) -> None:
    for name in models.CATALOGUE["whisper-base"].files:
        mirror.files[f"/whisper-base/{name}"] = b"not the real " + name.encode()
    with pytest.raises(ModelDownloadError, match="has SHA-256 .* expected") as err:
        models.download("whisper-base", model_dir, mirror.url, progress=False)
    assert err.value.retryable
    assert not (model_dir / "whisper-base").exists() and leftovers(model_dir) == []


@pytest.mark.models
def test_the_real_whisper_files_pass_their_checksums(mirror: Mirror, model_dir: Path, whisper_model_dir: Path) -> None:
    for name in models.CATALOGUE["whisper-base"].files:
        mirror.files[f"/whisper-base/{name}"] = (whisper_model_dir / name).read_bytes()
    result = models.download("whisper-base", model_dir, mirror.url, progress=False)
    assert result.fetched and result.warnings == ()
    assert not models.whisper_dir_problems(result.path)
    assert [m.name for m in models.installed(model_dir)] == ["whisper-base"]


def test_a_mirror_must_be_a_url(model_dir: Path) -> None:
    with pytest.raises(Exception, match="must be an http"):
        models.download("vosk-zh", model_dir, "ftp://example.org", progress=False)


# -- resolving and choosing the engine ------------------------------------------------------------


def settings_for(model_dir: Path, **changes: object) -> Settings:
    return replace(Settings(), model_dir=model_dir, **changes)  # type: ignore[arg-type]


def test_auto_is_whisper_until_a_chinese_vosk_model_is_installed(mirror: Mirror, model_dir: Path) -> None:
    settings = settings_for(model_dir)
    assert models.resolve_vosk(settings) is None and models.auto_engine(settings) == "whisper"
    models.download("vosk-zh", model_dir, mirror.url, progress=False)
    assert models.resolve_vosk(settings) == model_dir / "vosk-zh"
    assert models.auto_engine(settings) == "vosk"
    assert models.auto_engine(replace(settings, asr_engine="whisper")) == "whisper"


def test_a_missing_whisper_model_says_what_to_run_or_set(model_dir: Path) -> None:
    with pytest.raises(ModelMissingError) as err:
        models.resolve_whisper(settings_for(model_dir))
    assert str(err.value) == (
        "whisper model 'whisper-base' is not installed: run `ivr models download whisper-base` "
        "or set IVR_WHISPER_MODEL=/path/to/dir"
    )
    with pytest.raises(ModelMissingError, match="^whisper model 'whisper-base' is not installed"):
        create_engine(settings_for(model_dir))


def test_a_configured_vosk_path_that_is_not_a_model_is_named(tmp_path: Path, model_dir: Path) -> None:
    settings = settings_for(model_dir, vosk_model=str(tmp_path))
    with pytest.raises(ModelMissingError, match=rf"^IVR_VOSK_MODEL={tmp_path} is not a usable vosk model directory"):
        models.auto_engine(settings)


def test_installed_lists_hand_unpacked_models_too(mirror: Mirror, model_dir: Path) -> None:
    models.download("vosk-zh", model_dir, mirror.url, progress=False)
    shutil.copytree(model_dir / "vosk-zh", model_dir / "vosk-model-small-cn-0.22")
    found = {m.name: m for m in models.installed(model_dir)}
    assert set(found) == {"vosk-zh", "vosk-model-small-cn-0.22"}
    assert found["vosk-zh"].catalogued and not found["vosk-model-small-cn-0.22"].catalogued
    provenance = (model_dir / "vosk-zh" / models.PROVENANCE).stat().st_size
    assert found["vosk-zh"].size_bytes == sum(len(b) for b in VOSK_FILES.values()) + provenance


# -- the test models themselves ------------------------------------------------------------------


def test_a_missing_test_model_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no model here"):
        testmodels.require(None, "no model here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no model here .CI=true"):
        testmodels.require(None, "no model here")
    assert testmodels.require(tmp_path, "unused") == tmp_path


# -- ivr models ------------------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> Path:
    for var in ("IVR_VOSK_MODEL", "IVR_WHISPER_MODEL", "IVR_ASR_ENGINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IVR_MODEL_DIR", str(model_dir))
    return model_dir


def test_models_list_shows_what_is_installed_and_what_auto_uses(
    env: Path, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list"]) == 0
    before = capsys.readouterr().out
    assert f"model dir: {env}" in before
    assert "vosk-zh       vosk     not installed" in before
    assert "IVR_ASR_ENGINE=auto -> whisper (no Chinese vosk model installed)" in before
    assert "whisper model 'whisper-base' is not installed" in before

    assert main(["models", "download", "vosk-zh", "--mirror", mirror.url, "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"vosk-zh installed at {env / 'vosk-zh'}"
    assert main(["models", "list"]) == 0
    after = capsys.readouterr().out
    provenance = (env / "vosk-zh" / models.PROVENANCE).stat().st_size
    size = f"{sum(len(b) for b in VOSK_FILES.values()) + provenance} B"
    assert f"vosk-zh       vosk     installed      {size:>9}  {env / 'vosk-zh'}" in after
    assert f"  from: {mirror.url}/vosk-zh on " in after and "(SHA-256 not verified)" in after
    assert "IVR_ASR_ENGINE=auto -> vosk (a Chinese vosk model is installed)" in after
    assert main(["models", "download", "vosk-zh", "--mirror", mirror.url]) == 0
    assert "already installed" in capsys.readouterr().out


def test_models_download_failure_is_one_line_exit_2(
    env: Path, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    del mirror.files[f"/vosk-zh/{ZIP_NAME}"]
    assert main(["models", "download", "vosk-zh", "--mirror", mirror.url, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ivr: download failed: HTTP 404") and err.count("\n") == 1


def test_models_cli_in_a_subprocess_prints_no_traceback(model_dir: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(model_dir.parent), "IVR_MODEL_DIR": str(model_dir)}
    url = f"http://127.0.0.1:{closed_port()}"
    cli = [sys.executable, "-m", "voice.cli", "models"]
    failed = subprocess.run(
        [*cli, "download", "whisper-base", "--mirror", url], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert failed.returncode == 2, failed.stderr
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip().startswith(f"ivr: download failed: cannot fetch {url}/whisper-base/")
    unknown = subprocess.run([*cli, "download", "nope"], env=env, cwd=REPO, capture_output=True, text=True)
    assert unknown.returncode == 2 and "invalid choice: 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_ivr_models_download_uses_the_configured_mirror(
    mirror: Mirror, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a user behind a company mirror runs: IVR_MODEL_MIRROR, then `ivr models download vosk-zh`."""
    monkeypatch.setenv("IVR_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("IVR_MODEL_MIRROR", mirror.url)
    assert main(["models", "download", "vosk-zh", "--quiet"]) == 0
    assert "installed at" in capsys.readouterr().out
    assert mirror.requests == [f"/vosk-zh/{ZIP_NAME}"]
    assert (model_dir / "vosk-zh" / "am" / "final.mdl").read_bytes() == VOSK_FILES["am/final.mdl"]
    monkeypatch.setenv("IVR_MODEL_MIRROR", "ftp://mirror.example")
    assert main(["models", "download", "vosk-zh"]) == 2
    assert "IVR_MODEL_MIRROR must be" in capsys.readouterr().err
