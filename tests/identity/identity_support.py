"""Helpers for identity tests: tenants created directly on the platform path, users through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kefu.platform.identity import services
from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Person:
    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    email: str
    password: str = PASSWORD


async def create_tenant(runtime: Runtime, slug: str, *, name: str | None = None, status: str = "active", locale: str = "en") -> uuid.UUID:
    async with runtime.db.platform_session(reason="test") as session:
        tenant = Tenant(slug=slug, name=name or slug.title(), locale=locale, status=status)
        session.add(tenant)
        await session.flush()
        return tenant.id


async def create_person(runtime: Runtime, tenant_id: uuid.UUID, slug: str, email: str, *roles: str, password: str | None = PASSWORD) -> Person:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        created = await services.create_user(
            session, tenant_id=tenant_id, email=email, display_name=email.split("@")[0].title(), roles=roles or ("agent",), actor="system", password=password
        )
    return Person(tenant_id, slug, created.user_id, email, password or "")
