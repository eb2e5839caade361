"""Calibration sessions (answers hidden until one's own is submitted, the spread per question
and of the totals) and the exemplary-call library (filed by reviewers, browsed and played by agents)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from qa_support import GOOD_ANSWERS, PERFECT_ANSWERS, World, audit_actions, make_call, scorecard, table_rows

from kefu.tenants.clock import ManualClock
from kefu.tenants.qa.models import QaLibraryItem, QaLibraryTag
from kefu.tenants.qa.services import recording_in_library


async def test_reviewers_see_a_calibrations_results_only_after_submitting_their_own(client: Any, acme: World) -> None:
    scorecard_id, version_id = await scorecard(client, acme)
    call = await make_call(acme, acme.alice)
    created = await client.post("/api/v1/qa/calibrations", json={"call_id": str(call), "scorecard_id": scorecard_id,
                                "reviewer_ids": [str(acme.rita.user_id), str(acme.sam.user_id)]}, headers=acme.rita.headers)
    assert created.status_code == 201, created.text
    session = created.json()
    assert (session["scorecard_version_id"], [r["submitted"] for r in session["reviewers"]]) == (version_id, [False, False])

    rita = await client.post(f"/api/v1/qa/calibrations/{session['id']}/evaluation", headers=acme.rita.headers)
    assert (rita.status_code, rita.json()["qa_type"], rita.json()["calibration_id"]) == (201, "calibration", session["id"])
    outsider = await client.post(f"/api/v1/qa/calibrations/{session['id']}/evaluation", headers=acme.admin.headers)
    assert (outsider.status_code, outsider.json()["code"]) == (403, "not_a_participant")
    await client.post(f"/api/v1/qa/evaluations/{rita.json()['id']}/submit", json={"answers": GOOD_ANSWERS}, headers=acme.rita.headers)

    sam = await client.post(f"/api/v1/qa/calibrations/{session['id']}/evaluation", headers=acme.sam.headers)
    hidden = await client.get(f"/api/v1/qa/calibrations/{session['id']}/results", headers=acme.sam.headers)
    assert (hidden.status_code, hidden.json()["code"]) == (403, "calibration_results_hidden")
    peek = await client.get(f"/api/v1/qa/evaluations/{rita.json()['id']}", headers=acme.sam.headers)
    assert (peek.status_code, peek.json()["code"]) == (404, "not_found")
    listed = (await client.get(f"/api/v1/qa/evaluations?call_id={call}", headers=acme.sam.headers)).json()
    assert [e["id"] for e in listed["items"]] == [sam.json()["id"]]
    await client.post(f"/api/v1/qa/evaluations/{sam.json()['id']}/submit", json={"answers": PERFECT_ANSWERS}, headers=acme.sam.headers)

    results = (await client.get(f"/api/v1/qa/calibrations/{session['id']}/results", headers=acme.sam.headers)).json()
    assert (results["submitted"], results["invited"]) == (2, 2)
    by_id = {q["question_id"]: q for q in results["questions"]}
    assert sorted((a["reviewer_name"], a["value"]) for a in by_id["accuracy"]["answers"]) == [("Rita", 4), ("Sam", 5)]
    assert by_id["accuracy"]["spread"] == {"min": 75.0, "max": 100.0, "range": 25.0, "mean": 87.5, "stdev": 12.5}
    assert (by_id["greeted"]["agreed"], by_id["summarised"]["agreed"], by_id["summarised"]["spread"]["range"]) == (True, False, 100.0)
    assert results["total_spread"] == {"min": 52.5, "max": 100.0, "range": 47.5, "mean": 76.25, "stdev": 23.75}
    assert (await client.get(f"/api/v1/qa/calibrations/{session['id']}/results", headers=acme.sue.headers)).status_code == 200
    # Calibrations measure reviewers: the agent never sees them, they close no work and count in no report.
    assert (await client.get("/api/v1/agent/qa/evaluations", headers=acme.alice.headers)).json()["items"] == []
    closed = await client.post(f"/api/v1/qa/calibrations/{session['id']}/close", headers=acme.rita.headers)
    assert closed.json()["status"] == "closed"


async def test_a_calibration_needs_two_reviewers_of_the_tenant_and_a_recorded_call(client: Any, acme: World, globex: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    call = await make_call(acme, acme.alice)
    reviewers = [str(acme.rita.user_id), str(acme.sam.user_id)]
    for body, status, code in (
        ({"call_id": str(call), "reviewer_ids": [str(acme.rita.user_id)]}, 400, "invalid_reviewers"),
        ({"call_id": str(call), "reviewer_ids": [str(acme.rita.user_id), str(globex.sam.user_id)]}, 404, "not_found"),
        ({"call_id": str(await make_call(globex, globex.alice)), "reviewer_ids": reviewers}, 404, "not_found"),
        ({"call_id": str(await make_call(acme, acme.alice, recorded=False)), "reviewer_ids": reviewers}, 409, "call_not_recorded"),
    ):
        response = await client.post("/api/v1/qa/calibrations", json={"scorecard_id": scorecard_id, **body}, headers=acme.rita.headers)
        assert (response.status_code, response.json()["code"]) == (status, code), body


async def test_reviewers_file_exemplary_calls_and_agents_browse_and_play_them(client: Any, acme: World, globex: World, clock: ManualClock) -> None:
    bobs_call = await make_call(acme, acme.bob)
    filed = await client.post("/api/v1/qa/library", json={"call_id": str(bobs_call), "kind": "excellent", "title": "Calming an angry caller",
                              "notes": "Listen from 01:30: de-escalation", "tags": ["Angry caller", "billing"]}, headers=acme.rita.headers)
    assert filed.status_code == 201, filed.text
    item = filed.json()
    assert (item["tags"], item["agent_name"], len(item["recording_ids"])) == (["angry caller", "billing"], "Bob", 2)
    clock.now += timedelta(minutes=1)
    other = await client.post("/api/v1/qa/library", json={"call_id": str(await make_call(acme, acme.alice)), "kind": "instructive",
                              "title": "Missed verification"}, headers=acme.sam.headers)
    assert other.status_code == 201

    async def titles(query: str) -> list[str]:
        response = await client.get(f"/api/v1/qa/library?{query}", headers=acme.alice.headers)
        assert response.status_code == 200, response.text
        return [i["title"] for i in response.json()["items"]]

    assert await titles("") == ["Missed verification", "Calming an angry caller"]
    assert await titles("kind=excellent") == ["Calming an angry caller"]
    assert await titles("tag=Billing") == ["Calming an angry caller"]
    assert await titles("q=DE-ESCALATION") == ["Calming an angry caller"]
    assert await titles("q=100%25") == []

    # Alice plays Bob's call from the library, though it is not her own.
    recordings = await client.get(f"/api/v1/qa/library/{item['id']}/recordings", headers=acme.alice.headers)
    assert (recordings.status_code, sorted(r["id"] for r in recordings.json())) == (200, sorted(item["recording_ids"]))
    async with acme.runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        assert await recording_in_library(session, tenant_id=acme.tenant_id, recording_id=uuid.UUID(recordings.json()[0]["id"]))
        assert not await recording_in_library(session, tenant_id=acme.tenant_id, recording_id=uuid.uuid4())
    assert (await client.get(f"/api/v1/calls/{bobs_call}/recordings", headers=acme.alice.headers)).status_code == 404

    refused = await client.post("/api/v1/qa/library", json={"call_id": str(bobs_call), "kind": "excellent", "title": "Mine"}, headers=acme.alice.headers)
    assert refused.status_code == 403
    twice = await client.post("/api/v1/qa/library", json={"call_id": str(bobs_call), "kind": "excellent", "title": "Again"}, headers=acme.rita.headers)
    assert (twice.status_code, twice.json()["code"]) == (409, "call_already_in_library")
    before = await table_rows(acme, QaLibraryItem)
    foreign = await client.post("/api/v1/qa/library", json={"call_id": str(await make_call(globex, globex.alice)), "kind": "excellent", "title": "x"},
                                headers=acme.rita.headers)
    assert (foreign.status_code, foreign.json()["code"]) == (404, "not_found")
    assert await table_rows(acme, QaLibraryItem) == before

    assert (await client.delete(f"/api/v1/qa/library/{item['id']}", headers=acme.rita.headers)).status_code == 204
    assert (await client.get(f"/api/v1/qa/library/{item['id']}/recordings", headers=acme.alice.headers)).status_code == 404
    assert len(await table_rows(acme, QaLibraryTag)) == 0
    assert [a for a, _ in await audit_actions(acme, "qa.library")] == ["qa.library.filed", "qa.library.filed", "qa.library.removed"]
