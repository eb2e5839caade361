"""Password log-in, lock-out, refresh rotation, log-out and /me through the real API (both backends)."""

from __future__ import annotations

import asyncio
import uuid

from identity_support import FakeClock, Person, audit_rows, bearer, login
from litestar.testing import AsyncTestClient
from sqlalchemy import event, update

from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime


async def test_login_answers_tokens_user_and_tenant(client: AsyncTestClient, runtime: Runtime, alice: Person) -> None:
    response = await login(client, alice)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"].startswith(alice.tenant_id.hex + ".")
    assert body["user"] == {"id": str(alice.user_id), "email": "alice@acme.test", "display_name": "Alice", "roles": ["tenant_admin"], "locale": None}
    assert body["tenant"] == {"id": str(alice.tenant_id), "slug": "acme", "name": "Acme Corp", "locale": "en"}
    principal = runtime.tokens.verify(body["access_token"])
    assert (principal.kind, principal.subject, principal.tenant_id, principal.roles) == ("user", str(alice.user_id), alice.tenant_id, frozenset({"tenant_admin"}))
    assert (await audit_rows(runtime, alice.tenant_id))[-1] == (f"user:{alice.user_id}", "login.succeeded", f"user:{alice.user_id}", {"method": "password"})


async def test_me_returns_the_signed_in_user(client: AsyncTestClient, alice: Person) -> None:
    token = (await login(client, alice)).json()["access_token"]
    response = await client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == "alice@acme.test" and body["tenant"]["slug"] == "acme"
    assert "directory.users.write" in body["permissions"]


async def test_unknown_tenant_unknown_email_and_wrong_password_all_answer_invalid_credentials(
    client: AsyncTestClient, runtime: Runtime, alice: Person
) -> None:
    attempts = [
        {"tenant": "nope", "email": alice.email, "password": alice.password},
        {"tenant": "acme", "email": "nobody@acme.test", "password": alice.password},
        {"tenant": "acme", "email": alice.email, "password": "wrong password!"},
    ]
    for attempt in attempts:
        response = await client.post("/api/v1/auth/login", json=attempt)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
        assert response.headers["content-type"] == "application/problem+json"
    rows = await audit_rows(runtime, alice.tenant_id)
    assert rows[-2:] == [
        ("anonymous", "login.failed", None, {"method": "password", "reason": "unknown_email", "email": "nobody@acme.test"}),
        (f"user:{alice.user_id}", "login.failed", f"user:{alice.user_id}", {"method": "password", "reason": "bad_password", "consecutive": 1}),
    ]


async def test_suspended_and_closed_tenants_answer_403(client: AsyncTestClient, runtime: Runtime, alice: Person) -> None:
    token = (await login(client, alice)).json()["access_token"]
    for status in ("suspended", "closed"):
        async with runtime.db.platform_session(reason="test") as session:
            await session.execute(update(Tenant).where(Tenant.id == alice.tenant_id).values(status=status))
        response = await login(client, alice)
        assert (response.status_code, response.json()["code"]) == (403, f"tenant_{status}")
        # Tokens issued before stop working at once.
        response = await client.get("/api/v1/me", headers=bearer(token))
        assert (response.status_code, response.json()["code"]) == (403, f"tenant_{status}")
    # A wrong password still answers 401: the tenant's status is no oracle for guessers.
    response = await login(client, alice, password="wrong password!")
    assert response.status_code == 401


async def test_disabled_user_cannot_log_in_and_loses_sessions(client: AsyncTestClient, runtime: Runtime, alice: Person, bob: Person) -> None:
    admin = (await login(client, alice)).json()["access_token"]
    bob_refresh = (await login(client, bob)).json()["refresh_token"]
    response = await client.patch(f"/api/v1/users/{bob.user_id}", json={"status": "disabled"}, headers=bearer(admin))
    assert (response.status_code, response.json()["status"]) == (200, "disabled")
    response = await login(client, bob)
    assert (response.status_code, response.json()["code"]) == (403, "user_disabled")
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": bob_refresh})
    assert (response.status_code, response.json()["code"]) == (401, "invalid_refresh_token")
    assert (f"user:{alice.user_id}", "user.disabled", f"user:{bob.user_id}", {"status": "disabled"}) in await audit_rows(runtime, alice.tenant_id)


async def test_lockout_after_max_failures_then_unlocks_after_lockout_period(
    client: AsyncTestClient, runtime: Runtime, alice: Person, clock: FakeClock
) -> None:
    auth = runtime.settings.auth
    for _ in range(auth.login_max_failures):
        assert (await login(client, alice, password="wrong password!")).status_code == 401
    response = await login(client, alice)  # even the right password is refused while locked
    assert response.status_code == 429
    assert response.json()["code"] == "login_locked"
    assert response.headers["retry-after"] == str(auth.login_lockout_s)
    clock.advance(auth.login_lockout_s - 10)
    response = await login(client, alice)
    assert (response.status_code, response.headers["retry-after"]) == (429, "10")
    clock.advance(10)
    assert (await login(client, alice)).status_code == 200
    actions = [row[1] for row in await audit_rows(runtime, alice.tenant_id)]
    assert actions[1:] == ["login.failed"] * auth.login_max_failures + ["user.locked", "login.failed", "login.failed", "login.succeeded"]


async def test_success_resets_the_consecutive_failure_count(client: AsyncTestClient, alice: Person, clock: FakeClock, runtime: Runtime) -> None:
    for _ in range(runtime.settings.auth.login_max_failures - 1):
        await login(client, alice, password="wrong password!")
    assert (await login(client, alice)).status_code == 200
    assert (await login(client, alice, password="wrong password!")).status_code == 401
    assert (await login(client, alice)).status_code == 200


async def test_per_ip_limiter_stops_spraying_unknown_emails(client: AsyncTestClient, runtime: Runtime, acme: uuid.UUID, clock: FakeClock) -> None:
    limiter = runtime.components["identity"].ip_limiter
    limiter.max_failures, limiter.window_s = 3, 60
    for n in range(3):
        response = await client.post("/api/v1/auth/login", json={"tenant": "acme", "email": f"u{n}@acme.test", "password": "whatever12"})
        assert response.status_code == 401
    response = await client.post("/api/v1/auth/login", json={"tenant": "acme", "email": "u9@acme.test", "password": "whatever12"})
    assert (response.status_code, response.json()["code"], response.headers["retry-after"]) == (429, "login_rate_limited", "60")
    clock.advance(60)
    response = await client.post("/api/v1/auth/login", json={"tenant": "acme", "email": "u9@acme.test", "password": "whatever12"})
    assert response.status_code == 401


async def test_refresh_rotates_and_reuse_of_a_rotated_token_revokes_the_family(client: AsyncTestClient, runtime: Runtime, alice: Person) -> None:
    first = (await login(client, alice)).json()["refresh_token"]
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert response.status_code == 200
    second = response.json()["refresh_token"]
    assert second != first and runtime.tokens.verify(response.json()["access_token"]).subject == str(alice.user_id)
    # The old token was rotated: presenting it again is reuse ...
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert (response.status_code, response.json()["code"]) == (401, "invalid_refresh_token")
    # ... which revoked its successor too.
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert (response.status_code, response.json()["code"]) == (401, "invalid_refresh_token")
    assert (await audit_rows(runtime, alice.tenant_id))[-1] == (
        f"user:{alice.user_id}", "refresh_token.reused", f"user:{alice.user_id}", {"family_revoked": 1}
    )


async def test_refresh_token_expires(client: AsyncTestClient, runtime: Runtime, alice: Person, clock: FakeClock) -> None:
    token = (await login(client, alice)).json()["refresh_token"]
    clock.advance(runtime.settings.auth.refresh_token_ttl_s)
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert (response.status_code, response.json()["code"]) == (401, "invalid_refresh_token")


async def test_garbage_refresh_tokens_are_401_not_500(client: AsyncTestClient, alice: Person) -> None:
    for token in ("x", "not.a-token", f"{uuid.uuid4().hex}.nope", "é" * 50):
        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert (response.status_code, response.json()["code"]) == (401, "invalid_refresh_token")


async def test_logout_revokes_the_refresh_token(client: AsyncTestClient, runtime: Runtime, alice: Person) -> None:
    token = (await login(client, alice)).json()["refresh_token"]
    assert (await client.post("/api/v1/auth/logout", json={"refresh_token": token})).status_code == 204
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 401
    assert (await audit_rows(runtime, alice.tenant_id))[-1] == (
        f"user:{alice.user_id}", "logout", f"user:{alice.user_id}", {"all_sessions": False, "revoked": 1}
    )


async def test_logout_everywhere_revokes_every_session_of_the_user(client: AsyncTestClient, alice: Person) -> None:
    first = (await login(client, alice)).json()
    second = (await login(client, alice)).json()
    response = await client.post("/api/v1/auth/logout", json={"all_sessions": True}, headers=bearer(first["access_token"]))
    assert response.status_code == 204
    for token in (first["refresh_token"], second["refresh_token"]):
        assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": token})).status_code == 401
    response = await client.post("/api/v1/auth/logout", json={"all_sessions": True})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


async def test_bad_login_bodies_are_400_problems(client: AsyncTestClient, acme: uuid.UUID) -> None:
    cases = [
        b"{not json",
        b'{"tenant": "acme", "email": "a@b.c"}',
        b'{"tenant": "acme", "email": "a@b.c", "password": "x", "admin": true}',
        b'{"tenant": 5, "email": "a@b.c", "password": "x"}',
    ]
    for body in cases:
        response = await client.post("/api/v1/auth/login", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body
        assert response.json()["code"] in ("malformed_body", "validation_error")


async def test_concurrent_wrong_passwords_lock_the_account_exactly_at_the_limit(
    client: AsyncTestClient, runtime: Runtime, alice: Person, clock: FakeClock
) -> None:
    limit = runtime.settings.auth.login_max_failures
    extra = 3
    responses = await asyncio.gather(*(login(client, alice, password=f"wrong password {n}") for n in range(limit + extra)))
    assert sorted(r.status_code for r in responses) == [401] * limit + [429] * extra
    assert sorted(r.json()["code"] for r in responses) == ["invalid_credentials"] * limit + ["login_locked"] * extra
    rows = await audit_rows(runtime, alice.tenant_id)
    counted = sorted(r[3]["consecutive"] for r in rows if r[1] == "login.failed" and r[3]["reason"] == "bad_password")
    assert counted == list(range(1, limit + 1))
    assert [r[1] for r in rows].count("user.locked") == 1
    assert [r[3]["reason"] for r in rows if r[1] == "login.failed"].count("locked") == extra
    # Locked: even the right password is refused for the whole lock-out period.
    response = await login(client, alice)
    assert (response.status_code, response.json()["code"], response.headers["retry-after"]) == (
        429, "login_locked", str(runtime.settings.auth.login_lockout_s)
    )


async def test_disabling_a_user_stops_their_access_token_at_once_in_one_query(
    client: AsyncTestClient, runtime: Runtime, alice: Person, bob: Person
) -> None:
    admin = (await login(client, alice)).json()["access_token"]
    bob_token = (await login(client, bob)).json()["access_token"]
    assert (await client.get("/api/v1/me", headers=bearer(bob_token))).status_code == 200
    response = await client.patch(f"/api/v1/users/{bob.user_id}", json={"status": "disabled"}, headers=bearer(admin))
    assert response.status_code == 200
    response = await client.get("/api/v1/me", headers=bearer(bob_token))
    assert (response.status_code, response.json()["code"]) == (403, "user_disabled")
    response = await client.patch(f"/api/v1/users/{bob.user_id}", json={"status": "active"}, headers=bearer(admin))
    assert response.status_code == 200
    assert (await client.get("/api/v1/me", headers=bearer(bob_token))).status_code == 200

    # The tenant and the user are checked in one round trip.
    statements: list[str] = []

    def remember(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", remember)
    try:
        assert (await client.get("/api/v1/audit-log", headers=bearer(admin))).status_code == 200
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", remember)
    status_checks = [s for s in statements if "tenants" in s]
    assert len(status_checks) == 1 and "users.status" in status_checks[0]


async def test_integration_tokens_skip_the_user_check(client: AsyncTestClient, runtime: Runtime, alice: Person) -> None:
    admin = (await login(client, alice)).json()["access_token"]
    created = await client.post("/api/v1/integration-clients", json={"name": "crm", "scopes": ["directory.users.read"]}, headers=bearer(admin))
    assert created.status_code == 201, created.text
    body = created.json()
    issued = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": body["client"]["client_id"], "client_secret": body["client_secret"]}
    )
    assert issued.status_code == 200, issued.text
    assert (await client.get("/api/v1/users", headers=bearer(issued.json()["access_token"]))).status_code == 200
