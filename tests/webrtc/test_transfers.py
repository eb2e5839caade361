"""Blind and consultative transfers and the three-way conference, with real media.

Caller 440 Hz, agent A 1000 Hz, agent B 1300 Hz: each check names the tones each party hears.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from call_support import LiveCall, hears, parties_heard, start_call, window

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings("sqlite")


@pytest.fixture
async def call(client, runtime: Runtime) -> AsyncIterator[LiveCall]:  # type: ignore[no-untyped-def]
    live = await start_call(client, runtime)
    yield live
    await live.close()


async def everyone_hears(call: LiveCall, *parties: str) -> dict[str, set[str]]:
    heard = await asyncio.gather(*(hears(call.peers[p]) for p in parties))
    return dict(zip(parties, heard, strict=True))


async def agent_state(call: LiveCall, auth: dict[str, str]) -> dict[str, object]:
    return (await call.client.get("/api/v1/agent/state", headers=auth)).json()  # type: ignore[no-any-return]


async def post(call: LiveCall, path: str, auth: dict[str, str], body: dict[str, object] | None = None) -> dict[str, object]:
    response = await call.client.post(f"/api/v1/agent/calls/{call.call_id}/{path}", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_blind_transfer_to_an_agent_rings_it_and_frees_the_transferring_agent(call: LiveCall) -> None:
    b_id, b_auth, _ = await call.second_agent()
    moved = await post(call, "transfer", call.agent_auth, {"agent_id": b_id})
    assert moved["status"] == "ringing" and moved["agent_id"] == b_id
    await asyncio.wait_for(call.peers["agent"].closed.wait(), 10)
    assert (await agent_state(call, call.agent_auth))["current_call_id"] is None
    assert (await agent_state(call, b_auth))["system_state"] == "ringing"
    music = await call.peers["caller"].listen(1.0)
    assert "agent" not in parties_heard(music) and abs(music).mean() > 50  # music on hold

    await call.connect_b(b_auth, "answer")
    assert await everyone_hears(call, "caller", "b") == {"caller": {"b"}, "b": {"caller"}}
    types = await call.event_types()
    assert types[types.index("transferred"):][:3] == ["transferred", "offered", "answered"]
    await call.client.post(f"/api/v1/agent/calls/{call.call_id}/hangup", headers=b_auth)
    cdr = (await call.client.get(f"/api/v1/calls/{call.call_id}", headers=call.admin_auth)).json()
    assert cdr["status"] == "ended" and cdr["agent_id"] == b_id


async def test_blind_transfer_to_a_queue_is_routed_by_the_acd(call: LiveCall) -> None:
    b_id, b_auth, queue_id = await call.second_agent(queue_name="Sales")
    moved = await post(call, "transfer", call.agent_auth, {"queue_id": queue_id})
    assert moved["queue_id"] == queue_id
    # The ACD offered it to B, the only member of Sales.
    state = await agent_state(call, b_auth)
    assert state["current_call_id"] == str(call.call_id) and state["system_state"] == "ringing"
    await call.connect_b(b_auth, "answer")
    assert await everyone_hears(call, "caller", "b") == {"caller": {"b"}, "b": {"caller"}}


async def test_consult_then_conference_then_complete(call: LiveCall) -> None:
    b_id, b_auth, _ = await call.second_agent()
    ringing = await post(call, "consult", call.agent_auth, {"agent_id": b_id})
    assert ringing["consult"] == {"agent_id": b_id, "state": "ringing"}
    await window(call.peers["agent"], 0.3)  # packets already on their way when the consultation started
    assert parties_heard(await window(call.peers["agent"], 0.8)) == set()

    await call.connect_b(b_auth, "consult/answer")
    talking = await everyone_hears(call, "caller", "agent", "b")
    assert talking["agent"] == {"b"} and talking["b"] == {"agent"}
    assert "agent" not in talking["caller"] and "b" not in talking["caller"]  # music on hold

    conference = await post(call, "consult/conference", call.agent_auth)
    assert conference["consult"]["state"] == "conference"
    assert await everyone_hears(call, "caller", "agent", "b") == {
        "caller": {"agent", "b"}, "agent": {"caller", "b"}, "b": {"caller", "agent"}
    }

    done = await post(call, "consult/complete", call.agent_auth)
    assert done["agent_id"] == b_id and done["consult"] is None
    await asyncio.wait_for(call.peers["agent"].closed.wait(), 10)
    assert await everyone_hears(call, "caller", "b") == {"caller": {"b"}, "b": {"caller"}}
    assert (await agent_state(call, call.agent_auth))["current_call_id"] is None
    assert (await agent_state(call, b_auth))["system_state"] == "on_call"
    types = await call.event_types()
    assert [t for t in types if t.startswith(("consult", "conference", "transferred"))] == [
        "consult_offered", "consult_answered", "conference_started", "transferred"
    ]


async def test_cancelling_a_consultation_returns_to_the_caller_and_frees_the_consulted_agent(call: LiveCall) -> None:
    b_id, b_auth, _ = await call.second_agent()
    await post(call, "consult", call.agent_auth, {"agent_id": b_id})
    await call.connect_b(b_auth, "consult/answer")
    cancelled = await call.client.delete(f"/api/v1/agent/calls/{call.call_id}/consult", headers=b_auth)  # B hangs up
    assert cancelled.status_code == 204, cancelled.text
    await asyncio.wait_for(call.peers["b"].closed.wait(), 10)
    assert await everyone_hears(call, "caller", "agent") == {"caller": {"agent"}, "agent": {"caller"}}
    assert (await agent_state(call, b_auth))["current_call_id"] is None


async def test_the_agent_hanging_up_while_consulting_transfers_the_call(call: LiveCall) -> None:
    b_id, b_auth, _ = await call.second_agent()
    await post(call, "consult", call.agent_auth, {"agent_id": b_id})
    await call.connect_b(b_auth, "consult/answer")
    hangup = await call.client.post(f"/api/v1/agent/calls/{call.call_id}/hangup", headers=call.agent_auth)
    assert hangup.status_code == 204
    assert await everyone_hears(call, "caller", "b") == {"caller": {"b"}, "b": {"caller"}}
    cdr = (await call.client.get(f"/api/v1/calls/{call.call_id}", headers=call.admin_auth)).json()
    assert cdr["status"] == "connected" and cdr["agent_id"] == b_id


async def test_the_caller_hanging_up_during_a_consultation_frees_both_agents(call: LiveCall) -> None:
    b_id, b_auth, _ = await call.second_agent()
    await post(call, "consult", call.agent_auth, {"agent_id": b_id})
    await call.connect_b(b_auth, "consult/answer")
    hangup = await call.client.post(
        f"/api/v1/widget/calls/{call.call_id}/hangup", headers={"X-Caller-Token": call.caller_token}
    )
    assert hangup.status_code == 204
    for auth in (call.agent_auth, b_auth):
        state = await agent_state(call, auth)
        assert state["current_call_id"] is None and state["system_state"] == "idle"


async def test_transfer_targets_must_exist_be_available_and_be_one(call: LiveCall) -> None:
    b_id, b_auth, _ = await call.second_agent()
    both = await call.client.post(
        f"/api/v1/agent/calls/{call.call_id}/transfer", json={"agent_id": b_id, "queue_id": b_id}, headers=call.agent_auth
    )
    assert both.status_code == 400 and both.json()["code"] == "invalid_transfer_target"
    await call.client.put("/api/v1/agent/status", json={"status": "not_ready"}, headers=b_auth)
    busy = await call.client.post(f"/api/v1/agent/calls/{call.call_id}/consult", json={"agent_id": b_id}, headers=call.agent_auth)
    assert busy.status_code == 409 and busy.json()["code"] == "agent_not_available"
    nobody = await call.client.post(
        f"/api/v1/agent/calls/{call.call_id}/transfer", json={"agent_id": "00000000-0000-4000-8000-000000000009"}, headers=call.agent_auth
    )
    assert nobody.status_code == 404
    # Nothing changed: the call is still the caller and agent A.
    assert await everyone_hears(call, "caller", "agent") == {"caller": {"agent"}, "agent": {"caller"}}


async def test_a_consulted_agent_whose_connection_drops_ends_only_the_consultation(call: LiveCall) -> None:
    b_id, b_auth, _ = await call.second_agent()
    await post(call, "consult", call.agent_auth, {"agent_id": b_id})
    await call.connect_b(b_auth, "consult/answer")
    await call.peers.pop("b").close()
    for _ in range(100):  # the media plane reports the closed leg; watch the call's log
        if "consult_ended" in await call.event_types():
            break
        await call.peers["caller"].listen(0.1)
    ended = [e for e in await call.events() if e["type"] == "consult_ended"]
    assert [e["data"]["reason"] for e in ended] == ["consult_disconnected"]  # type: ignore[index]
    assert await everyone_hears(call, "caller", "agent") == {"caller": {"agent"}, "agent": {"caller"}}
    state = await agent_state(call, b_auth)
    assert state["current_call_id"] is None and state["system_state"] == "idle"
