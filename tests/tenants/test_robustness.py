"""Failure paths of the contact center: transactions, leaked media, restarts,
suspension, bad socket frames, and the typed events it emits."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from tenants_support import OFFER, Admin, InProcessMedia, MakeAgent
from test_acd import events_of, go_ready, make_queue, place_call, state_of

from kefu.platform.runtime import Runtime
from kefu.tenants.clock import ManualTimers
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
