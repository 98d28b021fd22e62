"""The routing benchmark's own pure helpers: percentiles, and the agents and callers it generates."""

from __future__ import annotations

import random

import pytest

from bench.routing import CALLER_SKILLS, make_agents, make_caller, make_packet, percentile, summary_ms
from routing.agents import reachable
from routing.store import AgentState, Presence


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 95) == 95.0
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_is_in_milliseconds() -> None:
    assert summary_ms([0.001, 0.002, 0.003]) == {"n": 3, "p50": 2.0, "p95": 2.9, "max": 3.0}


def test_agents_are_the_same_for_a_seed_and_plausible() -> None:
    agents = make_agents(200, random.Random(1))
    assert agents == make_agents(200, random.Random(1))
    assert len({a.id for a in agents}) == 200 and "general" in agents[0].skills
    for agent in agents:
        assert 1 <= len(agent.skills) <= 4 and all(1 <= level <= 5 for level in agent.skills.values())
        assert agent.languages[0] == "普通话" and 1 <= agent.max_concurrent <= 3


def test_every_generated_caller_can_be_reached_by_any_generated_team() -> None:
    rng = random.Random(2)
    for n in (1, 5, 10):
        agents = make_agents(n, rng)
        states = {a.id: AgentState(a.id, Presence.AVAILABLE) for a in agents}
        for i in range(50):
            entry = make_caller(f"c{i}", rng, 1000.0, "s", waited_s=10.0)
            assert entry.skill in CALLER_SKILLS and entry.enqueued_at == 990.0
            assert entry.priority == 1 or not (entry.vip or entry.complaint)
            assert reachable(entry, agents, states)
            assert make_packet(entry, rng)["call_id"] == entry.call_id
