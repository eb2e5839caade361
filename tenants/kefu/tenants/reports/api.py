"""Historical reports: /api/v1/reports… (docs/reports.md), and scheduled reports
(/api/v1/reports/schedules…, kefu.tenants.reports.schedules).

``install`` registers the rollup and the report schedule schedulers on worker processes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.events import enqueue
from kefu.platform.identity.principal import requires
from kefu.platform.problems import Problem, not_found
from kefu.platform.runtime import Runtime
from kefu.tenants.call_log import lock_agent
from kefu.tenants.models import AgentShift, Schedule
from kefu.tenants.reports import exports, query, schedules, upkeep
from kefu.tenants.reports.live import tenant_zone
from kefu.tenants.reports.marks import mark_agent_dirty
from kefu.tenants.reports.schedules import ReportDelivery, ReportSchedule

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


# --- scheduled reports ----------------------------------------------------------------


class ScheduleRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A schedule: the report (as ``GET /api/v1/reports``), the period relative to the due
    time, the file format, the cadence (local time of the tenant) and the destinations."""

    name: str
    period: str
    cadence: str
    time: str
    dimension: str = "tenant"
    interval: str = "day"
    queue_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    format: str = "csv"
    weekday: str | None = None
    day_of_month: int | None = None
    emails: list[str] = msgspec.field(default_factory=list)
    webhook_url: str | None = None
    enabled: bool = True


class ScheduleOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    dimension: str
    interval: str
    queue_id: uuid.UUID | None
    team_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    period: str
    format: str
    cadence: str
    time: str
    weekday: str | None
    day_of_month: int | None
    emails: list[str]
    webhook_url: str | None
    enabled: bool
    time_zone: str
    next_due_at: str | None
    created_at: str


class ScheduleCreated(ScheduleOut):
    # Shown once: the key of the webhook signatures (docs/reports.md).
    signing_secret: str


class ScheduleList(msgspec.Struct):
    schedules: list[ScheduleOut]


class RunOut(msgspec.Struct):
    schedule_id: uuid.UUID
    due_at: str
    status: str


class DeliveryOut(msgspec.Struct):
    id: uuid.UUID
    due_at: str
    trigger: str
    period_from: str
    period_to: str
    status: str
    attempts: int
    error: str | None
    created_at: str
    finished_at: str | None


class DeliveryList(msgspec.Struct):
    deliveries: list[DeliveryOut]


def _schedule_out(row: ReportSchedule, zone: str) -> dict[str, Any]:
    local = ZoneInfo(zone)
    return dict(
        id=row.id, name=row.name, dimension=row.dimension, interval=row.interval, queue_id=row.queue_id, team_id=row.team_id,
        agent_id=row.agent_id, period=row.period, format=row.format, cadence=row.cadence, time=row.time_of_day, weekday=row.weekday,
        day_of_month=row.day_of_month, emails=list(row.emails), webhook_url=row.webhook_url, enabled=row.enabled, time_zone=zone,
        next_due_at=row.next_due_at.astimezone(local).isoformat() if row.enabled else None, created_at=row.created_at.isoformat(),
    )


async def _access_schedule(db: Any, tenant_id: uuid.UUID, schedule_id: uuid.UUID, *, lock: bool = False) -> ReportSchedule:
    """The tenant's schedule, or the same 404 for a missing one and another tenant's."""
    statement = select(ReportSchedule).where(ReportSchedule.tenant_id == tenant_id, ReportSchedule.id == schedule_id)
    row = await db.scalar(statement.with_for_update() if lock else statement)
    if row is None:
        raise not_found("report schedule")
    return row


async def _apply(db: Any, tenant_id: uuid.UUID, principal: Any, row: ReportSchedule, data: ScheduleRequest, settings: Any) -> str:
    """Check ``data`` (problem details) and write it into ``row``; returns the tenant's time zone."""
    name, cadence, emails, url = schedules.check_definition(
        settings, name=data.name, period=data.period, format=data.format, cadence=data.cadence, at=data.time, weekday=data.weekday,
        day_of_month=data.day_of_month, emails=data.emails, webhook_url=data.webhook_url,
    )
    zone = await tenant_zone(db, tenant_id=tenant_id)
    now = utcnow()
    # The report's own parameters are checked by building it once, by the code the API and the
    # deliveries use (invalid_dimension, invalid_interval, period_too_long, invalid_filter, 404).
    first, last = schedules.relative_period(data.period, now.astimezone(zone).date())
    await query.report(db, tenant_id=tenant_id, principal=principal, dimension=data.dimension, interval=data.interval,
                       first=first.isoformat(), last=last.isoformat(),
                       filters=query.Filters(queue_id=data.queue_id, team_id=data.team_id, agent_id=data.agent_id))
    row.name, row.dimension, row.interval, row.period, row.format = name, data.dimension, data.interval, data.period, data.format
    row.queue_id, row.team_id, row.agent_id = data.queue_id, data.team_id, data.agent_id
    row.cadence, row.time_of_day, row.weekday, row.day_of_month = data.cadence, data.time, data.weekday, data.day_of_month
    row.emails, row.webhook_url, row.enabled = emails, url, data.enabled
    row.next_due_at, row.updated_at = cadence.next_due(zone, now), now
    return zone.key


def _detail(row: ReportSchedule) -> dict[str, Any]:
    return {"name": row.name, "dimension": row.dimension, "interval": row.interval, "period": row.period, "format": row.format,
            "cadence": row.cadence, "time": row.time_of_day, "weekday": row.weekday, "day_of_month": row.day_of_month,
            "emails": list(row.emails), "webhook_url": row.webhook_url, "enabled": row.enabled}


async def _flush_named(db: Any) -> None:
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise Problem(409, "schedule_name_taken", "another report schedule has this name") from None


class ReportSchedulesController(Controller):
    """Scheduled reports (docs/reports.md, "Scheduled reports"): ``reports.manage`` for
    reading too — a schedule holds e-mail addresses and a webhook URL."""

    path = "/api/v1/reports/schedules"
    tags = ["reports"]
    guards = [requires("reports.manage")]

    @get("/")
    async def list_schedules(self, db: DbSession, tenant_id: TenantId) -> ScheduleList:
        zone = (await tenant_zone(db, tenant_id=tenant_id)).key
        rows = await db.scalars(select(ReportSchedule).where(ReportSchedule.tenant_id == tenant_id).order_by(func.lower(ReportSchedule.name), ReportSchedule.id))
        return ScheduleList(schedules=[ScheduleOut(**_schedule_out(row, zone)) for row in rows])

    @post("/", status_code=201)
    async def create_schedule(
        self, data: JSONBody[ScheduleRequest], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep,
    ) -> ScheduleCreated:
        """The answer holds ``signing_secret``, shown this once (it signs the webhook deliveries)."""
        row = ReportSchedule(tenant_id=tenant_id, secret=schedules.new_signing_secret(), created_by=principal.actor, created_at=utcnow())
        zone = await _apply(db, tenant_id, principal, row, data, runtime.settings)
        db.add(row)
        await _flush_named(db)
        await audit.record(db, tenant_id=tenant_id, actor=principal.actor, action="reports.schedule_created", target=f"report_schedule:{row.id}",
                           detail=_detail(row), at=row.created_at)
        return ScheduleCreated(**_schedule_out(row, zone), signing_secret=row.secret)

    @get("/{report_schedule_id:uuid}")
    async def get_schedule(self, report_schedule_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> ScheduleOut:
        row = await _access_schedule(db, tenant_id, report_schedule_id)
        return ScheduleOut(**_schedule_out(row, (await tenant_zone(db, tenant_id=tenant_id)).key))

    @put("/{report_schedule_id:uuid}")
    async def replace_schedule(
        self, report_schedule_id: FromPath[uuid.UUID], data: JSONBody[ScheduleRequest], db: DbSession, tenant_id: TenantId,
        principal: CurrentPrincipal, runtime: RuntimeDep,
    ) -> ScheduleOut:
        """Replaces the definition (the signing secret stays); the next due time is recomputed from now."""
        row = await _access_schedule(db, tenant_id, report_schedule_id, lock=True)
        before = _detail(row)
        zone = await _apply(db, tenant_id, principal, row, data, runtime.settings)
        await _flush_named(db)
        await audit.record(db, tenant_id=tenant_id, actor=principal.actor, action="reports.schedule_updated", target=f"report_schedule:{row.id}",
                           detail={"before": before, "after": _detail(row)}, at=row.updated_at)
        return ScheduleOut(**_schedule_out(row, zone))

    @delete("/{report_schedule_id:uuid}", status_code=204)
    async def delete_schedule(self, report_schedule_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        """Deletes the schedule and its deliveries' records."""
        row = await _access_schedule(db, tenant_id, report_schedule_id, lock=True)
        detail = _detail(row)
        await db.delete(row)
        await db.flush()
        await audit.record(db, tenant_id=tenant_id, actor=principal.actor, action="reports.schedule_deleted", target=f"report_schedule:{row.id}",
                           detail=detail, at=utcnow())

    @post("/{report_schedule_id:uuid}/run", status_code=202)
    async def run_schedule(
        self, report_schedule_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep,
    ) -> RunOut:
        """Deliver now (the period relative to now), in the background; ``next_due_at`` is unchanged."""
        row = await _access_schedule(db, tenant_id, report_schedule_id)
        if row.emails and not (runtime.settings.smtp_url and runtime.settings.smtp_from):
            raise Problem(409, "smtp_not_configured", "this installation sends no e-mail (KEFU_SMTP_URL is not set)")
        now = utcnow()
        await enqueue(db, schedules.deliver_scheduled_report, tenant_id=tenant_id, schedule_id=str(row.id), due_at=now.isoformat(),
                      trigger="manual", attempt=1)
        await audit.record(db, tenant_id=tenant_id, actor=principal.actor, action="reports.schedule_run_requested",
                           target=f"report_schedule:{row.id}", detail={"due_at": now.isoformat()}, at=now)
        return RunOut(schedule_id=row.id, due_at=now.isoformat(), status="queued")

    @get("/{report_schedule_id:uuid}/deliveries")
    async def list_deliveries(
        self, report_schedule_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, limit: FromQuery[int] = 100,
    ) -> DeliveryList:
        """The schedule's deliveries, newest due time first (at most ``limit``, 1–500)."""
        if not 1 <= limit <= 500:
            raise Problem(400, "invalid_limit", "limit must be 1 to 500")
        row = await _access_schedule(db, tenant_id, report_schedule_id)
        rows = await db.scalars(
            select(ReportDelivery).where(ReportDelivery.tenant_id == tenant_id, ReportDelivery.schedule_id == row.id)
            .order_by(ReportDelivery.due_at.desc(), ReportDelivery.id).limit(limit)
        )
        return DeliveryList(deliveries=[
            DeliveryOut(id=d.id, due_at=d.due_at.isoformat(), trigger=d.trigger, period_from=d.period_from, period_to=d.period_to,
                        status=d.status, attempts=d.attempts, error=d.error, created_at=d.created_at.isoformat(),
                        finished_at=d.finished_at.isoformat() if d.finished_at else None)
            for d in rows
        ])


def install(runtime: Runtime) -> list[Any]:
    if "worker" in runtime.process_roles:
        runtime.add_service(upkeep.ReportRollupScheduler(runtime, interval_s=upkeep.rollup_interval_s(runtime.settings)))
        runtime.add_service(schedules.ReportScheduleScheduler(runtime, interval_s=runtime.settings.reports_schedule_interval_s))
    return [ReportsController, ReportSchedulesController]

