"""Contact-center fixtures: a hand-driven clock and timers, the in-process media
plane, two tenants (Acme and Globex) with an admin each, and agents created
through the API."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from httpx import AsyncClient as AsyncTestClient
from litestar import Litestar
from tenants_support import START, Admin, AgentSeat, InProcessMedia, MakeAgent, activate_user, bearer, create_tenant, create_user, manual_runtime

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.clock import ManualClock, ManualTimers
from kefu.tenants.services import ContactCenter, contact_center


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def timers(clock: ManualClock) -> ManualTimers:
    return ManualTimers(clock)


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock, timers: ManualTimers) -> Runtime:
    return manual_runtime(settings, clock, timers)


@pytest.fixture
def media(runtime: Runtime, clock: ManualClock) -> InProcessMedia:
    return InProcessMedia(runtime.settings.recordings_dir, clock)


@pytest.fixture
def app(runtime: Runtime, media: InProcessMedia, pooled_app: Callable[[Runtime], Litestar]) -> Litestar:
    app = pooled_app(runtime)
    runtime.components["media"] = media
    return app


@pytest.fixture
def cc(runtime: Runtime, client: AsyncTestClient) -> ContactCenter:
    return contact_center(runtime)


@pytest.fixture
async def acme(runtime: Runtime, client: AsyncTestClient) -> Admin:
    tenant_id = await create_tenant(runtime, "acme")
    admin_id = await create_user(runtime, tenant_id, "admin@acme.test")
    return Admin(tenant_id, bearer(runtime, tenant_id=tenant_id, user_id=admin_id, roles={"tenant_admin"}))


@pytest.fixture
async def globex(runtime: Runtime, client: AsyncTestClient) -> Admin:
    tenant_id = await create_tenant(runtime, "globex")
    admin_id = await create_user(runtime, tenant_id, "admin@globex.test")
    return Admin(tenant_id, bearer(runtime, tenant_id=tenant_id, user_id=admin_id, roles={"tenant_admin"}))


@pytest.fixture
def make_agent(runtime: Runtime, client: AsyncTestClient) -> MakeAgent:
    async def factory(admin: Admin, name: str) -> AgentSeat:
        response = await client.post(
            "/api/v1/agents", json={"email": f"{name.lower()}@example.test", "display_name": name}, headers=admin.headers
        )
        assert response.status_code == 201, response.text
        body = response.json()
        user_id = uuid.UUID(body["user_id"])
        await activate_user(runtime, admin.tenant_id, user_id)
        headers = bearer(runtime, tenant_id=admin.tenant_id, user_id=user_id, roles={"agent"})
        return AgentSeat(admin.tenant_id, uuid.UUID(body["id"]), user_id, name, headers)

    return factory
