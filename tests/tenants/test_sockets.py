"""The agent and caller push sockets, driven over ASGI in the test's own loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uuid

import pytest
from tenants_support import Admin, MakeAgent
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import delete
from tenants_support import OFFER
from test_acd import go_ready, make_queue, place_call

from kefu.platform.runtime import Runtime
from kefu.tenants.models import Call, CallEvent
from kefu.tenants.services import ContactCenter

TIMEOUT_S = 5


class Socket:
    """One websocket conversation with the app (ASGI messages, no network)."""

    def __init__(self, app: Litestar, path: str, query: str) -> None:
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query.encode(),
            "headers": [(b"host", b"testserver.local")], "client": ("127.0.0.1", 50000), "server": ("testserver.local", 80),
            "subprotocols": [],
        }
        self.inbound.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(app(scope, self.inbound.get, self.outbound.put))  # type: ignore[arg-type]

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.outbound.get(), TIMEOUT_S)

    async def receive_json(self) -> dict[str, Any]:
        while True:
            message = await self.next()
            if message["type"] == "websocket.send":
                return json.loads(message["text"])
            assert message["type"] == "websocket.accept", message

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.inbound.put({"type": "websocket.receive", "text": json.dumps(data)})

    async def send_raw(self, frame: dict[str, Any]) -> None:
        await self.inbound.put({"type": "websocket.receive", **frame})

    async def closed_with(self) -> int:
        """The close code the app sent (after any pushes still queued); the handler has returned."""
        while True:
            message = await self.next()
            if message["type"] == "websocket.close":
                await asyncio.wait_for(self.task, TIMEOUT_S)
                return message["code"]

    async def close(self) -> None:
        await self.inbound.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, TIMEOUT_S)


async def test_agent_socket_pushes_state_and_offers_and_renews_the_lease(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    await client.post("/api/v1/agent/session", headers=ann.headers)
    token = ann.headers["Authorization"].split()[1]
    socket = Socket(app, "/ws/agent", f"access_token={token}")
    try:
        first = await socket.receive_json()
        assert (first["type"], first["state"], first["reason"]) == ("agent.state", "not_ready", "logged_in")
        await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann.headers)
        assert (await socket.receive_json())["state"] == "available"
        call = await place_call(client, widget, "Li Lei")
        ringing = await socket.receive_json()
        assert (ringing["type"], ringing["state"], ringing["call_id"]) == ("agent.state", "ringing", call["call_id"])
        assert await socket.receive_json() == {"type": "call.offered", "call_id": call["call_id"], "caller_name": "Li Lei"}
        await socket.send_json({"type": "ping"})
        assert await socket.receive_json() == {"type": "pong", "lease": True}
        await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
        assert (await socket.receive_json())["state"] == "on_call"
        await client.post(f"/api/v1/widget/calls/{call['call_id']}/hangup", headers={"X-Caller-Token": call["caller_token"]})
        assert await socket.receive_json() == {"type": "call.ended", "call_id": call["call_id"], "reason": "caller_hangup"}
        assert (await socket.receive_json())["state"] == "available"
    finally:
        await socket.close()


async def test_agent_socket_refuses_a_missing_token(app: Litestar, client: AsyncClient) -> None:
    socket = Socket(app, "/ws/agent", "")
    assert (await socket.next())["type"] == "websocket.accept"
    closed = await socket.next()
    assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
    await asyncio.wait_for(socket.task, TIMEOUT_S)


async def test_caller_socket_follows_the_call(app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    socket = Socket(app, f"/ws/caller/{call['call_id']}", f"caller_token={call['caller_token']}")
    try:
        assert await socket.receive_json() == {"type": "call.state", "call_id": call["call_id"], "status": "queued"}
        await client.post("/api/v1/agent/session", headers=ann.headers)
        await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann.headers)
        assert (await socket.receive_json())["status"] == "ringing"
        await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
        assert (await socket.receive_json())["status"] == "connected"
        await client.post(f"/api/v1/agent/calls/{call['call_id']}/hangup", headers=ann.headers)
        assert await socket.receive_json() == {"type": "call.state", "call_id": call["call_id"], "status": "ended", "reason": "agent_hangup"}
    finally:
        await socket.close()
    wrong = Socket(app, f"/ws/caller/{call['call_id']}", "caller_token=guess")
    assert (await wrong.next())["type"] == "websocket.accept"
    assert (await wrong.next())["code"] == 4404


BAD_FRAMES = [
    {"text": "not json"},
    {"text": "[1, 2]"},
    {"text": '"ping"'},
    {"text": '{"type": 5}'},
    {"text": "{}"},
    {"bytes": b'{"type": "ping"}'},
]


async def delete_call(runtime: Runtime, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
    """What a tenant purge does to a call under a live socket."""
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        await session.execute(delete(CallEvent).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == call_id))
        await session.execute(delete(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=["text", "array", "string", "type-not-string", "no-type", "binary"])
async def test_agent_socket_answers_a_bad_frame_with_an_error_and_stays_open(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, frame: dict[str, Any]
) -> None:
    ann = await make_agent(acme, "Ann")
    await client.post("/api/v1/agent/session", headers=ann.headers)
    socket = Socket(app, "/ws/agent", f"access_token={ann.headers['Authorization'].split()[1]}")
    try:
        assert (await socket.receive_json())["type"] == "agent.state"
        await socket.send_raw(frame)
        error = await socket.receive_json()
        assert (error["type"], error["code"]) == ("error", "invalid_message")
        await socket.send_json({"type": "ping"})
        assert await socket.receive_json() == {"type": "pong", "lease": True}
    finally:
        await socket.close()


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=["text", "array", "string", "type-not-string", "no-type", "binary"])
async def test_caller_socket_answers_a_bad_frame_with_an_error_and_stays_open(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, frame: dict[str, Any]
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    socket = Socket(app, f"/ws/caller/{call['call_id']}", f"caller_token={call['caller_token']}")
    try:
        assert (await socket.receive_json())["status"] == "queued"
        await socket.send_raw(frame)
        error = await socket.receive_json()
        assert (error["type"], error["code"]) == ("error", "invalid_message")
        await socket.send_json({"type": "ping"})
        assert await socket.receive_json() == {"type": "pong"}
    finally:
        await socket.close()


async def test_caller_socket_closes_4404_when_the_call_vanishes_while_it_opens(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, runtime: Runtime, cc: ContactCenter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    call = await place_call(client, widget, "Li Lei")
    call_id = uuid.UUID(call["call_id"])
    original = cc.calls.caller_call
    lookups = []

    async def caller_call_then_purge(**kwargs: Any) -> Call:
        found = await original(**kwargs)
        lookups.append(found.id)
        if len(lookups) == 1:
            await delete_call(runtime, acme.tenant_id, call_id)
        return found

    monkeypatch.setattr(cc.calls, "caller_call", caller_call_then_purge)
    socket = Socket(app, f"/ws/caller/{call['call_id']}", f"caller_token={call['caller_token']}")
    assert await socket.closed_with() == 4404
    assert lookups == [call_id]


async def test_agent_socket_skips_the_offer_of_a_call_that_vanished(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent, runtime: Runtime
) -> None:
    ann = await make_agent(acme, "Ann")
    _queue, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    call = await place_call(client, widget, "Li Lei")
    await delete_call(runtime, acme.tenant_id, uuid.UUID(call["call_id"]))
    socket = Socket(app, "/ws/agent", f"access_token={ann.headers['Authorization'].split()[1]}")
    try:
        first = await socket.receive_json()
        assert (first["type"], first["state"], first["call_id"]) == ("agent.state", "ringing", call["call_id"])
        await socket.send_json({"type": "ping"})
        assert await socket.receive_json() == {"type": "pong", "lease": True}
    finally:
        await socket.close()


async def test_a_reopened_socket_of_a_consulted_agent_is_offered_the_consultation_again(
    app: Litestar, client: AsyncClient, acme: Admin, make_agent: MakeAgent
) -> None:
    ann, bo = await make_agent(acme, "Ann"), await make_agent(acme, "Bo")
    _queue, widget = await make_queue(client, acme, [ann])
    await go_ready(client, ann)
    await go_ready(client, bo)
    call = await place_call(client, widget, "Li Lei")
    await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=ann.headers)
    consult = await client.post(f"/api/v1/agent/calls/{call['call_id']}/consult", json={"agent_id": str(bo.agent_id)}, headers=ann.headers)
    assert consult.status_code == 200, consult.text
    # Bo's page reloads: its new socket is told about the consultation, not offered the call itself.
    token = bo.headers["Authorization"].split()[1]
    socket = Socket(app, "/ws/agent", f"access_token={token}")
    try:
        assert (await socket.receive_json())["state"] == "ringing"
        assert await socket.receive_json() == {"type": "consult.offered", "call_id": call["call_id"], "from": "Ann", "caller_name": "Li Lei"}
    finally:
        await socket.close()
