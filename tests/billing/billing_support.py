"""Helpers of the billing tests: tenants renting seats, principals with fresh tokens (time
travels further than an access token lives), agents, and draining the job queue."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))

from tenants_support import activate_user, bearer, create_user  # noqa: E402

from sqlalchemy import select  # noqa: E402

from kefu.billing.models import BillingAccount  # noqa: E402
from kefu.billing.services import open_account  # noqa: E402
from kefu.platform.models import Tenant  # noqa: E402
from kefu.platform.runtime import Runtime  # noqa: E402

STRIPE_KEY = "sk_test_kefu"
WEBHOOK_SECRET = "whsec_kefu_test_secret"
# January has 31 days, so the first period is 31 days long.
T0 = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)


@dataclass
class Admin:
    runtime: Runtime
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    roles: frozenset[str] = frozenset({"tenant_admin"})

    @property
    def headers(self) -> dict[str, str]:
        """A token minted now (time travels further than an access token lives)."""
        return bearer(self.runtime, tenant_id=self.tenant_id, user_id=self.user_id, roles=set(self.roles))


async def new_tenant(runtime: Runtime, slug: str, *, seats: int, plan: str = "standard") -> Admin:
    async with runtime.db.platform_session(reason="test") as session:
        tenant = Tenant(slug=slug, name=slug.title(), locale="en", status="active", plan=plan)
        session.add(tenant)
        await session.flush()
        await open_account(session, tenant_id=tenant.id, seats=seats, actor="test")
        tenant_id = tenant.id
    admin_id = await create_user(runtime, tenant_id, f"admin@{slug}.test")
    return Admin(runtime, tenant_id, admin_id)


async def add_agent(client: Any, runtime: Runtime, admin: Admin, name: str) -> Any:
    """POST /api/v1/agents; returns the response (201 with the agent, or the problem)."""
    response = await client.post("/api/v1/agents", json={"email": f"{name.lower()}@example.test", "display_name": name}, headers=admin.headers)
    if response.status_code == 201:
        await activate_user(runtime, admin.tenant_id, uuid.UUID(response.json()["user_id"]))
    return response


def agent_of(admin: Admin, response: Any) -> Admin:
    """The agent created by ``add_agent``, as a principal with fresh tokens."""
    return Admin(admin.runtime, admin.tenant_id, uuid.UUID(response.json()["user_id"]), frozenset({"agent"}))


async def drain(runtime: Runtime) -> None:
    await runtime.components["jobs"].drain()


async def billing_account(runtime: Runtime, tenant_id: uuid.UUID) -> BillingAccount:
    """The tenant's billing account as stored now (detached)."""
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        row = await session.scalar(select(BillingAccount).where(BillingAccount.tenant_id == tenant_id))
        assert row is not None
        session.expunge(row)
        return row
