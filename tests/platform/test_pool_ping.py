"""Pooled PostgreSQL connections are pinged only when they sat idle
(kefu.platform.db.session): one the server closed meanwhile is replaced before a
transaction uses it, and one used a moment ago is not pinged at all."""

from __future__ import annotations

import uuid

import pytest
from kefu.platform.db import Database
from kefu.platform.db import session as db_session
from kefu.platform.devservices import PostgresServer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

TENANT = uuid.UUID(int=1)


async def backend_pid(db: Database) -> int:
    async with db.tenant_session(tenant_id=TENANT) as session:
        return int(await session.scalar(text("select pg_backend_pid()")))


async def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    postgres: PostgresServer, pg_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = postgres.create_database(template=pg_template)
    db = Database(postgres.database_settings(name, pool_size=1))
    try:
        first = await backend_pid(db)
        postgres.psql("postgres", f"SELECT pg_terminate_backend({first})")
        monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)  # every checkout counts as idle
        second = await backend_pid(db)
        assert second != first
    finally:
        await db.dispose()


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    postgres: PostgresServer, pg_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = postgres.create_database(template=pg_template)
    db = Database(postgres.database_settings(name, pool_size=1))
    try:
        first = await backend_pid(db)
        assert await backend_pid(db) == first  # the same connection, reused
        postgres.psql("postgres", f"SELECT pg_terminate_backend({first})")
        monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 3600.0)
        # Not pinged: the dead connection is used, fails, and the pool is renewed for the next one.
        with pytest.raises(DBAPIError):
            await backend_pid(db)
        assert await backend_pid(db) != first
    finally:
        await db.dispose()
