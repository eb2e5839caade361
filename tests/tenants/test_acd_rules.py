"""The ACD's routing rules end to end, through the HTTP API where one exists: each
strategy, skills and their relaxation, priorities, a returning caller's preferred
agent, after-call work and dispositions, reason codes, overflow, maximum wait,
closed hours, callbacks, announcements, and the sweep standing in for a dead
node's timers.  Time moves only by ``timers.advance`` (timers fire on the way) or,
to model timers lost with their node, by moving the clock alone.

Most tests run on SQLite only (the routing rules do not depend on the backend);
the ones about reservation and recovery across nodes run on PostgreSQL too.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from kefu.platform.db import Database
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.acd import Acd
from kefu.tenants.callflow import VOICEMAIL_MAX_S, CallFlow
from kefu.tenants.clock import ManualClock, ManualTimers
from kefu.tenants.models import Agent, Call, QueueMember
from kefu.tenants.notify import agent_channel
from kefu.tenants.services import ContactCenter
from sqlalchemy import select, update
from tenants_support import OFFER, START, Admin, AgentSeat, InProcessMedia, MakeAgent

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock, timers: ManualTimers) -> Runtime:
    """The contact center's runtime (tests/tenants/conftest.py) without the job worker,
    which none of these rules involve: it only slows every test's start and stop."""
    runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
    runtime.components["acd.clock"] = clock
    runtime.components["acd.timers"] = timers
    runtime.components["acd.sweep_interval_s"] = None
    return runtime


@pytest.fixture(autouse=True)
def long_leases(cc: ContactCenter) -> None:
    """Desktops that stay connected: these tests advance minutes, not the lease's 30 s."""
    cc.acd.lease_s = 24 * 3600


# --- helpers ---------------------------------------------------------------------------------


async def make_queue(client: AsyncClient, admin: Admin, seats: list[AgentSeat], name: str = "Support", **rules: Any) -> str:
    response = await client.post("/api/v1/queues", json={"name": name, **rules}, headers=admin.headers)
    assert response.status_code == 201, response.text
    queue_id = response.json()["id"]
    members = await client.put(f"/api/v1/queues/{queue_id}/members", json={"agent_ids": [str(s.agent_id) for s in seats]}, headers=admin.headers)
    assert members.status_code == 200, members.text
    return queue_id


async def make_entry(client: AsyncClient, admin: Admin, queue_id: str, *, priority: int = 0, name: str | None = None) -> str:
    body = {"name": name or f"web {queue_id[:8]} {priority}", "queue_id": queue_id, "priority": priority}
    response = await client.post("/api/v1/entry-points", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()["widget_key"]


async def queue_with_entry(client: AsyncClient, admin: Admin, seats: list[AgentSeat], name: str = "Support", **rules: Any) -> tuple[str, str]:
    queue_id = await make_queue(client, admin, seats, name, **rules)
    return queue_id, await make_entry(client, admin, queue_id)


async def log_in(client: AsyncClient, seat: AgentSeat) -> None:
    response = await client.post("/api/v1/agent/session", headers=seat.headers)
    assert response.status_code == 200, response.text


async def ready(client: AsyncClient, *seats: AgentSeat) -> None:
    for seat in seats:
        await log_in(client, seat)
        response = await client.put("/api/v1/agent/status", json={"status": "available"}, headers=seat.headers)
        assert response.status_code == 200, response.text


async def not_ready(client: AsyncClient, seat: AgentSeat, reason: str = "break") -> None:
    response = await client.put("/api/v1/agent/status", json={"status": "not_ready", "reason": reason}, headers=seat.headers)
    assert response.status_code == 200, response.text


async def place(client: AsyncClient, widget_key: str, caller: str, caller_ref: str | None = None) -> dict:
    body: dict[str, Any] = {"caller_name": caller, "offer_sdp": OFFER}
    if caller_ref is not None:
        body["caller_ref"] = caller_ref
    response = await client.post(f"/api/v1/widget/{widget_key}/calls", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def answer(client: AsyncClient, seat: AgentSeat, call: dict) -> None:
    response = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=seat.headers)
    assert response.status_code == 200, response.text


async def hang_up(client: AsyncClient, seat: AgentSeat, call: dict) -> None:
    response = await client.post(f"/api/v1/agent/calls/{call['call_id']}/hangup", headers=seat.headers)
    assert response.status_code == 204, response.text


async def talk(client: AsyncClient, timers: ManualTimers, seat: AgentSeat, call: dict, seconds: float = 0) -> None:
    await answer(client, seat, call)
    if seconds:
        await timers.advance(seconds)
    await hang_up(client, seat, call)


async def state_of(client: AsyncClient, seat: AgentSeat) -> dict:
    return (await client.get("/api/v1/agent/state", headers=seat.headers)).json()


async def ringing_call(client: AsyncClient, seat: AgentSeat) -> str | None:
    state = await state_of(client, seat)
    return state["current_call_id"] if state["state"] == "ringing" else None


async def who_rings(client: AsyncClient, call: dict, *seats: AgentSeat) -> AgentSeat:
    [seat] = [s for s in seats if await ringing_call(client, s) == call["call_id"]]
    return seat


async def events_of(client: AsyncClient, admin: Admin, call: dict) -> list[dict]:
    response = await client.get(f"/api/v1/calls/{call['call_id']}/events", headers=admin.headers)
    assert response.status_code == 200, response.text
    return response.json()


def of_type(events: list[dict], *types: str) -> list[dict]:
    return [e for e in events if e["type"] in types]


async def caller_view(client: AsyncClient, call: dict) -> dict:
    response = await client.get(f"/api/v1/widget/calls/{call['call_id']}", headers={"X-Caller-Token": call["caller_token"]})
    assert response.status_code == 200, response.text
    return response.json()


async def call_row(runtime: Runtime, tenant_id: uuid.UUID, call: dict) -> Call:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        row = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == uuid.UUID(call["call_id"])))
    assert row is not None
    return row


async def agent_row(runtime: Runtime, seat: AgentSeat) -> dict[str, Any]:
    async with runtime.db.tenant_session(tenant_id=seat.tenant_id) as session:
        agent = await session.scalar(select(Agent).where(Agent.tenant_id == seat.tenant_id, Agent.id == seat.agent_id))
    assert agent is not None
    return {c.key: getattr(agent, c.key) for c in Agent.__table__.columns}


def problem(response: Any) -> tuple[int, str]:
    return response.status_code, response.json().get("code")


# --- strategies end to end -----------------------------------------------------------------------


async def test_round_robin_rotates_across_successive_calls(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben, cai = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai")]
    _, widget = await queue_with_entry(client, acme, [ann, ben, cai], strategy="round_robin")
    await ready(client, cai, ben, ann)  # longest idle would start with Cai
    taken = []
    for i in range(4):
        await timers.advance(5)
        call = await place(client, widget, f"Caller {i}")
        seat = await who_rings(client, call, ann, ben, cai)
        taken.append(seat.name)
        if i == 1:
            [offered] = of_type(await events_of(client, acme, call), "offered")
            assert offered["data"]["reason"] == "round robin: last offered a call of this queue never, the least recently of 3 eligible agent(s)"
            assert [e["last_offered_at"] for e in offered["data"]["eligible"]] == [None, None, (START + timedelta(seconds=5)).isoformat()]
        await talk(client, timers, seat, call, 3)
    assert taken == ["Ann", "Ben", "Cai", "Ann"]


async def test_fewest_calls_uses_todays_answered_calls_of_the_queue(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben, cai = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai")]
    queue_id, widget = await queue_with_entry(client, acme, [ann, ben, cai], strategy="fewest_calls")
    await ready(client, ann)
    for i in range(2):
        call = await place(client, widget, f"For Ann {i}")
        await talk(client, timers, ann, call, 10)
    await not_ready(client, ann)
    await ready(client, ben)
    await talk(client, timers, ben, await place(client, widget, "For Ben"), 10)
    await ready(client, ann)
    await timers.advance(1)
    await ready(client, cai)  # the shortest idle, but no call yet

    call = await place(client, widget, "Next")
    assert await ringing_call(client, cai) == call["call_id"]
    [offered] = of_type(await events_of(client, acme, call), "offered")
    assert [(e["agent_id"], e["calls_answered"]) for e in offered["data"]["eligible"]] == [
        (str(cai.agent_id), 0), (str(ben.agent_id), 1), (str(ann.agent_id), 2)
    ]
    assert offered["data"]["reason"] == "fewest calls: 0 call(s) answered from this queue today, the fewest of 3 eligible agent(s)"
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        counters = {
            m.agent_id: (m.calls_answered, m.counters_day)
            for m in await session.scalars(select(QueueMember).where(QueueMember.queue_id == uuid.UUID(queue_id)))
        }
    assert counters == {ann.agent_id: (2, START.date()), ben.agent_id: (1, START.date()), cai.agent_id: (0, None)}

    # Cai answers: Ben and Cai have one call each, and Ben has been idle longer.
    await talk(client, timers, cai, call, 5)
    after = await place(client, widget, "After")
    assert await ringing_call(client, ben) == after["call_id"]


async def test_least_talk_time_uses_todays_talk_seconds_of_the_queue(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben, cai = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai")]
    queue_id, widget = await queue_with_entry(client, acme, [ann, ben, cai], strategy="least_talk_time")
    for seat, seconds in ((ann, 60), (ben, 10), (cai, 30)):
        await ready(client, seat)
        await talk(client, timers, seat, await place(client, widget, f"For {seat.name}"), seconds)
        await not_ready(client, seat)
    await ready(client, cai, ann, ben)  # Ben the shortest idle

    call = await place(client, widget, "Next")
    assert await ringing_call(client, ben) == call["call_id"]
    [offered] = of_type(await events_of(client, acme, call), "offered")
    assert [(e["agent_id"], e["talk_s"]) for e in offered["data"]["eligible"]] == [
        (str(ben.agent_id), 10), (str(cai.agent_id), 30), (str(ann.agent_id), 60)
    ]
    assert offered["data"]["reason"] == "least talk time: 10 s talked in this queue today, the least of 3 eligible agent(s)"
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        talked = {m.agent_id: (m.talk_s, m.calls_answered) for m in await session.scalars(select(QueueMember).where(QueueMember.queue_id == uuid.UUID(queue_id)))}
    assert talked == {ann.agent_id: (60, 1), ben.agent_id: (10, 1), cai.agent_id: (30, 1)}


async def test_linear_follows_the_members_list_order(client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers) -> None:
    ann, ben, cai = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai")]
    _, widget = await queue_with_entry(client, acme, [cai, ann, ben], strategy="linear")
    await ready(client, ann, ben)
    await timers.advance(10)
    await ready(client, cai)  # the shortest idle, but first in the list
    calls = [await place(client, widget, f"Caller {i}") for i in range(3)]
    assert [await ringing_call(client, s) for s in (cai, ann, ben)] == [c["call_id"] for c in calls]
    [offered] = of_type(await events_of(client, acme, calls[0]), "offered")
    assert [e["position"] for e in offered["data"]["eligible"]] == [0, 1, 2]
    assert offered["data"]["reason"] == "linear: position 0, the first free of 3 eligible agent(s) in the queue's order"


@BOTH_BACKENDS
async def test_ring_all_rings_every_eligible_member_and_the_first_to_answer_wins(
    runtime: Runtime, cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben, cai, out = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai", "Out")]
    _, widget = await queue_with_entry(client, acme, [ann, ben, cai], strategy="ring_all")
    await ready(client, ann, ben, cai, out)
    call = await place(client, widget, "Li Lei")

    assert [await ringing_call(client, s) for s in (ann, ben, cai)] == [call["call_id"]] * 3
    assert (await state_of(client, out))["state"] == "available"
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.ring_group, row.agent_id) == ("ringing", True, None)
    [offered] = of_type(await events_of(client, acme, call), "offered")
    assert offered["data"]["agent_id"] is None
    assert sorted(offered["data"]["agent_ids"]) == sorted(str(s.agent_id) for s in (ann, ben, cai))
    assert offered["data"]["strategy"] == "ring_all"

    async with contextlib.AsyncExitStack() as stack:
        pushes = {s.name: await stack.enter_async_context(cc.acd.hub.subscribe(agent_channel(acme.tenant_id, s.agent_id))) for s in (ann, cai)}
        await answer(client, ben, call)
        received = {name: [q.get_nowait() for _ in range(q.qsize())] for name, q in pushes.items()}
    for seat in (ann, cai):
        messages = received[seat.name]
        assert {"type": "call.withdrawn", "call_id": call["call_id"], "reason": "answered_elsewhere"} in messages
        [state_push] = [m for m in messages if m["type"] == "agent.state"]
        assert (state_push["state"], state_push["call_id"]) == ("available", None)
        assert (await state_of(client, seat))["state"] == "available"
    assert (await state_of(client, ben))["state"] == "on_call"
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.ring_group, row.agent_id) == ("connected", False, ben.agent_id)
    late = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert problem(late) == (404, "not_found")


async def test_ring_all_timeout_frees_everyone_without_no_answer_and_requeues(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _, widget = await queue_with_entry(client, acme, [ann, ben], strategy="ring_all", ring_timeout_s=10)
    await ready(client, ann, ben)
    call = await place(client, widget, "Li Lei")
    await timers.advance(9.9)
    assert [await ringing_call(client, s) for s in (ann, ben)] == [call["call_id"]] * 2
    await timers.advance(0.1)

    events = await events_of(client, acme, call)
    assert [e["type"] for e in events] == ["created", "queued", "offered", "offer_timeout", "requeued", "offered"]
    assert sorted(events[3]["data"]["agent_ids"]) == sorted([str(ann.agent_id), str(ben.agent_id)])
    assert events[3]["data"]["reason"] == "no_answer"
    for seat in (ann, ben):
        row = await agent_row(runtime, seat)
        # Free again (and rung again at once), never made not ready for the group's silence.
        assert (row["status"], row["not_ready_reason"], row["system_state"]) == ("available", None, "ringing")
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.queued_at, row.ring_group, row.offered_at) == (START, True, START + timedelta(seconds=10))


async def test_random_strategy_draws_with_the_acd_rng(
    cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    seats = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai", "Dan")]
    _, widget = await queue_with_entry(client, acme, seats, strategy="random")
    for seat in seats:
        await ready(client, seat)
        await timers.advance(1)
    cc.acd.rng = random.Random(2026)
    mirror = random.Random(2026)
    free = [s.agent_id for s in seats]  # in idle order, which the shuffle starts from
    for i in range(3):
        call = await place(client, widget, f"Caller {i}")
        drawn = list(free)
        mirror.shuffle(drawn)
        winner = next(s for s in seats if s.agent_id == drawn[0])
        assert await ringing_call(client, winner) == call["call_id"]
        [offered] = of_type(await events_of(client, acme, call), "offered")
        assert offered["data"]["reason"] == f"random: drawn at random from {len(free)} eligible agent(s)"
        free.remove(winner.agent_id)


# --- skills ---------------------------------------------------------------------------------------


async def make_skill(client: AsyncClient, admin: Admin, name: str) -> str:
    response = await client.post("/api/v1/skills", json={"name": name}, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def give_skills(client: AsyncClient, admin: Admin, seat: AgentSeat, **levels: int) -> None:
    body = {"skills": [{"skill_id": skill_id, "proficiency": level} for skill_id, level in levels.items()]}
    response = await client.put(f"/api/v1/agents/{seat.agent_id}/skills", json=body, headers=admin.headers)
    assert response.status_code == 200, response.text


async def need_skills(client: AsyncClient, admin: Admin, queue_id: str, needs: list[dict]) -> None:
    response = await client.put(f"/api/v1/queues/{queue_id}/skills", json={"skills": needs}, headers=admin.headers)
    assert response.status_code == 200, response.text


async def test_required_skill_with_minimum_proficiency_picks_the_qualified_agent(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben, cai = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai")]
    french = await make_skill(client, acme, "French")
    await give_skills(client, acme, ann, **{french: 3})
    await give_skills(client, acme, ben, **{french: 7})
    queue_id, widget = await queue_with_entry(client, acme, [ann, ben, cai])
    await need_skills(client, acme, queue_id, [{"skill_id": french, "min_proficiency": 5}])
    await ready(client, cai, ann)  # both idle longer than Ben
    await timers.advance(5)
    await ready(client, ben)
    call = await place(client, widget, "Marie")
    assert await ringing_call(client, ben) == call["call_id"]
    [offered] = of_type(await events_of(client, acme, call), "offered")
    assert (offered["data"]["eligible_count"], offered["data"]["excluded"]) == (1, {"low_proficiency": 1, "missing_skill": 1})
    assert offered["data"]["relaxation"] == "none"
    # Nobody else qualifies: the next call waits although two agents are free.
    second = await place(client, widget, "Pierre")
    assert (await caller_view(client, second))["status"] == "queued"
    assert [(await state_of(client, s))["state"] for s in (ann, cai)] == ["available", "available"]


async def test_preferred_skills_rank_agents_before_the_strategy(client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers) -> None:
    ann, ben, cai = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai")]
    spanish = await make_skill(client, acme, "Spanish")
    await give_skills(client, acme, ann, **{spanish: 2})
    await give_skills(client, acme, ben, **{spanish: 9})
    queue_id, widget = await queue_with_entry(client, acme, [ann, ben, cai])
    await need_skills(client, acme, queue_id, [{"skill_id": spanish, "required": False}])
    await ready(client, cai, ann)
    await timers.advance(5)
    await ready(client, ben)
    calls = [await place(client, widget, f"Caller {i}") for i in range(3)]
    assert [await ringing_call(client, s) for s in (ben, ann, cai)] == [c["call_id"] for c in calls]
    [offered] = of_type(await events_of(client, acme, calls[0]), "offered")
    assert [e["preferred_skill_score"] for e in offered["data"]["eligible"]] == [9, 2, 0]
    assert offered["data"]["reason"].startswith("preferred skills first (score 9); then longest idle: ")


async def test_relaxation_to_any_proficiency_fires_by_timer_after_relax_after_s(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    french = await make_skill(client, acme, "French")
    await give_skills(client, acme, ann, **{french: 3})
    queue_id, widget = await queue_with_entry(client, acme, [ann], relax_after_s=30, relax_any_after_s=90)
    await need_skills(client, acme, queue_id, [{"skill_id": french, "min_proficiency": 8}])
    await ready(client, ann)
    call = await place(client, widget, "Marie")
    await timers.advance(29.999)
    assert (await state_of(client, ann))["state"] == "available"
    await timers.advance(0.001)
    assert await ringing_call(client, ann) == call["call_id"]
    [offered] = of_type(await events_of(client, acme, call), "offered")
    assert offered["at"].startswith("2026-11-23T09:00:30")
    assert offered["data"]["relaxation"] == "any_proficiency"
    assert offered["data"]["reason"].endswith("; required skills relaxed to any proficiency after 30 s of waiting")


async def test_relaxation_to_any_agent_fires_by_timer_after_relax_any_after_s(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ben = await make_agent(acme, "Ben")  # no French at all
    french = await make_skill(client, acme, "French")
    queue_id, widget = await queue_with_entry(client, acme, [ben], relax_after_s=30, relax_any_after_s=90)
    await need_skills(client, acme, queue_id, [{"skill_id": french, "min_proficiency": 8}])
    await ready(client, ben)
    call = await place(client, widget, "Marie")
    await timers.advance(89.9)  # past the first relaxation: still no French speaker
    assert (await state_of(client, ben))["state"] == "available"
    await timers.advance(0.1)
    assert await ringing_call(client, ben) == call["call_id"]
    [offered] = of_type(await events_of(client, acme, call), "offered")
    assert (offered["data"]["relaxation"], offered["data"]["excluded"]) == ("any_agent", {})
    assert offered["data"]["reason"].endswith("; required skills dropped after 90 s of waiting")


# --- priority -----------------------------------------------------------------------------------


async def test_higher_entry_priority_first_and_fifo_within_a_priority(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    queue_id = await make_queue(client, acme, [ann])
    normal, vip = await make_entry(client, acme, queue_id), await make_entry(client, acme, queue_id, priority=5)
    await log_in(client, ann)
    calls = {}
    for name, widget in (("n1", normal), ("v1", vip), ("n2", normal), ("v2", vip)):
        calls[name] = await place(client, widget, name)
        await timers.advance(1)
    assert [(await caller_view(client, calls[n]))["position"] for n in ("v1", "v2", "n1", "n2")] == [1, 2, 3, 4]
    queued = of_type(await events_of(client, acme, calls["v1"]), "queued")
    assert queued[0]["data"]["priority"] == 5

    await ready(client, ann)
    served = []
    for _ in range(4):
        call_id = await ringing_call(client, ann)
        name = next(n for n, c in calls.items() if c["call_id"] == call_id)
        served.append(name)
        await talk(client, timers, ann, calls[name], 2)
    assert served == ["v1", "v2", "n1", "n2"]


async def test_a_requeued_call_keeps_its_place_and_priority(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    queue_id = await make_queue(client, acme, [ann, ben], ring_timeout_s=10)
    normal, vip = await make_entry(client, acme, queue_id), await make_entry(client, acme, queue_id, priority=5)
    await ready(client, ann)
    await log_in(client, ben)
    v1 = await place(client, vip, "v1")  # rings at Ann
    await timers.advance(2)
    n1 = await place(client, normal, "n1")
    await timers.advance(2)
    v2 = await place(client, vip, "v2")
    await timers.advance(6)  # Ann lets v1 ring out

    assert (await state_of(client, ann))["not_ready_reason"] == "no_answer"
    assert [(await caller_view(client, c))["position"] for c in (v1, v2, n1)] == [1, 2, 3]
    row = await call_row(runtime, acme.tenant_id, v1)
    assert (row.status, row.priority, row.queued_at) == ("queued", 5, START)
    [requeued] = of_type(await events_of(client, acme, v1), "requeued")
    assert requeued["data"] == {"queue_id": queue_id, "priority": 5}

    await ready(client, ben)
    assert await ringing_call(client, ben) == v1["call_id"]


async def test_an_agent_freeing_up_serves_its_most_urgent_queue_first(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    sales, support = await make_queue(client, acme, [ann], "Sales"), await make_queue(client, acme, [ann], "Support")
    older = await place(client, await make_entry(client, acme, sales), "Older, normal")
    await timers.advance(5)
    urgent = await place(client, await make_entry(client, acme, support, priority=9), "Newer, urgent")
    await ready(client, ann)
    assert await ringing_call(client, ann) == urgent["call_id"]
    await talk(client, timers, ann, urgent, 5)
    assert await ringing_call(client, ann) == older["call_id"]


# --- returning caller ------------------------------------------------------------------------------


async def test_returning_caller_waits_for_its_last_agent_then_anyone_after_the_window(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _, widget = await queue_with_entry(client, acme, [ann, ben], preferred_agent_timeout_s=60)
    await ready(client, ann)
    first = await place(client, widget, "Li Lei", caller_ref="cust-42")
    await talk(client, timers, ann, first, 30)
    await not_ready(client, ann)
    await ready(client, ben)

    again = await place(client, widget, "Li Lei", caller_ref="cust-42")
    [queued] = of_type(await events_of(client, acme, again), "queued")
    assert queued["data"]["preferred_agent_id"] == str(ann.agent_id)
    stranger = await place(client, widget, "Someone else")  # not held up behind the returning caller
    assert await ringing_call(client, ben) == stranger["call_id"]
    await talk(client, timers, ben, stranger, 10)
    assert (await state_of(client, ben))["state"] == "available"  # free, but not Li Lei's agent
    await timers.advance(49.9)
    assert (await caller_view(client, again))["status"] == "queued"
    await timers.advance(0.1)  # the window (60 s) ends: anyone may answer
    assert await ringing_call(client, ben) == again["call_id"]
    [offered] = of_type(await events_of(client, acme, again), "offered")
    assert not offered["data"]["reason"].startswith("returning caller")

    # Ben answered Li Lei last: within the window the next call waits for Ben, though Ann is free.
    await answer(client, ben, again)
    await ready(client, ann)
    third = await place(client, widget, "Li Lei", caller_ref="cust-42")
    [queued] = of_type(await events_of(client, acme, third), "queued")
    assert queued["data"]["preferred_agent_id"] == str(ben.agent_id)
    await timers.advance(20)
    assert (await state_of(client, ann))["state"] == "available"
    await hang_up(client, ben, again)
    assert await ringing_call(client, ben) == third["call_id"]
    [offered] = of_type(await events_of(client, acme, third), "offered")
    assert offered["data"]["reason"].startswith("returning caller: reserved for the agent who last answered it; ")
    assert offered["data"]["excluded"] == {"waiting_for_preferred_agent": 1}


async def test_without_a_caller_ref_or_timeout_there_is_no_preferred_agent(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _, widget = await queue_with_entry(client, acme, [ann, ben])  # preferred_agent_timeout_s 0
    await ready(client, ann)
    await talk(client, timers, ann, await place(client, widget, "Li Lei", caller_ref="cust-42"), 5)
    await not_ready(client, ann)
    await ready(client, ben)
    again = await place(client, widget, "Li Lei", caller_ref="cust-42")
    assert await ringing_call(client, ben) == again["call_id"]
    assert (await call_row(runtime, acme.tenant_id, again)).preferred_agent_id is None


# --- after-call work --------------------------------------------------------------------------------


async def test_fixed_wrap_up_ends_by_timer_and_the_agent_is_routed_after_it(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], wrap_up_mode="fixed", wrap_up_s=30)
    await ready(client, ann)
    first = await place(client, widget, "First")
    second = await place(client, widget, "Second")
    await talk(client, timers, ann, first, 20)
    state = await state_of(client, ann)
    assert (state["state"], state["system_state"], state["current_call_id"]) == ("wrap_up", "wrap_up", None)
    row = await agent_row(runtime, ann)
    assert (row["wrap_up_call_id"], row["wrap_up_until"]) == (uuid.UUID(first["call_id"]), START + timedelta(seconds=50))
    extend = await client.post("/api/v1/agent/wrap-up/extend", headers=ann.headers)
    assert problem(extend) == (409, "wrap_up_not_extendable")

    await timers.advance(29.9)
    assert (await state_of(client, ann))["state"] == "wrap_up"
    await timers.advance(0.1)
    assert await ringing_call(client, ann) == second["call_id"]
    wrap = of_type(await events_of(client, acme, first), "wrap_up_started", "wrap_up_ended", "disposition_missing")
    assert [(e["type"], e["actor"]) for e in wrap] == [("wrap_up_started", "acd"), ("wrap_up_ended", "acd")]
    assert wrap[0]["data"] == {"agent_id": str(ann.agent_id), "until": (START + timedelta(seconds=50)).isoformat()}
    assert wrap[1]["data"] == {"agent_id": str(ann.agent_id), "by": "timer", "wrap_up_s": 30.0}


async def test_extendable_wrap_up_extends_up_to_its_maximum(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], wrap_up_mode="extendable", wrap_up_s=30, wrap_up_max_s=60)
    await ready(client, ann)
    first = await place(client, widget, "First")
    await talk(client, timers, ann, first)
    second = await place(client, widget, "Second")
    await timers.advance(10)
    extended = await client.post("/api/v1/agent/wrap-up/extend", headers=ann.headers)
    assert extended.status_code == 200, extended.text
    assert extended.json()["state"] == "wrap_up"
    before = await agent_row(runtime, ann)
    assert before["wrap_up_until"] == START + timedelta(seconds=60)
    refused = await client.post("/api/v1/agent/wrap-up/extend", headers=ann.headers)
    assert problem(refused) == (409, "wrap_up_limit")
    assert await agent_row(runtime, ann) == before

    await timers.advance(20)  # the first 30 s are over: extended, so still in wrap-up
    assert (await state_of(client, ann))["state"] == "wrap_up"
    await timers.advance(29.9)
    assert (await state_of(client, ann))["state"] == "wrap_up"
    await timers.advance(0.1)
    assert await ringing_call(client, ann) == second["call_id"]
    wrap = of_type(await events_of(client, acme, first), "wrap_up_started", "wrap_up_extended", "wrap_up_ended")
    assert [(e["type"], e["data"].get("by")) for e in wrap] == [("wrap_up_started", None), ("wrap_up_extended", None), ("wrap_up_ended", "timer")]
    assert wrap[1]["data"]["until"] == (START + timedelta(seconds=60)).isoformat()


async def test_agent_ended_wrap_up_lasts_until_the_agent_ends_it(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], wrap_up_mode="agent_ended", max_wait_s=7200)
    await ready(client, ann)
    first = await place(client, widget, "First")
    await talk(client, timers, ann, first, 5)
    second = await place(client, widget, "Second")
    await timers.advance(3600)
    assert (await state_of(client, ann))["state"] == "wrap_up"
    ended = await client.post("/api/v1/agent/wrap-up/end", headers=ann.headers)
    assert ended.status_code == 200, ended.text
    assert await ringing_call(client, ann) == second["call_id"]
    [done] = of_type(await events_of(client, acme, first), "wrap_up_ended")
    assert (done["actor"], done["data"]["by"], done["data"]["wrap_up_s"]) == (f"agent:{ann.agent_id}", "agent", 3600.0)
    again = await client.post("/api/v1/agent/wrap-up/end", headers=ann.headers)
    assert problem(again) == (409, "not_in_wrap_up")


async def make_wrap_up_code(client: AsyncClient, admin: Admin, code: str) -> str:
    response = await client.post("/api/v1/wrap-up-codes", json={"code": code, "label": code.title()}, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_required_disposition_blocks_ending_wrap_up_until_given(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _, widget = await queue_with_entry(client, acme, [ann], wrap_up_mode="agent_ended", disposition_required=True)
    await ready(client, ann, ben)
    call = await place(client, widget, "Li Lei")
    await talk(client, timers, ann, call, 5)
    before = await agent_row(runtime, ann)

    refused = await client.post("/api/v1/agent/wrap-up/end", headers=ann.headers)
    assert problem(refused) == (409, "disposition_required")
    assert await agent_row(runtime, ann) == before
    url = f"/api/v1/agent/calls/{call['call_id']}/disposition"
    assert problem(await client.put(url, json={"code": "sale"}, headers=ann.headers)) == (400, "unknown_wrap_up_code")
    await make_wrap_up_code(client, acme, "sale")
    retired = await make_wrap_up_code(client, acme, "retired")
    assert (await client.delete(f"/api/v1/wrap-up-codes/{retired}", headers=acme.headers)).status_code == 204
    assert problem(await client.put(url, json={"code": "retired"}, headers=ann.headers)) == (400, "unknown_wrap_up_code")
    assert problem(await client.put(url, json={"code": "sale"}, headers=ben.headers)) == (404, "not_found")
    assert (await call_row(runtime, acme.tenant_id, call)).disposition_code is None

    given = await client.put(url, json={"code": "sale", "first_call_resolution": True, "notes": "upgrade"}, headers=ann.headers)
    assert given.status_code == 200, given.text
    assert given.json() == {"call_id": call["call_id"], "code": "sale", "first_call_resolution": True, "notes": "upgrade"}
    ended = await client.post("/api/v1/agent/wrap-up/end", headers=ann.headers)
    assert ended.status_code == 200, ended.text
    assert ended.json()["state"] == "available"
    types = [e["type"] for e in await events_of(client, acme, call)]
    assert [t for t in types if t.startswith(("wrap_up", "disposition"))] == ["wrap_up_started", "disposition", "wrap_up_ended"]
    # After the wrap-up the disposition is closed.
    late = await client.put(url, json={"code": "sale"}, headers=ann.headers)
    assert problem(late) == (409, "disposition_closed")


async def test_fixed_wrap_up_ending_without_a_required_disposition_logs_it_missing(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], wrap_up_mode="fixed", wrap_up_s=30, disposition_required=True)
    await ready(client, ann)
    call = await place(client, widget, "Li Lei")
    await talk(client, timers, ann, call, 5)
    await timers.advance(30)
    assert (await state_of(client, ann))["state"] == "available"
    events = of_type(await events_of(client, acme, call), "disposition_missing", "wrap_up_ended")
    assert [(e["type"], e["data"]) for e in events] == [
        ("disposition_missing", {"agent_id": str(ann.agent_id)}),
        ("wrap_up_ended", {"agent_id": str(ann.agent_id), "by": "timer", "wrap_up_s": 30.0}),
    ]


# --- reason codes ------------------------------------------------------------------------------------


async def test_reason_codes_default_then_the_tenants_own(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    await log_in(client, ann)

    async def choose(reason: str) -> Any:
        return await client.put("/api/v1/agent/status", json={"status": "not_ready", "reason": reason}, headers=ann.headers)

    assert (await choose("lunch")).json()["not_ready_reason"] == "lunch"
    before = await agent_row(runtime, ann)
    unknown = await choose("huddle")
    assert problem(unknown) == (400, "unknown_reason_code")
    assert unknown.json()["allowed"] == ["break", "coaching", "lunch", "meeting", "other", "training"]
    for system in ("no_answer", "logged_in", "lease_expired", "not_ready"):
        assert problem(await choose(system)) == (400, "reserved_reason_code")
    assert await agent_row(runtime, ann) == before  # refused changes change nothing, not even the lease

    created = await client.post("/api/v1/reason-codes", json={"code": "huddle", "label": "Team huddle"}, headers=acme.headers)
    assert created.status_code == 201, created.text
    assert (await choose("huddle")).json()["not_ready_reason"] == "huddle"
    gone = await choose("lunch")
    assert problem(gone) == (400, "unknown_reason_code")
    assert gone.json()["allowed"] == ["huddle"]
    assert problem(await choose("no_answer")) == (400, "reserved_reason_code")
    assert (await client.delete(f"/api/v1/reason-codes/{created.json()['id']}", headers=acme.headers)).status_code == 204
    assert problem(await choose("huddle")) == (400, "unknown_reason_code")
    assert (await state_of(client, ann))["not_ready_reason"] == "huddle"  # the agent keeps the state it chose


async def test_no_answer_sets_not_ready_with_the_no_answer_reason(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], ring_timeout_s=5)
    await ready(client, ann)
    call = await place(client, widget, "Li Lei")
    await timers.advance(5)
    row = await agent_row(runtime, ann)
    assert (row["status"], row["not_ready_reason"], row["system_state"], row["current_call_id"]) == ("not_ready", "no_answer", "idle", None)
    assert (await caller_view(client, call))["status"] == "queued"


# --- overflow and maximum wait ------------------------------------------------------------------------------


async def test_overflow_by_wait_time_moves_the_call_to_another_queue_keeping_queued_at(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    backup = await make_queue(client, acme, [ben], "Backup")
    first_id, widget = await queue_with_entry(client, acme, [ann], overflow_after_s=30, overflow_action="queue", overflow_queue_id=backup)
    await log_in(client, ann)  # staffed, never free
    await ready(client, ben)
    call = await place(client, widget, "Li Lei")
    await timers.advance(29.9)
    assert (await call_row(runtime, acme.tenant_id, call)).queue_id == uuid.UUID(first_id)
    await timers.advance(0.1)

    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.queue_id, row.queued_at, row.queue_entered_at, row.status) == (uuid.UUID(backup), START, START + timedelta(seconds=30), "ringing")
    assert await ringing_call(client, ben) == call["call_id"]
    events = await events_of(client, acme, call)
    assert [e["type"] for e in events] == ["created", "queued", "overflowed", "offered"]
    assert events[2]["data"] == {"cause": "overflow", "from_queue_id": first_id, "to_queue_id": backup, "action": "queue"}


async def test_queues_overflowing_into_each_other_end_the_call_after_ten_moves(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    ping = await make_queue(client, acme, [ann], "Ping", max_wait_s=3600)
    pong, widget = await queue_with_entry(client, acme, [ann], "Pong", max_wait_s=3600, overflow_after_s=10, overflow_action="queue", overflow_queue_id=ping)
    patched = await client.patch(f"/api/v1/queues/{ping}", json={"overflow_after_s": 10, "overflow_action": "queue", "overflow_queue_id": pong},
                                 headers=acme.headers)
    assert patched.status_code == 200, patched.text
    call = await place(client, widget, "Li Lei")  # nobody is ready: it goes round
    await timers.advance(10 * 10 - 0.1)
    assert (await call_row(runtime, acme.tenant_id, call)).status == "queued"
    await timers.advance(10.1)
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.end_reason) == ("ended", "overflow")
    moves = [e["data"] for e in await events_of(client, acme, call) if e["type"] == "overflowed"]
    assert [m["action"] for m in moves] == ["queue"] * 10 + ["hangup"]


async def test_overflow_by_waiting_calls_per_agent_on_arrival(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    backup = await make_queue(client, acme, [ben], "Backup")
    first_id, widget = await queue_with_entry(client, acme, [ann], overflow_ratio=1.0, overflow_action="queue", overflow_queue_id=backup)
    await log_in(client, ann)  # one logged-in member: one waiting call allowed
    first = await place(client, widget, "First")
    second = await place(client, widget, "Second")
    assert (await call_row(runtime, acme.tenant_id, first)).queue_id == uuid.UUID(first_id)
    row = await call_row(runtime, acme.tenant_id, second)
    assert (row.queue_id, row.status) == (uuid.UUID(backup), "queued")
    assert [e["type"] for e in await events_of(client, acme, second)] == ["created", "queued", "overflowed"]
    await ready(client, ben)
    assert await ringing_call(client, ben) == second["call_id"]


async def test_overflow_to_callback_closes_the_caller_leg_and_keeps_the_place(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers, media: InProcessMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], overflow_after_s=30, overflow_action="callback")
    await log_in(client, ann)
    call = await place(client, widget, "Li Lei")
    assert media.legs_of(uuid.UUID(call["call_id"])) == ["caller"]
    await timers.advance(30)
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.queued_at, row.callback_requested_at, row.callback_number) == ("queued", START, START + timedelta(seconds=30), None)
    assert media.legs_of(uuid.UUID(call["call_id"])) == []
    events = await events_of(client, acme, call)
    assert [(e["type"], e["actor"]) for e in events[2:]] == [("overflowed", "acd"), ("callback_requested", "acd")]
    assert events[2]["data"] == {"cause": "overflow", "from_queue_id": row.queue_id and str(row.queue_id), "action": "callback"}
    await timers.advance(3600)  # a callback has no maximum wait
    assert (await call_row(runtime, acme.tenant_id, call)).status == "queued"
    await ready(client, ann)
    assert await ringing_call(client, ann) == call["call_id"]


async def test_overflow_to_voicemail(runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], overflow_after_s=30, overflow_action="voicemail")
    await log_in(client, ann)
    call = await place(client, widget, "Li Lei")
    await timers.advance(30)
    assert (await caller_view(client, call))["status"] == "voicemail"
    assert [e["type"] for e in await events_of(client, acme, call)][2:] == ["overflowed", "voicemail_started"]
    await ready(client, ann)
    assert (await state_of(client, ann))["state"] == "available"  # a voicemail is never offered
    await timers.advance(VOICEMAIL_MAX_S)
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.end_reason) == ("ended", "voicemail")


@pytest.mark.parametrize(("action", "status", "end_reason", "tail"), [
    ("hangup", "ended", "max_wait", ["overflowed", "ended"]),
    ("callback", "queued", None, ["overflowed", "callback_requested"]),
    ("voicemail", "voicemail", None, ["overflowed", "voicemail_started"]),
])
async def test_max_wait_applies_its_action(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers,
    action: str, status: str, end_reason: str | None, tail: list[str],
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], max_wait_s=120, max_wait_action=action)
    await log_in(client, ann)
    call = await place(client, widget, "Li Lei")
    await timers.advance(119.9)
    assert (await call_row(runtime, acme.tenant_id, call)).status == "queued"
    await timers.advance(0.1)
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.end_reason) == (status, end_reason)
    events = await events_of(client, acme, call)
    assert [e["type"] for e in events][2:] == tail
    assert events[2]["data"]["cause"] == "max_wait" and events[2]["data"]["action"] == action
    if action == "hangup":
        assert events[3]["data"] == {"reason": "max_wait", "previous_status": "queued"}


async def test_max_wait_to_another_queue(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    backup = await make_queue(client, acme, [ben], "Backup")
    first_id, widget = await queue_with_entry(client, acme, [ann], max_wait_s=60, max_wait_action="queue", max_wait_queue_id=backup)
    await ready(client, ben)
    call = await place(client, widget, "Li Lei")
    await timers.advance(60)
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.queue_id, row.queued_at) == (uuid.UUID(backup), START)
    assert await ringing_call(client, ben) == call["call_id"]
    [moved] = of_type(await events_of(client, acme, call), "overflowed")
    assert moved["data"] == {"cause": "max_wait", "from_queue_id": first_id, "to_queue_id": backup, "action": "queue"}


@pytest.mark.parametrize(("action", "status", "end_reason"), [
    ("hangup", "ended", "closed"), ("callback", "queued", None), ("voicemail", "voicemail", None),
])
async def test_closed_schedule_on_arrival(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers,
    action: str, status: str, end_reason: str | None,
) -> None:
    ann = await make_agent(acme, "Ann")
    schedule = await client.post(
        "/api/v1/schedules", json={"name": "Afternoons", "time_zone": "UTC", "weekly": {"mon": [["13:00", "17:00"]]}}, headers=acme.headers
    )
    assert schedule.status_code == 201, schedule.text
    _, widget = await queue_with_entry(client, acme, [ann], schedule_id=schedule.json()["id"], closed_action=action)
    call = await place(client, widget, "Early bird")  # Monday 09:00 UTC: closed
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.end_reason) == (status, end_reason)
    events = await events_of(client, acme, call)
    assert events[2]["type"] == "overflowed"
    assert events[2]["data"]["cause"] == "closed" and events[2]["data"]["action"] == action
    if action == "callback":
        assert row.callback_requested_at == START


async def test_an_open_schedule_admits_the_call(client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers) -> None:
    ann = await make_agent(acme, "Ann")
    schedule = await client.post("/api/v1/schedules", json={"name": "Mornings", "weekly": {"mon": [["09:00", "12:00"]]}}, headers=acme.headers)
    _, widget = await queue_with_entry(client, acme, [ann], schedule_id=schedule.json()["id"])
    await ready(client, ann)
    call = await place(client, widget, "On time")  # 09:00 is inside [09:00, 12:00)
    assert await ringing_call(client, ann) == call["call_id"]


# --- callbacks keep their place ---------------------------------------------------------------------------------


async def test_callback_keeps_its_place_and_is_offered_first(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers, media: InProcessMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann])
    await log_in(client, ann)
    call = await place(client, widget, "Li Lei")
    await timers.advance(10)
    url = f"/api/v1/widget/calls/{call['call_id']}/callback"
    token = {"X-Caller-Token": call["caller_token"]}
    assert problem(await client.post(url, json={"number": "12"}, headers=token)) == (400, "invalid_callback_number")
    assert problem(await client.post(url, json={"number": "call me"}, headers=token)) == (400, "invalid_callback_number")
    assert problem(await client.post(url, json={}, headers={"X-Caller-Token": "0" * 32 + ".nope"})) == (404, "not_found")
    assert problem(await client.post(url, json={})) == (404, "not_found")
    assert (await call_row(runtime, acme.tenant_id, call)).callback_requested_at is None

    response = await client.post(url, json={"number": " +4930123456 "}, headers=token)
    assert response.status_code == 200, response.text
    assert response.json() == {"call_id": call["call_id"], "status": "queued", "callback": True}
    assert media.legs_of(uuid.UUID(call["call_id"])) == []
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.queued_at, row.callback_requested_at, row.callback_number) == ("queued", START, START + timedelta(seconds=10), "+4930123456")
    assert problem(await client.post(url, json={}, headers=token)) == (409, "call_not_waiting")
    [requested] = of_type(await events_of(client, acme, call), "callback_requested")
    assert (requested["actor"], requested["data"]) == ("caller", {"has_number": True})

    later = await place(client, widget, "Later")
    assert (await caller_view(client, later))["position"] == 2
    await ready(client, ann)
    assert await ringing_call(client, ann) == call["call_id"]
    await talk(client, timers, ann, call, 30)
    assert await ringing_call(client, ann) == later["call_id"]


async def test_callback_of_a_ringing_or_connected_call_is_refused(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann])
    await ready(client, ann)
    call = await place(client, widget, "Li Lei")
    url = f"/api/v1/widget/calls/{call['call_id']}/callback"
    token = {"X-Caller-Token": call["caller_token"]}
    assert problem(await client.post(url, json={}, headers=token)) == (409, "call_not_waiting")
    await answer(client, ann, call)
    assert problem(await client.post(url, json={}, headers=token)) == (409, "call_not_waiting")
    assert (await caller_view(client, call)) == {"call_id": call["call_id"], "status": "connected", "end_reason": None}


# --- announcements -------------------------------------------------------------------------------------------------


async def test_position_and_expected_wait_are_announced_at_each_interval_while_queued(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], announce_interval_s=30, wrap_up_mode="fixed", wrap_up_s=20)
    await log_in(client, ann)  # staffed (one member logged in), not free
    first = await place(client, widget, "First")
    await timers.advance(1)
    second = await place(client, widget, "Second")
    # No answered calls yet: 180 s per call plus the queue's 20 s of after-call work, one agent.
    assert await caller_view(client, first) == {"call_id": first["call_id"], "status": "queued", "end_reason": None, "position": 1, "expected_wait_s": 200}
    assert (await caller_view(client, second))["position"] == 2
    assert (await caller_view(client, second))["expected_wait_s"] == 400

    await timers.advance(59)
    announced = of_type(await events_of(client, acme, first), "position_announced")
    assert [(e["at"][11:19], e["data"]) for e in announced] == [
        ("09:00:00", {"position": 1, "expected_wait_s": 200}),
        ("09:00:30", {"position": 1, "expected_wait_s": 200}),
        ("09:01:00", {"position": 1, "expected_wait_s": 200}),
    ]
    assert [e["at"][11:19] for e in of_type(await events_of(client, acme, second), "position_announced")] == ["09:00:01", "09:00:31"]
    await ready(client, ann)  # the first call is offered, then answered: its announcements stop
    assert await ringing_call(client, ann) == first["call_id"]
    await answer(client, ann, first)
    await timers.advance(60)
    assert len(of_type(await events_of(client, acme, first), "position_announced")) == 3
    second_announced = of_type(await events_of(client, acme, second), "position_announced")
    assert [(e["at"][11:19], e["data"]) for e in second_announced[2:]] == [
        ("09:01:01", {"position": 1, "expected_wait_s": 200}),  # moved up
        ("09:01:31", {"position": 1, "expected_wait_s": 200}),
    ]


async def test_nobody_logged_in_means_no_expected_wait(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann])
    call = await place(client, widget, "Li Lei")
    assert await caller_view(client, call) == {"call_id": call["call_id"], "status": "queued", "end_reason": None, "position": 1}


# --- the sweep covers lost timers ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def survivor_node(runtime: Runtime, clock: ManualClock, media: InProcessMedia):  # type: ignore[no-untyped-def]
    """Another API node on the same database and clock, whose timers never ran."""
    db = Database(runtime.settings.db)
    acd = Acd(db, ring_timeout_s=runtime.settings.ring_timeout_s, clock=clock, timers=ManualTimers(clock), sweep_interval_s=None, lease_s=24 * 3600)
    CallFlow(db, acd, lambda: media)
    try:
        yield acd
    finally:
        await db.dispose()


async def test_sweep_applies_due_max_wait_and_overflow_when_timers_were_lost(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, clock: ManualClock, media: InProcessMedia
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    backup = await make_queue(client, acme, [ben], "Backup")
    _, short = await queue_with_entry(client, acme, [ann], "Short", max_wait_s=60)
    _, spill = await queue_with_entry(client, acme, [ann], "Spill", overflow_after_s=30, overflow_action="queue", overflow_queue_id=backup)
    await log_in(client, ann)
    await ready(client, ben)
    await not_ready(client, ben)
    hung = await place(client, short, "Hung up")
    moved = await place(client, spill, "Moved")
    clock.now += timedelta(seconds=90)  # the node crashed: its timers never fired
    assert (await call_row(runtime, acme.tenant_id, hung)).status == "queued"

    async with survivor_node(runtime, clock, media) as survivor:
        await survivor.sweep()
        row = await call_row(runtime, acme.tenant_id, hung)
        assert (row.status, row.end_reason) == ("ended", "max_wait")
        row = await call_row(runtime, acme.tenant_id, moved)
        assert (row.status, row.queue_id, row.queued_at) == ("queued", uuid.UUID(backup), START)
        await survivor.sweep()  # nothing more is due: the sweep is idempotent
        assert [e["type"] for e in await events_of(client, acme, moved)] == ["created", "queued", "overflowed"]


@BOTH_BACKENDS
async def test_sweep_ends_due_wrap_ups_and_times_out_stale_rings(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, clock: ManualClock, timers: ManualTimers, media: InProcessMedia
) -> None:
    ann, ben, cai, dan = [await make_agent(acme, n) for n in ("Ann", "Ben", "Cai", "Dan")]
    _, wrap = await queue_with_entry(client, acme, [ann], "Wrap", wrap_up_mode="fixed", wrap_up_s=30)
    _, single = await queue_with_entry(client, acme, [ben], "Single", ring_timeout_s=10)
    _, group = await queue_with_entry(client, acme, [cai, dan], "Group", strategy="ring_all", ring_timeout_s=10)
    await ready(client, ann, ben, cai, dan)
    wrapped = await place(client, wrap, "Wrapped")
    await talk(client, timers, ann, wrapped, 5)
    waiting_for_ann = await place(client, wrap, "Next for Ann")
    rung = await place(client, single, "Rung")
    grouped = await place(client, group, "Grouped")
    assert (await ringing_call(client, ben), await ringing_call(client, cai)) == (rung["call_id"], grouped["call_id"])
    clock.now += timedelta(seconds=31)  # every timer is lost

    async with survivor_node(runtime, clock, media) as survivor:
        await survivor.sweep()
    assert await ringing_call(client, ann) == waiting_for_ann["call_id"]
    [ended] = of_type(await events_of(client, acme, wrapped), "wrap_up_ended")
    assert ended["data"]["by"] == "timer"
    row = await agent_row(runtime, ben)
    assert (row["status"], row["not_ready_reason"], row["system_state"]) == ("not_ready", "no_answer", "idle")
    assert (await call_row(runtime, acme.tenant_id, rung)).status == "queued"
    # The group is freed without the no-answer not-ready, and rung again.
    for seat in (cai, dan):
        row = await agent_row(runtime, seat)
        assert (row["status"], row["not_ready_reason"], row["system_state"]) == ("available", None, "ringing")
    assert [e["type"] for e in await events_of(client, acme, grouped)][2:] == ["offered", "offer_timeout", "requeued", "offered"]


async def test_sweep_frees_agents_left_ringing_for_a_call_that_ended(
    runtime: Runtime, cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, clock: ManualClock
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _, widget = await queue_with_entry(client, acme, [ann, ben], strategy="ring_all")
    await ready(client, ann, ben)
    call = await place(client, widget, "Li Lei")
    later = await place(client, widget, "Later")
    # A node ended the call in the database and died before freeing the group.
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        await session.execute(update(Call).where(Call.id == uuid.UUID(call["call_id"])).values(status="ended", end_reason="media_lost"))
    clock.now += timedelta(seconds=1)
    await cc.acd.sweep()
    # Freed, and the waiting call rings at both at once.
    assert [await ringing_call(client, s) for s in (ann, ben)] == [later["call_id"]] * 2
    for seat in (ann, ben):
        assert (await agent_row(runtime, seat))["status"] == "available"


# --- engine bugs these tests found (fixed): equal queue times, re-queued calls' announcements and due rules ---------


async def test_calls_queued_at_the_same_instant_get_distinct_positions(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann])
    first, second = await place(client, widget, "First"), await place(client, widget, "Second")
    assert sorted([(await caller_view(client, first))["position"], (await caller_view(client, second))["position"]]) == [1, 2]


async def test_a_requeued_call_keeps_being_announced(client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], announce_interval_s=30, ring_timeout_s=10)
    await log_in(client, ann)
    call = await place(client, widget, "Li Lei")
    await timers.advance(25)  # announced at 0 s
    await ready(client, ann)  # rings from 25 s; the 30 s announcement finds it ringing
    assert await ringing_call(client, ann) == call["call_id"]
    await timers.advance(10)  # Ann lets it ring out at 35 s: queued again
    assert (await caller_view(client, call))["status"] == "queued"
    await timers.advance(60)
    announced = [e["at"][11:19] for e in of_type(await events_of(client, acme, call), "position_announced")]
    assert announced[0] == "09:00:00"
    assert [at for at in announced if at > "09:00:35"] != []  # waiting again from 35 s to 95 s: announced again


async def test_max_wait_passed_while_ringing_applies_once_the_call_is_requeued(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _, widget = await queue_with_entry(client, acme, [ann], max_wait_s=30, ring_timeout_s=10)
    await log_in(client, ann)
    call = await place(client, widget, "Li Lei")
    await timers.advance(25)
    await ready(client, ann)  # rings from 25 s to 35 s, across the 30 s maximum wait
    assert await ringing_call(client, ann) == call["call_id"]
    await timers.advance(10)  # the ring times out at 35 s: back in the queue, past its maximum wait
    row = await call_row(runtime, acme.tenant_id, call)
    assert (row.status, row.end_reason) == ("ended", "max_wait")
