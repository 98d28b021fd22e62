"""Agent choice: ``candidates`` (the dispatcher's ranking over live states: level, widening with the wait,
VIP, complaint floor, dialect, longest idle, tried, lines) and the older ``choose_agent`` by load counts."""

from __future__ import annotations

import pytest

from core.shop import Agent
from core.types import Handoff, Skill, TransferRequest
from routing.agents import best_for, candidates, choose_agent, reachable
from routing.store import AgentState, Presence, QueuedCall

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


# -- candidates: the dispatcher's ranking over live agent states -----------------------------------

W = 30.0  # widen_after_s
T = 10_000.0  # the caller was queued at T


def st(agent_id: str, presence: str = "available", since: float = 0.0, calls: int = 0) -> AgentState:
    return AgentState(agent_id, Presence(presence), since, tuple(f"other{n}" for n in range(calls)))


def ag(agent_id: str, skills: dict[str, int], *languages: str, lines: int = 1) -> Agent:
    return Agent(agent_id, agent_id, skills, ("普通话", *languages), lines)


def queued(skill: str = "aftersale", **kw: object) -> QueuedCall:
    return QueuedCall("c1", skill, 3, T, "s1", **kw)  # type: ignore[arg-type]


def ranked(entry: QueuedCall, agents: list[Agent], states: list[AgentState], waited: float = 0.0) -> list[str]:
    return [c.agent.id for c in candidates(entry, agents, {s.agent_id: s for s in states}, T + waited, W)]


SAME = [ag("P3", {"aftersale": 4}), ag("P1", {"aftersale": 4}), ag("P2", {"aftersale": 4})]
CASES = [
    # (why, entry, agents, states, waited, expected order)
    ("a tie in everything: by id", queued(), SAME, [st("P1"), st("P2"), st("P3")], 0, ["P1", "P2", "P3"]),
    ("longest idle first", queued(), SAME, [st("P1", since=9), st("P2", since=5), st("P3", since=7)], 0,
     ["P2", "P3", "P1"]),
    ("the caller's dialect before idle time", queued(dialect="上海话"),
     [ag("P1", {"aftersale": 4}), ag("P2", {"aftersale": 4}, "上海话")], [st("P1", since=1), st("P2", since=9)], 0,
     ["P2", "P1"]),
    ("普通话 prefers nobody", queued(dialect="普通话"),
     [ag("P1", {"aftersale": 4}), ag("P2", {"aftersale": 4}, "上海话")], [st("P1", since=1), st("P2", since=9)], 0,
     ["P1", "P2"]),
    ("level before dialect", queued(dialect="上海话"),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 4}, "上海话")], [st("P1", since=9), st("P2")], W,
     ["P1", "P2"]),
    ("a VIP caller: the vip agents first among equal levels, before dialect", queued(vip=True, dialect="粤语"),
     [ag("P1", {"aftersale": 4}, "粤语"), ag("P2", {"aftersale": 4, "vip": 2})], [st("P1"), st("P2", since=5)], 0,
     ["P2", "P1"]),
    ("a VIP caller: level still first", queued(vip=True),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 4, "vip": 5})], [st("P1", since=5), st("P2")], W,
     ["P1", "P2"]),
    ("no vip preference for an ordinary caller", queued(),
     [ag("P1", {"aftersale": 4}), ag("P2", {"aftersale": 4, "vip": 5})], [st("P1"), st("P2", since=5)], 0,
     ["P1", "P2"]),
    ("step 0: only the best level, even when the best one is busy", queued(),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 3})], [st("P1", "busy", calls=1), st("P2")], W - 1, []),
    ("step 1: any level of the skill", queued(),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 3}), ag("P3", {"general": 5})],
     [st("P1", "busy", calls=1), st("P2"), st("P3")], W, ["P2"]),
    ("step 2: then the fallback skills", queued(),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 3}), ag("P3", {"general": 5})],
     [st("P1", "busy", calls=1), st("P2"), st("P3")], 2 * W, ["P2", "P3"]),
    ("an offline best agent does not hold the caller at step 0", queued(),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 3})], [st("P1", "offline"), st("P2")], 0, ["P2"]),
    ("nobody signed in has the skill: the fallbacks at once", queued("logistics"),
     [ag("P1", {"logistics": 5}), ag("P2", {"general": 2}), ag("P3", {"aftersale": 5})],
     [st("P1", "offline"), st("P2"), st("P3")], 0, ["P2"]),
    ("an agent who declined is never offered it again", queued(tried=("P1",)),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 5})], [st("P1"), st("P2", since=9)], 0, ["P2"]),
    ("the only best agent declined: the next level without waiting", queued(tried=("P1",)),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 3})], [st("P1"), st("P2")], 0, ["P2"]),
    ("a free line of two counts; a full one, busy or wrap-up does not", queued(),
     [ag("P1", {"aftersale": 4}, lines=2), ag("P2", {"aftersale": 4}, lines=2), ag("P3", {"aftersale": 4}),
      ag("P4", {"aftersale": 4})],
     [st("P1", calls=1), st("P2", calls=2), st("P3", "busy"), st("P4", "wrap_up")], 0, ["P1"]),
    ("a complaint never to a complaint level below 3 before step 2", queued("complaint"),
     [ag("P1", {"complaint": 2}), ag("P2", {"complaint": 4})], [st("P1"), st("P2", "busy", calls=1)], W, []),
    ("a complaint: the weak handler and fallbacks at step 2", queued("complaint"),
     [ag("P1", {"complaint": 2}), ag("P2", {"complaint": 4}), ag("P3", {"aftersale": 5})],
     [st("P1"), st("P2", "busy", calls=1), st("P3")], 2 * W, ["P1", "P3"]),
    ("only weak complaint handlers on duty: straight to step 2", queued("complaint"),
     [ag("P1", {"complaint": 2}), ag("P3", {"general": 1})], [st("P1"), st("P3")], 0, ["P1", "P3"]),
    ("a complaint flagged on another desk needs complaint level 3 too", queued("aftersale", complaint=True),
     [ag("P1", {"aftersale": 5}), ag("P2", {"aftersale": 3, "complaint": 3})], [st("P1"), st("P2")], 0, ["P2"]),
    ("a skill we do not know: no fallbacks", queued("warranty"),
     [ag("P1", {"warranty": 2}), ag("P2", {"general": 5})], [st("P1", "busy", calls=1), st("P2")], 3 * W, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "agents", "states", "waited", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_candidates(
    entry: QueuedCall, agents: list[Agent], states: list[AgentState], waited: float, expected: list[str]
) -> None:
    assert ranked(entry, agents, states, waited) == expected


def test_candidates_say_the_skill_level_and_step_they_were_chosen_for() -> None:
    agents = [ag("P1", {"complaint": 5}), ag("P2", {"complaint": 3}), ag("P3", {"aftersale": 4, "general": 5})]
    found = candidates(queued("complaint"), agents, {a.id: st(a.id) for a in agents}, T + 2 * W, W)
    assert [(c.agent.id, c.skill, c.level, c.step) for c in found] == [
        ("P1", "complaint", 5, 0),
        ("P2", "complaint", 3, 1),
        ("P3", "aftersale", 4, 2),  # the first fallback it has
    ]


def test_the_reference_shop_agents_route_as_before() -> None:
    states = {a.id: st(a.id) for a in AGENTS}
    assert [c.agent.id for c in candidates(queued("complaint"), AGENTS, states, T, W)] == ["A04"]
    assert [c.agent.id for c in candidates(queued("logistics", dialect="河南话"), AGENTS, states, T, W)] == ["A01"]


def test_reachable_means_someone_signed_in_with_the_skill_or_a_fallback() -> None:
    agents = [ag("P1", {"complaint": 5}), ag("P2", {"general": 1})]
    assert not reachable(queued("complaint"), agents, {"P1": st("P1", "offline")})
    assert reachable(queued("complaint"), agents, {"P1": st("P1", "offline"), "P2": st("P2", "wrap_up")})
    assert reachable(queued("complaint"), agents, {"P1": st("P1", "busy", calls=1)})
    assert not reachable(queued("promotion"), agents, {"P1": st("P1"), "P2": st("P2", "offline")})
