"""Choose the human agent for a transfer: a pure function of the request, the agents and their load.

Ranking among agents who have the skill and a free line (current load < ``max_concurrent``):
highest level in the skill first, then agents who speak the caller's dialect (everyone speaks
普通话, so it only matters for a dialect), then the least loaded, then the agent id so the choice
is deterministic. When nobody with the skill is free, the request falls back along ``FALLBACK``
(e.g. a busy complaint desk goes to senior after-sales, then to the general desk); ``None`` means
nobody can take the call now and it should queue or be called back.

Live load counts come from the caller (in-process today, Redis in a later issue).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.shop import Agent
from core.types import Skill, TransferRequest

FALLBACK: Mapping[Skill, tuple[Skill, ...]] = {
    Skill.VIP: (Skill.COMPLAINT, Skill.AFTERSALE, Skill.GENERAL),
    Skill.COMPLAINT: (Skill.AFTERSALE, Skill.GENERAL),
    Skill.PROMOTION: (Skill.SALES, Skill.GENERAL),
    Skill.SALES: (Skill.PROMOTION, Skill.GENERAL),
    Skill.LOGISTICS: (Skill.GENERAL,),
    Skill.AFTERSALE: (Skill.GENERAL,),
    Skill.GENERAL: (),
}


@dataclass(frozen=True, slots=True)
class Assignment:
    agent: Agent
    skill: Skill  # the skill the agent was chosen for (the requested one, or a fallback)
    level: int
    fallback: bool


def choose_agent(
    request: TransferRequest,
    agents: Sequence[Agent],
    load: Mapping[str, int] | None = None,
    dialect: str | None = None,
) -> Assignment | None:
    """The best-skilled free agent for ``request.skill`` (or its fallbacks); None when nobody is free."""
    for skill in (request.skill, *FALLBACK.get(request.skill, ())):
        agent = best_for(skill, agents, load or {}, dialect)
        if agent is not None:
            return Assignment(agent, skill, agent.skills[skill.value], skill is not request.skill)
    return None


def best_for(skill: Skill, agents: Sequence[Agent], load: Mapping[str, int], dialect: str | None) -> Agent | None:
    free = [a for a in agents if a.skills.get(skill.value, 0) > 0 and load.get(a.id, 0) < a.max_concurrent]
    if not free:
        return None
    return min(free, key=lambda a: (-a.skills[skill.value], not speaks(a, dialect), load.get(a.id, 0), a.id))


def speaks(agent: Agent, dialect: str | None) -> bool:
    return bool(dialect) and dialect in agent.languages
