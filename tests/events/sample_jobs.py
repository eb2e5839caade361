"""Jobs used only by the tests.  They report what they saw into ``SEEN`` (worker threads write, tests read after draining)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.events import JobContext, emit, tenant_job
from kefu.platform.models import User
from tests.events.sample_events import WidgetPinged

SEEN: list[dict[str, Any]] = []
FAILURES_LEFT: dict[str, int] = {}
_lock = threading.Lock()


def report(**values: Any) -> None:
    with _lock:
        SEEN.append(values)


@tenant_job(name="tests.inspect_tenant_context", key=lambda kw: f"inspect:{kw['probe']}")
async def inspect_tenant_context(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, probe: str) -> None:
    setting = None
    if job.db.is_postgres:
        setting = await session.scalar(text("select current_setting('kefu.tenant_id', true)"))
    # No tenant filter on purpose: on PostgreSQL row-level security must do it.
    emails = sorted((await session.scalars(select(User.email))).all())
    report(probe=probe, tenant_id=tenant_id, setting=setting, emails=emails, key=job.key)


@tenant_job(name="tests.flaky", min_backoff_ms=1, max_backoff_ms=5, max_retries=5)
async def flaky(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, probe: str) -> None:
    with _lock:
        left = FAILURES_LEFT.get(probe, 0)
        FAILURES_LEFT[probe] = left - 1
    if left > 0:
        raise ConnectionError(f"transient failure, {left} left")
    report(probe=probe, tenant_id=tenant_id, retries=job.retries)


@tenant_job(name="tests.ping_widget", key=lambda kw: f"widget:{kw['widget_id']}")
async def ping_widget(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, widget_id: str) -> None:
    await emit(session, WidgetPinged(tenant_id=tenant_id, widget_id=uuid.UUID(widget_id), note="from a job"))
    report(probe=f"widget:{widget_id}", tenant_id=tenant_id)
