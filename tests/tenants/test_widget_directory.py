"""Widget keys are remembered per process (kefu.tenants.widgets) and forgotten the
moment the tenant's entry points or status change: here at commit, elsewhere
through the push hub.  A call never reaches an entry point that was deleted or a
tenant that was suspended."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient
from kefu.platform.db import Database
from kefu.platform.devservices import RedisServer
from kefu.platform.identity.principal import Principal
from kefu.platform.runtime import Runtime
from kefu.tenants.models import Call
from kefu.tenants.notify import RedisHub
from kefu.tenants.services import ContactCenter
from kefu.tenants.widgets import CHANGED, WidgetDirectory
from sqlalchemy import func, select
from tenants_support import OFFER, Admin, InProcessMedia, MakeAgent
from test_acd import go_ready, make_queue, place_call

OPERATOR_SCOPES = frozenset({"platform:tenants.read", "platform:tenants.write"})


async def test_a_key_is_read_once_then_remembered(client: AsyncClient, acme: Admin, cc: ContactCenter) -> None:
    _queue_id, widget = await make_queue(client, acme, [])
    directory = cc.calls.widgets
    before = directory.lookups
    first = await directory.resolve(widget)
    again = await directory.resolve(widget)
    assert first == again and first.tenant_id == acme.tenant_id
    assert directory.lookups == before + 1


async def test_a_deleted_entry_point_stops_taking_calls_at_once(client: AsyncClient, acme: Admin, cc: ContactCenter) -> None:
    _queue_id, widget = await make_queue(client, acme, [])
    await place_call(client, widget, "Li Lei")  # remembered now
    entry = next(e for e in (await client.get("/api/v1/entry-points", headers=acme.headers)).json() if e["widget_key"] == widget)
    assert (await client.delete(f"/api/v1/entry-points/{entry['id']}", headers=acme.headers)).status_code == 204
    response = await client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "Han Meimei", "offer_sdp": OFFER})
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


async def test_a_suspended_tenant_takes_no_calls_at_once_and_a_resumed_one_does_again(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent
) -> None:
    _queue_id, widget = await make_queue(client, acme, [])
    _other_queue, other_widget = await make_queue(client, globex, [])
    await place_call(client, widget, "Li Lei")
    await place_call(client, other_widget, "Wang Fang")
    operator = runtime.tokens.issue(Principal(kind="operator", subject="ops-1", tenant_id=None, scopes=OPERATOR_SCOPES))
    headers = {"Authorization": f"Bearer {operator}"}
    assert (await client.post(f"/api/admin/v1/tenants/{acme.tenant_id}/suspend", json={"reason": "unpaid"}, headers=headers)).status_code == 200
    refused = await client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "Han Meimei", "offer_sdp": OFFER})
    assert (refused.status_code, refused.json()["code"]) == (403, "tenant_suspended")
    await place_call(client, other_widget, "Zhao Lei")  # another tenant is not affected
    assert (await client.post(f"/api/admin/v1/tenants/{acme.tenant_id}/resume", headers=headers)).status_code == 200
    await place_call(client, widget, "Han Meimei")


async def test_a_change_on_one_node_is_forgotten_on_the_other_through_redis(
    redis_server: RedisServer, runtime: Runtime, client: AsyncClient, acme: Admin, globex: Admin
) -> None:
    _q1, acme_widget = await make_queue(client, acme, [])
    _q2, globex_widget = await make_queue(client, globex, [])
    hub_a, hub_b = RedisHub(redis_server.url), RedisHub(redis_server.url)
    await hub_a.start()
    await hub_b.start()
    db: Database = runtime.db
    node_a, node_b = WidgetDirectory(db, hub_a), WidgetDirectory(db, hub_b)
    heard: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    hub_b.watch(CHANGED, lambda channel, _message: heard.put_nowait(channel[1]))
    try:
        assert await node_b.warm() >= 2
        lookups = node_b.lookups
        await node_b.resolve(acme_widget)
        await node_b.resolve(globex_widget)
        assert node_b.lookups == lookups  # warmed: no reads

        node_a.changed(acme.tenant_id)
        assert await asyncio.wait_for(heard.get(), timeout=5) == acme.tenant_id
        await node_b.resolve(acme_widget)
        await node_b.resolve(globex_widget)
        assert node_b.lookups == lookups + 1  # only the changed tenant's key was read again
    finally:
        await hub_a.stop()
        await hub_b.stop()


async def test_unknown_and_oversized_keys_are_not_found_and_not_remembered(client: AsyncClient, cc: ContactCenter) -> None:
    directory = cc.calls.widgets
    for key in ("wk_nope", "x" * 65, ""):
        response = await client.post(f"/api/v1/widget/{key or '%20'}/calls", json={"caller_name": "A", "offer_sdp": OFFER})
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert "wk_nope" not in directory._known


async def test_a_failed_arrival_transaction_drops_the_answered_leg_and_leaves_no_call(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, cc: ContactCenter, media: InProcessMedia,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the database went away mid-arrival")

    monkeypatch.setattr(cc.acd, "offer_on_arrival", broken)
    response = await client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "Li Lei", "offer_sdp": OFFER})
    assert response.status_code == 500
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        assert await session.scalar(select(func.count()).select_from(Call).where(Call.tenant_id == acme.tenant_id)) == 0
    assert len(media.ended) == 1 and media.legs_of(media.ended[0]) == []
    state = (await client.get("/api/v1/agent/state", headers=ann.headers)).json()
    assert state["state"] == "available"
