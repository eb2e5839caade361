"""The ACD's configuration in the portal, in a real browser: the demo admin creates a
skill, gives it to the demo agent, creates a schedule, and sets the Support queue's
strategy, ring timeout, schedule and needed skill; the API then answers exactly that."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from browser_support import STEP_MS, LiveServer, launch_chromium
from playwright.sync_api import Playwright, expect

ALWAYS = "00:00-24:00"


@pytest.mark.browser
def test_an_admin_configures_skills_a_schedule_and_queue_rules_in_the_portal(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        page.goto(f"{server.url}/portal/?lang=en")
        page.fill("#tenant", demo["tenant"])
        page.fill("#email", demo["admin_email"])
        page.fill("#password", demo["admin_password"])
        page.click("#login-button")
        expect(page.locator("#portal")).to_be_visible(timeout=STEP_MS)

        page.fill("#skill-name", "Mandarin")
        page.fill("#skill-description", "Putonghua callers")
        page.click("#create-skill-button")
        expect(page.locator("#skills-table tbody")).to_contain_text("Mandarin", timeout=STEP_MS)

        page.select_option("#agent-skills-agent", label="Demo Agent")
        page.select_option("#agent-skills-skill", label="Mandarin")
        page.fill("#agent-skills-proficiency", "8")
        page.click("#add-agent-skill-button")
        expect(page.locator("#agent-skills-table tbody tr")).to_have_text(["Mandarin8Remove"], timeout=STEP_MS)

        page.fill("#schedule-name", "Office")
        page.fill("#schedule-time-zone", "Europe/Berlin")
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            page.fill(f"#schedule-hours-{day}", ALWAYS)
        page.fill("#schedule-holidays", "2020-12-25 Christmas\n2020-12-24 09:00-12:00 Christmas Eve")
        page.click("#create-schedule-button")
        office = page.locator("#schedules-table tbody tr", has_text="Office")
        expect(office).to_have_count(1, timeout=STEP_MS)
        # Open every hour of every day: open now, whatever the time.
        expect(office.locator(".schedule-open")).to_have_text("Open")

        page.select_option("#rules-queue", label="Support")
        page.select_option("#rules-strategy", "linear")
        page.fill("#rules-ring-timeout", "20")
        page.select_option("#rules-schedule", label="Office")
        page.select_option("#rules-closed-action", "voicemail")
        mandarin = page.locator(".rules-skill", has_text="Mandarin")
        mandarin.locator(".rules-skill-use").check()
        mandarin.locator(".rules-skill-min").fill("5")
        page.click("#save-queue-rules-button")
        expect(page.locator("#queue-rules-saved")).to_be_visible(timeout=STEP_MS)
        expect(page.locator("#queues-table tbody")).to_contain_text("Linear (members' order)")
        expect(page.locator("#error")).to_be_hidden()
    finally:
        context.close()

    login = httpx.post(f"{server.url}/api/v1/auth/login",
                       json={"tenant": demo["tenant"], "email": demo["admin_email"], "password": demo["admin_password"]})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def get(path: str) -> object:
        response = httpx.get(f"{server.url}{path}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    [skill] = get("/api/v1/skills")
    assert (skill["name"], skill["description"]) == ("Mandarin", "Putonghua callers")
    [agent] = get("/api/v1/agents")
    assert get(f"/api/v1/agents/{agent['id']}/skills")["skills"] == [{"skill_id": skill["id"], "proficiency": 8}]
    [schedule] = get("/api/v1/schedules")
    assert (schedule["name"], schedule["time_zone"]) == ("Office", "Europe/Berlin")
    assert schedule["weekly"] == {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    assert schedule["holidays"] == [
        {"date": "2020-12-24", "name": "Christmas Eve", "hours": [["09:00", "12:00"]]},
        {"date": "2020-12-25", "name": "Christmas", "hours": []},
    ]
    [queue] = get("/api/v1/queues")
    assert (queue["name"], queue["strategy"], queue["ring_timeout_s"], queue["schedule_id"], queue["closed_action"]) == (
        "Support", "linear", 20, schedule["id"], "voicemail"
    )
    # The rest of the form kept the queue's values.
    assert (queue["max_wait_s"], queue["wrap_up_mode"], queue["overflow_action"], queue["service_level_s"]) == (600, "none", None, 20)
    assert get(f"/api/v1/queues/{queue['id']}/skills")["skills"] == [{"skill_id": skill["id"], "min_proficiency": 5, "required": True}]
