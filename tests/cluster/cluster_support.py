"""Driving the production topology (kefu.platform.devcluster) from a test.

``attach(topology)`` gives the two-replica helpers of tests/webrtc/api_nodes_support
(``ApiCluster``: an HTTP client per replica, a never-started ``Runtime`` on the
cluster's settings to mint tokens and read the shared database, the contact
center built through the API) over the topology's own processes.  ``Desk`` is an
agent's desktop socket on one replica; ``Traffic`` keeps calls flowing
(callers and agents with real WebRTC peers) while a test breaks things.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parents[1] / "webrtc"))
from api_nodes_support import ApiCluster, ContactCenter, Seat, next_frame  # noqa: E402
from media_support import ClientPeer, steady_frequency  # noqa: E402
from nodes_support import until  # noqa: E402

from kefu.platform.devcluster import Topology  # noqa: E402
from kefu.platform.runtime import Runtime  # noqa: E402
from kefu.platform.settings import load_settings  # noqa: E402
from kefu.tenants.models import Agent, Call, CallEvent  # noqa: E402
from kefu.webrtc.ice import allow_loopback_host_candidates  # noqa: E402
from kefu.webrtc.remote import redis_client  # noqa: E402

__all__ = ["ApiCluster", "ContactCenter", "Seat", "next_frame", "until", "ClientPeer", "attach", "Desk", "Traffic",
           "CALLER_HZ", "AGENT_HZ", "hears"]

CALLER_HZ, AGENT_HZ = 440.0, 1000.0


@asynccontextmanager
async def attach(topology: Topology) -> AsyncIterator[ApiCluster]:
    allow_loopback_host_candidates()  # the test's own peers offer 127.0.0.1 too
    apis = {name: topology[name] for name in topology.names("api")}
    c = ApiCluster(env=topology.env, api=apis, media=[],  # type: ignore[arg-type]
                   runtime=Runtime.build(load_settings(topology.env), process_roles=frozenset({"api"})))
    c.redis = redis_client(topology.env["KEFU_REDIS_URL"])
    for name, process in apis.items():
        c.http[name] = httpx.AsyncClient(base_url=process.url, timeout=30)
    try:
        yield c
    finally:
        for client in c.http.values():
            await client.aclose()
        await c.redis.aclose()
        await c.runtime.db.dispose()


async def hears(peer: ClientPeer, *, timeout: float = 15) -> float:
    """The tone ``peer`` receives now (its connection up first)."""
    await asyncio.wait_for(peer.connected.wait(), timeout)
    return steady_frequency(await peer.listen(1.0, timeout=timeout), 1.0)


@dataclass
class Desk:
    """An agent's desktop: the ``/ws/agent`` socket on one replica, its frames kept in order."""

    c: ApiCluster
    seat: Seat
    via: str
    frames: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    socket: Any = None
    _reader: asyncio.Task[None] | None = None

    async def open(self) -> Desk:
        import websockets

        self.socket = await websockets.connect(self.c.ws(self.via, f"/ws/agent?access_token={self.seat.token}"))
        self._reader = asyncio.create_task(self._read())
        await self.next(lambda f: "state" in f)  # subscribed
        return self

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                await self.frames.put(json.loads(raw))
        except Exception:  # the replica died: the desk sees no more frames
            pass

    async def next(self, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        seen = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await self.frames.get()
                    if predicate(frame):
                        return frame
                    seen.append(frame)
        except TimeoutError:
            raise AssertionError(f"{self.via}: no awaited frame within {timeout} s; got {seen}") from None

    async def ready(self) -> None:
        await self.c.log_in(self.via, self.seat)
        await self.c.go_ready(self.via, self.seat)
        await self.next(lambda f: f.get("state") == "available")

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            await self._reader


async def agents(c: ApiCluster, tenant_id: uuid.UUID) -> dict[uuid.UUID, Agent]:
    return await c.agents(tenant_id)


async def call_events(c: ApiCluster, tenant_id: uuid.UUID, call_id: uuid.UUID) -> list[CallEvent]:
    async with c.runtime.db.tenant_session(tenant_id=tenant_id) as session:
        return list(await session.scalars(
            select(CallEvent).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == call_id).order_by(CallEvent.seq)))


def assert_cdr_closed(call: Call, events: list[CallEvent], *, reason: str | None = None) -> None:
    """A finished call: ended once, in its log and on its row, and nothing after."""
    assert call.status == "ended" and call.ended_at is not None, (call.id, call.status)
    ended = [e for e in events if e.type == "ended"]
    assert len(ended) == 1, [e.type for e in events]
    assert ended[0].data["reason"] == call.end_reason
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))  # no gap in the log
    if reason is not None:
        assert call.end_reason == reason, (call.id, call.end_reason)


@dataclass
class Outcome:
    at: float
    ok: bool
    what: str
    call_id: str | None = None


class Traffic:
    """Calls one after another while a test breaks things: a caller through one replica,
    the offer taken by a free agent's desk, answered, talked over for ``talk_s`` and hung
    up.  Each attempt's outcome is kept with its time; a failure is an outcome, not an
    error (a replica or node may be down on purpose)."""

    def __init__(self, c: ApiCluster, center: ContactCenter, desks: list[Desk], *, talk_s: float = 1.5) -> None:
        self.c, self.center, self.desks, self.talk_s = c, center, desks, talk_s
        self.outcomes: list[Outcome] = []
        self.placed: list[str] = []  # every call the API acknowledged (201)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> Traffic:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def succeeded_after(self, t: float) -> bool:
        return any(o.ok and o.at > t for o in self.outcomes)

    async def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                await asyncio.wait_for(self._one(i), 30)
            except Exception as exc:  # noqa: BLE001 - a failed call is an outcome here
                self.outcomes.append(Outcome(time.monotonic(), False, f"{type(exc).__name__}: {exc}"[:300]))
                await asyncio.sleep(0.2)  # pace retries while something is down

    async def _one(self, i: int) -> None:
        names = list(self.c.http)
        via = names[i % len(names)]
        caller, agent = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)
        try:
            response = await self.c.http[via].post(f"/api/v1/widget/{self.center.widget}/calls",
                                                    json={"caller_name": f"Caller {i}", "offer_sdp": await caller.offer()})
            if response.status_code != 201:
                self.outcomes.append(Outcome(time.monotonic(), False, f"{via} {response.status_code} {response.text[:200]}"))
                await asyncio.sleep(0.2)
                return
            body = response.json()
            self.placed.append(body["call_id"])
            await caller.accept(body["answer_sdp"])
            call_id = body["call_id"]
            desk = await self._desk_offered(call_id)
            await self.c.answer(desk.via, desk.seat, call_id, agent)
            await asyncio.wait_for(agent.connected.wait(), 15)
            await asyncio.sleep(self.talk_s)  # the conversation
            hangup = await self.c.http[desk.via].post(f"/api/v1/agent/calls/{call_id}/hangup", headers=desk.seat.headers)
            assert hangup.status_code == 204, hangup.text
            self.outcomes.append(Outcome(time.monotonic(), True, "answered and hung up", call_id))
        finally:
            await caller.close()
            await agent.close()

    async def _desk_offered(self, call_id: str) -> Desk:
        """The desk the call rings at (read from the shared database, then its push)."""
        tenant_id = self.center.tenant_id

        async def ringing_agent() -> uuid.UUID | None:
            call = await self.c.call(tenant_id, call_id)
            return call.agent_id if call.status == "ringing" else None

        agent_id = await until(ringing_agent, timeout=20, what=f"call {call_id} ringing at an agent")
        [desk] = [d for d in self.desks if d.seat.agent_id == agent_id]
        return desk
