"""Engines and sessions.

``Database.tenant_session(tenant_id=...)`` is the only way tenant data is read or
written: it opens one transaction and, on PostgreSQL, sets ``kefu.tenant_id``
with ``set_config(..., true)`` (transaction-local, so it can never leak to the
next user of a pooled connection).  Row-level security policies compare every
tenant row against that setting.

``Database.platform_session(reason=...)`` is the one explicit path for
platform-wide work (onboarding, log-in tenant resolution, purges).  In
production it connects as a separate role that may see every tenant; callers
state why, and the reason is logged.

Callbacks registered with ``on_commit(session, fn)`` run after the transaction
has committed, never after a rollback: that is how outbox events are published.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from kefu.platform.problems import Problem
from kefu.platform.settings import DatabaseSettings

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "kefu.after_commit"
TENANT_SETTING = "kefu.tenant_id"
_SET_TENANT = text("select set_config(:name, :tenant, true)")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # Let SQLAlchemy emit a deferred BEGIN.  BEGIN IMMEDIATE would rule out
    # SQLITE_BUSY_SNAPSHOT (a transaction that read, then writes after another
    # connection committed), but request handlers call services that open
    # their own sessions while the request's session is open, and those would
    # wait on the request's own lock.  The rare busy snapshot answers 503
    # ``database_busy`` (kefu.platform.problems) and the client retries.
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"isolation_level": None, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _ping_idle_connections(engine)
    return engine


# A pooled connection idle longer than this is pinged before use (a restarted server
# has closed it); one back from use moments ago is not (a ping per transaction costs
# a round trip).  A connection that died in between fails its statement, and
# SQLAlchemy then replaces every connection of the pool.
PING_AFTER_IDLE_S = 2.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info["kefu.idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        idle_since = record.info.get("kefu.idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # fresh from connect, or just used
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection did not answer a ping") from exc


def on_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the session's transaction has committed."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


_TAKE_WRITE_LOCK = text("UPDATE tenants SET id = id WHERE 0")


async def write_first(session: AsyncSession) -> None:
    """On SQLite, take the database's write lock as the transaction's first statement.

    A deferred SQLite transaction that reads and then writes fails at once with
    "database is locked" (SQLITE_BUSY_SNAPSHOT, which the busy timeout does not
    wait out) when another connection committed in between.  A write that matches
    no row, issued first, waits for the lock instead and reads fresh data after.
    Background writers that read before they write (webhooks, media callbacks)
    call this at the start of their session; PostgreSQL needs nothing.
    """
    bind = session.bind
    if bind is not None and bind.dialect.name == "sqlite":
        await session.execute(_TAKE_WRITE_LOCK)


class CommitOutcomeUnknown(Problem):
    """The connection was lost while the transaction committed: it may or may not have been
    saved, so the client must look before it repeats a change (no Retry-After)."""

    def __init__(self) -> None:
        super().__init__(503, "database_outcome_unknown",
                         "the database connection was lost while saving; check whether the change was made before repeating it")


@asynccontextmanager
async def _committing(session: AsyncSession) -> AsyncIterator[None]:
    """``session.begin()``, telling a connection lost at the commit apart from one lost before."""
    committing = False
    try:
        async with session.begin():
            yield
            committing = True
    except DBAPIError as exc:
        if committing and exc.connection_invalidated:
            raise CommitOutcomeUnknown() from exc
        raise


class _BeginAgain(Exception):
    """A tenant transaction's first statement met a dropped connection (never raised by callers)."""


class Database:
    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.is_postgres = settings.is_postgres
        self.engine = make_engine(settings.url, pool_size=settings.pool_size)
        self.platform_engine = (
            self.engine
            if settings.platform_url == settings.url
            else make_engine(settings.platform_url, pool_size=max(2, settings.pool_size // 2))
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._platform_sessions = async_sessionmaker(self.platform_engine, expire_on_commit=False)

    @asynccontextmanager
    async def tenant_session(self, *, tenant_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        if not isinstance(tenant_id, uuid.UUID):
            raise TypeError("tenant_session needs a tenant UUID")
        for attempt in (1, 2):
            try:
                async with self._sessions() as session:
                    session.info["tenant_id"] = tenant_id
                    async with _committing(session):
                        if self.is_postgres:
                            try:
                                await session.execute(_SET_TENANT, {"name": TENANT_SETTING, "tenant": str(tenant_id)})
                            except DBAPIError as exc:
                                # The server dropped this pooled connection (a restart, a fail-over)
                                # and nothing has run yet: the pool is invalidated; begin once more.
                                if attempt == 2 or not exc.connection_invalidated:
                                    raise
                                raise _BeginAgain from exc
                        yield session
                    await _run_after_commit(session)
                    return
            except _BeginAgain:
                log.warning("database connection lost before the transaction began; beginning again")

    @asynccontextmanager
    async def platform_session(self, *, reason: str) -> AsyncIterator[AsyncSession]:
        if not reason:
            raise ValueError("platform sessions must state a reason")
        log.debug("platform session: %s", reason)
        async with self._platform_sessions() as session:
            session.info["platform_reason"] = reason
            async with _committing(session):
                yield session
            await _run_after_commit(session)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.platform_engine is not self.engine:
            await self.platform_engine.dispose()


async def _run_after_commit(session: AsyncSession) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:  # the data is committed; a failed notification must not undo the answer
            log.exception("after-commit callback failed")
