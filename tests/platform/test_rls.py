"""Row-level security in PostgreSQL, checked against the real catalogue and the
real application role.

* every tenant table (any table with ``tenant_id``) has RLS ENABLEd and FORCEd
  and a policy on ``tenant_id`` for reads (USING) and writes (WITH CHECK);
* the application role ``kefu_app`` owns nothing, is no superuser, cannot
  bypass RLS and cannot read platform-only tables;
* raw SQL without any WHERE sees only the current tenant's rows, writes into
  another tenant are refused, and no tenant set means nothing is visible;
* the tenant setting is transaction-local: it never leaks to the next user of
  a pooled connection.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from kefu.platform.db import Database
from kefu.platform.db.base import tenant_tables
from kefu.platform.db.registry import metadata
from kefu.platform.devservices import PostgresServer
from kefu.platform.identity import services as identity
from kefu.platform.models import Tenant
from kefu.platform.settings import Settings
from kefu.tenants.models import Agent, Queue

pytestmark = pytest.mark.postgres

TENANT_TABLES = tenant_tables(metadata())
# Platform tables the application role may read, never write: the tenant row and the price lists.
READ_ONLY_TABLES = ("tenants", "plans")
PLATFORM_ONLY_TABLES = sorted(set(metadata().tables) - set(TENANT_TABLES) - set(READ_ONLY_TABLES))


@pytest.fixture
def pg_settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings("postgres")


def _database_name(settings: Settings) -> str:
    return settings.db.url.rsplit("/", 1)[1]


@pytest.fixture
async def db(pg_settings: Settings):  # type: ignore[no-untyped-def]
    database = Database(pg_settings.db)
    yield database
    await database.dispose()


async def _tenant(db: Database, slug: str) -> uuid.UUID:
    async with db.platform_session(reason="test: create tenant") as session:
        tenant = Tenant(slug=slug, name=slug.title())
        session.add(tenant)
        await session.flush()
        return tenant.id


async def _populate(db: Database, tenant_id: uuid.UUID, slug: str, people: int) -> None:
    """Users (with memberships and audit entries), agents and queues of one tenant."""
    for n in range(people):
        async with db.tenant_session(tenant_id=tenant_id) as session:
            created = await identity.create_user(
                session, tenant_id=tenant_id, email=f"user{n}@{slug}.test", display_name=f"User {n}",
                roles=["agent"], actor="system", password=None,
            )
            session.add(Agent(tenant_id=tenant_id, user_id=created.user_id, display_name=f"Agent {n}"))
            session.add(Queue(tenant_id=tenant_id, name=f"{slug} queue {n}"))


@pytest.fixture
async def two_tenants(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    acme = await _tenant(db, "acme")
    globex = await _tenant(db, "globex")
    await _populate(db, acme, "acme", 3)
    await _populate(db, globex, "globex", 2)
    return acme, globex


# --- the catalogue -----------------------------------------------------------


def test_every_tenant_table_has_forced_rls_and_a_tenant_policy(postgres: PostgresServer, pg_settings: Settings) -> None:
    database = _database_name(pg_settings)
    rows = postgres.psql(
        database,
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "coalesce(string_agg(concat_ws(chr(31), p.cmd, p.permissive, p.roles::text, p.qual, p.with_check), chr(30)), '') "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "left join pg_policies p on p.schemaname = n.nspname and p.tablename = c.relname "
        "where n.nspname = 'public' and c.relkind in ('r', 'p') group by c.relname, c.relrowsecurity, c.relforcerowsecurity",
    )
    catalogue = {}
    for line in rows.splitlines():
        name, enabled, forced, policies = line.split("|", 3)
        catalogue[name] = (enabled == "t", forced == "t", [p.split(chr(31)) for p in policies.split(chr(30)) if p])
    assert TENANT_TABLES, "no tenant tables found in the metadata"
    problems = []
    expected = {t: "tenant_id" for t in TENANT_TABLES} | {"tenants": "id"}
    for table, column in expected.items():
        if table not in catalogue:
            problems.append(f"{table}: missing from the database")
            continue
        enabled, forced, policies = catalogue[table]
        if not enabled:
            problems.append(f"{table}: row level security not ENABLEd")
        if not forced:
            problems.append(f"{table}: row level security not FORCEd")
        condition = f"({column} = (NULLIF(current_setting('kefu.tenant_id'::text, true), ''::text))::uuid)"
        wanted = ["ALL", "PERMISSIVE", "{public}", condition, condition]
        if wanted not in policies:
            problems.append(f"{table}: no policy comparing {column} with kefu.tenant_id for reads and writes")
        # A second permissive policy would be OR-ed with the tenant one and could widen access.
        others = [p for p in policies if p != wanted]
        if others:
            problems.append(f"{table}: other policies {others!r}")
    # Tables with RLS but no tenant column would hide rows from everyone: they are a
    # sign of a tenant table the metadata does not know about.
    unknown = sorted(t for t, (enabled, _, _) in catalogue.items() if enabled and t not in expected)
    if unknown:
        problems.append(f"tables with RLS that the metadata does not call tenant tables: {unknown}")
    assert problems == []


def test_application_role_owns_nothing_and_cannot_bypass_rls(postgres: PostgresServer, pg_settings: Settings) -> None:
    database = _database_name(pg_settings)
    attributes = postgres.psql(database, "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles where rolname = 'kefu_app'")
    assert attributes.strip() == "f|f|f|f"
    owned = postgres.psql(
        database,
        "select 'class:' || relname from pg_class where relowner = 'kefu_app'::regrole "
        "union all select 'schema:' || nspname from pg_namespace where nspowner = 'kefu_app'::regrole "
        "union all select 'function:' || proname from pg_proc where proowner = 'kefu_app'::regrole "
        "union all select 'type:' || typname from pg_type where typowner = 'kefu_app'::regrole "
        "union all select 'database:' || datname from pg_database where datdba = 'kefu_app'::regrole",
    )
    assert owned.strip() == ""
    assert postgres.psql(database, "select has_schema_privilege('kefu_app', 'public', 'CREATE')").strip() == "f"
    member_of = postgres.psql(
        database, "select string_agg(b.rolname, ',') from pg_auth_members m join pg_roles b on b.oid = m.roleid "
        "where m.member = 'kefu_app'::regrole"
    )
    assert member_of.strip() == "", "kefu_app inherits privileges from other roles"


def test_application_role_has_no_privilege_on_platform_only_tables(postgres: PostgresServer, pg_settings: Settings) -> None:
    database = _database_name(pg_settings)
    assert "platform_clients" in PLATFORM_ONLY_TABLES
    for table in [*PLATFORM_ONLY_TABLES, "alembic_version"]:
        granted = postgres.psql(
            database,
            f"select has_table_privilege('kefu_app', '{table}', 'SELECT'), has_table_privilege('kefu_app', '{table}', 'INSERT'), "
            f"has_table_privilege('kefu_app', '{table}', 'UPDATE'), has_table_privilege('kefu_app', '{table}', 'DELETE')",
        )
        assert granted.strip() == "f|f|f|f", f"kefu_app may touch {table}"
    for table in READ_ONLY_TABLES:
        granted = postgres.psql(
            database, f"select has_table_privilege('kefu_app', '{table}', 'INSERT') or has_table_privilege('kefu_app', '{table}', 'UPDATE')"
            f" or has_table_privilege('kefu_app', '{table}', 'DELETE')",
        )
        assert granted.strip() == "f", f"kefu_app may change {table}"


async def test_application_role_cannot_read_platform_clients(db: Database, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, _ = two_tenants
    with pytest.raises(ProgrammingError, match="permission denied"):
        async with db.tenant_session(tenant_id=acme) as session:
            await session.execute(text("select * from platform_clients"))
    async with db.tenant_session(tenant_id=acme) as session:
        assert await session.scalar(text("select current_user")) == "kefu_app"


# --- what the application role sees -------------------------------------------


async def test_raw_select_without_where_sees_only_the_current_tenant(db: Database, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = two_tenants
    async with db.tenant_session(tenant_id=acme) as session:
        emails = sorted((await session.execute(text("select email from users"))).scalars())
        tenant_ids = set((await session.execute(text("select tenant_id from users"))).scalars())
        tenants = (await session.execute(text("select slug from tenants"))).scalars().all()
    assert emails == ["user0@acme.test", "user1@acme.test", "user2@acme.test"]
    assert tenant_ids == {acme}
    assert tenants == ["acme"]


async def test_every_tenant_table_shows_only_the_current_tenant_rows(db: Database, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    """For each tenant table: the app's unfiltered count equals the platform's count for that tenant."""
    acme, globex = two_tenants
    seeded = 0
    for tenant in (acme, globex):
        for table in TENANT_TABLES:
            async with db.platform_session(reason="test: expected counts") as session:
                expected = await session.scalar(text(f'select count(*) from "{table}" where tenant_id = :t'), {"t": tenant})
                total = await session.scalar(text(f'select count(*) from "{table}"'))
            async with db.tenant_session(tenant_id=tenant) as session:
                seen = await session.scalar(text(f'select count(*) from "{table}"'))
            assert seen == expected, f"{table}: tenant sees {seen} rows, owns {expected} (of {total})"
            seeded += expected
    assert seeded > 0


async def test_no_tenant_set_sees_nothing(db: Database, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    async with db.engine.connect() as conn:
        assert await conn.scalar(text("select current_user")) == "kefu_app"
        for table in [*TENANT_TABLES, "tenants"]:
            assert await conn.scalar(text(f'select count(*) from "{table}"')) == 0, table
    async with db.platform_session(reason="test: rows exist") as session:
        assert await session.scalar(text("select count(*) from users")) == 5


async def test_insert_into_another_tenant_is_refused_by_with_check(db: Database, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = two_tenants
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.tenant_session(tenant_id=acme) as session:
            await session.execute(
                text("insert into queues (id, tenant_id, name, strategy, max_wait_s, created_at) "
                     "values (:id, :tenant, 'smuggled', 'longest_idle', 60, now())"),
                {"id": uuid.uuid4(), "tenant": globex},
            )
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.tenant_session(tenant_id=acme) as session:
            await session.execute(text("update queues set tenant_id = :other"), {"other": globex})
    async with db.platform_session(reason="test: nothing moved") as session:
        counts = dict((await session.execute(text("select tenant_id, count(*) from queues group by tenant_id"))).all())
        smuggled = await session.scalar(text("select count(*) from queues where name = 'smuggled'"))
    assert counts == {acme: 3, globex: 2}
    assert smuggled == 0


async def test_update_and_delete_cannot_reach_another_tenant(db: Database, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = two_tenants
    async with db.tenant_session(tenant_id=acme) as session:
        renamed = (await session.execute(text("update users set display_name = 'x' where tenant_id = :g"), {"g": globex})).rowcount
        deleted = (await session.execute(text("delete from queues where tenant_id = :g"), {"g": globex})).rowcount
    assert (renamed, deleted) == (0, 0)
    async with db.platform_session(reason="test: globex untouched") as session:
        assert await session.scalar(text("select count(*) from queues where tenant_id = :g"), {"g": globex}) == 2
        assert await session.scalar(text("select count(*) from users where display_name = 'x'")) == 0


async def test_insert_with_no_tenant_set_is_refused(db: Database, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, _ = two_tenants
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.engine.begin() as conn:
            await conn.execute(
                text("insert into queues (id, tenant_id, name, strategy, max_wait_s, created_at) "
                     "values (:id, :tenant, 'orphan', 'longest_idle', 60, now())"),
                {"id": uuid.uuid4(), "tenant": acme},
            )


# --- pooled connections ------------------------------------------------------------


async def test_tenant_setting_does_not_leak_to_the_next_user_of_a_pooled_connection(
    pg_settings: Settings, two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    acme, globex = two_tenants
    db = Database(dataclasses.replace(pg_settings.db, pool_size=1))
    try:
        probe = text("select pg_backend_pid(), current_setting('kefu.tenant_id', true), "
                     "(select string_agg(distinct tenant_id::text, ',') from users)")
        async with db.tenant_session(tenant_id=acme) as session:
            pid_a, setting_a, seen_a = (await session.execute(probe)).one()
        async with db.tenant_session(tenant_id=globex) as session:
            pid_b, setting_b, seen_b = (await session.execute(probe)).one()
        async with db.engine.connect() as conn:
            pid_after, setting_after, seen_after = (await conn.execute(probe)).one()
        # A tenant transaction that fails must not leave its tenant behind either.
        with pytest.raises(RuntimeError):
            async with db.tenant_session(tenant_id=acme) as session:
                await session.execute(text("select 1"))
                raise RuntimeError("handler failed")
        async with db.engine.connect() as conn:
            pid_rolled_back, setting_rolled_back, seen_rolled_back = (await conn.execute(probe)).one()
        pool = db.engine.pool
    finally:
        await db.dispose()
    assert pid_a == pid_b == pid_after == pid_rolled_back, "the test needs one physical connection"
    assert pool.size() == 1  # type: ignore[attr-defined]
    assert (setting_a, seen_a) == (str(acme), str(acme))
    assert (setting_b, seen_b) == (str(globex), str(globex))
    assert setting_after in ("", None) and seen_after is None
    assert setting_rolled_back in ("", None) and seen_rolled_back is None
