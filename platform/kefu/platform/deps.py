"""Litestar dependencies shared by every context's controllers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.identity.principal import Principal, current_principal
from kefu.platform.models import Tenant, TenantStatus, User
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime


# Annotated names for handler signatures: `async def handler(db: DbSession, principal: CurrentPrincipal)`.
DbSession = NamedDependency[AsyncSession]
CurrentPrincipal = NamedDependency[Principal]
RuntimeDep = NamedDependency[Runtime]
TenantId = NamedDependency[uuid.UUID]
ActiveTenantId = NamedDependency[uuid.UUID]


def provide_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def provide_principal(request: Request) -> Principal:
    return current_principal(request)


def provide_tenant_id(principal: CurrentPrincipal) -> uuid.UUID:
    return principal.require_tenant()


async def provide_tenant_session(request: Request, principal: CurrentPrincipal) -> AsyncIterator[AsyncSession]:
    """One transaction in the caller's tenant, committed before the response is sent.

    A suspended or closed tenant's tokens, and a disabled user's, stop working
    at once, not when they expire (one query checks both).
    """
    runtime: Runtime = request.app.state.runtime
    tenant_id = principal.require_tenant()
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        await check_active(session, principal, tenant_id)
        yield session


async def provide_active_tenant_id(request: Request, principal: CurrentPrincipal) -> uuid.UUID:
    """The caller's tenant, once checked active (and the user too), without holding
    a transaction open: for handlers whose services open their own sessions."""
    runtime: Runtime = request.app.state.runtime
    tenant_id = principal.require_tenant()
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        await check_active(session, principal, tenant_id)
    return tenant_id


async def check_active(session: AsyncSession, principal: Principal, tenant_id: uuid.UUID) -> None:
    """A suspended or closed tenant's tokens, and a disabled user's, stop working
    at once, not when they expire (one query checks both)."""
    if principal.kind == "user":
        row = (
            await session.execute(
                select(Tenant.status, User.status)
                .select_from(Tenant)
                .outerjoin(User, (User.tenant_id == Tenant.id) & (User.id == principal.user_id))
                .where(Tenant.id == tenant_id)
            )
        ).first()
        status, user_status = (row[0], row[1]) if row is not None else (None, None)
    else:
        status = await session.scalar(select(Tenant.status).where(Tenant.id == tenant_id))
        user_status = "active"
    if status != TenantStatus.ACTIVE:
        raise Problem(403, f"tenant_{status or 'missing'}", "this tenant is not active")
    if user_status != "active":
        # A disabled (or deleted) user's access token stops working at once, not when it expires.
        raise Problem(403, "user_disabled", "this account is disabled")


SHARED_DEPENDENCIES = {
    "runtime": provide_runtime,
    "principal": provide_principal,
    "tenant_id": provide_tenant_id,
    "db": provide_tenant_session,
    "active_tenant_id": provide_active_tenant_id,
}
