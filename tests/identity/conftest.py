"""Identity fixtures: named tenants (Acme, Globex) and people in them."""

from __future__ import annotations

import uuid

import pytest
from identity_support import FakeClock, Person, create_person, create_tenant
from litestar import Litestar

from kefu.platform.runtime import Runtime


@pytest.fixture
async def acme(runtime: Runtime) -> uuid.UUID:
    return await create_tenant(runtime, "acme", name="Acme Corp")


@pytest.fixture
async def globex(runtime: Runtime) -> uuid.UUID:
    return await create_tenant(runtime, "globex", name="Globex")


@pytest.fixture
async def alice(runtime: Runtime, acme: uuid.UUID) -> Person:
    """Acme's tenant admin."""
    return await create_person(runtime, acme, "acme", "alice@acme.test", "tenant_admin")


@pytest.fixture
async def bob(runtime: Runtime, acme: uuid.UUID) -> Person:
    """An Acme agent."""
    return await create_person(runtime, acme, "acme", "bob@acme.test", "agent")


@pytest.fixture
async def gina(runtime: Runtime, globex: uuid.UUID) -> Person:
    """Globex's tenant admin."""
    return await create_person(runtime, globex, "globex", "gina@globex.test", "tenant_admin")


@pytest.fixture
def clock(app: Litestar, runtime: Runtime) -> FakeClock:
    """The identity component's clock, frozen until a test advances it."""
    fake = FakeClock()
    runtime.components["identity"].clock = fake
    return fake
