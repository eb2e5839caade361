"""Quality assurance in real Chromium, on a real recorded call: a QA reviewer listens to
the call and scores it on one page (a draft kept across a reload, then submitted and scored
by the server), files it in the exemplary-call library; the agent sees the evaluation and
disputes it; a second reviewer changes the scores; the agent plays the library call."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright, expect

from browser_support import AGENT_HZ, CALLER_HZ, STEP_MS, LiveServer, admin_api, launch_chromium, sign_in
from player_support import listen_to_player, recorded_call, user_with_password, wait_for_player_tones

RITA_PASSWORD = "rita-reviews-calls-1"

SERVICE_CALL = {"sections": [
    {"id": "opening", "title": "Opening", "weight": 40, "questions": [
        {"id": "greet", "text": "Greets with the company name and the agent number", "type": "yes_no", "weight": 60},
        {"id": "fast", "text": "Answers before the third ring", "type": "yes_no", "weight": 40, "na_allowed": True},
    ]},
    {"id": "handling", "title": "Handling", "weight": 60, "questions": [
        {"id": "polite", "text": "Courtesy", "type": "scale", "min": 1, "max": 5, "weight": 70},
        {"id": "privacy", "text": "Verifies the caller before disclosing anything", "type": "yes_no", "weight": 30, "auto_fail": True},
    ]},
]}


def answer(page: Page, question: str, value: str) -> None:
    page.locator(f'#questions .question[data-question-id="{question}"] input.answer[value="{value}"]').check()


@pytest.mark.browser
def test_a_reviewer_scores_a_call_the_agent_disputes_and_a_second_review_changes_it(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    call_id = recorded_call(server, demo, playwright, tone_wavs, tmp_path)
    rita = user_with_password(server, demo, email="rita@demo.test", name="Rita Reviewer", roles=["qa_reviewer"], password=RITA_PASSWORD)
    with admin_api(server, demo) as api:
        scorecard = api.post("/api/v1/qa/scorecards", json={"name": "Service call", "document": SERVICE_CALL})
        assert scorecard.status_code == 201, scorecard.text
        assert api.post(f"/api/v1/qa/scorecards/{scorecard.json()['id']}/publish").status_code == 201

    contexts = [launch_chromium(playwright, tmp_path / f"{who}-profile", tone_wavs["agent"]) for who in ("reviewer", "agent", "admin")]
    try:
        reviewer, agent, admin = (context.new_page() for context in contexts)
        sign_in(reviewer, server.url, f"/qa/?call={call_id}", demo["tenant"], "rita@demo.test", RITA_PASSWORD)
        expect(reviewer.locator("#start-evaluation")).to_be_visible(timeout=STEP_MS)
        reviewer.select_option("#start-scorecard", label="Service call")
        reviewer.click("#start-button")
        evaluation = reviewer.locator("#evaluation")
        expect(evaluation).to_have_attribute("data-status", "draft", timeout=STEP_MS)
        evaluation_id = evaluation.get_attribute("data-evaluation-id")

        # Listen while scoring: both parties, then the agent alone.
        expect(reviewer.locator(".player .player-party")).to_have_count(2, timeout=STEP_MS)
        reviewer.locator(".player-play").click()
        listen_to_player(reviewer)
        wait_for_player_tones(reviewer, {CALLER_HZ: True, AGENT_HZ: True})
        reviewer.locator('.player-party[data-party="agent"] .player-solo').click()
        wait_for_player_tones(reviewer, {CALLER_HZ: False, AGENT_HZ: True})

        answer(reviewer, "greet", "yes")
        answer(reviewer, "polite", "4")
        reviewer.click("#save-draft-button")
        expect(reviewer.locator("#evaluation-status")).to_have_text("Draft", timeout=STEP_MS)
        # The draft survives a reload.
        reviewer.goto(f"{server.url}/qa/?evaluation={evaluation_id}")
        expect(evaluation).to_have_attribute("data-status", "draft", timeout=STEP_MS)
        expect(reviewer.locator('.question[data-question-id="greet"] input.answer[value="yes"]')).to_be_checked()
        expect(reviewer.locator('.question[data-question-id="polite"] input.answer[value="4"]')).to_be_checked()
        answer(reviewer, "fast", "na")
        answer(reviewer, "privacy", "yes")
        reviewer.fill("#evaluation-comments", "Warm and careful.")
        reviewer.click("#submit-evaluation-button")
        expect(evaluation).to_have_attribute("data-status", "submitted", timeout=STEP_MS)
        # 40 × greet (N/A left out) + 60 × (70 × 3/4 + 30 × 1) / 100 = 89.5: grade B.
        expect(reviewer.locator("#evaluation-score")).to_have_text("89.5")
        expect(reviewer.locator("#evaluation-grade")).to_have_text("B")

        reviewer.fill("#library-title", "Calm handling of a refund")
        reviewer.fill("#library-tags", "courtesy, privacy")
        reviewer.click("#file-library-button")
        expect(reviewer.locator("#library-filed")).to_be_visible(timeout=STEP_MS)

        # The agent sees it and disputes it.
        sign_in(agent, server.url, "/qa/my", demo["tenant"], demo["agent_email"], demo["agent_password"])
        mine = agent.locator(f'#my-evaluations-table tr[data-evaluation-id="{evaluation_id}"]')
        expect(mine.locator(".score")).to_have_text("89.5", timeout=STEP_MS)
        mine.locator(".open-button").click()
        expect(agent.locator("#my-answers-table tbody tr")).to_have_count(4, timeout=STEP_MS)
        agent.fill("#dispute-reason", "I was courteous throughout the call.")
        agent.click("#dispute-button")
        expect(agent.locator("#my-evaluation")).to_have_attribute("data-status", "disputed", timeout=STEP_MS)

        # A second reviewer (the tenant admin, not Rita) changes the courtesy score.
        sign_in(admin, server.url, f"/qa/?evaluation={evaluation_id}", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(admin.locator("#dispute-note")).to_contain_text("courteous", timeout=STEP_MS)
        expect(admin.locator("#second-review-actions")).to_be_visible()
        answer(admin, "polite", "5")
        admin.click("#change-button")
        expect(admin.locator("#evaluation")).to_have_attribute("data-status", "final", timeout=STEP_MS)
        expect(admin.locator("#evaluation-score")).to_have_text("100")
        expect(admin.locator("#evaluation-grade")).to_have_text("A")

        # The agent plays the library call.
        agent.reload()
        item = agent.locator("#library-table tbody tr", has_text="Calm handling of a refund")
        expect(item).to_be_visible(timeout=STEP_MS)
        item.locator(".play-button").click()
        expect(agent.locator("#library-player .player-party")).to_have_count(2, timeout=STEP_MS)
        listen_to_player(agent)
        wait_for_player_tones(agent, {CALLER_HZ: True, AGENT_HZ: True})
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        stored = api.get(f"/api/v1/qa/evaluations/{evaluation_id}").json()
        assert (stored["status"], stored["total_score"], stored["grade"], stored["original_total_score"]) == ("final", 100.0, "A", 89.5)
        assert (stored["reviewer_id"], stored["qa_type"], stored["call_ids"]) == (rita, "random", [call_id])
        assert stored["start_serial"] == stored["end_serial"] and stored["call_duration_s"] >= 4
        assert stored["submitted_at"] is not None and stored["started_at"] <= stored["submitted_at"]


@pytest.mark.browser
def test_a_qa_manager_builds_a_scorecard_is_told_when_weights_do_not_add_up_and_publishes_it(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        sign_in(page, server.url, "/qa/", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(page.locator("#scorecards")).to_be_visible(timeout=STEP_MS)
        page.click("#new-scorecard-button")
        page.fill("#sc-name", "Greeting check")
        section = page.locator("#sc-sections .sc-section").first
        section.locator(".sc-section-title").fill("Opening")
        section.locator(".sc-section-weight").fill("100")
        first = section.locator(".sc-question").first
        first.locator(".sc-text").fill("Greets the caller")
        first.locator(".sc-weight").fill("60")
        section.locator(".sc-add-question").click()
        second = section.locator(".sc-question").nth(1)
        second.locator(".sc-text").fill("Courtesy")
        second.locator(".sc-type").select_option("scale")
        second.locator(".sc-weight").fill("30")  # 60 + 30: not 100
        page.click("#sc-save")
        expect(page.locator("#error")).to_contain_text("100", timeout=STEP_MS)
        expect(page.locator("#scorecards-table tbody tr")).to_have_count(0)

        second.locator(".sc-weight").fill("40")
        page.click("#sc-publish")
        row = page.locator("#scorecards-table tbody tr", has_text="Greeting check")
        expect(row.locator(".version")).to_have_text("v1", timeout=STEP_MS)
    finally:
        context.close()
    with admin_api(server, demo) as api:
        [card] = api.get("/api/v1/qa/scorecards").json()
        [version] = api.get(f"/api/v1/qa/scorecards/{card['id']}/versions").json()
        [section] = version["document"]["sections"]
        assert [(q["text"], q["type"], q["weight"]) for q in section["questions"]] == [("Greets the caller", "yes_no", 60), ("Courtesy", "scale", 40)]


def score_and_submit(page: Page, answers: dict[str, str]) -> None:
    for question, value in answers.items():
        answer(page, question, value)
    page.click("#submit-evaluation-button")
    expect(page.locator("#evaluation")).to_have_attribute("data-status", "submitted", timeout=STEP_MS)


@pytest.mark.browser
def test_a_sampling_policy_fills_a_work_list_reviewers_calibrate_and_the_report_shows_the_average(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    call_id = recorded_call(server, demo, playwright, tone_wavs, tmp_path, seconds=3.0)
    user_with_password(server, demo, email="rita@demo.test", name="Rita Reviewer", roles=["qa_reviewer"], password=RITA_PASSWORD)
    user_with_password(server, demo, email="sam@demo.test", name="Sam Reviewer", roles=["qa_reviewer"], password=RITA_PASSWORD)
    with admin_api(server, demo) as api:
        scorecard = api.post("/api/v1/qa/scorecards", json={"name": "Service call", "document": SERVICE_CALL}).json()
        assert api.post(f"/api/v1/qa/scorecards/{scorecard['id']}/publish").status_code == 201

    contexts = [launch_chromium(playwright, tmp_path / f"{who}-profile", tone_wavs["agent"]) for who in ("admin", "rita", "sam")]
    try:
        admin, rita, sam = (context.new_page() for context in contexts)
        # The QA lead samples two calls per agent per week for Rita.
        sign_in(admin, server.url, "/qa/", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(admin.locator("#policies")).to_be_visible(timeout=STEP_MS)
        admin.fill("#policy-name", "Weekly sample")
        admin.locator("#policy-reviewers label", has_text="Rita Reviewer").locator("input").check()
        admin.click("#create-policy-button")
        policy = admin.locator("#policies-table tbody tr", has_text="Weekly sample")
        expect(policy).to_contain_text("Rita Reviewer", timeout=STEP_MS)
        policy.locator(".run-policy-button").click()
        expect(admin.locator("#policy-run-result")).to_have_text("Calls added to the work lists: 1.", timeout=STEP_MS)

        # Rita works her list.
        sign_in(rita, server.url, "/qa/", demo["tenant"], "rita@demo.test", RITA_PASSWORD)
        item = rita.locator("#work-list-table tbody tr").first
        expect(item).to_contain_text("Demo Agent", timeout=STEP_MS)
        item.locator(".evaluate-button").click()
        expect(rita.locator("#evaluation")).to_have_attribute("data-status", "draft", timeout=STEP_MS)
        rita.fill("#evaluation-comments", "Stayed 100% calm.")
        score_and_submit(rita, {"greet": "yes", "fast": "na", "polite": "4", "privacy": "yes"})
        expect(rita.locator("#no-work")).to_be_visible(timeout=STEP_MS)
        evaluation_id = rita.locator("#evaluation").get_attribute("data-evaluation-id")

        # The lead opens it and starts a calibration of the call with Rita and Sam.
        admin.reload()
        admin.locator(f'#evaluations-table tr[data-evaluation-id="{evaluation_id}"] .open-button').click()
        expect(admin.locator("#calibration-form")).to_be_visible(timeout=STEP_MS)
        for name in ("Rita Reviewer", "Sam Reviewer"):
            admin.locator("#calibration-reviewers label", has_text=name).locator("input").check()
        admin.click("#start-calibration-button")
        calibration = admin.locator("#calibrations-table tbody tr").first
        expect(calibration.locator(".submitted")).to_have_text("0 / 2", timeout=STEP_MS)

        for page, answers in ((rita, {"greet": "yes", "fast": "na", "polite": "4", "privacy": "yes"}),
                              (sam, {"greet": "yes", "fast": "yes", "polite": "2", "privacy": "yes"})):
            if page is sam:
                sign_in(sam, server.url, "/qa/", demo["tenant"], "sam@demo.test", RITA_PASSWORD)
            else:
                page.reload()
            page.locator("#calibrations-table tbody tr").first.locator(".score-calibration-button").click()
            expect(page.locator("#evaluation")).to_have_attribute("data-status", "draft", timeout=STEP_MS)
            score_and_submit(page, answers)

        admin.reload()
        calibration = admin.locator("#calibrations-table tbody tr").first
        expect(calibration.locator(".submitted")).to_have_text("2 / 2", timeout=STEP_MS)
        calibration.locator(".calibration-results-button").click()
        # Courtesy: 4 of 1..5 (75) against 2 (25): a spread of 50; greeting agreed.
        expect(admin.locator('#calibration-results-table tr[data-question-id="polite"] .spread')).to_have_text("50", timeout=STEP_MS)
        expect(admin.locator('#calibration-results-table tr[data-question-id="greet"] .spread')).to_have_text("0")
        expect(admin.locator("#calibration-results-table tr.totals .spread")).to_have_text("21")  # 89.5 against 68.5

        # The evaluations search narrows by QA type, reviewer and comments ("%" is a character, not a wildcard).
        listed = admin.locator("#evaluations-table tbody tr")
        admin.reload()
        expect(listed).to_have_count(3, timeout=STEP_MS)  # Rita's, and the two calibrations
        admin.select_option("#filter-qa-type", "calibration")
        admin.click("#filter-button")
        expect(listed).to_have_count(2, timeout=STEP_MS)
        admin.select_option("#filter-reviewer", label="Sam Reviewer")
        admin.click("#filter-button")
        expect(listed).to_have_count(1, timeout=STEP_MS)
        admin.select_option("#filter-qa-type", "")
        admin.select_option("#filter-reviewer", "")
        admin.fill("#filter-comments", "100% CALM")
        admin.click("#filter-button")
        expect(listed).to_have_count(1, timeout=STEP_MS)
        expect(listed.first).to_have_attribute("data-evaluation-id", evaluation_id)
        admin.fill("#filter-comments", "100__calm")  # "_" is a character too
        admin.click("#filter-button")
        expect(listed).to_have_count(0, timeout=STEP_MS)
        admin.fill("#filter-comments", "")
        admin.select_option("#filter-scorecard", label="Service call")
        admin.click("#filter-button")
        expect(listed).to_have_count(3, timeout=STEP_MS)
        admin.check("#filter-auto-failed")  # every answer verified the caller: none auto-failed
        admin.click("#filter-button")
        expect(listed).to_have_count(0, timeout=STEP_MS)

        # The report: calibrations do not count, Rita's 89.5 does.
        admin.click("#report-button")
        agent_row = admin.locator("#reports-table tbody tr", has_text="Demo Agent")
        expect(agent_row.locator(".average")).to_have_text("89.5", timeout=STEP_MS)
        expect(agent_row.locator(".auto-fail")).to_have_text("0%")
    finally:
        for context in contexts:
            context.close()
    with admin_api(server, demo) as api:
        items = api.get("/api/v1/qa/work-items", params={"status": "done"}).json()["items"]
        assert [(i["call_id"], i["evaluation_id"]) for i in items] == [(call_id, evaluation_id)]
