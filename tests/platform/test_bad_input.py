"""Bad input never answers 500 and never changes what is stored.

Generated from the route table: every POST/PUT/PATCH route that reads a JSON
body gets malformed JSON, a JSON array, a body over ``max_body_bytes``, an
object whose every field has the wrong type, and an object with only unknown
fields.  Each must answer 4xx as an RFC 9457 problem with a stable ``code``,
and the row count of every table must be unchanged.  Tokens that are
expired, tampered with, signed by another key or not JWTs at all answer 401.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from kefu.billing.services import open_account
from kefu.platform.db import Database
from kefu.platform.db.registry import metadata
from kefu.platform.identity import services as identity
from kefu.platform.identity.keys import SigningKeys
from kefu.platform.identity.permissions import PLATFORM_SCOPES
from kefu.platform.identity.principal import Principal
from kefu.platform.identity.tokens import TokenService
from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime
from kefu.platform.settings import load_settings
from kefu.tenants import agents as agents_service

WRITE_METHODS = ("POST", "PUT", "PATCH")


@dataclass
class Callers:
    tenant_id: uuid.UUID
    admin: str
    agent: str
    operator: str

    def token_for(self, path: str) -> str:
        if path.startswith("/api/admin/"):
            return self.operator
        if path.startswith("/api/v1/agent/"):
            return self.agent
        return self.admin


@pytest.fixture
async def db(runtime: Runtime) -> AsyncIterator[Database]:
    # The test client runs the app on its own loop; the test keeps its own pool.
    database = Database(runtime.settings.db)
    yield database
    await database.dispose()


@pytest.fixture
async def callers(runtime: Runtime, db: Database) -> Callers:
    async with db.platform_session(reason="test: bad input tenant") as session:
        tenant = Tenant(slug="acme", name="Acme")
        session.add(tenant)
        await session.flush()
        tenant_id = tenant.id
        await open_account(session, tenant_id=tenant_id, seats=10, actor="test")
    async with db.tenant_session(tenant_id=tenant_id) as session:
        admin = await identity.create_user(
            session, tenant_id=tenant_id, email="alice@acme.test", display_name="Alice", roles=["tenant_admin"], actor="system",
            password="correct horse battery",
        )
        seat, _ = await agents_service.create_agent(
            session, tenant_id=tenant_id, email="bob@acme.test", display_name="Bob", actor="system", password="correct horse battery"
        )
    tokens = runtime.tokens
    return Callers(
        tenant_id=tenant_id,
        admin=tokens.issue(Principal.user(user_id=admin.user_id, tenant_id=tenant_id, roles=frozenset({"tenant_admin"}))),
        agent=tokens.issue(Principal.user(user_id=seat.user_id, tenant_id=tenant_id, roles=frozenset({"agent"}))),
        operator=tokens.issue(Principal("operator", "op_bad_input", None, scopes=frozenset(PLATFORM_SCOPES))),
    )


async def row_counts(db: Database) -> dict[str, int]:
    counts = {}
    async with db.platform_session(reason="test: row counts") as session:
        for name, table in sorted(metadata().tables.items()):
            counts[name] = await session.scalar(select(func.count()).select_from(table))
    return counts


def json_body_routes(app: Litestar) -> list[tuple[str, str, type | None]]:
    """(method, path, request Struct or None) of every write route that reads a body."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in WRITE_METHODS:
            if method not in route.methods:
                continue
            handler, _ = route.route_handler_map[method]  # type: ignore[index]
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None:
                continue
            annotation = data.annotation
            found.append((method, route.path, annotation if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct) else None))
    return found


def fill_path(path: str) -> str:
    import re

    return re.sub(r"\{(\w+):uuid\}", lambda _: str(uuid.uuid4()), re.sub(r"\{(\w+):str\}", "no-such-key", path))


def wrong_types(struct: type | None) -> dict[str, object]:
    """Every field of the request type with a value of the wrong type (an object fits no scalar or list)."""
    if struct is None:
        return {"value": {"wrong": ["type"]}}
    return {f.encode_name: {"wrong": ["type"]} for f in msgspec.structs.fields(struct)}


def is_problem(response) -> bool:  # type: ignore[no-untyped-def]
    return response.headers.get("content-type", "").startswith("application/problem+json")


async def test_every_json_route_answers_bad_bodies_with_a_4xx_problem_and_stores_nothing(
    client: AsyncTestClient[Litestar], callers: Callers, db: Database, runtime: Runtime
) -> None:
    routes = json_body_routes(client.app)
    assert ("POST", "/api/v1/users", ) in {(m, p) for m, p, _ in routes}
    limit = runtime.settings.max_body_bytes
    before = await row_counts(db)
    failures: list[str] = []
    for method, path, struct in routes:
        url = fill_path(path)
        headers = {"Authorization": f"Bearer {callers.token_for(path)}", "Content-Type": "application/json"}
        cases: list[tuple[str, bytes, set[int], str | None]] = [
            ("malformed JSON", b'{"name": "x", ', {400}, None),
            ("a JSON array", b"[]", {400}, None),
            ("a JSON string", b'"hello"', {400}, None),
            # An optional body may be left out; then the random id in the path answers 404.
            ("an empty body", b"", {400, 404}, None),
            ("wrong-typed fields", json.dumps(wrong_types(struct)).encode(), {400}, None),
            ("only unknown fields", json.dumps({"zz_unknown_field": 1}).encode(), {400}, None),
            ("an oversized body", b'{"name": "' + b"x" * (limit + 1) + b'"}', {413}, "payload_too_large"),
        ]
        for label, body, statuses, code in cases:
            response = await client.request(method, url, content=body, headers=headers)
            problem = response.json() if is_problem(response) else {}
            if response.status_code not in statuses or not is_problem(response) or not problem.get("code"):
                failures.append(f"{method} {path} with {label}: {response.status_code} {response.text[:160]}")
            elif code is not None and problem["code"] != code:
                failures.append(f"{method} {path} with {label}: code {problem['code']!r}, expected {code!r}")
            elif problem.get("status") != response.status_code:
                failures.append(f"{method} {path} with {label}: problem status {problem.get('status')} != {response.status_code}")
    assert failures == []
    assert await row_counts(db) == before


async def test_malformed_json_has_the_stable_code_malformed_body(client: AsyncTestClient[Litestar], callers: Callers) -> None:
    response = await client.post(
        "/api/v1/queues", content=b'{"name": ', headers={"Authorization": f"Bearer {callers.admin}", "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_body"


async def test_unknown_field_next_to_valid_ones_is_refused_and_nothing_is_created(
    client: AsyncTestClient[Litestar], callers: Callers, db: Database
) -> None:
    before = await row_counts(db)
    headers = {"Authorization": f"Bearer {callers.admin}"}
    for path, body in (
        ("/api/v1/queues", {"name": "Support", "max_wait_s": 60, "colour": "red"}),
        ("/api/v1/users", {"email": "carol@acme.test", "display_name": "Carol", "roles": ["agent"], "tenant_id": str(uuid.uuid4())}),
    ):
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "validation_error"
        assert is_problem(response)
    assert await row_counts(db) == before
    # The same bodies without the unknown field are accepted: the refusal was about that field.
    created = await client.post("/api/v1/queues", json={"name": "Support", "max_wait_s": 60}, headers=headers)
    assert created.status_code == 201, created.text


async def test_oversized_body_is_413_payload_too_large(client: AsyncTestClient[Litestar], callers: Callers, runtime: Runtime, db: Database) -> None:
    before = await row_counts(db)
    body = json.dumps({"name": "x" * runtime.settings.max_body_bytes}).encode()
    response = await client.post(
        "/api/v1/queues", content=body, headers={"Authorization": f"Bearer {callers.admin}", "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await row_counts(db) == before


async def test_oauth_token_endpoint_answers_garbage_with_an_oauth_error(client: AsyncTestClient[Litestar]) -> None:
    for body, content_type in ((b"{not a form", "application/json"), (b"grant_type=password&x=%zz", "application/x-www-form-urlencoded"),
                               (b"", "application/x-www-form-urlencoded")):
        response = await client.post("/oauth/token", content=body, headers={"Content-Type": content_type})
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"] in ("invalid_request", "unsupported_grant_type", "invalid_client")


# --- tokens -----------------------------------------------------------------------


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["tenant_admin"]
    claims["tid"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _unsigned(token: str) -> str:
    _, payload, _ = token.split(".")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}."


async def test_bad_tokens_answer_401_with_stable_codes(
    client: AsyncTestClient[Litestar], callers: Callers, runtime: Runtime, db: Database, tmp_path
) -> None:
    principal = runtime.tokens.verify(callers.admin)
    expired = runtime.tokens.issue(principal, now=time.time() - 3600, ttl_s=60)
    other_keys = SigningKeys(load_settings({"KEFU_DATA_DIR": str(tmp_path / "elsewhere")}).auth.signing_key_pem)
    foreign = TokenService(other_keys, issuer=runtime.settings.auth.issuer, ttl_s=600).issue(principal)
    wrong_issuer = TokenService(runtime.keys, issuer="https://evil.test", ttl_s=600).issue(principal)
    cases = {
        "expired": (expired, "token_expired"),
        "tampered claims": (_tamper(callers.admin), "invalid_token"),
        "alg none": (_unsigned(callers.admin), "invalid_token"),
        "signed by another key": (foreign, "invalid_token"),
        "another issuer": (wrong_issuer, "invalid_token"),
        "not a JWT": ("not-a-jwt", "invalid_token"),
        "truncated": (callers.admin[:-10], "invalid_token"),
    }
    before = await row_counts(db)
    for label, (token, code) in cases.items():
        for method, path, body in (("GET", "/api/v1/users", None), ("POST", "/api/v1/queues", {"name": f"by {label}"})):
            response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (label, path, response.text)
            assert is_problem(response)
            assert response.json()["code"] == code, (label, path)
    assert await row_counts(db) == before
    # The genuine token still works, so the 401s were about the tokens.
    assert (await client.get("/api/v1/users", headers={"Authorization": f"Bearer {callers.admin}"})).status_code == 200


async def test_bad_path_and_query_parameters_are_4xx_problems(client: AsyncTestClient[Litestar], callers: Callers) -> None:
    headers = {"Authorization": f"Bearer {callers.admin}"}
    for path in ("/api/v1/users/not-a-uuid", "/api/v1/queues/123", "/api/v1/users?limit=abc", "/api/v1/users?limit=100000",
                 "/api/v1/users?offset=-1", "/api/v1/calls?limit=0"):
        response = await client.get(path, headers=headers)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert is_problem(response), path
        assert response.json()["code"] in ("validation_error", "not_found", "bad_request"), (path, response.text)
