"""One tenant's wallboard figures at one moment, and what one viewer may see of them.

``compute`` reads the whole tenant once — through the supervision console's own
computation (``kefu.tenants.supervision.console`` with the whole tenant in
scope), so waiting, longest wait, today's service level and agents by state
mean exactly what they mean on the console — plus the queue memberships.  The
result, ``TenantSnapshot``, travels as plain JSON (``to_wire``/``from_wire``)
from the node that computed it to every API node.

``view`` cuts a snapshot down to one viewer's scope (and an optional queue or
team) without touching the database: queue rows of the queues they see, team
rows of the teams they see, and totals over those.

* A queue row: its waiting callers, longest wait, answered / answered within
  the queue's ``service_level_s`` / abandoned since the tenant's midnight, the
  service level, and its members by state.
* A team row: the call figures of the queues its agents serve (each queue
  once: a team takes the calls of those queues) and its own agents by state.
* Totals: the call figures of every queue shown (or served by a team shown)
  and the agents of the teams shown plus the members of the queues shown; for
  the whole tenant, every queue and every agent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.identity.principal import Principal
from kefu.tenants import supervision
from kefu.tenants.models import QueueMember
from kefu.tenants.supervision import Scope

STATES = ("available", "not_ready", "ringing", "on_call", "wrap_up", "offline")
# The service level the page colours against: green at or above it, amber up to
# AMBER_POINTS below, red under that (the industry's 80 % answered within the target).
SL_TARGET_PERCENT = 80
AMBER_POINTS = 10


@dataclass(frozen=True)
class QueueFigures:
    id: str
    name: str
    waiting: int
    callbacks: int
    oldest_since: str | None
    target_s: int
    answered: int
    answered_within: int
    abandoned: int
    short_abandoned: int
    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class TeamMembers:
    id: str
    name: str
    agent_ids: tuple[str, ...]


@dataclass(frozen=True)
class TenantSnapshot:
    tenant_id: uuid.UUID
    at: str
    day_start: str
    queues: tuple[QueueFigures, ...]
    teams: tuple[TeamMembers, ...]
    agent_states: dict[str, str]  # agent id -> offline | available | not_ready | ringing | on_call | wrap_up

    def to_wire(self) -> dict[str, Any]:
        return {
            "tenant_id": str(self.tenant_id), "at": self.at, "day_start": self.day_start,
            "queues": [[q.id, q.name, q.waiting, q.callbacks, q.oldest_since, q.target_s, q.answered, q.answered_within, q.abandoned,
                        q.short_abandoned, list(q.member_ids)] for q in self.queues],
            "teams": [[t.id, t.name, list(t.agent_ids)] for t in self.teams],
            "agent_states": self.agent_states,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TenantSnapshot:
        return cls(
            tenant_id=uuid.UUID(data["tenant_id"]), at=data["at"], day_start=data["day_start"],
            queues=tuple(QueueFigures(*row[:10], member_ids=tuple(row[10])) for row in data["queues"]),
            teams=tuple(TeamMembers(row[0], row[1], tuple(row[2])) for row in data["teams"]),
            agent_states=dict(data["agent_states"]),
        )


def _whole_tenant(tenant_id: uuid.UUID) -> Principal:
    """The console's scope argument for "every queue and agent of the tenant" (never a caller's identity)."""
    return Principal("user", "wallboard", tenant_id, roles=frozenset({"tenant_admin"}))


async def compute(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime) -> TenantSnapshot:
    floor = await supervision.console(session, tenant_id=tenant_id, principal=_whole_tenant(tenant_id), now=now)
    members: dict[str, list[str]] = {q["id"]: [] for q in floor["queues"]}
    for queue_id, agent_id in await session.execute(
        select(QueueMember.queue_id, QueueMember.agent_id).where(QueueMember.tenant_id == tenant_id).order_by(QueueMember.agent_id)
    ):
        members.setdefault(str(queue_id), []).append(str(agent_id))
    team_agents: dict[str, list[str]] = {t["id"]: [] for t in floor["teams"]}
    for agent in floor["agents"]:
        if agent["team_id"] in team_agents:
            team_agents[agent["team_id"]].append(agent["id"])
    return TenantSnapshot(
        tenant_id=tenant_id, at=floor["now"], day_start=floor["day_start"],
        queues=tuple(
            QueueFigures(
                id=q["id"], name=q["name"], waiting=q["waiting"], callbacks=q["callbacks"], oldest_since=q["oldest_since"],
                target_s=q["service_level"]["target_s"], answered=q["service_level"]["answered"],
                answered_within=q["service_level"]["answered_within"], abandoned=q["service_level"]["abandoned"],
                short_abandoned=q["service_level"].get("short_abandoned", 0),
                member_ids=tuple(members[q["id"]]),
            )
            for q in floor["queues"]
        ),
        teams=tuple(TeamMembers(t["id"], t["name"], tuple(team_agents[t["id"]])) for t in floor["teams"]),
        agent_states={a["id"]: a["state"] for a in floor["agents"]},
    )


# --- what one viewer sees ------------------------------------------------------------------


@dataclass(frozen=True)
class ViewKey:
    """Everything a view depends on besides the snapshot: sockets with equal keys share one frame."""

    everything: bool
    team_ids: frozenset[str]
    queue_ids: frozenset[str]
    queue_id: str | None = None
    team_id: str | None = None

    @classmethod
    def of(cls, scope: Scope, *, queue_id: uuid.UUID | None = None, team_id: uuid.UUID | None = None) -> ViewKey:
        return cls(
            everything=scope.everything, team_ids=frozenset(map(str, scope.team_ids)), queue_ids=frozenset(map(str, scope.queue_ids)),
            queue_id=str(queue_id) if queue_id else None, team_id=str(team_id) if team_id else None,
        )


def _seconds_since(since: str | None, at: datetime) -> int:
    return 0 if since is None else max(0, int((at - datetime.fromisoformat(since)).total_seconds()))


def _percent(within: int, answered: int, abandoned: int, short: int) -> float | None:
    """Service level as docs/reports.md defines it: short abandons are left out."""
    offered = answered + abandoned - short
    return round(100 * within / offered, 1) if offered else None


def _row(id_: str | None, name: str | None, queues: Iterable[QueueFigures], agent_ids: Iterable[str], snapshot: TenantSnapshot,
         at: datetime) -> dict[str, Any]:
    queues = list(queues)
    oldest = min((q.oldest_since for q in queues if q.oldest_since), default=None, key=datetime.fromisoformat)
    answered, within, abandoned, short = (
        sum(getattr(q, f) for q in queues) for f in ("answered", "answered_within", "abandoned", "short_abandoned")
    )
    targets = {q.target_s for q in queues}
    states = [snapshot.agent_states.get(a, "offline") for a in agent_ids]
    return {
        "id": id_, "name": name,
        "waiting": sum(q.waiting for q in queues), "callbacks": sum(q.callbacks for q in queues),
        "longest_wait_s": _seconds_since(oldest, at), "oldest_since": oldest,
        "answered": answered, "answered_within": within, "abandoned": abandoned, "short_abandoned": short,
        "service_level": _percent(within, answered, abandoned, short),
        "target_s": targets.pop() if len(targets) == 1 else None,  # None: the queues' targets differ
        "agents": {state: states.count(state) for state in STATES},
    }


def view(snapshot: TenantSnapshot, key: ViewKey) -> dict[str, Any]:
    at = datetime.fromisoformat(snapshot.at)
    queues = [q for q in snapshot.queues if key.everything or q.id in key.queue_ids]
    teams = [t for t in snapshot.teams if key.everything or t.id in key.team_ids]
    filtered = key.queue_id is not None or key.team_id is not None
    if filtered:
        queues = [q for q in queues if q.id == key.queue_id]
        teams = [t for t in teams if t.id == key.team_id]
    served = {t.id: [q for q in snapshot.queues if set(t.agent_ids) & set(q.member_ids)] for t in teams}
    if key.everything and not filtered:
        total_queues, total_agents = list(snapshot.queues), list(snapshot.agent_states)
    else:
        by_id = {q.id: q for q in queues}
        by_id.update((q.id, q) for t in teams for q in served[t.id])
        total_queues = list(by_id.values())
        total_agents = sorted({a for q in queues for a in q.member_ids} | {a for t in teams for a in t.agent_ids})
    return {
        "type": "snapshot",
        "at": snapshot.at, "day_start": snapshot.day_start,
        "scope": {"all": key.everything, "queue_id": key.queue_id, "team_id": key.team_id},
        "service_level_target_percent": SL_TARGET_PERCENT, "amber_points": AMBER_POINTS,
        "totals": _row(None, None, total_queues, total_agents, snapshot, at),
        "queues": [_row(q.id, q.name, [q], q.member_ids, snapshot, at) for q in queues],
        "teams": [_row(t.id, t.name, served[t.id], t.agent_ids, snapshot, at) for t in teams],
    }
