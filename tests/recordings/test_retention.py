"""Retention per tenant and per queue: the policy API, and the purge job that deletes the
files and rows of expired recordings (never those of a call under legal hold), batched,
idempotent, audited, and safe against a crash between the file and the row."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from recordings_support import T0, RecordedCall, Tenant, add_queue, audit_entries, call_count, recorded_call, recording_rows
from sqlalchemy import select, update

from kefu.platform.events import enqueue
from kefu.platform.events.models import JobRun
from kefu.platform.models import Tenant as TenantRow
from kefu.tenants.recordings.models import RecordingPolicy
from kefu.tenants.recordings.retention import RecordingRetentionScheduler, purge_expired_recordings

RETENTION = "/api/v1/recordings/retention"
DAY = timedelta(days=1)


def scheduler_of(runtime: Any) -> RecordingRetentionScheduler:
    [scheduler] = [s for s in runtime.services if isinstance(s, RecordingRetentionScheduler)]
    return scheduler


async def run_retention(runtime: Any, now: Any = None) -> int:
    """One scheduler tick, and the jobs it queued run to the end."""
    queued = await scheduler_of(runtime).tick(now)
    await runtime.components["jobs"].drain()
    return queued


async def put(client: Any, tenant: Tenant, path: str, days: Any, role: str = "tenant_admin") -> Any:
    return await client.put(path, json={"retention_days": days}, headers=tenant.headers(role))


async def policy_rows(tenant: Tenant) -> list[tuple[uuid.UUID | None, int | None]]:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        rows = await session.execute(select(RecordingPolicy.queue_id, RecordingPolicy.retention_days).where(RecordingPolicy.tenant_id == tenant.id))
        return sorted(rows.all(), key=str)


# --- the policy ----------------------------------------------------------------------


async def test_admins_set_the_tenants_period_and_queue_overrides(client: Any, acme: Tenant) -> None:
    support, sales = await add_queue(client, acme, "Support"), await add_queue(client, acme, "Sales")
    assert (await client.get(RETENTION, headers=acme.headers())).json() == {"retention_days": None, "queues": []}
    assert (await put(client, acme, RETENTION, 30)).json() == {"retention_days": 30, "queues": []}
    await put(client, acme, f"{RETENTION}/queues/{support}", 7)
    response = await put(client, acme, f"{RETENTION}/queues/{sales}", None)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "retention_days": 30,
        "queues": [{"queue_id": str(sales), "queue_name": "Sales", "retention_days": None},
                   {"queue_id": str(support), "queue_name": "Support", "retention_days": 7}],
    }
    # The same value again changes nothing and writes nothing.
    await put(client, acme, RETENTION, 30)
    deleted = await client.delete(f"{RETENTION}/queues/{sales}", headers=acme.headers())
    assert deleted.status_code == 200
    assert deleted.json()["queues"] == [{"queue_id": str(support), "queue_name": "Support", "retention_days": 7}]
    assert (await client.delete(f"{RETENTION}/queues/{sales}", headers=acme.headers())).status_code == 200
    assert (await put(client, acme, RETENTION, None)).json()["retention_days"] is None
    changes = [(e.target, e.detail["retention_days"], e.detail["previous_retention_days"]) for e in await audit_entries(acme, "recording.retention_changed")]
    assert changes == [
        (f"tenant:{acme.id}", 30, None),
        (f"queue:{support}", 7, None),
        (f"queue:{sales}", None, None),
        (f"queue:{sales}", "tenant", None),
        (f"tenant:{acme.id}", None, 30),
    ]
    # Deleting a queue deletes its override.
    assert (await client.delete(f"/api/v1/queues/{support}", headers=acme.headers())).status_code == 204
    assert await policy_rows(acme) == [(None, None)]


@pytest.mark.parametrize(("days", "status", "code"), [
    (0, 400, "invalid_retention_days"), (-1, 400, "invalid_retention_days"), (3651, 400, "invalid_retention_days"),
    ("thirty", 400, "validation_error"), (True, 400, "validation_error"), (2.5, 400, "validation_error"), ("0", 400, "invalid_retention_days"),
])
async def test_a_period_out_of_range_is_refused_and_nothing_is_stored(
    client: Any, acme: Tenant, days: Any, status: int, code: str
) -> None:
    queue = await add_queue(client, acme, "Support")
    await put(client, acme, RETENTION, 90)
    before = await policy_rows(acme)
    for path in (RETENTION, f"{RETENTION}/queues/{queue}"):
        response = await put(client, acme, path, days)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert await policy_rows(acme) == before
    assert (await put(client, acme, RETENTION, 1)).status_code == 200
    assert (await put(client, acme, RETENTION, 3650)).status_code == 200


async def test_only_recordings_managers_set_retention_and_only_for_their_own_queues(client: Any, acme: Tenant, globex: Tenant) -> None:
    theirs = await add_queue(client, globex, "Globex support")
    for role in ("supervisor", "qa_reviewer"):
        response = await put(client, acme, RETENTION, 30, role=role)
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    for method in ("PUT", "DELETE"):
        response = await client.request(method, f"{RETENTION}/queues/{theirs}", json={"retention_days": 1} if method == "PUT" else None,
                                        headers=acme.headers())
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert await policy_rows(acme) == [] and await policy_rows(globex) == []


# --- the purge -----------------------------------------------------------------------


@pytest.fixture
async def aged_floor(client: Any, acme: Tenant, globex: Tenant) -> dict[str, Any]:
    """Acme keeps recordings 30 days, Support's 7, Archive's forever; calls of every age."""
    support, sales, archive = [await add_queue(client, acme, n) for n in ("Support", "Sales", "Archive")]
    await put(client, acme, RETENTION, 30)
    await put(client, acme, f"{RETENTION}/queues/{support}", 7)
    await put(client, acme, f"{RETENTION}/queues/{archive}", None)

    async def ended_ago(tenant: Tenant, days: float, **kwargs: Any) -> RecordedCall:
        # Ended exactly ``days`` ago: started 10 s + 60 s earlier.
        return await recorded_call(tenant, started_at=T0 - days * DAY - timedelta(seconds=70), **kwargs)

    calls = {
        "sales_40d": await ended_ago(acme, 40, queue_id=sales),
        "no_queue_31d": await ended_ago(acme, 31),
        "sales_29d": await ended_ago(acme, 29, queue_id=sales),
        "support_8d": await ended_ago(acme, 8, queue_id=support),
        "support_6d": await ended_ago(acme, 6, queue_id=support),
        "archive_400d": await ended_ago(acme, 400, queue_id=archive),
        "held_support_100d": await ended_ago(acme, 100, queue_id=support),
    }
    hold = await client.put(f"/api/v1/calls/{calls['held_support_100d'].id}/legal-hold", json={"reason": "case 42"}, headers=acme.headers())
    assert hold.status_code == 200
    theirs = await ended_ago(globex, 400)  # Globex has no policy: keeps everything
    return {"calls": calls, "theirs": theirs}


async def test_the_purge_deletes_expired_files_and_rows_and_keeps_everything_else(
    client: Any, runtime: Any, acme: Tenant, globex: Tenant, aged_floor: dict[str, Any]
) -> None:
    calls: dict[str, RecordedCall] = aged_floor["calls"]
    expired = ["sales_40d", "no_queue_31d", "support_8d"]
    kept = [name for name in calls if name not in expired]
    assert await run_retention(runtime) == 1  # Acme only: Globex has no policy
    for name, call in calls.items():
        for party in ("caller", "agent"):
            assert call.path(party).exists() == (name in kept), (name, party)
        assert not (name in expired and call.path().parent.exists()), name
    assert await recording_rows(acme) == {call.recording_id(p) for n in kept for p in ("caller", "agent") for call in [calls[n]]}
    assert await call_count(acme) == len(calls)  # the calls stay: only their audio goes
    assert aged_floor["theirs"].path().exists() and len(await recording_rows(globex)) == 2
    [entry] = await audit_entries(acme, "recording.purged")
    assert entry.actor == "system" and entry.target == f"tenant:{acme.id}"
    assert {k: entry.detail[k] for k in ("calls", "recordings", "files", "batch")} == {"calls": 3, "recordings": 6, "files": 6, "batch": 0}
    assert sorted(entry.detail["call_ids"]) == sorted(str(calls[n].id) for n in expired)
    assert await audit_entries(globex, "recording.purged") == []
    # The purged calls leave the search; the kept ones are still there.
    listed = (await client.get("/api/v1/recordings", headers=acme.headers())).json()["items"]
    assert sorted(i["call_id"] for i in listed) == sorted(str(calls[n].id) for n in kept)
    # The same tick again is a duplicate (nothing runs twice); a later tick finds nothing more.
    await run_retention(runtime)
    await run_retention(runtime, T0 + timedelta(hours=2))
    assert len(await audit_entries(acme, "recording.purged")) == 1
    # Released from its hold, the old call goes at the next run.
    assert (await client.delete(f"/api/v1/calls/{calls['held_support_100d'].id}/legal-hold", headers=acme.headers())).status_code == 204
    await run_retention(runtime, T0 + timedelta(hours=3))
    assert not calls["held_support_100d"].path().exists()
    assert [e.detail["calls"] for e in await audit_entries(acme, "recording.purged")] == [3, 1]


async def test_a_large_backlog_is_purged_in_batches_one_message_each(client: Any, runtime: Any, acme: Tenant) -> None:
    await put(client, acme, RETENTION, 30)
    old = [await recorded_call(acme, started_at=T0 - (40 + i) * DAY) for i in range(5)]
    fresh = await recorded_call(acme, started_at=T0 - DAY)
    async with runtime.db.tenant_session(tenant_id=acme.id) as session:
        await enqueue(session, purge_expired_recordings, tenant_id=acme.id, tick="backlog", now=T0.isoformat(), batch=0, batch_size=2)
    await runtime.components["jobs"].drain()
    assert [c for c in old if c.path().exists()] == []
    assert fresh.path().exists()
    # Oldest first, two calls a batch; the third batch finds one call and stops.
    assert [(e.detail["batch"], e.detail["calls"]) for e in await audit_entries(acme, "recording.purged")] == [(0, 2), (1, 2), (2, 1)]
    assert [sorted(e.detail["call_ids"]) for e in await audit_entries(acme, "recording.purged")][0] == sorted(str(c.id) for c in old[3:])
    async with runtime.db.tenant_session(tenant_id=acme.id) as session:
        keys = set(await session.scalars(select(JobRun.key).where(JobRun.tenant_id == acme.id)))
    assert keys == {"recording-retention:backlog:0", "recording-retention:backlog:1", "recording-retention:backlog:2"}


async def test_a_crash_between_the_file_and_the_row_answers_file_missing_and_the_next_run_finishes(
    client: Any, runtime: Any, acme: Tenant
) -> None:
    await put(client, acme, RETENTION, 30)
    call = await recorded_call(acme, started_at=T0 - 40 * DAY)
    # What a crash after the store deleted the files and before the rows were deleted leaves behind:
    for party in ("caller", "agent"):
        call.path(party).unlink()
    played = await client.get(f"/api/v1/recordings/{call.recording_id()}/media", headers=acme.headers())
    assert (played.status_code, played.json()["code"]) == (404, "recording_file_missing")
    link = (await client.post(f"/api/v1/recordings/{call.recording_id()}/links", json={"purpose": "listen"}, headers=acme.headers())).json()
    through_link = await client.get(link["url"])
    assert (through_link.status_code, through_link.json()["code"]) == (404, "recording_file_missing")
    await run_retention(runtime)
    assert await recording_rows(acme) == set()
    [entry] = await audit_entries(acme, "recording.purged")
    assert (entry.detail["recordings"], entry.detail["files"]) == (2, 0)


async def test_the_scheduler_waits_an_interval_and_queues_only_tenants_whose_policy_expires_something(
    client: Any, runtime: Any, acme: Tenant, globex: Tenant
) -> None:
    scheduler = scheduler_of(runtime)
    assert scheduler.first_delay_s == scheduler.interval_s == 3600  # a worker's start writes nothing
    assert await scheduler.tick() == 0
    queue = await add_queue(client, globex, "Support")
    await put(client, globex, f"{RETENTION}/queues/{queue}", None)  # keeps forever: nothing to purge
    assert await scheduler.tick() == 0
    await put(client, globex, f"{RETENTION}/queues/{queue}", 10)
    await put(client, acme, RETENTION, 10)
    assert await scheduler.tick(T0) == 2
    await runtime.components["jobs"].drain()
    # A closed tenant is not purged by retention (its whole data goes with the tenant purge).
    async with runtime.db.platform_session(reason="test: close acme") as session:
        await session.execute(update(TenantRow).where(TenantRow.id == acme.id).values(status="closed"))
    assert await scheduler.tick(T0 + timedelta(hours=1)) == 1
    await runtime.components["jobs"].drain()
    async with runtime.db.platform_session(reason="test: job runs") as session:
        runs = (await session.execute(select(JobRun.tenant_id, JobRun.key).where(JobRun.key.like("recording-retention:%")))).all()
    first, second = (f"recording-retention:{int(t.timestamp() // 3600)}:0" for t in (T0, T0 + timedelta(hours=1)))
    assert sorted(runs, key=str) == sorted([(acme.id, first), (globex.id, first), (globex.id, second)], key=str)


async def test_a_hold_placed_while_a_purge_starts_keeps_the_calls_recordings(client: Any, runtime: Any, acme: Tenant) -> None:
    """The hold's transaction has locked the call and written the hold; it commits just as
    the purge begins.  The purge (locks first, then reads) sees the hold and keeps the files."""
    from sqlalchemy import event as sqlalchemy_event
    from sqlalchemy.util import await_only

    from kefu.tenants.recordings.holds import place_hold
    from kefu.tenants.recordings.retention import purge_expired
    from kefu.tenants.recordings.store import store_of

    await put(client, acme, RETENTION, 30)
    held, other = await recorded_call(acme, started_at=T0 - 40 * DAY), await recorded_call(acme, started_at=T0 - 41 * DAY)
    engine = runtime.db.engine.sync_engine
    async with runtime.db.tenant_session(tenant_id=acme.id) as writer:
        await place_hold(writer, tenant_id=acme.id, call_id=held.id, reason="just in time", actor="user:test", now=T0)
        committed: list[str] = []

        def commit_the_hold_as_the_purge_begins(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("UPDATE RECORDING_POLICIES") and not committed:
                committed.append(statement)
                await_only(writer.commit())

        sqlalchemy_event.listen(engine, "before_cursor_execute", commit_the_hold_as_the_purge_begins)
        try:
            async with runtime.db.tenant_session(tenant_id=acme.id) as session:
                result = await purge_expired(session, tenant_id=acme.id, store=store_of(runtime), now=T0)
        finally:
            sqlalchemy_event.remove(engine, "before_cursor_execute", commit_the_hold_as_the_purge_begins)
    assert committed
    assert (result.calls, result.files) == (1, 2)
    assert held.path().exists() and held.path("agent").exists()
    assert not other.path().exists()
