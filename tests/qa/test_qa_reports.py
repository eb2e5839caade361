"""QA reports: average score, counts and auto-fail rate per agent, team, queue and question,
bucketed by day, week or month in the tenant's time zone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from qa_support import GOOD_ANSWERS, PERFECT_ANSWERS, T0, World, evaluate, make_call, scorecard

from kefu.tenants.clock import ManualClock

FAILED = [{**a, "value": "no"} if a["question_id"] == "verified" else a for a in GOOD_ANSWERS]
RANGE = "from=2026-11-01T00:00:00Z&to=2026-12-31T00:00:00Z"


async def report(client: Any, world: World, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/qa/reports?{RANGE}&{query}", headers=world.sue.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def rows(body: dict[str, Any]) -> list[tuple[str, str | None, int, float | None, float]]:
    return [(r["bucket_start"][:10], r["name"], r["evaluations"], r["average_score"], r["auto_fail_rate"]) for r in body["rows"]]


async def scored_week(client: Any, world: World, clock: ManualClock) -> str:
    """Alice (team Blue): 52.5 and an auto-fail (0) on Tuesday 24 November; Bob (Green): 100
    the same day and 52.5 on Tuesday 1 December, his second call in the Support queue."""
    scorecard_id, _ = await scorecard(client, world)
    await evaluate(client, world, world.rita, scorecard_id, [await make_call(world, world.alice)])
    await evaluate(client, world, world.rita, scorecard_id, [await make_call(world, world.alice)], answers=FAILED)
    await evaluate(client, world, world.sam, scorecard_id, [await make_call(world, world.bob)], answers=PERFECT_ANSWERS)
    clock.now += timedelta(days=7)
    await evaluate(client, world, world.sam, scorecard_id, [await make_call(world, world.bob, started=T0 + timedelta(days=7), queue=world.support)])
    return scorecard_id


async def test_averages_per_agent_and_team_by_week(client: Any, acme: World, clock: ManualClock) -> None:
    await scored_week(client, acme, clock)
    assert rows(await report(client, acme, "group_by=agent&bucket=week")) == [
        ("2026-11-23", "Alice", 2, 26.25, 0.5), ("2026-11-23", "Bob", 1, 100.0, 0.0), ("2026-11-30", "Bob", 1, 52.5, 0.0),
    ]
    teams = await report(client, acme, "group_by=team&bucket=month")
    assert rows(teams) == [("2026-11-01", "Blue", 2, 26.25, 0.5), ("2026-11-01", "Green", 1, 100.0, 0.0), ("2026-12-01", "Green", 1, 52.5, 0.0)]
    assert [(t["evaluations"], t["average_score"], t["auto_failed"], t["auto_fail_rate"]) for t in teams["totals"]] == [
        (3, 50.83, 1, 0.3333), (1, 52.5, 0, 0.0)]


async def test_averages_per_queue_and_question_by_day(client: Any, acme: World, clock: ManualClock) -> None:
    scorecard_id = await scored_week(client, acme, clock)
    assert rows(await report(client, acme, "group_by=queue&bucket=day")) == [
        ("2026-11-24", "Sales", 3, 50.83, 0.3333), ("2026-12-01", "Support", 1, 52.5, 0.0),
    ]
    questions = await report(client, acme, f"group_by=question&bucket=month&scorecard_id={scorecard_id}")
    november = {r["key"].split(":")[1]: r for r in questions["rows"] if r["bucket_start"].startswith("2026-11")}
    assert (november["verified"]["name"], november["verified"]["evaluations"], november["verified"]["average_score"]) == (
        "Verified the caller's identity", 3, 66.67)
    assert (november["verified"]["auto_failed"], november["verified"]["auto_fail_rate"]) == (1, 0.3333)
    assert (november["accuracy"]["average_score"], november["accuracy"]["min_score"], november["accuracy"]["max_score"]) == (83.33, 75.0, 100.0)


async def test_buckets_follow_the_tenants_time_zone(client: Any, acme: World, clock: ManualClock) -> None:
    from kefu.platform.models import Tenant

    async with acme.runtime.db.platform_session(reason="test: tenant time zone") as session:
        tenant = await session.get_one(Tenant, acme.tenant_id)
        tenant.time_zone = "Asia/Shanghai"
    clock.now = T0 + timedelta(hours=15, minutes=30)  # Monday 23 November, 00:30 on Tuesday in Shanghai
    scorecard_id, _ = await scorecard(client, acme)
    await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.alice)])
    body = await report(client, acme, "group_by=agent&bucket=day")
    assert (body["time_zone"], [r["bucket_start"] for r in body["rows"]]) == ("Asia/Shanghai", ["2026-11-23T16:00:00Z"])


async def test_a_bad_report_request_is_a_400_and_agents_get_none(client: Any, acme: World) -> None:
    response = await client.get("/api/v1/qa/reports?from=2026-12-31T00:00:00Z&to=2026-01-01T00:00:00Z", headers=acme.sue.headers)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_period")
    bad = await client.get("/api/v1/qa/reports?group_by=planet", headers=acme.sue.headers)
    assert bad.status_code == 400
    assert (await client.get("/api/v1/qa/reports", headers=acme.alice.headers)).status_code == 403
