"""Dramatiq jobs: sent after commit only, run in their tenant's context, idempotent, retried."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from kefu.platform.events import enqueue
from kefu.platform.events.models import JobRun
from kefu.platform.models import User
from tests.events import sample_jobs
from tests.events.sample_jobs import SEEN, flaky, inspect_tenant_context, ping_widget
from tests.events.support import bus_of, jobs_of, make_tenant, started_runtime


class Boom(Exception):
    pass


def seen(probe: str) -> list[dict]:
    return [entry for entry in SEEN if entry["probe"] == probe]


async def add_user(runtime, tenant_id: uuid.UUID, email: str) -> None:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        session.add(User(tenant_id=tenant_id, email=email, display_name=email, status="active", failed_logins=0))


async def test_the_embedded_default_uses_an_in_process_stub_broker(sqlite_settings) -> None:
    from dramatiq.brokers.stub import StubBroker

    async with started_runtime(sqlite_settings) as runtime:
        assert isinstance(runtime.components["broker"], StubBroker)
        assert jobs_of(runtime).worker is not None


async def test_job_runs_in_its_tenant_and_sees_only_its_rows(settings, backend: str) -> None:
    async with started_runtime(settings) as runtime:
        acme = await make_tenant(runtime)
        globex = await make_tenant(runtime)
        await add_user(runtime, acme, "ann@acme.test")
        await add_user(runtime, globex, "gus@globex.test")
        probe = uuid.uuid4().hex
        async with runtime.db.tenant_session(tenant_id=acme) as session:
            key = await enqueue(session, inspect_tenant_context, tenant_id=acme, probe=probe)
        await jobs_of(runtime).drain()
        [entry] = seen(probe)
        assert key == f"inspect:{probe}"
        assert entry["tenant_id"] == acme
        assert entry["key"] == key
        if backend == "postgres":
            # Row-level security, not the job's code, kept globex's user out.
            assert entry["setting"] == str(acme)
            assert entry["emails"] == ["ann@acme.test"]
        else:
            assert entry["emails"] == ["ann@acme.test", "gus@globex.test"]  # SQLite has no RLS: services filter


async def test_job_enqueued_in_a_rolled_back_transaction_never_runs(sqlite_settings) -> None:
    async with started_runtime(sqlite_settings) as runtime:
        tenant_id = await make_tenant(runtime)
        probe = uuid.uuid4().hex
        with pytest.raises(Boom):
            async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                await enqueue(session, inspect_tenant_context, tenant_id=tenant_id, probe=probe)
                raise Boom()
        await jobs_of(runtime).drain()
        assert seen(probe) == []
        assert runtime.components["broker"].queues["kefu"].qsize() == 0


async def test_duplicate_messages_for_the_same_rows_run_once(settings) -> None:
    async with started_runtime(settings) as runtime:
        tenant_id = await make_tenant(runtime)
        probe = uuid.uuid4().hex
        for _ in range(3):
            async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                await enqueue(session, inspect_tenant_context, tenant_id=tenant_id, probe=probe)
            await jobs_of(runtime).drain()
        assert len(seen(probe)) == 1
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            keys = (await session.scalars(select(JobRun.key).where(JobRun.tenant_id == tenant_id))).all()
        assert keys == [f"inspect:{probe}"]


async def test_failing_job_is_retried_with_backoff_until_it_succeeds(sqlite_settings) -> None:
    async with started_runtime(sqlite_settings) as runtime:
        tenant_id = await make_tenant(runtime)
        probe = uuid.uuid4().hex
        sample_jobs.FAILURES_LEFT[probe] = 2
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            await enqueue(session, flaky, tenant_id=tenant_id, probe=probe)
        await jobs_of(runtime).drain()
        assert seen(probe) == [{"probe": probe, "tenant_id": tenant_id, "retries": 2}]
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            assert await session.scalar(select(func.count()).select_from(JobRun)) == 1


async def test_events_emitted_by_a_job_are_published_after_its_commit(settings) -> None:
    async with started_runtime(settings) as runtime:
        tenant_id = await make_tenant(runtime)
        widget = uuid.uuid4()
        async with bus_of(runtime).subscribe(tenant_id=tenant_id) as events:
            async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
                await enqueue(session, ping_widget, tenant_id=tenant_id, widget_id=str(widget))
            await jobs_of(runtime).drain()
            published = await events.next(timeout=10)
        assert published.event_type == "test.widget_pinged"
        assert published.data == {"tenant_id": str(tenant_id), "widget_id": str(widget), "note": "from a job"}


async def test_enqueue_refuses_a_missing_or_foreign_tenant(sqlite_settings) -> None:
    async with started_runtime(sqlite_settings) as runtime:
        mine = await make_tenant(runtime)
        other = await make_tenant(runtime)
        async with runtime.db.tenant_session(tenant_id=mine) as session:
            with pytest.raises(TypeError, match="tenant_id"):
                await enqueue(session, inspect_tenant_context, probe="x")
            with pytest.raises(ValueError, match="its own tenant"):
                await enqueue(session, inspect_tenant_context, tenant_id=other, probe="x")
            with pytest.raises(TypeError):
                await enqueue(session, inspect_tenant_context, tenant_id=mine, probe=object())
