"""Two `kefu api` replicas on one PostgreSQL database and one Redis: the ACD's
reservation holds across them, and pushes reach a desktop on the other replica.

The production shape, as separate processes: replicas ``api-a`` and ``api-b``
(same signing key and public URL, so one token works on both) and a media node
``media-a`` carrying the aiortc legs of the test's callers and agents.  Tests
read the outcome from the shared database.  The processes are started once for
the module (each test has its own tenant); a replica a test killed is started
again before the next test.  The last test: calls whose callers left end even when the node
holding their reconnect grace timers dies (the sweep reads the call log).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis as sync_redis
import websockets
from api_nodes_support import ApiCluster, build_cluster, cluster_env, next_frame
from media_support import ClientPeer
from nodes_support import private_key_pem, until

from kefu.platform.devservices import PostgresServer, RedisServer
from kefu.tenants.models import Agent, Call
from kefu.webrtc.ice import allow_loopback_host_candidates
from kefu.webrtc.remote import EVENTS, EVENTS_GROUP

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CALLER_HZ, AGENT_HZ = 440.0, 1000.0
NODES = ("api-a", "api-b")


@pytest.fixture(scope="module")
async def cluster(postgres: PostgresServer, pg_template: str, redis_server: RedisServer,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiCluster]:
    allow_loopback_host_candidates()  # the test's own peers offer 127.0.0.1 too
    tmp_path = tmp_path_factory.mktemp("two-api-nodes")
    database = postgres.create_database(template=pg_template)
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/6"  # a database of its own: other tests flush theirs
    sync_redis.Redis.from_url(redis_url).flushdb()
    env = cluster_env(database_url=postgres.url(database, "kefu_app"), platform_url=postgres.url(database, "kefu_platform"),
                      redis_url=redis_url, key_pem=private_key_pem(), tmp_path=tmp_path)
    c = build_cluster(env, api_names=NODES, media_names=("media-a",), log_dir=tmp_path)
    try:
        await c.start()
        yield c
    finally:
        await c.stop()


@pytest.fixture
async def nodes(cluster: ApiCluster) -> ApiCluster:
    """The cluster with both replicas up (a test may have killed one)."""
    await cluster.ensure_running()
    return cluster


def via(i: int) -> str:
    """Alternate between the replicas, as a round-robin load balancer does."""
    return NODES[i % 2]


def oldest_first(calls: list[Call]) -> list[Call]:
    """The ACD's waiting order (kefu.tenants.routing.waiting_order)."""
    return sorted(calls, key=lambda c: (-c.priority, c.queued_at, str(c.id)))


def assert_booked_once(agents: dict[uuid.UUID, Agent], calls: dict[uuid.UUID, Call]) -> list[Call]:
    """Every ringing agent's call rings at it and nowhere else; every call rings at most
    at one agent; free agents hold no call.  Returns the ringing calls."""
    ringing = [c for c in calls.values() if c.status == "ringing"]
    booked = {a.id: a.current_call_id for a in agents.values() if a.system_state == "ringing"}
    assert sorted(map(str, booked.values())) == sorted(str(c.id) for c in ringing), f"agents booked for {booked}, ringing calls {ringing}"
    for call in ringing:
        assert booked.get(call.agent_id) == call.id, f"call {call.id} rings at {call.agent_id}, which is booked for {booked.get(call.agent_id)}"
        assert call.ring_group is False
    for agent in agents.values():
        if agent.system_state != "ringing":
            assert (agent.system_state, agent.current_call_id) == ("idle", None)
    for call in calls.values():
        if call.status == "queued":
            assert (call.agent_id, call.offered_at) == (None, None)
    return ringing


async def test_racing_calls_and_agents_on_two_nodes_book_each_agent_once_and_the_oldest_calls_first(nodes: ApiCluster) -> None:
    c = nodes
    center = await c.contact_center([f"Agent{i}" for i in range(6)], via="api-a")
    tenant_id, seats = center.tenant_id, center.seats
    await asyncio.gather(*(c.log_in(via(i), seat) for i, seat in enumerate(seats)))
    callers = [ClientPeer(CALLER_HZ) for _ in range(12)]
    try:
        # Round one: twelve callers and two agents arrive at once, spread over both replicas.
        early, late = seats[:2], seats[2:]
        started = time.monotonic()
        await asyncio.gather(
            *(c.call_in(via(i), center, peer, f"Caller {i}") for i, peer in enumerate(callers)),
            *(c.go_ready(via(i + 1), seat) for i, seat in enumerate(early)),
        )
        print(f"\n12 calls and 2 agents through two replicas: {time.monotonic() - started:.2f} s")
        calls = await c.calls(tenant_id)
        assert len(calls) == 12
        ringing = assert_booked_once(await c.agents(tenant_id), calls)
        assert {call.agent_id for call in ringing} == {s.agent_id for s in early}
        waiting = oldest_first([call for call in calls.values() if call.status == "queued"])
        assert len(waiting) == 10

        # Round two: four agents go ready at once, two through each replica, racing for the
        # same waiting calls: they take the four oldest, one each.
        await asyncio.gather(*(c.go_ready(via(i), seat) for i, seat in enumerate(late)))
        calls = await c.calls(tenant_id)
        ringing = assert_booked_once(await c.agents(tenant_id), calls)
        assert len(ringing) == 6
        assert {call.agent_id for call in ringing} == {s.agent_id for s in seats}
        assert sorted(str(call.id) for call in ringing if call.agent_id in {s.agent_id for s in late}) == sorted(
            str(call.id) for call in waiting[:4]
        )
        assert sorted(str(call.id) for call in calls.values() if call.status == "queued") == sorted(str(call.id) for call in waiting[4:])

        # One offer per ringing call, naming the agent it rings at; none for the waiting ones.
        offered = await c.events(tenant_id, "offered")
        assert sorted((e.call_id, e.data["agent_id"]) for e in offered) == sorted((call.id, str(call.agent_id)) for call in ringing)
    finally:
        for peer in callers:
            await peer.close()


async def test_an_offer_made_on_one_node_reaches_a_desktop_on_the_other_and_the_answer_reaches_the_caller(nodes: ApiCluster) -> None:
    c = nodes
    center = await c.contact_center(["Ann"], via="api-a")
    [ann] = center.seats
    caller, agent = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)
    try:
        async with websockets.connect(c.ws("api-a", f"/ws/agent?access_token={ann.token}")) as desktop:
            assert (await next_frame(desktop, lambda f: True))["state"] == "offline"  # subscribed on api-a
            await c.log_in("api-a", ann)
            await c.go_ready("api-a", ann)
            await next_frame(desktop, lambda f: f.get("state") == "available")

            # Placed through api-b, which routes it to Ann (nobody else could: no call waited before).
            call = await c.call_in("api-b", center, caller, "Li Lei")
            offered = await next_frame(desktop, lambda f: f["type"] == "call.offered")
            assert offered == {"type": "call.offered", "call_id": call["call_id"], "caller_name": "Li Lei"}
            assert (await c.call(center.tenant_id, call["call_id"])).agent_id == ann.agent_id

            async with websockets.connect(c.ws("api-b", f"/ws/caller/{call['call_id']}?caller_token={call['caller_token']}")) as page:
                assert (await next_frame(page, lambda f: True))["status"] == "ringing"
                await c.answer("api-a", ann, call["call_id"], agent)
                connected = await next_frame(page, lambda f: f.get("type") == "call.state")
                assert connected == {"type": "call.state", "call_id": call["call_id"], "status": "connected"}
            assert (await c.call(center.tenant_id, call["call_id"])).status == "connected"
            await asyncio.wait_for(caller.connected.wait(), 15)
            await asyncio.wait_for(agent.connected.wait(), 15)
            response = await c.http["api-b"].post(f"/api/v1/agent/calls/{call['call_id']}/hangup", headers=ann.headers)
            assert response.status_code == 204, response.text
            assert await next_frame(desktop, lambda f: f["type"] == "call.ended") == {
                "type": "call.ended", "call_id": call["call_id"], "reason": "agent_hangup"
            }
    finally:
        await caller.close()
        await agent.close()


async def test_a_ring_left_by_a_killed_node_times_out_on_the_other_node_and_the_call_is_offered_again(nodes: ApiCluster) -> None:
    c = nodes
    center = await c.contact_center(["Ann", "Ben"], via="api-a")
    ann, ben = center.seats
    patched = await c.http["api-a"].patch(f"/api/v1/queues/{center.queue_id}", json={"ring_timeout_s": 5}, headers=center.admin)
    assert patched.status_code == 200, patched.text
    caller = ClientPeer(CALLER_HZ)
    try:
        await c.log_in("api-b", ann)
        await c.go_ready("api-b", ann)
        await c.log_in("api-a", ben)
        async with websockets.connect(c.ws("api-a", f"/ws/agent?access_token={ben.token}")) as desktop:
            await next_frame(desktop, lambda f: True)
            call = await c.call_in("api-b", center, caller, "Han Meimei")  # api-b routes it: it rings at Ann
            first = await c.call(center.tenant_id, call["call_id"])
            assert (first.status, first.agent_id) == ("ringing", ann.agent_id)
            await c.go_ready("api-a", ben)  # nothing waits: Ben stays free

            c.api["api-b"].kill()  # its timer for Ann's ring dies with it
            killed = time.monotonic()
            assert datetime.now(UTC) < first.offered_at + timedelta(seconds=5)  # before that timer was due
            offered = await next_frame(desktop, lambda f: f["type"] == "call.offered", timeout=20)
            print(f"\nkill -9 of the routing node to the call offered again: {time.monotonic() - killed:.2f} s")
            assert offered == {"type": "call.offered", "call_id": call["call_id"], "caller_name": "Han Meimei"}

        again = await c.call(center.tenant_id, call["call_id"])
        assert (again.status, again.agent_id) == ("ringing", ben.agent_id)
        assert (again.offered_at - first.offered_at).total_seconds() >= 5  # not before Ann's ring timed out
        agents = await c.agents(center.tenant_id)
        assert_booked_once(agents, await c.calls(center.tenant_id))
        assert (agents[ann.agent_id].status, agents[ann.agent_id].not_ready_reason, agents[ann.agent_id].system_state) == (
            "not_ready", "no_answer", "idle"
        )
        events = [(e.type, e.actor, e.data.get("agent_id")) for e in await c.events(center.tenant_id) if e.call_id == first.id]
        assert events[-4:] == [
            ("offered", "acd", str(ann.agent_id)), ("offer_timeout", "acd", str(ann.agent_id)), ("requeued", "acd", None),
            ("offered", "acd", str(ben.agent_id)),
        ]
    finally:
        await caller.close()


async def test_calls_whose_callers_left_end_even_when_the_node_holding_their_grace_timers_dies(nodes: ApiCluster) -> None:
    c = nodes
    center = await c.contact_center(["Ann"], via="api-a")
    callers = [ClientPeer(CALLER_HZ) for _ in range(2)]
    try:
        calls = [await c.call_in(via(i), center, peer, f"Caller {i}") for i, peer in enumerate(callers)]
        await asyncio.gather(*(asyncio.wait_for(peer.connected.wait(), 15) for peer in callers))
        c.api["api-a"].stop()  # api-b alone takes the media node's leg-closed events and arms the grace timers
        for peer in callers:
            await peer.close()
        await until(lambda: _disconnected_and_acknowledged(c, center.tenant_id, len(calls)), timeout=15,
                    what="api-b handling both callers' leg-closed events")
        c.api["api-b"].kill()
        await c.ensure_running()  # both replicas start again; their sweeps find the lost grace periods in the call log
        # RECONNECT_GRACE_S (8 s) since the legs closed and a sweep interval (5 s), with room to spare.
        await until(lambda: _all_ended(c, center.tenant_id), timeout=15, what="the abandoned calls ended")
    finally:
        for peer in callers:
            await peer.close()


async def _disconnected_and_acknowledged(c: ApiCluster, tenant_id: uuid.UUID, count: int) -> bool:
    if len(await c.events(tenant_id, "disconnected")) < count:
        return False
    return (await c.redis.xpending(EVENTS, EVENTS_GROUP))["pending"] == 0


async def _all_ended(c: ApiCluster, tenant_id: uuid.UUID) -> bool:
    return all(call.status == "ended" for call in (await c.calls(tenant_id)).values())
