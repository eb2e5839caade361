"""Sampling policies and work lists: N calls per agent per period, filters, round-robin
reviewers, idempotent filling (by the API and by the scheduled job), items done when evaluated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from qa_support import GOOD_ANSWERS, T0, World, make_call, scorecard, table_rows

from kefu.platform.runtime import Runtime
from kefu.tenants.qa.models import QaSamplingPolicy, QaSamplingPolicyQueue, QaWorkItem
from kefu.tenants.qa.sampling import SamplingScheduler


async def make_policy(client: Any, world: World, scorecard_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Weekly", "scorecard_id": scorecard_id, "calls_per_agent": 2, "reviewer_ids": [str(world.rita.user_id), str(world.sam.user_id)],
            "seed": 42, **fields}
    response = await client.post("/api/v1/qa/sampling-policies", json=body, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def run(client: Any, world: World, policy_id: str, at: Any = None) -> dict[str, Any]:
    response = await client.post(f"/api/v1/qa/sampling-policies/{policy_id}/run", json={"at": at.isoformat()} if at else {}, headers=world.admin.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def items(client: Any, world: World, query: str = "status=all&limit=200") -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/qa/work-items?{query}", headers=world.admin.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_n_calls_per_agent_per_week_round_robin_and_a_second_run_adds_nothing(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    policy = await make_policy(client, acme, scorecard_id)
    for day in range(5):
        for agent in (acme.alice, acme.bob):
            await make_call(acme, agent, started=T0 + timedelta(days=day, hours=1))
    await make_call(acme, acme.alice, started=T0 - timedelta(days=1))  # last week
    await make_call(acme, acme.alice, started=T0 + timedelta(days=7))  # next week

    first = await run(client, acme, policy["id"])  # the clock is Tuesday of the same week
    assert (first["added"], first["period_start"], first["period_end"]) == (4, "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z")
    sampled = await items(client, acme)
    assert sorted(i["agent_name"] for i in sampled) == ["Alice", "Alice", "Bob", "Bob"]
    assert sorted(i["reviewer_id"] for i in sampled) == sorted([str(acme.rita.user_id)] * 2 + [str(acme.sam.user_id)] * 2)
    assert all(T0 <= T0.fromisoformat(i["call_started_at"]) < T0 + timedelta(days=7) for i in sampled)

    assert (await run(client, acme, policy["id"]))["added"] == 0
    assert await items(client, acme) == sampled

    # The same seed picks the same calls again (random across calls, reproducible).
    await client.delete(f"/api/v1/qa/sampling-policies/{policy['id']}", headers=acme.admin.headers)
    again = await make_policy(client, acme, scorecard_id, name="Weekly again")
    await run(client, acme, again["id"])
    assert sorted(i["call_id"] for i in await items(client, acme)) == sorted(i["call_id"] for i in sampled)


async def test_filters_keep_only_long_enough_recorded_calls_of_the_queues_and_dispositions(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    policy = await make_policy(client, acme, scorecard_id, calls_per_agent=10, min_duration_s=60, queue_ids=[str(acme.support)],
                               disposition_codes=["complaint"])
    wanted = await make_call(acme, acme.alice, queue=acme.support, talk_s=61, disposition="complaint")
    await make_call(acme, acme.alice, queue=acme.support, talk_s=59, disposition="complaint")  # too short
    await make_call(acme, acme.alice, queue=acme.sales, talk_s=300, disposition="complaint")  # other queue
    await make_call(acme, acme.alice, queue=acme.support, talk_s=300, disposition="resolved")  # other disposition
    await make_call(acme, acme.alice, queue=acme.support, talk_s=300, disposition="complaint", recorded=False)  # no recording
    await make_call(acme, acme.alice, queue=acme.support, talk_s=300, disposition="complaint", status="connected")  # not ended
    assert (await run(client, acme, policy["id"], at=T0))["added"] == 1
    assert [i["call_id"] for i in await items(client, acme)] == [str(wanted)]


async def test_the_work_list_starts_evaluations_and_evaluated_items_are_done(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    policy = await make_policy(client, acme, scorecard_id, reviewer_ids=[str(acme.rita.user_id)], calls_per_agent=1)
    call = await make_call(acme, acme.alice)
    await run(client, acme, policy["id"], at=T0)
    mine = (await client.get("/api/v1/qa/work-list", headers=acme.rita.headers)).json()
    [item] = mine["items"]
    assert (item["call_id"], item["status"], item["policy_name"], item["scorecard_id"], item["queue_name"]) == (str(call), "open", "Weekly", scorecard_id, "Sales")
    assert (await client.get("/api/v1/qa/work-list", headers=acme.sam.headers)).json()["items"] == []

    taken = await client.post(f"/api/v1/qa/work-items/{item['id']}/evaluation", headers=acme.sam.headers)
    assert (taken.status_code, taken.json()["code"]) == (403, "not_your_work_item")
    started = await client.post(f"/api/v1/qa/work-items/{item['id']}/evaluation", headers=acme.rita.headers)
    assert (started.status_code, started.json()["status"], started.json()["qa_type"]) == (201, "draft", "random")
    resumed = await client.post(f"/api/v1/qa/work-items/{item['id']}/evaluation", headers=acme.rita.headers)
    assert (resumed.status_code, resumed.json()["id"]) == (200, started.json()["id"])
    await client.post(f"/api/v1/qa/evaluations/{started.json()['id']}/submit", json={"answers": GOOD_ANSWERS}, headers=acme.rita.headers)
    assert (await client.get("/api/v1/qa/work-list", headers=acme.rita.headers)).json()["items"] == []
    [done] = (await client.get("/api/v1/qa/work-list?status=done", headers=acme.rita.headers)).json()["items"]
    assert (done["status"], done["evaluation_id"], done["evaluation_status"]) == ("done", started.json()["id"], "submitted")
    # An evaluated call is not sampled again.
    await client.patch(f"/api/v1/qa/sampling-policies/{policy['id']}", json={"calls_per_agent": 5}, headers=acme.admin.headers)
    assert (await run(client, acme, policy["id"], at=T0))["added"] == 0


async def test_the_scheduled_job_fills_work_lists_once_per_tick(client: Any, runtime: Runtime, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    await make_policy(client, acme, scorecard_id, calls_per_agent=1, period="day")
    for agent in (acme.alice, acme.bob):
        await make_call(acme, agent, started=T0)
    scheduler = next(s for s in runtime.services if isinstance(s, SamplingScheduler))
    assert await scheduler.tick(now=T0 + timedelta(hours=5)) == 1
    await runtime.components["jobs"].drain()
    assert len(await items(client, acme)) == 2
    assert await scheduler.tick(now=T0 + timedelta(hours=5, minutes=1)) == 1  # the same tick: the job's key is done
    await runtime.components["jobs"].drain()
    assert await scheduler.tick(now=T0 + timedelta(hours=7)) == 1  # a new tick, nothing new to sample
    await runtime.components["jobs"].drain()
    assert len(await items(client, acme)) == 2


async def test_each_tenants_scheduled_run_fills_only_its_own_work_lists_with_its_own_calls(
    client: Any, runtime: Runtime, acme: World, globex: World
) -> None:
    worlds = (acme, globex)
    for world in worlds:
        scorecard_id, _ = await scorecard(client, world)
        await make_policy(client, world, scorecard_id, calls_per_agent=5, period="day")
        for agent in (world.alice, world.bob, world.alice):
            await make_call(world, agent, started=T0)
    scheduler = next(s for s in runtime.services if isinstance(s, SamplingScheduler))
    now = T0 + timedelta(hours=5)
    tick = str(int(now.timestamp() // max(1, scheduler.interval_s)))

    # Acme's job of this tick alone: Acme's calls, Acme's reviewers, nothing written for Globex.
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        await scheduler.enqueue(session, acme.tenant_id, tick=tick, now=now)
    await runtime.components["jobs"].drain()
    acme_items = await items(client, acme)
    assert sorted(i["call_id"] for i in acme_items) == sorted(str(c) for c in acme.calls)
    assert {i["reviewer_id"] for i in acme_items} <= {str(acme.rita.user_id), str(acme.sam.user_id)}
    assert await table_rows(globex, QaWorkItem) == [] and await items(client, globex) == []
    acme_rows = await table_rows(acme, QaWorkItem)

    # The tick queues a job per tenant (the same key as Acme's, per tenant): Globex's fills Globex's lists only.
    assert await scheduler.tick(now=now) == 2
    await runtime.components["jobs"].drain()
    globex_items = await items(client, globex)
    assert sorted(i["call_id"] for i in globex_items) == sorted(str(c) for c in globex.calls)
    assert {i["reviewer_id"] for i in globex_items} <= {str(globex.rita.user_id), str(globex.sam.user_id)}
    assert {i["agent_name"] for i in globex_items} == {"Alice globex", "Bob globex"}
    assert await table_rows(acme, QaWorkItem) == acme_rows


async def test_policies_refuse_foreign_or_unfit_references_and_store_nothing(client: Any, acme: World, globex: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    foreign_scorecard, _ = await scorecard(client, globex)
    base = {"name": "Bad", "scorecard_id": scorecard_id, "calls_per_agent": 1, "reviewer_ids": [str(acme.rita.user_id)]}
    cases = [
        ({"queue_ids": [str(globex.sales)]}, 404, "not_found"),
        ({"reviewer_ids": [str(globex.rita.user_id)]}, 404, "not_found"),
        ({"scorecard_id": foreign_scorecard}, 404, "not_found"),
        ({"reviewer_ids": [str(acme.alice.user_id)]}, 400, "reviewer_cannot_evaluate"),
        ({"reviewer_ids": []}, 400, "invalid_reviewers"),
        ({"calls_per_agent": 0}, 400, "invalid_calls_per_agent"),
        ({"qa_type": "calibration"}, 400, "invalid_qa_type"),
    ]
    for change, status, code in cases:
        response = await client.post("/api/v1/qa/sampling-policies", json={**base, **change}, headers=acme.admin.headers)
        assert (response.status_code, response.json()["code"]) == (status, code), change
    assert await table_rows(acme, QaSamplingPolicy) == []
    policy = await make_policy(client, acme, scorecard_id, queue_ids=[str(acme.sales)])
    before = (await table_rows(acme, QaSamplingPolicy), await table_rows(acme, QaSamplingPolicyQueue))
    for change in ({"queue_ids": [str(globex.support)]}, {"name": "Renamed", "reviewer_ids": [str(globex.sam.user_id)]}):
        response = await client.patch(f"/api/v1/qa/sampling-policies/{policy['id']}", json=change, headers=acme.admin.headers)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert (await table_rows(acme, QaSamplingPolicy), await table_rows(acme, QaSamplingPolicyQueue)) == before
    assert (await client.post("/api/v1/qa/sampling-policies", json=base, headers=acme.rita.headers)).status_code == 403
    assert await table_rows(acme, QaWorkItem) == []
