"""Helpers of the reporting tests: tenants with an admin, a supervisor and a report
viewer; agents and queues made through the API; call logs written event by event
through the real ``call_log.append_event`` (so the dirty-call hook runs) and presence
changes through the real ``events.agent_state_changed`` (so the presence log and its
marker are written as the ACD writes them)."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))

from sqlalchemy import select, update  # noqa: E402
from tenants_support import activate_user, bearer, create_tenant, create_user  # noqa: E402

from kefu.platform.models import Tenant as TenantRow  # noqa: E402
from kefu.platform.runtime import Runtime  # noqa: E402
from kefu.tenants import call_log  # noqa: E402
from kefu.tenants.events import agent_state_changed  # noqa: E402
from kefu.tenants.models import Agent, AgentShift, Call, Schedule, Team, TeamSupervisor  # noqa: E402
from kefu.tenants.reports import upkeep  # noqa: E402

# The moment the tests travel to (time-machine); logs are placed relative to fixed dates.
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class Tenant:
    runtime: Runtime
    client: Any
    id: uuid.UUID
    slug: str
    admin_id: uuid.UUID
    users: dict[str, uuid.UUID] = field(default_factory=dict)

    def headers(self, role: str = "tenant_admin") -> dict[str, str]:
        return bearer(self.runtime, tenant_id=self.id, user_id=self.users.get(role, self.admin_id), roles={role})

    async def get(self, path: str, role: str = "tenant_admin", **params: Any) -> Any:
        return await self.client.get(path, params=params, headers=self.headers(role))


async def new_tenant(runtime: Runtime, client: Any, slug: str, *, time_zone: str = "UTC") -> Tenant:
    tenant_id = await create_tenant(runtime, slug)
    tenant = Tenant(runtime, client, tenant_id, slug, await create_user(runtime, tenant_id, f"admin@{slug}.test"))
    for role in ("supervisor", "report_viewer"):
        tenant.users[role] = await create_user(runtime, tenant_id, f"{role.replace('_', '-')}@{slug}.test")
    await set_time_zone(tenant, time_zone)
    return tenant


async def set_time_zone(tenant: Tenant, time_zone: str) -> None:
    async with tenant.runtime.db.platform_session(reason="test") as session:
        await session.execute(update(TenantRow).where(TenantRow.id == tenant.id).values(time_zone=time_zone))


async def add_agent(tenant: Tenant, name: str) -> uuid.UUID:
    response = await tenant.client.post(
        "/api/v1/agents", json={"email": f"{name.lower()}@{tenant.slug}.test", "display_name": name}, headers=tenant.headers()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    await activate_user(tenant.runtime, tenant.id, uuid.UUID(body["user_id"]))
    return uuid.UUID(body["id"])


async def add_queue(tenant: Tenant, name: str) -> uuid.UUID:
    response = await tenant.client.post("/api/v1/queues", json={"name": name}, headers=tenant.headers())
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def add_team(tenant: Tenant, name: str, agent_ids: list[uuid.UUID], supervisor: uuid.UUID | None = None) -> uuid.UUID:
    """A team of ``agent_ids``, led by the user ``supervisor`` (rows as kefu.tenants.supervision writes them)."""
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        team = Team(tenant_id=tenant.id, name=name)
        session.add(team)
        await session.flush()
        await session.execute(update(Agent).where(Agent.tenant_id == tenant.id, Agent.id.in_(agent_ids)).values(team_id=team.id))
        if supervisor is not None:
            session.add(TeamSupervisor(tenant_id=tenant.id, team_id=team.id, user_id=supervisor))
        return team.id


async def add_shift(tenant: Tenant, agent_id: uuid.UUID, weekly: dict[str, Any], valid_from: datetime, time_zone: str = "UTC") -> uuid.UUID:
    """A schedule and the agent's shift on it from ``valid_from`` (the API sets it from now)."""
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        schedule = Schedule(tenant_id=tenant.id, name=f"shift {uuid.uuid4().hex[:6]}", time_zone=time_zone, weekly=weekly, holidays=[])
        session.add(schedule)
        await session.flush()
        session.add(AgentShift(tenant_id=tenant.id, agent_id=agent_id, schedule_id=schedule.id, valid_from=valid_from, set_by="test"))
        return schedule.id


async def new_call(tenant: Tenant, *, started_at: datetime, caller: str = "Carol", caller_ref: str | None = None) -> uuid.UUID:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        call = Call(tenant_id=tenant.id, caller_name=caller, caller_ref=caller_ref, status="queued", started_at=started_at)
        session.add(call)
        await session.flush()
        call_log.new_call_log(session, call_id=call.id)
        await call_log.append_event(session, tenant_id=tenant.id, call_id=call.id, type="created", actor="caller", at=started_at, data={})
        return call.id


async def log(tenant: Tenant, call_id: uuid.UUID, *events: tuple[str, datetime, dict[str, Any]]) -> None:
    """Append events to a call's log in one transaction (the call row locked first, as the services do)."""
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        call = await call_log.lock_call(session, tenant_id=tenant.id, call_id=call_id)
        assert call is not None
        for kind, at, data in events:
            await call_log.append_event(session, tenant_id=tenant.id, call_id=call_id, type=kind, actor="test", at=at, data=data)
            if kind == "ended":
                call.status, call.ended_at, call.end_reason = "ended", at, data.get("reason")


def ev(kind: str, at: datetime, **data: Any) -> tuple[str, datetime, dict[str, Any]]:
    return kind, at, {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in data.items()}


async def presence(tenant: Tenant, agent_id: uuid.UUID, at: datetime, status: str, system_state: str = "idle") -> None:
    """The agent's status changes at ``at``, written as the ACD writes it."""
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        agent = await session.scalar(select(Agent).where(Agent.tenant_id == tenant.id, Agent.id == agent_id))
        assert agent is not None
        agent.status, agent.system_state, agent.state_changed_at = status, system_state, at
        agent.not_ready_reason = "break" if status == "not_ready" else None
        await session.flush()
        await agent_state_changed(session, agent)


async def run_upkeep(tenant: Tenant, now: datetime) -> upkeep.UpkeepResult:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        return await upkeep.update_rollups(session, tenant_id=tenant.id, now=now)


async def run_rebuild(tenant: Tenant, now: datetime) -> upkeep.UpkeepResult:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        return await upkeep.rebuild(session, tenant_id=tenant.id, now=now)


async def report(tenant: Tenant, role: str = "tenant_admin", **params: Any) -> dict[str, Any]:
    response = await tenant.get("/api/v1/reports", role, **params)
    assert response.status_code == 200, response.text
    return response.json()


def row_of(body: dict[str, Any], period_start: str, key: str | None = None) -> dict[str, Any]:
    [row] = [r for r in body["rows"] if r["period_start"] == period_start and (key is None or r["id"] == key)]
    return row


async def rollup_table(tenant: Tenant) -> list[tuple[Any, ...]]:
    """Every rollup row of the tenant, comparable (ids left out)."""
    from kefu.tenants.models import ReportRollup
    from kefu.tenants.reports.facts import AGENT_TIME_COUNTERS, CALL_COUNTERS

    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        rows = await session.scalars(select(ReportRollup).where(ReportRollup.tenant_id == tenant.id))
        out = [
            (r.dimension, str(r.key_id), r.bucket_start.isoformat(), *(getattr(r, c) for c in CALL_COUNTERS + AGENT_TIME_COUNTERS))
            for r in rows
        ]
    # Rows that hold nothing (left behind at zero) say nothing either way.
    return sorted(row for row in out if any(row[3:]))
