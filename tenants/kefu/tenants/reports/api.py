"""Historical reports: /api/v1/reports… (docs/reports.md).

``install`` registers the rollup scheduler on worker processes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy import select

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, TenantId
from kefu.platform.events import enqueue
from kefu.platform.identity.principal import requires
from kefu.platform.problems import Problem, not_found
from kefu.platform.runtime import Runtime
from kefu.tenants.call_log import lock_agent
from kefu.tenants.models import AgentShift, Schedule
from kefu.tenants.reports import exports, query, upkeep
from kefu.tenants.reports.marks import mark_agent_dirty

FORMATS = {"json", "csv", "xlsx"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ShiftRequest(msgspec.Struct, forbid_unknown_fields=True):
    schedule_id: uuid.UUID | None


class ShiftOut(msgspec.Struct):
    agent_id: uuid.UUID
    schedule_id: uuid.UUID | None


class RebuildOut(msgspec.Struct):
    request_id: str
    status: str


class ReportsController(Controller):
    path = "/api/v1/reports"
    tags = ["reports"]

    @get("/", guards=[requires("reports.read")])
    async def table(
        self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        dimension: FromQuery[str] = "tenant",
        interval: FromQuery[str] = "day",
        first: Annotated[str | None, QueryParameter(name="from")] = None,
        last: Annotated[str | None, QueryParameter(name="to")] = None,
        queue_id: FromQuery[uuid.UUID | None] = None,
        team_id: FromQuery[uuid.UUID | None] = None,
        agent_id: FromQuery[uuid.UUID | None] = None,
        format: FromQuery[str] = "json",
    ) -> Any:
        """KPIs per dimension key (tenant | queue | team | agent) and period (30m | hour | day |
        week | month) from ``from`` to ``to`` (dates in the tenant's time zone, both included);
        ``format=csv`` or ``xlsx`` downloads the same table."""
        if format not in FORMATS:
            raise Problem(400, "invalid_format", "format must be json, csv or xlsx")
        result = await query.report(
            db, tenant_id=tenant_id, principal=principal, dimension=dimension, interval=interval, first=first, last=last,
            filters=query.Filters(queue_id=queue_id, team_id=team_id, agent_id=agent_id),
        )
        if format == "json":
            return result
        name = f"report-{dimension}-{interval}-{result['from']}-{result['to']}.{format}"
        body, media_type = (exports.to_csv(result), "text/csv; charset=utf-8") if format == "csv" else (exports.to_xlsx(result), XLSX)
        return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @get("/rankings", guards=[requires("reports.read")])
    async def rankings(
        self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        metric: FromQuery[str] = "answered",
        first: Annotated[str | None, QueryParameter(name="from")] = None,
        last: Annotated[str | None, QueryParameter(name="to")] = None,
        order: FromQuery[str] = "desc",
    ) -> dict[str, Any]:
        """Agents ranked by one KPI over the period."""
        return await query.rankings(db, tenant_id=tenant_id, principal=principal, metric=metric, first=first, last=last, order=order)

    @get("/repeat-callers", guards=[requires("reports.read")])
    async def repeat_callers(
        self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        first: Annotated[str | None, QueryParameter(name="from")] = None,
        last: Annotated[str | None, QueryParameter(name="to")] = None,
        min_calls: FromQuery[int] = 2,
    ) -> dict[str, Any]:
        """Callers who called at least ``min_calls`` times in the period."""
        return await query.repeat_callers(db, tenant_id=tenant_id, principal=principal, first=first, last=last, min_calls=min_calls)

    @post("/rebuild", status_code=202, guards=[requires("reports.manage")])
    async def rebuild(self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> RebuildOut:
        """Recompute every fact and rollup from the logs, in the background (audited)."""
        request_id = uuid.uuid4().hex
        await enqueue(db, upkeep.rebuild_reports, tenant_id=tenant_id, request_id=request_id, actor=principal.actor)
        await audit.record(db, tenant_id=tenant_id, actor=principal.actor, action="reports.rebuild_requested",
                           target=f"tenant:{tenant_id}", detail={"request_id": request_id}, at=utcnow())
        return RebuildOut(request_id=request_id, status="queued")

    @put("/agents/{agent_id:uuid}/shift", guards=[requires("reports.manage")])
    async def set_shift(
        self, agent_id: FromPath[uuid.UUID], data: JSONBody[ShiftRequest], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
    ) -> ShiftOut:
        """The schedule (``/api/v1/schedules``) the agent is expected to work, for adherence; null: none."""
        # The agent row first (a no-op UPDATE): concurrent changes of one agent's shift take turns,
        # and on SQLite the write lock is taken before anything is read.
        if await lock_agent(db, tenant_id=tenant_id, agent_id=agent_id) is None:
            raise not_found("agent")
        if data.schedule_id is not None and await db.scalar(
            select(Schedule.id).where(Schedule.tenant_id == tenant_id, Schedule.id == data.schedule_id)
        ) is None:
            raise not_found("schedule")
        now = utcnow()
        current = await db.scalar(
            select(AgentShift.schedule_id).where(AgentShift.tenant_id == tenant_id, AgentShift.agent_id == agent_id)
            .order_by(AgentShift.valid_from.desc(), AgentShift.id.desc()).limit(1)
        )
        if current != data.schedule_id:
            # Appended, never edited: past adherence keeps the shift it was measured against.
            db.add(AgentShift(tenant_id=tenant_id, agent_id=agent_id, schedule_id=data.schedule_id, valid_from=now, set_by=principal.actor))
            await db.flush()
            await mark_agent_dirty(db, tenant_id=tenant_id, agent_id=agent_id, since=now)
            await audit.record(db, tenant_id=tenant_id, actor=principal.actor, action="reports.agent_shift_changed", target=f"agent:{agent_id}",
                               detail={"schedule_id": str(data.schedule_id) if data.schedule_id else None,
                                       "previous_schedule_id": str(current) if current else None}, at=now)
        return ShiftOut(agent_id=agent_id, schedule_id=data.schedule_id)


def install(runtime: Runtime) -> list[Any]:
    if "worker" in runtime.process_roles:
        runtime.add_service(upkeep.ReportRollupScheduler(runtime, interval_s=upkeep.rollup_interval_s(runtime.settings)))
    return [ReportsController]

