"""Media nodes: the control plane places calls on `kefu media` processes and talks to them through Redis.

The first group runs a ``MediaNode`` and ``RemoteMediaPlane``s in the test's
loop on the real Redis (the wire protocol, placement, death detection, fencing).
The second runs the production shape: the API in-process in production mode
on PostgreSQL, and two real `kefu media` subprocesses carrying the audio of
aiortc peers; one is killed with SIGKILL mid-call, another frozen with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis
import websockets
from media_support import ClientPeer, dominant_frequency
from nodes_support import KEFU, MediaNodeProcess, private_key_pem, until, write_heartbeat
from sqlalchemy import select

from kefu.platform.app import create_app
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings, load_settings
from kefu.tenants.models import Call, CallEvent
from kefu.webrtc.bridge import RecordedFile
from kefu.webrtc.ice import allow_loopback_host_candidates
from kefu.webrtc.leg import OfferRejected
from kefu.webrtc.node import MediaNode
from kefu.webrtc.remote import (
    EVENTS,
    NODES,
    MediaUnavailable,
    RemoteMediaPlane,
    fence_key,
    from_wire,
    redis_client,
    to_wire,
)
from tests.events.server import serving
from tests.tenants.tenants_support import activate_user, bearer, create_tenant, create_user

pytestmark = pytest.mark.redis

CALLER_HZ, AGENT_HZ = 440.0, 1000.0


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    url = redis_server.url.rsplit("/", 1)[0] + "/5"  # a database of its own: other tests flush /0
    sync_redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    client = redis_client(redis_url)
    yield client
    await client.aclose()


# --- in-process: the protocol on real Redis ---------------------------------------------------


@pytest.fixture
def quick_settings(tmp_path: Path, redis_url: str) -> Settings:
    """Heartbeats every 100 ms, a node dead after 600 ms of silence."""
    return load_settings({
        "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_REDIS_URL": redis_url, "KEFU_MEDIA_ALLOW_LOOPBACK": "1",
        "KEFU_MEDIA_HEARTBEAT_MS": "100", "KEFU_MEDIA_NODE_TIMEOUT_MS": "600", "KEFU_NODE_ID": "api-1",
    })


@pytest.fixture
async def replicas(quick_settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    started: list[RemoteMediaPlane] = []

    async def start(*, node_timeout_s: float | None = None, **kwargs: Any) -> RemoteMediaPlane:
        settings = quick_settings if node_timeout_s is None else dataclasses.replace(quick_settings, media_node_timeout_s=node_timeout_s)
        plane = RemoteMediaPlane(settings, **kwargs)
        await plane.start()
        started.append(plane)
        return plane

    yield start
    for plane in started:
        await plane.stop()


@pytest.fixture
async def node(quick_settings: Settings) -> AsyncIterator[MediaNode]:
    media_node = MediaNode(dataclasses.replace(quick_settings, node_id="node-a"))
    await media_node.start()
    yield media_node
    await media_node.stop()


def test_wire_values_round_trip_uuids_datetimes_and_recorded_files() -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    recorded = RecordedFile("caller", "t/c/caller.ogg", 1200, 3000, at, at, media_type="audio/ogg", paused_ms=((500, 900),))
    value = {"id": uuid.UUID(int=7), "files": [recorded], "at": at, "$odd": b"\x00\x01", "n": (1, 2)}
    wire = json.loads(json.dumps(to_wire(value)))
    assert from_wire(wire) == {"id": uuid.UUID(int=7), "files": [recorded], "at": at, "$odd": b"\x00\x01", "n": [1, 2]}

    @dataclasses.dataclass
    class Unregistered:
        x: int

    with pytest.raises(TypeError, match="Unregistered is not registered"):
        to_wire(Unregistered(1))
    with pytest.raises(TypeError, match="a set cannot be sent"):
        to_wire({1, 2})


async def test_a_new_call_goes_to_the_least_loaded_node_still_taking_calls(redis: Any, replicas: Callable[..., Any]) -> None:
    await write_heartbeat(redis, node="busy/1", calls=50, max_calls=100)
    await write_heartbeat(redis, node="light/1", calls=3, max_calls=100, cpu_percent=5.0)
    await write_heartbeat(redis, node="cool/1", calls=4, max_calls=100, cpu_percent=1.0)
    await write_heartbeat(redis, node="full/1", calls=10, max_calls=10)
    await write_heartbeat(redis, node="leaving/1", calls=0, state="stopped")
    remote: RemoteMediaPlane = await replicas()
    tenant_id = uuid.uuid4()

    first = await remote.place_call(tenant_id=tenant_id, call_id=uuid.uuid4())
    # light now counts 3 + 1 placed = 4 %, as cool: the lower CPU wins the tie.
    second = await remote.place_call(tenant_id=tenant_id, call_id=uuid.uuid4())
    assert (first, second) == ("light/1", "cool/1")


async def test_no_live_node_answers_503_media_unavailable(replicas: Callable[..., Any]) -> None:
    remote: RemoteMediaPlane = await replicas()
    with pytest.raises(MediaUnavailable) as raised:
        await remote.place_call(tenant_id=uuid.uuid4(), call_id=uuid.uuid4())
    assert (raised.value.status, raised.value.code, raised.value.detail) == (503, "media_unavailable", "no media node is taking calls")


async def test_commands_run_on_the_calls_node_and_keep_the_media_planes_errors(node: MediaNode, replicas: Callable[..., Any]) -> None:
    remote: RemoteMediaPlane = await replicas()
    await remote.wait_for_nodes(lambda nodes: [n.node for n in nodes] == [node.node], timeout=5)
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    assert await remote.place_call(tenant_id=tenant_id, call_id=call_id) == node.node

    with pytest.raises(OfferRejected) as rejected:
        await remote.answer_leg(tenant_id=tenant_id, call_id=call_id, party="caller", offer_sdp="hello")
    with pytest.raises(OfferRejected) as locally:
        await node.media.answer_leg(tenant_id=tenant_id, call_id=call_id, party="caller", offer_sdp="hello")
    assert (rejected.value.code, rejected.value.detail) == (locally.value.code, locally.value.detail) == (
        "invalid_offer", "the offer is not an SDP session description"
    )
    await remote.bridge(tenant_id=tenant_id, call_id=call_id)
    assert node.calls == 1
    assert await remote.leg_states(tenant_id=tenant_id, call_id=call_id) == {}
    assert await remote.end_call(tenant_id=tenant_id, call_id=call_id) == []
    assert node.calls == 0
    assert not hasattr(remote, "leg_state")  # the in-process-only synchronous helper is not remote


async def test_a_command_to_a_node_that_does_not_answer_times_out_and_one_to_a_lost_node_fails_at_once(
    redis: Any, replicas: Callable[..., Any]
) -> None:
    reporting = asyncio.create_task(keep_reporting(redis, "mute/1"))  # reports, never takes its commands
    remote: RemoteMediaPlane = await replicas(command_timeouts_s={"bridge": 0.3})
    lost = asyncio.Event()

    async def on_node_lost(node: str) -> None:
        lost.set()

    remote.on_node_lost = on_node_lost
    await remote.wait_for_nodes(lambda nodes: len(nodes) == 1, timeout=5)
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    assert await remote.place_call(tenant_id=tenant_id, call_id=call_id) == "mute/1"

    started = time.monotonic()
    with pytest.raises(MediaUnavailable, match="media node mute/1 did not answer bridge within 0.3 s"):
        await remote.bridge(tenant_id=tenant_id, call_id=call_id)
    assert time.monotonic() - started >= 0.3  # it waited for the command's timeout (no upper bound: the box is noisy)

    reporting.cancel()
    await asyncio.wait_for(lost.wait(), 5)  # no heartbeat for 600 ms
    # A lost node's commands fail at once: this message comes from the lost-node check, never from a timeout.
    with pytest.raises(MediaUnavailable, match="the call's media node mute/1 is gone"):
        await remote.bridge(tenant_id=tenant_id, call_id=call_id)
    assert await remote.end_call(tenant_id=tenant_id, call_id=call_id) == []  # its legs went with it
    with pytest.raises(MediaUnavailable, match="no media node holds this call"):
        await remote.bridge(tenant_id=tenant_id, call_id=uuid.uuid4())


async def keep_reporting(redis: Any, node: str, **fields: Any) -> None:
    """A stand-in node's heartbeats, every 50 ms (pacing a fake node, not waiting for work)."""
    for seq in range(1, 100_000):
        await write_heartbeat(redis, node=node, seq=seq, **fields)
        await asyncio.sleep(0.05)


class Ticks:
    """Counts a replica's reads of the node table (one per monitor tick) and can make them fail."""

    def __init__(self, remote: RemoteMediaPlane, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read = remote.redis.hgetall
        self.down = False
        self.seen: asyncio.Queue[bool] = asyncio.Queue()
        monkeypatch.setattr(remote.redis, "hgetall", self._hgetall)

    async def _hgetall(self, *args: Any) -> Any:
        down = self.down
        try:
            if down:
                raise ConnectionError("Redis is down")
            return await self.read(*args)
        finally:
            self.seen.put_nowait(down)

    async def wait(self, count: int) -> None:
        """Wait for ``count`` reads that started after this call."""
        while not self.seen.empty():
            self.seen.get_nowait()
        for _ in range(count):
            await asyncio.wait_for(self.seen.get(), 5)


async def test_a_silent_node_is_ended_by_exactly_one_replica_and_fenced(redis: Any, replicas: Callable[..., Any]) -> None:
    await write_heartbeat(redis, node="ghost/1")
    ended: list[tuple[str, str]] = []
    done = asyncio.Event()
    planes = [await replicas(replica_id=name) for name in ("api-a", "api-b", "api-c")]
    for plane in planes:
        async def on_node_lost(node: str, replica: str = plane.replica_id) -> None:
            ended.append((replica, node))
            done.set()

        plane.on_node_lost = on_node_lost
    await asyncio.wait_for(done.wait(), 5)  # the 600 ms timeout and a few ticks
    await until(lambda: _not(redis.hexists(NODES, "ghost/1")), timeout=5, what="the lost node's report removed")
    for plane in planes:
        await plane.wait_for_nodes(lambda nodes: nodes == [], timeout=5)
    assert [node for _replica, node in ended] == ["ghost/1"]
    assert await redis.get(fence_key("ghost/1")) == ended[0][0]


async def test_calls_pinned_to_a_node_nobody_reports_are_ended_by_the_orphan_sweep(redis: Any, replicas: Callable[..., Any]) -> None:
    reporting = asyncio.create_task(keep_reporting(redis, "alive/1"))
    remote: RemoteMediaPlane = await replicas(orphan_sweep_s=0.2)
    lost: asyncio.Queue[str] = asyncio.Queue()
    remote.on_node_lost = lost.put
    sweeps: asyncio.Queue[None] = asyncio.Queue()

    async def live_call_nodes() -> set[str]:  # Call.media_node of the live calls
        sweeps.put_nowait(None)
        return {"alive/1", "vanished/1"}  # Redis lost vanished/1's report with its data

    remote.live_call_nodes = live_call_nodes
    try:
        assert await asyncio.wait_for(lost.get(), 5) == "vanished/1"
        assert await redis.get(fence_key("vanished/1")) == remote.replica_id
        for _ in range(3):
            await asyncio.wait_for(sweeps.get(), 5)
        assert lost.empty()
        assert [n.node for n in remote.nodes()] == ["alive/1"]
    finally:
        reporting.cancel()


async def test_a_restarted_node_supersedes_its_previous_incarnation_before_the_timeout(
    redis: Any, replicas: Callable[..., Any]
) -> None:
    # A silence timeout far longer than the wait below: only the newer incarnation can retire the old one in time.
    remote: RemoteMediaPlane = await replicas(node_timeout_s=60.0)
    lost: asyncio.Queue[str] = asyncio.Queue()
    remote.on_node_lost = lost.put
    await write_heartbeat(redis, node="media-a/old", node_id="media-a", started_at=1000.0)
    await remote.wait_for_nodes(lambda nodes: len(nodes) == 1, timeout=5)
    reporting = asyncio.create_task(keep_reporting(redis, "media-a/new", node_id="media-a", started_at=2000.0))
    try:
        # Two missed heartbeats (200 ms) with a newer incarnation reporting, not the 60 s silence timeout.
        assert await asyncio.wait_for(lost.get(), 10) == "media-a/old"
        await remote.wait_for_nodes(lambda nodes: [n.node for n in nodes] == ["media-a/new"], timeout=5)
    finally:
        reporting.cancel()


async def test_a_fenced_node_closes_its_calls_and_rejoins_under_a_new_name(
    node: MediaNode, redis: Any, replicas: Callable[..., Any]
) -> None:
    remote: RemoteMediaPlane = await replicas()
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    await remote.wait_for_nodes(lambda nodes: len(nodes) == 1, timeout=5)
    await remote.place_call(tenant_id=tenant_id, call_id=call_id)
    await remote.bridge(tenant_id=tenant_id, call_id=call_id)
    stale = node.node
    await redis.set(fence_key(stale), "api-x")  # what a replica does when it declares the node lost
    await redis.hdel(NODES, stale)
    nodes = await remote.wait_for_nodes(lambda nodes: [n.node_id for n in nodes] == ["node-a"] and nodes[0].node != stale, timeout=5)
    assert nodes[0].node == node.node
    assert node.calls == 0
    assert not await redis.hexists(NODES, stale)


async def test_leg_events_reach_one_replica_with_their_arguments_decoded(node: MediaNode, replicas: Callable[..., Any]) -> None:
    heard: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
    planes = [await replicas(replica_id=name) for name in ("api-a", "api-b")]
    for plane in planes:
        async def on_leg_closed(*args: Any, replica: str = plane.replica_id) -> None:
            await heard.put((replica, args))

        plane.on_leg_closed = on_leg_closed
    await asyncio.gather(*(p.wait_for_nodes(lambda nodes: len(nodes) == 1, timeout=5) for p in planes))
    await until(lambda: _group_exists(planes[0].redis), timeout=5, what="the events group")
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()

    await node.media.on_leg_closed(tenant_id, call_id, "caller")  # what the plane does when a leg fails

    replica, args = await asyncio.wait_for(heard.get(), 5)
    assert args == (tenant_id, call_id, "caller")
    assert replica in ("api-a", "api-b")
    # Acknowledged: no other replica will run it again.
    await until(lambda: _no_pending(planes[0].redis), timeout=5, what="the event acknowledged")
    assert heard.empty()


async def test_node_events_wait_in_order_while_redis_refuses_them(node: MediaNode, replicas: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    remote: RemoteMediaPlane = await replicas()
    heard: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    async def on_leg_closed(*args: Any) -> None:
        await heard.put(args)

    remote.on_leg_closed = on_leg_closed
    await until(lambda: _group_exists(remote.redis), timeout=5, what="the events group")
    real_xadd = node.redis.xadd

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(node.redis, "xadd", refused)
    tenant_id = uuid.uuid4()
    first, second = uuid.uuid4(), uuid.uuid4()
    await node.media.on_leg_closed(tenant_id, first, "caller")
    await node.media.on_leg_closed(tenant_id, second, "agent")
    assert len(node._backlog) == 2
    monkeypatch.setattr(node.redis, "xadd", real_xadd)  # Redis is back: the next heartbeat sends them
    assert await asyncio.wait_for(heard.get(), 5) == (tenant_id, first, "caller")
    assert await asyncio.wait_for(heard.get(), 5) == (tenant_id, second, "agent")


async def test_a_reply_redis_refuses_is_sent_again_while_the_replica_waits(node: MediaNode, replicas: Callable[..., Any],
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    remote: RemoteMediaPlane = await replicas()
    await remote.wait_for_nodes(lambda nodes: [n.node for n in nodes] == [node.node], timeout=5)
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    await remote.place_call(tenant_id=tenant_id, call_id=call_id)
    real_pipeline, refused = node.redis.pipeline, []

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        if len(refused) < 3:  # Redis restarting: the first three sends fail
            refused.append(1)
            raise ConnectionError("Redis is down")
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(node.redis, "pipeline", pipeline)
    assert await remote.leg_states(tenant_id=tenant_id, call_id=call_id) == {}  # answered, not timed out
    assert len(refused) == 3


async def test_no_node_is_declared_lost_while_the_control_plane_cannot_read_redis(
    node: MediaNode, replicas: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    remote: RemoteMediaPlane = await replicas(clock=lambda: now[0])
    lost: list[str] = []
    remote.on_node_lost = lambda n: _append(lost, n)
    await remote.wait_for_nodes(lambda nodes: len(nodes) == 1, timeout=5)
    ticks = Ticks(remote, monkeypatch)

    ticks.down = True
    await ticks.wait(1)
    now[0] += 60.0  # a minute of outage: every node is silent as far as this replica can tell
    await ticks.wait(3)
    with pytest.raises(MediaUnavailable, match="Redis does not answer"):
        await remote.place_call(tenant_id=uuid.uuid4(), call_id=uuid.uuid4())
    ticks.down = False
    await ticks.wait(2)
    now[0] += 0.5  # less than the timeout since Redis answered again
    await ticks.wait(2)
    assert lost == []
    assert [n.node for n in remote.nodes()] == [node.node]
    now[0] += 0.2  # the node's heartbeats were read at the new times: it is still alive
    await ticks.wait(2)
    assert lost == []


async def _append(items: list[str], item: str) -> None:
    items.append(item)


async def _not(awaitable: Any) -> bool:
    return not await awaitable


async def _no_pending(redis: Any) -> bool:
    return (await redis.xpending(EVENTS, "control-plane"))["pending"] == 0


async def _group_exists(redis: Any) -> bool:
    try:
        return any(group["name"] == "control-plane" for group in await redis.xinfo_groups(EVENTS))
    except Exception:
        return False


# --- the production shape: the API in-process, two `kefu media` processes ---------------------


@dataclasses.dataclass
class Seat:
    agent_id: uuid.UUID
    headers: dict[str, str]
    token: str


@dataclasses.dataclass
class Center:
    tenant_id: uuid.UUID
    admin: dict[str, str]
    widget: str
    ann: Seat
    ben: Seat


@dataclasses.dataclass
class Cluster:
    runtime: Runtime
    base: str
    http: httpx.AsyncClient
    nodes: dict[str, MediaNodeProcess]
    node_env: dict[str, str]
    recordings: Path

    @property
    def remote(self) -> RemoteMediaPlane:
        return self.runtime.components["media"]

    def process_of(self, node: str) -> MediaNodeProcess:
        return self.nodes[node.split("/")[0]]

    async def node_ids_live(self, *node_ids: str, timeout: float = 60) -> dict[str, str]:
        """Wait until these node ids report; their current names by id."""
        nodes = await self.remote.wait_for_nodes(lambda ns: set(node_ids) <= {n.node_id for n in ns}, timeout=timeout)
        return {n.node_id: n.node for n in nodes}

    async def rejoined(self, node: str, *, timeout: float) -> str:
        """Wait until the process that was ``node`` reports under a new name; that name."""
        node_id = node.split("/")[0]
        nodes = await self.remote.wait_for_nodes(lambda ns: any(n.node_id == node_id and n.node != node for n in ns), timeout=timeout)
        [again] = [n.node for n in nodes if n.node_id == node_id]
        return again

    async def call(self, tenant_id: uuid.UUID, call_id: str) -> Call:
        async with self.runtime.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == uuid.UUID(call_id)))
        assert call is not None
        return call

    async def events(self, tenant_id: uuid.UUID, call_id: str) -> list[CallEvent]:
        async with self.runtime.db.tenant_session(tenant_id=tenant_id) as session:
            return list(await session.scalars(
                select(CallEvent).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == uuid.UUID(call_id)).order_by(CallEvent.seq)
            ))


def production_settings(make_settings: Any, tmp_path: Path, redis_url: str, node_id: str) -> tuple[Settings, dict[str, str]]:
    env = {
        "KEFU_MODE": "production", "KEFU_REDIS_URL": redis_url, "KEFU_JWT_PRIVATE_KEY": private_key_pem(),
        "KEFU_MEDIA_ALLOW_LOOPBACK": "1", "KEFU_RECORDINGS_DIR": str(tmp_path / "recordings"),
    }
    settings = make_settings("postgres", **env, KEFU_NODE_ID=node_id)
    node_env = {
        **env, "KEFU_DATA_DIR": str(tmp_path / "node-data"), "KEFU_DATABASE_URL": settings.db.url,
        "KEFU_PLATFORM_DATABASE_URL": settings.db.platform_url,
    }
    return settings, node_env


@pytest.fixture
def production(make_settings: Any, tmp_path: Path, redis_url: str) -> tuple[Settings, dict[str, str]]:
    """The API's production settings on a fresh PostgreSQL database, and the media nodes' environment."""
    return production_settings(make_settings, tmp_path, redis_url, "api-1")


@pytest.fixture
async def cluster(production: tuple[Settings, dict[str, str]], tmp_path: Path) -> AsyncIterator[Cluster]:
    allow_loopback_host_candidates()  # the test's own peers offer 127.0.0.1 too
    settings, node_env = production
    nodes = {name: MediaNodeProcess(node_env, node_id=name, log_dir=tmp_path).start() for name in ("media-a", "media-b")}
    runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
    try:
        async with serving(create_app(runtime=runtime)) as base:
            assert isinstance(runtime.components["media"], RemoteMediaPlane)
            async with httpx.AsyncClient(base_url=f"http://{base}", timeout=30) as http:
                cluster = Cluster(runtime, base, http, nodes, node_env, tmp_path / "recordings")
                await cluster.node_ids_live("media-a", "media-b")
                yield cluster
    finally:
        for process in nodes.values():
            process.stop()


async def contact_center(c: Cluster) -> Center:
    runtime = c.runtime
    tenant_id = await create_tenant(runtime, f"acme-{uuid.uuid4().hex[:6]}")
    admin = bearer(runtime, tenant_id=tenant_id, user_id=await create_user(runtime, tenant_id, "admin@acme.test"), roles={"tenant_admin"})
    seats = []
    for name in ("Ann", "Ben"):
        response = await c.http.post("/api/v1/agents", json={"email": f"{name.lower()}@acme.test", "display_name": name}, headers=admin)
        assert response.status_code == 201, response.text
        body = response.json()
        await activate_user(runtime, tenant_id, uuid.UUID(body["user_id"]))
        headers = bearer(runtime, tenant_id=tenant_id, user_id=uuid.UUID(body["user_id"]), roles={"agent"})
        seats.append(Seat(uuid.UUID(body["id"]), headers, headers["Authorization"].split()[1]))
    queue = (await c.http.post("/api/v1/queues", json={"name": "Support"}, headers=admin)).json()
    members = {"agent_ids": [str(s.agent_id) for s in seats]}
    assert (await c.http.put(f"/api/v1/queues/{queue['id']}/members", json=members, headers=admin)).status_code == 200
    entry = (await c.http.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=admin)).json()
    return Center(tenant_id, admin, entry["widget_key"], seats[0], seats[1])


async def go_ready(c: Cluster, seat: Seat) -> None:
    assert (await c.http.post("/api/v1/agent/session", headers=seat.headers)).status_code in (200, 201)
    response = await c.http.put("/api/v1/agent/status", json={"status": "available"}, headers=seat.headers)
    assert response.status_code == 200, response.text


async def call_in(c: Cluster, center: Center, peer: ClientPeer, name: str) -> dict[str, Any]:
    response = await c.http.post(f"/api/v1/widget/{center.widget}/calls", json={"caller_name": name, "offer_sdp": await peer.offer()})
    assert response.status_code == 201, response.text
    body = response.json()
    await peer.accept(body["answer_sdp"])
    return body


async def answer(c: Cluster, seat: Seat, call_id: str, peer: ClientPeer) -> None:
    response = await c.http.post(f"/api/v1/agent/calls/{call_id}/answer", json={"offer_sdp": await peer.offer()}, headers=seat.headers)
    assert response.status_code == 200, response.text
    await peer.accept(response.json()["answer_sdp"])


async def hears(peer: ClientPeer) -> float:
    await asyncio.wait_for(peer.connected.wait(), 15)
    return dominant_frequency(await peer.listen(1.0, timeout=15))


async def agent_state(c: Cluster, seat: Seat) -> dict[str, Any]:
    return (await c.http.get("/api/v1/agent/state", headers=seat.headers)).json()


async def next_frame(socket: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if predicate(frame):
                return frame


@pytest.mark.postgres
async def test_calls_are_placed_on_the_less_loaded_node_and_carry_audio_events_and_recordings(cluster: Cluster) -> None:
    c = cluster
    center = await contact_center(c)
    await go_ready(c, center.ann)
    caller, agent, second_caller = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ), ClientPeer(CALLER_HZ)
    try:
        first = await call_in(c, center, caller, "Li Lei")
        first_node = (await c.call(center.tenant_id, first["call_id"])).media_node
        assert first_node in {n.node for n in c.remote.nodes()}
        await answer(c, center.ann, first["call_id"], agent)
        assert abs(await hears(caller) - AGENT_HZ) < 20
        assert abs(await hears(agent) - CALLER_HZ) < 20

        # The node with the call reports it; the next call goes to the other node.
        await c.remote.wait_for_nodes(lambda ns: {(n.node, n.calls) for n in ns} >= {(first_node, 1)}, timeout=10)
        second = await call_in(c, center, second_caller, "Han Meimei")  # nobody free: it waits in the queue
        second_node = (await c.call(center.tenant_id, second["call_id"])).media_node
        assert second_node in {n.node for n in c.remote.nodes()} - {first_node}
        await asyncio.wait_for(second_caller.connected.wait(), 15)

        # A leg event travels back: the waiting caller closes its page, the call ends as abandoned.
        await second_caller.close()
        await until(lambda: _ended(c, center.tenant_id, second["call_id"]), timeout=10, what="the abandoned call ended")
        assert (await c.call(center.tenant_id, second["call_id"])).end_reason == "abandoned"

        assert (await c.http.post(f"/api/v1/agent/calls/{first['call_id']}/hangup", headers=center.ann.headers)).status_code == 204
        call = await c.call(center.tenant_id, first["call_id"])
        assert (call.status, call.end_reason) == ("ended", "agent_hangup")
        recordings = (await c.http.get(f"/api/v1/calls/{first['call_id']}/recordings", headers=center.admin)).json()
        assert sorted(r["party"] for r in recordings) == ["agent", "caller"]
        assert all(r["duration_ms"] > 500 for r in recordings)
        for party in ("caller", "agent"):
            assert (c.recordings / str(center.tenant_id) / first["call_id"] / f"{party}.ogg").stat().st_size > 1000
        types = [e.type for e in await c.events(center.tenant_id, first["call_id"])]
        assert types[-3:] == ["ended", "recording_saved", "recording_saved"]
        await c.remote.wait_for_nodes(lambda ns: sum(n.calls for n in ns) == 0, timeout=10)
    finally:
        for peer in (caller, agent, second_caller):
            await peer.close()


async def _ended(c: Cluster, tenant_id: uuid.UUID, call_id: str) -> bool:
    return (await c.call(tenant_id, call_id)).status == "ended"


@pytest.mark.postgres
async def test_a_killed_node_s_calls_end_within_10_s_while_the_other_node_s_call_carries_on(cluster: Cluster) -> None:
    c = cluster
    center = await contact_center(c)
    peers = [ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ), ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)]
    doomed_caller, doomed_agent, lucky_caller, lucky_agent = peers
    try:
        await go_ready(c, center.ann)
        doomed = await call_in(c, center, doomed_caller, "Doomed")
        await answer(c, center.ann, doomed["call_id"], doomed_agent)
        doomed_node = (await c.call(center.tenant_id, doomed["call_id"])).media_node
        await c.remote.wait_for_nodes(lambda ns: {(n.node, n.calls) for n in ns} >= {(doomed_node, 1)}, timeout=10)
        await go_ready(c, center.ben)
        lucky = await call_in(c, center, lucky_caller, "Lucky")
        await answer(c, center.ben, lucky["call_id"], lucky_agent)
        lucky_node = (await c.call(center.tenant_id, lucky["call_id"])).media_node
        assert lucky_node != doomed_node
        assert abs(await hears(doomed_caller) - AGENT_HZ) < 20
        assert abs(await hears(lucky_caller) - AGENT_HZ) < 20

        socket_url = f"ws://{c.base}"
        async with websockets.connect(f"{socket_url}/ws/caller/{doomed['call_id']}?caller_token={doomed['caller_token']}") as caller_socket, \
                websockets.connect(f"{socket_url}/ws/agent?access_token={center.ann.token}") as agent_socket:
            assert (await next_frame(caller_socket, lambda f: True))["status"] == "connected"
            assert (await next_frame(agent_socket, lambda f: True))["state"] == "on_call"

            killed = c.process_of(doomed_node)
            killed.kill()
            started = time.monotonic()
            await until(lambda: _ended(c, center.tenant_id, doomed["call_id"]), timeout=10, what="the killed node's call ended")
            elapsed = time.monotonic() - started
            print(f"\nkill -9 to call ended: {elapsed:.2f} s")
            assert elapsed < 10

            ended = await next_frame(caller_socket, lambda f: f.get("status") == "ended")
            assert ended == {"type": "call.state", "call_id": doomed["call_id"], "status": "ended", "reason": "media_lost"}
            told = await next_frame(agent_socket, lambda f: f["type"] == "call.ended")
            assert told == {"type": "call.ended", "call_id": doomed["call_id"], "reason": "media_lost"}

        call = await c.call(center.tenant_id, doomed["call_id"])
        assert (call.status, call.end_reason, call.ended_at is not None) == ("ended", "media_lost", True)
        events = await c.events(center.tenant_id, doomed["call_id"])
        assert [(e.type, e.actor, e.data) for e in events if e.type == "ended"] == [
            ("ended", "media", {"reason": "media_lost", "previous_status": "connected"})
        ]
        cdr = (await c.http.get(f"/api/v1/calls/{doomed['call_id']}", headers=center.admin)).json()
        assert (cdr["end_reason"], cdr["ended_at"] is not None) == ("media_lost", True)
        ann = await agent_state(c, center.ann)
        assert (ann["state"], ann["system_state"], ann["current_call_id"]) == ("available", "idle", None)

        # The other node's call goes on, audio included.
        assert (await c.call(center.tenant_id, lucky["call_id"])).status == "connected"
        assert abs(await hears(lucky_caller) - AGENT_HZ) < 20
        assert abs(await hears(lucky_agent) - CALLER_HZ) < 20
        assert [n.node for n in c.remote.nodes()] == [lucky_node]

        # The node comes back under a new name and, being empty, takes the next call.
        killed.start()
        back = await c.rejoined(doomed_node, timeout=60)
        next_caller = ClientPeer(CALLER_HZ)
        peers.append(next_caller)
        following = await call_in(c, center, next_caller, "Next")
        assert (await c.call(center.tenant_id, following["call_id"])).media_node == back
    finally:
        for peer in peers:
            await peer.close()


@pytest.mark.postgres
async def test_a_new_call_placed_on_a_node_that_dies_before_answering_goes_to_another_node(cluster: Cluster) -> None:
    c = cluster
    center = await contact_center(c)
    # A node that reports, is the first choice (idle, first by name) and never takes a command.
    reporting = asyncio.create_task(keep_reporting(c.remote.redis, "a-mute/1", max_calls=100_000, cpu_percent=0.0))
    caller = ClientPeer(CALLER_HZ)
    try:
        await c.remote.wait_for_nodes(lambda ns: "a-mute/1" in {n.node for n in ns}, timeout=10)
        started = time.monotonic()
        post = asyncio.create_task(c.http.post(f"/api/v1/widget/{center.widget}/calls",
                                               json={"caller_name": "Li Lei", "offer_sdp": await caller.offer()}))


        async def asked() -> bool:  # the caller's leg is waiting in the node's command list
            return bool(await c.remote.redis.llen("kefu:media:commands:a-mute/1"))

        await until(asked, timeout=10, what="the caller's leg asked of the mute node")
        reporting.cancel()  # it dies with the leg asked of it
        response = await post
        assert response.status_code == 201, response.text
        elapsed = time.monotonic() - started
        print(f"\nplaced on a node that died, answered by another after {elapsed:.1f} s")
        assert elapsed < 15  # declared lost (about 5 s), not the command's 15 s timeout
        body = response.json()
        await caller.accept(body["answer_sdp"])
        await asyncio.wait_for(caller.connected.wait(), 15)
        call = await c.call(center.tenant_id, body["call_id"])
        assert (call.status, call.media_node.split("/")[0]) in {("queued", "media-a"), ("queued", "media-b")}
    finally:
        reporting.cancel()
        await caller.close()


@pytest.mark.postgres
async def test_a_frozen_node_is_ended_once_by_two_replicas_then_fenced_and_rejoins(cluster: Cluster) -> None:
    c = cluster
    second = Runtime.build(dataclasses.replace(c.runtime.settings, node_id="api-2"), process_roles=frozenset({"api"}))
    center = await contact_center(c)
    caller, agent = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)
    handled: list[tuple[str, str]] = []
    try:
        async with serving(create_app(runtime=second)):
            for plane in (c.remote, second.components["media"]):
                end_node = plane.on_node_lost

                async def counted(node: str, end_node: Any = end_node, replica: str = plane.replica_id) -> object:
                    handled.append((replica, node))
                    return await end_node(node)

                plane.on_node_lost = counted
            await go_ready(c, center.ann)
            call = await call_in(c, center, caller, "Frozen")
            await answer(c, center.ann, call["call_id"], agent)
            await asyncio.wait_for(caller.connected.wait(), 15)
            node = (await c.call(center.tenant_id, call["call_id"])).media_node
            await second.components["media"].wait_for_nodes(lambda ns: node in {n.node for n in ns}, timeout=10)
            frozen = c.process_of(node)

            frozen.signal(signal.SIGSTOP)  # alive but silent: as if cut off from Redis
            started = time.monotonic()
            await until(lambda: _ended(c, center.tenant_id, call["call_id"]), timeout=10, what="the frozen node's call ended")
            print(f"\nSIGSTOP to call ended: {time.monotonic() - started:.2f} s")
            ended = [e for e in await c.events(center.tenant_id, call["call_id"]) if e.type == "ended"]
            assert [(e.data["reason"]) for e in ended] == ["media_lost"]
            assert [n for _replica, n in handled] == [node]
            redis = c.remote.redis
            assert await redis.get(fence_key(node)) == handled[0][0]

            frozen.signal(signal.SIGCONT)  # its next heartbeat is refused: it drops the call and rejoins
            await c.rejoined(node, timeout=10)
            await asyncio.wait_for(caller.closed.wait(), 15)  # the node closed the caller's leg
            assert [n for _replica, n in handled] == [node]
            ann = await agent_state(c, center.ann)
            assert (ann["system_state"], ann["current_call_id"]) == ("idle", None)
    finally:
        await caller.close()
        await agent.close()


def test_kefu_media_explains_itself_and_refuses_the_embedded_default(tmp_path: Path) -> None:
    help_text = subprocess.run([KEFU, "media", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "Run a media node for production API replicas" in help_text
    assert "docs/media-nodes.md" in help_text
    env = {"PATH": "/usr/bin:/bin", "KEFU_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([KEFU, "media"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "the embedded default runs its media inside 'kefu serve'" in result.stderr
