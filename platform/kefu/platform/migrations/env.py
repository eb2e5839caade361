"""Alembic environment: async engines, every context's metadata, and grants.

On PostgreSQL each migration runs in one transaction (DDL is transactional
there).  After upgrading, privileges are granted to the application role
(tenant tables only, subject to RLS) and to the platform role, if those roles
exist; the roles themselves are created by the operator (see docs/database.md).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import inspect, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from kefu.platform.db.base import tenant_tables
from kefu.platform.db.registry import metadata as load_metadata

config = context.config
target_metadata = load_metadata()

# Platform tables the application role must never touch.
PLATFORM_ONLY = ("platform_clients", "platform_audit_log", "alembic_version", "stripe_events")
# Platform tables the application role may read (the tenant row, the price lists).
READABLE = ("tenants", "plans")


def _grant(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    app_role = config.attributes.get("app_role", "kefu_app")
    platform_role = config.attributes.get("platform_role", "kefu_platform")
    existing = {
        r[0]
        for r in connection.execute(
            text("select rolname from pg_roles where rolname in (:a, :p)"), {"a": app_role, "p": platform_role}
        )
    }
    tables = set(inspect(connection).get_table_names())
    if platform_role in existing:
        connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{platform_role}"'))
        connection.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{platform_role}"'))
        connection.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{platform_role}"'))
    if app_role in existing:
        connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{app_role}"'))
        for t in [t for t in tenant_tables(target_metadata) + list(READABLE) if t in tables]:
            privileges = "SELECT" if t in READABLE else "SELECT, INSERT, UPDATE, DELETE"
            connection.execute(text(f'GRANT {privileges} ON "{t}" TO "{app_role}"'))
        for t in PLATFORM_ONLY:
            if t in tables:
                connection.execute(text(f'REVOKE ALL ON "{t}" FROM "{app_role}"'))
        connection.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{app_role}"'))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if not context.is_offline_mode():
        _grant(connection)
        connection.commit()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def _run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())
