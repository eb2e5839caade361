"""The cross-tenant harness, generated from the application's route table.

Two tenants, Acme (A, the caller) and Globex (B, the victim), each get one of
every resource the routes take as an id.  Then, for every route:

* with an id in its path: A's user presenting B's ids gets 404 ``not_found``
  (exactly as for a missing id), with every method, and B's rows are unchanged;
  the same route with A's own ids answers (so the 404 means something);
* a list route (GET under ``/api/v1`` without ids): A's answer shows A's rows
  and none of B's identifiers;
* a write route whose body names other resources: B's ids in the body answer
  404 and nothing is stored;
* an operator route (``/api/admin/v1``): tenant tokens get 403;
* anything else must be listed as public or websocket, with a reason.

A route the registry (``isolation_registry.py``) cannot handle fails
``test_every_route_is_covered_by_the_harness`` with its path.  Everything runs
on PostgreSQL with row-level security and on SQLite (``backend``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
from isolation_registry import (
    ADMIN_API,
    BODY_REFERENCES,
    CREATE_ROUTES,
    DEFAULT_ROLE,
    ID_FACTORIES,
    LIST_ROUTES,
    NOT_REFERENCES,
    PUBLIC_PREFIXES,
    PUBLIC_ROUTES,
    ROUTE_ROLES,
    TENANT_API,
    TENANT_SETUP,
    WEBSOCKET_ROUTES,
    WRITE_BODIES,
    fill,
    path_params,
)
from litestar import Litestar
from litestar.routes import HTTPRoute, WebSocketRoute
from litestar.testing import AsyncTestClient
from sqlalchemy import Uuid, bindparam, inspect, text

from kefu.billing.services import open_account
from kefu.platform.app import create_app
from kefu.platform.db import Database
from kefu.platform.db.base import tenant_tables
from kefu.platform.db.registry import metadata
from kefu.platform.identity import services as identity
from kefu.platform.identity.principal import Principal
from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants import agents as agents_service

IGNORED_METHODS = {"OPTIONS", "HEAD"}
WRITE_METHODS = {"POST", "PUT", "PATCH"}


@dataclass
class TenantWorld:
    id: uuid.UUID
    slug: str
    tokens: dict[str, str] = field(default_factory=dict)
    emails: list[str] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)

    def markers(self) -> set[str]:
        """Strings that identify this tenant's data in any answer."""
        return {str(self.id), self.slug, *self.emails, *self.resources.values()}


class Harness:
    """Drives the app as tenants' users; reads and writes the database directly only to seed and snapshot.

    The test client runs the app on its own event loop (a blocking portal), so
    the harness keeps its own ``Database`` (same settings, same roles) for the
    test's loop instead of sharing the app's connection pool.
    """

    def __init__(self, runtime: Runtime, client: AsyncTestClient[Litestar], db: Database) -> None:
        self.runtime = runtime
        self.client = client
        self.db = db

    async def tenant(self, slug: str) -> TenantWorld:
        async with self.db.platform_session(reason="test: cross-tenant harness") as session:
            tenant = Tenant(slug=slug, name=slug.title())
            session.add(tenant)
            await session.flush()
            await open_account(session, tenant_id=tenant.id, seats=20, actor="test")
            world = TenantWorld(tenant.id, slug)
        await self.token(world, DEFAULT_ROLE)
        return world

    async def token(self, t: TenantWorld, role: str) -> str:
        """A signed-in user of ``t`` holding ``role`` (created on first use)."""
        if role not in t.tokens:
            email = f"{role.replace('_', '-')}@{t.slug}.test"
            async with self.db.tenant_session(tenant_id=t.id) as session:
                if role == "agent":
                    # An agent-desktop user has a seat (an agents row), created the way the API does.
                    seat, _ = await agents_service.create_agent(
                        session, tenant_id=t.id, email=email, display_name=f"{t.slug} desk agent", actor="system",
                        password="correct horse battery",
                    )
                    user_id = seat.user_id
                    t.resources["agent:agent"] = str(seat.id)
                else:
                    created = await identity.create_user(
                        session, tenant_id=t.id, email=email, display_name=f"{t.slug} {role}", roles=[role],
                        actor="system", password="correct horse battery",
                    )
                    user_id = created.user_id
            principal = Principal.user(user_id=user_id, tenant_id=t.id, roles=frozenset({role}))
            t.tokens[role] = self.runtime.tokens.issue(principal)
            t.emails.append(email)
            t.resources[f"{role}:user"] = str(user_id)
        return t.tokens[role]

    async def call(self, method: str, path: str, t: TenantWorld | None, *, role: str = DEFAULT_ROLE,
                   token: str | None = None, json: Any = None) -> httpx.Response:
        headers = {}
        if token is None and t is not None:
            token = await self.token(t, role)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if json is not None:
            return await self.client.request(method, path, headers=headers, json=json)
        return await self.client.request(method, path, headers=headers)

    async def call_ok(self, method: str, path: str, t: TenantWorld, **kwargs: Any) -> Any:
        response = await self.call(method, path, t, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def resource(self, t: TenantWorld, param: str) -> str:
        if param not in t.resources:
            t.resources[param] = await ID_FACTORIES[param](self, t)
        return t.resources[param]

    async def snapshot(self, t: TenantWorld) -> dict[str, list[str]]:
        """Every row the tenant owns, table by table (read on the platform path)."""
        async with self.db.platform_session(reason="test: tenant snapshot") as session:
            existing = set(await session.run_sync(lambda s: inspect(s.connection()).get_table_names()))
            rows: dict[str, list[str]] = {}
            for table in tenant_tables(metadata()):
                if table in existing:
                    query = text(f'select * from "{table}" where tenant_id = :t').bindparams(bindparam("t", type_=Uuid()))
                    result = await session.execute(query, {"t": t.id})
                    rows[table] = sorted(repr(tuple(r)) for r in result)
            query = text("select * from tenants where id = :t").bindparams(bindparam("t", type_=Uuid()))
            result = await session.execute(query, {"t": t.id})
            rows["tenants"] = sorted(repr(tuple(r)) for r in result)
        return rows


def http_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) for every HTTP route of the app."""
    found = []
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            found.extend((m, route.path) for m in sorted(route.methods - IGNORED_METHODS))
    return found


def body_reference_fields(route: HTTPRoute, method: str) -> list[str]:
    """Fields of the route's request type that name other resources (``*_id``, ``*_ids``)."""
    handler, _ = route.route_handler_map[method]  # type: ignore[index]
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return []
    annotation = data.annotation
    if not (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)):
        return []
    return [f.name for f in msgspec.structs.fields(annotation) if f.name.endswith(("_id", "_ids"))]


def route_problems(app: Litestar) -> list[str]:
    """Why each route the harness cannot exercise is not covered (empty: all covered)."""
    problems = []
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            if route.path not in WEBSOCKET_ROUTES:
                problems.append(f"websocket {route.path}: add it to WEBSOCKET_ROUTES with how its tenant is enforced")
            continue
        if not isinstance(route, HTTPRoute):
            problems.append(f"{route.path}: a {type(route).__name__} the harness does not know")
            continue
        for method in sorted(route.methods - IGNORED_METHODS):
            path = route.path
            params = path_params(path)
            if path in PUBLIC_ROUTES or any(path.startswith(prefix) for prefix in PUBLIC_PREFIXES) or path.startswith(ADMIN_API):
                continue
            if not path.startswith(TENANT_API):
                problems.append(f"{method} {path}: neither tenant API, operator API nor listed in PUBLIC_ROUTES")
                continue
            references = body_reference_fields(route, method) if method in WRITE_METHODS else []
            if references and (method, path) not in BODY_REFERENCES and (method, path) not in NOT_REFERENCES:
                problems.append(f"{method} {path}: its body names {', '.join(references)}; add it to BODY_REFERENCES")
            if params:
                missing = [p for p in params if p not in ID_FACTORIES]
                if missing:
                    problems.append(f"{method} {path}: no factory in ID_FACTORIES for {', '.join(missing)}")
                if method in WRITE_METHODS and (method, path) not in WRITE_BODIES:
                    problems.append(f"{method} {path}: no body in WRITE_BODIES")
            elif method == "GET":
                if path not in LIST_ROUTES:
                    problems.append(f"GET {path}: a list route missing from LIST_ROUTES")
            elif path not in CREATE_ROUTES or method not in CREATE_ROUTES[path].methods:
                problems.append(f"{method} {path}: a write route missing from CREATE_ROUTES")
    return problems


def tenant_api_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of every tenant-token route (public ones excluded), deletions last
    (a leaking DELETE would otherwise remove the rows the other checks look for)."""
    routes = [(m, p) for m, p in http_routes(app) if p.startswith(TENANT_API) and p not in PUBLIC_ROUTES]
    return sorted(routes, key=lambda r: r[0] == "DELETE")


@pytest.fixture
async def harness(runtime: Runtime, client: AsyncTestClient[Litestar]) -> AsyncIterator[Harness]:
    db = Database(runtime.settings.db)
    try:
        yield Harness(runtime, client, db)
    finally:
        await db.dispose()


@pytest.fixture
async def acme_and_globex(harness: Harness) -> tuple[TenantWorld, TenantWorld]:
    """Acme (the caller) and Globex (the victim), each with one of every resource."""
    acme = await harness.tenant("acme")
    globex = await harness.tenant("globex")
    for t in (acme, globex):
        for param in ID_FACTORIES:
            await harness.resource(t, param)
        for name, setup in TENANT_SETUP.items():
            t.resources[name] = await setup(harness, t)
    return acme, globex


def test_every_route_is_covered_by_the_harness(make_settings) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_settings("sqlite"))
    assert route_problems(app) == []


def test_registry_entries_name_existing_routes(make_settings) -> None:  # type: ignore[no-untyped-def]
    """Stale entries hide nothing, but they mislead: keep the registry in step with the app."""
    app = create_app(make_settings("sqlite"))
    routes = set(http_routes(app))
    paths = {p for _, p in routes}
    stale = [f"WRITE_BODIES {m} {p}" for m, p in WRITE_BODIES if (m, p) not in routes]
    stale += [f"LIST_ROUTES {p}" for p in LIST_ROUTES if ("GET", p) not in routes]
    stale += [f"CREATE_ROUTES {p}" for p in CREATE_ROUTES if p not in paths]
    stale += [f"PUBLIC_ROUTES {p}" for p in PUBLIC_ROUTES if p not in paths]
    stale += [f"BODY_REFERENCES {m} {p}" for m, p in BODY_REFERENCES if (m, p) not in routes]
    stale += [f"ROUTE_ROLES {p}" for p in ROUTE_ROLES if p not in paths]
    stale += [f"NOT_REFERENCES {m} {p}" for m, p in NOT_REFERENCES if (m, p) not in routes]
    assert stale == []


async def test_foreign_ids_answer_404_on_every_id_route(
    harness: Harness, acme_and_globex: tuple[TenantWorld, TenantWorld], client: AsyncTestClient[Litestar]
) -> None:
    acme, globex = acme_and_globex
    before = await harness.snapshot(globex)
    failures: list[str] = []
    exercised = 0
    for method, path in tenant_api_routes(client.app):
        params = path_params(path)
        if not params:
            continue
        if any(p not in ID_FACTORIES for p in params):
            failures.append(f"{method} {path}: not covered (see test_every_route_is_covered_by_the_harness)")
            continue
        role = ROUTE_ROLES.get(path, DEFAULT_ROLE)
        own = {p: await harness.resource(acme, p) for p in params}
        foreign = {p: await harness.resource(globex, p) for p in params}
        body = WRITE_BODIES.get((method, path)) if method in WRITE_METHODS else None
        if method == "GET":
            response = await harness.call("GET", fill(path, own), acme, role=role)
            if response.status_code != 200:
                failures.append(f"GET {path} with the caller's own ids: {response.status_code} {response.text[:200]}")
        # All ids foreign, then (for several ids) one foreign id among the caller's own.
        variants = [foreign] + ([{**own, p: foreign[p]} for p in params] if len(params) > 1 else [])
        for values in variants:
            url = fill(path, values)
            response = await harness.call(method, url, acme, role=role, json=body)
            exercised += 1
            code = response.json().get("code") if response.headers.get("content-type", "").startswith("application/") and response.content else None
            if response.status_code != 404 or code != "not_found":
                failures.append(f"{method} {path} as {acme.slug} with {globex.slug}'s ids {values}: {response.status_code} {response.text[:200]}")
    assert failures == []
    assert exercised > 0
    assert await harness.snapshot(globex) == before


async def test_list_routes_never_show_the_other_tenants_rows(
    harness: Harness, acme_and_globex: tuple[TenantWorld, TenantWorld], client: AsyncTestClient[Litestar]
) -> None:
    acme, globex = acme_and_globex
    foreign_markers = globex.markers()
    failures: list[str] = []
    for method, path in tenant_api_routes(client.app):
        if method != "GET" or path_params(path):
            continue
        if path not in LIST_ROUTES:
            failures.append(f"GET {path}: not covered (see test_every_route_is_covered_by_the_harness)")
            continue
        check = LIST_ROUTES[path]
        response = await harness.call("GET", path, acme, role=ROUTE_ROLES.get(path, DEFAULT_ROLE))
        if response.status_code != 200:
            failures.append(f"GET {path}: {response.status_code} {response.text[:200]}")
            continue
        body = response.text
        leaked = sorted(m for m in foreign_markers if m in body)
        if leaked:
            failures.append(f"GET {path} as {acme.slug} shows {globex.slug}'s {leaked}")
        if check.shows is not None and acme.resources[check.shows] not in body:
            failures.append(f"GET {path} does not show {acme.slug}'s own {check.shows} {acme.resources[check.shows]}")
        if check.shows is None and str(acme.id) not in body and acme.slug not in body and not json.loads(body):
            failures.append(f"GET {path}: empty answer; the harness proves nothing about it")
    assert failures == []


async def test_foreign_ids_in_bodies_answer_404_and_store_nothing(
    harness: Harness, acme_and_globex: tuple[TenantWorld, TenantWorld]
) -> None:
    acme, globex = acme_and_globex
    before = {t.slug: await harness.snapshot(t) for t in (acme, globex)}
    failures: list[str] = []
    for (method, path), template in BODY_REFERENCES.items():
        own = {p: await harness.resource(acme, p) for p in path_params(path)}
        foreign = {p: await harness.resource(globex, p) for p in ID_FACTORIES}
        body = json.loads(fill(json.dumps(template), foreign))
        response = await harness.call(method, fill(path, own), acme, role=ROUTE_ROLES.get(path, DEFAULT_ROLE), json=body)
        if response.status_code != 404 or response.json().get("code") != "not_found":
            failures.append(f"{method} {path} with {globex.slug}'s ids in the body: {response.status_code} {response.text[:200]}")
    assert failures == []
    assert {t.slug: await harness.snapshot(t) for t in (acme, globex)} == before


async def test_operator_routes_refuse_tenant_tokens(
    harness: Harness, acme_and_globex: tuple[TenantWorld, TenantWorld], client: AsyncTestClient[Litestar]
) -> None:
    acme, _ = acme_and_globex
    failures: list[str] = []
    for method, path in http_routes(client.app):
        if not path.startswith(ADMIN_API):
            continue
        url = fill(path, {p: str(uuid.uuid4()) for p in path_params(path)})
        body = {} if method in WRITE_METHODS else None
        for role in (DEFAULT_ROLE, "supervisor"):
            response = await harness.call(method, url, acme, role=role, json=body)
            if response.status_code != 403:
                failures.append(f"{method} {path} with a {role} token: {response.status_code} {response.text[:200]}")
        anonymous = await harness.call(method, url, None, json=body)
        if anonymous.status_code != 401:
            failures.append(f"{method} {path} without a token: {anonymous.status_code}")
    assert failures == []


async def test_tenant_routes_refuse_operator_tokens(
    harness: Harness, acme_and_globex: tuple[TenantWorld, TenantWorld], client: AsyncTestClient[Litestar]
) -> None:
    """Operators act on tenants only through the admin API: a tenant-less token gets 403 in the tenant API."""
    acme, _ = acme_and_globex
    operator = harness.runtime.tokens.issue(
        Principal("operator", "op_harness", None, scopes=frozenset({"platform:tenants.read", "platform:tenants.write"}))
    )
    failures: list[str] = []
    for method, path in tenant_api_routes(client.app):
        if any(p not in ID_FACTORIES for p in path_params(path)):
            continue
        url = fill(path, {p: await harness.resource(acme, p) for p in path_params(path)})
        body = WRITE_BODIES.get((method, path)) or ({} if method in WRITE_METHODS else None)
        response = await harness.call(method, url, None, token=operator, json=body)
        if response.status_code not in (401, 403):
            failures.append(f"{method} {path} with an operator token: {response.status_code} {response.text[:200]}")
    assert failures == []


# --- websockets and the caller widget -------------------------------------------------


class AsgiSocket:
    """One websocket conversation with the app over raw ASGI messages, in the test's loop."""

    def __init__(self, app: Litestar, path: str, query: str) -> None:
        import asyncio

        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1", "path": path,
            "raw_path": path.encode(), "root_path": "", "query_string": query.encode(), "headers": [(b"host", b"testserver.local")],
            "client": ("127.0.0.1", 50000), "server": ("testserver.local", 80), "subprotocols": [],
        }
        self.inbound.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(app(scope, self.inbound.get, self.outbound.put))  # type: ignore[arg-type]

    async def first_answer(self) -> dict[str, Any]:
        """The first message after the handshake: a JSON frame or the close."""
        import asyncio

        while True:
            message = await asyncio.wait_for(self.outbound.get(), 5)
            if message["type"] != "websocket.accept":
                return message

    async def close(self) -> None:
        import asyncio

        await self.inbound.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 5)


async def test_caller_endpoints_refuse_another_tenants_call(settings: Settings) -> None:
    """A caller token of an Acme call opens neither Globex's call nor its socket; its own call it opens."""
    from kefu.platform.identity.passwords import token_hash
    from kefu.tenants.models import Call

    # Its own app driven over ASGI in this loop (the sockets need that), on a fresh database of ``backend``.
    runtime = Runtime.build(settings)
    app = create_app(runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver.local") as http:
        harness = Harness(runtime, http, runtime.db)  # type: ignore[arg-type]
        acme, globex = await harness.tenant("acme"), await harness.tenant("globex")
        tokens = {}
        for t in (acme, globex):
            call_id = await harness.resource(t, "call_id")
            tokens[t.slug] = f"{t.id.hex}.caller-secret-{t.slug}"  # caller tokens name their tenant
            async with runtime.db.tenant_session(tenant_id=t.id) as session:
                call = await session.get_one(Call, uuid.UUID(call_id))
                call.caller_token_hash = token_hash(tokens[t.slug])
        acme_token, globex_call = tokens["acme"], globex.resources["call_id"]
        own = await http.get(f"/api/v1/widget/calls/{acme.resources['call_id']}", headers={"X-Caller-Token": acme_token})
        assert own.status_code == 200, own.text
        for method, url in (("GET", f"/api/v1/widget/calls/{globex_call}"), ("POST", f"/api/v1/widget/calls/{globex_call}/hangup")):
            response = await http.request(method, url, headers={"X-Caller-Token": acme_token})
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), (method, url, response.text)
        foreign = AsgiSocket(app, f"/ws/caller/{globex_call}", f"caller_token={acme_token}")
        assert (await foreign.first_answer())["code"] == 4404
        await asyncio_wait(foreign.task)
        mine = AsgiSocket(app, f"/ws/caller/{acme.resources['call_id']}", f"caller_token={acme_token}")
        frame = await mine.first_answer()
        assert json.loads(frame["text"])["status"] == "ended"
        await mine.close()
        # Nothing about Globex's call changed.
        async with runtime.db.tenant_session(tenant_id=globex.id) as session:
            assert (await session.get_one(Call, uuid.UUID(globex_call))).status == "ended"
    await runtime.db.dispose()


async def asyncio_wait(task: Any) -> None:
    import asyncio

    await asyncio.wait_for(task, 5)


async def test_tenant_export_holds_every_own_resource_and_nothing_of_another_tenant(
    harness: Harness, acme_and_globex: tuple[TenantWorld, TenantWorld]
) -> None:
    """The operator's export of one tenant is that tenant's data as a whole, and only it."""
    acme, globex = acme_and_globex
    operator = harness.runtime.tokens.issue(
        Principal("operator", "op_harness", None, scopes=frozenset({"platform:tenants.read", "platform:tenants.export"}))
    )
    response = await harness.call("GET", f"/api/admin/v1/tenants/{acme.id}/export", None, token=operator)
    assert response.status_code == 200, response.text
    exported = response.text
    json.loads(exported)
    assert sorted(m for m in globex.markers() if m in exported) == []
    missing = sorted(name for name, value in acme.resources.items() if value not in exported)
    assert missing == []
