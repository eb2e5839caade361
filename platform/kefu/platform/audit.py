"""The audit log: one append-only record per log-in, permission change and admin action.

``record`` writes a tenant's entry in the caller's session (so it commits or
rolls back with the change it describes); ``record_platform`` writes operator
actions that concern no single tenant.  Entries are never updated or deleted
except when a closed tenant is purged as a whole.

Actors are named ``user:<uuid>``, ``client:<client_id>``, ``operator:<client_id>``
or ``system`` (see ``Principal.actor``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.db.base import utcnow
from kefu.platform.models import AuditEntry, PlatformAuditEntry


async def record(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    at: datetime | None = None,
) -> None:
    """Add one tenant audit entry to ``session``'s transaction."""
    session.add(
        AuditEntry(
            tenant_id=tenant_id,
            at=at or utcnow(),
            actor=actor,
            action=action,
            target=target,
            detail=dict(detail or {}),
            ip=ip,
        )
    )
    await session.flush()


async def record_platform(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Add one platform-wide audit entry (needs a platform session)."""
    session.add(PlatformAuditEntry(at=at or utcnow(), actor=actor, action=action, target=target, detail=dict(detail or {})))
    await session.flush()


@dataclass(frozen=True)
class AuditView:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None


async def list_entries(
    session: AsyncSession, *, tenant_id: uuid.UUID, limit: int = 50, before_id: int | None = None, action: str | None = None
) -> list[AuditView]:
    """A tenant's entries, newest first; page with ``before_id`` (the last id seen)."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    rows = (await session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit))).all()
    return [AuditView(r.id, r.at, r.actor, r.action, r.target, dict(r.detail or {}), r.ip) for r in rows]
