"""GET /api/v1/wallboard: the figures of a hand-built floor per queue, per team and in
total; what a scoped supervisor, a report viewer and an agent get; another tenant's ids."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from tenants_support import Admin, MakeAgent
from test_acd import go_ready
from wallboard_support import Floor, agents, answer, by_name, caller_hangs_up, log_in, new_queue, new_team, place_call

from kefu.platform.runtime import Runtime
from kefu.tenants.clock import ManualClock


async def board(client: AsyncClient, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/v1/wallboard{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["waiting"], row["longest_wait_s"], row["answered"], row["answered_within"], row["abandoned"], row["short_abandoned"],
            row["service_level"], row["agents"])


async def busy_morning(client: AsyncClient, floor: Floor, clock: ManualClock) -> None:
    """Carol's Sales call is answered by Ann after 8 s; Dan gives up on Sales after 30 s and
    Gil after 5 s (a short abandon: left out of the service level); Eve and Fay wait in
    Support (45 s and 15 s) while Bob and Cai are not ready."""
    await go_ready(client, floor.ann)
    carol = await place_call(client, floor.sales_widget, "Carol")
    clock.now += timedelta(seconds=8)
    await answer(client, floor.ann, carol)
    dan = await place_call(client, floor.sales_widget, "Dan")
    clock.now += timedelta(seconds=30)
    await caller_hangs_up(client, dan)
    gil = await place_call(client, floor.sales_widget, "Gil")
    clock.now += timedelta(seconds=5)
    await caller_hangs_up(client, gil)
    for seat in (floor.bob, floor.cai):
        await log_in(client, seat)
    await place_call(client, floor.support_widget, "Eve")
    clock.now += timedelta(seconds=30)
    await place_call(client, floor.support_widget, "Fay")
    clock.now += timedelta(seconds=15)


async def test_the_snapshot_counts_a_hand_built_floor_per_queue_team_and_in_total(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, clock: ManualClock,
) -> None:
    floor = await Floor(client, runtime, acme).build(make_agent)
    await busy_morning(client, floor, clock)

    view = await board(client, acme.headers)
    assert view["scope"] == {"all": True, "queue_id": None, "team_id": None}
    assert view["at"] == clock.now.isoformat()
    assert (view["service_level_target_percent"], view["amber_points"]) == (80, 10)
    queues, teams = by_name(view["queues"]), by_name(view["teams"])
    assert [q["name"] for q in view["queues"]] == ["Sales", "Support"] and [t["name"] for t in view["teams"]] == ["Blue", "Red"]
    assert queues["Sales"]["id"] == floor.sales and teams["Red"]["id"] == floor.red
    assert figures(queues["Sales"]) == (0, 0, 1, 1, 2, 1, 50.0, agents(on_call=1))
    assert figures(queues["Support"]) == (2, 45, 0, 0, 0, 0, None, agents(not_ready=2))
    assert queues["Support"]["oldest_since"] == (clock.now - timedelta(seconds=45)).isoformat()
    assert (queues["Sales"]["target_s"], queues["Support"]["callbacks"]) == (20, 0)
    # A team's calls are those of the queues its agents serve: Red serves Sales (Ann) and Support (Bob).
    assert figures(teams["Red"]) == (2, 45, 1, 1, 2, 1, 50.0, agents(on_call=1, not_ready=1))
    assert figures(teams["Blue"]) == (2, 45, 0, 0, 0, 0, None, agents(not_ready=1))
    # Totals: every queue, every agent (Dee, in no queue or team, is offline).
    assert figures(view["totals"]) == (2, 45, 1, 1, 2, 1, 50.0, agents(on_call=1, not_ready=2, offline=1))
    assert (view["totals"]["id"], view["totals"]["name"], view["totals"]["target_s"]) == (None, None, 20)

    # A report viewer sees the whole tenant too.
    assert (await board(client, floor.rae_headers))["totals"] == view["totals"]


async def test_a_supervisor_sees_only_their_queues_and_teams_and_totals_over_them(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, clock: ManualClock,
) -> None:
    floor = await Floor(client, runtime, acme).build(make_agent)
    await busy_morning(client, floor, clock)

    sue = await board(client, floor.sue_headers)
    assert sue["scope"]["all"] is False
    assert [q["name"] for q in sue["queues"]] == ["Support"] and [t["name"] for t in sue["teams"]] == ["Red"]
    # Totals: Support and the queues Red serves (Sales, Support); Red's agents and Support's members.
    assert figures(sue["totals"]) == (2, 45, 1, 1, 2, 1, 50.0, agents(on_call=1, not_ready=2))

    only_support = await board(client, floor.sue_headers, f"?queue_id={floor.support}")
    assert ([q["name"] for q in only_support["queues"]], only_support["teams"]) == (["Support"], [])
    assert figures(only_support["totals"]) == (2, 45, 0, 0, 0, 0, None, agents(not_ready=2))
    only_red = await board(client, floor.sue_headers, f"?team_id={floor.red}")
    assert (only_red["queues"], [t["name"] for t in only_red["teams"]]) == ([], ["Red"])
    assert figures(only_red["totals"]) == (2, 45, 1, 1, 2, 1, 50.0, agents(on_call=1, not_ready=1))

    for query in (f"?queue_id={floor.sales}", f"?team_id={floor.blue}"):
        refused = await client.get(f"/api/v1/wallboard{query}", headers=floor.sue_headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "outside_supervision_scope"), query
    # An agent has no reports.read.
    refused = await client.get("/api/v1/wallboard", headers=floor.ann.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")


async def test_a_supervisor_without_assignments_gets_an_empty_board(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent,
) -> None:
    from wallboard_support import new_user

    await make_agent(acme, "Ann")
    _, headers = await new_user(client, runtime, acme, "Sam", "supervisor")
    view = await board(client, headers)
    assert (view["queues"], view["teams"]) == ([], [])
    assert figures(view["totals"]) == (0, 0, 0, 0, 0, 0, None, agents())


async def test_another_tenants_queue_or_team_answers_404_like_a_missing_one(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent,
) -> None:
    gus = await make_agent(globex, "Gus")
    globex_queue, _ = await new_queue(client, globex, "Globex sales", [gus])
    globex_team = await new_team(client, globex, "Globex team", [gus])
    await new_queue(client, acme, "Acme sales", [await make_agent(acme, "Ann")])
    for query in (f"?queue_id={globex_queue}", f"?team_id={globex_team}", f"?queue_id={uuid.uuid4()}", f"?team_id={uuid.uuid4()}"):
        response = await client.get(f"/api/v1/wallboard{query}", headers=acme.headers)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), query
    own = await board(client, acme.headers)
    assert globex_queue not in str(own) and "Globex" not in str(own)
    assert (await client.get("/api/v1/wallboard?queue_id=not-a-uuid", headers=acme.headers)).status_code == 400
