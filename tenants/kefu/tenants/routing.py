"""Routing decisions: which free agent a waiting call goes to, and why.

Pure functions over plain facts, no database and no clock of their own, so
the same code is what the ACD runs, what the property tests drive and what
``bench/acd_routing.py`` measures.  ``kefu.tenants.acd`` loads the facts
(waiting calls in order, the queue's free members), asks :func:`decide` for
each call in turn and then reserves the chosen agent atomically in the
database; a stale fact only makes that reservation fail and the next agent
is tried.

Eligibility, in order (docs/acd.md):

1. A returning caller's preferred agent, until ``preferred_until``: only
   that agent may take the call; afterwards anyone may.
2. Required skills at their minimum proficiency; after ``relax_after_s`` of
   waiting any proficiency of a required skill will do; after
   ``relax_any_after_s`` the skills are not required at all.
3. Among the eligible, agents with more proficiency in the call's preferred
   skills come first; the queue's strategy orders the rest.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "least_talk_time", "ring_all", "linear", "random")
MIN_PROFICIENCY, MAX_PROFICIENCY = 1, 10
# How many eligible agents an offer's log entry lists (the count is always there).
EXPLAINED_AGENTS = 20

RELAX_NONE, RELAX_PROFICIENCY, RELAX_ANY = "none", "any_proficiency", "any_agent"


@dataclass(frozen=True)
class SkillNeed:
    skill_id: uuid.UUID
    min_proficiency: int = MIN_PROFICIENCY
    required: bool = True


@dataclass(frozen=True)
class Candidate:
    """A free agent of the queue: status available, system state idle, lease live."""

    agent_id: uuid.UUID
    idle_since: datetime
    skills: Mapping[uuid.UUID, int] = field(default_factory=dict)
    # Per queue: linear position, last offer, today's answered calls and talk seconds.
    position: int = 0
    last_offered_at: datetime | None = None
    calls_answered: int = 0
    talk_s: int = 0


@dataclass(frozen=True)
class WaitingCall:
    call_id: uuid.UUID
    priority: int
    queued_at: datetime
    needs: tuple[SkillNeed, ...] = ()
    preferred_agent_id: uuid.UUID | None = None
    preferred_until: datetime | None = None


@dataclass(frozen=True)
class Rules:
    strategy: str = "longest_idle"
    relax_after_s: int | None = None
    relax_any_after_s: int | None = None


@dataclass(frozen=True)
class Decision:
    call_id: uuid.UUID
    # Ranked; ring_all rings them all, the other strategies offer to the first that can be reserved.
    agents: tuple[uuid.UUID, ...]
    strategy: str
    relaxation: str
    eligible_count: int
    # The first EXPLAINED_AGENTS eligible agents, ranked, with the facts the strategy used.
    eligible: tuple[dict[str, Any], ...]
    # How many free members were left out, by why.
    excluded: Mapping[str, int]
    reason: str

    def log_data(self, chosen: Sequence[uuid.UUID]) -> dict[str, Any]:
        return {
            "agent_id": str(chosen[0]) if len(chosen) == 1 else None,
            "agent_ids": [str(a) for a in chosen],
            "strategy": self.strategy,
            "relaxation": self.relaxation,
            "eligible_count": self.eligible_count,
            "eligible": list(self.eligible),
            "excluded": dict(self.excluded),
            "reason": self.reason,
        }


def waiting_order(call: WaitingCall) -> tuple[int, datetime, str]:
    """Calls are served highest priority first, then in arrival order."""
    return (-call.priority, call.queued_at, str(call.call_id))


def relaxation(call: WaitingCall, rules: Rules, now: datetime) -> str:
    waited = (now - call.queued_at).total_seconds()
    if rules.relax_any_after_s is not None and waited >= rules.relax_any_after_s:
        return RELAX_ANY
    if rules.relax_after_s is not None and waited >= rules.relax_after_s:
        return RELAX_PROFICIENCY
    return RELAX_NONE


def relaxation_times(call: WaitingCall, rules: Rules) -> list[float]:
    """Seconds after queuing at which the call's eligibility widens (timers route it again)."""
    if not any(need.required for need in call.needs):
        return []
    return sorted({s for s in (rules.relax_after_s, rules.relax_any_after_s) if s is not None})


def _skill_check(candidate: Candidate, needs: Iterable[SkillNeed], level: str) -> str | None:
    """None when the candidate has the required skills; else why not."""
    if level == RELAX_ANY:
        return None
    for need in needs:
        if not need.required:
            continue
        have = candidate.skills.get(need.skill_id)
        if have is None:
            return "missing_skill"
        if level == RELAX_NONE and have < need.min_proficiency:
            return "low_proficiency"
    return None


def _preferred_score(candidate: Candidate, needs: Iterable[SkillNeed]) -> int:
    return sum(candidate.skills.get(need.skill_id, 0) for need in needs if not need.required)


def eligible_agents(
    call: WaitingCall, candidates: Iterable[Candidate], rules: Rules, now: datetime
) -> tuple[list[Candidate], dict[str, int], str]:
    """The candidates that may take the call, the others counted by reason, and the relaxation."""
    level = relaxation(call, rules, now)
    excluded: dict[str, int] = {}
    chosen: list[Candidate] = []
    waiting_for = call.preferred_agent_id if call.preferred_until is not None and now < call.preferred_until else None
    needs = call.needs
    for candidate in candidates:
        if waiting_for is not None and candidate.agent_id != waiting_for:
            excluded["waiting_for_preferred_agent"] = excluded.get("waiting_for_preferred_agent", 0) + 1
            continue
        why = _skill_check(candidate, needs, level) if needs else None
        if why is not None:
            excluded[why] = excluded.get(why, 0) + 1
            continue
        chosen.append(candidate)
    return chosen, excluded, level


def _strategy_key(strategy: str, now: datetime):  # type: ignore[no-untyped-def]
    if strategy == "round_robin":
        # Never offered first, then the least recently offered; the linear order breaks ties.
        return lambda c: (c.last_offered_at is not None, c.last_offered_at or now, c.position, str(c.agent_id))
    if strategy == "fewest_calls":
        return lambda c: (c.calls_answered, c.idle_since, str(c.agent_id))
    if strategy == "least_talk_time":
        return lambda c: (c.talk_s, c.idle_since, str(c.agent_id))
    if strategy == "linear":
        return lambda c: (c.position, str(c.agent_id))
    # longest_idle, ring_all (its display order) and random (its tie order)
    return lambda c: (c.idle_since, str(c.agent_id))


def _explain(candidate: Candidate, strategy: str, now: datetime, score: int | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"agent_id": str(candidate.agent_id)}
    if strategy in ("longest_idle", "ring_all", "random"):
        facts["idle_since"] = candidate.idle_since.isoformat()
    facts["idle_s"] = round((now - candidate.idle_since).total_seconds(), 3)
    if strategy == "round_robin":
        facts["last_offered_at"] = candidate.last_offered_at.isoformat() if candidate.last_offered_at else None
    elif strategy == "fewest_calls":
        facts["calls_answered"] = candidate.calls_answered
    elif strategy == "least_talk_time":
        facts["talk_s"] = candidate.talk_s
    elif strategy == "linear":
        facts["position"] = candidate.position
    if score is not None:
        facts["preferred_skill_score"] = score
    return facts


def _reason(strategy: str, first: dict[str, Any], count: int) -> str:
    if strategy == "longest_idle":
        return f"longest idle: idle since {first['idle_since']} ({first['idle_s']} s), the longest of {count} eligible agent(s)"
    if strategy == "round_robin":
        when = first["last_offered_at"] or "never"
        return f"round robin: last offered a call of this queue {when}, the least recently of {count} eligible agent(s)"
    if strategy == "fewest_calls":
        return f"fewest calls: {first['calls_answered']} call(s) answered from this queue today, the fewest of {count} eligible agent(s)"
    if strategy == "least_talk_time":
        return f"least talk time: {first['talk_s']} s talked in this queue today, the least of {count} eligible agent(s)"
    if strategy == "linear":
        return f"linear: position {first['position']}, the first free of {count} eligible agent(s) in the queue's order"
    if strategy == "random":
        return f"random: drawn at random from {count} eligible agent(s)"
    return f"ring all: ringing all {count} eligible agent(s); the first to answer takes the call"


def decide(
    call: WaitingCall,
    candidates: Iterable[Candidate],
    rules: Rules,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision | None:
    """The agents to offer ``call`` to, best first, with the reasons; None when nobody is eligible."""
    strategy = rules.strategy if rules.strategy in STRATEGIES else "longest_idle"
    chosen, excluded, level = eligible_agents(call, candidates, rules, now)
    if not chosen:
        return None
    key = _strategy_key(strategy, now)
    has_preferred = any(not need.required for need in call.needs)
    scores = {c.agent_id: _preferred_score(c, call.needs) for c in chosen} if has_preferred else None
    if strategy == "random":
        rng = rng or random.Random()
        ordered = sorted(chosen, key=key)
        rng.shuffle(ordered)
        if scores is not None:
            ordered.sort(key=lambda c: -scores[c.agent_id])  # stable: random within equal scores
    elif scores is not None:
        ordered = sorted(chosen, key=lambda c: (-scores[c.agent_id], *key(c)))
    elif strategy == "ring_all" or len(chosen) <= EXPLAINED_AGENTS:
        ordered = sorted(chosen, key=key)
    else:
        # Only the head matters for one offer (and the log): avoid sorting thousands.
        ordered = heapq.nsmallest(EXPLAINED_AGENTS, chosen, key=key)
    explained = tuple(
        _explain(c, strategy, now, scores[c.agent_id] if scores is not None else None) for c in ordered[:EXPLAINED_AGENTS]
    )
    reason = _reason(strategy, explained[0], len(chosen))
    if scores is not None:
        reason = f"preferred skills first (score {explained[0]['preferred_skill_score']}); then " + reason
    if level == RELAX_PROFICIENCY:
        reason += f"; required skills relaxed to any proficiency after {rules.relax_after_s} s of waiting"
    elif level == RELAX_ANY and any(n.required for n in call.needs):
        reason += f"; required skills dropped after {rules.relax_any_after_s} s of waiting"
    if call.preferred_agent_id is not None and call.preferred_until is not None and now < call.preferred_until:
        reason = "returning caller: reserved for the agent who last answered it; " + reason
    return Decision(
        call_id=call.call_id,
        agents=tuple(c.agent_id for c in ordered),
        strategy=strategy,
        relaxation=level,
        eligible_count=len(chosen),
        eligible=explained,
        excluded=excluded,
        reason=reason,
    )
