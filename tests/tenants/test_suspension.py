"""Suspending a tenant ends its waiting calls (``tenant_suspended``) instead of
re-queueing them into a tenant nobody can log in to; the media plane ends them
and the agents' and callers' sockets learn it after commit."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import select
from tenants_support import Admin, InProcessMedia, MakeAgent
from test_acd import events_of, go_ready, make_queue, place_call, state_of
from test_sockets import Socket

from kefu.platform.identity.principal import Principal
from kefu.platform.models import AuditEntry
from kefu.platform.runtime import Runtime

OPERATOR_SCOPES = frozenset({"platform:tenants.read", "platform:tenants.write"})


async def test_suspension_ends_queued_and_ringing_calls_and_tells_media_and_sockets(
    app: Litestar, runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    await go_ready(client, ben)
    ringing = await place_call(client, widget, "Li Lei")
    queued = await place_call(client, widget, "Han Meimei")
    agent_socket = Socket(app, "/ws/agent", f"access_token={ann.headers['Authorization'].split()[1]}")
    caller_socket = Socket(app, f"/ws/caller/{queued['call_id']}", f"caller_token={queued['caller_token']}")
    try:
        assert (await agent_socket.receive_json())["state"] == "ringing"
        assert (await agent_socket.receive_json())["type"] == "call.offered"
        assert (await caller_socket.receive_json())["status"] == "queued"

        operator = runtime.tokens.issue(Principal(kind="operator", subject="ops-1", tenant_id=None, scopes=OPERATOR_SCOPES))
        suspended = await client.post(
            f"/api/admin/v1/tenants/{acme.tenant_id}/suspend", json={"reason": "unpaid"}, headers={"Authorization": f"Bearer {operator}"}
        )
        assert (suspended.status_code, suspended.json()["status"]) == (200, "suspended")

        assert await agent_socket.receive_json() == {"type": "call.ended", "call_id": ringing["call_id"], "reason": "tenant_suspended"}
        pushed = await agent_socket.receive_json()
        assert (pushed["type"], pushed["state"], pushed["status"], pushed["system_state"], pushed["call_id"]) == (
            "agent.state", "offline", "offline", "idle", None
        )
        assert await caller_socket.receive_json() == {
            "type": "call.state", "call_id": queued["call_id"], "status": "ended", "reason": "tenant_suspended"
        }
    finally:
        await agent_socket.close()
        await caller_socket.close()

    assert sorted(media.ended) == sorted([uuid.UUID(ringing["call_id"]), uuid.UUID(queued["call_id"])])
    assert media.legs_of(uuid.UUID(ringing["call_id"])) == media.legs_of(uuid.UUID(queued["call_id"])) == []
    async with runtime.db.platform_session(reason="test") as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.tenant_id == acme.tenant_id, AuditEntry.action == "tenant.suspended"))
    assert entry is not None and entry.detail == {"reason": "unpaid", "agents_logged_out": 2}

    resumed = await client.post(f"/api/admin/v1/tenants/{acme.tenant_id}/resume", headers={"Authorization": f"Bearer {operator}"})
    assert resumed.status_code == 200
    for call, was in ((ringing, "ringing"), (queued, "queued")):
        state = await client.get(f"/api/v1/widget/calls/{call['call_id']}", headers={"X-Caller-Token": call["caller_token"]})
        assert state.json() == {"call_id": call["call_id"], "status": "ended", "end_reason": "tenant_suspended"}
        assert [(e["type"], e["actor"], e["data"]) for e in await events_of(client, acme, call["call_id"])][-1] == (
            "ended", "system", {"reason": "tenant_suspended", "previous_status": was}
        )
    assert (await state_of(client, ann))["current_call_id"] is None
