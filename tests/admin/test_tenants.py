"""Admin API: operators create, list, update, suspend, resume, close, export and purge tenants."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
import uuid
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from kefu.platform.db.base import utcnow
from kefu.platform.db import Database
from kefu.platform.identity.principal import Principal
from kefu.platform.models import AuditEntry, Invitation, OutboxEvent, PlatformAuditEntry, Tenant, User
from kefu.platform.runtime import Runtime

BASE = "/api/admin/v1/tenants"


@pytest.fixture
async def check_db(runtime: Runtime) -> AsyncIterator[Database]:
    """The test's own connections (the app's pool belongs to the test client's loop)."""
    db = Database(runtime.settings.db)
    yield db
    await db.dispose()
ALL_SCOPES = frozenset({"platform:tenants.read", "platform:tenants.write", "platform:tenants.export"})


def operator(runtime: Runtime, scopes: frozenset[str] = ALL_SCOPES) -> dict[str, str]:
    token = runtime.tokens.issue(Principal(kind="operator", subject="test-op", tenant_id=None, scopes=scopes))
    return {"Authorization": f"Bearer {token}"}


def tenant_user(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, str]:
    token = runtime.tokens.issue(Principal.user(user_id=uuid.uuid4(), tenant_id=tenant_id, roles=frozenset({"tenant_admin"})))
    return {"Authorization": f"Bearer {token}"}


def body(slug: str = "acme", **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Acme Support",
        "slug": slug,
        "locale": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "plan": "standard",
        "admin": {"email": "Ann@Acme.test", "display_name": "Ann"},
    }
    data.update(overrides)
    return data


async def create(client: AsyncTestClient, runtime: Runtime, slug: str = "acme", **overrides: object) -> dict:
    response = await client.post(BASE, json=body(slug, **overrides), headers=operator(runtime))
    assert response.status_code == 201, response.text
    return response.json()


async def count(check_db: Database, model) -> int:  # type: ignore[no-untyped-def]
    async with check_db.platform_session(reason="test check") as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_create_tenant_with_its_first_admin_and_invitation(check_db: Database, client: AsyncTestClient, runtime: Runtime) -> None:
    created = await create(client, runtime)
    tenant = created["tenant"]
    assert {k: tenant[k] for k in ("slug", "name", "locale", "time_zone", "plan", "status", "parent_id", "branding")} == {
        "slug": "acme", "name": "Acme Support", "locale": "zh-CN", "time_zone": "Asia/Shanghai",
        "plan": "standard", "status": "active", "parent_id": None, "branding": {},
    }
    admin = created["admin"]
    assert admin["email"] == "ann@acme.test"
    prefix = f"{runtime.settings.public_url}/invite#"
    assert admin["invitation_url"].startswith(prefix) and len(admin["invitation_url"]) > len(prefix) + 20
    tenant_id = uuid.UUID(tenant["id"])
    async with check_db.platform_session(reason="test check") as session:
        user = await session.scalar(select(User).where(User.tenant_id == tenant_id))
        assert (user.email, user.status, str(user.id)) == ("ann@acme.test", "invited", admin["user_id"])
        assert await session.scalar(select(func.count()).select_from(Invitation).where(Invitation.tenant_id == tenant_id)) == 1
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.id))).all()
        assert actions == ["user.created", "tenant.created"]
        platform = (await session.scalars(select(PlatformAuditEntry).where(PlatformAuditEntry.action == "tenant.created"))).all()
        assert [(p.actor, p.target) for p in platform] == [("operator:test-op", f"tenant:{tenant_id}")]


async def test_duplicate_slug_is_409_and_stores_nothing(check_db: Database, client: AsyncTestClient, runtime: Runtime) -> None:
    await create(client, runtime)
    response = await client.post(BASE, json=body("acme", name="Other"), headers=operator(runtime))
    assert (response.status_code, response.json()["code"]) == (409, "slug_taken")
    assert await count(check_db, Tenant) == 1
    assert await count(check_db, User) == 1


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"slug": "Acme!"}, "invalid_slug"),
        ({"slug": "ab"}, "invalid_slug"),
        ({"slug": "-acme"}, "invalid_slug"),
        ({"time_zone": "Mars/Olympus"}, "invalid_time_zone"),
        ({"time_zone": "../etc/passwd"}, "invalid_time_zone"),
        ({"locale": "fr"}, "invalid_locale"),
        ({"plan": "Gold Plan"}, "invalid_plan"),
        ({"name": "   "}, "invalid_name"),
        ({"admin": {"email": "not-an-email", "display_name": "Ann"}}, "invalid_email"),
        ({"unexpected": 1}, "validation_error"),
        ({"admin": {"email": "a@b.test", "display_name": "A", "role": "root"}}, "validation_error"),
        ({"slug": 42}, "validation_error"),
        ({"parent_id": "not-a-uuid"}, "validation_error"),
        ({"parent_id": str(uuid.UUID(int=7))}, "parent_not_found"),
    ],
)
async def test_bad_input_is_400_with_a_stable_code_and_stores_nothing(check_db: Database, 
    client: AsyncTestClient, runtime: Runtime, overrides: dict, code: str
) -> None:
    response = await client.post(BASE, json=body(**overrides), headers=operator(runtime))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert await count(check_db, Tenant) == 0
    assert await count(check_db, User) == 0


async def test_malformed_json_is_400(client: AsyncTestClient, runtime: Runtime) -> None:
    headers = {**operator(runtime), "Content-Type": "application/json"}
    response = await client.post(BASE, content=b'{"name": nope}', headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "malformed_body")


async def test_tenant_tokens_and_missing_scopes_are_refused(check_db: Database, client: AsyncTestClient, runtime: Runtime) -> None:
    tenant_id = uuid.UUID((await create(client, runtime))["tenant"]["id"])
    as_user = await client.get(BASE, headers=tenant_user(runtime, tenant_id))
    assert (as_user.status_code, as_user.json()["code"]) == (403, "operator_required")
    read_only = operator(runtime, frozenset({"platform:tenants.read"}))
    refused = await client.post(f"{BASE}/{tenant_id}/suspend", headers=read_only)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    refused_export = await client.get(f"{BASE}/{tenant_id}/export", headers=read_only)
    assert refused_export.status_code == 403
    anonymous = await client.get(BASE)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    assert (await count(check_db, Tenant)) == 1


async def test_list_pages_and_filters_by_status_and_parent(client: AsyncTestClient, runtime: Runtime) -> None:
    bpo = await create(client, runtime, "bpo", admin={"email": "b@bpo.test", "display_name": "B"})
    bpo_id = bpo["tenant"]["id"]
    for slug in ("client-one", "client-two"):
        await create(client, runtime, slug, parent_id=bpo_id, admin={"email": f"a@{slug}.test", "display_name": "A"})
    headers = operator(runtime)
    page = (await client.get(BASE, params={"limit": 2}, headers=headers)).json()
    assert (page["total"], page["limit"], page["offset"], [t["slug"] for t in page["items"]]) == (3, 2, 0, ["bpo", "client-one"])
    second = (await client.get(BASE, params={"limit": 2, "offset": 2}, headers=headers)).json()
    assert [t["slug"] for t in second["items"]] == ["client-two"]
    children = (await client.get(BASE, params={"parent_id": bpo_id}, headers=headers)).json()
    assert [t["slug"] for t in children["items"]] == ["client-one", "client-two"]
    await client.post(f"{BASE}/{bpo_id}/suspend", headers=headers)
    suspended = (await client.get(BASE, params={"status": "suspended"}, headers=headers)).json()
    assert [t["slug"] for t in suspended["items"]] == ["bpo"]
    bad = await client.get(BASE, params={"status": "deleted"}, headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_status")
    assert (await client.get(BASE, params={"limit": 0}, headers=headers)).status_code == 400
    # A suspended parent cannot take new clients.
    orphan = await client.post(BASE, json=body("client-three", parent_id=bpo_id), headers=headers)
    assert (orphan.status_code, orphan.json()["code"]) == (409, "parent_not_active")


async def test_get_and_patch_a_tenant(client: AsyncTestClient, runtime: Runtime) -> None:
    tenant_id = (await create(client, runtime))["tenant"]["id"]
    headers = operator(runtime)
    changed = await client.patch(
        f"{BASE}/{tenant_id}",
        json={"name": "Acme CN", "locale": "en", "time_zone": "Europe/Berlin", "plan": "premium", "branding": {"primary_color": "#112233"}},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    got = (await client.get(f"{BASE}/{tenant_id}", headers=headers)).json()
    assert {k: got[k] for k in ("name", "locale", "time_zone", "plan", "branding")} == {
        "name": "Acme CN", "locale": "en", "time_zone": "Europe/Berlin", "plan": "premium", "branding": {"primary_color": "#112233"},
    }
    bad = await client.patch(f"{BASE}/{tenant_id}", json={"time_zone": "Nowhere/Else"}, headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_time_zone")
    unknown = await client.patch(f"{BASE}/{tenant_id}", json={"status": "closed"}, headers=headers)
    assert (unknown.status_code, unknown.json()["code"]) == (400, "validation_error")
    bad_brand = await client.patch(f"{BASE}/{tenant_id}", json={"branding": {"logo_url": "http://x"}}, headers=headers)
    assert (bad_brand.status_code, bad_brand.json()["code"]) == (400, "invalid_branding")
    assert (await client.get(f"{BASE}/{tenant_id}", headers=headers)).json()["time_zone"] == "Europe/Berlin"
    missing = await client.get(f"{BASE}/{uuid.uuid4()}", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_suspend_blocks_the_tenant_and_resume_restores_it(check_db: Database, client: AsyncTestClient, runtime: Runtime) -> None:
    tenant_id = uuid.UUID((await create(client, runtime))["tenant"]["id"])
    headers = operator(runtime)
    suspended = await client.post(f"{BASE}/{tenant_id}/suspend", json={"reason": "unpaid"}, headers=headers)
    assert (suspended.status_code, suspended.json()["status"]) == (200, "suspended")
    again = await client.post(f"{BASE}/{tenant_id}/suspend", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "invalid_status_transition")
    async with check_db.platform_session(reason="test check") as session:
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.tenant_id == tenant_id))).all()
        assert [(e.event_type, e.payload["reason"], e.published_at is not None) for e in events] == [("tenant.suspended", "unpaid", True)]
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == "tenant.suspended"))
        assert entry.actor == "operator:test-op" and entry.detail["reason"] == "unpaid"
    resumed = await client.post(f"{BASE}/{tenant_id}/resume", headers=headers)
    assert (resumed.status_code, resumed.json()["status"], resumed.json()["suspended_at"]) == (200, "active", None)
    assert (await client.post(f"{BASE}/{tenant_id}/resume", headers=headers)).status_code == 409
    assert (await client.post(f"{BASE}/{uuid.uuid4()}/suspend", headers=headers)).status_code == 404


async def test_close_sets_purge_after_and_keeps_the_data(check_db: Database, client: AsyncTestClient, runtime: Runtime) -> None:
    tenant_id = uuid.UUID((await create(client, runtime))["tenant"]["id"])
    before = utcnow()
    closed = (await client.post(f"{BASE}/{tenant_id}/close", headers=operator(runtime))).json()
    from datetime import datetime

    purge_after = datetime.fromisoformat(closed["purge_after"])
    closed_at = datetime.fromisoformat(closed["closed_at"])
    assert closed["status"] == "closed"
    assert before <= closed_at and purge_after - closed_at == timedelta(days=runtime.settings.tenant_retention_days)
    assert await count(check_db, User) == 1
    patched = await client.patch(f"{BASE}/{tenant_id}", json={"name": "x"}, headers=operator(runtime))
    assert (patched.status_code, patched.json()["code"]) == (409, "tenant_closed")


async def test_export_streams_every_tenant_table_without_secrets(client: AsyncTestClient, runtime: Runtime) -> None:
    acme = uuid.UUID((await create(client, runtime))["tenant"]["id"])
    await create(client, runtime, "globex", admin={"email": "gus@globex.test", "display_name": "Gus"})
    recording = runtime.settings.recordings_dir / str(acme) / "call-1" / "agent.ogg"
    recording.parent.mkdir(parents=True)
    recording.write_bytes(b"OggS" + b"\0" * 12)
    response = await client.get(f"{BASE}/{acme}/export", headers=operator(runtime))
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="kefu-tenant-{acme}.json"'
    document = json.loads(response.content)
    assert document["format"] == "kefu-tenant-export/1"
    assert document["tenant"]["slug"] == "acme"
    from kefu.platform.admin.export import exported_tables

    assert sorted(document["tables"]) == sorted(t.name for t in exported_tables())
    [user] = document["tables"]["users"]
    assert user["email"] == "ann@acme.test" and "password_hash" not in user
    [invitation] = document["tables"]["invitations"]
    assert "token_hash" not in invitation
    everything = json.dumps(document["tables"])
    assert "globex" not in everything
    assert all(row["tenant_id"] == str(acme) for rows in document["tables"].values() for row in rows)
    assert document["recordings"] == [{"path": f"{acme}/call-1/agent.ogg", "size_bytes": 16}]
    assert (await client.get(f"{BASE}/{uuid.uuid4()}/export", headers=operator(runtime))).status_code == 404


async def test_purge_job_deletes_due_closed_tenants_only_and_is_idempotent(check_db: Database, client: AsyncTestClient, runtime: Runtime) -> None:
    acme = uuid.UUID((await create(client, runtime))["tenant"]["id"])
    globex = uuid.UUID((await create(client, runtime, "globex", admin={"email": "g@globex.test", "display_name": "G"}))["tenant"]["id"])
    initech = uuid.UUID((await create(client, runtime, "initech", admin={"email": "i@initech.test", "display_name": "I"}))["tenant"]["id"])
    headers = operator(runtime)
    for tenant_id in (acme, initech):
        await client.post(f"{BASE}/{tenant_id}/close", headers=headers)
    folder = runtime.settings.recordings_dir / str(acme) / "c1"
    folder.mkdir(parents=True)
    (folder / "caller.ogg").write_bytes(b"x")
    # acme's retention is over; initech's is not.
    async with check_db.platform_session(reason="test set-up") as session:
        tenant = await session.get(Tenant, acme)
        tenant.purge_after = utcnow() - timedelta(minutes=1)
    jobs = runtime.components["jobs"]
    for _ in range(2):  # the second run finds nothing left to do
        assert (await client.post("/api/admin/v1/purges", headers=headers)).status_code == 202
        await jobs.drain()
    async with check_db.platform_session(reason="test check") as session:
        remaining = set((await session.scalars(select(Tenant.id))).all())
        assert remaining == {globex, initech}
        users = set((await session.scalars(select(User.tenant_id))).all())
        assert users == {globex, initech}
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.tenant_id == acme)) == 0
        purged = (await session.scalars(select(PlatformAuditEntry).where(PlatformAuditEntry.action == "tenant.purged"))).all()
        assert [(p.target, p.detail["slug"]) for p in purged] == [(f"tenant:{acme}", "acme")]
    assert not (runtime.settings.recordings_dir / str(acme)).exists()


async def test_purge_can_be_scheduled_through_the_api(client: AsyncTestClient, runtime: Runtime) -> None:
    response = await client.post("/api/admin/v1/purges", headers=operator(runtime))
    assert response.status_code == 202
    assert response.json()["job"] == "kefu.platform.admin.purge_closed_tenants"
    await runtime.components["jobs"].drain()


async def test_openapi_lists_the_admin_routes_and_schema_page_is_served(client: AsyncTestClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    paths = document["paths"]
    for path in (
        "/api/admin/v1/tenants",
        "/api/admin/v1/tenants/{target_tenant_id}",
        "/api/admin/v1/tenants/{target_tenant_id}/suspend",
        "/api/admin/v1/tenants/{target_tenant_id}/resume",
        "/api/admin/v1/tenants/{target_tenant_id}/close",
        "/api/admin/v1/tenants/{target_tenant_id}/export",
        "/api/admin/v1/purges",
    ):
        assert path in paths, path
    assert set(paths["/api/admin/v1/tenants"]) >= {"get", "post"}
    page = await client.get("/schema")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
