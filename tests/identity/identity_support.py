"""Helpers for identity tests: tenants created directly on the platform path, users through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kefu.billing.services import open_account
from kefu.platform.identity import services
from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime

PASSWORD = "correct horse battery"

TEST_SEATS = 50  # seats each test tenant rents (the seat cap has its own tests)


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
        await open_account(session, tenant_id=tenant.id, seats=TEST_SEATS, actor="test")
        return tenant.id


async def create_person(runtime: Runtime, tenant_id: uuid.UUID, slug: str, email: str, *roles: str, password: str | None = PASSWORD) -> Person:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        created = await services.create_user(
            session, tenant_id=tenant_id, email=email, display_name=email.split("@")[0].title(), roles=roles or ("agent",), actor="system", password=password
        )
    return Person(tenant_id, slug, created.user_id, email, password or "")


class FakeClock:
    """An injectable clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        # Starts at the real time so access tokens it stamps verify normally.
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def login(client: Any, person: Person, *, password: str | None = None) -> Any:
    return await client.post(
        "/api/v1/auth/login", json={"tenant": person.tenant_slug, "email": person.email, "password": password or person.password}
    )


async def token_for(client: Any, person: Person) -> str:
    response = await login(client, person)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_rows(runtime: Runtime, tenant_id: uuid.UUID) -> list[tuple[str, str, str | None, dict]]:
    """(actor, action, target, detail) of every audit entry of the tenant, oldest first."""
    from sqlalchemy import select

    from kefu.platform.models import AuditEntry

    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        rows = (await session.scalars(select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.id))).all()
    return [(r.actor, r.action, r.target, dict(r.detail)) for r in rows]
