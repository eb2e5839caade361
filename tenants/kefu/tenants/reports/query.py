"""Historical reports read from the rollups: periods in the tenant's time zone, KPIs
derived from summed counters, rankings and repeat callers (docs/reports.md).

Dimensions: ``tenant`` and ``queue`` read their own rollup rows; ``agent`` reads the
agent rows; ``team`` sums the agent rows of the team's agents (its members now).
Agent-time KPIs of the tenant come from all agent rows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Integer, String, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.identity.principal import Principal
from kefu.platform.problems import Problem, not_found
from kefu.tenants.models import Agent, Queue, ReportCallFact, ReportRollup, Team
from kefu.tenants.reports.facts import AGENT_TIME_COUNTERS, CALL_COUNTERS
from kefu.tenants.reports.live import tenant_zone
from kefu.tenants.supervision import Scope, outside_scope, scope_of

DIMENSIONS = ("tenant", "queue", "team", "agent")
INTERVALS = ("30m", "hour", "day", "week", "month")
# The longest period (days) a report may cover, per interval.
MAX_DAYS = {"30m": 31, "hour": 31, "day": 400, "week": 400, "month": 731}
COUNTERS = CALL_COUNTERS + AGENT_TIME_COUNTERS


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    unit: str  # count | percent | seconds | per_hour


KPIS: tuple[Kpi, ...] = (
    Kpi("total_calls", "Total calls", "count"),
    Kpi("answered", "Answered", "count"),
    Kpi("abandoned", "Abandoned", "count"),
    Kpi("short_abandoned", "Short abandons", "count"),
    Kpi("blocked", "Blocked", "count"),
    Kpi("answer_rate", "Answer rate", "percent"),
    Kpi("service_level", "Service level", "percent"),
    Kpi("asa_s", "Average speed of answer", "seconds"),
    Kpi("abandon_rate", "Abandon rate", "percent"),
    Kpi("avg_time_to_abandon_s", "Average time to abandon", "seconds"),
    Kpi("aht_s", "Average handle time", "seconds"),
    Kpi("avg_talk_s", "Average talk time", "seconds"),
    Kpi("avg_hold_s", "Average hold time", "seconds"),
    Kpi("avg_acw_s", "Average after-call work", "seconds"),
    Kpi("transfer_rate", "Transfer rate", "percent"),
    Kpi("fcr_rate", "First-call resolution", "percent"),
    Kpi("calls_per_logged_in_hour", "Calls per logged-in hour", "per_hour"),
    Kpi("occupancy", "Occupancy", "percent"),
    Kpi("adherence", "Adherence", "percent"),
    Kpi("ivr_containment", "IVR containment", "percent"),
    Kpi("callbacks", "Callbacks", "count"),
    Kpi("voicemails", "Voicemails", "count"),
)
KPI_KEYS = tuple(k.key for k in KPIS)


def _rate(numerator: float, denominator: float) -> float | None:
    return round(100 * numerator / denominator, 1) if denominator else None


def _avg_s(total_ms: float, count: float) -> float | None:
    return round(total_ms / count / 1000, 1) if count else None


def kpis(c: dict[str, int]) -> dict[str, float | int | None]:
    """Every KPI from one set of summed counters (formulas: docs/reports.md)."""
    handling = c["talk_ms"] + c["hold_ms"] + c["acw_ms"]
    real_abandons = c["abandoned"] - c["short_abandoned"]
    return {
        "total_calls": c["calls"],
        "answered": c["answered"],
        "abandoned": c["abandoned"],
        "short_abandoned": c["short_abandoned"],
        "blocked": c["blocked"],
        "answer_rate": _rate(c["answered"], c["calls"]),
        "service_level": _rate(c["sl_answered_within"], c["sl_offered"]),
        "asa_s": _avg_s(c["asa_wait_ms"], c["asa_answered"]),
        "abandon_rate": _rate(real_abandons, c["answered"] + real_abandons),
        "avg_time_to_abandon_s": _avg_s(c["abandon_wait_ms"], c["abandoned"]),
        "aht_s": _avg_s(handling, c["handled"]),
        "avg_talk_s": _avg_s(c["talk_ms"], c["handled"]),
        "avg_hold_s": _avg_s(c["hold_ms"], c["handled"]),
        "avg_acw_s": _avg_s(c["acw_ms"], c["handled"]),
        "transfer_rate": _rate(c["transferred"], c["handled"]),
        "fcr_rate": _rate(c["fcr_resolved"], c["fcr_flagged"]),
        "calls_per_logged_in_hour": round(c["handled"] / (c["logged_in_ms"] / 3_600_000), 2) if c["logged_in_ms"] else None,
        "occupancy": _rate(handling, c["available_ms"]),
        "adherence": _rate(c["adherent_ms"], c["scheduled_ms"]),
        "ivr_containment": _rate(c["ivr_contained"], c["ivr_entered"]),
        "callbacks": c["callbacks"],
        "voicemails": c["voicemails"],
    }


# --- the request --------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    time_zone: ZoneInfo
    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=self.time_zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=self.time_zone)


def parse_period(zone: ZoneInfo, first: str | None, last: str | None, *, max_days: int) -> Period:
    """``from`` and ``to`` (local dates, both included); a missing one is the other, or today."""
    today = datetime.now(zone).date().isoformat()
    first, last = first or last or today, last or first or today
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise Problem(400, "invalid_period", "from and to must be dates (YYYY-MM-DD)") from None
    if end < start:
        raise Problem(400, "invalid_period", "to must not be before from")
    if (end - start).days + 1 > max_days:
        raise Problem(400, "period_too_long", f"at most {max_days} days for this report", max_days=max_days)
    return Period(zone, start, end)


def period_start(bucket: datetime, interval: str, zone: ZoneInfo) -> datetime:
    """The local start of the period holding ``bucket``."""
    local = bucket.astimezone(zone)
    if interval == "30m":
        return local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    return datetime.combine(day, time(0), tzinfo=zone)


def all_periods(period: Period, interval: str) -> list[datetime]:
    """Every period start of the range, in order (local, aware)."""
    out: list[datetime] = []
    seen: set[str] = set()
    moment = period.start.astimezone(ZoneInfo("UTC"))
    end = period.end.astimezone(ZoneInfo("UTC"))
    step = timedelta(minutes=15) if interval in ("30m", "hour") else timedelta(hours=1)
    while moment < end:
        start = period_start(moment, interval, period.time_zone)
        if start.isoformat() not in seen:
            seen.add(start.isoformat())
            out.append(start)
        moment += step
    return out


async def principal_scope(session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal) -> Scope:
    """A tenant admin, a report viewer or an integration client sees everything; a supervisor its teams and queues."""
    if "supervisor" in principal.roles and not ({"tenant_admin", "report_viewer"} & set(principal.roles)):
        return await scope_of(session, tenant_id=tenant_id, principal=principal)
    return Scope(everything=True)


@dataclass(frozen=True)
class Filters:
    queue_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


async def _check_filters(session: AsyncSession, tenant_id: uuid.UUID, dimension: str, filters: Filters, scope: Scope) -> None:
    allowed = {"tenant": ("queue_id",), "queue": ("queue_id",), "team": ("team_id",), "agent": ("team_id", "agent_id")}[dimension]
    for name, model, what in (("queue_id", Queue, "queue"), ("team_id", Team, "team"), ("agent_id", Agent, "agent")):
        value = getattr(filters, name)
        if value is None:
            continue
        if await session.scalar(select(model.id).where(model.tenant_id == tenant_id, model.id == value)) is None:
            raise not_found(what)
        if name not in allowed:
            raise Problem(400, "invalid_filter", f"{name} does not apply to the {dimension} dimension")
        visible = {"queue_id": scope.sees_queue(value), "team_id": scope.everything or value in scope.team_ids,
                   "agent_id": scope.sees_agent(value)}[name]
        if not visible:
            raise outside_scope(what)


def _zero() -> dict[str, int]:
    return {c: 0 for c in COUNTERS}


def _local_period(interval: str, zone: ZoneInfo) -> tuple[Any, ...]:
    """PostgreSQL: what groups the buckets of one local period (``period_start``): the local
    wall-clock period, and for 30m and hour also the UTC offset, so that the two 01:00 hours of
    a daylight-saving fall-back stay apart as they do in ``period_start``."""
    local = func.timezone(literal(zone.key, String), ReportRollup.bucket_start)
    if interval == "30m":
        minutes = cast(func.extract("minute", local), Integer).op("/")(30).op("*")(30)
        wall = func.date_trunc("hour", local) + func.make_interval(0, 0, 0, 0, 0, minutes)
    else:
        wall = func.date_trunc({"hour": "hour", "day": "day", "week": "week", "month": "month"}[interval], local)
    if interval in ("30m", "hour"):
        return (wall, local - func.timezone(literal("UTC", String), ReportRollup.bucket_start))
    return (wall,)


async def _rollups(
    session: AsyncSession, tenant_id: uuid.UUID, dimension: str, keys: list[uuid.UUID] | None, period: Period,
    interval: str | None = None,
) -> list[Any]:
    """The rollup rows of ``keys`` (None: every key) in the period: ``(key_id, bucket_start, <counters>)``.

    With ``interval`` on PostgreSQL the database sums them per key and local period: one row
    each, its ``bucket_start`` the period's first bucket (``period_start`` maps it to the same
    period as any of its buckets).  A month of queue rows or a day of agent rows is tens of
    thousands of buckets, and carrying each into Python cost most of a report's time
    (bench/reports.py).  Elsewhere (SQLite) the buckets are summed by the caller."""
    if keys is not None and not keys:
        return []
    where = [ReportRollup.tenant_id == tenant_id, ReportRollup.dimension == dimension,
             ReportRollup.bucket_start >= period.start, ReportRollup.bucket_start < period.end]
    if keys is not None:
        where.append(ReportRollup.key_id.in_(keys))
    bind = session.bind
    if interval is not None and bind is not None and bind.dialect.name == "postgresql":
        query = (
            select(ReportRollup.key_id, func.min(ReportRollup.bucket_start).label("bucket_start"),
                   *[cast(func.sum(getattr(ReportRollup, c)), BigInteger).label(c) for c in COUNTERS])
            .where(*where)
            .group_by(ReportRollup.key_id, *_local_period(interval, period.time_zone))
        )
    else:
        query = select(ReportRollup.key_id, ReportRollup.bucket_start, *[getattr(ReportRollup, c) for c in COUNTERS]).where(*where)
    return list((await session.execute(query)).all())


async def _names(session: AsyncSession, tenant_id: uuid.UUID, model: Any, name_column: Any, ids: list[uuid.UUID] | None) -> dict[uuid.UUID, str]:
    query = select(model.id, name_column).where(model.tenant_id == tenant_id)
    if ids is not None:
        query = query.where(model.id.in_(ids))
    return dict((await session.execute(query)).all())


async def report(
    session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, dimension: str, interval: str,
    first: str | None, last: str | None, filters: Filters,
) -> dict[str, Any]:
    """``GET /api/v1/reports``: one row per dimension key and period."""
    if dimension not in DIMENSIONS:
        raise Problem(400, "invalid_dimension", f"dimension must be one of {', '.join(DIMENSIONS)}")
    if interval not in INTERVALS:
        raise Problem(400, "invalid_interval", f"interval must be one of {', '.join(INTERVALS)}")
    zone = await tenant_zone(session, tenant_id=tenant_id)
    period = parse_period(zone, first, last, max_days=MAX_DAYS[interval])
    scope = await principal_scope(session, tenant_id=tenant_id, principal=principal)
    await _check_filters(session, tenant_id, dimension, filters, scope)
    if dimension == "tenant" and not scope.everything and filters.queue_id is None:
        raise Problem(403, "outside_supervision_scope", "the whole tenant's report is for tenant admins and report viewers; choose a dimension")

    # key -> (id, name); rows of (key, bucket, counters...)
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(_zero)
    names: dict[str, tuple[str | None, str]] = {}

    def add(key: str, bucket: datetime, values: Any, only: tuple[str, ...] = COUNTERS) -> None:
        target = sums[(key, period_start(bucket, interval, zone).isoformat())]
        for name in only:
            target[name] += int(getattr(values, name))

    if dimension == "tenant" and filters.queue_id is None:
        names["tenant"] = (str(tenant_id), "All")
        for row in await _rollups(session, tenant_id, "tenant", [tenant_id], period, interval):
            add("tenant", row.bucket_start, row, CALL_COUNTERS)
        for row in await _rollups(session, tenant_id, "agent", None, period, interval):
            add("tenant", row.bucket_start, row, AGENT_TIME_COUNTERS)
    elif dimension in ("tenant", "queue"):
        queue_names = await _names(session, tenant_id, Queue, Queue.name, None)
        keys = [q for q in queue_names if scope.sees_queue(q) and (filters.queue_id is None or q == filters.queue_id)]
        for key in keys:
            names[str(key)] = (str(key), queue_names[key])
        for row in await _rollups(session, tenant_id, "queue", keys, period, interval):
            add(str(row.key_id), row.bucket_start, row)
    else:
        agents = (await session.execute(select(Agent.id, Agent.display_name, Agent.team_id).where(Agent.tenant_id == tenant_id))).all()
        visible = [a for a in agents if scope.sees_agent(a.id)
                   and (filters.agent_id is None or a.id == filters.agent_id)
                   and (filters.team_id is None or a.team_id == filters.team_id)]
        team_of = {a.id: a.team_id for a in visible}
        if dimension == "agent":
            for a in visible:
                names[str(a.id)] = (str(a.id), a.display_name)
        else:
            team_names = await _names(session, tenant_id, Team, Team.name, None)
            for team_id, name in team_names.items():
                if (scope.everything or team_id in scope.team_ids) and (filters.team_id is None or team_id == filters.team_id):
                    names[str(team_id)] = (str(team_id), name)
        for row in await _rollups(session, tenant_id, "agent", [a.id for a in visible], period, interval):
            key = str(row.key_id) if dimension == "agent" else str(team_of.get(row.key_id))
            if key in names:
                add(key, row.bucket_start, row)

    periods = [p.isoformat() for p in all_periods(period, interval)]
    keys_with_data = {key for key, _ in sums}
    ordered = sorted(names.items(), key=lambda kv: (kv[1][1].lower(), kv[0]))
    rows: list[dict[str, Any]] = []
    for key, (key_id, name) in ordered:
        if dimension != "tenant" and key not in keys_with_data:
            continue
        for start in periods:
            counters = sums.get((key, start)) or _zero()
            rows.append({"period_start": start, "id": key_id, "name": name, **kpis(counters)})
    return {
        "time_zone": zone.key, "dimension": dimension, "interval": interval,
        "from": period.first.isoformat(), "to": period.last.isoformat(),
        "columns": [{"key": k.key, "label": k.label, "unit": k.unit} for k in KPIS],
        "rows": rows,
    }


async def rankings(
    session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, metric: str, first: str | None, last: str | None,
    order: str = "desc",
) -> dict[str, Any]:
    """Agents ranked by one KPI over the period (agents without a value are left out)."""
    if metric not in KPI_KEYS:
        raise Problem(400, "unknown_metric", f"metric must be one of {', '.join(KPI_KEYS)}")
    if order not in ("asc", "desc"):
        raise Problem(400, "invalid_order", "order must be asc or desc")
    zone = await tenant_zone(session, tenant_id=tenant_id)
    period = parse_period(zone, first, last, max_days=MAX_DAYS["day"])
    scope = await principal_scope(session, tenant_id=tenant_id, principal=principal)
    agents = {a.id: a.display_name for a in (await session.execute(select(Agent.id, Agent.display_name).where(Agent.tenant_id == tenant_id))).all()
              if scope.sees_agent(a.id)}
    sums: dict[uuid.UUID, dict[str, int]] = defaultdict(_zero)
    for row in await _rollups(session, tenant_id, "agent", list(agents), period):
        for name in COUNTERS:
            sums[row.key_id][name] += int(getattr(row, name))
    values = [(agent_id, kpis(counters)[metric]) for agent_id, counters in sums.items()]
    values = [(a, v) for a, v in values if v is not None]
    values.sort(key=lambda av: (-av[1] if order == "desc" else av[1], agents[av[0]].lower(), str(av[0])))  # type: ignore[operator]
    out, rank, previous = [], 0, None
    for index, (agent_id, value) in enumerate(values, start=1):
        if value != previous:
            rank, previous = index, value
        out.append({"rank": rank, "agent_id": str(agent_id), "name": agents[agent_id], "value": value})
    return {"metric": metric, "order": order, "from": period.first.isoformat(), "to": period.last.isoformat(), "rows": out}


async def repeat_callers(
    session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, first: str | None, last: str | None, min_calls: int,
) -> dict[str, Any]:
    """Callers who called at least ``min_calls`` times in the period (facts, by caller)."""
    if not 2 <= min_calls <= 1000:
        raise Problem(400, "invalid_min_calls", "min_calls must be 2 to 1000")
    zone = await tenant_zone(session, tenant_id=tenant_id)
    period = parse_period(zone, first, last, max_days=MAX_DAYS["day"])
    scope = await principal_scope(session, tenant_id=tenant_id, principal=principal)
    query = (
        select(ReportCallFact.caller, func.count(), func.min(ReportCallFact.started_at), func.max(ReportCallFact.started_at))
        .where(ReportCallFact.tenant_id == tenant_id, ReportCallFact.caller.is_not(None),
               ReportCallFact.started_at >= period.start, ReportCallFact.started_at < period.end)
        .group_by(ReportCallFact.caller)
        .having(func.count() >= min_calls)
        .order_by(func.count().desc(), ReportCallFact.caller)
        .limit(500)
    )
    if not scope.everything:
        query = query.where(ReportCallFact.queue_id.in_(scope.queue_ids or [uuid.UUID(int=0)]))
    rows = [
        {"caller": caller, "calls": calls, "first_at": first_at.astimezone(zone).isoformat(), "last_at": last_at.astimezone(zone).isoformat()}
        for caller, calls, first_at, last_at in (await session.execute(query)).all()
    ]
    return {"from": period.first.isoformat(), "to": period.last.isoformat(), "min_calls": min_calls, "rows": rows}
