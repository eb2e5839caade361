"""The supervisor console in real Chromium: a supervisor assigned to one team and one
queue sees only those, live; force ready, force not-ready and force logout reach the
real agent desktop (which says who did it) and the audit log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, expect

from browser_support import STEP_MS, LiveServer, add_agent, admin_api, launch_chromium, sign_in

SUE_PASSWORD = "sue-supervises-1"


def make_team_supervisor(server: LiveServer, demo: dict[str, str]) -> dict[str, str]:
    """Sue, a supervisor with a password, leading a team of the demo agent and watching the demo queue;
    a second agent in another team she does not lead."""
    other = add_agent(server, demo, email="omar@demo.test", display_name="Omar Other", password="omar-password-1")
    with admin_api(server, demo) as api:
        created = api.post("/api/v1/users", json={"email": "sue@demo.test", "display_name": "Sue Lead", "roles": ["supervisor"]})
        assert created.status_code == 201, created.text
        sue = created.json()["user"]["id"]
        token = created.json()["invitation_link"].split("#", 1)[1]
        accepted = api.post("/api/v1/invitations/accept", json={"token": token, "password": SUE_PASSWORD})
        assert accepted.status_code == 200, accepted.text
        [demo_agent] = [a for a in api.get("/api/v1/agents").json() if a["display_name"] == "Demo Agent"]
        team = api.post("/api/v1/teams", json={"name": "Floor A", "supervisor_ids": [sue], "agent_ids": [demo_agent["id"]]})
        assert team.status_code == 201, team.text
        assert api.post("/api/v1/teams", json={"name": "Floor B", "agent_ids": [other["agent_id"]]}).status_code == 201
        [queue] = [q for q in api.get("/api/v1/queues").json() if demo_agent["id"] in q["agent_ids"]]
        assert api.put(f"/api/v1/queues/{queue['id']}/supervisors", json={"user_ids": [sue]}).status_code == 200
    return {"user_id": sue, "agent_id": demo_agent["id"], "queue_id": queue["id"]}


@pytest.mark.browser
def test_the_console_shows_the_supervisors_team_and_queue_live_and_forces_the_agents_state(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    sue = make_team_supervisor(server, demo)
    contexts = [launch_chromium(playwright, tmp_path / f"{party}-profile", tone_wavs[party]) for party in ("agent", "supervisor", "caller")]
    try:
        agent, console, caller = (context.new_page() for context in contexts)
        sign_in(agent, server.url, "/agent/", demo["tenant"], demo["agent_email"], demo["agent_password"])
        expect(agent.locator("#agent-state")).to_have_text("not_ready", timeout=STEP_MS)

        sign_in(console, server.url, "/supervisor/", demo["tenant"], "sue@demo.test", SUE_PASSWORD)
        expect(console.locator("#supervisor")).to_be_visible(timeout=STEP_MS)
        expect(console.locator("#scope-note")).to_have_attribute("data-all", "false", timeout=STEP_MS)
        rows = console.locator("#agents-table tbody tr")
        expect(rows).to_have_count(1, timeout=STEP_MS)  # her team's agent only, not Omar
        row = console.locator(f'#agents-table tr[data-agent-id="{sue["agent_id"]}"]')
        expect(row.locator("td").nth(0)).to_have_text("Demo Agent")
        expect(row.locator("td").nth(1)).to_have_text("Floor A")
        expect(row.locator(".state")).to_have_attribute("data-state", "not_ready")
        queue_row = console.locator(f'#queues-table tr[data-queue-id="{sue["queue_id"]}"]')
        expect(queue_row.locator(".waiting")).to_have_text("0", timeout=STEP_MS)
        expect(console.locator("#queues-table tbody tr")).to_have_count(1)

        # A caller waits: the queue row shows it without a reload (pushed through /ws/events).
        caller.goto(f"{server.url}/call/{demo['widget_key']}")
        caller.fill("#caller-name", "Li Lei")
        caller.click("#call-button")
        expect(caller.locator("#call-state")).to_have_text("queued", timeout=STEP_MS)
        expect(queue_row.locator(".waiting")).to_have_text("1", timeout=STEP_MS)
        expect(queue_row.locator(".longest")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=STEP_MS)  # it ticks

        # Force ready: the waiting caller rings at the agent, whose desktop says who made it available.
        row.locator(".force-ready-button").click()
        notice = agent.locator("#forced-notice")
        expect(notice).to_be_visible(timeout=STEP_MS)
        expect(notice).to_have_attribute("data-action", "ready")
        expect(notice).to_contain_text("Sue Lead")
        expect(agent.locator("#answer-button")).to_be_enabled(timeout=STEP_MS)
        expect(row.locator(".state")).to_have_attribute("data-state", "ringing", timeout=STEP_MS)
        caller.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(agent.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        expect(queue_row.locator(".waiting")).to_have_text("0", timeout=STEP_MS)
        # One caller left after a few seconds: a short abandon (≤ 20 s), left out of the service level
        # (docs/reports.md), so there is no figure yet, but the counts behind it moved.
        level = queue_row.locator(".service-level")
        expect(level).to_have_attribute("data-short-abandoned", "1", timeout=STEP_MS)
        expect(level).to_have_attribute("data-abandoned", "1")
        expect(level).to_have_text("—")

        # Force not ready (the supervisor's default reason), then force logout.
        row.locator(".force-not-ready-button").click()
        expect(agent.locator("#agent-state")).to_have_text("not_ready", timeout=STEP_MS)
        expect(agent.locator("#agent-state-label")).to_have_text("Not ready (set by a supervisor)")
        expect(notice).to_have_attribute("data-action", "not_ready")
        expect(row.locator(".state")).to_have_attribute("data-state", "not_ready", timeout=STEP_MS)
        row.locator(".force-logout-button").click()
        expect(agent.locator("#agent-state")).to_have_text("offline", timeout=STEP_MS)
        expect(notice).to_have_attribute("data-action", "logout")
        expect(notice).to_contain_text("logged you out")
        expect(row.locator(".state")).to_have_attribute("data-state", "offline", timeout=STEP_MS)
        expect(row.locator(".force-ready-button")).to_be_disabled()

        # The agent logs in to the seat again from the desktop.
        agent.click("#seat-login-button")
        expect(agent.locator("#agent-state")).to_have_text("not_ready", timeout=STEP_MS)
        expect(notice).to_be_hidden()
        expect(row.locator(".state")).to_have_attribute("data-state", "not_ready", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        entries = api.get("/api/v1/audit-log", params={"limit": 50}).json()["items"]
        forced = [(e["action"], e["actor"], e["target"]) for e in reversed(entries) if e["action"].startswith("agent.forced_")]
        assert forced == [
            (f"agent.forced_{action}", f"user:{sue['user_id']}", f"agent:{sue['agent_id']}") for action in ("ready", "not_ready", "logout")
        ]


@pytest.mark.browser
def test_the_portal_makes_a_team_and_assigns_supervisors_to_a_queue(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with admin_api(server, demo) as api:
        created = api.post("/api/v1/users", json={"email": "tina@demo.test", "display_name": "Tina Lead", "roles": ["supervisor"]})
        assert created.status_code == 201, created.text
        tina = created.json()["user"]["id"]
    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        sign_in(page, server.url, "/portal/", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(page.locator("#portal")).to_be_visible(timeout=STEP_MS)
        page.fill("#team-name", "Night shift")
        page.locator("#team-agents label", has_text="Demo Agent").locator("input").check()
        page.locator("#team-supervisors label", has_text="Tina Lead").locator("input").check()
        page.click("#create-team-button")
        team_row = page.locator("#teams-table tbody tr", has_text="Night shift")
        expect(team_row).to_contain_text("Demo Agent", timeout=STEP_MS)
        expect(team_row).to_contain_text("Tina Lead")

        page.locator("#queue-supervisors label", has_text="Tina Lead").locator("input").check()
        page.click("#save-queue-supervisors-button")
        expect(page.locator("#queue-supervisors-saved")).to_be_visible(timeout=STEP_MS)
        expect(page.locator("#queue-supervisors label", has_text="Tina Lead").locator("input")).to_be_checked()
    finally:
        context.close()
    with admin_api(server, demo) as api:
        [team] = api.get("/api/v1/teams").json()
        [agent] = [a for a in api.get("/api/v1/agents").json() if a["display_name"] == "Demo Agent"]
        assert (team["name"], team["agent_ids"], team["supervisor_ids"]) == ("Night shift", [agent["id"]], [tina])
        [queue] = api.get("/api/v1/queues").json()
        assert api.get(f"/api/v1/queues/{queue['id']}/supervisors").json()["user_ids"] == [tina]
