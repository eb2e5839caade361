"""Faults in the production topology, mid-traffic (kefu.platform.devcluster).

One topology for the module, one fault per test, in this order: a media node
killed, an API replica killed, a worker killed in the middle of a job,
PostgreSQL restarted, Redis restarted.  Throughout, ``Traffic`` keeps calls
flowing in one tenant (a caller through a live replica, answered, talked over,
hung up) while a second tenant holds long calls that must outlive the fault.
Each test shows what survives, that new calls succeed within seconds, and that
every call the API acknowledged ends with a closed CDR; the last test checks
that nothing committed was lost and that no agent or call is left stuck.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cluster_support import (
    AGENT_HZ,
    CALLER_HZ,
    METRICS_TOKEN,
    ApiCluster,
    ClientPeer,
    ContactCenter,
    Desk,
    Traffic,
    assert_cdr_closed,
    attach,
    call_events,
    hears,
    media_nodes_reporting,
    scrape,
    total,
    until,
)

from kefu.platform.devcluster import Topology

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

VIA = ("api-a", "api-b")
# A new call must succeed within this many seconds of a fault (media node loss is
# detected in about 5 s; a restarted database or Redis answers again in about 1 s).
RECOVERY_S = 15
TOPOLOGY_ENV = {
    # A worker silent this long is dead and its unfinished messages go back to the queue;
    # every fetch looks for such workers (production: 60 s, one fetch in a thousand).
    "KEFU_JOBS_HEARTBEAT_TIMEOUT_MS": "4000",
    "KEFU_JOBS_MAINTENANCE_PER_MILLION": "1000000",
    "KEFU_REPORTS_WEBHOOK_ALLOW_LOOPBACK": "1",
}


@dataclass
class Floor:
    """The module's two tenants: ``busy`` under steady traffic, ``long`` holding long calls."""

    c: ApiCluster
    busy: ContactCenter
    busy_desks: list[Desk]
    traffic: Traffic
    long: ContactCenter
    long_desks: list[Desk]


@pytest.fixture(scope="module")
async def floor(topology: Topology) -> AsyncIterator[Floor]:
    async with attach(topology) as c:
        await until(lambda: media_nodes_reporting(c, 2), timeout=60, what="both media nodes reporting")
        busy = await c.contact_center(["T1", "T2", "T3", "T4"], via="api-a")
        long = await c.contact_center(["Ann", "Ben"], via="api-b")
        busy_desks = [await Desk(c, seat, VIA[i % 2]).open() for i, seat in enumerate(busy.seats)]
        long_desks = [await Desk(c, seat, VIA[i % 2]).open() for i, seat in enumerate(long.seats)]
        for desk in [*busy_desks, *long_desks]:
            await desk.ready()
        traffic = Traffic(c, busy, busy_desks).start()
        try:
            yield Floor(c, busy, busy_desks, traffic, long, long_desks)
        finally:
            await traffic.stop()
            await asyncio.gather(*(desk.close() for desk in [*busy_desks, *long_desks]))


@dataclass
class LongCall:
    call_id: str
    desk: Desk
    caller: ClientPeer
    phone: ClientPeer

    async def close(self) -> None:
        await self.caller.close()
        await self.phone.close()


async def long_call(f: Floor, name: str, *, via: str = "api-a") -> LongCall:
    """A call in the ``long`` tenant, answered by the free agent it rings at."""
    c = f.c
    caller, phone = ClientPeer(CALLER_HZ), ClientPeer(AGENT_HZ)
    call = await c.call_in(via, f.long, caller, name)
    row = await c.call(f.long.tenant_id, call["call_id"])
    assert row.status == "ringing", row.status
    [desk] = [d for d in f.long_desks if d.seat.agent_id == row.agent_id]
    offered = await desk.next(lambda fr: fr["type"] == "call.offered")
    assert offered["call_id"] == call["call_id"]
    await c.answer(desk.via, desk.seat, call["call_id"], phone)
    assert abs(await hears(caller) - AGENT_HZ) < 25
    return LongCall(call["call_id"], desk, caller, phone)


async def still_talking(call: LongCall) -> None:
    """Both parties still hear each other, after the fault."""
    assert abs(await hears(call.caller) - AGENT_HZ) < 25
    assert abs(await hears(call.phone) - CALLER_HZ) < 25


async def hang_up(f: Floor, call: LongCall, *, via: str) -> None:
    response = await f.c.http[via].post(f"/api/v1/agent/calls/{call.call_id}/hangup", headers=call.desk.seat.headers)
    assert response.status_code == 204, response.text
    row = await f.c.call(f.long.tenant_id, call.call_id)
    assert_cdr_closed(row, await call_events(f.c, f.long.tenant_id, uuid.UUID(call.call_id)), reason="agent_hangup")


async def recovers(f: Floor, since: float, what: str) -> float:
    """Seconds from ``since`` to the first call the traffic completed after it."""
    await until(lambda: _completed_after(f.traffic, since), timeout=RECOVERY_S, what=f"a new call completing after {what}")
    first = min(o.at for o in f.traffic.outcomes if o.ok and o.started > since)
    return first - since


async def _completed_after(traffic: Traffic, since: float) -> bool:
    return traffic.succeeded_after(since)


async def test_a_killed_media_node_ends_its_calls_with_closed_cdrs_while_the_other_node_s_calls_go_on(
        floor: Floor, topology: Topology) -> None:
    f, c = floor, floor.c
    first = await long_call(f, "Li Lei")
    second = await long_call(f, "Han Meimei", via="api-b")  # at the other agent
    try:
        nodes = {call.call_id: (await c.call(f.long.tenant_id, call.call_id)).media_node for call in (first, second)}
        assert len({n.split("/")[0] for n in nodes.values()}) == 2, nodes  # one call on each node
        doomed, survivor = first, second
        victim = nodes[doomed.call_id].split("/")[0]
        await until(lambda: _completed_after(f.traffic, 0), timeout=60, what="traffic flowing")

        topology[victim].kill()
        killed = time.monotonic()
        await until(lambda: _ended(c, f.long.tenant_id, doomed.call_id), timeout=12, what="the dead node's call ended")
        print(f"\nkill -9 of {victim} to its call ended: {time.monotonic() - killed:.1f} s")
        row = await c.call(f.long.tenant_id, doomed.call_id)
        assert_cdr_closed(row, await call_events(c, f.long.tenant_id, uuid.UUID(doomed.call_id)), reason="media_lost")
        ended = {"type": "call.ended", "call_id": doomed.call_id, "reason": "media_lost"}
        assert await doomed.desk.next(lambda fr: fr["type"] == "call.ended") == ended
        agent = (await c.agents(f.long.tenant_id))[doomed.desk.seat.agent_id]
        assert (agent.status, agent.system_state, agent.current_call_id) == ("available", "idle", None)  # not stuck

        await still_talking(survivor)
        print(f"new call completed {await recovers(f, killed, 'the media node kill'):.1f} s after the kill")
        samples = await scrape(c, token=METRICS_TOKEN)
        assert total(samples, "kefu_media_nodes_lost_total") >= 1  # operators see the loss
        assert total(samples, "kefu_calls_ended_total", reason="media_lost") >= 1
        await hang_up(f, survivor, via="api-a")
    finally:
        await first.close()
        await second.close()
        topology[victim].start()
        await until(lambda: media_nodes_reporting(c, 2, besides=frozenset({nodes[doomed.call_id]})), timeout=60, what=f"{victim} back")


async def test_a_killed_api_replica_loses_no_call_and_its_agents_carry_on_through_the_other(floor: Floor, topology: Topology) -> None:
    f, c = floor, floor.c
    call = await long_call(f, "Wang Fang")
    on_a = call.desk
    if on_a.via != "api-a":  # the agent's page on the replica about to die
        await on_a.move("api-a")
    try:
        topology["api-a"].kill()
        killed = time.monotonic()
        # The call's audio never touched the replica: it goes on.
        await still_talking(call)
        # The agent's page reconnects through api-b (the balancer's other target) and finds its call.
        await on_a.move("api-b")
        state = (await c.http["api-b"].get("/api/v1/agent/state", headers=on_a.seat.headers)).json()
        assert state["current_call_id"] == call.call_id, state
        print(f"\nnew call completed {await recovers(f, killed, 'the API replica kill'):.1f} s after the kill")
        await hang_up(f, call, via="api-b")
        agent = (await c.agents(f.long.tenant_id))[on_a.seat.agent_id]
        assert (agent.status, agent.system_state) == ("available", "idle")
    finally:
        await call.close()
        topology["api-a"].start()
        topology.wait_ready("api-a")
        await on_a.move("api-a")


class HoldingReceiver:
    """A webhook receiver that holds its first request until released (a worker is killed
    meanwhile), and keeps every request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if len(receiver.requests) == 1:
                    receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/reports"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def process_connected_to(port: int, candidates: dict[str, int]) -> str:
    """Which of ``candidates`` (name → pid) holds a TCP connection to 127.0.0.1:``port``."""
    out = subprocess.run(["ss", "-tnpH", "dst", f"127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    pids = {int(pid) for pid in re.findall(r"pid=(\d+)", out)}
    [name] = [name for name, pid in candidates.items() if pid in pids]
    return name


async def test_a_worker_killed_in_the_middle_of_a_job_leaves_one_visible_effect(floor: Floor, topology: Topology) -> None:
    f, c = floor, floor.c
    receiver = HoldingReceiver()
    try:
        schedule = {"name": "Daily volume", "period": "yesterday", "cadence": "daily", "time": "06:00", "format": "csv",
                    "webhook_url": receiver.url}
        created = await c.http["api-a"].post("/api/v1/reports/schedules", json=schedule, headers=f.long.admin)
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]
        run = await c.http["api-b"].post(f"/api/v1/reports/schedules/{schedule_id}/run", headers=f.long.admin)
        assert run.status_code == 202, run.text

        async def first_request_held() -> bool:
            return len(receiver.requests) == 1

        await until(first_request_held, timeout=30, what="a worker posting the report")
        victim = process_connected_to(receiver.port, {name: topology[name].pid for name in topology.names("worker")})
        topology[victim].kill()  # mid-job: the report is sent, the delivery not yet recorded
        killed = time.monotonic()
        receiver.release.set()

        async def delivered() -> list[dict[str, Any]]:
            response = await c.http["api-a"].get(f"/api/v1/reports/schedules/{schedule_id}/deliveries", headers=f.long.admin)
            items = response.json()["deliveries"]
            return items if items and items[0]["status"] == "ok" else []

        deliveries = await until(delivered, timeout=60, what="the other worker finishing the delivery")
        print(f"\nkill -9 of {victim} mid-delivery to the report delivered by the other worker: {time.monotonic() - killed:.1f} s")
        assert len(deliveries) == 1 and deliveries[0]["attempts"] == 1, deliveries  # one delivery, recorded once
        # The receiver got the report twice (the first answer went to a dead worker), as the
        # same delivery: same id, same bytes — the duplicate it drops, one visible effect.
        assert len(receiver.requests) == 2
        (first_headers, first_body), (second_headers, second_body) = receiver.requests
        assert first_headers["x-kefu-delivery-id"] == second_headers["x-kefu-delivery-id"] == deliveries[0]["id"]
        assert first_body == second_body
        print(f"new call completed {await recovers(f, killed, 'the worker kill'):.1f} s after the kill")
    finally:
        receiver.close()
        if not topology["worker-a"].running():
            topology["worker-a"].start()
        if not topology["worker-b"].running():
            topology["worker-b"].start()


async def test_postgresql_restarted_mid_traffic_keeps_calls_and_every_committed_row(floor: Floor, topology: Topology) -> None:
    f, c = floor, floor.c
    call = await long_call(f, "Zhao Lei")
    try:
        before = await c.calls(f.busy.tenant_id)
        topology.postgres.restart()
        restarted = time.monotonic()
        await still_talking(call)
        print(f"\nnew call completed {await recovers(f, restarted, 'the PostgreSQL restart'):.1f} s after the restart")
        after = await c.calls(f.busy.tenant_id)
        assert set(before) <= set(after)  # every committed call is still there
        for call_id, row in before.items():
            if row.status == "ended":
                assert (after[call_id].status, after[call_id].end_reason) == ("ended", row.end_reason)
        await hang_up(f, call, via="api-b")
    finally:
        await call.close()


async def test_redis_restarted_mid_traffic_ends_no_call_and_pushes_resume(floor: Floor, topology: Topology) -> None:
    f, c = floor, floor.c
    call = await long_call(f, "Sun Li")
    [other] = [d for d in f.long_desks if d is not call.desk]
    if other.via == call.desk.via:
        await other.move(VIA[1 - VIA.index(call.desk.via)])
    try:
        topology.redis.restart()
        restarted = time.monotonic()
        await still_talking(call)
        print(f"\nnew call completed {await recovers(f, restarted, 'the Redis restart'):.1f} s after the restart")
        row = await c.call(f.long.tenant_id, call.call_id)
        assert row.status == "connected"  # nobody declared the call's node lost over the outage
        # An offer made by one replica reaches a desk on the other again (pub/sub resubscribed),
        # and the caller's hang-up, taken by that other replica, withdraws it there.
        second_caller = ClientPeer(CALLER_HZ)
        try:
            placed_via = VIA[1 - VIA.index(other.via)]
            second = await c.call_in(placed_via, f.long, second_caller, "Zhou Jie")
            offered = await other.next(lambda fr: fr["type"] == "call.offered")
            assert offered["call_id"] == second["call_id"]
            response = await c.http[other.via].post(f"/api/v1/widget/calls/{second['call_id']}/hangup",
                                                    headers={"X-Caller-Token": second["caller_token"]})
            assert response.status_code == 204, response.text
            await other.next(lambda fr: fr["type"] in {"call.ended", "call.withdrawn"} and fr["call_id"] == second["call_id"])
        finally:
            await second_caller.close()
        await hang_up(f, call, via="api-a")
    finally:
        await call.close()


async def test_after_the_faults_nothing_committed_is_lost_and_nothing_is_stuck(floor: Floor) -> None:
    f, c = floor, floor.c
    await f.traffic.stop()
    failures = [o.what for o in f.traffic.outcomes if not o.ok]
    completed = f.traffic.completed
    print(f"\ntraffic: {len(f.traffic.placed)} calls acknowledged, {len(completed)} completed, {len(failures)} attempts failed")
    for failure in failures:
        print("  failed:", failure)
    assert len(completed) >= 10

    async def all_ended() -> bool:
        calls = [*(await c.calls(f.busy.tenant_id)).values(), *(await c.calls(f.long.tenant_id)).values()]
        return all(call.status == "ended" for call in calls)

    # Calls cut by a fault end by their own rules (a caller gone, a ring timing out, a node lost).
    await until(all_ended, timeout=90, what="every call ended")
    calls = await c.calls(f.busy.tenant_id)
    assert {uuid.UUID(call_id) for call_id in f.traffic.placed} <= set(calls)  # every acknowledged call was kept
    for call_id in f.traffic.placed:
        assert_cdr_closed(calls[uuid.UUID(call_id)], await call_events(c, f.busy.tenant_id, uuid.UUID(call_id)))
    for call_id in completed:
        assert calls[uuid.UUID(call_id)].end_reason == "agent_hangup"

    async def nobody_stuck() -> bool:
        agents = [*(await c.agents(f.busy.tenant_id)).values(), *(await c.agents(f.long.tenant_id)).values()]
        return all(a.system_state == "idle" and a.current_call_id is None for a in agents)

    await until(nobody_stuck, timeout=60, what="every agent idle")


async def _ended(c: ApiCluster, tenant_id: uuid.UUID, call_id: str) -> bool:
    return (await c.call(tenant_id, call_id)).status == "ended"
