"""``ivr understand``: what the hotline makes of one caller turn (intents, slots, emotion).

``ivr understand "快第到哪了"`` prints one readable line per need; ``--json`` prints one JSON object;
``--stdin`` reads one utterance per line and answers line for line (JSON Lines with ``--json``).
The shop's products are the vocabulary and the shop's clock (a snapshot's ``as_of``) is "now".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from core.errors import ConfigError
from core.settings import Settings
from core.types import Understanding
from voice.hotline import open_hotline
from voice.report import understanding_json


def register(sub: Any) -> None:
    parser = sub.add_parser("understand", help="理解来电者的一句话：意图、槽位、情绪")
    parser.add_argument("text", nargs="?", help="the caller's words, e.g. 快第到哪了")
    parser.add_argument("--stdin", action="store_true", help="read one utterance per line from stdin")
    parser.add_argument("--json", action="store_true", help="print JSON (one object per line)")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace, settings: Settings) -> int:
    if (args.text is None) == (not args.stdin):
        raise ConfigError(
            "ivr understand expects either a TEXT argument or --stdin, got " + ("both" if args.stdin else "neither")
        )
    hotline = open_hotline(settings)
    lines: Iterable[str] = _utf8_lines() if args.stdin else [args.text]
    for line in lines:
        understanding = hotline.understander.understand(line.rstrip("\r\n"), hotline.clock.now())
        out = json.dumps(understanding_json(understanding), ensure_ascii=False) if args.json else as_text(understanding)
        print(out)
        sys.stdout.flush()
    return 0


def as_text(u: Understanding) -> str:
    lines = [f"「{u.text}」 → {u.normalized}"]
    for intent in u.intents:
        slots = " ".join(f"{k}={v}" for k, v in intent.slots.items())
        lines.append(f"  {intent.name:<24} {intent.confidence:.2f}  {slots}".rstrip())
    cues = ", ".join(u.emotion.cues)
    lines.append(f"  emotion {u.emotion.label.value} {u.emotion.score:.2f}" + (f"  ({cues})" if cues else ""))
    return "\n".join(lines)


def _utf8_lines() -> Iterable[str]:
    stream = sys.stdin
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(encoding="utf-8", errors="replace")
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    return stream
