"""``ivr call --caller +86… --say "…" [--audio turn.wav] [--shop FILE] [--json]``: one call, end to end.

The turns run, in command-line order, through the same ``CallSession`` a live call uses, assembled
by ``voice.hotline`` exactly as ``ivr serve`` assembles it. The shop clock is the snapshot's
``as_of`` (ticking from there) when it has one, else the system clock.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ShopDataError
from core.settings import Settings
from core.types import Transfer
from voice.session import CallOutcome, TurnResult

if TYPE_CHECKING:
    from voice.hotline import Hotline


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("call", help="run one call through the hotline from text or WAV turns")
    parser.add_argument("--caller", help="the caller ID in E.164, e.g. +8613800138001 (default: withheld)")
    # one shared dest, so the turns keep their command-line order whatever their kind
    parser.add_argument("--say", dest="turns", action="append", type=_tagged("say"), metavar="TEXT", help="text turn")
    parser.add_argument("--audio", dest="turns", action="append", type=_tagged("audio"), metavar="WAV", help="WAV turn")
    parser.add_argument("--shop", type=Path, help="a shop-snapshot/1 JSON to serve instead of the configured shop")
    parser.add_argument("--json", action="store_true", help="print the call as one JSON object")
    parser.add_argument(
        "--agents-online",
        metavar="A01,A04",
        help="run the call as if these agents (or 'all') were signed in and available; default: none, so a "
        "transfer becomes a callback",
    )
    parser.set_defaults(func=call, turns=None)


def _tagged(kind: str) -> Callable[[str], tuple[str, str]]:
    return lambda value: (kind, value)


def call(args: argparse.Namespace, settings: Settings) -> int:
    from voice.hotline import open_hotline

    turns: list[tuple[str, str]] = args.turns or []
    try:
        hotline = open_hotline(settings, args.shop)
    except ShopDataError as err:
        raise ShopDataError(one_line(str(err))) from None
    desk = None
    if args.agents_online:
        from voice.transfers import LocalDesk, online_agents

        agents = hotline.shop.agents()
        desk = hotline.transfers = LocalDesk(agents, online_agents(args.agents_online, agents), server="cli")
    try:
        return _run(hotline, args, turns)
    finally:
        if desk is not None:
            desk.close()


def _run(hotline: Hotline, args: argparse.Namespace, turns: list[tuple[str, str]]) -> int:
    from voice.report import call_json
    from voice.wav import read_wav

    session = hotline.session(args.caller, with_speech=any(kind == "audio" for kind, _ in turns))
    greeting = "".join(a.text for a in session.greet())
    results: list[TurnResult] = []
    for kind, value in turns:
        if session.ended:
            print(f"ivr: the call ended with {len(turns) - len(results)} turn(s) not played", file=sys.stderr)
            break
        results.append(session.hear_text(value) if kind == "say" else session.hear_audio(read_wav(value)))
    outcome = session.end()
    if args.json:
        report = {**call_json(session, greeting, results, outcome), "shop_warnings": list(hotline.warnings)}
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(call_text(greeting, results, outcome))
    return 0


def one_line(message: str) -> str:
    """「file: 3 problems…: the first problem (and 2 more)」 — a report that fits one line."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
    return f"{lines[0]}: {lines[1]}{more}"


def call_text(greeting: str, results: list[TurnResult], outcome: CallOutcome) -> str:
    """The dialogue as lines, then how the call ended and the agent's three-line summary."""
    lines = [f"客服：{greeting}"]
    for r in results:
        lines.append(f"来电：{r.heard}")
        lines.append(f"客服：{r.reply}")
        if any(isinstance(a, Transfer) for a in r.actions):
            lines.append("（转人工）")
    lines.append(f"—— {outcome_line(outcome)}")
    lines += [f"   {s}" for s in outcome.summary]
    return "\n".join(lines)


def outcome_line(o: CallOutcome) -> str:
    if o.type == "transferred":
        agent = f"{o.agent.name}（{o.agent.id}）" if o.agent else "排队等待"
        return f"已转人工：{o.skill}，优先级{o.priority}，坐席{agent}；原因：{o.reason}"
    if o.type == "callback":
        return f"已登记回电：{o.skill}，优先级{o.priority}；原因：{o.reason}"
    if o.type == "abandoned":
        return f"未解决挂断：{o.reason}"
    return "已解决"
