"""Identity fixtures: named tenants (Acme, Globex) and people in them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
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


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app served in the test's own event loop.

    litestar's AsyncTestClient runs the lifespan (and so the background services
    that use the connection pool) on a portal thread with another event loop;
    asyncpg connections cannot cross loops, so identity's tests keep one loop.
    """
    started, stopping = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        # Enter and leave the lifespan in one task (anyio cancel scopes insist).
        async with app.lifespan():
            started.set()
            await stopping.wait()

    server = asyncio.create_task(serve())
    await asyncio.wait([server, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        server.result()
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as test_client:
            yield test_client
    finally:
        stopping.set()
        await server
