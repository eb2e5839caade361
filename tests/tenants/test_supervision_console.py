"""Supervision: teams and the supervisors assigned to teams and queues, the live
console (agents, queues, calls) scoped to what a supervisor is assigned, and
force ready / not-ready / logout shown to the agent and written to the audit log."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from tenants_support import Admin, AgentSeat, InProcessMedia, MakeAgent, activate_user, bearer
from test_acd import go_ready, place_call, state_of

from kefu.platform.runtime import Runtime
from kefu.tenants.clock import ManualClock
from kefu.tenants.notify import agent_channel
from kefu.tenants.services import ContactCenter


async def make_supervisor(client: AsyncClient, runtime: Runtime, admin: Admin, name: str, roles: list[str] | None = None) -> tuple[uuid.UUID, dict[str, str]]:
    body = {"email": f"{name.lower()}@sup.test", "display_name": name, "roles": roles or ["supervisor"]}
    created = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    user_id = uuid.UUID(created.json()["user"]["id"])
    await activate_user(runtime, admin.tenant_id, user_id)
    return user_id, bearer(runtime, tenant_id=admin.tenant_id, user_id=user_id, roles=set(body["roles"]))


async def new_queue(client: AsyncClient, admin: Admin, name: str, members: list[AgentSeat]) -> str:
    queue = await client.post("/api/v1/queues", json={"name": name}, headers=admin.headers)
    assert queue.status_code == 201, queue.text
    queue_id = queue.json()["id"]
    put = await client.put(f"/api/v1/queues/{queue_id}/members", json={"agent_ids": [str(s.agent_id) for s in members]}, headers=admin.headers)
    assert put.status_code == 200, put.text
    return queue_id


async def entry_point(client: AsyncClient, admin: Admin, queue_id: str) -> str:
    created = await client.post("/api/v1/entry-points", json={"name": f"web {queue_id[:4]}", "queue_id": queue_id}, headers=admin.headers)
    assert created.status_code == 201, created.text
    return created.json()["widget_key"]


async def console(client: AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/supervision/console", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def audit_actions(client: AsyncClient, admin: Admin, prefix: str) -> list[dict[str, Any]]:
    entries = (await client.get("/api/v1/audit-log?limit=100", headers=admin.headers)).json()["items"]
    return [e for e in entries if e["action"].startswith(prefix)]


async def test_teams_hold_agents_and_supervisors_and_refuse_bad_members(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent,
) -> None:
    ann, bob = await make_agent(acme, "Ann"), await make_agent(acme, "Bob")
    sue, _ = await make_supervisor(client, runtime, acme, "Sue")
    created = await client.post("/api/v1/teams", json={"name": "Day shift", "supervisor_ids": [str(sue)], "agent_ids": [str(ann.agent_id)]},
                                headers=acme.headers)
    assert created.status_code == 201, created.text
    team = created.json()
    assert (team["name"], team["supervisor_ids"], team["agent_ids"]) == ("Day shift", [str(sue)], [str(ann.agent_id)])

    # An agent is in one team at most: naming Bob (and not Ann) in a second team moves only Bob.
    night = (await client.post("/api/v1/teams", json={"name": "Night shift", "agent_ids": [str(ann.agent_id), str(bob.agent_id)]},
                               headers=acme.headers)).json()
    assert sorted(night["agent_ids"]) == sorted([str(ann.agent_id), str(bob.agent_id)])
    assert (await client.get(f"/api/v1/teams/{team['id']}", headers=acme.headers)).json()["agent_ids"] == []
    patched = await client.patch(f"/api/v1/teams/{team['id']}", json={"agent_ids": [str(ann.agent_id)], "name": "Early"}, headers=acme.headers)
    assert (patched.status_code, patched.json()["agent_ids"], patched.json()["name"]) == (200, [str(ann.agent_id)], "Early")
    assert (await client.get(f"/api/v1/teams/{night['id']}", headers=acme.headers)).json()["agent_ids"] == [str(bob.agent_id)]

    before = (await client.get("/api/v1/teams", headers=acme.headers)).json()
    other_agent = await make_agent(globex, "Gus")
    bad_bodies = [
        ({"name": " "}, 400, "invalid_team_name"),
        ({"name": "Early"}, 409, "team_name_taken"),
        ({"name": "X", "agent_ids": [str(other_agent.agent_id)]}, 404, "not_found"),  # another tenant's agent
        ({"name": "X", "supervisor_ids": [str(ann.user_id)]}, 400, "not_a_supervisor"),  # an agent is not a supervisor
        ({"name": "X", "supervisor_ids": [str(uuid.uuid4())]}, 404, "not_found"),
        ({"name": "X", "colour": "red"}, 400, None),
    ]
    for body, status, code in bad_bodies:
        response = await client.post("/api/v1/teams", json=body, headers=acme.headers)
        assert response.status_code == status, (body, response.text)
        if code:
            assert response.json()["code"] == code
    assert (await client.patch(f"/api/v1/teams/{night['id']}", json={"name": "Early"}, headers=acme.headers)).json()["code"] == "team_name_taken"
    assert (await client.get("/api/v1/teams", headers=acme.headers)).json() == before  # nothing changed

    # Deleting a team keeps its agents (out of any team).
    assert (await client.delete(f"/api/v1/teams/{night['id']}", headers=acme.headers)).status_code == 204
    assert (await client.get(f"/api/v1/agents/{bob.agent_id}", headers=acme.headers)).status_code == 200
    assert [t["name"] for t in (await client.get("/api/v1/teams", headers=acme.headers)).json()] == ["Early"]
    assert [e["action"] for e in await audit_actions(client, acme, "team.")][:1] == ["team.deleted"]


async def test_a_supervisor_sees_only_the_agents_of_their_teams_and_their_queues(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, clock: ManualClock,
) -> None:
    ann, bob, cai = await make_agent(acme, "Ann"), await make_agent(acme, "Bob"), await make_agent(acme, "Cai")
    sue, sue_headers = await make_supervisor(client, runtime, acme, "Sue")
    _, tom_headers = await make_supervisor(client, runtime, acme, "Tom")
    sales = await new_queue(client, acme, "Sales", [ann])
    support = await new_queue(client, acme, "Support", [bob, cai])
    await client.post("/api/v1/teams", json={"name": "Red", "supervisor_ids": [str(sue)], "agent_ids": [str(ann.agent_id), str(bob.agent_id)]},
                      headers=acme.headers)
    await client.post("/api/v1/teams", json={"name": "Blue", "agent_ids": [str(cai.agent_id)]}, headers=acme.headers)
    assigned = await client.put(f"/api/v1/queues/{support}/supervisors", json={"user_ids": [str(sue)]}, headers=acme.headers)
    assert (assigned.status_code, assigned.json()["user_ids"]) == (200, [str(sue)])

    # Ann takes a Sales call; two callers wait in Support (Bob and Cai are not ready).
    await go_ready(client, ann)
    for seat in (bob, cai):
        await client.post("/api/v1/agent/session", headers=seat.headers)
    sales_call = await place_call(client, await entry_point(client, acme, sales), "Carol")
    answered = await client.post(f"/api/v1/agent/calls/{sales_call['call_id']}/answer", json={"offer_sdp": "v=0\r\n"}, headers=ann.headers)
    assert answered.status_code == 200, answered.text
    support_key = await entry_point(client, acme, support)
    await place_call(client, support_key, "Dan")
    clock.now += timedelta(seconds=30)
    await place_call(client, support_key, "Eve")
    clock.now += timedelta(seconds=15)

    view = await console(client, sue_headers)
    assert view["scope"]["all"] is False and [t["name"] for t in view["teams"]] == ["Red"]
    agents = {a["display_name"]: a for a in view["agents"]}
    assert sorted(agents) == ["Ann", "Bob"]  # Cai is in Blue, not hers
    assert agents["Ann"]["state"] == "on_call" and agents["Ann"]["current_call"]["caller_name"] == "Carol"
    assert agents["Ann"]["time_in_state_s"] == 45 and agents["Ann"]["team"] == "Red"
    assert (agents["Bob"]["state"], agents["Bob"]["reason"], agents["Bob"]["current_call"]) == ("not_ready", "logged_in", None)
    [queue] = view["queues"]  # Support only: Sales is not assigned to her
    assert (queue["name"], queue["waiting"], queue["longest_wait_s"]) == ("Support", 2, 45)
    assert queue["agents"]["not_ready"] == 2 and queue["service_level"]["percent"] is None
    # She may join the Sales call: its agent is in her team.
    assert [c["caller_name"] for c in view["calls"]] == ["Carol"]

    # Tom has no assignment: an empty console, and the call and the agents are not his to act on.
    empty = await console(client, tom_headers)
    assert (empty["agents"], empty["queues"], empty["calls"]) == ([], [], [])
    joined = await client.post(f"/api/v1/supervision/calls/{sales_call['call_id']}", json={"mode": "monitor", "offer_sdp": "v=0\r\n"},
                               headers=tom_headers)
    assert (joined.status_code, joined.json()["code"]) == (403, "outside_supervision_scope")
    forced = await client.put(f"/api/v1/supervision/agents/{ann.agent_id}/status", json={"status": "not_ready"}, headers=tom_headers)
    assert (forced.status_code, forced.json()["code"]) == (403, "outside_supervision_scope")
    assert (await state_of(client, ann))["state"] == "on_call"

    # The tenant admin sees everything.
    everything = await console(client, acme.headers)
    assert sorted(a["display_name"] for a in everything["agents"]) == ["Ann", "Bob", "Cai"]
    assert [q["name"] for q in everything["queues"]] == ["Sales", "Support"]


async def test_force_ready_not_ready_and_logout_reach_the_agent_and_the_audit_log(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent, cc: ContactCenter,
) -> None:
    ann = await make_agent(acme, "Ann")
    sue, sue_headers = await make_supervisor(client, runtime, acme, "Sue")
    await client.post("/api/v1/teams", json={"name": "Red", "supervisor_ids": [str(sue)], "agent_ids": [str(ann.agent_id)]}, headers=acme.headers)
    url = f"/api/v1/supervision/agents/{ann.agent_id}/status"

    logged_out = await client.put(url, json={"status": "available"}, headers=sue_headers)
    assert (logged_out.status_code, logged_out.json()["code"]) == (409, "agent_logged_out")
    await client.post("/api/v1/agent/session", headers=ann.headers)

    async with cc.acd.hub.subscribe(agent_channel(acme.tenant_id, ann.agent_id)) as pushes:
        ready = await client.put(url, json={"status": "available"}, headers=sue_headers)
        assert (ready.status_code, ready.json()["state"]) == (200, "available"), ready.text
        push = pushes.get_nowait()
        assert (push["state"], push["forced"]) == ("available", {"action": "ready", "by": "Sue"})

        busy = await client.put(url, json={"status": "not_ready"}, headers=sue_headers)
        assert (busy.json()["state"], busy.json()["not_ready_reason"]) == ("not_ready", "supervisor")
        assert pushes.get_nowait()["forced"] == {"action": "not_ready", "by": "Sue"}
        # A reason code of the tenant may be given; an unknown one or Kefu's own is refused.
        assert (await client.put(url, json={"status": "not_ready", "reason": "break"}, headers=sue_headers)).json()["not_ready_reason"] == "break"
        pushes.get_nowait()
        for reason, code in (("nap", "unknown_reason_code"), ("lease_expired", "reserved_reason_code"), ("", "invalid_reason")):
            refused = await client.put(url, json={"status": "not_ready", "reason": reason}, headers=sue_headers)
            assert (refused.status_code, refused.json()["code"]) == (400, code)
        assert (await client.put(url, json={"status": "gone"}, headers=sue_headers)).status_code == 400
        assert (await state_of(client, ann))["not_ready_reason"] == "break"  # nothing changed

        out = await client.put(url, json={"status": "offline"}, headers=sue_headers)
        assert (out.status_code, out.json()["state"]) == (200, "offline")
        assert pushes.get_nowait()["forced"] == {"action": "logout", "by": "Sue"}
        assert pushes.empty()
    assert (await state_of(client, ann))["state"] == "offline"
    again = await client.put(url, json={"status": "offline"}, headers=sue_headers)
    assert (again.status_code, again.json()["code"]) == (409, "agent_logged_out")

    entries = await audit_actions(client, acme, "agent.forced_")
    assert [e["action"] for e in reversed(entries)] == [
        "agent.forced_ready", "agent.forced_not_ready", "agent.forced_not_ready", "agent.forced_logout",
    ]
    assert {e["actor"] for e in entries} == {f"user:{sue}"} and {e["target"] for e in entries} == {f"agent:{ann.agent_id}"}
    assert entries[-1]["detail"]["before"] == {"status": "not_ready", "reason": "logged_in"}

    # Another tenant's agent is not found (exactly like a missing one), and agents cannot force anyone.
    other = await make_agent(globex, "Gus")
    missing = await client.put(f"/api/v1/supervision/agents/{other.agent_id}/status", json={"status": "available"}, headers=acme.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (await client.put(url, json={"status": "available"}, headers=ann.headers)).status_code == 403


async def test_force_logout_waits_for_the_call_and_force_ready_offers_the_waiting_caller(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, media: InProcessMedia,
) -> None:
    ann = await make_agent(acme, "Ann")
    queue = await new_queue(client, acme, "Sales", [ann])
    await client.post("/api/v1/agent/session", headers=ann.headers)
    call = await place_call(client, await entry_point(client, acme, queue), "Carol")
    url = f"/api/v1/supervision/agents/{ann.agent_id}/status"
    ready = await client.put(url, json={"status": "available"}, headers=acme.headers)
    assert ready.status_code == 200
    assert (await state_of(client, ann))["state"] == "ringing"  # the waiting caller is offered at once
    await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": "v=0\r\n"}, headers=ann.headers)
    on_call = await client.put(url, json={"status": "offline"}, headers=acme.headers)
    assert (on_call.status_code, on_call.json()["code"]) == (409, "agent_on_call")
    assert (await state_of(client, ann))["state"] == "on_call"


async def test_queue_supervisors_refuse_other_tenants_and_non_supervisors(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent,
) -> None:
    queue = await new_queue(client, acme, "Sales", [])
    sue, _ = await make_supervisor(client, runtime, acme, "Sue")
    boss, _ = await make_supervisor(client, runtime, acme, "Boss", roles=["tenant_admin"])
    gil, _ = await make_supervisor(client, runtime, globex, "Gil")
    ann = await make_agent(acme, "Ann")
    url = f"/api/v1/queues/{queue}/supervisors"
    assert (await client.put(url, json={"user_ids": [str(sue), str(boss), str(sue)]}, headers=acme.headers)).json()["user_ids"] == sorted([str(sue), str(boss)])
    for body, status in (({"user_ids": [str(gil)]}, 404), ({"user_ids": [str(ann.user_id)]}, 400), ({"user_ids": ["nope"]}, 400)):
        assert (await client.put(url, json=body, headers=acme.headers)).status_code == status
    assert (await client.get(url, headers=acme.headers)).json()["user_ids"] == sorted([str(sue), str(boss)])
    other_queue = await new_queue(client, globex, "Theirs", [])
    assert (await client.get(f"/api/v1/queues/{other_queue}/supervisors", headers=acme.headers)).status_code == 404
