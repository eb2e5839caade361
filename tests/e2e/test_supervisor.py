"""The supervisor page on a live call between the agent desktop and the caller page, in three Chromiums.

The agent's microphone plays 440 Hz, the caller's 1000 Hz, the supervisor's
1700 Hz; who hears whom is told by those tones.  The supervisor (the demo
tenant's admin) signs in to /supervisor/, sees the call appear live, and
drives it with one click per action.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, Playwright, Request, expect

from browser_support import (
    AGENT_HZ,
    CALLER_HZ,
    STEP_MS,
    SUPERVISOR_HZ,
    LiveServer,
    admin_api,
    connect_call,
    launch_chromium,
    sign_in,
    sign_in_agent_ready,
    tones_heard_over,
    wait_for_tone,
    wait_for_tones,
)


def open_pages(playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path, contexts: list[BrowserContext]) -> tuple[Page, Page, Page]:
    for party in ("agent", "caller", "supervisor"):
        contexts.append(launch_chromium(playwright, tmp_path / f"{party}-profile", tone_wavs[party]))
    agent, caller, supervisor = (context.new_page() for context in contexts)
    return agent, caller, supervisor


def sign_in_supervisor(page: Page, url: str, demo: dict[str, str]) -> None:
    sign_in(page, url, "/supervisor/", demo["tenant"], demo["admin_email"], demo["admin_password"])
    expect(page.locator("#supervisor")).to_be_visible(timeout=STEP_MS)
    expect(page.locator("#no-calls")).to_be_visible(timeout=STEP_MS)


def row_of(page: Page, call_id: str) -> Locator:
    return page.locator(f'#calls-table tr[data-call-id="{call_id}"]')


def supervision_requests(page: Page) -> list[str]:
    """``METHOD path`` of every request the page makes to the supervision API about calls, as they happen
    (the console's own reads are not supervision actions)."""
    seen: list[str] = []

    def record(request: Request) -> None:
        path = request.url.split("//", 1)[1].split("/", 1)[1]
        if path.startswith("api/v1/supervision/calls/"):
            seen.append(f"{request.method} /{path}")

    page.on("request", record)
    return seen


@pytest.mark.browser
def test_the_supervisor_page_monitors_whispers_and_barges_in_on_one_leg(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    contexts: list[BrowserContext] = []
    try:
        agent, caller, supervisor = open_pages(playwright, tone_wavs, tmp_path, contexts)
        sign_in_agent_ready(agent, server.url, demo)
        sign_in_supervisor(supervisor, server.url, demo)
        requests = supervision_requests(supervisor)

        call_id = connect_call(agent, caller, server.url, demo)
        row = row_of(supervisor, call_id)
        expect(row).to_be_visible(timeout=STEP_MS)  # pushed by /ws/events, no reload
        expect(row.locator("td").nth(0)).to_have_text("Li Lei")
        expect(row.locator("td").nth(1)).to_have_text("Demo Agent")
        expect(row.locator(".duration")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=STEP_MS)  # it ticks
        expect(supervisor.locator("#no-calls")).to_be_hidden()

        row.locator(".monitor-button").click()
        expect(row.locator(".supervision")).to_have_attribute("data-mode", "monitor", timeout=STEP_MS)
        wait_for_tones(supervisor, AGENT_HZ, CALLER_HZ)
        notice = agent.locator("#supervisor-notice")
        expect(notice).to_have_attribute("data-mode", "monitor", timeout=STEP_MS)
        expect(notice).to_have_text("Demo Admin (supervisor) is listening to this call.")

        row.locator(".whisper-button").click()
        expect(notice).to_have_attribute("data-mode", "whisper", timeout=STEP_MS)
        wait_for_tones(agent, CALLER_HZ, SUPERVISOR_HZ)
        caller_hears = tones_heard_over(caller, AGENT_HZ, SUPERVISOR_HZ)
        assert caller_hears[SUPERVISOR_HZ] == 0, caller_hears
        assert caller_hears[AGENT_HZ] > 0.8, caller_hears

        row.locator(".barge-button").click()
        expect(notice).to_have_attribute("data-mode", "barge", timeout=STEP_MS)
        wait_for_tones(caller, AGENT_HZ, SUPERVISOR_HZ)
        wait_for_tones(agent, CALLER_HZ, SUPERVISOR_HZ)
        wait_for_tones(supervisor, AGENT_HZ, CALLER_HZ)
        expect(row.locator(".barge-button")).to_have_attribute("aria-pressed", "true")

        row.locator(".leave-button").click()
        expect(notice).to_be_hidden(timeout=STEP_MS)
        expect(row.locator(".supervision")).to_have_attribute("data-mode", "")
        expect(agent.locator("#call-state")).to_have_text("connected")
        expect(caller.locator("#call-state")).to_have_text("connected")
        # One leg: joining is the only POST; each switch of mode is one PUT.
        base = f"/api/v1/supervision/calls/{call_id}"
        assert requests == [f"POST {base}", f"PUT {base}/mode", f"PUT {base}/mode", f"DELETE {base}"]
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        events = api.get(f"/api/v1/calls/{call_id}/events").json()
    supervision = [(e["type"], e["data"].get("mode")) for e in events if e["type"].startswith("supervisor")]
    assert supervision == [
        ("supervisor_joined", "monitor"), ("supervisor_mode_changed", "whisper"), ("supervisor_mode_changed", "barge"), ("supervisor_left", None),
    ]


@pytest.mark.browser
def test_a_supervisor_takes_a_call_over_and_the_agent_desktop_shows_the_agent_free(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    contexts: list[BrowserContext] = []
    try:
        agent, caller, supervisor = open_pages(playwright, tone_wavs, tmp_path, contexts)
        sign_in_agent_ready(agent, server.url, demo)
        sign_in_supervisor(supervisor, server.url, demo)
        agent_hangups: list[str] = []
        agent.on("request", lambda request: agent_hangups.append(request.url) if request.url.endswith("/hangup") else None)

        call_id = connect_call(agent, caller, server.url, demo)
        row = row_of(supervisor, call_id)
        expect(row).to_be_visible(timeout=STEP_MS)
        row.locator(".monitor-button").click()
        wait_for_tones(supervisor, AGENT_HZ, CALLER_HZ)

        row.locator(".takeover-button").click()
        expect(row.locator(".supervision")).to_have_attribute("data-mode", "taken_over", timeout=STEP_MS)
        expect(agent.locator("#taken-over-notice")).to_be_visible(timeout=STEP_MS)
        expect(agent.locator("#call-state")).to_have_text("ended")
        expect(agent.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        expect(agent.locator("#agent-state-label")).to_have_text("Available")
        expect(agent.locator("#hangup-button")).to_be_disabled()
        # The caller now talks with the supervisor.
        assert wait_for_tone(caller, SUPERVISOR_HZ) == pytest.approx(SUPERVISOR_HZ, abs=15)
        assert wait_for_tone(supervisor, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)
        expect(caller.locator("#call-state")).to_have_text("connected")

        row.locator(".leave-button").click()
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(row).to_have_count(0, timeout=STEP_MS)
        assert agent_hangups == []  # the agent's page hung up its softphone only
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        cdr = api.get(f"/api/v1/calls/{call_id}").json()
        types = [e["type"] for e in api.get(f"/api/v1/calls/{call_id}/events").json()]
    assert (cdr["status"], cdr["end_reason"]) == ("ended", "supervisor_hangup")
    assert types.index("supervisor_joined") < types.index("taken_over") < types.index("ended")
