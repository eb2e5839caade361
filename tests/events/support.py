"""Helpers for the events tests: a started runtime with only the events context, and tenants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kefu.platform.events import api as events_api
from kefu.platform.events.bus import EventBus
from kefu.platform.events.jobs import JobSystem
from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings


@asynccontextmanager
async def started_runtime(settings: Settings, *, roles: frozenset[str] = frozenset({"api", "worker"})) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, process_roles=roles)
    events_api.install(runtime)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def bus_of(runtime: Runtime) -> EventBus:
    return runtime.components["events"]


def jobs_of(runtime: Runtime) -> JobSystem:
    return runtime.components["jobs"]


async def make_tenant(runtime: Runtime, slug: str | None = None) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with runtime.db.platform_session(reason="test set-up") as session:
        session.add(Tenant(id=tenant_id, slug=slug or f"t-{tenant_id.hex[:10]}", name="Test", branding={}))
    return tenant_id
