"""A tenant's whole life through the public APIs: onboarded by an operator, its
admin accepts the invitation, an agent goes ready; suspension logs the agent
out and locks everyone out; resumption lets them back in."""

from __future__ import annotations

import uuid

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from kefu.platform.identity.principal import Principal
from kefu.platform.models import AuditEntry
from kefu.platform.runtime import Runtime
from kefu.tenants.models import Agent

ADMIN = "/api/admin/v1/tenants"
SCOPES = frozenset({"platform:tenants.read", "platform:tenants.write", "platform:tenants.export"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def log_in(client: AsyncTestClient, email: str, password: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/auth/login", json={"tenant": "northwind", "email": email, "password": password})


async def test_suspension_logs_agents_out_and_locks_the_tenant_until_resumed(client: AsyncTestClient, runtime: Runtime) -> None:
    operator = bearer(runtime.tokens.issue(Principal(kind="operator", subject="ops-1", tenant_id=None, scopes=SCOPES)))
    created = await client.post(
        ADMIN,
        json={"name": "Northwind", "slug": "northwind", "locale": "en", "time_zone": "Europe/London", "plan": "standard", "seats": 5,
              "admin": {"email": "nina@northwind.test", "display_name": "Nina"}},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    tenant_id = uuid.UUID(created.json()["tenant"]["id"])
    invitation = created.json()["admin"]["invitation_url"].split("#", 1)[1]

    accepted = await client.post("/api/v1/invitations/accept", json={"token": invitation, "password": "nina-password-1"})
    assert accepted.status_code == 200, accepted.text
    admin = bearer(accepted.json()["access_token"])
    agent_created = await client.post(
        "/api/v1/agents", json={"email": "omar@northwind.test", "display_name": "Omar", "password": "omar-password-1"}, headers=admin
    )
    assert agent_created.status_code == 201, agent_created.text

    agent_login = await log_in(client, "omar@northwind.test", "omar-password-1")
    assert agent_login.status_code == 200
    agent = bearer(agent_login.json()["access_token"])
    assert (await client.post("/api/v1/agent/session", headers=agent)).status_code == 200
    ready = await client.put("/api/v1/agent/status", json={"status": "available"}, headers=agent)
    assert ready.json()["status"] == "available"

    suspended = await client.post(f"{ADMIN}/{tenant_id}/suspend", json={"reason": "unpaid invoice"}, headers=operator)
    assert suspended.json()["status"] == "suspended"

    async with runtime.db.platform_session(reason="test check") as session:
        assert (await session.scalar(select(Agent.status).where(Agent.tenant_id == tenant_id))) == "offline"
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == "tenant.suspended")
        )
        assert entry.detail == {"reason": "unpaid invoice", "agents_logged_out": 1}
    refused = await log_in(client, "omar@northwind.test", "omar-password-1")
    assert (refused.status_code, refused.json()["code"]) == (403, "tenant_suspended")
    old_token = await client.get("/api/v1/agent/state", headers=agent)
    assert (old_token.status_code, old_token.json()["code"]) == (403, "tenant_suspended")
    admin_refused = await client.get("/api/v1/agents", headers=admin)
    assert (admin_refused.status_code, admin_refused.json()["code"]) == (403, "tenant_suspended")

    assert (await client.post(f"{ADMIN}/{tenant_id}/resume", headers=operator)).json()["status"] == "active"
    again = await log_in(client, "omar@northwind.test", "omar-password-1")
    assert again.status_code == 200
    state = await client.get("/api/v1/agent/state", headers=bearer(again.json()["access_token"]))
    assert state.json()["status"] == "offline"
