"""Agents, queues, members and entry points through the API, with tenant isolation."""

from __future__ import annotations

import uuid

from tenants_support import Admin, MakeAgent, create_user
from httpx import AsyncClient as AsyncTestClient
from sqlalchemy import event

from kefu.platform.runtime import Runtime
from kefu.tenants import agents as agents_service


async def test_admin_creates_agent_with_user_and_lists_it(client: AsyncTestClient, acme: Admin) -> None:
    response = await client.post(
        "/api/v1/agents", json={"email": "Wang.Fang@Acme.test", "display_name": "Wang Fang", "password": "a-long-password"}, headers=acme.headers
    )
    assert response.status_code == 201
    created = response.json()
    assert created["email"] == "wang.fang@acme.test"
    assert (created["display_name"], created["status"], created["system_state"], created["state"]) == ("Wang Fang", "offline", "idle", "offline")
    assert created["queue_ids"] == [] and created["invitation_token"] is None

    listed = (await client.get("/api/v1/agents", headers=acme.headers)).json()
    assert [a["id"] for a in listed] == [created["id"]]
    users = (await client.get("/api/v1/users", headers=acme.headers)).json()
    user_rows = users["items"] if isinstance(users, dict) else users
    assert sorted((u["email"], u["roles"]) for u in user_rows) == [("admin@acme.test", []), ("wang.fang@acme.test", ["agent"])]


async def test_agent_without_password_gets_an_invitation(client: AsyncTestClient, acme: Admin) -> None:
    response = await client.post("/api/v1/agents", json={"email": "li@acme.test", "display_name": "Li"}, headers=acme.headers)
    assert response.status_code == 201
    assert response.json()["invitation_token"]


async def test_duplicate_agent_email_is_409(client: AsyncTestClient, acme: Admin, make_agent: MakeAgent) -> None:
    await make_agent(acme, "Zhao")
    response = await client.post("/api/v1/agents", json={"email": "zhao@example.test", "display_name": "Zhao 2"}, headers=acme.headers)
    assert (response.status_code, response.json()["code"]) == (409, "email_taken")


async def test_patch_agent_renames_it(client: AsyncTestClient, acme: Admin, make_agent: MakeAgent) -> None:
    seat = await make_agent(acme, "Chen")
    response = await client.patch(f"/api/v1/agents/{seat.agent_id}", json={"display_name": "Chen Jing"}, headers=acme.headers)
    assert response.status_code == 200
    assert (await client.get(f"/api/v1/agents/{seat.agent_id}", headers=acme.headers)).json()["display_name"] == "Chen Jing"


async def test_queue_crud_and_members(client: AsyncTestClient, acme: Admin, make_agent: MakeAgent) -> None:
    a, b = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    created = await client.post("/api/v1/queues", json={"name": "Support", "max_wait_s": 300}, headers=acme.headers)
    assert created.status_code == 201
    queue = created.json()
    assert (queue["name"], queue["strategy"], queue["max_wait_s"], queue["agent_ids"]) == ("Support", "longest_idle", 300, [])

    members = await client.put(f"/api/v1/queues/{queue['id']}/members", json={"agent_ids": [str(a.agent_id), str(b.agent_id)]}, headers=acme.headers)
    assert members.status_code == 200
    assert members.json()["agent_ids"] == sorted([str(a.agent_id), str(b.agent_id)])
    assert (await client.get(f"/api/v1/agents/{a.agent_id}", headers=acme.headers)).json()["queue_ids"] == [queue["id"]]

    renamed = await client.patch(f"/api/v1/queues/{queue['id']}", json={"name": "Billing"}, headers=acme.headers)
    assert renamed.json()["name"] == "Billing"
    assert [q["name"] for q in (await client.get("/api/v1/queues", headers=acme.headers)).json()] == ["Billing"]

    assert (await client.delete(f"/api/v1/queues/{queue['id']}", headers=acme.headers)).status_code == 204
    assert (await client.get(f"/api/v1/queues/{queue['id']}", headers=acme.headers)).status_code == 404


async def test_queue_with_entry_point_cannot_be_deleted(client: AsyncTestClient, acme: Admin) -> None:
    queue = (await client.post("/api/v1/queues", json={"name": "Sales"}, headers=acme.headers)).json()
    await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=acme.headers)
    response = await client.delete(f"/api/v1/queues/{queue['id']}", headers=acme.headers)
    assert (response.status_code, response.json()["code"]) == (409, "queue_in_use")


async def test_entry_point_gets_unguessable_widget_key(client: AsyncTestClient, acme: Admin) -> None:
    queue = (await client.post("/api/v1/queues", json={"name": "Sales"}, headers=acme.headers)).json()
    first = (await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=acme.headers)).json()
    second = (await client.post("/api/v1/entry-points", json={"name": "Web 2", "queue_id": queue["id"]}, headers=acme.headers)).json()
    assert first["widget_key"].startswith("wk_") and len(first["widget_key"]) == 35
    assert first["widget_key"] != second["widget_key"]
    assert first["caller_url"] == f"http://127.0.0.1:8000/call/{first['widget_key']}"
    assert (await client.get(f"/api/v1/entry-points/{first['id']}", headers=acme.headers)).json() == first
    assert (await client.delete(f"/api/v1/entry-points/{first['id']}", headers=acme.headers)).status_code == 204
    assert [e["id"] for e in (await client.get("/api/v1/entry-points", headers=acme.headers)).json()] == [second["id"]]


async def test_foreign_ids_answer_404_like_missing_ones(client: AsyncTestClient, acme: Admin, globex: Admin, make_agent: MakeAgent) -> None:
    seat = await make_agent(globex, "Gina")
    queue = (await client.post("/api/v1/queues", json={"name": "Q"}, headers=globex.headers)).json()
    entry = (await client.post("/api/v1/entry-points", json={"name": "W", "queue_id": queue["id"]}, headers=globex.headers)).json()
    missing = str(uuid.uuid4())
    own_queue = (await client.post("/api/v1/queues", json={"name": "Mine"}, headers=acme.headers)).json()
    requests = [
        ("GET", "/api/v1/agents/{}", None, str(seat.agent_id)),
        ("PATCH", "/api/v1/agents/{}", {"display_name": "x"}, str(seat.agent_id)),
        ("GET", "/api/v1/queues/{}", None, queue["id"]),
        ("PATCH", "/api/v1/queues/{}", {"name": "x"}, queue["id"]),
        ("DELETE", "/api/v1/queues/{}", None, queue["id"]),
        ("PUT", "/api/v1/queues/{}/members", {"agent_ids": []}, queue["id"]),
        ("GET", "/api/v1/entry-points/{}", None, entry["id"]),
        ("DELETE", "/api/v1/entry-points/{}", None, entry["id"]),
        ("GET", "/api/v1/calls/{}", None, missing),
    ]
    for method, template, body, foreign in requests:
        for target in (foreign, missing):
            response = await client.request(method, template.format(target), json=body, headers=acme.headers)
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), (method, template)
    # Foreign ids inside a body too.
    members = await client.put(f"/api/v1/queues/{own_queue['id']}/members", json={"agent_ids": [str(seat.agent_id)]}, headers=acme.headers)
    assert (members.status_code, members.json()["code"]) == (404, "not_found")
    entry_in_foreign_queue = await client.post("/api/v1/entry-points", json={"name": "W", "queue_id": queue["id"]}, headers=acme.headers)
    assert (entry_in_foreign_queue.status_code, entry_in_foreign_queue.json()["code"]) == (404, "not_found")
    # Lists never show the other tenant's rows.
    assert (await client.get("/api/v1/agents", headers=acme.headers)).json() == []
    assert [q["name"] for q in (await client.get("/api/v1/queues", headers=acme.headers)).json()] == ["Mine"]
    assert (await client.get("/api/v1/entry-points", headers=acme.headers)).json() == []


async def test_bad_input_gets_stable_codes(client: AsyncTestClient, acme: Admin) -> None:
    cases = [
        ("POST", "/api/v1/queues", {"name": "  "}, 400, "invalid_name"),
        ("POST", "/api/v1/queues", {"name": "Q", "max_wait_s": 0}, 400, "invalid_max_wait"),
        ("POST", "/api/v1/queues", {"name": "Q", "colour": "red"}, 400, "validation_error"),
        ("POST", "/api/v1/queues", {"name": 5}, 400, "validation_error"),
        ("POST", "/api/v1/agents", {"email": "not-an-email", "display_name": "X"}, 400, "invalid_email"),
        ("POST", "/api/v1/agents", {"email": "a@b.test", "display_name": ""}, 400, "invalid_display_name"),
        ("POST", "/api/v1/agents", {"email": "a@b.test", "display_name": "A", "password": "short"}, 400, "password_too_short"),
        ("POST", "/api/v1/entry-points", {"name": "W", "queue_id": "not-a-uuid"}, 400, "validation_error"),
        ("GET", "/api/v1/calls?limit=0", None, 400, "validation_error"),
        ("GET", "/api/v1/calls?limit=abc", None, 400, "validation_error"),
    ]
    for method, url, body, status, code in cases:
        response = await client.request(method, url, json=body, headers=acme.headers)
        assert (response.status_code, response.json()["code"]) == (status, code), (url, body, response.text)
    malformed = await client.post("/api/v1/queues", content=b"{not json", headers={**acme.headers, "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["code"] in ("malformed_body", "validation_error")
    assert (await client.get("/api/v1/queues", headers=acme.headers)).json() == []


async def test_agents_cannot_manage_queues(client: AsyncTestClient, acme: Admin, make_agent: MakeAgent) -> None:
    seat = await make_agent(acme, "Dong")
    response = await client.post("/api/v1/queues", json={"name": "Q"}, headers=seat.headers)
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert (await client.get("/api/v1/queues")).status_code == 401


async def test_listing_agents_reads_agents_with_their_emails_in_one_query_not_every_user(
    client: AsyncTestClient, acme: Admin, make_agent: MakeAgent, runtime: Runtime
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    for n in range(3):  # users who are not agents are never read
        await create_user(runtime, acme.tenant_id, f"staff{n}@example.test")
    statements: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "set_config" not in statement:
            statements.append(" ".join(statement.split()))

    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        engine = session.bind.sync_engine  # type: ignore[union-attr]
        event.listen(engine, "before_cursor_execute", record)
        try:
            views = await agents_service.list_agents(session, tenant_id=acme.tenant_id)
        finally:
            event.remove(engine, "before_cursor_execute", record)
    assert [(v.id, v.email) for v in views] == [(ann.agent_id, "ann@example.test"), (ben.agent_id, "ben@example.test")]
    assert len(statements) == 2, statements
    assert "JOIN users" in statements[0] and "FROM agents" in statements[0]
    assert "FROM queue_members" in statements[1]
