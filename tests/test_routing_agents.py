"""Agent choice: best level in the skill, then dialect, then load; capacity respected; fallbacks."""

from __future__ import annotations

import pytest

from core.shop import Agent
from core.types import Handoff, Skill, TransferRequest
from routing.agents import best_for, choose_agent

HANDOFF = Handoff(None, None, (), (), (), ("", "", ""), ())


def request(skill: Skill) -> TransferRequest:
    return TransferRequest(skill, 2, "test", HANDOFF)


AGENTS = (
    Agent("A01", "小林", {"logistics": 5, "aftersale": 3, "general": 4}, ("普通话",)),
    Agent("A02", "小周", {"aftersale": 5, "complaint": 4, "general": 3}, ("普通话", "上海话")),
    Agent("A03", "阿强", {"promotion": 5, "sales": 5, "general": 4}, ("普通话", "粤语")),
    Agent("A04", "老王", {"complaint": 5, "vip": 5, "aftersale": 4}, ("普通话", "河南话")),
    Agent("A05", "小雨", {"general": 3, "logistics": 3}, ("普通话", "四川话")),
)


@pytest.mark.parametrize(
    ("skill", "expected"),
    [(Skill.COMPLAINT, "A04"), (Skill.LOGISTICS, "A01"), (Skill.AFTERSALE, "A02"), (Skill.VIP, "A04")],
)
def test_highest_level_wins(skill: Skill, expected: str) -> None:
    chosen = choose_agent(request(skill), AGENTS)
    assert chosen is not None and chosen.agent.id == expected and not chosen.fallback


def test_busy_agent_is_skipped_for_the_next_best() -> None:
    chosen = choose_agent(request(Skill.COMPLAINT), AGENTS, load={"A04": 1})
    assert chosen is not None
    assert (chosen.agent.id, chosen.level) == ("A02", 4)


def test_max_concurrent_is_respected_not_just_busy_flag() -> None:
    agents = (
        Agent("B1", "甲", {"sales": 5}, ("普通话",), max_concurrent=2),
        Agent("B2", "乙", {"sales": 4}, ("普通话",)),
    )
    assert choose_agent(request(Skill.SALES), agents, load={"B1": 1}).agent.id == "B1"  # type: ignore[union-attr]
    assert choose_agent(request(Skill.SALES), agents, load={"B1": 2}).agent.id == "B2"  # type: ignore[union-attr]


def test_dialect_breaks_a_tie_in_level_and_load_breaks_the_rest() -> None:
    agents = (
        Agent("C1", "甲", {"logistics": 4}, ("普通话",), 3),
        Agent("C2", "乙", {"logistics": 4}, ("普通话", "四川话"), 3),
        Agent("C3", "丙", {"logistics": 4}, ("普通话",), 3),
    )
    assert best_for(Skill.LOGISTICS, agents, {}, "四川话").id == "C2"  # type: ignore[union-attr]
    assert best_for(Skill.LOGISTICS, agents, {"C1": 2, "C2": 3}, "四川话").id == "C3"  # type: ignore[union-attr]
    assert best_for(Skill.LOGISTICS, agents, {"C1": 1}, None).id == "C2"  # type: ignore[union-attr]


def test_level_beats_dialect() -> None:
    # 王建国 speaks 河南话; 老王 (A04) speaks it but has no logistics skill; 小雨 has level 3 only.
    chosen = choose_agent(request(Skill.LOGISTICS), AGENTS, dialect="河南话")
    assert chosen is not None and chosen.agent.id == "A01"


def test_fallback_when_the_desk_is_full_and_none_when_everyone_is() -> None:
    busy = {a.id: 1 for a in AGENTS}
    assert choose_agent(request(Skill.GENERAL), AGENTS, load=busy) is None
    only_a01 = {k: v for k, v in busy.items() if k != "A01"}
    chosen = choose_agent(request(Skill.PROMOTION), AGENTS, load=only_a01)
    assert chosen is not None and chosen.fallback and (chosen.agent.id, chosen.skill) == ("A01", Skill.GENERAL)
