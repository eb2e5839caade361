"""The IVR flow API: drafts, validation errors naming node and exit, publishing,
versions, rollback, the simulator over HTTP, lookup addresses, the schema, and
who may do what."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from tenants_support import Admin, bearer, create_user
from test_acd import make_queue

from kefu.platform.runtime import Runtime


def support_line(queue_id: str, schedule_id: str = "weekdays") -> dict[str, Any]:
    return {"schema": "kefu.ivr/1", "start": "hours", "nodes": {
        "hours": {"type": "hours", "schedule_id": schedule_id, "exits": {"open": "main", "closed": "vm"}},
        "main": {"type": "menu", "prompt": {"en": {"text": "Press 1 for support"}}, "exits": {"1": "support", "invalid": "main", "no_input": "vm"}},
        "support": {"type": "queue", "queue_id": queue_id, "priority": 5},
        "vm": {"type": "voicemail", "prompt": {"en": {"text": "Please leave a message"}}},
    }}


async def test_a_flow_from_draft_to_published_versions_and_back(client: AsyncClient, acme: Admin) -> None:
    queue_id, _ = await make_queue(client, acme, [])
    created = await client.post("/api/v1/ivr/flows", json={"name": "Main line"}, headers=acme.headers)
    assert created.status_code == 201, created.text
    flow = created.json()
    assert (flow["published_version"], flow["errors"]) == (None, [])
    base = f"/api/v1/ivr/flows/{flow['id']}"

    draft = support_line(queue_id)  # "weekdays" is no schedule of Acme's
    saved = await client.put(f"{base}/draft", json={"document": draft}, headers=acme.headers)
    assert saved.status_code == 200
    assert [(e["code"], e["node"]) for e in saved.json()["errors"]] == [("unknown_schedule", "hours")]
    refused = await client.post(f"{base}/publish", headers=acme.headers)
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "flow_invalid" and [(e["code"], e["node"], e["exit"]) for e in body["errors"]] == [("unknown_schedule", "hours", None)]
    assert (await client.get(f"{base}/versions", headers=acme.headers)).json() == []

    schedule = (await client.post("/api/v1/schedules", json={"name": "Office", "time_zone": "UTC", "weekly": {}}, headers=acme.headers)).json()
    fixed = support_line(queue_id, schedule["id"])
    await client.put(f"{base}/draft", json={"document": fixed}, headers=acme.headers)
    assert (await client.post(f"{base}/validate", headers=acme.headers)).json()["errors"] == []
    v1 = await client.post(f"{base}/publish", headers=acme.headers)
    assert (v1.status_code, v1.json()["number"]) == (201, 1)
    changed = support_line(queue_id, schedule["id"])
    changed["nodes"]["main"]["prompt"]["en"]["text"] = "Press 1 to talk to us"
    await client.put(f"{base}/draft", json={"document": changed}, headers=acme.headers)
    assert (await client.post(f"{base}/publish", headers=acme.headers)).json()["number"] == 2
    back = await client.post(f"{base}/rollback", json={"version": 1}, headers=acme.headers)
    assert (back.status_code, back.json()["number"], back.json()["restored_from"], back.json()["document"]) == (201, 3, 1, fixed)
    assert (await client.get(base, headers=acme.headers)).json()["published_version"] == 3
    versions = (await client.get(f"{base}/versions", headers=acme.headers)).json()
    assert [(v["number"], v["restored_from"]) for v in versions] == [(1, None), (2, None), (3, 1)]
    assert (await client.post(f"{base}/rollback", json={"version": 7}, headers=acme.headers)).status_code == 404

    # The simulator over HTTP: the tenant's schedule (no hours at all: closed) or one forced open.
    walk = (await client.post(f"{base}/simulate", json={"inputs": []}, headers=acme.headers)).json()
    assert (walk["path"], walk["outcome"]["action"]) == (["hours", "vm"], "voicemail")
    walk = (await client.post(f"{base}/simulate", json={"inputs": ["1"], "closed": [], "version": 2}, headers=acme.headers)).json()
    assert walk["path"] == ["hours", "main", "support"]
    assert walk["steps"][1]["said"] == ["Press 1 to talk to us"] and walk["outcome"] == {"action": "queue", "node": "support", "queue_id": queue_id, "priority": 5}
    assert (await client.post(f"{base}/simulate", json={"version": 9}, headers=acme.headers)).status_code == 404


async def test_bad_input_gets_precise_errors_and_changes_nothing(client: AsyncClient, acme: Admin) -> None:
    flow = (await client.post("/api/v1/ivr/flows", json={"name": "Main"}, headers=acme.headers)).json()
    base = f"/api/v1/ivr/flows/{flow['id']}"
    cases = [
        ("PUT", f"{base}/draft", {"document": {"start": "a", "nodes": {"a": {"type": "dance"}}}}, 400, "flow_invalid"),
        ("PUT", f"{base}/draft", {"document": {"start": "a"}}, 400, "flow_invalid"),
        ("PUT", f"{base}/draft", {"document": []}, 400, "validation_error"),
        ("PUT", f"{base}/draft", {"document": {}, "extra": 1}, 400, "validation_error"),
        ("POST", "/api/v1/ivr/flows", {"name": "Main"}, 409, "flow_name_taken"),
        ("POST", "/api/v1/ivr/flows", {"name": " "}, 400, "invalid_name"),
        ("POST", "/api/v1/ivr/flows", {"name": "X", "document": {"nodes": 3}}, 400, "flow_invalid"),
        ("POST", f"{base}/rollback", {"version": "one"}, 400, "validation_error"),
        ("POST", f"{base}/simulate", {"inputs": ["1"] * 201}, 400, "invalid_simulation"),
        ("POST", f"{base}/simulate", {"at": "2026-11-23T10:00:00"}, 400, "invalid_simulation"),
        ("POST", "/api/v1/ivr/lookup-addresses", {"prefix": "file:///etc/"}, 400, "invalid_lookup_address"),
    ]
    for method, url, body, status, code in cases:
        response = await client.request(method, url, json=body, headers=acme.headers)
        assert (response.status_code, response.json()["code"]) == (status, code), (url, body, response.text)
    refused = await client.put(f"{base}/draft", json={"document": {"start": "a", "nodes": {"a": {"type": "dance"}}}}, headers=acme.headers)
    assert refused.json()["errors"] == [{"code": "unknown_node_type", "message": refused.json()["errors"][0]["message"], "node": "a", "exit": None}]
    assert (await client.get(base, headers=acme.headers)).json()["draft"] == flow["draft"]
    assert len((await client.get("/api/v1/ivr/flows", headers=acme.headers)).json()) == 1


async def test_another_tenants_queue_cannot_be_published_into_a_flow(client: AsyncClient, acme: Admin, globex: Admin) -> None:
    globex_queue, _ = await make_queue(client, globex, [], name="Globex")
    document = {"start": "q", "nodes": {"q": {"type": "queue", "queue_id": globex_queue}}}
    flow = (await client.post("/api/v1/ivr/flows", json={"name": "Smuggler", "document": document}, headers=acme.headers)).json()
    assert [(e["code"], e["node"]) for e in flow["errors"]] == [("unknown_queue", "q")]
    published = await client.post(f"/api/v1/ivr/flows/{flow['id']}/publish", headers=acme.headers)
    assert (published.status_code, published.json()["code"]) == (422, "flow_invalid")
    assert (await client.get("/api/v1/ivr/flows", headers=globex.headers)).json() == []


async def test_lookup_addresses_and_the_schema(client: AsyncClient, acme: Admin) -> None:
    added = await client.post("/api/v1/ivr/lookup-addresses", json={"prefix": "https://crm.acme.test/api/"}, headers=acme.headers)
    assert added.status_code == 201
    listed = (await client.get("/api/v1/ivr/lookup-addresses", headers=acme.headers)).json()
    assert [a["prefix"] for a in listed] == ["https://crm.acme.test/api/"]
    assert (await client.delete(f"/api/v1/ivr/lookup-addresses/{added.json()['id']}", headers=acme.headers)).status_code == 204
    schema = (await client.get("/api/v1/ivr/schema", headers=acme.headers)).json()
    assert schema["title"] == "Kefu IVR flow" and schema["properties"]["schema"] == {"const": "kefu.ivr/1"}


async def test_supervisors_read_flows_agents_do_not(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    flow = (await client.post("/api/v1/ivr/flows", json={"name": "Main"}, headers=acme.headers)).json()
    supervisor = bearer(runtime, tenant_id=acme.tenant_id, user_id=await create_user(runtime, acme.tenant_id, "sup@acme.test"), roles={"supervisor"})
    agent = bearer(runtime, tenant_id=acme.tenant_id, user_id=await create_user(runtime, acme.tenant_id, "agent@acme.test"), roles={"agent"})
    assert (await client.get(f"/api/v1/ivr/flows/{flow['id']}", headers=supervisor)).status_code == 200
    assert (await client.post(f"/api/v1/ivr/flows/{flow['id']}/simulate", json={}, headers=supervisor)).status_code == 200
    assert (await client.post(f"/api/v1/ivr/flows/{flow['id']}/publish", headers=supervisor)).status_code == 403
    assert (await client.get("/api/v1/ivr/flows", headers=agent)).status_code == 403
