"""The ACD: longest-idle routing, atomic reservation under concurrency, ring
timeout, presence lease expiry, and tenant-wide log-out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from tenants_support import START, Admin, AgentSeat, MakeAgent
from httpx import AsyncClient
from sqlalchemy import select, update
from tenants_support import OFFER

from kefu.platform.db import Database
from kefu.platform.runtime import Runtime
from kefu.tenants.acd import Acd, log_out_all_agents
from kefu.tenants.clock import ManualClock, ManualTimers
from kefu.tenants.models import Agent, Call
from kefu.tenants.services import ContactCenter


async def make_queue(client: AsyncClient, admin: Admin, seats: list[AgentSeat], name: str = "Support") -> tuple[str, str]:
    queue = (await client.post("/api/v1/queues", json={"name": name}, headers=admin.headers)).json()
    await client.put(f"/api/v1/queues/{queue['id']}/members", json={"agent_ids": [str(s.agent_id) for s in seats]}, headers=admin.headers)
    entry = (await client.post("/api/v1/entry-points", json={"name": f"{name} web", "queue_id": queue["id"]}, headers=admin.headers)).json()
    return queue["id"], entry["widget_key"]


async def go_ready(client: AsyncClient, seat: AgentSeat) -> dict:
    assert (await client.post("/api/v1/agent/session", headers=seat.headers)).json()["state"] == "not_ready"
    response = await client.put("/api/v1/agent/status", json={"status": "available"}, headers=seat.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def place_call(client: AsyncClient, widget_key: str, caller: str) -> dict:
    response = await client.post(f"/api/v1/widget/{widget_key}/calls", json={"caller_name": caller, "offer_sdp": OFFER})
    assert response.status_code == 201, response.text
    return response.json()


async def state_of(client: AsyncClient, seat: AgentSeat) -> dict:
    return (await client.get("/api/v1/agent/state", headers=seat.headers)).json()


async def events_of(client: AsyncClient, admin: Admin, call_id: str) -> list[dict]:
    return (await client.get(f"/api/v1/calls/{call_id}/events", headers=admin.headers)).json()


async def test_call_goes_to_the_longest_idle_member_and_the_log_says_why(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben, cai = await make_agent(acme, "Ann"), await make_agent(acme, "Ben"), await make_agent(acme, "Cai")
    outsider = await make_agent(acme, "Out")  # available, but not a member
    _queue_id, widget = await make_queue(client, acme, [ann, ben, cai])
    await go_ready(client, outsider)
    await go_ready(client, ben)  # idle since START
    await timers.advance(5)
    await go_ready(client, ann)  # idle since START+5
    await timers.advance(5)
    await go_ready(client, cai)  # idle since START+10
    await timers.advance(2)

    call = await place_call(client, widget, "Li Lei")

    assert (await state_of(client, ben))["state"] == "ringing"
    assert (await state_of(client, ben))["current_call_id"] == call["call_id"]
    assert [(await state_of(client, s))["state"] for s in (ann, cai, outsider)] == ["available", "available", "available"]
    offered = [e for e in await events_of(client, acme, call["call_id"]) if e["type"] == "offered"]
    assert len(offered) == 1
    data = offered[0]["data"]
    assert data["agent_id"] == str(ben.agent_id)
    assert data["strategy"] == "longest_idle"
    assert data["eligible"] == [
        {"agent_id": str(ben.agent_id), "idle_since": START.isoformat(), "idle_s": 12.0},
        {"agent_id": str(ann.agent_id), "idle_since": (START + timedelta(seconds=5)).isoformat(), "idle_s": 7.0},
        {"agent_id": str(cai.agent_id), "idle_since": (START + timedelta(seconds=10)).isoformat(), "idle_s": 2.0},
    ]
    assert data["reason"] == f"longest idle: idle since {START.isoformat()} (12.0 s), the longest of 3 eligible agent(s)"

    second = await place_call(client, widget, "Han Meimei")
    assert (await state_of(client, ann))["current_call_id"] == second["call_id"]


async def test_agent_freeing_up_takes_the_next_waiting_call(client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    first = await place_call(client, widget, "First")
    await timers.advance(1)
    second = await place_call(client, widget, "Second")
    assert (await client.post(f"/api/v1/agent/calls/{first['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)).status_code == 200
    assert (await client.post(f"/api/v1/agent/calls/{first['call_id']}/hangup", headers=ann.headers)).status_code == 204
    state = await state_of(client, ann)
    assert (state["state"], state["current_call_id"]) == ("ringing", second["call_id"])


async def test_two_routers_racing_never_double_book_an_agent(
    runtime: Runtime, cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, clock: ManualClock, timers: ManualTimers
) -> None:
    seats = [await make_agent(acme, name) for name in ("Ann", "Ben", "Cai")]
    queue_id, widget = await make_queue(client, acme, seats)
    calls = []
    for i in range(6):  # nobody ready: all wait
        calls.append(await place_call(client, widget, f"Caller {i}"))
        await timers.advance(1)
    # Make the agents free behind the routers' backs, so both routers see all three as eligible.
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        await session.execute(
            update(Agent).where(Agent.tenant_id == acme.tenant_id)
            .values(status="available", system_state="idle", lease_expires_at=clock() + timedelta(seconds=30))
        )
    other_db = Database(runtime.settings.db)  # a second API node with its own connection pool
    other_node = Acd(other_db, ring_timeout_s=20, clock=clock, timers=ManualTimers(clock))
    try:
        results = await asyncio.gather(
            cc.acd.route_queue(tenant_id=acme.tenant_id, queue_id=uuid.UUID(queue_id)),
            other_node.route_queue(tenant_id=acme.tenant_id, queue_id=uuid.UUID(queue_id)),
            cc.acd.route_queue(tenant_id=acme.tenant_id, queue_id=uuid.UUID(queue_id)),
            other_node.route_queue(tenant_id=acme.tenant_id, queue_id=uuid.UUID(queue_id)),
        )
    finally:
        await other_db.dispose()
    offers = [offer for result in results for offer in result]
    assert len(offers) == 3
    assert len({o.agent_id for o in offers}) == 3 and len({o.call_id for o in offers}) == 3
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        ringing = {c.agent_id: c.id for c in await session.scalars(select(Call).where(Call.status == "ringing"))}
        agents = {a.id: a.current_call_id for a in await session.scalars(select(Agent))}
        queued = list(await session.scalars(select(Call.id).where(Call.status == "queued")))
    assert ringing == agents
    assert len(queued) == 3
    # The oldest three calls were offered first.
    assert set(ringing.values()) == {uuid.UUID(c["call_id"]) for c in calls[:3]}


async def test_ring_timeout_makes_agent_not_ready_and_reoffers_the_call(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _queue_id, widget = await make_queue(client, acme, [ann, ben])
    await go_ready(client, ann)
    await timers.advance(1)
    await go_ready(client, ben)
    call = await place_call(client, widget, "Li Lei")
    assert (await state_of(client, ann))["current_call_id"] == call["call_id"]

    await timers.advance(19.9)
    assert (await state_of(client, ann))["state"] == "ringing"
    await timers.advance(0.1)  # settings.ring_timeout_s == 20

    ann_state = await state_of(client, ann)
    assert (ann_state["state"], ann_state["not_ready_reason"], ann_state["current_call_id"]) == ("not_ready", "no_answer", None)
    assert (await state_of(client, ben))["current_call_id"] == call["call_id"]
    events = await events_of(client, acme, call["call_id"])
    assert [(e["seq"], e["type"], e["actor"]) for e in events] == [
        (1, "created", "caller"), (2, "queued", "acd"), (3, "offered", "acd"),
        (4, "offer_timeout", "acd"), (5, "requeued", "acd"), (6, "offered", "acd"),
    ]
    assert events[3]["data"] == {"agent_id": str(ann.agent_id), "reason": "no_answer"}
    assert events[4]["data"]["priority"] == 0  # keeps its priority; its queued_at keeps its place
    assert events[5]["data"]["agent_id"] == str(ben.agent_id)
    # The late answer of the first agent is refused; the call is not theirs any more.
    late = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert (late.status_code, late.json()["code"]) == (404, "not_found")


async def test_expired_lease_frees_agent_and_requeues_the_offered_call(
    cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    cc.acd.ring_timeout_s = 120
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _queue_id, widget = await make_queue(client, acme, [ann, ben])
    await go_ready(client, ann)
    await timers.advance(1)
    await go_ready(client, ben)
    call = await place_call(client, widget, "Li Lei")
    assert (await state_of(client, ann))["state"] == "ringing"

    await timers.advance(25)
    assert await cc.acd.renew_lease(tenant_id=acme.tenant_id, agent_id=ben.agent_id)  # Ben's desktop is alive
    await timers.advance(5)  # Ann's lease (30 s) runs out

    ann_state = await state_of(client, ann)
    assert (ann_state["state"], ann_state["system_state"], ann_state["current_call_id"]) == ("offline", "idle", None)
    assert (await state_of(client, ben))["current_call_id"] == call["call_id"]
    types = [(e["type"], e["data"].get("reason")) for e in await events_of(client, acme, call["call_id"])]
    assert types[3:] == [
        ("offer_withdrawn", "lease_expired"),
        ("requeued", None),
        ("offered", "longest idle: idle since 2026-11-23T09:00:01+00:00 (29.0 s), the longest of 1 eligible agent(s)"),
    ]
    # A logged-out agent's desktop cannot renew any more.
    assert not await cc.acd.renew_lease(tenant_id=acme.tenant_id, agent_id=ann.agent_id)


async def test_agent_with_expired_lease_is_never_offered_a_call(
    cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    await timers.advance(31)
    call = await place_call(client, widget, "Li Lei")
    assert (await client.get(f"/api/v1/widget/calls/{call['call_id']}", headers={"X-Caller-Token": call["caller_token"]})).json()["status"] == "queued"
    assert (await state_of(client, ann))["state"] == "offline"


async def test_log_out_all_agents_ends_waiting_calls_instead_of_requeueing_them(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    await go_ready(client, ben)
    call = await place_call(client, widget, "Li Lei")
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        assert await log_out_all_agents(session, tenant_id=acme.tenant_id) == 2
    ann_state = await state_of(client, ann)
    assert (ann_state["state"], ann_state["system_state"], ann_state["current_call_id"]) == ("offline", "idle", None)
    assert (await state_of(client, ben))["state"] == "offline"
    events = await events_of(client, acme, call["call_id"])
    assert [(e["type"], e["actor"], e["data"]) for e in events[3:]] == [
        ("ended", "system", {"reason": "tenant_suspended", "previous_status": "ringing"})
    ]
    assert (await state_of(client, ann))["state"] == "offline"
    assert (await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann.headers)).json()["code"] == "agent_logged_out"


async def test_presence_bad_input(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    not_logged_in = await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann.headers)
    assert (not_logged_in.status_code, not_logged_in.json()["code"]) == (409, "agent_logged_out")
    await client.post("/api/v1/agent/session", headers=ann.headers)
    for body, code in (
        ({"status": "sleeping"}, "validation_error"),
        ({"status": "not_ready", "reason": "x" * 65}, "invalid_reason"),
        ({"status": "available", "mood": "good"}, "validation_error"),
    ):
        response = await client.put("/api/v1/agent/status", json=body, headers=ann.headers)
        assert (response.status_code, response.json()["code"]) == (400, code)
    lunch = await client.put("/api/v1/agent/status", json={"status": "not_ready", "reason": "lunch"}, headers=ann.headers)
    assert (lunch.json()["state"], lunch.json()["not_ready_reason"]) == ("not_ready", "lunch")
    admin_as_agent = await client.post("/api/v1/agent/session", headers=acme.headers)
    assert (admin_as_agent.status_code, admin_as_agent.json()["code"]) == (403, "permission_denied")
    assert (await client.delete("/api/v1/agent/session", headers=ann.headers)).json()["state"] == "offline"
