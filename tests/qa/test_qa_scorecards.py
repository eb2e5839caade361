"""Scorecards over the API: drafts checked when saved, immutable published versions,
evaluations keeping their version, retirement, permissions and the audit log."""

from __future__ import annotations

from typing import Any

from qa_support import GOOD_ANSWERS, STANDARD, World, audit_actions, evaluate, make_call, scorecard, table_rows

from kefu.tenants.qa.models import QaScorecard, QaScorecardVersion


async def test_a_draft_whose_weights_do_not_add_up_is_refused_naming_the_section_and_nothing_is_stored(client: Any, acme: World) -> None:
    sections = [dict(s) for s in STANDARD["sections"]]
    sections[2] = {**sections[2], "questions": [{**sections[2]["questions"][0], "weight": 90}]}
    response = await client.post("/api/v1/qa/scorecards", json={"name": "Broken", "document": {"sections": sections}}, headers=acme.admin.headers)
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["section"], body["path"]) == ("weights_do_not_add_up", "closing", "sections[2]")
    assert "Closing" in body["detail"]
    assert await table_rows(acme, QaScorecard) == []


async def test_editing_a_draft_with_weights_that_do_not_add_up_is_refused_and_the_draft_and_versions_stay(client: Any, acme: World) -> None:
    scorecard_id, v1 = await scorecard(client, acme)
    renamed = [{**s, "title": f"{s['title']} (revised)"} for s in STANDARD["sections"]]
    saved = await client.patch(f"/api/v1/qa/scorecards/{scorecard_id}", json={"document": {"sections": renamed}}, headers=acme.admin.headers)
    assert saved.status_code == 200, saved.text
    before = (await table_rows(acme, QaScorecard), await table_rows(acme, QaScorecardVersion), await audit_actions(acme))
    broken = [dict(s) for s in renamed]
    broken[1] = {**broken[1], "questions": [{**broken[1]["questions"][0], "weight": 60}, {**broken[1]["questions"][1], "weight": 30}]}
    response = await client.patch(f"/api/v1/qa/scorecards/{scorecard_id}", json={"name": "Broken now", "document": {"sections": broken}},
                                  headers=acme.admin.headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["code"], body["section"], body["path"]) == ("weights_do_not_add_up", "handling", "sections[1]")
    assert (await table_rows(acme, QaScorecard), await table_rows(acme, QaScorecardVersion), await audit_actions(acme)) == before
    shown = (await client.get(f"/api/v1/qa/scorecards/{scorecard_id}", headers=acme.admin.headers)).json()
    assert (shown["name"], [s["title"] for s in shown["draft"]["sections"]]) == ("Standard", ["Opening (revised)", "Handling (revised)", "Closing (revised)"])
    [version] = (await client.get(f"/api/v1/qa/scorecards/{scorecard_id}/versions", headers=acme.admin.headers)).json()
    assert (version["id"], [s["title"] for s in version["document"]["sections"]]) == (v1, ["Opening", "Handling", "Closing"])
    # Publishing now publishes the last good draft.
    v2 = await client.post(f"/api/v1/qa/scorecards/{scorecard_id}/publish", headers=acme.admin.headers)
    assert (v2.status_code, v2.json()["number"], v2.json()["document"]["sections"][1]["title"]) == (201, 2, "Handling (revised)")


async def test_bands_with_a_gap_are_refused(client: Any, acme: World) -> None:
    grades = [{"grade": "A", "min": 90, "max": 100}, {"grade": "B", "min": 0, "max": 85}]
    response = await client.post("/api/v1/qa/scorecards", json={"name": "Gappy", "document": {**STANDARD, "grades": grades}},
                                 headers=acme.admin.headers)
    assert (response.status_code, response.json()["code"], response.json()["start"], response.json()["end"]) == (400, "grade_bands_gap", 85.0, 90.0)


async def test_publishing_makes_versions_and_old_evaluations_keep_theirs(client: Any, acme: World) -> None:
    scorecard_id, v1 = await scorecard(client, acme)
    call = await make_call(acme, acme.alice)
    first = await evaluate(client, acme, acme.rita, scorecard_id, [call])
    assert (first["scorecard_version_id"], first["scorecard_version"], first["total_score"]) == (v1, 1, 52.5)

    again = await client.post(f"/api/v1/qa/scorecards/{scorecard_id}/publish", headers=acme.admin.headers)
    assert (again.status_code, again.json()["code"]) == (409, "draft_unchanged")

    harsher = {**STANDARD, "grades": [{"grade": "pass", "min": 50, "max": 100}, {"grade": "fail", "min": 0, "max": 50}]}
    patched = await client.patch(f"/api/v1/qa/scorecards/{scorecard_id}", json={"document": harsher}, headers=acme.admin.headers)
    assert patched.status_code == 200, patched.text
    v2 = await client.post(f"/api/v1/qa/scorecards/{scorecard_id}/publish", headers=acme.admin.headers)
    assert (v2.status_code, v2.json()["number"]) == (201, 2)

    second = await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.alice)])
    assert (second["scorecard_version"], second["grade"]) == (2, "pass")
    old = (await client.get(f"/api/v1/qa/evaluations/{first['id']}", headers=acme.rita.headers)).json()
    assert (old["scorecard_version_id"], old["grade"], [g["grade"] for g in old["scorecard"]["grades"]]) == (v1, "D", ["A", "B", "C", "D"])
    versions = (await client.get(f"/api/v1/qa/scorecards/{scorecard_id}/versions", headers=acme.sue.headers)).json()
    assert [v["number"] for v in versions] == [2, 1]
    one = await client.get(f"/api/v1/qa/scorecard-versions/{v1}", headers=acme.sue.headers)
    assert one.json()["document"]["grades"][0] == {"grade": "A", "min": 90.0, "max": 100.0}
    assert [a for a, _ in await audit_actions(acme, "qa.scorecard")] == ["qa.scorecard.created", "qa.scorecard.published", "qa.scorecard.published"]


async def test_a_retired_scorecard_takes_no_new_evaluations_but_its_drafts_can_be_submitted(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    call = await make_call(acme, acme.alice)
    draft = await client.post("/api/v1/qa/evaluations", json={"scorecard_id": scorecard_id, "call_ids": [str(call)]}, headers=acme.rita.headers)
    retired = await client.post(f"/api/v1/qa/scorecards/{scorecard_id}/retire", headers=acme.admin.headers)
    assert (retired.status_code, retired.json()["status"]) == (200, "retired")
    refused = await client.post("/api/v1/qa/evaluations", json={"scorecard_id": scorecard_id, "call_ids": [str(call)]}, headers=acme.sam.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "scorecard_retired")
    submitted = await client.post(f"/api/v1/qa/evaluations/{draft.json()['id']}/submit", json={"answers": GOOD_ANSWERS}, headers=acme.rita.headers)
    assert submitted.status_code == 200
    edit = await client.patch(f"/api/v1/qa/scorecards/{scorecard_id}", json={"name": "Revived"}, headers=acme.admin.headers)
    assert (edit.status_code, edit.json()["code"]) == (409, "scorecard_retired")
    listed = (await client.get("/api/v1/qa/scorecards", headers=acme.rita.headers)).json()
    assert listed == []
    assert [s["id"] for s in (await client.get("/api/v1/qa/scorecards?include_retired=true", headers=acme.rita.headers)).json()] == [scorecard_id]
    assert ("qa.scorecard.retired", f"qa_scorecard:{scorecard_id}") in await audit_actions(acme)


async def test_an_unpublished_scorecard_cannot_be_used(client: Any, acme: World) -> None:
    created = await client.post("/api/v1/qa/scorecards", json={"name": "Draft only", "document": STANDARD}, headers=acme.admin.headers)
    call = await make_call(acme, acme.alice)
    response = await client.post("/api/v1/qa/evaluations", json={"scorecard_id": created.json()["id"], "call_ids": [str(call)]},
                                 headers=acme.rita.headers)
    assert (response.status_code, response.json()["code"]) == (409, "scorecard_not_published")


async def test_only_qa_managers_write_scorecards_and_names_are_unique(client: Any, acme: World) -> None:
    for person in (acme.rita, acme.sue, acme.alice):
        response = await client.post("/api/v1/qa/scorecards", json={"name": "Mine", "document": STANDARD}, headers=person.headers)
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    await scorecard(client, acme)
    clash = await client.post("/api/v1/qa/scorecards", json={"name": "Standard", "document": STANDARD}, headers=acme.admin.headers)
    assert (clash.status_code, clash.json()["code"]) == (409, "scorecard_name_taken")
    assert (await client.get("/api/v1/qa/scorecards", headers=acme.alice.headers)).status_code == 403
