"""Users, roles, invitations and the audit log through the tenant admin API (both backends)."""

from __future__ import annotations

import uuid

import httpx
from identity_support import Person, audit_rows, bearer, login, token_for

from kefu.platform.runtime import Runtime


async def test_admin_invites_a_user_who_accepts_and_signs_in(client: httpx.AsyncClient, runtime: Runtime, alice: Person) -> None:
    admin = bearer(await token_for(client, alice))
    response = await client.post("/api/v1/users", json={"email": "Carol@Acme.test", "display_name": "Carol", "roles": ["agent"], "locale": "zh-CN"}, headers=admin)
    assert response.status_code == 201
    body = response.json()
    assert (body["user"]["email"], body["user"]["status"], body["user"]["roles"], body["user"]["locale"]) == ("carol@acme.test", "invited", ["agent"], "zh-CN")
    prefix = f"{runtime.settings.public_url}/invite#"
    assert body["invitation_link"].startswith(prefix)
    token = body["invitation_link"][len(prefix):]

    # Not a password yet: the invited account cannot log in.
    carol = Person(alice.tenant_id, "acme", uuid.UUID(body["user"]["id"]), "carol@acme.test", "carol's password")
    assert (await login(client, carol)).status_code == 401

    response = await client.post("/api/v1/invitations/accept", json={"token": token, "password": "short"})
    assert (response.status_code, response.json()["code"]) == (400, "password_too_short")
    response = await client.post("/api/v1/invitations/accept", json={"token": token, "password": carol.password})
    assert response.status_code == 200 and response.json()["user"]["email"] == "carol@acme.test"
    response = await client.post("/api/v1/invitations/accept", json={"token": token, "password": carol.password})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_invitation")
    assert (await login(client, carol)).status_code == 200
    rows = (await audit_rows(runtime, alice.tenant_id))[-5:]
    assert [r[1] for r in rows] == ["user.created", "login.failed", "invitation.accepted", "login.succeeded", "login.succeeded"]
    assert [r[3].get("method") for r in rows[-2:]] == ["invitation", "password"]


async def test_duplicate_email_answers_409(client: httpx.AsyncClient, alice: Person, bob: Person) -> None:
    admin = bearer(await token_for(client, alice))
    response = await client.post("/api/v1/users", json={"email": "BOB@acme.test", "display_name": "Bob 2", "roles": ["agent"]}, headers=admin)
    assert (response.status_code, response.json()["code"]) == (409, "email_taken")
    response = await client.post("/api/v1/users", json={"email": "x@acme.test", "display_name": "X", "roles": ["boss"]}, headers=admin)
    assert (response.status_code, response.json()["code"]) == (400, "unknown_role")
    response = await client.post("/api/v1/users", json={"email": "x@acme.test", "display_name": "X", "roles": [], "tenant_id": str(uuid.uuid4())}, headers=admin)
    assert response.status_code == 400


async def test_users_list_pages_and_stays_in_the_tenant(client: httpx.AsyncClient, alice: Person, bob: Person, gina: Person) -> None:
    admin = bearer(await token_for(client, alice))
    page = (await client.get("/api/v1/users?limit=1", headers=admin)).json()
    assert ([u["email"] for u in page["items"]], page["total"], page["limit"], page["offset"]) == (["alice@acme.test"], 2, 1, 0)
    page = (await client.get("/api/v1/users?limit=1&offset=1", headers=admin)).json()
    assert [u["email"] for u in page["items"]] == ["bob@acme.test"]
    assert (await client.get("/api/v1/users?limit=0", headers=admin)).status_code == 400
    assert (await client.get(f"/api/v1/users/{gina.user_id}", headers=admin)).status_code == 404
    assert (await client.get(f"/api/v1/users/{uuid.uuid4()}", headers=admin)).status_code == 404
    assert (await client.patch(f"/api/v1/users/{gina.user_id}", json={"status": "disabled"}, headers=admin)).status_code == 404
    assert (await client.put(f"/api/v1/users/{gina.user_id}/roles", json={"roles": ["agent"]}, headers=admin)).status_code == 404


async def test_role_change_is_audited_and_takes_effect_on_next_token(client: httpx.AsyncClient, runtime: Runtime, alice: Person, bob: Person) -> None:
    admin = bearer(await token_for(client, alice))
    bob_tokens = (await login(client, bob)).json()
    assert (await client.get("/api/v1/users", headers=bearer(bob_tokens["access_token"]))).status_code == 403
    response = await client.put(f"/api/v1/users/{bob.user_id}/roles", json={"roles": ["supervisor", "agent"]}, headers=admin)
    assert (response.status_code, response.json()["roles"]) == (200, ["agent", "supervisor"])
    assert (await audit_rows(runtime, alice.tenant_id))[-1] == (
        f"user:{alice.user_id}", "user.roles_changed", f"user:{bob.user_id}", {"before": ["agent"], "after": ["agent", "supervisor"]}
    )
    refreshed = (await client.post("/api/v1/auth/refresh", json={"refresh_token": bob_tokens["refresh_token"]})).json()
    assert refreshed["user"]["roles"] == ["agent", "supervisor"]
    assert (await client.get("/api/v1/users", headers=bearer(refreshed["access_token"]))).status_code == 200


async def test_admin_cannot_disable_themselves(client: httpx.AsyncClient, alice: Person) -> None:
    admin = bearer(await token_for(client, alice))
    response = await client.patch(f"/api/v1/users/{alice.user_id}", json={"status": "disabled"}, headers=admin)
    assert (response.status_code, response.json()["code"]) == (409, "cannot_disable_self")
    response = await client.patch(f"/api/v1/users/{alice.user_id}", json={"status": "sleeping"}, headers=admin)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_status")


async def test_audit_log_api_is_newest_first_paged_and_permissioned(client: httpx.AsyncClient, alice: Person, bob: Person) -> None:
    await login(client, bob, password="wrong password!")
    admin = bearer(await token_for(client, alice))
    page = (await client.get("/api/v1/audit-log?limit=2", headers=admin)).json()
    assert [(e["action"], e["actor"]) for e in page["items"]] == [
        ("login.succeeded", f"user:{alice.user_id}"),
        ("login.failed", f"user:{bob.user_id}"),
    ]
    assert page["items"][0]["ip"] == "203.0.113.7"
    assert page["items"][1]["detail"] == {"method": "password", "reason": "bad_password", "consecutive": 1}
    rest = (await client.get(f"/api/v1/audit-log?before_id={page['next_before_id']}", headers=admin)).json()
    assert [e["action"] for e in rest["items"]] == ["user.created", "user.created"] and rest["next_before_id"] is None
    response = await client.get("/api/v1/audit-log", headers=bearer(await token_for(client, bob)))
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
