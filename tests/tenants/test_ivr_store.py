"""Flows kept per tenant (kefu.tenants.ivr.store): drafts that may still have errors,
publishing that refuses any error and names node and exit, versions that never
change, rollback as a new version, lookup addresses; another tenant's flows and
queues do not exist."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from tenants_support import Admin
from test_acd import make_queue

from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime
from kefu.tenants.ivr import store

ACTOR = "user:test"


def line(queue_id: str, *, lookup_url: str | None = None) -> dict[str, Any]:
    nodes: dict[str, Any] = {
        "main": {"type": "menu", "prompt": {"en": {"text": "1 support"}}, "exits": {"1": "support", "invalid": "main", "no_input": "bye"}},
        "support": {"type": "queue", "queue_id": queue_id},
        "bye": {"type": "hangup"},
    }
    if lookup_url is not None:
        nodes["main"]["exits"]["2"] = "look"
        nodes["look"] = {"type": "http", "url": lookup_url, "exits": {"ok": "support", "fallback": "support"}}
    return {"schema": "kefu.ivr/1", "start": "main", "nodes": nodes}


async def in_tenant(runtime: Runtime, admin: Admin, action: Any) -> Any:
    async with runtime.db.tenant_session(tenant_id=admin.tenant_id) as session:
        return await action(session)


async def test_draft_publish_versions_and_rollback(runtime: Runtime, client: AsyncClient, acme: Admin) -> None:
    queue_id, _ = await make_queue(client, acme, [])
    flow, errors = await in_tenant(runtime, acme, lambda s: store.create_flow(s, tenant_id=acme.tenant_id, name="Main line", actor=ACTOR))
    assert errors == []  # the starter flow is valid
    assert await in_tenant(runtime, acme, lambda s: store.live_version(s, tenant_id=acme.tenant_id, flow_id=flow.id)) is None

    broken = line("no-such-queue")
    _, errors = await in_tenant(runtime, acme, lambda s: store.save_draft(s, tenant_id=acme.tenant_id, flow_id=flow.id, document=broken, actor=ACTOR))
    assert [(e.code, e.node) for e in errors] == [("unknown_queue", "support")]  # saved anyway: a draft may be unfinished
    with pytest.raises(Problem) as refused:
        await in_tenant(runtime, acme, lambda s: store.publish(s, tenant_id=acme.tenant_id, flow_id=flow.id, actor=ACTOR))
    assert (refused.value.status, refused.value.code) == (422, "flow_invalid")
    assert refused.value.extra["errors"] == [{"code": "unknown_queue", "message": refused.value.extra["errors"][0]["message"], "node": "support", "exit": None}]
    assert await in_tenant(runtime, acme, lambda s: store.list_versions(s, tenant_id=acme.tenant_id, flow_id=flow.id)) == []

    first = line(queue_id)
    await in_tenant(runtime, acme, lambda s: store.save_draft(s, tenant_id=acme.tenant_id, flow_id=flow.id, document=first, actor=ACTOR))
    v1 = await in_tenant(runtime, acme, lambda s: store.publish(s, tenant_id=acme.tenant_id, flow_id=flow.id, actor=ACTOR))
    second = line(queue_id)
    second["nodes"]["main"]["prompt"]["en"]["text"] = "Press 1 for support"
    await in_tenant(runtime, acme, lambda s: store.save_draft(s, tenant_id=acme.tenant_id, flow_id=flow.id, document=second, actor=ACTOR))
    v2 = await in_tenant(runtime, acme, lambda s: store.publish(s, tenant_id=acme.tenant_id, flow_id=flow.id, actor=ACTOR))
    assert (v1.number, v2.number) == (1, 2)
    live = await in_tenant(runtime, acme, lambda s: store.live_version(s, tenant_id=acme.tenant_id, flow_id=flow.id))
    assert live.number == 2 and live.document == second

    v3 = await in_tenant(runtime, acme, lambda s: store.rollback(s, tenant_id=acme.tenant_id, flow_id=flow.id, number=1, actor=ACTOR))
    assert (v3.number, v3.restored_from, v3.document) == (3, 1, first)
    versions = await in_tenant(runtime, acme, lambda s: store.list_versions(s, tenant_id=acme.tenant_id, flow_id=flow.id))
    assert [(v.number, v.document) for v in versions] == [(1, first), (2, second), (3, first)]  # old versions never change
    with pytest.raises(Problem) as missing:
        await in_tenant(runtime, acme, lambda s: store.rollback(s, tenant_id=acme.tenant_id, flow_id=flow.id, number=9, actor=ACTOR))
    assert (missing.value.status, missing.value.code) == (404, "not_found")


async def test_a_document_that_is_not_a_flow_changes_nothing(runtime: Runtime, client: AsyncClient, acme: Admin) -> None:
    flow, _ = await in_tenant(runtime, acme, lambda s: store.create_flow(s, tenant_id=acme.tenant_id, name="Main", actor=ACTOR))
    before = flow.draft
    for document in ({"start": "x"}, [], {"start": "a", "nodes": {"a": {"type": "dance"}}}):
        with pytest.raises(Problem) as refused:
            await in_tenant(runtime, acme, lambda s, d=document: store.save_draft(s, tenant_id=acme.tenant_id, flow_id=flow.id, document=d, actor=ACTOR))
        assert (refused.value.status, refused.value.code) == (400, "flow_invalid") and refused.value.extra["errors"]
    again = await in_tenant(runtime, acme, lambda s: store.get_flow(s, tenant_id=acme.tenant_id, flow_id=flow.id))
    assert again.draft == before
    with pytest.raises(Problem) as taken:
        await in_tenant(runtime, acme, lambda s: store.create_flow(s, tenant_id=acme.tenant_id, name="Main", actor=ACTOR))
    assert (taken.value.status, taken.value.code) == (409, "flow_name_taken")
    with pytest.raises(Problem) as blank:
        await in_tenant(runtime, acme, lambda s: store.create_flow(s, tenant_id=acme.tenant_id, name="  ", actor=ACTOR))
    assert blank.value.code == "invalid_name"


async def test_another_tenants_flows_and_queues_do_not_exist(runtime: Runtime, client: AsyncClient, acme: Admin, globex: Admin) -> None:
    globex_queue, _ = await make_queue(client, globex, [], name="Globex support")
    flow, errors = await in_tenant(runtime, acme, lambda s: store.create_flow(s, tenant_id=acme.tenant_id, name="Main", actor=ACTOR, document=line(globex_queue)))
    assert [(e.code, e.node) for e in errors] == [("unknown_queue", "support")]
    for action in (
        lambda s: store.get_flow(s, tenant_id=globex.tenant_id, flow_id=flow.id),
        lambda s: store.publish(s, tenant_id=globex.tenant_id, flow_id=flow.id, actor=ACTOR),
        lambda s: store.save_draft(s, tenant_id=globex.tenant_id, flow_id=flow.id, document=line(globex_queue), actor=ACTOR),
        lambda s: store.list_versions(s, tenant_id=globex.tenant_id, flow_id=flow.id),
    ):
        with pytest.raises(Problem) as hidden:
            await in_tenant(runtime, globex, action)
        assert (hidden.value.status, hidden.value.code) == (404, "not_found")
    assert await in_tenant(runtime, globex, lambda s: store.list_flows(s, tenant_id=globex.tenant_id)) == []


async def test_lookups_only_to_addresses_the_tenant_configured(runtime: Runtime, client: AsyncClient, acme: Admin, globex: Admin) -> None:
    queue_id, _ = await make_queue(client, acme, [])
    document = line(queue_id, lookup_url="https://crm.acme.test/customers/{caller_number}")
    flow, errors = await in_tenant(runtime, acme, lambda s: store.create_flow(s, tenant_id=acme.tenant_id, name="Main", actor=ACTOR, document=document))
    assert [(e.code, e.node) for e in errors] == [("http_address_not_allowed", "look")]
    await in_tenant(runtime, globex, lambda s: store.add_lookup_address(s, tenant_id=globex.tenant_id, prefix="https://crm.acme.test/", actor=ACTOR))
    assert await in_tenant(runtime, acme, lambda s: store.check_draft(s, tenant_id=acme.tenant_id, flow_id=flow.id)) != []  # globex's address is not acme's
    address = await in_tenant(runtime, acme, lambda s: store.add_lookup_address(s, tenant_id=acme.tenant_id, prefix="https://crm.acme.test/", actor=ACTOR))
    assert await in_tenant(runtime, acme, lambda s: store.check_draft(s, tenant_id=acme.tenant_id, flow_id=flow.id)) == []
    for bad in ("ftp://crm.acme.test/", "https://crm.acme.test", "https://user:pw@crm.acme.test/", "not a url", "https:///"):
        with pytest.raises(Problem) as refused:
            await in_tenant(runtime, acme, lambda s, b=bad: store.add_lookup_address(s, tenant_id=acme.tenant_id, prefix=b, actor=ACTOR))
        assert refused.value.code == "invalid_lookup_address"
    with pytest.raises(Problem) as twice:
        await in_tenant(runtime, acme, lambda s: store.add_lookup_address(s, tenant_id=acme.tenant_id, prefix="https://crm.acme.test/", actor=ACTOR))
    assert twice.value.code == "lookup_address_exists"
    with pytest.raises(Problem):
        await in_tenant(runtime, globex, lambda s: store.remove_lookup_address(s, tenant_id=globex.tenant_id, address_id=address.id, actor=ACTOR))
    await in_tenant(runtime, acme, lambda s: store.remove_lookup_address(s, tenant_id=acme.tenant_id, address_id=address.id, actor=ACTOR))
    assert [a.prefix for a in await in_tenant(runtime, acme, lambda s: store.list_lookup_addresses(s, tenant_id=acme.tenant_id))] == []
    with pytest.raises(Problem):
        await in_tenant(runtime, acme, lambda s: store.remove_lookup_address(s, tenant_id=acme.tenant_id, address_id=uuid.uuid4(), actor=ACTOR))
