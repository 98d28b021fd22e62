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
from collections.abc import Sequence

import voice
from core.errors import IvrError
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
        return int(args.func(args, settings))
    except IvrError as err:
        print(f"ivr: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
