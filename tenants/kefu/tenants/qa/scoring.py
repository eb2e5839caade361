"""Scorecard documents and the scoring rules: pure functions, no database (docs/qa.md).

A document is ``{"sections": [...], "grades": [...], "fail_grade": "D"}``.  Sections carry
a weight, and so do the questions of a section; both must add up to exactly 100 (numbers
with at most two decimals, compared exactly).  A question is ``yes_no`` or ``scale``
(integers ``min``..``max``), may allow N/A and may be ``auto_fail``.  Grades are score bands
``min <= score < max`` (the top band includes 100) that cover 0..100 with no gap and no
overlap.

Scoring: each answered question scores a fraction (yes 1, no 0, a scale value
``(v - min) / (max - min)``).  N/A answers (and unanswered optional questions) are left
out and the remaining question weights of their section renormalised; a section with
nothing left is left out and the remaining section weights renormalised.  The total is
``100 * sum(W_s * S_s) / sum(W_s)`` rounded half-up to 2 decimals.  An auto-fail question
answered "no" (or the scale minimum) makes the total 0 and the grade the fail grade.

Every error is a ``Problem`` with a stable code and, where it helps an editor, the
``path`` of the offending part (``sections[1].questions[0]``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import msgspec

from kefu.platform.problems import Problem

MAX_SECTIONS = 50
MAX_QUESTIONS = 300
MAX_BANDS = 20
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Doc(msgspec.Struct, forbid_unknown_fields=True):
    pass


class QuestionDoc(Doc):
    text: str
    type: Literal["yes_no", "scale"]
    weight: float
    id: str | None = None
    min: int | None = None
    max: int | None = None
    na_allowed: bool = False
    auto_fail: bool = False
    required: bool = True
    guidance: str | None = None


class SectionDoc(Doc):
    title: str
    weight: float
    questions: list[QuestionDoc]
    id: str | None = None


class GradeBand(Doc):
    grade: str
    min: float
    max: float


def default_grades() -> list[GradeBand]:
    return [GradeBand("A", 90, 100), GradeBand("B", 75, 90), GradeBand("C", 60, 75), GradeBand("D", 0, 60)]


class ScorecardDocument(Doc):
    sections: list[SectionDoc]
    grades: list[GradeBand] = msgspec.field(default_factory=default_grades)
    # The grade of an auto-failed evaluation (default: the band that holds 0).
    fail_grade: str | None = None


class AnswerIn(Doc):
    """``value``: "yes" / "no" for yes_no, an integer for scale, "na" for not applicable."""

    question_id: str
    value: str | int
    comment: str | None = None


# --- documents ----------------------------------------------------------------------------


def _bad(code: str, detail: str, path: str | None = None, **extra: Any) -> Problem:
    return Problem(400, code, detail, **({"path": path} if path else {}), **extra)


def _text(value: str | None, *, path: str, what: str, max_length: int, required: bool = True) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise _bad("invalid_scorecard", f"{what} must not be empty", path)
        return None
    if len(text) > max_length:
        raise _bad("invalid_scorecard", f"{what} may have at most {max_length} characters", path)
    return text


def _decimal(value: float, *, path: str, what: str, low: Decimal, high: Decimal, code: str) -> Decimal:
    """A number with at most two decimals within [low, high] (weights, band limits)."""
    number = Decimal(str(value))
    if not number.is_finite() or number < low or number > high or number != number.quantize(CENT):
        raise _bad(code, f"{what} must be a number from {low} to {high} with at most two decimals (got {value})", path)
    return number


def _plain(number: Decimal) -> str:
    """105 rather than 105.0; 99.5 as it is."""
    return f"{number.normalize():f}"


def _new_id(prefix: str, taken: set[str]) -> str:
    while True:
        candidate = f"{prefix}-{uuid.uuid4().hex[:8]}"
        if candidate not in taken:
            return candidate


def normalize(document: ScorecardDocument) -> ScorecardDocument:
    """The document checked, trimmed, with an id for every section and question (new ones
    get ``s-xxxxxxxx`` / ``q-xxxxxxxx``; an editor keeps them so answers and reports can
    follow a question across versions) and its fail grade; or the 400 problem."""
    if not document.sections:
        raise _bad("invalid_scorecard", "a scorecard needs at least one section", "sections")
    if len(document.sections) > MAX_SECTIONS:
        raise _bad("invalid_scorecard", f"a scorecard may have at most {MAX_SECTIONS} sections", "sections")
    if sum(len(s.questions) for s in document.sections) > MAX_QUESTIONS:
        raise _bad("invalid_scorecard", f"a scorecard may have at most {MAX_QUESTIONS} questions", "sections")
    given = [s.id for s in document.sections if s.id] + [q.id for s in document.sections for q in s.questions if q.id]
    taken: set[str] = set()
    for ident in given:
        if not _ID.match(ident):
            raise _bad("invalid_id", f"the id {ident!r} must be 1 to 64 letters, digits, '-' or '_'")
        if ident in taken:
            raise _bad("duplicate_id", f"the id {ident!r} is used twice (section and question ids are unique in a scorecard)")
        taken.add(ident)
    sections = []
    for s_index, section in enumerate(document.sections):
        s_path = f"sections[{s_index}]"
        title = _text(section.title, path=s_path, what="a section title", max_length=200)
        weight = _decimal(section.weight, path=s_path, what="a section weight", low=CENT, high=HUNDRED, code="invalid_weight")
        section_id = section.id or _new_id("s", taken)
        taken.add(section_id)
        if not section.questions:
            raise _bad("invalid_scorecard", f"the section {title!r} has no questions", s_path)
        questions = []
        for q_index, question in enumerate(section.questions):
            q_path = f"{s_path}.questions[{q_index}]"
            text = _text(question.text, path=q_path, what="a question's text", max_length=500)
            q_weight = _decimal(question.weight, path=q_path, what="a question weight", low=CENT, high=HUNDRED, code="invalid_weight")
            if question.type == "scale":
                if question.min is None or question.max is None or question.min >= question.max:
                    raise _bad("invalid_question", f"the scale question {text!r} needs integers min < max", q_path)
                if question.min < -1000 or question.max > 1000:
                    raise _bad("invalid_question", f"the scale of {text!r} must stay within -1000..1000", q_path)
            elif question.min is not None or question.max is not None:
                raise _bad("invalid_question", f"the yes/no question {text!r} takes no min or max", q_path)
            question_id = question.id or _new_id("q", taken)
            taken.add(question_id)
            questions.append(QuestionDoc(
                text=text or "", type=question.type, weight=float(q_weight), id=question_id, min=question.min, max=question.max,
                na_allowed=question.na_allowed, auto_fail=question.auto_fail, required=question.required,
                guidance=_text(question.guidance, path=q_path, what="the guidance", max_length=2000, required=False),
            ))
        total = sum((Decimal(str(q.weight)) for q in questions), Decimal(0))
        if total != HUNDRED:
            raise _bad("weights_do_not_add_up", f"the question weights of the section {title!r} add up to {_plain(total)}, not 100", s_path,
                       section=section_id)
        sections.append(SectionDoc(title=title or "", weight=float(weight), questions=questions, id=section_id))
    total = sum((Decimal(str(s.weight)) for s in sections), Decimal(0))
    if total != HUNDRED:
        raise _bad("weights_do_not_add_up", f"the section weights add up to {_plain(total)}, not 100", "sections", section=None)
    grades = _check_bands(document.grades)
    fail_grade = document.fail_grade if document.fail_grade is not None else next(g.grade for g in grades if g.min == 0)
    if fail_grade not in {g.grade for g in grades}:
        raise _bad("unknown_fail_grade", f"the fail grade {fail_grade!r} is not one of the grades", "fail_grade")
    return ScorecardDocument(sections=sections, grades=grades, fail_grade=fail_grade)


def _check_bands(bands: list[GradeBand]) -> list[GradeBand]:
    """Bands sorted from the top down, covering 0..100 exactly once."""
    if not bands or len(bands) > MAX_BANDS:
        raise _bad("grade_bands_invalid", f"a scorecard needs 1 to {MAX_BANDS} grade bands", "grades")
    checked = []
    for index, band in enumerate(bands):
        path = f"grades[{index}]"
        grade = _text(band.grade, path=path, what="a grade", max_length=16) or ""
        low = _decimal(band.min, path=path, what="a band's min", low=Decimal(0), high=HUNDRED, code="grade_bands_invalid")
        high = _decimal(band.max, path=path, what="a band's max", low=Decimal(0), high=HUNDRED, code="grade_bands_invalid")
        if low >= high:
            raise _bad("grade_bands_invalid", f"the band {grade!r} must have min < max", path)
        checked.append((low, high, grade))
    if len({grade for _, _, grade in checked}) != len(checked):
        raise _bad("grade_bands_invalid", "each grade may appear once", "grades")
    checked.sort()
    covered = Decimal(0)
    for low, high, grade in checked:
        if low > covered:
            raise _bad("grade_bands_gap", f"no grade covers scores from {_plain(covered)} to {_plain(low)}", "grades", start=float(covered), end=float(low))
        if low < covered:
            raise _bad("grade_bands_overlap", f"the band {grade!r} overlaps scores from {_plain(low)} to {_plain(covered)}", "grades",
                       start=float(low), end=float(covered))
        covered = high
    if covered < HUNDRED:
        raise _bad("grade_bands_gap", f"no grade covers scores from {_plain(covered)} to 100", "grades", start=float(covered), end=100.0)
    return [GradeBand(grade, float(low), float(high)) for low, high, grade in reversed(checked)]


def as_json(document: ScorecardDocument) -> dict[str, Any]:
    return msgspec.to_builtins(document)  # type: ignore[no-any-return]


def load(data: dict[str, Any]) -> ScorecardDocument:
    """A stored (already normalised) document."""
    return msgspec.convert(data, ScorecardDocument)


def questions_of(document: ScorecardDocument) -> dict[str, QuestionDoc]:
    return {q.id: q for s in document.sections for q in s.questions if q.id}


def grade_for(document: ScorecardDocument, score: float) -> str:
    for band in document.grades:
        if band.min <= score < band.max or (score == band.max == 100):
            return band.grade
    raise AssertionError("bands cover 0..100")  # normalize() guarantees it


# --- answers and scores --------------------------------------------------------------------


MAX_COMMENT = 2000


def check_answers(document: ScorecardDocument, answers: list[AnswerIn]) -> list[dict[str, Any]]:
    """The answers validated against the document (in the document's question order), as
    stored: ``{"question_id", "value", "comment", "score": None}``.  Missing answers are
    allowed here (a draft); ``score`` checks completeness."""
    questions = questions_of(document)
    seen: dict[str, dict[str, Any]] = {}
    for index, answer in enumerate(answers):
        path = f"answers[{index}]"
        question = questions.get(answer.question_id)
        if question is None:
            raise _bad("unknown_question", f"the scorecard has no question {answer.question_id!r}", path, question_id=answer.question_id)
        if answer.question_id in seen:
            raise _bad("duplicate_answer", f"the question {answer.question_id!r} is answered twice", path, question_id=answer.question_id)
        value = answer.value
        if value == "na":
            if not question.na_allowed:
                raise _bad("na_not_allowed", f"the question {question.text!r} cannot be answered N/A", path, question_id=question.id)
        elif question.type == "yes_no":
            if value not in ("yes", "no"):
                raise _bad("invalid_answer", f"the question {question.text!r} takes \"yes\" or \"no\"", path, question_id=question.id)
        else:
            if not isinstance(value, int):
                raise _bad("invalid_answer", f"the question {question.text!r} takes an integer from {question.min} to {question.max}", path,
                           question_id=question.id)
            assert question.min is not None and question.max is not None
            if not question.min <= value <= question.max:
                raise _bad("score_out_of_range", f"{value} is outside {question.min}..{question.max} for the question {question.text!r}", path,
                           question_id=question.id, min=question.min, max=question.max)
        comment = (answer.comment or "").strip() or None
        if comment is not None and len(comment) > MAX_COMMENT:
            raise _bad("invalid_comment", f"an answer's comment may have at most {MAX_COMMENT} characters", path)
        seen[answer.question_id] = {"question_id": answer.question_id, "value": value, "comment": comment, "score": None}
    return [seen[q] for q in questions if q in seen]


@dataclass(frozen=True)
class Score:
    total: float
    grade: str
    auto_failed: bool
    auto_failed_questions: list[str]
    answers: list[dict[str, Any]]  # each with its question's score (0..100, None for N/A)


def question_fraction(question: QuestionDoc, value: str | int) -> Decimal | None:
    """1 for yes, 0 for no, the scale value's place between min and max; None for N/A."""
    if value == "na":
        return None
    if question.type == "yes_no":
        return Decimal(1) if value == "yes" else Decimal(0)
    assert isinstance(value, int) and question.min is not None and question.max is not None
    return Decimal(value - question.min) / Decimal(question.max - question.min)


def is_failing(question: QuestionDoc, value: str | int) -> bool:
    return question.auto_fail and (value == "no" or (question.type == "scale" and value == question.min))


def score(document: ScorecardDocument, answers: list[dict[str, Any]]) -> Score:
    """Score checked answers (``check_answers``); every required question must be answered."""
    by_question = {a["question_id"]: a for a in answers}
    missing = [q.id for s in document.sections for q in s.questions if q.required and q.id not in by_question]
    if missing:
        raise _bad("answers_missing", f"{len(missing)} required question(s) are not answered", None, question_ids=missing)
    weighted, section_weights = Decimal(0), Decimal(0)
    failed: list[str] = []
    scored: list[dict[str, Any]] = []
    for section in document.sections:
        points, weights = Decimal(0), Decimal(0)
        for question in section.questions:
            answer = by_question.get(question.id or "")
            if answer is None:
                continue
            fraction = question_fraction(question, answer["value"])
            scored.append({**answer, "score": None if fraction is None else float((fraction * HUNDRED).quantize(CENT, ROUND_HALF_UP))})
            if is_failing(question, answer["value"]):
                failed.append(question.id or "")
            if fraction is not None:
                points += Decimal(str(question.weight)) * fraction
                weights += Decimal(str(question.weight))
        if weights:
            weighted += Decimal(str(section.weight)) * points / weights
            section_weights += Decimal(str(section.weight))
    if not section_weights:
        raise _bad("nothing_to_score", "every answer is N/A: there is nothing to score")
    if failed:
        return Score(0.0, document.fail_grade or grade_for(document, 0.0), True, failed, scored)
    total = float((HUNDRED * weighted / section_weights).quantize(CENT, ROUND_HALF_UP))
    return Score(total, grade_for(document, total), False, [], scored)
