"""OAuth2 client credentials (RFC 6749 §4.4) for operators and tenant integrations, through the real API."""

from __future__ import annotations

import uuid

import httpx
from identity_support import Person, audit_rows, bearer, token_for
from sqlalchemy import select, update

from kefu.platform.identity import services
from kefu.platform.models import PlatformAuditEntry, Tenant
from kefu.platform.runtime import Runtime

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_operator_client_gets_an_operator_token_with_basic_auth(client: httpx.AsyncClient, runtime: Runtime) -> None:
    client_id, secret = await services.create_platform_client(runtime.db, name="ops", scopes=["platform:tenants.read", "platform:tenants.write"], actor="system")
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 900, "platform:tenants.read platform:tenants.write")
    principal = runtime.tokens.verify(body["access_token"])
    assert (principal.kind, principal.subject, principal.tenant_id) == ("operator", client_id, None)
    assert principal.scopes == frozenset({"platform:tenants.read", "platform:tenants.write"})
    async with runtime.db.platform_session(reason="test") as session:
        actions = [e.action for e in (await session.scalars(select(PlatformAuditEntry).order_by(PlatformAuditEntry.id))).all()]
    assert actions == ["platform_client.created", "oauth.token_issued"]


async def test_operator_client_may_narrow_scope_with_client_secret_post(client: httpx.AsyncClient, runtime: Runtime) -> None:
    client_id, secret = await services.create_platform_client(runtime.db, name="ops", scopes=["platform:tenants.read", "platform:tenants.write"], actor="system")
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "platform:tenants.read"}
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "platform:tenants.read"
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "platform:tenants.export"}
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


async def test_oauth_errors_follow_rfc6749(client: httpx.AsyncClient, runtime: Runtime) -> None:
    client_id, secret = await services.create_platform_client(runtime.db, name="ops", scopes=["platform:tenants.read"], actor="system")
    cases = [
        ({"grant_type": "client_credentials"}, (client_id, "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("op_nobody", secret), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ({"grant_type": "password"}, (client_id, secret), 400, "unsupported_grant_type"),
        ({}, (client_id, secret), 400, "invalid_request"),
        ({"grant_type": "client_credentials", "client_secret": secret}, (client_id, secret), 400, "invalid_request"),
    ]
    for form, auth, status, error in cases:
        response = await client.post("/oauth/token", data=form, auth=auth)
        assert (response.status_code, response.json()["error"]) == (status, error), form
    response = await client.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "wrong"))
    assert response.headers["www-authenticate"] == 'Basic realm="kefu"'


async def test_integration_client_lifecycle(client: httpx.AsyncClient, runtime: Runtime, alice: Person, gina: Person) -> None:
    admin = bearer(await token_for(client, alice))
    response = await client.post("/api/v1/integration-clients", json={"name": "CRM", "scopes": ["calls.read", "reports.read"]}, headers=admin)
    assert response.status_code == 201
    created = response.json()
    client_id, secret = created["client"]["client_id"], created["client_secret"]
    assert created["client"]["scopes"] == ["calls.read", "reports.read"] and created["client"]["revoked_at"] is None

    listed = (await client.get("/api/v1/integration-clients", headers=admin)).json()
    assert [c["client_id"] for c in listed] == [client_id] and "client_secret" not in listed[0]

    response = await client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "calls.read"}, auth=(client_id, secret))
    assert response.status_code == 200
    principal = runtime.tokens.verify(response.json()["access_token"])
    assert (principal.kind, principal.subject, principal.tenant_id, principal.scopes) == ("integration", client_id, alice.tenant_id, frozenset({"calls.read"}))

    # Another tenant's admin cannot see or revoke it: 404 like a missing client.
    other = bearer(await token_for(client, gina))
    assert (await client.get("/api/v1/integration-clients", headers=other)).json() == []
    assert (await client.delete(f"/api/v1/integration-clients/{client_id}", headers=other)).status_code == 404
    assert (await client.delete("/api/v1/integration-clients/int_missing", headers=other)).status_code == 404

    assert (await client.delete(f"/api/v1/integration-clients/{client_id}", headers=admin)).status_code == 204
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")

    rows = [r for r in await audit_rows(runtime, alice.tenant_id) if r[1].startswith(("integration_client", "oauth"))]
    actor = f"user:{alice.user_id}"
    assert rows == [
        (actor, "integration_client.created", f"client:{client_id}", {"name": "CRM", "scopes": ["calls.read", "reports.read"]}),
        (f"client:{client_id}", "oauth.token_issued", f"client:{client_id}", {"scope": "calls.read"}),
        (actor, "integration_client.revoked", f"client:{client_id}", {}),
        (f"client:{client_id}", "oauth.client_auth_failed", f"client:{client_id}", {}),
    ]


async def test_integration_clients_only_get_integration_scopes(client: httpx.AsyncClient, alice: Person) -> None:
    admin = bearer(await token_for(client, alice))
    for scopes in (["platform:tenants.write"], ["directory.users.write"], []):
        response = await client.post("/api/v1/integration-clients", json={"name": "x", "scopes": scopes}, headers=admin)
        assert (response.status_code, response.json()["code"]) == (400, "unknown_scope")


async def test_agents_cannot_manage_integration_clients(client: httpx.AsyncClient, bob: Person) -> None:
    response = await client.get("/api/v1/integration-clients", headers=bearer(await token_for(client, bob)))
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


async def test_suspended_tenant_integration_gets_no_token(client: httpx.AsyncClient, runtime: Runtime, acme: uuid.UUID) -> None:
    async with runtime.db.tenant_session(tenant_id=acme) as session:
        view, secret = await services.create_integration_client(session, tenant_id=acme, name="CRM", scopes=["calls.read"], actor="system")
    async with runtime.db.platform_session(reason="test") as session:
        await session.execute(update(Tenant).where(Tenant.id == acme).values(status="suspended"))
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(view.client_id, secret))
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


async def test_client_secrets_are_compared_by_the_one_same_hash(client: httpx.AsyncClient, runtime: Runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from kefu.platform.identity import oauth, passwords

    assert passwords.same_hash(passwords.token_hash("s3cret"), "s3cret") is True
    assert passwords.same_hash(passwords.token_hash("s3cret"), "s3cret!") is False
    compared: list[str] = []

    def spy(stored: str, token: str) -> bool:
        compared.append(token)
        return passwords.same_hash(stored, token)

    monkeypatch.setattr(oauth, "same_hash", spy)
    client_id, secret = await services.create_platform_client(runtime.db, name="ops", scopes=["platform:tenants.read"], actor="system")
    assert (await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))).status_code == 200
    assert (await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "wrong"))).status_code == 401
    assert compared == [secret, "wrong"]
