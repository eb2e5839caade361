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

__all__ = ["media_nodes_reporting", "ApiCluster", "ContactCenter", "Seat", "next_frame", "until", "ClientPeer", "attach", "Desk", "Traffic",
           "CALLER_HZ", "AGENT_HZ", "hears"]

CALLER_HZ, AGENT_HZ = 440.0, 1000.0
METRICS_TOKEN = "cluster-metrics-token"  # KEFU_METRICS_TOKEN of the tests' topologies


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


async def media_nodes_reporting(c: ApiCluster, count: int, *, besides: frozenset[str] = frozenset()) -> bool:
    """At least ``count`` media nodes in the nodes hash, not counting the names ``besides``."""
    return len(set(await c.redis.hkeys("kefu:media:nodes")) - besides) >= count


async def scrape(c: ApiCluster, *, token: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of every API replica's ``/metrics``, summed over the replicas:
    ``{sample name: {sorted labels: value}}``."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for name, client in c.http.items():
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (name, response.status_code)
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                by_labels = totals.setdefault(sample.name, {})
                by_labels[labels] = by_labels.get(labels, 0.0) + sample.value
    return totals


def total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(value for key, value in samples.get(name, {}).items() if set(labels.items()) <= set(key))


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
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self) -> Desk:
        """Connect to ``via`` (the page pings every few seconds, which renews the agent's lease)."""
        import websockets

        self.frames = asyncio.Queue()
        self.socket = await websockets.connect(self.c.ws(self.via, f"/ws/agent?access_token={self.seat.token}"))
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._ping())]
        await self.next(lambda f: "state" in f)  # subscribed
        return self

    async def move(self, via: str) -> Desk:
        """The page reconnects through another replica (its own died, or the balancer moved it)."""
        await self.close()
        self.via = via
        return await self.open()

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                await self.frames.put(json.loads(raw))
        except Exception:  # the replica died: the desk sees no more frames
            pass

    async def _ping(self) -> None:
        try:
            while True:
                await asyncio.sleep(5)
                await self.socket.send(json.dumps({"type": "ping"}))
        except Exception:  # closed
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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


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
    started: float = 0.0


class Traffic:
    """Calls arriving while a test breaks things: every ``interval_s`` a caller comes in
    through a live replica (open loop, at most one call per agent in flight), the offer
    is taken by the agent it rings at, answered, talked over for ``talk_s`` and hung up.
    Each attempt's outcome is kept with its time and the step that failed; a failure is
    an outcome, not an error (a replica or node may be down on purpose)."""

    def __init__(self, c: ApiCluster, center: ContactCenter, desks: list[Desk], *, talk_s: float = 1.5,
                 interval_s: float = 1.0) -> None:
        self.c, self.center, self.desks, self.talk_s, self.interval_s = c, center, desks, talk_s, interval_s
        self.outcomes: list[Outcome] = []
        self.placed: list[str] = []  # every call the API acknowledged (201)
        self.completed: list[str] = []  # answered and hung up by the agent
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    def start(self) -> Traffic:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await asyncio.gather(*self._calls, return_exceptions=True)

    def succeeded_after(self, t: float) -> bool:
        return any(o.ok and o.started > t for o in self.outcomes)

    async def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            if len(self._calls) < len(self.desks):
                i += 1
                task = asyncio.create_task(self._attempt(i))
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def _attempt(self, i: int) -> None:
        started, step = time.monotonic(), ["start"]
        try:
            await asyncio.wait_for(self._one(i, step), 40)
            self.outcomes.append(Outcome(time.monotonic(), True, "answered and hung up", started=started))
        except Exception as exc:  # noqa: BLE001 - a failed call is an outcome here
            self.outcomes.append(Outcome(time.monotonic(), False, f"{step[0]}: {type(exc).__name__}: {exc}"[:300], started=started))

    async def _one(self, i: int, step: list[str]) -> None:
        names = [name for name in self.c.http if self.c.api[name].running()]  # the balancer's healthy targets
        via = names[i % len(names)]
        caller, agent = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)
        try:
            step[0] = f"call in via {via}"
            response = await self.c.http[via].post(f"/api/v1/widget/{self.center.widget}/calls",
                                                    json={"caller_name": f"Caller {i}", "offer_sdp": await caller.offer()})
            assert response.status_code == 201, f"{response.status_code} {response.text[:200]}"
            body = response.json()
            call_id = body["call_id"]
            self.placed.append(call_id)
            await caller.accept(body["answer_sdp"])
            step[0] = "ringing"
            desk = await self._desk_offered(call_id)
            step[0] = f"answer via {desk.via}"
            await self.c.answer(desk.via, desk.seat, call_id, agent)
            step[0] = "agent connected"
            await asyncio.wait_for(agent.connected.wait(), 15)
            await asyncio.sleep(self.talk_s)  # the conversation
            step[0] = f"hang up via {desk.via}"
            hangup = await self.c.http[desk.via].post(f"/api/v1/agent/calls/{call_id}/hangup", headers=desk.seat.headers)
            assert hangup.status_code == 204, hangup.text
            self.completed.append(call_id)
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
        if not self.c.api[desk.via].running():
            await desk.move(next(name for name in self.c.http if self.c.api[name].running()))
        return desk
