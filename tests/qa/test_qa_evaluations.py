"""Evaluations: opening on checked calls, drafts, submission scored by the server, the
agent's acknowledgement and dispute, the second review, searching, and refusals that store nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from qa_support import GOOD_ANSWERS, PERFECT_ANSWERS, T0, World, audit_actions, evaluate, make_call, scorecard, table_rows

from kefu.tenants.clock import ManualClock
from kefu.tenants.qa.calls import call_serial
from kefu.tenants.qa.models import QaEvaluation, QaEvaluationCall


async def open_draft(client: Any, world: World, scorecard_id: str, calls: list[Any], **extra: Any) -> Any:
    return await client.post("/api/v1/qa/evaluations", json={"scorecard_id": scorecard_id, "call_ids": [str(c) for c in calls], **extra},
                             headers=world.rita.headers)


async def test_an_evaluation_of_two_calls_holds_the_named_fields(client: Any, acme: World, clock: ManualClock) -> None:
    scorecard_id, version_id = await scorecard(client, acme)
    early = await make_call(acme, acme.alice, started=T0, talk_s=100, queue=acme.support)
    late = await make_call(acme, acme.alice, started=T0 + timedelta(hours=2), talk_s=50)
    opened_at = clock()
    draft = await open_draft(client, acme, scorecard_id, [late, early], qa_type="complaint", comments="Caller complained twice")
    assert draft.status_code == 201, draft.text
    body = draft.json()
    assert (body["status"], body["qa_type"], body["business_type"], body["reviewer_id"], body["agent_id"], body["agent_name"]) == (
        "draft", "complaint", "Support", str(acme.rita.user_id), str(acme.alice.agent_id), "Alice")
    assert (body["start_serial"], body["end_serial"]) == (call_serial(early, T0), call_serial(late, T0 + timedelta(hours=2)))
    assert (body["call_ids"], body["call_duration_s"], body["queue_id"]) == ([str(early), str(late)], 150, str(acme.support))
    assert (body["started_at"], body["submitted_at"], body["total_score"], body["grade"]) == (opened_at.isoformat().replace("+00:00", "Z"), None, None, None)
    assert (body["scorecard_version_id"], [c["serial"] for c in body["calls"]]) == (version_id, [body["start_serial"], body["end_serial"]])
    assert [r["party"] for r in body["calls"][0]["recordings"]] == ["agent", "caller"]

    clock.now += timedelta(minutes=7)
    submitted = await client.post(f"/api/v1/qa/evaluations/{body['id']}/submit", json={"answers": GOOD_ANSWERS}, headers=acme.rita.headers)
    assert submitted.status_code == 200, submitted.text
    done = submitted.json()
    assert (done["status"], done["total_score"], done["grade"], done["auto_failed"]) == ("submitted", 52.5, "D", False)
    assert done["submitted_at"] == clock().isoformat().replace("+00:00", "Z")
    assert [a["score"] for a in done["answers"]] == [100.0, 100.0, 75.0, 50.0, 0.0]
    assert ("qa.evaluation.submitted", f"qa_evaluation:{body['id']}") in await audit_actions(acme)


async def test_calls_that_cannot_be_evaluated_are_refused_and_nothing_is_stored(client: Any, acme: World, globex: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    foreign_scorecard, _ = await scorecard(client, globex)
    mine = await make_call(acme, acme.alice)
    cases = [
        ([await make_call(globex, globex.alice)], scorecard_id, 404, "not_found"),
        ([mine], foreign_scorecard, 404, "not_found"),
        ([await make_call(acme, acme.alice, recorded=False)], scorecard_id, 409, "call_not_recorded"),
        ([await make_call(acme, acme.alice, status="connected")], scorecard_id, 409, "call_not_ended"),
        ([await make_call(acme, None)], scorecard_id, 409, "call_not_answered"),
        ([mine, await make_call(acme, acme.bob)], scorecard_id, 409, "calls_of_different_agents"),
        ([await make_call(acme, acme.alice, caller_ref="c-1"), await make_call(acme, acme.alice, caller_ref="c-2")], scorecard_id, 409,
         "calls_of_different_callers"),
        ([], scorecard_id, 400, "invalid_call_ids"),
    ]
    for calls, card, status, code in cases:
        response = await open_draft(client, acme, card, calls)
        assert (response.status_code, response.json()["code"]) == (status, code), (calls, response.text)
    calibration = await open_draft(client, acme, scorecard_id, [mine], qa_type="calibration")
    assert (calibration.status_code, calibration.json()["code"]) == (400, "invalid_qa_type")
    assert await table_rows(acme, QaEvaluation) == [] and await table_rows(acme, QaEvaluationCall) == []


async def test_bad_answers_leave_the_draft_as_it_was(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    draft = (await open_draft(client, acme, scorecard_id, [await make_call(acme, acme.alice)])).json()
    saved = await client.patch(f"/api/v1/qa/evaluations/{draft['id']}", json={"answers": GOOD_ANSWERS[:2], "comments": "So far"},
                               headers=acme.rita.headers)
    assert (saved.status_code, [a["question_id"] for a in saved.json()["answers"]], saved.json()["total_score"]) == (200, ["greeted", "verified"], None)
    before = await table_rows(acme, QaEvaluation)
    for answers, code in (([{"question_id": "accuracy", "value": 9}], "score_out_of_range"),
                          ([{"question_id": "mystery", "value": "yes"}], "unknown_question"),
                          ([{"question_id": "greeted", "value": "na"}], "na_not_allowed")):
        for method, path in (("PATCH", ""), ("POST", "/submit")):
            response = await client.request(method, f"/api/v1/qa/evaluations/{draft['id']}{path}", json={"answers": answers, "comments": "changed"},
                                            headers=acme.rita.headers)
            assert (response.status_code, response.json()["code"]) == (400, code)
    missing = await client.post(f"/api/v1/qa/evaluations/{draft['id']}/submit", json={}, headers=acme.rita.headers)
    assert (missing.status_code, missing.json()["code"], missing.json()["question_ids"]) == (400, "answers_missing", ["accuracy", "empathy", "summarised"])
    assert await table_rows(acme, QaEvaluation) == before
    other = await client.patch(f"/api/v1/qa/evaluations/{draft['id']}", json={"comments": "mine now"}, headers=acme.sam.headers)
    assert (other.status_code, other.json()["code"]) == (403, "not_your_evaluation")


async def test_the_agent_sees_only_its_own_scored_evaluations_and_acknowledges(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    alices = await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.alice)])
    bobs = await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.bob)])
    draft = (await open_draft(client, acme, scorecard_id, [await make_call(acme, acme.alice)])).json()
    mine = (await client.get("/api/v1/agent/qa/evaluations", headers=acme.alice.headers)).json()
    assert ([e["id"] for e in mine["items"]], mine["total"]) == ([alices["id"]], 1)
    for hidden in (bobs["id"], draft["id"]):
        response = await client.get(f"/api/v1/agent/qa/evaluations/{hidden}", headers=acme.alice.headers)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    someone_elses = await client.post(f"/api/v1/agent/qa/evaluations/{bobs['id']}/dispute", json={"reason": "not me"}, headers=acme.alice.headers)
    assert (someone_elses.status_code, someone_elses.json()["code"]) == (404, "not_found")
    assert (await client.get("/api/v1/qa/evaluations", headers=acme.alice.headers)).status_code == 403

    acknowledged = await client.post(f"/api/v1/agent/qa/evaluations/{alices['id']}/acknowledge", headers=acme.alice.headers)
    assert (acknowledged.status_code, acknowledged.json()["status"]) == (200, "acknowledged")
    late_dispute = await client.post(f"/api/v1/agent/qa/evaluations/{alices['id']}/dispute", json={"reason": "changed my mind"}, headers=acme.alice.headers)
    assert (late_dispute.status_code, late_dispute.json()["code"]) == (409, "evaluation_not_submitted")
    stored = (await client.get(f"/api/v1/qa/evaluations/{bobs['id']}", headers=acme.sue.headers)).json()
    assert stored["status"] == "submitted"


async def test_a_dispute_goes_to_a_second_reviewer_who_changes_the_score(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    evaluation = await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.alice)])
    no_reason = await client.post(f"/api/v1/agent/qa/evaluations/{evaluation['id']}/dispute", json={"reason": "  "}, headers=acme.alice.headers)
    assert (no_reason.status_code, no_reason.json()["code"]) == (400, "dispute_reason_required")
    early = await client.post(f"/api/v1/qa/evaluations/{evaluation['id']}/second-review", json={"outcome": "upheld"}, headers=acme.sam.headers)
    assert (early.status_code, early.json()["code"]) == (409, "evaluation_not_disputed")
    disputed = await client.post(f"/api/v1/agent/qa/evaluations/{evaluation['id']}/dispute", json={"reason": "I did summarise"}, headers=acme.alice.headers)
    assert (disputed.status_code, disputed.json()["status"], disputed.json()["dispute_reason"]) == (200, "disputed", "I did summarise")

    same = await client.post(f"/api/v1/qa/evaluations/{evaluation['id']}/second-review", json={"outcome": "upheld"}, headers=acme.rita.headers)
    assert (same.status_code, same.json()["code"]) == (409, "second_reviewer_is_first_reviewer")
    no_answers = await client.post(f"/api/v1/qa/evaluations/{evaluation['id']}/second-review", json={"outcome": "changed"}, headers=acme.sam.headers)
    assert (no_answers.status_code, no_answers.json()["code"]) == (400, "answers_required")
    changed = await client.post(f"/api/v1/qa/evaluations/{evaluation['id']}/second-review",
                                json={"outcome": "changed", "answers": PERFECT_ANSWERS, "comments": "The summary is at 02:10"}, headers=acme.sam.headers)
    assert changed.status_code == 200, changed.text
    final = changed.json()
    assert (final["status"], final["total_score"], final["grade"], final["original_total_score"], final["original_grade"]) == ("final", 100.0, "A", 52.5, "D")
    assert (final["second_reviewer_id"], final["second_review_outcome"], final["original_answers"][4]["value"]) == (str(acme.sam.user_id), "changed", "no")
    again = await client.post(f"/api/v1/qa/evaluations/{evaluation['id']}/second-review", json={"outcome": "upheld"}, headers=acme.admin.headers)
    assert (again.status_code, again.json()["code"]) == (409, "evaluation_not_disputed")
    seen = (await client.get(f"/api/v1/agent/qa/evaluations/{evaluation['id']}", headers=acme.alice.headers)).json()
    assert (seen["status"], seen["total_score"]) == ("final", 100.0)
    actions = [a for a, _ in await audit_actions(acme, "qa.evaluation")]
    assert actions == ["qa.evaluation.submitted", "qa.evaluation.disputed", "qa.evaluation.second_reviewed"]


async def test_search_finds_evaluations_by_each_named_field(client: Any, acme: World, clock: ManualClock) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    call_a = await make_call(acme, acme.alice, started=T0, talk_s=60)
    first = await evaluate(client, acme, acme.rita, scorecard_id, [call_a], business_type="billing")
    clock.now += timedelta(hours=1)
    call_b = await make_call(acme, acme.bob, started=T0 + timedelta(minutes=30), talk_s=300, queue=acme.support)
    second = await evaluate(client, acme, acme.sam, scorecard_id, [call_b], answers=PERFECT_ANSWERS, qa_type="new_hire")
    clock.now += timedelta(hours=1)
    third = await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.alice, started=T0 + timedelta(hours=1))],
                           answers=[{**a, "value": "no"} if a["question_id"] == "verified" else a for a in GOOD_ANSWERS])

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/api/v1/qa/evaluations?{query}", headers=acme.sue.headers)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    assert await ids("") == [third["id"], second["id"], first["id"]]  # newest first
    assert await ids(f"serial={call_serial(call_a, T0)}") == [first["id"]]
    assert await ids(f"call_id={call_b}") == [second["id"]]
    assert await ids(f"reviewer_id={acme.sam.user_id}") == [second["id"]]
    assert await ids(f"agent_id={acme.alice.agent_id}") == [third["id"], first["id"]]
    assert await ids("qa_type=new_hire") == [second["id"]]
    assert await ids("business_type=billing") == [first["id"]]
    assert await ids("score_min=50&score_max=60") == [first["id"]]
    assert await ids("grade=A") == [second["id"]]
    assert await ids("auto_failed=true") == [third["id"]]
    assert await ids(f"queue_id={acme.support}") == [second["id"]]
    assert await ids("duration_min=200") == [second["id"]]
    assert await ids("duration_max=100") == [third["id"], first["id"]]
    started = (T0 + timedelta(days=1, minutes=30)).isoformat().replace("+00:00", "Z")
    second_at = (T0 + timedelta(days=1, hours=1)).isoformat().replace("+00:00", "Z")
    assert await ids(f"started_from={started}") == [third["id"], second["id"]]
    assert await ids(f"started_to={second_at}") == [second["id"], first["id"]]  # the bound itself is in
    assert await ids(f"started_from={started}&started_to={second_at}") == [second["id"]]
    assert await ids(f"submitted_from={started}") == [third["id"], second["id"]]
    assert await ids(f"submitted_from={second_at}&submitted_to={second_at}") == [second["id"]]
    assert await ids(f"submitted_to={started}") == [first["id"]]
    assert await ids(f"scorecard_id={scorecard_id}&status=submitted&limit=1&offset=1") == [second["id"]]
    page = (await client.get("/api/v1/qa/evaluations?limit=2", headers=acme.sue.headers)).json()
    assert (page["total"], len(page["items"]), page["items"][0]["reviewer_name"]) == (3, 2, "Rita")


async def test_search_by_start_or_end_serial_is_exact_while_serial_names_any_covered_call(client: Any, acme: World, clock: ManualClock) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    early = await make_call(acme, acme.alice, started=T0, talk_s=100)
    late = await make_call(acme, acme.alice, started=T0 + timedelta(hours=2), talk_s=50)
    middle = await make_call(acme, acme.alice, started=T0 + timedelta(hours=1))
    spanning = await evaluate(client, acme, acme.rita, scorecard_id, [late, early])
    clock.now += timedelta(minutes=5)
    single = await evaluate(client, acme, acme.rita, scorecard_id, [middle])
    first, last, between = call_serial(early, T0), call_serial(late, T0 + timedelta(hours=2)), call_serial(middle, T0 + timedelta(hours=1))
    assert (spanning["start_serial"], spanning["end_serial"], single["start_serial"]) == (first, last, between)

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/api/v1/qa/evaluations?{query}", headers=acme.sue.headers)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    assert await ids(f"serial={between}") == [single["id"], spanning["id"]]  # the middle call lies in the two calls' range
    assert await ids(f"start_serial={first}") == [spanning["id"]]
    assert await ids(f"end_serial={last}") == [spanning["id"]]
    assert await ids(f"start_serial={last}") == [] and await ids(f"end_serial={first}") == []
    assert await ids(f"start_serial={between}") == [single["id"]] and await ids(f"end_serial={between}") == [single["id"]]
    assert await ids(f"start_serial={first}&end_serial={last}") == [spanning["id"]]
    assert await ids(f"start_serial={first}&end_serial={between}") == []
    too_long = await client.get(f"/api/v1/qa/evaluations?start_serial={'9' * 33}", headers=acme.sue.headers)
    assert (too_long.status_code, too_long.json()["code"]) == (400, "validation_error")


async def test_search_by_comments_is_case_insensitive_and_matches_wildcards_literally(client: Any, acme: World, globex: World, clock: ManualClock) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    refund = await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.alice)], comments="Refund promised: 100% by Friday")
    clock.now += timedelta(minutes=5)
    field = await evaluate(client, acme, acme.rita, scorecard_id, [await make_call(acme, acme.alice)], comments="Read the customer_name back")
    clock.now += timedelta(minutes=5)
    loose = await evaluate(client, acme, acme.sam, scorecard_id, [await make_call(acme, acme.bob)], comments="Promised 100 euros; customer name misspelt")
    clock.now += timedelta(minutes=5)
    await evaluate(client, acme, acme.sam, scorecard_id, [await make_call(acme, acme.bob)])  # no comments
    globex_card, _ = await scorecard(client, globex)
    await evaluate(client, globex, globex.rita, globex_card, [await make_call(globex, globex.alice)], comments="Refund promised: 100% by Friday")

    async def ids(comments: str) -> list[str]:
        response = await client.get("/api/v1/qa/evaluations", params={"comments": comments}, headers=acme.sue.headers)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    assert await ids("REFUND") == [refund["id"]]
    assert await ids("promised") == [loose["id"], refund["id"]]
    # % and _ are the user's characters, not LIKE wildcards: "100%" is not "100 euros", "customer_name" not "customer name".
    assert await ids("100%") == [refund["id"]]
    assert await ids("%") == [refund["id"]]
    assert await ids("customer_name") == [field["id"]]
    assert await ids("_") == [field["id"]]
    assert await ids("customer") == [loose["id"], field["id"]]
    assert await ids("Friday") == [refund["id"]]  # Globex's evaluation with the same words stays in Globex
    assert await ids("nowhere") == []
    too_long = await client.get("/api/v1/qa/evaluations", params={"comments": "x" * 201}, headers=acme.sue.headers)
    assert (too_long.status_code, too_long.json()["code"]) == (400, "validation_error")
    assert [e["key"] for e in too_long.json()["errors"]] == ["comments"]


async def test_a_reviewer_discards_its_own_draft_only(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    draft = (await open_draft(client, acme, scorecard_id, [await make_call(acme, acme.alice)])).json()
    not_mine = await client.delete(f"/api/v1/qa/evaluations/{draft['id']}", headers=acme.sam.headers)
    assert (not_mine.status_code, not_mine.json()["code"]) == (403, "not_your_evaluation")
    assert (await client.delete(f"/api/v1/qa/evaluations/{draft['id']}", headers=acme.rita.headers)).status_code == 204
    assert await table_rows(acme, QaEvaluation) == [] and await table_rows(acme, QaEvaluationCall) == []
