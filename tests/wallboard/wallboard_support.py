"""Helpers of the wallboard tests: a floor built through the API (agents, queues, teams,
supervisors, callers) and a /ws/wallboard conversation over ASGI in the test's own loop."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from httpx import AsyncClient
from litestar import Litestar
from tenants_support import OFFER, Admin, AgentSeat, activate_user, bearer

from kefu.platform.runtime import Runtime

TIMEOUT_S = 10


async def new_queue(client: AsyncClient, admin: Admin, name: str, members: list[AgentSeat]) -> tuple[str, str]:
    """A queue with these members and a web entry point: (queue id, widget key)."""
    queue = await client.post("/api/v1/queues", json={"name": name}, headers=admin.headers)
    assert queue.status_code == 201, queue.text
    queue_id = queue.json()["id"]
    put = await client.put(f"/api/v1/queues/{queue_id}/members", json={"agent_ids": [str(s.agent_id) for s in members]}, headers=admin.headers)
    assert put.status_code == 200, put.text
    entry = await client.post("/api/v1/entry-points", json={"name": f"{name} web", "queue_id": queue_id}, headers=admin.headers)
    assert entry.status_code == 201, entry.text
    return queue_id, entry.json()["widget_key"]


async def new_team(client: AsyncClient, admin: Admin, name: str, agents: list[AgentSeat], supervisors: list[uuid.UUID] = []) -> str:
    body = {"name": name, "agent_ids": [str(a.agent_id) for a in agents], "supervisor_ids": [str(s) for s in supervisors]}
    created = await client.post("/api/v1/teams", json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def new_user(client: AsyncClient, runtime: Runtime, admin: Admin, name: str, role: str) -> tuple[uuid.UUID, dict[str, str]]:
    body = {"email": f"{name.lower()}@wallboard.test", "display_name": name, "roles": [role]}
    created = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    user_id = uuid.UUID(created.json()["user"]["id"])
    await activate_user(runtime, admin.tenant_id, user_id)
    return user_id, bearer(runtime, tenant_id=admin.tenant_id, user_id=user_id, roles={role})


async def place_call(client: AsyncClient, widget_key: str, caller: str) -> dict[str, Any]:
    response = await client.post(f"/api/v1/widget/{widget_key}/calls", json={"caller_name": caller, "offer_sdp": OFFER})
    assert response.status_code == 201, response.text
    return response.json()


async def caller_hangs_up(client: AsyncClient, call: dict[str, Any]) -> None:
    response = await client.post(f"/api/v1/widget/calls/{call['call_id']}/hangup", headers={"X-Caller-Token": call["caller_token"]})
    assert response.status_code == 204, response.text


async def answer(client: AsyncClient, seat: AgentSeat, call: dict[str, Any]) -> None:
    response = await client.post(f"/api/v1/agent/calls/{call['call_id']}/answer", json={"offer_sdp": OFFER}, headers=seat.headers)
    assert response.status_code == 200, response.text


async def log_in(client: AsyncClient, seat: AgentSeat) -> None:
    response = await client.post("/api/v1/agent/session", headers=seat.headers)
    assert response.status_code in (200, 201), response.text


async def set_status(client: AsyncClient, seat: AgentSeat, status: str) -> None:
    response = await client.put("/api/v1/agent/status", json={"status": status}, headers=seat.headers)
    assert response.status_code == 200, response.text


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def agents(**counts: int) -> dict[str, int]:
    """Agents by state, every state named (zero unless given)."""
    return {state: counts.get(state, 0) for state in ("available", "not_ready", "ringing", "on_call", "wrap_up", "offline")}


class BoardSocket:
    """One /ws/wallboard conversation with the app (ASGI messages, no network)."""

    def __init__(self, app: Litestar, headers: dict[str, str] | None, query: str = "") -> None:
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        parts = [f"access_token={headers['Authorization'].split(' ', 1)[1]}"] if headers else []
        query_string = "&".join(parts + ([query] if query else []))
        scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1",
            "path": "/ws/wallboard", "raw_path": b"/ws/wallboard", "root_path": "", "query_string": query_string.encode(),
            "headers": [(b"host", b"testserver.local")], "client": ("127.0.0.1", 50000), "server": ("testserver.local", 80),
            "subprotocols": [],
        }
        self.inbound.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(app(scope, self.inbound.get, self.outbound.put))  # type: ignore[arg-type]

    async def frame(self) -> dict[str, Any]:
        """The next frame the app sends (AssertionError on a close)."""
        while True:
            message = await asyncio.wait_for(self.outbound.get(), TIMEOUT_S)
            if message["type"] == "websocket.send":
                return json.loads(message["text"])
            assert message["type"] == "websocket.accept", message

    async def until(self, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Frames are read (none skipped unread) until one meets ``condition``."""
        while True:
            frame = await self.frame()
            if condition(frame):
                return frame

    async def closed_with(self) -> tuple[int, str | None]:
        """The close code and the error frame's code (if any) the app sent."""
        error = None
        while True:
            message = await asyncio.wait_for(self.outbound.get(), TIMEOUT_S)
            if message["type"] == "websocket.send":
                error = json.loads(message["text"]).get("code")
            elif message["type"] == "websocket.close":
                await asyncio.wait_for(self.task, TIMEOUT_S)
                return message["code"], error

    async def close(self) -> None:
        await self.inbound.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, TIMEOUT_S)


class Floor:
    """Acme's floor as the tests build it (the clock starts at START):

    * agents Ann, Bob, Cai and Dee (Dee never logs in and is in no queue or team);
    * queues Sales (Ann) and Support (Bob, Cai), each with a web entry point;
    * teams Red (Ann, Bob; supervised by Sue) and Blue (Cai); Sue also supervises Support;
    * Rae, a report viewer.
    """

    def __init__(self, client: AsyncClient, runtime: Runtime, admin: Admin) -> None:
        self.client, self.runtime, self.admin = client, runtime, admin

    async def build(self, make_agent: Any) -> Floor:
        client, admin = self.client, self.admin
        self.ann, self.bob, self.cai, self.dee = [await make_agent(admin, name) for name in ("Ann", "Bob", "Cai", "Dee")]
        self.sales, self.sales_widget = await new_queue(client, admin, "Sales", [self.ann])
        self.support, self.support_widget = await new_queue(client, admin, "Support", [self.bob, self.cai])
        self.sue, self.sue_headers = await new_user(client, self.runtime, admin, "Sue", "supervisor")
        _, self.rae_headers = await new_user(client, self.runtime, admin, "Rae", "report_viewer")
        self.red = await new_team(client, admin, "Red", [self.ann, self.bob], [self.sue])
        self.blue = await new_team(client, admin, "Blue", [self.cai])
        assigned = await client.put(f"/api/v1/queues/{self.support}/supervisors", json={"user_ids": [str(self.sue)]}, headers=admin.headers)
        assert assigned.status_code == 200, assigned.text
        return self
