"""Choose the human agent for a transfer: pure functions of the request, the agents and their live state.

``candidates`` ranks the free agents for a queued caller (``routing.store.QueuedCall``) in the order
the dispatcher should offer the call to them. Only agents AVAILABLE with a free line
(``len(calls) < max_concurrent``) who have not already declined or missed this call
(``entry.tried``) are listed. What the caller is offered widens with their wait
(``now - enqueued_at``), in steps of ``widen_after_s``:

- step 0 (from the start): the requested skill at the best level among the agents signed in
  (presence not OFFLINE, not in ``tried``) with that skill. The caller waits for that level even
  when all of those agents are busy: a queue beats a weaker agent for the first ``widen_after_s``.
- step 1 (waited ≥ ``widen_after_s``): the requested skill at any level, best level first.
- step 2 (waited ≥ 2 × ``widen_after_s``): also the ``FALLBACK`` skills, in their order
  (e.g. complaint → after-sales → general), after every agent of the requested skill.

When nobody signed in has the requested skill at all, the caller goes straight to step 2 (waiting
for a step that can never offer anyone helps nobody).

A complaint (``entry.complaint``, or the complaint skill) never goes to an agent whose complaint
level is below 3 before step 2: a weak complaint handler is no better than the fallback desks, so
for steps 0 and 1 such agents count as not having the skill at all (for a complaint call to the
VIP desk, a VIP agent must also handle complaints at level 3 or more until step 2).

Within a step and level, the order is: for a VIP caller (``entry.vip``), agents with the ``vip``
skill first; then agents who speak the caller's dialect (普通话 or no dialect matches everyone
equally); then the longest idle (smallest ``AgentState.since``); then the agent id, so the choice is
deterministic. Each ``Candidate`` says the skill, level and step it was chosen for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from core.shop import Agent
from core.types import Skill
from routing.store import AgentState, Presence, QueuedCall

FALLBACK: Mapping[Skill, tuple[Skill, ...]] = {
    Skill.VIP: (Skill.COMPLAINT, Skill.AFTERSALE, Skill.GENERAL),
    Skill.COMPLAINT: (Skill.AFTERSALE, Skill.GENERAL),
    Skill.PROMOTION: (Skill.SALES, Skill.GENERAL),
    Skill.SALES: (Skill.PROMOTION, Skill.GENERAL),
    Skill.LOGISTICS: (Skill.GENERAL,),
    Skill.AFTERSALE: (Skill.GENERAL,),
    Skill.GENERAL: (),
}
COMPLAINT_MIN_LEVEL = 3  # a complaint goes to an agent with less only from step 2 on
MANDARIN = "普通话"  # everyone speaks it: asking for it prefers nobody


@dataclass(frozen=True, slots=True)
class Candidate:
    """A free agent to offer a queued call to, and why: the skill and level, and the widening step."""

    agent: Agent
    skill: str  # the requested skill, or a fallback at step 2
    level: int
    step: int  # 0: best level of the skill, 1: any level, 2: fallback skills (or a weak complaint handler)


def fallbacks(skill: str) -> tuple[str, ...]:
    """The skills a caller for ``skill`` may go to from step 2 on (none for a skill we do not know)."""
    try:
        return tuple(s.value for s in FALLBACK[Skill(skill)])
    except (ValueError, KeyError):
        return ()


def signed_in(state: AgentState | None) -> bool:
    return state is not None and state.presence != Presence.OFFLINE


def free(agent: Agent, state: AgentState | None) -> bool:
    """AVAILABLE with a line left."""
    return state is not None and state.presence == Presence.AVAILABLE and len(state.calls) < agent.max_concurrent


def step_for(waited_s: float, widen_after_s: float) -> int:
    """The widening step reached after waiting ``waited_s``."""
    if waited_s >= 2 * widen_after_s:
        return 2
    return 1 if waited_s >= widen_after_s else 0


def reachable(entry: QueuedCall, agents: Sequence[Agent], states: Mapping[str, AgentState]) -> bool:
    """Someone signed in could ever take this call: the skill or a fallback skill, at any level."""
    skills = (entry.skill, *fallbacks(entry.skill))
    return any(signed_in(states.get(a.id)) and any(a.skills.get(s, 0) > 0 for s in skills) for a in agents)


def candidates(
    entry: QueuedCall,
    agents: Sequence[Agent],
    states: Mapping[str, AgentState],
    now: float,
    widen_after_s: float,
) -> list[Candidate]:
    """The free agents to offer ``entry`` to, first to be tried first (see the module docstring)."""
    wanted = entry.skill
    on_duty = [a for a in agents if signed_in(states.get(a.id)) and a.id not in entry.tried]
    complaint = entry.complaint or wanted == Skill.COMPLAINT.value
    skilled = [a for a in on_duty if a.skills.get(wanted, 0) > 0 and (not complaint or _handles_complaints(a))]
    step = step_for(now - entry.enqueued_at, widen_after_s) if skilled else 2
    best = max((a.skills[wanted] for a in skilled), default=0)
    tiers: list[tuple[int, str, list[Agent]]] = [(0, wanted, [a for a in skilled if a.skills[wanted] == best])]
    if step >= 1:
        tiers.append((1, wanted, [a for a in skilled if a.skills[wanted] < best]))
    if step >= 2:
        tiers.append((2, wanted, [a for a in on_duty if a.skills.get(wanted, 0) > 0]))
        tiers.extend((2, skill, [a for a in on_duty if a.skills.get(skill, 0) > 0]) for skill in fallbacks(wanted))
    ranked: list[Candidate] = []
    seen: set[str] = set()
    for tier_step, skill, group in tiers:
        chosen = [a for a in group if a.id not in seen and free(a, states.get(a.id))]
        for agent in sorted(chosen, key=partial(_order, skill=skill, entry=entry, states=states)):
            seen.add(agent.id)
            ranked.append(Candidate(agent, skill, agent.skills[skill], tier_step))
    return ranked


def _handles_complaints(agent: Agent) -> bool:
    return agent.skills.get(Skill.COMPLAINT.value, 0) >= COMPLAINT_MIN_LEVEL


def _order(agent: Agent, skill: str, entry: QueuedCall, states: Mapping[str, AgentState]) -> tuple[object, ...]:
    vip_first = entry.vip and agent.skills.get(Skill.VIP.value, 0) > 0
    dialect = entry.dialect in (None, "", MANDARIN) or entry.dialect in agent.languages
    return (-agent.skills[skill], not vip_first, not dialect, states[agent.id].since, agent.id)
