"""Pooled PostgreSQL connections are pinged only when they sat idle
(kefu.platform.db.session): one the server closed meanwhile is replaced before a
transaction uses it, and one used a moment ago is not pinged at all — a tenant
transaction that meets it dead on its first statement begins again on a fresh
one, and a request that meets it later answers 503 ``database_unavailable``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from kefu.platform.db import Database
from kefu.platform.db import session as db_session
from kefu.platform.devservices import PostgresServer

TENANT = uuid.UUID(int=1)


@pytest.fixture
async def db(postgres: PostgresServer, pg_template: str) -> AsyncIterator[Database]:
    """A database whose pool holds one connection, so every session reuses it."""
    database = Database(postgres.database_settings(postgres.create_database(template=pg_template), pool_size=1))
    try:
        yield database
    finally:
        await database.dispose()


async def backend_pid(db: Database) -> int:
    async with db.tenant_session(tenant_id=TENANT) as session:
        return int(await session.scalar(text("select pg_backend_pid()")))


async def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    postgres: PostgresServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await backend_pid(db)
    postgres.psql("postgres", f"SELECT pg_terminate_backend({first})")
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)  # every checkout counts as idle
    assert await backend_pid(db) != first


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    postgres: PostgresServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await backend_pid(db)
    assert await backend_pid(db) == first  # the same connection, reused
    postgres.psql("postgres", f"SELECT pg_terminate_backend({first})")
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 3600.0)
    # Not pinged: the dead connection is used and fails on the tenant transaction's first
    # statement; the pool is renewed and the transaction begins again on a new connection.
    assert await backend_pid(db) != first


async def test_a_platform_session_on_a_dropped_connection_fails_once_and_the_pool_is_renewed(
    postgres: PostgresServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def platform_pid() -> int:
        async with db.platform_session(reason="test") as session:
            return int(await session.scalar(text("select pg_backend_pid()")))

    first = await platform_pid()
    postgres.psql("postgres", f"SELECT pg_terminate_backend({first})")
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 3600.0)
    with pytest.raises(DBAPIError) as raised:  # its caller's statement already ran: no silent retry
        await platform_pid()
    assert raised.value.connection_invalidated
    assert await platform_pid() != first


async def test_a_request_that_loses_its_database_connection_answers_503_database_unavailable() -> None:
    from litestar import Litestar, get
    from litestar.testing import AsyncTestClient

    from kefu.platform.problems import exception_handlers

    @get("/dropped")
    async def dropped() -> None:
        raise DBAPIError("select 1", {}, ConnectionResetError("server closed the connection"), connection_invalidated=True)

    @get("/broken")
    async def broken() -> None:
        raise DBAPIError("select 1", {}, ValueError("syntax"), connection_invalidated=False)

    async with AsyncTestClient(Litestar([dropped, broken], exception_handlers=exception_handlers)) as client:  # type: ignore[arg-type]
        response = await client.get("/dropped")
        assert (response.status_code, response.json()["code"], response.headers["retry-after"]) == (503, "database_unavailable", "1")
        response = await client.get("/broken")
        assert (response.status_code, response.json()["code"]) == (500, "internal_error")


async def test_a_connection_lost_while_committing_says_the_outcome_is_unknown(postgres: PostgresServer, db: Database) -> None:
    from kefu.platform.db.session import CommitOutcomeUnknown

    with pytest.raises(CommitOutcomeUnknown) as raised:
        async with db.tenant_session(tenant_id=TENANT) as session:
            pid = int(await session.scalar(text("select pg_backend_pid()")))
            postgres.psql("postgres", f"SELECT pg_terminate_backend({pid})")  # gone before the commit
    assert (raised.value.status, raised.value.code) == (503, "database_outcome_unknown")
    assert await backend_pid(db) != pid  # the pool was renewed


async def test_a_database_that_cannot_be_reached_answers_503_not_500() -> None:
    from litestar import Litestar, get
    from litestar.testing import AsyncTestClient
    from sqlalchemy.ext.asyncio import create_async_engine

    from kefu.platform.devservices import free_port
    from kefu.platform.problems import exception_handlers

    engine = create_async_engine(f"postgresql+asyncpg://kefu_app@127.0.0.1:{free_port()}/kefu")  # nothing listens there

    @get("/down")
    async def down() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("select 1"))

    async with AsyncTestClient(Litestar([down], exception_handlers=exception_handlers)) as client:  # type: ignore[arg-type]
        response = await client.get("/down")
    await engine.dispose()
    assert (response.status_code, response.json()["code"], response.headers["retry-after"]) == (503, "service_unavailable", "2")
