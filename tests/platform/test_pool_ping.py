"""Pooled PostgreSQL connections are pinged only when they sat idle
(kefu.platform.db.session): one the server closed meanwhile is replaced before a
transaction uses it, and one used a moment ago is not pinged at all."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from kefu.platform.db import Database
from kefu.platform.db import session as db_session
from kefu.platform.devservices import PostgresServer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

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
    # Not pinged: the dead connection is used, fails, and the pool is renewed for the next one.
    with pytest.raises(DBAPIError):
        await backend_pid(db)
    assert await backend_pid(db) != first
