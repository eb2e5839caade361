"""/ws/wallboard: the board at once, then again after each call or agent change (waited
for on the socket itself); bursts coalesced into one computation; each socket cut to its
viewer's scope; refusals."""

from __future__ import annotations

import uuid
from datetime import timedelta

from httpx import AsyncClient
from litestar import Litestar
from tenants_support import Admin, MakeAgent
from wallboard_support import BoardSocket, Floor, answer, by_name, caller_hangs_up, log_in, new_queue, place_call, set_status

from kefu.platform.runtime import Runtime
from kefu.tenants.clock import ManualClock
from kefu.tenants.wallboard.live import Wallboard


def wallboard(runtime: Runtime) -> Wallboard:
    return runtime.components["wallboard"]


async def test_the_socket_gets_the_board_after_a_call_is_queued_answered_and_abandoned_and_after_agent_changes(
    client: AsyncClient, app: Litestar, runtime: Runtime, acme: Admin, make_agent: MakeAgent, clock: ManualClock,
) -> None:
    ann = await make_agent(acme, "Ann")
    sales, widget = await new_queue(client, acme, "Sales", [ann])
    socket = BoardSocket(app, acme.headers)
    first = await socket.frame()
    assert first["type"] == "snapshot" and [q["id"] for q in first["queues"]] == [sales]
    assert (first["totals"]["waiting"], first["totals"]["agents"]["offline"]) == (0, 1)

    await log_in(client, ann)
    await socket.until(lambda f: f["totals"]["agents"]["not_ready"] == 1)
    carol = await place_call(client, widget, "Carol")
    queued = await socket.until(lambda f: f["totals"]["waiting"] == 1)
    assert by_name(queued["queues"])["Sales"]["oldest_since"] == clock.now.isoformat()

    clock.now += timedelta(seconds=5)
    await set_status(client, ann, "available")  # Carol rings at Ann at once
    await socket.until(lambda f: f["totals"]["agents"]["ringing"] == 1)
    await answer(client, ann, carol)
    answered = await socket.until(lambda f: f["totals"]["answered"] == 1)
    assert (answered["totals"]["waiting"], answered["totals"]["agents"]["on_call"], answered["totals"]["service_level"]) == (0, 1, 100.0)

    dan = await place_call(client, widget, "Dan")
    await socket.until(lambda f: f["totals"]["waiting"] == 1)
    clock.now += timedelta(seconds=40)
    await caller_hangs_up(client, dan)
    abandoned = await socket.until(lambda f: f["totals"]["abandoned"] == 1)
    assert (abandoned["totals"]["waiting"], abandoned["totals"]["service_level"]) == (0, 50.0)
    await socket.close()
    assert wallboard(runtime).boards == {}  # the last socket closed the tenant's board


async def test_a_burst_of_changes_costs_one_computation_shared_by_every_socket(
    client: AsyncClient, app: Litestar, runtime: Runtime, acme: Admin, make_agent: MakeAgent,
) -> None:
    ann = await make_agent(acme, "Ann")
    await new_queue(client, acme, "Sales", [ann])
    sockets = [BoardSocket(app, acme.headers) for _ in range(3)]
    firsts = [await s.frame() for s in sockets]
    assert all(f == firsts[0] for f in firsts)
    board = wallboard(runtime).boards[acme.tenant_id]
    before = wallboard(runtime).computations
    for _ in range(20):
        board.changed()
    await log_in(client, ann)  # and a real change inside the same window
    updates = [await s.until(lambda f: f["totals"]["agents"]["not_ready"] == 1) for s in sockets]
    assert wallboard(runtime).computations == before + 1
    assert all(u == updates[0] for u in updates)
    for s in sockets:
        await s.close()


async def test_each_socket_sees_only_its_viewers_queues_and_teams(
    client: AsyncClient, app: Litestar, runtime: Runtime, acme: Admin, make_agent: MakeAgent,
) -> None:
    floor = await Floor(client, runtime, acme).build(make_agent)
    admin, sue = BoardSocket(app, acme.headers), BoardSocket(app, floor.sue_headers)
    sue_red = BoardSocket(app, floor.sue_headers, f"team_id={floor.red}")
    for socket in (admin, sue, sue_red):
        await socket.frame()

    await log_in(client, floor.cai)  # Cai: team Blue, queue Support (Sue's queue, not her team)
    everything = await admin.until(lambda f: f["totals"]["agents"]["not_ready"] == 1)
    assert [q["name"] for q in everything["queues"]] == ["Sales", "Support"] and [t["name"] for t in everything["teams"]] == ["Blue", "Red"]
    mine = await sue.until(lambda f: f["totals"]["agents"]["not_ready"] == 1)
    assert mine["scope"]["all"] is False
    assert ([q["name"] for q in mine["queues"]], [t["name"] for t in mine["teams"]]) == (["Support"], ["Red"])
    assert by_name(mine["queues"])["Support"]["agents"]["not_ready"] == 1
    assert floor.blue not in str(mine) and floor.sales not in str(mine["queues"])
    red_only = await sue_red.frame()  # the same change: Red's agents are Ann and Bob, still offline
    assert ([t["name"] for t in red_only["teams"]], red_only["queues"], red_only["totals"]["agents"]["not_ready"]) == (["Red"], [], 0)
    for socket in (admin, sue, sue_red):
        await socket.close()


async def test_the_socket_refuses_without_a_token_without_reports_or_for_ids_outside_the_viewers_reach(
    client: AsyncClient, app: Litestar, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent,
) -> None:
    floor = await Floor(client, runtime, acme).build(make_agent)
    gus = await make_agent(globex, "Gus")
    globex_queue, _ = await new_queue(client, globex, "Globex sales", [gus])
    cases = [
        (None, "", (4401, "unauthorized")),
        (floor.ann.headers, "", (4403, "permission_denied")),
        (floor.sue_headers, f"queue_id={floor.sales}", (4403, "outside_supervision_scope")),
        (floor.sue_headers, f"team_id={floor.blue}", (4403, "outside_supervision_scope")),
        (acme.headers, f"queue_id={globex_queue}", (4404, "not_found")),
        (acme.headers, f"team_id={uuid.uuid4()}", (4404, "not_found")),
        (acme.headers, "queue_id=not-a-uuid", (4404, "not_found")),
    ]
    for headers, query, expected in cases:
        assert await BoardSocket(app, headers, query).closed_with() == expected, query
    assert wallboard(runtime).boards == {}
    # Acme's own board names nothing of Globex's.
    socket = BoardSocket(app, acme.headers)
    frame = await socket.frame()
    assert globex_queue not in str(frame) and str(gus.agent_id) not in str(frame)
    await socket.close()


async def test_a_suspension_closes_the_tenants_wallboards(
    client: AsyncClient, app: Litestar, runtime: Runtime, acme: Admin, globex: Admin,
) -> None:
    from kefu.platform.events import TenantSuspended, emit

    acme_socket, globex_socket = BoardSocket(app, acme.headers), BoardSocket(app, globex.headers)
    await acme_socket.frame()
    await globex_socket.frame()
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        await emit(session, TenantSuspended(tenant_id=acme.tenant_id, reason="test"))
    assert await acme_socket.closed_with() == (4403, None)
    assert list(wallboard(runtime).boards) == [globex.tenant_id]  # Globex's board is untouched
    await globex_socket.close()
