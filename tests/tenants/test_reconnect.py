"""A dropped caller or agent leg gets RECONNECT_GRACE_S to come back before its call ends.

Time is driven by hand (``ManualTimers``); the in-process media stand-in
reports legs closed exactly as kefu.webrtc does (``drop_leg``).
"""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from kefu.platform.runtime import Runtime
from kefu.tenants.clock import ManualClock, ManualTimers
from kefu.tenants.reconnect import RECONNECT_GRACE_S
from kefu.tenants.services import ContactCenter
from tenants_support import OFFER, Admin, AgentSeat, InProcessMedia, MakeAgent
from test_acd import events_of, go_ready, make_queue, place_call, state_of

BAD_OFFER = OFFER + "m=video bad\r\n"  # the media stand-in rejects it, as kefu.webrtc rejects a video-only offer


@pytest.fixture
def media(runtime: Runtime, clock: ManualClock) -> InProcessMedia:
    return InProcessMedia(runtime.settings.recordings_dir, clock)


async def connected_call(client: AsyncClient, admin: Admin, make_agent: MakeAgent) -> tuple[AgentSeat, dict]:
    """Ann answered Li Lei's call."""
    ann = await make_agent(admin, "Ann")
    _queue_id, widget = await make_queue(client, admin, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    answered = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert answered.status_code == 200, answered.text
    return ann, call


async def call_of(client: AsyncClient, admin: Admin, call_id: str) -> tuple[str, str | None]:
    detail = (await client.get(f"/api/v1/calls/{call_id}", headers=admin.headers)).json()
    return detail["status"], detail["end_reason"]


async def types_of(client: AsyncClient, admin: Admin, call_id: str) -> list[str]:
    return [e["type"] for e in await events_of(client, admin, call_id)]


async def test_a_dropped_agent_leg_ends_the_call_only_when_the_grace_period_is_over(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    ann, call = await connected_call(client, acme, make_agent)
    call_id = call["call_id"]
    await media.drop_leg(uuid.UUID(call_id), "agent")

    assert await call_of(client, acme, call_id) == ("connected", None)
    [dropped] = [e for e in await events_of(client, acme, call_id) if e["type"] == "disconnected"]
    assert (dropped["actor"], dropped["data"]) == ("media", {"party": "agent", "grace_s": RECONNECT_GRACE_S})
    await timers.advance(RECONNECT_GRACE_S - 0.5)
    assert await call_of(client, acme, call_id) == ("connected", None)
    assert (await state_of(client, ann))["state"] == "on_call"

    await timers.advance(0.5)
    assert await call_of(client, acme, call_id) == ("ended", "agent_disconnected")
    assert (await state_of(client, ann))["state"] == "available"
    assert await types_of(client, acme, call_id) == [
        "created", "queued", "offered", "answered", "recording_started", "disconnected", "ended", "recording_saved", "recording_saved",
    ]


async def test_an_agent_who_re_attaches_in_time_keeps_the_call(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    ann, call = await connected_call(client, acme, make_agent)
    call_id = call["call_id"]
    held = await client.put(f"/api/v1/agent/calls/{call_id}/hold", json={"on_hold": True}, headers=ann.headers)
    assert held.status_code == 200, held.text
    await media.drop_leg(uuid.UUID(call_id), "agent")
    await timers.advance(RECONNECT_GRACE_S - 1)

    media.legs.pop((uuid.UUID(call_id), "agent"))  # the reloaded page's old leg is gone
    back = await client.post(f"/api/v1/agent/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert back.status_code == 200, back.text
    body = back.json()
    assert body["answer_sdp"] == "v=0\r\ns=answer-agent\r\n"
    # The controls' own answer, so the reloaded desktop shows the call on hold at once.
    audio = {key: body["audio"][key] for key in ("call_id", "on_hold", "muted", "recording_paused", "supervisor", "taken_over")}
    assert audio == {"call_id": call_id, "on_hold": True, "muted": False, "recording_paused": False, "supervisor": None, "taken_over": False}
    assert media.legs_of(uuid.UUID(call_id)) == ["agent", "caller"]

    await timers.advance(10 * RECONNECT_GRACE_S)
    assert await call_of(client, acme, call_id) == ("connected", None)
    [reconnected] = [e for e in await events_of(client, acme, call_id) if e["type"] == "reconnected"]
    assert (reconnected["actor"], reconnected["data"]) == (f"user:{ann.user_id}", {"party": "agent"})
    assert (await client.post(f"/api/v1/agent/calls/{call_id}/hangup", headers=ann.headers)).status_code == 204
    assert await call_of(client, acme, call_id) == ("ended", "agent_hangup")


async def test_a_caller_who_re_attaches_in_time_keeps_the_call(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    _ann, call = await connected_call(client, acme, make_agent)
    call_id = call["call_id"]
    await media.drop_leg(uuid.UUID(call_id), "caller")
    await timers.advance(3)

    back = await client.post(f"/api/v1/widget/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers={"X-Caller-Token": call["caller_token"]})
    assert back.status_code == 200, back.text
    assert back.json() == {"answer_sdp": "v=0\r\ns=answer-caller\r\n"}

    await timers.advance(10 * RECONNECT_GRACE_S)
    assert await call_of(client, acme, call_id) == ("connected", None)
    types = await types_of(client, acme, call_id)
    assert types[-2:] == ["disconnected", "reconnected"]
    [reconnected] = [e for e in await events_of(client, acme, call_id) if e["type"] == "reconnected"]
    assert (reconnected["actor"], reconnected["data"]) == ("caller", {"party": "caller"})


async def test_a_caller_who_leaves_the_queue_for_good_abandons_the_call_after_the_grace_period(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")  # nobody is ready: the call waits in the queue
    await media.drop_leg(uuid.UUID(call["call_id"]), "caller")
    assert await call_of(client, acme, call["call_id"]) == ("queued", None)

    await timers.advance(RECONNECT_GRACE_S)
    assert await call_of(client, acme, call["call_id"]) == ("ended", "abandoned")


async def test_a_hang_up_during_the_grace_period_ends_the_call_at_once(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    ann, call = await connected_call(client, acme, make_agent)
    call_id = call["call_id"]
    await media.drop_leg(uuid.UUID(call_id), "agent")
    await timers.advance(2)

    hung_up = await client.post(f"/api/v1/widget/calls/{call_id}/hangup", headers={"X-Caller-Token": call["caller_token"]})
    assert hung_up.status_code == 204
    assert await call_of(client, acme, call_id) == ("ended", "caller_hangup")
    assert (await state_of(client, ann))["state"] == "available"
    before = await events_of(client, acme, call_id)

    await timers.advance(RECONNECT_GRACE_S)
    assert await events_of(client, acme, call_id) == before
    late = await client.post(f"/api/v1/agent/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert (late.status_code, late.json()["code"]) == (409, "call_not_connected")
    late_caller = await client.post(f"/api/v1/widget/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers={"X-Caller-Token": call["caller_token"]})
    assert (late_caller.status_code, late_caller.json()["code"]) == (409, "call_ended")


async def test_a_rejected_re_offer_leaves_the_grace_period_running_to_its_original_end(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    ann, call = await connected_call(client, acme, make_agent)
    call_id = call["call_id"]
    await media.drop_leg(uuid.UUID(call_id), "agent")
    await timers.advance(RECONNECT_GRACE_S - 1)

    rejected = await client.post(f"/api/v1/agent/calls/{call_id}/media", json={"offer_sdp": BAD_OFFER}, headers=ann.headers)
    assert rejected.status_code == 400, rejected.text
    malformed = await client.post(f"/api/v1/agent/calls/{call_id}/media", json={"offer_sdp": "hello"}, headers=ann.headers)
    assert (malformed.status_code, malformed.json()["code"]) == (400, "invalid_sdp")
    await timers.advance(1)
    assert await call_of(client, acme, call_id) == ("ended", "agent_disconnected")
    assert "reconnected" not in await types_of(client, acme, call_id)


async def test_only_the_calls_own_agent_and_caller_re_attach(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    _ann, call = await connected_call(client, acme, make_agent)
    call_id = call["call_id"]
    bob = await make_agent(acme, "Bob")
    await media.drop_leg(uuid.UUID(call_id), "agent")

    other_agent = await client.post(f"/api/v1/agent/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers=bob.headers)
    assert (other_agent.status_code, other_agent.json()["code"]) == (404, "not_found")
    admin = await client.post(f"/api/v1/agent/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers=acme.headers)
    assert admin.status_code == 403
    no_token = await client.post(f"/api/v1/widget/calls/{call_id}/media", json={"offer_sdp": OFFER})
    assert (no_token.status_code, no_token.json()["code"]) == (404, "not_found")

    await timers.advance(RECONNECT_GRACE_S)
    assert await call_of(client, acme, call_id) == ("ended", "agent_disconnected")


async def test_a_caller_token_re_attaches_only_its_own_call(
    client: AsyncClient, acme: Admin, globex: Admin, make_agent: MakeAgent, media: InProcessMedia, timers: ManualTimers
) -> None:
    """Cross-tenant: Globex's agent and Globex's caller cannot re-attach to Acme's call; it ends as it would have."""
    _ann, call = await connected_call(client, acme, make_agent)
    call_id = call["call_id"]
    gus = await make_agent(globex, "Gus")
    _globex_queue, globex_widget = await make_queue(client, globex, [])
    globex_call = await place_call(client, globex_widget, "Wang Wu")
    await media.drop_leg(uuid.UUID(call_id), "agent")
    await media.drop_leg(uuid.UUID(call_id), "caller")
    before = await events_of(client, acme, call_id)

    foreign_agent = await client.post(f"/api/v1/agent/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers=gus.headers)
    assert (foreign_agent.status_code, foreign_agent.json()["code"]) == (404, "not_found")
    foreign_caller = await client.post(
        f"/api/v1/widget/calls/{call_id}/media", json={"offer_sdp": OFFER}, headers={"X-Caller-Token": globex_call["caller_token"]}
    )
    assert (foreign_caller.status_code, foreign_caller.json()["code"]) == (404, "not_found")
    # Acme's own token does not open Globex's call either.
    crossed = await client.post(
        f"/api/v1/widget/calls/{globex_call['call_id']}/media", json={"offer_sdp": OFFER}, headers={"X-Caller-Token": call["caller_token"]}
    )
    assert (crossed.status_code, crossed.json()["code"]) == (404, "not_found")
    assert await events_of(client, acme, call_id) == before
    assert "reconnected" not in await types_of(client, globex, globex_call["call_id"])

    await timers.advance(RECONNECT_GRACE_S)
    assert await call_of(client, acme, call_id) == ("ended", "agent_disconnected")
    assert await call_of(client, globex, globex_call["call_id"]) == ("queued", None)


async def test_a_grace_period_lost_with_its_node_is_ended_by_the_sweep_unless_the_party_came_back(
    runtime: Runtime, cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia,
    timers: ManualTimers,
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    gone, back = await place_call(client, widget, "Gone"), await place_call(client, widget, "Back")  # both wait
    for call in (gone, back):
        await media.drop_leg(uuid.UUID(call["call_id"]), "caller")
    reattached = await client.post(f"/api/v1/widget/calls/{back['call_id']}/media", json={"offer_sdp": OFFER},
                                   headers={"X-Caller-Token": back["caller_token"]})
    assert reattached.status_code == 200, reattached.text
    grace = runtime.components["reconnect"]
    for timer in list(grace._pending.values()):  # the node holding the timers dies with them
        timer.handle.cancel()
    grace._pending.clear()

    await timers.advance(RECONNECT_GRACE_S + 0.5)
    await cc.acd.sweep()  # too early: within the grace (plus its second of slack) nothing is decided
    assert await call_of(client, acme, gone["call_id"]) == ("queued", None)
    await timers.advance(1)
    await cc.acd.sweep()
    assert await call_of(client, acme, gone["call_id"]) == ("ended", "abandoned")
    assert await call_of(client, acme, back["call_id"]) == ("queued", None)
    await cc.acd.sweep()  # again: nothing more to do
    assert await call_of(client, acme, back["call_id"]) == ("queued", None)


async def test_the_sweep_leaves_a_callbacks_caller_alone(
    runtime: Runtime, cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia,
    timers: ManualTimers,
) -> None:
    """The caller of a callback left on purpose: its call keeps waiting, sweep after sweep."""
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    asked = await client.post(f"/api/v1/widget/calls/{call['call_id']}/callback", json={}, headers={"X-Caller-Token": call["caller_token"]})
    assert asked.status_code == 200, asked.text
    await media.drop_leg(uuid.UUID(call["call_id"]), "caller")  # what the browser's closed connection reports
    grace = runtime.components["reconnect"]
    for timer in list(grace._pending.values()):
        timer.handle.cancel()
    grace._pending.clear()
    for _ in range(3):
        await timers.advance(RECONNECT_GRACE_S + 2)
        await cc.acd.sweep()
    assert await call_of(client, acme, call["call_id"]) == ("queued", None)
