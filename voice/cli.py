"""The ``ivr`` command. Each ``voice/cli_*.py`` module adds its subcommands via ``register(sub)``.

A subcommand's handler is ``func(args, settings) -> int``. Every ``IvrError`` becomes one clear
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import voice
from core.errors import ConfigError, IvrError
from core.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="中文电商 AI 语音客服热线")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(voice.__path__), key=lambda m: m.name):
        if info.name.startswith("cli_"):
            importlib.import_module(f"voice.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        check_db_path(settings.db_path)
        return int(args.func(args, settings))
    except IvrError as err:
        print(f"ivr: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def check_db_path(path: Path) -> None:
    """``IVR_DB_PATH`` must name a file the hotline can create or write (checked at start-up, one line)."""
    where = f"IVR_DB_PATH={path}"
    if path.is_dir():
        raise ConfigError(f"{where} is a directory; expected a database file path such as {path / 'shop.sqlite3'}")
    parent = next((p for p in path.parents if p.exists()), Path(path.anchor or "."))
    if not path.exists() and not parent.is_dir():
        raise ConfigError(f"{where} cannot be created: {parent} is not a directory")
    try:
        if path.exists():
            path.open("r+b").close()
        else:
            tempfile.TemporaryFile(dir=parent).close()  # can a file be made there at all?
    except OSError as err:
        raise ConfigError(f"{where} is not writable: {err.strerror or err}") from None


if __name__ == "__main__":
    sys.exit(main())
