"""``ivr agents list|passwd|contact``: the shop's human agents, their desktop passwords and contacts.

``ivr agents list`` shows each agent of the configured shop (skills, languages, lines), whether a
password for the agent desktop (``/agent``) is set, and their SIP URI and phone. ``ivr agents
passwd A01`` sets A01's password, asked twice at a prompt, or read as one line from stdin with
``--stdin``; ``ivr agents contact A01 --sip sip:a01@pbx --phone +8613800138000`` sets where calls
for A01 may be transferred. An id the shop does not have is refused. Accounts live in
``IVR_DB_PATH`` (table ``agent_accounts``).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import unicodedata

from core.errors import ConfigError
from core.settings import Settings
from core.shop import Agent
from routing.accounts import Accounts, check_password
from shop import open_shop
from shop.phone import is_e164

_SIP_URI = re.compile(r"^sips?:[^\s@]+@[^\s@]+$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("agents", help="人工坐席：列表、登录密码、联系方式", description=__doc__)
    commands = parser.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="the shop's agents, whether a password is set, their contact")
    listing.set_defaults(func=list_agents)
    passwd = commands.add_parser("passwd", help="set an agent's desktop password")
    passwd.add_argument("agent_id", help="the agent's id in the shop, e.g. A01")
    passwd.add_argument("--stdin", action="store_true", help="read the password as one line from stdin")
    passwd.set_defaults(func=set_password)
    contact = commands.add_parser("contact", help="set an agent's SIP URI and/or phone number")
    contact.add_argument("agent_id", help="the agent's id in the shop, e.g. A01")
    contact.add_argument("--sip", metavar="URI", help="e.g. sip:a01@pbx.example.com ('' clears it)")
    contact.add_argument("--phone", metavar="E164", help="e.g. +8613800138000 ('' clears it)")
    contact.set_defaults(func=set_contact)


def list_agents(args: argparse.Namespace, settings: Settings) -> int:
    accounts = Accounts(settings.db_path)
    print(f"{'id':<6} {'name':<8} {'skills':<36} {'languages':<16} {'lines':>5}  {'password':<8}  contact")
    for agent in _agents(settings):
        skills = ",".join(f"{skill}:{level}" for skill, level in agent.skills.items())
        held = accounts.contact(agent.id)
        where = " ".join(x for x in (held.sip_uri, held.phone) if x) or "-"
        password = "set" if accounts.has_password(agent.id) else "-"
        print(
            f"{agent.id:<6} {_pad(agent.name, 8)} {skills:<36} {_pad(','.join(agent.languages), 16)} "
            f"{agent.max_concurrent:>5}  {password:<8}  {where}"
        )
    return 0


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (a Chinese character takes two)."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


def set_password(args: argparse.Namespace, settings: Settings) -> int:
    agent = _known(settings, args.agent_id)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"{agent.id} {agent.name} 的新密码: ")
        check_password(password)
        if getpass.getpass("再输入一次: ") != password:
            raise ConfigError("the two passwords differ; nothing was changed")
    Accounts(settings.db_path).set_password(agent.id, password)
    print(f"password set for {agent.id} ({agent.name})")
    return 0


def set_contact(args: argparse.Namespace, settings: Settings) -> int:
    agent = _known(settings, args.agent_id)
    if args.sip is None and args.phone is None:
        raise ConfigError("ivr agents contact expects --sip and/or --phone, got neither")
    if args.sip and not _SIP_URI.match(args.sip):
        raise ConfigError(f"--sip expects a SIP URI such as sip:a01@pbx.example.com, got {args.sip!r}")
    if args.phone and not is_e164(args.phone):
        raise ConfigError("--phone expects a number in E.164 form such as +8613800138000")
    held = Accounts(settings.db_path).set_contact(agent.id, sip_uri=args.sip, phone=args.phone)
    print(f"{agent.id} ({agent.name}): sip {held.sip_uri or '-'}, phone {held.phone or '-'}")
    return 0


def _agents(settings: Settings) -> list[Agent]:
    return list(open_shop(settings).agents())


def _known(settings: Settings, agent_id: str) -> Agent:
    agents = _agents(settings)
    for agent in agents:
        if agent.id == agent_id:
            return agent
    known = ", ".join(a.id for a in agents) or "none"
    raise ConfigError(f"the shop has no agent {agent_id!r}; its agents: {known}")
