"""The identity service interface other contexts call: users, invitations, clients, audit."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from kefu.platform import audit
from kefu.platform.identity import services
from kefu.platform.models import AuditEntry, PlatformAuditEntry, PlatformClient, User
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime

from identity_support import Person


async def test_create_user_with_password_stores_an_argon2id_hash_and_audits(runtime: Runtime, acme: uuid.UUID) -> None:
    async with runtime.db.tenant_session(tenant_id=acme) as session:
        created = await services.create_user(
            session, tenant_id=acme, email=" Carol@Acme.Test ", display_name="Carol", roles=["supervisor", "agent"], actor="system", password="long enough pw"
        )
    assert created.invitation_token is None
    async with runtime.db.tenant_session(tenant_id=acme) as session:
        user = await session.scalar(select(User).where(User.id == created.user_id))
        view = await services.get_user(session, tenant_id=acme, user_id=created.user_id)
        [entry] = (await session.scalars(select(AuditEntry))).all()
    assert user is not None and user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert (view.email, view.status, view.roles) == ("carol@acme.test", "active", ("agent", "supervisor"))
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        "system", "user.created", f"user:{created.user_id}", {"email": "carol@acme.test", "roles": ["agent", "supervisor"], "invited": False}
    )


async def test_create_user_without_password_invites(runtime: Runtime, acme: uuid.UUID) -> None:
    async with runtime.db.tenant_session(tenant_id=acme) as session:
        created = await services.create_user(session, tenant_id=acme, email="dan@acme.test", display_name="Dan", roles=["agent"], actor="system")
        view = await services.get_user(session, tenant_id=acme, user_id=created.user_id)
    assert created.invitation_token and len(created.invitation_token) >= 40
    assert view.status == "invited"
    assert services.invitation_link("http://kefu.test/", created.invitation_token) == f"http://kefu.test/invite#{created.invitation_token}"


async def test_duplicate_email_in_a_tenant_is_409_but_another_tenant_may_reuse_it(runtime: Runtime, alice: Person, globex: uuid.UUID) -> None:
    with pytest.raises(Problem) as caught:
        async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
            await services.create_user(session, tenant_id=alice.tenant_id, email="ALICE@acme.test", display_name="A", roles=["agent"], actor="system")
    assert (caught.value.status, caught.value.code) == (409, "email_taken")
    async with runtime.db.tenant_session(tenant_id=globex) as session:
        created = await services.create_user(session, tenant_id=globex, email="alice@acme.test", display_name="A", roles=["agent"], actor="system")
    assert created.user_id != alice.user_id


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"roles": ["wizard"]}, 400, "unknown_role"),
        ({"roles": ["platform_admin"]}, 400, "unknown_role"),
        ({"email": "not-an-email"}, 400, "invalid_email"),
        ({"password": "short"}, 400, "password_too_short"),
        ({"display_name": "  "}, 400, "invalid_display_name"),
    ],
)
async def test_create_user_rejects_bad_input(runtime: Runtime, acme: uuid.UUID, kwargs: dict, status: int, code: str) -> None:
    args = {"email": "x@acme.test", "display_name": "X", "roles": ["agent"]} | kwargs
    with pytest.raises(Problem) as caught:
        async with runtime.db.tenant_session(tenant_id=acme) as session:
            await services.create_user(session, tenant_id=acme, actor="system", **args)
    assert (caught.value.status, caught.value.code) == (status, code)


async def test_foreign_user_id_is_not_found_like_a_missing_one(runtime: Runtime, alice: Person, gina: Person) -> None:
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        for user_id in (gina.user_id, uuid.uuid4()):
            with pytest.raises(Problem) as caught:
                await services.get_user(session, tenant_id=alice.tenant_id, user_id=user_id)
            assert (caught.value.status, caught.value.code) == (404, "not_found")


async def test_create_platform_client_keeps_only_a_hash_and_audits_on_the_platform_log(runtime: Runtime) -> None:
    client_id, secret = await services.create_platform_client(runtime.db, name="ops", scopes=["platform:tenants.read"], actor="system:cli")
    async with runtime.db.platform_session(reason="test") as session:
        [client] = (await session.scalars(select(PlatformClient))).all()
        [entry] = (await session.scalars(select(PlatformAuditEntry))).all()
    assert client.client_id == client_id and secret not in client.secret_hash and client.scopes == "platform:tenants.read"
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        "system:cli", "platform_client.created", f"client:{client_id}", {"name": "ops", "scopes": ["platform:tenants.read"]}
    )
    with pytest.raises(Problem) as caught:
        await services.create_platform_client(runtime.db, name="ops", scopes=["calls.read"], actor="system:cli")
    assert caught.value.code == "unknown_scope"


async def test_audit_list_is_newest_first_and_tenant_scoped(runtime: Runtime, alice: Person, gina: Person) -> None:
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        await audit.record(session, tenant_id=alice.tenant_id, actor="system", action="a.one")
        await audit.record(session, tenant_id=alice.tenant_id, actor="system", action="a.two", ip="10.0.0.1")
        entries = await audit.list_entries(session, tenant_id=alice.tenant_id)
        older = await audit.list_entries(session, tenant_id=alice.tenant_id, before_id=entries[0].id, limit=1)
    assert [e.action for e in entries] == ["a.two", "a.one", "user.created"]
    assert entries[0].ip == "10.0.0.1"
    assert [e.action for e in older] == ["a.one"]
