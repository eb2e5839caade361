"""Routing decisions (kefu.tenants.routing), pure: each strategy's order and its
explanation, required and preferred skills, relaxation at its exact boundaries,
a returning caller's preferred agent, deterministic ties, the seeded random
strategy, and the heap path agreeing with a full sort."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kefu.tenants import routing
from kefu.tenants.routing import (
    Candidate,
    Rules,
    SkillNeed,
    WaitingCall,
    decide,
    eligible_agents,
    relaxation,
    relaxation_times,
)

NOW = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
FRENCH = uuid.UUID("00000000-0000-0000-0000-00000000f001")
SPANISH = uuid.UUID("00000000-0000-0000-0000-00000000e001")
ANN, BEN, CAI, DAN = (uuid.UUID(f"00000000-0000-0000-0000-0000000000a{i}") for i in range(1, 5))


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def call(*needs: SkillNeed, waited_s: float = 0, priority: int = 0, preferred: uuid.UUID | None = None,
         preferred_for_s: float | None = None) -> WaitingCall:
    return WaitingCall(
        call_id=uuid.UUID(int=1), priority=priority, queued_at=ago(waited_s), needs=tuple(needs), preferred_agent_id=preferred,
        preferred_until=NOW + timedelta(seconds=preferred_for_s) if preferred_for_s is not None else None,
    )


def agent(agent_id: uuid.UUID, idle_s: float, **facts) -> Candidate:  # type: ignore[no-untyped-def]
    return Candidate(agent_id=agent_id, idle_since=ago(idle_s), **facts)


def order(decision: routing.Decision | None) -> list[uuid.UUID]:
    assert decision is not None
    return list(decision.agents)


# --- each strategy: order and explanation --------------------------------------------------


def test_longest_idle_ranks_by_idle_time_and_explains_it() -> None:
    team = [agent(ANN, 10), agent(BEN, 30), agent(CAI, 20)]
    decision = decide(call(), team, Rules("longest_idle"), NOW)
    assert decision is not None
    assert decision.agents == (BEN, CAI, ANN)
    assert (decision.strategy, decision.relaxation, decision.eligible_count, dict(decision.excluded)) == ("longest_idle", "none", 3, {})
    assert decision.eligible == (
        {"agent_id": str(BEN), "idle_since": ago(30).isoformat(), "idle_s": 30.0},
        {"agent_id": str(CAI), "idle_since": ago(20).isoformat(), "idle_s": 20.0},
        {"agent_id": str(ANN), "idle_since": ago(10).isoformat(), "idle_s": 10.0},
    )
    assert decision.reason == f"longest idle: idle since {ago(30).isoformat()} (30.0 s), the longest of 3 eligible agent(s)"


def test_round_robin_offers_never_offered_agents_first_then_the_least_recently_offered() -> None:
    team = [
        agent(ANN, 50, position=0, last_offered_at=ago(5)),
        agent(BEN, 10, position=2),
        agent(CAI, 40, position=1, last_offered_at=ago(60)),
        agent(DAN, 5, position=1),
    ]
    decision = decide(call(), team, Rules("round_robin"), NOW)
    assert decision is not None
    # Never offered (by linear position), then the least recently offered.
    assert decision.agents == (DAN, BEN, CAI, ANN)
    assert decision.eligible[0] == {"agent_id": str(DAN), "idle_s": 5.0, "last_offered_at": None}
    assert decision.eligible[2] == {"agent_id": str(CAI), "idle_s": 40.0, "last_offered_at": ago(60).isoformat()}
    assert decision.reason == "round robin: last offered a call of this queue never, the least recently of 4 eligible agent(s)"

    everyone_offered = [agent(ANN, 50, position=0, last_offered_at=ago(5)), agent(CAI, 40, position=1, last_offered_at=ago(60))]
    decision = decide(call(), everyone_offered, Rules("round_robin"), NOW)
    assert decision is not None and decision.agents == (CAI, ANN)
    assert decision.reason == f"round robin: last offered a call of this queue {ago(60).isoformat()}, the least recently of 2 eligible agent(s)"


def test_fewest_calls_ranks_by_calls_answered_then_idle_time() -> None:
    team = [agent(ANN, 90, calls_answered=3), agent(BEN, 10, calls_answered=1), agent(CAI, 60, calls_answered=1), agent(DAN, 5, calls_answered=0)]
    decision = decide(call(), team, Rules("fewest_calls"), NOW)
    assert decision is not None
    assert decision.agents == (DAN, CAI, BEN, ANN)
    assert [e["calls_answered"] for e in decision.eligible] == [0, 1, 1, 3]
    assert decision.eligible[0] == {"agent_id": str(DAN), "idle_s": 5.0, "calls_answered": 0}
    assert decision.reason == "fewest calls: 0 call(s) answered from this queue today, the fewest of 4 eligible agent(s)"


def test_least_talk_time_ranks_by_talk_seconds_then_idle_time() -> None:
    team = [agent(ANN, 90, talk_s=300), agent(BEN, 10, talk_s=45), agent(CAI, 60, talk_s=45), agent(DAN, 5, talk_s=600)]
    decision = decide(call(), team, Rules("least_talk_time"), NOW)
    assert decision is not None
    assert decision.agents == (CAI, BEN, ANN, DAN)
    assert decision.eligible[0] == {"agent_id": str(CAI), "idle_s": 60.0, "talk_s": 45}
    assert decision.reason == "least talk time: 45 s talked in this queue today, the least of 4 eligible agent(s)"


def test_linear_follows_the_member_positions_whatever_the_idle_time() -> None:
    team = [agent(ANN, 90, position=2), agent(BEN, 1, position=0), agent(CAI, 60, position=1)]
    decision = decide(call(), team, Rules("linear"), NOW)
    assert decision is not None
    assert decision.agents == (BEN, CAI, ANN)
    assert decision.eligible[0] == {"agent_id": str(BEN), "idle_s": 1.0, "position": 0}
    assert decision.reason == "linear: position 0, the first free of 3 eligible agent(s) in the queue's order"


def test_ring_all_names_every_eligible_agent_longest_idle_first() -> None:
    team = [agent(ANN, 10), agent(BEN, 30), agent(CAI, 20)]
    decision = decide(call(), team, Rules("ring_all"), NOW)
    assert decision is not None
    assert decision.agents == (BEN, CAI, ANN)
    assert decision.eligible[0] == {"agent_id": str(BEN), "idle_since": ago(30).isoformat(), "idle_s": 30.0}
    assert decision.reason == "ring all: ringing all 3 eligible agent(s); the first to answer takes the call"
    assert decision.log_data(decision.agents)["agent_id"] is None
    assert decision.log_data(decision.agents)["agent_ids"] == [str(BEN), str(CAI), str(ANN)]
    assert decision.log_data((CAI,))["agent_id"] == str(CAI)


def test_random_with_a_seeded_rng_is_reproducible_and_shuffles_the_idle_order() -> None:
    team = [agent(ANN, 10), agent(BEN, 30), agent(CAI, 20), agent(DAN, 40)]
    expected = [DAN, BEN, CAI, ANN]  # the idle order the shuffle starts from
    random.Random(42).shuffle(expected)
    first = decide(call(), team, Rules("random"), NOW, random.Random(42))
    again = decide(call(), list(reversed(team)), Rules("random"), NOW, random.Random(42))
    assert order(first) == expected == order(again)
    assert first is not None
    head = next(c for c in team if c.agent_id == expected[0])
    assert first.eligible[0] == {"agent_id": str(head.agent_id), "idle_since": head.idle_since.isoformat(), "idle_s": (NOW - head.idle_since).total_seconds()}
    assert first.reason == "random: drawn at random from 4 eligible agent(s)"
    # Different seeds do draw different agents.
    heads = {order(decide(call(), team, Rules("random"), NOW, random.Random(seed)))[0] for seed in range(40)}
    assert heads == {ANN, BEN, CAI, DAN}


def test_an_unknown_strategy_is_routed_as_longest_idle() -> None:
    decision = decide(call(), [agent(ANN, 10), agent(BEN, 30)], Rules("shortest_hair"), NOW)
    assert decision is not None
    assert (decision.strategy, decision.agents) == ("longest_idle", (BEN, ANN))


def test_nobody_free_or_nobody_eligible_is_no_decision() -> None:
    assert decide(call(), [], Rules(), NOW) is None
    assert decide(call(SkillNeed(FRENCH)), [agent(ANN, 10)], Rules(), NOW) is None


# --- skills -------------------------------------------------------------------------------


def test_required_skill_at_its_minimum_proficiency_excludes_missing_and_low_agents() -> None:
    team = [
        agent(ANN, 90, skills={FRENCH: 4}),  # longest idle but below the minimum
        agent(BEN, 60),  # no French at all
        agent(CAI, 30, skills={FRENCH: 5}),  # exactly the minimum
        agent(DAN, 10, skills={FRENCH: 10, SPANISH: 3}),
    ]
    decision = decide(call(SkillNeed(FRENCH, 5)), team, Rules(), NOW)
    assert decision is not None
    assert decision.agents == (CAI, DAN)
    assert dict(decision.excluded) == {"low_proficiency": 1, "missing_skill": 1}
    assert decision.eligible_count == 2
    assert "preferred" not in decision.reason and "relaxed" not in decision.reason


def test_every_required_skill_is_needed() -> None:
    team = [agent(ANN, 90, skills={FRENCH: 9}), agent(BEN, 60, skills={FRENCH: 9, SPANISH: 2})]
    chosen, excluded, level = eligible_agents(call(SkillNeed(FRENCH, 3), SkillNeed(SPANISH, 2)), team, Rules(), NOW)
    assert ([c.agent_id for c in chosen], excluded, level) == ([BEN], {"missing_skill": 1}, "none")


def test_preferred_skills_rank_first_and_the_strategy_breaks_equal_scores() -> None:
    team = [
        agent(ANN, 90),  # score 0
        agent(BEN, 10, skills={SPANISH: 7}),
        agent(CAI, 50, skills={SPANISH: 3, FRENCH: 4}),  # score 7, idle longer than Ben
        agent(DAN, 70, skills={SPANISH: 2}),
    ]
    needs = (SkillNeed(SPANISH, required=False), SkillNeed(FRENCH, required=False))
    decision = decide(call(*needs), team, Rules("longest_idle"), NOW)
    assert decision is not None
    assert decision.agents == (CAI, BEN, DAN, ANN)
    assert [e["preferred_skill_score"] for e in decision.eligible] == [7, 7, 2, 0]
    assert decision.reason == (
        f"preferred skills first (score 7); then longest idle: idle since {ago(50).isoformat()} (50.0 s), the longest of 4 eligible agent(s)"
    )
    assert dict(decision.excluded) == {}  # preferred skills never exclude


def test_preferred_skills_with_random_shuffle_only_within_equal_scores() -> None:
    team = [agent(ANN, 90), agent(BEN, 10, skills={SPANISH: 7}), agent(CAI, 50, skills={SPANISH: 7}), agent(DAN, 70, skills={SPANISH: 2})]
    for seed in range(10):
        ranked = order(decide(call(SkillNeed(SPANISH, required=False)), team, Rules("random"), NOW, random.Random(seed)))
        assert set(ranked[:2]) == {BEN, CAI} and ranked[2:] == [DAN, ANN]


# --- relaxation at its boundaries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("waited_s", "level"),
    [(0, "none"), (29.999, "none"), (30, "any_proficiency"), (59.999, "any_proficiency"), (60, "any_agent"), (3600, "any_agent")],
)
def test_relaxation_level_changes_exactly_at_its_thresholds(waited_s: float, level: str) -> None:
    assert relaxation(call(SkillNeed(FRENCH, 8), waited_s=waited_s), Rules(relax_after_s=30, relax_any_after_s=60), NOW) == level


def test_relaxation_needs_its_setting() -> None:
    assert relaxation(call(waited_s=10_000), Rules(), NOW) == "none"
    assert relaxation(call(waited_s=10_000), Rules(relax_after_s=30), NOW) == "any_proficiency"
    assert relaxation(call(waited_s=60), Rules(relax_any_after_s=60), NOW) == "any_agent"


def test_relaxed_proficiency_still_needs_the_skill_and_any_agent_needs_nothing() -> None:
    team = [agent(ANN, 90, skills={FRENCH: 2}), agent(BEN, 60)]
    rules = Rules(relax_after_s=30, relax_any_after_s=60)
    strict = call(SkillNeed(FRENCH, 8), waited_s=29.999)
    assert decide(strict, team, rules, NOW) is None

    some = decide(call(SkillNeed(FRENCH, 8), waited_s=30), team, rules, NOW)
    assert some is not None
    assert (some.agents, some.relaxation, dict(some.excluded)) == ((ANN,), "any_proficiency", {"missing_skill": 1})
    assert some.reason.endswith("; required skills relaxed to any proficiency after 30 s of waiting")

    anyone = decide(call(SkillNeed(FRENCH, 8), waited_s=60), team, rules, NOW)
    assert anyone is not None
    assert (anyone.agents, anyone.relaxation, dict(anyone.excluded)) == ((ANN, BEN), "any_agent", {})
    assert anyone.reason.endswith("; required skills dropped after 60 s of waiting")


def test_relaxation_times_are_the_rule_times_of_calls_with_required_skills() -> None:
    rules = Rules(relax_after_s=30, relax_any_after_s=60)
    assert relaxation_times(call(SkillNeed(FRENCH, 8)), rules) == [30, 60]
    assert relaxation_times(call(SkillNeed(FRENCH, required=False)), rules) == []
    assert relaxation_times(call(), rules) == []
    assert relaxation_times(call(SkillNeed(FRENCH)), Rules(relax_any_after_s=45)) == [45]


def test_any_agent_relaxation_without_required_skills_says_nothing_about_skills() -> None:
    decision = decide(call(SkillNeed(SPANISH, required=False), waited_s=100), [agent(ANN, 5)], Rules(relax_after_s=30, relax_any_after_s=60), NOW)
    assert decision is not None
    assert decision.relaxation == "any_agent"
    assert "dropped" not in decision.reason and "relaxed" not in decision.reason


# --- returning caller's preferred agent --------------------------------------------------------


def test_a_returning_caller_waits_for_its_agent_until_the_window_ends() -> None:
    team = [agent(ANN, 90), agent(BEN, 5)]
    inside = decide(call(preferred=BEN, preferred_for_s=0.001), team, Rules(), NOW)
    assert inside is not None
    assert (inside.agents, dict(inside.excluded)) == ((BEN,), {"waiting_for_preferred_agent": 1})
    assert inside.reason.startswith("returning caller: reserved for the agent who last answered it; longest idle: ")

    # While the preferred agent is not free, nobody else gets the call.
    assert decide(call(preferred=BEN, preferred_for_s=30), [agent(ANN, 90)], Rules(), NOW) is None

    # At the end of the window (preferred_until == now) anyone may take it.
    after = decide(call(preferred=BEN, preferred_for_s=0), team, Rules(), NOW)
    assert after is not None
    assert (after.agents, dict(after.excluded)) == ((ANN, BEN), {})
    assert not after.reason.startswith("returning caller")


def test_the_preferred_agent_still_needs_the_required_skills() -> None:
    team = [agent(ANN, 90, skills={FRENCH: 9}), agent(BEN, 5, skills={FRENCH: 1})]
    chosen, excluded, _ = eligible_agents(call(SkillNeed(FRENCH, 5), preferred=BEN, preferred_for_s=30), team, Rules(), NOW)
    assert (chosen, excluded) == ([], {"waiting_for_preferred_agent": 1, "low_proficiency": 1})


# --- ties and order ------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["longest_idle", "round_robin", "fewest_calls", "least_talk_time", "linear", "ring_all"])
def test_ties_are_broken_by_agent_id_whatever_the_input_order(strategy: str) -> None:
    team = [agent(a, 30, position=0) for a in (CAI, ANN, DAN, BEN)]
    results = {order(decide(call(), list(p), Rules(strategy), NOW)) == [ANN, BEN, CAI, DAN] for p in itertools.permutations(team)}
    assert results == {True}


def test_waiting_order_is_priority_then_arrival_then_id() -> None:
    calls = [
        WaitingCall(uuid.UUID(int=4), 0, ago(50)),
        WaitingCall(uuid.UUID(int=3), 5, ago(10)),
        WaitingCall(uuid.UUID(int=2), 0, ago(60)),
        WaitingCall(uuid.UUID(int=1), 5, ago(10)),
        WaitingCall(uuid.UUID(int=5), -3, ago(900)),
    ]
    assert [c.call_id.int for c in sorted(calls, key=routing.waiting_order)] == [1, 3, 2, 4, 5]


# --- many candidates: the heap path ---------------------------------------------------------


def crowd(n: int, rng: random.Random) -> list[Candidate]:
    return [
        Candidate(
            agent_id=uuid.UUID(int=rng.getrandbits(128)), idle_since=ago(rng.randrange(0, 50)), position=rng.randrange(0, 30),
            last_offered_at=None if rng.random() < 0.2 else ago(rng.randrange(0, 40)),
            calls_answered=rng.randrange(0, 6), talk_s=rng.randrange(0, 5) * 60,
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("strategy", ["longest_idle", "round_robin", "fewest_calls", "least_talk_time", "linear"])
def test_more_than_twenty_candidates_give_the_same_head_as_a_full_sort(strategy: str) -> None:
    rng = random.Random(strategy)
    team = crowd(300, rng)  # many ties: the deterministic tie-break must hold on the heap path too
    decision = decide(call(), team, Rules(strategy), NOW)
    assert decision is not None
    key = routing._strategy_key(strategy, NOW)
    full = [c.agent_id for c in sorted(team, key=key)]
    assert list(decision.agents) == full[: routing.EXPLAINED_AGENTS]
    assert [e["agent_id"] for e in decision.eligible] == [str(a) for a in full[: routing.EXPLAINED_AGENTS]]
    assert decision.eligible_count == 300


def test_ring_all_with_many_candidates_rings_them_all_but_explains_twenty() -> None:
    team = crowd(45, random.Random(3))
    decision = decide(call(), team, Rules("ring_all"), NOW)
    assert decision is not None
    assert len(decision.agents) == 45 and set(decision.agents) == {c.agent_id for c in team}
    assert len(decision.eligible) == routing.EXPLAINED_AGENTS
    assert decision.reason == "ring all: ringing all 45 eligible agent(s); the first to answer takes the call"
