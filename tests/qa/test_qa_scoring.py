"""The scoring rules and scorecard checks (kefu.tenants.qa.scoring), and serial numbers: pure functions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from qa_support import GOOD_ANSWERS, STANDARD

from kefu.platform.problems import Problem
from kefu.tenants.qa import scoring
from kefu.tenants.qa.calls import call_serial


def document(data: dict[str, Any]) -> scoring.ScorecardDocument:
    return scoring.normalize(msgspec.convert(data, scoring.ScorecardDocument))


def answers(values: list[dict[str, Any]]) -> list[scoring.AnswerIn]:
    return [msgspec.convert(v, scoring.AnswerIn) for v in values]


def problem_of(call: Any) -> Problem:
    with pytest.raises(Problem) as raised:
        call()
    return raised.value


def score_of(values: list[dict[str, Any]], data: dict[str, Any] = STANDARD) -> scoring.Score:
    doc = document(data)
    return scoring.score(doc, scoring.check_answers(doc, answers(values)))


def with_answer(question_id: str, value: Any) -> list[dict[str, Any]]:
    return [{**a, "value": value} if a["question_id"] == question_id else a for a in GOOD_ANSWERS]


def test_weighted_sections_and_questions_give_the_documented_total() -> None:
    result = score_of(GOOD_ANSWERS)
    assert (result.total, result.grade, result.auto_failed) == (52.5, "D", False)
    assert [a["score"] for a in result.answers] == [100.0, 100.0, 75.0, 50.0, 0.0]


def test_na_answers_are_removed_and_the_section_weights_renormalised() -> None:
    # Handling without empathy: accuracy alone, 0.75 -> 20 + 37.5 + 0 = 57.5
    assert score_of(with_answer("empathy", "na")).total == 57.5
    # Closing all N/A: sections renormalised over 70: (20 + 32.5) / 70 * 100 = 75
    result = score_of(with_answer("summarised", "na"))
    assert (result.total, result.grade) == (75.0, "B")


def test_the_total_is_rounded_half_up_to_two_decimals() -> None:
    data = {"sections": [{"title": "Only", "weight": 100, "questions": [
        {"id": "a", "text": "A", "type": "yes_no", "weight": 33.33}, {"id": "b", "text": "B", "type": "yes_no", "weight": 33.33},
        {"id": "c", "text": "C", "type": "yes_no", "weight": 33.34},
    ]}]}
    assert score_of([{"question_id": "a", "value": "yes"}, {"question_id": "b", "value": "no"}, {"question_id": "c", "value": "no"}], data).total == 33.33
    assert score_of([{"question_id": "a", "value": "no"}, {"question_id": "b", "value": "yes"}, {"question_id": "c", "value": "yes"}], data).total == 66.67


def test_an_auto_fail_no_makes_the_total_zero_and_the_grade_the_fail_grade() -> None:
    result = score_of(with_answer("verified", "no"))
    assert (result.total, result.grade, result.auto_failed, result.auto_failed_questions) == (0.0, "D", True, ["verified"])


def test_an_auto_fail_scale_at_its_minimum_fails_and_one_above_does_not() -> None:
    data = {"sections": [{"title": "Only", "weight": 100, "questions": [
        {"id": "tone", "text": "Tone", "type": "scale", "min": 1, "max": 5, "weight": 100, "auto_fail": True}]}],
        "grades": [{"grade": "pass", "min": 50, "max": 100}, {"grade": "fail", "min": 0, "max": 50}]}
    assert (score_of([{"question_id": "tone", "value": 1}], data).grade, score_of([{"question_id": "tone", "value": 1}], data).auto_failed) == ("fail", True)
    assert (score_of([{"question_id": "tone", "value": 2}], data).total, score_of([{"question_id": "tone", "value": 2}], data).auto_failed) == (25.0, False)


def test_grades_follow_the_bands_with_100_in_the_top_band() -> None:
    doc = document(STANDARD)
    assert [scoring.grade_for(doc, s) for s in (100, 90, 89.99, 75, 60, 59.99, 0)] == ["A", "A", "B", "B", "C", "D", "D"]


@pytest.mark.parametrize(("answer", "code"), [
    ({"question_id": "accuracy", "value": 6}, "score_out_of_range"),
    ({"question_id": "accuracy", "value": 0}, "score_out_of_range"),
    ({"question_id": "accuracy", "value": "yes"}, "invalid_answer"),
    ({"question_id": "greeted", "value": 3}, "invalid_answer"),
    ({"question_id": "greeted", "value": "na"}, "na_not_allowed"),
    ({"question_id": "nonsense", "value": "yes"}, "unknown_question"),
])
def test_bad_answers_are_refused_with_their_code(answer: dict[str, Any], code: str) -> None:
    doc = document(STANDARD)
    assert problem_of(lambda: scoring.check_answers(doc, answers([answer]))).code == code


def test_a_question_answered_twice_is_refused() -> None:
    doc = document(STANDARD)
    assert problem_of(lambda: scoring.check_answers(doc, answers([GOOD_ANSWERS[0], GOOD_ANSWERS[0]]))).code == "duplicate_answer"


def test_every_required_question_must_be_answered_and_something_must_be_scored() -> None:
    doc = document(STANDARD)
    missing = problem_of(lambda: scoring.score(doc, scoring.check_answers(doc, answers(GOOD_ANSWERS[:3]))))
    assert (missing.code, missing.extra["question_ids"]) == ("answers_missing", ["empathy", "summarised"])
    only_optional = {"sections": [{"title": "S", "weight": 100, "questions": [
        {"id": "x", "text": "X", "type": "yes_no", "weight": 100, "na_allowed": True}]}]}
    assert problem_of(lambda: score_of([{"question_id": "x", "value": "na"}], only_optional)).code == "nothing_to_score"


def test_section_weights_that_do_not_add_up_are_refused() -> None:
    data = {"sections": [{**s, "weight": 25 if s["id"] == "opening" else s["weight"]} for s in STANDARD["sections"]]}
    refused = problem_of(lambda: document(data))
    assert (refused.code, refused.detail, refused.extra["path"]) == ("weights_do_not_add_up", "the section weights add up to 105, not 100", "sections")


def test_question_weights_that_do_not_add_up_name_their_section() -> None:
    sections = [dict(s) for s in STANDARD["sections"]]
    sections[1] = {**sections[1], "questions": [{**q, "weight": 30} for q in sections[1]["questions"]]}
    refused = problem_of(lambda: document({"sections": sections}))
    assert refused.code == "weights_do_not_add_up"
    assert (refused.extra["section"], refused.extra["path"]) == ("handling", "sections[1]")
    assert "Handling" in refused.detail and "60" in refused.detail


@pytest.mark.parametrize(("grades", "code"), [
    ([{"grade": "A", "min": 90, "max": 100}, {"grade": "B", "min": 0, "max": 80}], "grade_bands_gap"),
    ([{"grade": "A", "min": 90, "max": 99}, {"grade": "B", "min": 0, "max": 90}], "grade_bands_gap"),
    ([{"grade": "A", "min": 10, "max": 100}], "grade_bands_gap"),
    ([{"grade": "A", "min": 80, "max": 100}, {"grade": "B", "min": 0, "max": 85}], "grade_bands_overlap"),
    ([{"grade": "A", "min": 50, "max": 100}, {"grade": "A", "min": 0, "max": 50}], "grade_bands_invalid"),
    ([{"grade": "A", "min": 50, "max": 120}, {"grade": "B", "min": 0, "max": 50}], "grade_bands_invalid"),
    ([], "grade_bands_invalid"),
])
def test_grade_bands_must_cover_0_to_100_exactly_once(grades: list[dict[str, Any]], code: str) -> None:
    assert problem_of(lambda: document({**STANDARD, "grades": grades})).code == code


@pytest.mark.parametrize(("question", "code"), [
    ({"text": "Q", "type": "scale", "weight": 100}, "invalid_question"),
    ({"text": "Q", "type": "scale", "min": 5, "max": 5, "weight": 100}, "invalid_question"),
    ({"text": "Q", "type": "yes_no", "min": 1, "max": 2, "weight": 100}, "invalid_question"),
    ({"text": "Q", "type": "yes_no", "weight": 0}, "invalid_weight"),
    ({"text": "Q", "type": "yes_no", "weight": 99.999}, "invalid_weight"),
    ({"text": "  ", "type": "yes_no", "weight": 100}, "invalid_scorecard"),
    ({"id": "has space", "text": "Q", "type": "yes_no", "weight": 100}, "invalid_id"),
])
def test_malformed_questions_are_refused(question: dict[str, Any], code: str) -> None:
    assert problem_of(lambda: document({"sections": [{"title": "S", "weight": 100, "questions": [question]}]})).code == code


def test_ids_are_kept_given_ones_must_be_unique_and_missing_ones_are_made() -> None:
    doc = document({"sections": [{"title": "S", "weight": 100, "questions": [
        {"id": "keep", "text": "Q1", "type": "yes_no", "weight": 50}, {"text": "Q2", "type": "yes_no", "weight": 50}]}]})
    assert doc.sections[0].id is not None and doc.sections[0].id.startswith("s-")
    assert doc.sections[0].questions[0].id == "keep" and (doc.sections[0].questions[1].id or "").startswith("q-")
    assert (doc.fail_grade, [g.grade for g in doc.grades]) == ("D", ["A", "B", "C", "D"])
    clash = {"sections": [{"id": "x", "title": "S", "weight": 100, "questions": [{"id": "x", "text": "Q", "type": "yes_no", "weight": 100}]}]}
    assert problem_of(lambda: document(clash)).code == "duplicate_id"
    assert problem_of(lambda: document({**STANDARD, "fail_grade": "Z"})).code == "unknown_fail_grade"


def test_serial_numbers_are_the_utc_start_time_and_the_ids_first_eight_hex_digits() -> None:
    call_id = uuid.UUID("1a2b3c4d-0000-4000-8000-000000000000")
    started = datetime(2026, 11, 23, 17, 5, 9, tzinfo=timezone(timedelta(hours=8)))
    assert call_serial(call_id, started) == "20261123090509-1a2b3c4d"
    assert call_serial(call_id, started.astimezone(UTC)) == "20261123090509-1a2b3c4d"
