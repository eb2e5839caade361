"""Migrations are the only way a schema is created: prove they build exactly the
models' schema, tear it down completely and build it again, on SQLite and on
PostgreSQL.

The models' metadata is the full one (``kefu.platform.db.registry``), so a
context that adds a model without a migration (or a migration that differs
from its model) fails here with the differences listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from kefu.platform.db import migrate
from kefu.platform.db.registry import metadata
from kefu.platform.devservices import PostgresServer


class MigrationTarget:
    def __init__(self, async_url: str, sync_url: str) -> None:
        self.async_url = async_url
        self.engine: Engine = create_engine(sync_url)

    def tables(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(inspect(conn).get_table_names())

    def drift(self) -> list[Any]:
        with self.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"}
            )
            return compare_metadata(context, metadata())

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MigrationTarget]:
    if request.param == "sqlite":
        path = tmp_path / "empty.sqlite3"
        target = MigrationTarget(f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}")
        yield target
        target.engine.dispose()
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_empty_database()
    target = MigrationTarget(server.url(name, "kefu_owner"), server.url(name, "kefu_owner", driver="psycopg2"))
    yield target
    target.engine.dispose()
    server.drop_database(name)


def _head() -> str:
    return ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()  # type: ignore[return-value]


def test_migrations_form_one_linear_history() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"
    assert len(script.get_bases()) == 1


def test_upgrade_head_on_empty_database_matches_the_models(empty_database: MigrationTarget) -> None:
    assert empty_database.tables() == set()
    migrate.upgrade(empty_database.async_url)
    assert empty_database.revision() == _head()
    expected = set(metadata().tables) | {"alembic_version"}
    assert empty_database.tables() == expected
    assert empty_database.drift() == []


def test_downgrade_to_base_leaves_no_tables_and_upgrade_works_again(empty_database: MigrationTarget) -> None:
    migrate.upgrade(empty_database.async_url)
    migrate.downgrade(empty_database.async_url, "base")
    assert empty_database.tables() - {"alembic_version"} == set()
    assert empty_database.revision() is None
    migrate.upgrade(empty_database.async_url)
    assert empty_database.revision() == _head()
    assert empty_database.drift() == []


def test_each_migration_steps_down_and_up_again(empty_database: MigrationTarget) -> None:
    """Every revision's downgrade undoes exactly its upgrade (walked one step at a time)."""
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    seen_tables: list[set[str]] = [set()]
    for revision in revisions:
        migrate.upgrade(empty_database.async_url, revision)
        seen_tables.append(empty_database.tables() - {"alembic_version"})
    for index in range(len(revisions) - 1, -1, -1):
        migrate.downgrade(empty_database.async_url, "-1")
        assert empty_database.tables() - {"alembic_version"} == seen_tables[index], f"downgrade of {revisions[index]}"
    migrate.upgrade(empty_database.async_url)
    assert empty_database.drift() == []


def test_postgres_downgrade_removes_every_policy(postgres: PostgresServer) -> None:
    name = postgres.create_empty_database()
    try:
        url = postgres.url(name, "kefu_owner")
        migrate.upgrade(url)
        assert int(postgres.psql(name, "select count(*) from pg_policies")) > 0
        migrate.downgrade(url, "base")
        assert postgres.psql(name, "select count(*) from pg_policies").strip() == "0"
        leftovers = postgres.psql(
            name, "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and relname <> 'alembic_version' and relkind in ('r', 'S', 'v', 'm', 'p')"
        )
        assert leftovers.strip() == ""
        engine = create_engine(postgres.url(name, "kefu_owner", driver="psycopg2"))
        with engine.connect() as conn:
            types = conn.execute(text(
                "select typname from pg_type t join pg_namespace n on n.oid = t.typnamespace "
                "where n.nspname = 'public' and t.typtype = 'e'"
            )).scalars().all()
        engine.dispose()
        assert types == []
    finally:
        postgres.drop_database(name)
