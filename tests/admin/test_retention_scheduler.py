"""Closed tenants past retention are purged without an operator: the worker
process queues the purge on a timer (kefu.platform.admin.scheduler)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from kefu.platform.admin.scheduler import RetentionScheduler
from kefu.platform.app import create_app
from kefu.platform.db.base import utcnow
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings


def scheduler_of(runtime: Runtime) -> RetentionScheduler:
    [scheduler] = [s for s in runtime.services if isinstance(s, RetentionScheduler)]
    return scheduler


async def test_a_scheduled_tick_purges_a_closed_tenant_past_retention(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    due, kept = uuid.uuid4(), uuid.uuid4()
    async with runtime.db.platform_session(reason="test set-up") as session:
        session.add(Tenant(id=due, slug="gone", name="Gone", status=TenantStatus.CLOSED, closed_at=utcnow(),
                           purge_after=utcnow() - timedelta(seconds=1), branding={}))
        session.add(Tenant(id=kept, slug="kept", name="Kept", status=TenantStatus.CLOSED, closed_at=utcnow(),
                           purge_after=utcnow() + timedelta(days=1), branding={}))
    assert scheduler_of(runtime).interval_s == runtime.settings.purge_interval_s

    await scheduler_of(runtime).tick()
    await runtime.components["jobs"].drain()

    async with runtime.db.platform_session(reason="test check") as session:
        assert set(await session.scalars(select(Tenant.slug))) == {"kept"}


def test_only_worker_processes_run_the_scheduler(settings: Settings) -> None:
    api_only = Runtime.build(settings, process_roles=frozenset({"api"}))
    create_app(runtime=api_only)
    assert not any(isinstance(s, RetentionScheduler) for s in api_only.services)
    worker = Runtime.build(settings, process_roles=frozenset({"worker"}))
    create_app(runtime=worker)
    assert scheduler_of(worker).interval_s == 3600
