"""Real calls through the production topology on one machine: two `kefu api` replicas,
two `kefu media` nodes and two `kefu worker` processes on one PostgreSQL and one Redis
(kefu.platform.devcluster; `make cluster-test`).

Agents sit on different replicas, callers arrive through both, the calls' audio runs
on both media nodes, and every view — the agents' desktops, the tenant's event
stream, the wallboard on either replica, the database — tells the same story.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from cluster_support import (
    AGENT_HZ,
    CALLER_HZ,
    METRICS_TOKEN,
    ApiCluster,
    ClientPeer,
    Desk,
    assert_cdr_closed,
    attach,
    call_events,
    hears,
    media_nodes_reporting,
    next_frame,
    scrape,
    total,
    until,
)

from kefu.platform.devcluster import Topology

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

VIA = ("api-a", "api-b")


@pytest.fixture(scope="module")
async def cluster(topology: Topology) -> AsyncIterator[ApiCluster]:
    async with attach(topology) as c:
        await until(lambda: media_nodes_reporting(c, 2), timeout=60, what="both media nodes reporting")
        yield c


def _board_figures(frame: dict[str, Any]) -> Any:
    """A wallboard snapshot without its clock."""
    return {k: v for k, v in frame.items() if k not in {"at"}}


async def test_every_process_is_ready_and_the_replicas_see_both_media_nodes(cluster: ApiCluster, topology: Topology) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for name, process in topology.processes.items():
            response = await http.get(f"{process.url}/ready")
            assert (response.status_code, response.json()["status"]) == (200, "ready"), (name, response.text)
    samples = await scrape(cluster, token=METRICS_TOKEN)
    assert total(samples, "kefu_media_nodes_live") == 4  # each replica sees both nodes


async def test_calls_spread_over_both_media_nodes_and_both_replicas_see_one_state(cluster: ApiCluster) -> None:
    c = cluster
    before = await scrape(c, token=METRICS_TOKEN)
    center = await c.contact_center(["Ann", "Ben", "Cat", "Dan"], via="api-a")
    desks = [await Desk(c, seat, VIA[i % 2]).open() for i, seat in enumerate(center.seats)]
    admin_token = center.admin["Authorization"].split()[1]
    boards = [await websockets.connect(c.ws(via, f"/ws/wallboard?access_token={admin_token}")) for via in VIA]
    events = await websockets.connect(c.ws("api-b", f"/ws/events?access_token={admin_token}"))
    callers = [ClientPeer(CALLER_HZ) for _ in desks]
    phones = {d.seat.agent_id: ClientPeer(AGENT_HZ) for d in desks}
    try:
        assert (await next_frame(events, lambda f: True))["type"] == "ready"
        for desk in desks:
            await desk.ready()

        # Four callers through alternating replicas; each call rings at one free agent,
        # whichever replica booked it, and the offer reaches that agent's own replica.
        calls = [await c.call_in(VIA[i % 2], center, peer, f"Caller {i}") for i, peer in enumerate(callers)]
        ringing: dict[str, Desk] = {}
        for desk in desks:
            offered = await desk.next(lambda f: f["type"] == "call.offered")
            ringing[offered["call_id"]] = desk
        assert set(ringing) == {call["call_id"] for call in calls}
        rows = {call["call_id"]: await c.call(center.tenant_id, call["call_id"]) for call in calls}
        assert {call_id: row.agent_id for call_id, row in rows.items()} == {
            call_id: desk.seat.agent_id for call_id, desk in ringing.items()}
        nodes = {row.media_node.split("/")[0] for row in rows.values()}
        assert nodes == {"media-a", "media-b"}, nodes  # the calls were spread over both media nodes

        # Each agent answers through its own replica; audio flows both ways on either node.
        for call_id, desk in ringing.items():
            await c.answer(desk.via, desk.seat, call_id, phones[desk.seat.agent_id])
        for caller, call in zip(callers, calls, strict=True):
            assert abs(await hears(caller) - AGENT_HZ) < 25
            assert abs(await hears(phones[ringing[call["call_id"]].seat.agent_id]) - CALLER_HZ) < 25

        # The same figures on both replicas' wallboards, pushed and fetched, and in the database.
        on_call = [await next_frame(board, lambda f: f.get("type") == "snapshot" and f["totals"]["agents"]["on_call"] == 4)
                   for board in boards]
        assert _board_figures(on_call[0])["totals"] == _board_figures(on_call[1])["totals"]
        fetched = [(await c.http[via].get("/api/v1/wallboard", headers=center.admin)).json() for via in VIA]
        assert fetched[0]["totals"] == fetched[1]["totals"] == on_call[0]["totals"]
        assert {row.status for row in (await c.calls(center.tenant_id)).values()} == {"connected"}

        # The tenant's event stream on api-b saw every call connect, whoever made the change.
        connected: set[str] = set()
        while connected != set(ringing):
            frame = await next_frame(events, lambda f: f.get("type") == "event" and f["event"]["event_type"] == "call.state_changed")
            if frame["event"]["data"]["status"] == "connected":
                connected.add(frame["event"]["data"]["call_id"])

        # Hang up through the *other* replica each time: any replica commands any call's node.
        for call_id, desk in ringing.items():
            other = VIA[1 - VIA.index(desk.via)]
            response = await c.http[other].post(f"/api/v1/agent/calls/{call_id}/hangup", headers=desk.seat.headers)
            assert response.status_code == 204, response.text
            assert await desk.next(lambda f: f["type"] == "call.ended") == {"type": "call.ended", "call_id": call_id, "reason": "agent_hangup"}
        for call_id in ringing:
            row = await c.call(center.tenant_id, call_id)
            assert_cdr_closed(row, await call_events(c, center.tenant_id, uuid.UUID(call_id)), reason="agent_hangup")
            recordings = (await c.http["api-b"].get(f"/api/v1/calls/{call_id}/recordings", headers=center.admin)).json()
            assert sorted(r["party"] for r in recordings) == ["agent", "caller"]
        idle = [await next_frame(board, lambda f: f.get("type") == "snapshot" and f["totals"]["agents"]["on_call"] == 0
                                 and f["totals"]["answered"] == 4) for board in boards]
        assert idle[0]["totals"] == idle[1]["totals"]
        agents = await c.agents(center.tenant_id)
        assert {(a.status, a.system_state) for a in agents.values()} == {("available", "idle")}

        # Both replicas' counters together saw each call once: started, set up on arrival, ended.
        after = await scrape(c, token=METRICS_TOKEN)
        for name, labels in (("kefu_calls_started_total", {"entry": "web"}), ("kefu_call_setup_seconds_count", {}),
                             ("kefu_calls_ended_total", {"reason": "agent_hangup"}), ("kefu_routing_offers_total", {})):
            assert total(after, name, **labels) - total(before, name, **labels) == 4, name
    finally:
        for peer in [*callers, *phones.values()]:
            await peer.close()
        for socket in [*boards, events]:
            await socket.close()
        await asyncio.gather(*(desk.close() for desk in desks))
