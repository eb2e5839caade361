"""Typed contact-center events (call.state_changed, agent.state_changed): written
to the outbox in the transaction of the change, for its tenant only, nothing for
a rolled-back change, and streamed to the tenant's /ws/events subscribers."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import select
from tenants_support import OFFER, Admin, AgentSeat, MakeAgent
from test_acd import go_ready, make_queue, place_call
from test_sockets import Socket

from kefu.platform.models import OutboxEvent
from kefu.platform.runtime import Runtime
from kefu.tenants.services import ContactCenter, log_out_all_agents

CC_EVENTS = ("call.state_changed", "agent.state_changed")


async def outbox(runtime: Runtime, tenant_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        rows = await session.scalars(
            select(OutboxEvent).where(OutboxEvent.tenant_id == tenant_id, OutboxEvent.event_type.in_(CC_EVENTS)).order_by(OutboxEvent.id)
        )
        return [(row.event_type, row.payload) for row in rows]


def agent_event(tenant_id: uuid.UUID, seat: AgentSeat, status: str, system_state: str, reason: str | None = None) -> tuple[str, dict[str, Any]]:
    return ("agent.state_changed", {
        "tenant_id": str(tenant_id), "agent_id": str(seat.agent_id), "status": status, "system_state": system_state, "not_ready_reason": reason,
    })


def call_event(
    tenant_id: uuid.UUID, call_id: str, status: str, queue_id: str, agent: AgentSeat | None = None, end_reason: str | None = None
) -> tuple[str, dict[str, Any]]:
    return ("call.state_changed", {
        "tenant_id": str(tenant_id), "call_id": call_id, "status": status, "queue_id": queue_id,
        "agent_id": str(agent.agent_id) if agent else None, "end_reason": end_reason,
    })


async def answered_call(client: AsyncClient, admin: Admin, seat: AgentSeat) -> tuple[str, str]:
    """Ready, called, answered, hung up by the caller: returns (queue id, call id)."""
    queue_id, widget = await make_queue(client, admin, [seat])
    await go_ready(client, seat)
    call = await place_call(client, widget, "Li Lei")
    answered = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=seat.headers)
    assert answered.status_code == 200, answered.text
    hangup = await client.post(f"/api/v1/widget/calls/{call['call_id']}/hangup", headers={"X-Caller-Token": call["caller_token"]})
    assert hangup.status_code == 204, hangup.text
    return queue_id, call["call_id"]


def expected_answered_call(tenant_id: uuid.UUID, seat: AgentSeat, queue_id: str, call_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        agent_event(tenant_id, seat, "not_ready", "idle", "logged_in"),
        agent_event(tenant_id, seat, "available", "idle"),
        call_event(tenant_id, call_id, "queued", queue_id),
        agent_event(tenant_id, seat, "available", "ringing"),
        call_event(tenant_id, call_id, "ringing", queue_id, seat),
        agent_event(tenant_id, seat, "available", "on_call"),
        call_event(tenant_id, call_id, "connected", queue_id, seat),
        call_event(tenant_id, call_id, "ended", queue_id, seat, "caller_hangup"),
        agent_event(tenant_id, seat, "available", "idle"),
    ]


async def test_a_routed_and_answered_call_leaves_its_state_events_in_its_tenants_outbox_only(
    runtime: Runtime, client: AsyncClient, acme: Admin, globex: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    gus = await make_agent(globex, "Gus")
    assert (await client.post("/api/v1/agent/session", headers=gus.headers)).status_code == 200
    queue_id, call_id = await answered_call(client, acme, ann)

    assert await outbox(runtime, acme.tenant_id) == expected_answered_call(acme.tenant_id, ann, queue_id, call_id)
    assert await outbox(runtime, globex.tenant_id) == [agent_event(globex.tenant_id, gus, "not_ready", "idle", "logged_in")]


async def test_a_rolled_back_change_emits_nothing(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, cc: ContactCenter
) -> None:
    ann = await make_agent(acme, "Ann")
    await go_ready(client, ann)
    before = await outbox(runtime, acme.tenant_id)
    bus = runtime.components["events"]
    async with bus.subscribe(tenant_id=acme.tenant_id) as events:
        try:
            async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
                assert await log_out_all_agents(session, tenant_id=acme.tenant_id) == 1
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert await outbox(runtime, acme.tenant_id) == before
        # The next committed change is the first thing published.
        await client.put("/api/v1/agent/status", json={"status": "not_ready", "reason": "lunch"}, headers=ann.headers)
        published = await anext(aiter(events))
        assert (published.event_type, published.data) == agent_event(acme.tenant_id, ann, "not_ready", "idle", "lunch")


async def test_a_tenants_events_socket_receives_the_call_and_agent_events(
    app: Litestar, runtime: Runtime, client: AsyncClient, acme: Admin, globex: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    gus = await make_agent(globex, "Gus")
    token = acme.headers["Authorization"].split()[1]
    socket = Socket(app, "/ws/events", f"access_token={token}")
    try:
        assert await socket.receive_json() == {"type": "ready"}
        await client.post("/api/v1/agent/session", headers=gus.headers)  # another tenant's change
        queue_id, call_id = await answered_call(client, acme, ann)
        received = []
        for _ in range(9):
            frame = await socket.receive_json()
            assert frame["type"] == "event"
            event = frame["event"]
            assert (event["tenant_id"], event["routing_key"]) == (str(acme.tenant_id), f"tenant.{acme.tenant_id}.{event['event_type']}")
            received.append((event["event_type"], event["data"]))
        assert received == expected_answered_call(acme.tenant_id, ann, queue_id, call_id)
    finally:
        await socket.close()
