"""The reports API around the numbers: CSV and XLSX exports, problem details for bad
input, the supervisor's scope, rankings, repeat callers, the rebuild (queued, audited,
run by the job worker), the scheduler's upkeep, agent shifts, and a call event that
commits while the upkeep is running."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from reports_support import (
    Tenant,
    add_agent,
    add_queue,
    add_team,
    ev,
    log,
    new_call,
    presence,
    report,
    row_of,
    run_upkeep,
)
from sqlalchemy import func, select, text, update

from kefu.platform.events import enqueue
from kefu.platform.events.models import JobRun
from kefu.platform.models import AuditEntry
from kefu.tenants.models import QueueSupervisor, ReportCallFact, ReportDirtyCall
from kefu.tenants.reports import upkeep
from kefu.tenants.reports.upkeep import ReportRollupScheduler

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
DAY = {"from": "2026-11-23", "to": "2026-11-23"}


def at(hh: int, mm: int, ss: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=UTC)


async def answered_call(t: Tenant, queue: uuid.UUID, agent: uuid.UUID, start: datetime, *, wait_s: int, talk_s: int, caller: str = "Carol") -> uuid.UUID:
    call = await new_call(t, started_at=start, caller_ref=caller)
    answered = start.replace(second=0) if wait_s == 0 else datetime.fromtimestamp(start.timestamp() + wait_s, UTC)
    await log(t, call, ev("queued", start, queue_id=queue), ev("answered", answered, agent_id=agent),
              ev("ended", datetime.fromtimestamp(answered.timestamp() + talk_s, UTC), reason="caller_hangup"))
    return call


class World:
    ann: uuid.UUID
    bob: uuid.UUID
    cy: uuid.UUID
    support: uuid.UUID
    sales: uuid.UUID
    blue: uuid.UUID


async def world(t: Tenant) -> World:
    """Ann and Bob in team Blue (led by the supervisor), Cy in no team; queues Support and Sales,
    the supervisor assigned to Support only."""
    w = World()
    w.ann, w.bob, w.cy = await add_agent(t, "Ann"), await add_agent(t, "Bob"), await add_agent(t, "Cy")
    w.support, w.sales = await add_queue(t, "Support"), await add_queue(t, "Sales")
    w.blue = await add_team(t, "Blue", [w.ann, w.bob], supervisor=t.users["supervisor"])
    async with t.runtime.db.tenant_session(tenant_id=t.id) as session:  # as kefu.tenants.supervision stores it
        session.add(QueueSupervisor(tenant_id=t.id, queue_id=w.support, user_id=t.users["supervisor"]))
    # Ann: 3 calls in Support (talk 60, 120, 180 s → AHT 120); Bob: 1 in Support (talk 30 s); Cy: 1 in Sales (talk 90 s).
    await answered_call(t, w.support, w.ann, at(9, 0), wait_s=5, talk_s=60, caller="+8613800000001")
    await answered_call(t, w.support, w.ann, at(9, 10), wait_s=5, talk_s=120, caller="+8613800000001")
    await answered_call(t, w.support, w.ann, at(9, 20), wait_s=5, talk_s=180, caller="+8613800000002")
    await answered_call(t, w.support, w.bob, at(9, 30), wait_s=40, talk_s=30, caller="+8613800000001")
    await answered_call(t, w.sales, w.cy, at(9, 40), wait_s=5, talk_s=90, caller="+8613800000002")
    await run_upkeep(t, at(12, 0))
    return w


@BOTH
async def test_csv_and_xlsx_exports_hold_the_json_table(acme: Tenant) -> None:
    w = await world(acme)
    params = {"dimension": "agent", "interval": "day", **DAY}
    body = await report(acme, **params)
    names = [r["name"] for r in body["rows"]]
    assert names == ["Ann", "Bob", "Cy"]

    response = await acme.get("/api/v1/reports", format="csv", **params)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="report-agent-day-2026-11-23-2026-11-23.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["period_start", "id", "name", "total_calls", "answered"]
    assert rows[1][:5] == ["2026-11-23T00:00:00+00:00", str(w.ann), "Ann", "3", "3"]
    aht = rows[0].index("aht_s")
    assert [r[aht] for r in rows[1:]] == ["120.0", "30.0", "90.0"]
    adherence = rows[0].index("adherence")
    assert rows[1][adherence] == ""  # null: no shift

    response = await acme.get("/api/v1/reports", format="xlsx", **params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]  # a sheet is as wide as its widest row
    values[0] = [v for v in values[0] if v is not None]
    assert values[0] == ["Time zone: UTC", "2026-11-23 – 2026-11-23"]
    assert values[1][:4] == ["period_start", "id", "name", "total_calls"]
    assert [(r[2], r[values[1].index("aht_s")], r[values[1].index("adherence")]) for r in values[2:]] == [
        ("Ann", 120.0, None), ("Bob", 30.0, None), ("Cy", 90.0, None),
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bad_input_answers_problem_details_with_stable_codes(acme: Tenant, globex: Tenant) -> None:
    foreign_queue = await add_queue(globex, "Theirs")
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("/api/v1/reports", {"interval": "minute", **DAY}, 400, "invalid_interval"),
        ("/api/v1/reports", {"dimension": "galaxy", **DAY}, 400, "invalid_dimension"),
        ("/api/v1/reports", {"from": "23/11/2026", "to": "2026-11-23"}, 400, "invalid_period"),
        ("/api/v1/reports", {"from": "2026-11-24", "to": "2026-11-23"}, 400, "invalid_period"),
        ("/api/v1/reports", {"interval": "30m", "from": "2026-10-01", "to": "2026-11-23"}, 400, "period_too_long"),
        ("/api/v1/reports", {"interval": "day", "from": "2024-01-01", "to": "2026-11-23"}, 400, "period_too_long"),
        ("/api/v1/reports", {"format": "pdf", **DAY}, 400, "invalid_format"),
        ("/api/v1/reports", {"dimension": "agent", "queue_id": str(uuid.uuid4()), **DAY}, 404, "not_found"),
        ("/api/v1/reports", {"dimension": "queue", "queue_id": str(foreign_queue), **DAY}, 404, "not_found"),
        ("/api/v1/reports/rankings", {"metric": "happiness", **DAY}, 400, "unknown_metric"),
        ("/api/v1/reports/rankings", {"metric": "aht_s", "order": "up", **DAY}, 400, "invalid_order"),
        ("/api/v1/reports/repeat-callers", {"min_calls": 1, **DAY}, 400, "invalid_min_calls"),
    ]
    for path, params, status, code in cases:
        response = await acme.get(path, **params)
        assert (response.status_code, response.json().get("code")) == (status, code), (path, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    queue = await add_queue(acme, "Mine")
    response = await acme.get("/api/v1/reports", dimension="agent", queue_id=str(queue), **DAY)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_filter")
    # An agent may not read reports at all.
    assert (await acme.client.get("/api/v1/reports", params=DAY, headers=acme.headers("agent"))).status_code == 403


@BOTH
async def test_a_supervisor_sees_only_their_teams_agents_and_their_queues(acme: Tenant) -> None:
    w = await world(acme)
    agents = await report(acme, "supervisor", dimension="agent", interval="day", **DAY)
    assert [r["name"] for r in agents["rows"]] == ["Ann", "Bob"]
    queues = await report(acme, "supervisor", dimension="queue", interval="day", **DAY)
    assert [(r["name"], r["total_calls"]) for r in queues["rows"]] == [("Support", 4)]
    teams = await report(acme, "supervisor", dimension="team", interval="day", **DAY)
    assert [(r["name"], r["answered"]) for r in teams["rows"]] == [("Blue", 4)]
    response = await acme.get("/api/v1/reports", "supervisor", dimension="tenant", **DAY)
    assert (response.status_code, response.json()["code"]) == (403, "outside_supervision_scope")
    response = await acme.get("/api/v1/reports", "supervisor", dimension="agent", agent_id=str(w.cy), **DAY)
    assert (response.status_code, response.json()["code"]) == (403, "outside_supervision_scope")
    response = await acme.get("/api/v1/reports", "supervisor", dimension="queue", queue_id=str(w.sales), **DAY)
    assert (response.status_code, response.json()["code"]) == (403, "outside_supervision_scope")
    ranked = (await acme.get("/api/v1/reports/rankings", "supervisor", metric="answered", **DAY)).json()
    assert [r["name"] for r in ranked["rows"]] == ["Ann", "Bob"]
    # Repeat callers of the supervisor's queues only: +…01 called Support three times, +…02 once there.
    repeat = (await acme.get("/api/v1/reports/repeat-callers", "supervisor", **DAY)).json()
    assert [(r["caller"], r["calls"]) for r in repeat["rows"]] == [("+8613800000001", 3)]
    # A report viewer sees the whole tenant.
    whole = await report(acme, "report_viewer", dimension="tenant", **DAY)
    assert row_of(whole, "2026-11-23T00:00:00+00:00")["total_calls"] == 5


@BOTH
async def test_rankings_and_repeat_callers(acme: Tenant) -> None:
    w = await world(acme)
    ranked = (await acme.get("/api/v1/reports/rankings", metric="aht_s", **DAY)).json()
    # AHT: Ann 120, Cy 90, Bob 30.
    assert ranked["rows"] == [
        {"rank": 1, "agent_id": str(w.ann), "name": "Ann", "value": 120.0},
        {"rank": 2, "agent_id": str(w.cy), "name": "Cy", "value": 90.0},
        {"rank": 3, "agent_id": str(w.bob), "name": "Bob", "value": 30.0},
    ]
    ascending = (await acme.get("/api/v1/reports/rankings", metric="asa_s", order="asc", **DAY)).json()
    # ASA: Ann 5, Cy 5 (tied, by name), Bob 40.
    assert [(r["rank"], r["name"], r["value"]) for r in ascending["rows"]] == [(1, "Ann", 5.0), (1, "Cy", 5.0), (3, "Bob", 40.0)]
    repeat = (await acme.get("/api/v1/reports/repeat-callers", min_calls=2, **DAY)).json()
    assert repeat["rows"] == [
        {"caller": "+8613800000001", "calls": 3, "first_at": "2026-11-23T09:00:00+00:00", "last_at": "2026-11-23T09:30:00+00:00"},
        {"caller": "+8613800000002", "calls": 2, "first_at": "2026-11-23T09:20:00+00:00", "last_at": "2026-11-23T09:40:00+00:00"},
    ]
    assert (await acme.get("/api/v1/reports/repeat-callers", min_calls=3, **DAY)).json()["rows"][0]["calls"] == 3


@BOTH
async def test_the_rebuild_is_queued_audited_and_gives_the_same_numbers(acme: Tenant) -> None:
    await world(acme)
    before = await report(acme, dimension="agent", interval="hour", **DAY)
    assert (await acme.client.post("/api/v1/reports/rebuild", headers=acme.headers("supervisor"))).status_code == 403
    response = await acme.client.post("/api/v1/reports/rebuild", headers=acme.headers())
    assert response.status_code == 202 and response.json()["status"] == "queued"
    request_id = response.json()["request_id"]
    await acme.runtime.components["jobs"].drain()
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        actions = [(e.action, e.detail.get("request_id"), e.detail.get("calls")) for e in await session.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == acme.id, AuditEntry.action.like("reports.%")).order_by(AuditEntry.id)
        )]
    assert actions == [("reports.rebuild_requested", request_id, None), ("reports.rebuilt", request_id, 5)]
    assert await report(acme, dimension="agent", interval="hour", **DAY) == before


@BOTH
async def test_the_scheduler_queues_one_upkeep_per_tenant_and_the_job_counts_new_calls(acme: Tenant, globex: Tenant) -> None:
    queue, agent = await add_queue(acme, "Support"), await add_agent(acme, "Ann")
    await answered_call(acme, queue, agent, at(9, 0), wait_s=5, talk_s=60)
    [scheduler] = [s for s in acme.runtime.services if isinstance(s, ReportRollupScheduler)]
    assert await scheduler.tick(at(12, 0)) == 2
    await acme.runtime.components["jobs"].drain()
    assert row_of(await report(acme, **DAY), "2026-11-23T00:00:00+00:00")["answered"] == 1
    assert row_of(await report(globex, **DAY), "2026-11-23T00:00:00+00:00")["answered"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_backlog_larger_than_a_batch_is_worked_through_batch_by_batch(acme: Tenant) -> None:
    queue, agent = await add_queue(acme, "Support"), await add_agent(acme, "Ann")
    for minute in range(5):
        await answered_call(acme, queue, agent, at(9, minute), wait_s=5, talk_s=60)
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        await enqueue(session, upkeep.update_report_rollups, tenant_id=acme.id, tick="backlog", now=at(12, 0).isoformat(), batch=0, batch_size=2)
    await acme.runtime.components["jobs"].drain()
    # Batches of 2, 2 and 1 (the third is not full, so nothing more is queued).
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        keys = sorted((await session.scalars(select(JobRun.key).where(JobRun.key.like("report-rollups:backlog:%")))).all())
        assert (await session.scalar(select(func.count()).select_from(ReportDirtyCall))) == 0
    assert keys == ["report-rollups:backlog:0", "report-rollups:backlog:1", "report-rollups:backlog:2"]
    assert row_of(await report(acme, **DAY), "2026-11-23T00:00:00+00:00")["answered"] == 5


@BOTH
async def test_an_agent_shift_set_through_the_api_counts_from_then_on(acme: Tenant, globex: Tenant, traveller: Any) -> None:
    agent = await add_agent(acme, "Ann")
    schedule = await acme.client.post("/api/v1/schedules", json={
        "name": "Day shift", "time_zone": "UTC", "weekly": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    }, headers=acme.headers())
    assert schedule.status_code == 201, schedule.text
    schedule_id = schedule.json()["id"]
    theirs = await globex.client.post("/api/v1/schedules", json={"name": "Theirs", "time_zone": "UTC", "weekly": {}}, headers=globex.headers())
    path = f"/api/v1/reports/agents/{agent}/shift"
    response = await acme.client.put(path, json={"schedule_id": theirs.json()["id"]}, headers=acme.headers())
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert (await acme.client.put(path, json={"schedule_id": schedule_id}, headers=acme.headers("supervisor"))).status_code == 403
    # Now is 2026-12-01 09:00 (time-machine): the shift counts from then.
    response = await acme.client.put(path, json={"schedule_id": schedule_id}, headers=acme.headers())
    assert response.json() == {"agent_id": str(agent), "schedule_id": schedule_id}
    await presence(acme, agent, datetime(2026, 12, 1, 9, 0, tzinfo=UTC), "available")
    await presence(acme, agent, datetime(2026, 12, 1, 10, 0, tzinfo=UTC), "offline")
    await run_upkeep(acme, datetime(2026, 12, 2, tzinfo=UTC))
    day = row_of(await report(acme, dimension="agent", **{"from": "2026-12-01", "to": "2026-12-01"}), "2026-12-01T00:00:00+00:00")
    # Scheduled 09:00 (the shift's start, a few seconds after T0 under time-machine) to 18:00 ≈ 9 h, available 1 h of it → 11.1 %.
    assert day["adherence"] == 11.1


async def _lock_waiters(t: Tenant) -> int:
    """Backends of this database waiting for a row lock right now."""
    async with t.runtime.db.tenant_session(tenant_id=t.id) as session:
        return int(await session.scalar(text(
            "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'"
        )) or 0)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_appends_racing_the_upkeep_are_never_lost(acme: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL (on SQLite the upkeep holds the write lock from its first statement, so
    nothing can race it).  Two races: a marker held by an append transaction still open is
    skipped (SKIP LOCKED) and counted by the next run; an append that reaches a marker the
    run holds waits for the run's commit, then writes a fresh marker — its event, which the
    run could not see, is counted by the next run."""
    queue, agent = await add_queue(acme, "Support"), await add_agent(acme, "Ann")
    call = await answered_call(acme, queue, agent, at(9, 0), wait_s=5, talk_s=60)
    other = await answered_call(acme, queue, agent, at(9, 5), wait_s=5, talk_s=60)
    real = upkeep._recompute_calls
    racing: list[asyncio.Task[None]] = []

    async def with_an_append_racing(session: Any, tenant_id: uuid.UUID, call_ids: list[uuid.UUID]) -> int:
        counted = await real(session, tenant_id, call_ids)
        waiting = await _lock_waiters(acme)
        # Another transaction appends ``call``'s after-call work while this run holds its marker.
        racing.append(asyncio.create_task(log(acme, call, ev("wrap_up_ended", at(9, 1, 35), agent_id=agent, by="agent", wrap_up_s=30.0))))
        for _ in range(2000):  # until the append is queued behind this run's lock (a condition, not a delay)
            if await _lock_waiters(acme) > waiting:
                break
        else:
            raise AssertionError("the racing append never waited for the run's lock")
        return counted

    monkeypatch.setattr(upkeep, "_recompute_calls", with_an_append_racing)
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as holder:
        # An append transaction still open holds ``other``'s marker: the run skips it.
        await holder.execute(update(ReportDirtyCall).where(ReportDirtyCall.call_id == other).values(version=ReportDirtyCall.version + 1))
        result = await run_upkeep(acme, at(12, 0))
        assert result.calls == 1
    await racing[0]
    monkeypatch.setattr(upkeep, "_recompute_calls", real)
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        assert set((await session.scalars(select(ReportDirtyCall.call_id))).all()) == {call, other}
        facts = dict((await session.execute(select(ReportCallFact.call_id, ReportCallFact.acw_ms))).all())
        assert facts == {call: 0}
    await run_upkeep(acme, at(12, 0))
    row = row_of(await report(acme, **DAY), "2026-11-23T00:00:00+00:00")
    # Two calls: talk 60 + 60 and ACW 30 over two handled → AHT 75, ACW 15.
    assert (row["answered"], row["aht_s"], row["avg_acw_s"]) == (2, 75.0, 15.0)


@BOTH
async def test_every_log_insert_marks_its_call_and_every_presence_row_its_agent_in_the_same_transaction(acme: Tenant, globex: Tenant) -> None:
    from kefu.tenants.models import ReportDirtyAgent

    async def markers(t: Tenant) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, tuple[int, datetime]]]:
        async with t.runtime.db.tenant_session(tenant_id=t.id) as session:
            calls = dict((await session.execute(
                select(ReportDirtyCall.call_id, ReportDirtyCall.version).where(ReportDirtyCall.tenant_id == t.id)
            )).all())
            agents = {a: (v, s) for a, v, s in await session.execute(
                select(ReportDirtyAgent.agent_id, ReportDirtyAgent.version, ReportDirtyAgent.since).where(ReportDirtyAgent.tenant_id == t.id)
            )}
        return calls, agents

    agent = await add_agent(acme, "Ann")
    call = await new_call(acme, started_at=at(9, 0))
    assert (await markers(acme))[0] == {call: 1}
    await log(acme, call, ev("queued", at(9, 0)), ev("answered", at(9, 1), agent_id=agent))  # one transaction, two rows
    assert (await markers(acme))[0][call] >= 2  # marked again (once on PostgreSQL: one insert statement)
    before = (await markers(acme))[0][call]
    with pytest.raises(RuntimeError):
        async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
            await call_log_append(session, acme, call, at(9, 2))
            raise RuntimeError("rolled back")
    assert (await markers(acme))[0][call] == before  # the marker rolled back with the row

    await presence(acme, agent, at(9, 5), "available")
    await presence(acme, agent, at(9, 3), "not_ready")  # an earlier change written later: since moves back
    versions, since = (await markers(acme))[1][agent]
    assert (versions, since) == (versions, at(9, 3)) and versions >= 2
    assert await markers(globex) == ({}, {})  # the markers carry the tenant of the row that made them
    async with globex.runtime.db.tenant_session(tenant_id=globex.id) as session:  # and Globex's session never sees Acme's
        seen = set((await session.scalars(select(ReportDirtyCall.tenant_id))).all()) | set((await session.scalars(select(ReportDirtyAgent.tenant_id))).all())
    assert seen <= ({globex.id} if globex.runtime.db.is_postgres else {globex.id, acme.id})


async def call_log_append(session: Any, t: Tenant, call_id: uuid.UUID, when: datetime) -> None:
    from kefu.tenants import call_log

    await call_log.lock_call(session, tenant_id=t.id, call_id=call_id)
    await call_log.append_event(session, tenant_id=t.id, call_id=call_id, type="note", actor="test", at=when, data={})
    await session.flush()
