"""Purging closed tenants whose retention period is over (a Dramatiq platform job).

For each closed tenant past ``purge_after``: its recordings folder
``<recordings_dir>/<tenant_id>/`` is deleted, then the tenant's files kept
elsewhere (each registered purger: kefu.webrtc deletes the tenant's recordings
in object storage), then every row of every tenant table (children first),
then the tenant itself, with a platform audit entry — all rows in one
transaction per tenant.  The job is idempotent by the state it checks: a
tenant already purged is simply no longer found, a folder or objects already
deleted are skipped, and a run that failed before commit (a purger that
raised included) is redone whole by the job's retries.
A tenant whose client tenants still exist waits until they are purged.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.admin.export import exported_tables
from kefu.platform.db.base import utcnow
from kefu.platform.events import JobContext, platform_job
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.settings import Settings

PURGE_ACTOR = "system"

# Deletes one tenant's files that live outside the database and the local
# recordings folder; idempotent (nothing left is not an error).
TenantFilesPurger = Callable[[Settings, uuid.UUID], Awaitable[object]]

# Filled by the contexts installed in this process (kefu.platform may not
# import them): the purge runs as a job, which sees settings but no runtime.
_tenant_files_purgers: dict[str, TenantFilesPurger] = {}


def register_tenant_files_purger(name: str, purger: TenantFilesPurger) -> None:
    """Have the tenant purge call ``purger(settings, tenant_id)`` (idempotent by ``name``)."""
    _tenant_files_purgers[name] = purger


async def due_tenants(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Tenant.id).where(Tenant.status == TenantStatus.CLOSED, Tenant.purge_after <= now).order_by(Tenant.purge_after)
    )
    return list(rows)


async def purge_tenant(session: AsyncSession, *, tenant_id: uuid.UUID, settings: Settings, now: datetime) -> bool:
    """Delete one due tenant entirely; False when it is not (or no longer) due."""
    tenant = await session.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
    if tenant is None or tenant.status != TenantStatus.CLOSED or tenant.purge_after is None or tenant.purge_after > now:
        return False
    if await session.scalar(select(func.count()).select_from(Tenant).where(Tenant.parent_id == tenant_id)):
        return False
    folder = settings.recordings_dir / str(tenant_id)
    if folder.is_dir():
        shutil.rmtree(folder)
    files = {name: await purger(settings, tenant_id) for name, purger in _tenant_files_purgers.items()}
    counts: dict[str, int] = {}
    for table in reversed(exported_tables()):
        result = await session.execute(delete(table).where(table.c.tenant_id == tenant_id))
        if result.rowcount:
            counts[table.name] = result.rowcount
    slug = tenant.slug
    await session.delete(tenant)
    await session.flush()
    await audit.record_platform(
        session, actor=PURGE_ACTOR, action="tenant.purged", target=f"tenant:{tenant_id}", detail={"slug": slug, "rows": counts, "files": files}
    )
    return True


@platform_job(reason="purge closed tenants past retention", name="kefu.platform.admin.purge_closed_tenants", max_retries=5)
async def purge_closed_tenants(job: JobContext, session: AsyncSession, *, now: str | None = None) -> None:
    moment = datetime.fromisoformat(now) if now else utcnow()
    for tenant_id in await due_tenants(session, now=moment):
        async with job.db.platform_session(reason=f"purge tenant {tenant_id}") as tenant_session:
            await purge_tenant(tenant_session, tenant_id=tenant_id, settings=job.settings, now=moment)
