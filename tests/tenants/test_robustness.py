"""Failure paths of the contact center: transactions, leaked media, restarts,
suspension, bad socket frames, and the typed events it emits."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from tenants_support import OFFER, Admin, InProcessMedia, MakeAgent
from test_acd import events_of, go_ready, make_queue, place_call, state_of

from kefu.platform.runtime import Runtime
from kefu.platform.app import create_app
from kefu.tenants.clock import ManualClock, ManualTimers
from kefu.tenants.models import Agent, Call
from kefu.tenants.services import ContactCenter


async def test_handlers_never_commit_the_request_session_and_route_members_after_commit(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await make_agent(acme, "Ann")
    queue_id, widget = await make_queue(client, acme, [])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")  # nobody in the queue yet: it waits
    manual_commits: list[AsyncSession] = []
    real_commit = AsyncSession.commit

    async def spy_commit(self: AsyncSession) -> None:
        manual_commits.append(self)
        await real_commit(self)

    monkeypatch.setattr(AsyncSession, "commit", spy_commit)
    response = await client.put(f"/api/v1/queues/{queue_id}/members", json={"agent_ids": [str(ann.agent_id)]}, headers=acme.headers)
    assert response.status_code == 200, response.text
    assert response.json()["agent_ids"] == [str(ann.agent_id)]
    assert manual_commits == []
    state = await state_of(client, ann)
    assert (state["state"], state["current_call_id"]) == ("ringing", call["call_id"])


def before_agent_leg(media: InProcessMedia, monkeypatch: pytest.MonkeyPatch, action) -> None:  # type: ignore[no-untyped-def]
    """Run ``action`` while the agent's leg is being negotiated (a concurrent change)."""
    real = media.answer_leg

    async def answer_leg(*, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, offer_sdp: str) -> str:
        if party == "agent":
            await action(tenant_id, call_id)
        return await real(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=offer_sdp)

    monkeypatch.setattr(media, "answer_leg", answer_leg)


async def test_answer_that_loses_the_call_leaves_the_agent_ringing_not_on_call(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")

    async def call_row_changes(tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            await session.execute(update(Call).where(Call.tenant_id == tenant_id, Call.id == call_id).values(status="queued", agent_id=None))

    before_agent_leg(media, monkeypatch, call_row_changes)
    response = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert (response.status_code, response.json()["code"]) == (409, "call_not_ringing")
    state = await state_of(client, ann)
    assert (state["system_state"], state["current_call_id"]) == ("ringing", call["call_id"])
    assert "answered" not in [e["type"] for e in await events_of(client, acme, call["call_id"])]


async def test_answer_to_a_call_that_ended_meanwhile_closes_the_agent_leg(
    client: AsyncClient, acme: Admin, make_agent: MakeAgent, cc: ContactCenter, media: InProcessMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    call_id = uuid.UUID(call["call_id"])

    async def caller_hangs_up(tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        await cc.calls.caller_hangup(call_id=call_id, caller_token=call["caller_token"])

    before_agent_leg(media, monkeypatch, caller_hangs_up)
    response = await client.post(f"/api/v1/agent/calls/{call_id}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert (response.status_code, response.json()["code"]) == (409, "call_not_ringing")
    assert media.legs_of(call_id) == []
    assert (await state_of(client, ann))["state"] == "available"


async def test_answer_to_a_call_re_offered_meanwhile_closes_only_the_agent_leg(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    call_id = uuid.UUID(call["call_id"])

    async def call_requeued(tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            await session.execute(update(Call).where(Call.tenant_id == tenant_id, Call.id == call_id).values(status="queued", agent_id=None))

    before_agent_leg(media, monkeypatch, call_requeued)
    response = await client.post(f"/api/v1/agent/calls/{call_id}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    assert response.status_code == 409
    assert media.legs_of(call_id) == ["caller"]


async def test_ending_an_already_ended_call_still_ends_its_media(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    call_id = uuid.UUID(call["call_id"])
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:  # ended by another node
        await session.execute(update(Call).where(Call.tenant_id == acme.tenant_id, Call.id == call_id).values(status="ended", end_reason="caller_hangup"))
    assert media.legs_of(call_id) == ["caller"]

    await media.drop_leg(call_id, "caller")

    assert media.legs_of(call_id) == []
    assert media.ended == [call_id]
    assert [e["type"] for e in await events_of(client, acme, str(call_id))] == ["created", "queued"]


async def test_ending_a_call_locks_its_current_agent_then_the_call_in_one_transaction(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, cc: ContactCenter
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue_id, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    assert (await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)).status_code == 200
    statements: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        words = statement.split()
        if words and words[0].upper() in ("SELECT", "UPDATE", "INSERT") and "set_config" not in statement:
            statements.append(" ".join(words[:3]).upper())

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await cc.calls.end_call(tenant_id=acme.tenant_id, call_id=uuid.UUID(call["call_id"]), reason="agent_hangup", actor="test") is True
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", record)
    assert statements[:2] == ["UPDATE AGENTS SET", "UPDATE CALLS SET"]
    state = await state_of(client, ann)
    assert (state["state"], state["current_call_id"]) == ("available", None)


async def test_a_restarted_node_ends_its_calls_whose_media_is_gone_and_frees_their_agents(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, clock: ManualClock, timers: ManualTimers
) -> None:
    ann, ben = await make_agent(acme, "Ann"), await make_agent(acme, "Ben")
    _queue_id, widget = await make_queue(client, acme, [ann, ben])
    await go_ready(client, ann)
    connected = await place_call(client, widget, "Connected")
    assert (await client.post(f"/api/v1/agent/calls/{connected['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)).status_code == 200
    await go_ready(client, ben)
    await timers.advance(1)
    ringing = await place_call(client, widget, "Ringing")
    await timers.advance(1)
    queued = await place_call(client, widget, "Queued")
    elsewhere = await place_call(client, widget, "Elsewhere")
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:  # a call of another media node
        await session.execute(update(Call).where(Call.id == uuid.UUID(elsewhere["call_id"])).values(media_node="node-b"))

    restarted = Runtime.build(runtime.settings, process_roles=frozenset({"api", "worker"}))
    restarted.components.update({"acd.clock": clock, "acd.timers": ManualTimers(clock), "acd.sweep_interval_s": None})
    restarted_app = create_app(runtime=restarted)
    restarted.components["media"] = InProcessMedia(restarted.settings.recordings_dir, clock)  # a fresh process: no legs
    async with restarted_app.lifespan():
        pass

    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        calls = {c.caller_name: (c.status, c.end_reason) for c in await session.scalars(select(Call))}
        agents = {a.display_name: (a.system_state, a.current_call_id) for a in await session.scalars(select(Agent))}
    assert calls == {
        "Connected": ("ended", "media_lost"), "Ringing": ("ended", "media_lost"), "Queued": ("ended", "media_lost"),
        "Elsewhere": ("ringing", None),  # another node's call goes on, to a freed agent
    }
    # Both agents were freed at the same instant: either may take the other node's call.
    assert sorted(agents.values(), key=str) == [("idle", None), ("ringing", uuid.UUID(elsewhere["call_id"]))]
    assert [e["type"] for e in await events_of(client, acme, ringing["call_id"])][-1] == "ended"
    assert [e["data"] for e in await events_of(client, acme, queued["call_id"]) if e["type"] == "ended"] == [{"reason": "media_lost", "previous_status": "queued"}]


async def test_a_call_beyond_the_set_up_bound_is_refused_at_once_and_leaves_nothing(
    runtime: Runtime, client: AsyncClient, acme: Admin, make_agent: MakeAgent, media: InProcessMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kefu.platform import metrics
    from kefu.tenants.services import contact_center

    flow = contact_center(runtime).calls
    monkeypatch.setattr(flow, "max_setups_in_flight", 1)
    _queue_id, widget = await make_queue(client, acme, [])
    entered, release = asyncio.Event(), asyncio.Event()
    real = media.answer_leg

    async def held_answer_leg(*, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, offer_sdp: str) -> str:
        entered.set()
        await release.wait()  # the first call stays in its set-up
        return await real(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=offer_sdp)

    monkeypatch.setattr(media, "answer_leg", held_answer_leg)
    refused_before = metrics.CALLS_REFUSED.labels("overloaded")._value.get()
    first = asyncio.create_task(client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "First", "offer_sdp": OFFER}))
    await entered.wait()
    second = await client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "Second", "offer_sdp": OFFER})
    assert (second.status_code, second.json()["code"], second.headers["retry-after"]) == (503, "overloaded", "1")
    assert metrics.CALLS_REFUSED.labels("overloaded")._value.get() == refused_before + 1
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        assert (await session.scalars(select(Call.caller_name))).all() == []  # nothing of the refused call, the first not yet committed
    assert len(media.legs) == 0
    release.set()
    assert (await first).status_code == 201
    monkeypatch.setattr(media, "answer_leg", real)
    third = await client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "Third", "offer_sdp": OFFER})
    assert third.status_code == 201, third.text  # the bound counts calls in set-up, not calls
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        assert sorted((await session.scalars(select(Call.caller_name))).all()) == ["First", "Third"]
    assert flow.setups_in_flight == 0
