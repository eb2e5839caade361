"""Shared fixtures: real PostgreSQL and Redis servers, migrated databases, apps and clients.

Every database here is built by the Alembic migrations (never ``create_all``).
``backend`` parametrises a test over SQLite (embedded default) and PostgreSQL
with row-level security, connected as the application role.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from kefu.platform.app import create_app
from kefu.platform.db import migrate
from kefu.platform.devservices import PostgresServer, RedisServer
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings, load_settings

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_template(postgres: PostgresServer) -> str:
    name = postgres.create_empty_database("kefu_template")
    migrate.upgrade(postgres.url(name, "kefu_owner"))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "kefu.sqlite3"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> SettingsFactory:
    """Settings on a fresh, migrated database of the given backend."""

    def factory(backend: str = "sqlite", **env: str) -> Settings:
        data_dir = tmp_path / f"data-{backend}"
        data_dir.mkdir(exist_ok=True)
        values = {"KEFU_DATA_DIR": str(data_dir), "KEFU_PORT": "8000"}
        if backend == "sqlite":
            db_path = data_dir / "kefu.sqlite3"
            if not db_path.exists():
                shutil.copyfile(request.getfixturevalue("sqlite_template"), db_path)
            values["KEFU_DATABASE_URL"] = f"sqlite+aiosqlite:///{db_path}"
        elif backend == "postgres":
            server: PostgresServer = request.getfixturevalue("postgres")
            name = server.create_database(template=request.getfixturevalue("pg_template"))
            values["KEFU_DATABASE_URL"] = server.url(name, "kefu_app")
            values["KEFU_PLATFORM_DATABASE_URL"] = server.url(name, "kefu_platform")
            values["KEFU_MIGRATION_DATABASE_URL"] = server.url(name, "kefu_owner")
        else:
            raise ValueError(backend)
        values.update(env)
        return load_settings(values)

    return factory


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(make_settings: SettingsFactory, backend: str) -> Settings:
    return make_settings(backend)


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    return Runtime.build(settings)


class AppPool:
    """Apps kept for reuse across tests, one test at a time each.

    Building an app (Litestar parsing every handler's signature) costs about half
    a second, most of the suite's time when every API test builds its own.  The
    routes do not depend on the runtime beyond which handlers its contexts
    install, so an app built for the same handlers and body limit serves the next
    test's runtime once ``app.state.runtime`` points at it (the lifespan and
    every dependency read it from there).  Contexts are still installed on each
    test's runtime, so its services are its own.
    """

    def __init__(self) -> None:
        self._free: dict[tuple[object, ...], list[Litestar]] = {}
        self._keep: dict[int, object] = {}  # every keyed handler stays alive, so no id is reused

    MAX_KINDS = 16  # distinct handler sets kept; beyond that an app is built and dropped

    def take(self, runtime: Runtime) -> tuple[Litestar, Callable[[], None]]:
        from kefu.platform.routes import route_handlers

        handlers = route_handlers(runtime)
        key = (*map(id, handlers), runtime.settings.max_body_bytes)
        if key not in self._free and len(self._free) >= self.MAX_KINDS:
            return create_app(runtime=runtime, handlers=handlers), lambda: None
        self._keep.update((id(h), h) for h in handlers)
        free = self._free.setdefault(key, [])
        app = free.pop() if free else create_app(runtime=runtime, handlers=handlers)
        app.state.runtime = runtime
        return app, lambda: free.append(app)


_APPS = AppPool()


@pytest.fixture
def pooled_app(request: pytest.FixtureRequest) -> Callable[[Runtime], Litestar]:
    """An app serving the given runtime, reused from an earlier test when one fits."""

    def take(runtime: Runtime) -> Litestar:
        app, give_back = _APPS.take(runtime)
        request.addfinalizer(give_back)
        return app

    return take


@pytest.fixture
def app(runtime: Runtime, pooled_app: Callable[[Runtime], Litestar]) -> Litestar:
    return pooled_app(runtime)


class AppClient(httpx.AsyncClient):
    """An HTTP client bound to one in-process app (``client.app`` is that app)."""

    def __init__(self, app: Litestar, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AppClient]:
    """The app, lifespan included, served in the test's own event loop.

    Litestar's AsyncTestClient runs the lifespan (and so the background services
    holding pooled connections) on a portal thread with another loop; asyncpg
    connections cannot cross loops, so tests that also use ``runtime.db`` need
    one loop.  The client address is a documentation address (RFC 5737), used
    only as the ASGI peer for the per-IP log-in limiter.
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
        async with AppClient(app, transport=transport, base_url="http://testserver.local") as test_client:
            yield test_client
    finally:
        stopping.set()
        await server
