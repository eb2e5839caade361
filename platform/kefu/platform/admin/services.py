"""Tenant lifecycle for platform operators: create, list, get, update, suspend, resume, close.

Every function runs in a platform session (``runtime.db.platform_session``:
the one audited path that may see every tenant) owned by the caller, takes the
target ``tenant_id`` keyword-only, and writes each action to the tenant's
audit log and to the platform audit log in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from msgspec import UnsetType
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.admin import validation
from kefu.platform.admin.schemas import CreateTenant, CreatedAdmin, CreatedTenant, TenantPage, TenantView, UpdateTenant
from kefu.platform.db.base import utcnow
from kefu.platform.events import TenantClosed, TenantResumed, TenantSuspended, TenantUpdated, emit
from kefu.platform.identity.services import create_user, invitation_link
from kefu.platform.models import Role, Tenant, TenantStatus
from kefu.platform.problems import Problem, check_text, not_found
from kefu.platform.runtime import TenantDeactivationHook
from kefu.platform.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def view(tenant: Tenant) -> TenantView:
    return TenantView(
        id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        locale=tenant.locale,
        time_zone=tenant.time_zone,
        parent_id=tenant.parent_id,
        plan=tenant.plan,
        status=tenant.status,
        branding=dict(tenant.branding or {}),
        created_at=tenant.created_at,
        suspended_at=tenant.suspended_at,
        closed_at=tenant.closed_at,
        purge_after=tenant.purge_after,
    )


async def audit_admin_action(session: AsyncSession, *, tenant_id: uuid.UUID, actor: str, action: str, detail: dict | None = None) -> None:
    target = f"tenant:{tenant_id}"
    await audit.record(session, tenant_id=tenant_id, actor=actor, action=action, target=target, detail=detail)
    await audit.record_platform(session, actor=actor, action=action, target=target, detail=detail)


async def get_tenant_row(session: AsyncSession, *, tenant_id: uuid.UUID, for_update: bool = False) -> Tenant:
    query = select(Tenant).where(Tenant.id == tenant_id)
    if for_update:
        query = query.with_for_update()
    tenant = await session.scalar(query)
    if tenant is None:
        raise not_found("tenant")
    return tenant


async def create_tenant(session: AsyncSession, *, data: CreateTenant, actor: str, settings: Settings, clock: Clock = utcnow) -> CreatedTenant:
    name = check_text(data.name, code="invalid_name", what="the name")
    slug = validation.check_slug(data.slug)
    locale = validation.check_locale(data.locale)
    time_zone = validation.check_time_zone(data.time_zone)
    plan = validation.check_plan(data.plan)
    if data.parent_id is not None:
        parent_status = await session.scalar(select(Tenant.status).where(Tenant.id == data.parent_id))
        if parent_status is None:
            raise Problem(400, "parent_not_found", "the parent tenant does not exist")
        if parent_status != TenantStatus.ACTIVE:
            raise Problem(409, "parent_not_active", "the parent tenant is not active")
    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Problem(409, "slug_taken", "another tenant already uses this slug")
    now = clock()
    tenant = Tenant(
        id=uuid.uuid4(), slug=slug, name=name, locale=locale, time_zone=time_zone, parent_id=data.parent_id,
        plan=plan, status=TenantStatus.ACTIVE, created_at=now, branding={},
    )
    try:
        async with session.begin_nested():
            session.add(tenant)
            await session.flush()
    except IntegrityError:
        raise Problem(409, "slug_taken", "another tenant already uses this slug") from None
    created = await create_user(
        session,
        tenant_id=tenant.id,
        email=data.admin.email,
        display_name=data.admin.display_name,
        roles=[Role.TENANT_ADMIN.value],
        actor=actor,
        locale=locale,
        invitation_ttl_s=settings.auth.invitation_ttl_s,
        clock=clock,
    )
    assert created.invitation_token is not None
    await audit_admin_action(session, tenant_id=tenant.id, actor=actor, action="tenant.created", detail={"slug": slug, "plan": plan})
    return CreatedTenant(
        tenant=view(tenant),
        admin=CreatedAdmin(
            user_id=created.user_id,
            email=data.admin.email.strip().lower(),
            invitation_url=invitation_link(settings.public_url, created.invitation_token),
        ),
    )


async def list_tenants(
    session: AsyncSession, *, status: str | None, parent_id: uuid.UUID | None, limit: int, offset: int
) -> TenantPage:
    if not 1 <= limit <= 200:
        raise Problem(400, "invalid_limit", "limit must be between 1 and 200")
    if offset < 0:
        raise Problem(400, "invalid_offset", "offset must not be negative")
    query = select(Tenant)
    if status is not None:
        query = query.where(Tenant.status == validation.check_status(status))
    if parent_id is not None:
        query = query.where(Tenant.parent_id == parent_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.scalars(query.order_by(Tenant.created_at, Tenant.slug).limit(limit).offset(offset))).all()
    return TenantPage(items=[view(t) for t in rows], total=int(total or 0), limit=limit, offset=offset)


async def get_tenant(session: AsyncSession, *, tenant_id: uuid.UUID) -> TenantView:
    return view(await get_tenant_row(session, tenant_id=tenant_id))


async def update_tenant(session: AsyncSession, *, tenant_id: uuid.UUID, data: UpdateTenant, actor: str) -> TenantView:
    changes: dict[str, object] = {}
    if not isinstance(data.name, UnsetType):
        changes["name"] = check_text(data.name, code="invalid_name", what="the name")  # type: ignore[arg-type]
    if not isinstance(data.locale, UnsetType):
        changes["locale"] = validation.check_locale(data.locale)  # type: ignore[arg-type]
    if not isinstance(data.time_zone, UnsetType):
        changes["time_zone"] = validation.check_time_zone(data.time_zone)  # type: ignore[arg-type]
    if not isinstance(data.plan, UnsetType):
        changes["plan"] = validation.check_plan(data.plan)  # type: ignore[arg-type]
    if not isinstance(data.branding, UnsetType):
        changes["branding"] = validation.check_branding(data.branding)  # type: ignore[arg-type]
    tenant = await get_tenant_row(session, tenant_id=tenant_id, for_update=True)
    if tenant.status == TenantStatus.CLOSED:
        raise Problem(409, "tenant_closed", "a closed tenant cannot be changed")
    for field, value in changes.items():
        setattr(tenant, field, value)
    if changes:
        await session.flush()
        await audit_admin_action(session, tenant_id=tenant_id, actor=actor, action="tenant.updated", detail={"fields": sorted(changes)})
        await emit(session, TenantUpdated(tenant_id=tenant_id, fields=sorted(changes)))
    return view(tenant)


async def _deactivate(session: AsyncSession, *, tenant_id: uuid.UUID, hooks: Sequence[TenantDeactivationHook]) -> dict[str, object]:
    """Run every context's deactivation hook (same transaction); their results go to the audit log."""
    return {getattr(hook, "__name__", repr(hook)): await hook(session, tenant_id) for hook in hooks}


async def suspend_tenant(
    session: AsyncSession, *, tenant_id: uuid.UUID, actor: str, reason: str | None,
    hooks: Sequence[TenantDeactivationHook] = (), clock: Clock = utcnow,
) -> TenantView:
    tenant = await get_tenant_row(session, tenant_id=tenant_id, for_update=True)
    if tenant.status != TenantStatus.ACTIVE:
        raise Problem(409, "invalid_status_transition", f"a {tenant.status} tenant cannot be suspended")
    tenant.status, tenant.suspended_at = TenantStatus.SUSPENDED, clock()
    await session.flush()
    stopped = await _deactivate(session, tenant_id=tenant_id, hooks=hooks)
    await audit_admin_action(session, tenant_id=tenant_id, actor=actor, action="tenant.suspended", detail={"reason": reason, **stopped})
    await emit(session, TenantSuspended(tenant_id=tenant_id, reason=reason))
    return view(tenant)


async def resume_tenant(session: AsyncSession, *, tenant_id: uuid.UUID, actor: str) -> TenantView:
    tenant = await get_tenant_row(session, tenant_id=tenant_id, for_update=True)
    if tenant.status != TenantStatus.SUSPENDED:
        raise Problem(409, "invalid_status_transition", f"a {tenant.status} tenant cannot be resumed")
    tenant.status, tenant.suspended_at = TenantStatus.ACTIVE, None
    await session.flush()
    await audit_admin_action(session, tenant_id=tenant_id, actor=actor, action="tenant.resumed")
    await emit(session, TenantResumed(tenant_id=tenant_id))
    return view(tenant)


async def close_tenant(
    session: AsyncSession, *, tenant_id: uuid.UUID, actor: str, retention_days: int,
    hooks: Sequence[TenantDeactivationHook] = (), clock: Clock = utcnow,
) -> TenantView:
    tenant = await get_tenant_row(session, tenant_id=tenant_id, for_update=True)
    if tenant.status == TenantStatus.CLOSED:
        raise Problem(409, "invalid_status_transition", "the tenant is already closed")
    open_children = await session.scalar(
        select(func.count()).select_from(Tenant).where(Tenant.parent_id == tenant_id, Tenant.status != TenantStatus.CLOSED)
    )
    if open_children:
        raise Problem(409, "tenant_has_children", "close this tenant's client tenants first")
    now = clock()
    was_active = tenant.status == TenantStatus.ACTIVE
    tenant.status, tenant.closed_at, tenant.purge_after = TenantStatus.CLOSED, now, now + timedelta(days=retention_days)
    await session.flush()
    stopped = await _deactivate(session, tenant_id=tenant_id, hooks=hooks) if was_active else {}
    await audit_admin_action(
        session, tenant_id=tenant_id, actor=actor, action="tenant.closed",
        detail={"purge_after": tenant.purge_after.isoformat(), **stopped},
    )
    await emit(session, TenantClosed(tenant_id=tenant_id, purge_after=tenant.purge_after))
    return view(tenant)
