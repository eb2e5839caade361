"""The ACD on the pages, in real Chromium: not-ready reasons, after-call work with a
required disposition, and a waiting caller who asks to be called back.

The demo tenant's Support queue holds only the demo agent; each test changes its
rules or codes through the admin API first, as a tenant admin would in the portal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import (
    STEP_MS,
    LiveServer,
    add_agent,
    admin_api,
    agent_and_caller,
    connect_call,
    launch_chromium,
    sign_in,
    sign_in_agent_ready,
)
from playwright.sync_api import BrowserContext, Page, Playwright, expect


def demo_agent(api: httpx.Client, demo: dict[str, str]) -> dict[str, Any]:
    [agent] = [a for a in api.get("/api/v1/agents").json() if a["email"] == demo["agent_email"]]
    return agent


def support_queue_id(api: httpx.Client) -> str:
    [queue] = [q for q in api.get("/api/v1/queues").json() if q["name"] == "Support"]
    return str(queue["id"])


def caller_call(page: Page, demo: dict[str, str]) -> dict[str, str]:
    """The caller page's call id and token (kept in sessionStorage while the call lasts)."""
    return json.loads(page.evaluate("(key) => sessionStorage.getItem(key)", f"kefu.call.{demo['widget_key']}"))


@pytest.mark.browser
def test_an_agent_goes_not_ready_with_the_reason_it_picks_from_the_defaults_then_from_the_tenants_codes(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    context = launch_chromium(playwright, tmp_path / "agent-profile", tone_wavs["agent"])
    try:
        agent = context.new_page()
        sign_in_agent_ready(agent, server.url, demo)
        # The tenant defined no reason codes: Kefu's defaults.
        reasons = agent.locator("#not-ready-reason option")
        expect(reasons).to_have_text(["on a break", "at lunch", "in a meeting", "in training", "in coaching", "other"], timeout=STEP_MS)
        agent.select_option("#not-ready-reason", "lunch")
        agent.click("#not-ready-button")
        expect(agent.locator("#agent-state")).to_have_text("not_ready", timeout=STEP_MS)
        expect(agent.locator("#agent-state-label")).to_have_text("Not ready (at lunch)")
        expect(agent.locator("#not-ready-button")).to_be_disabled()  # not ready for that reason already
        with admin_api(server, demo) as api:
            assert (demo_agent(api, demo)["status"], demo_agent(api, demo)["not_ready_reason"]) == ("not_ready", "lunch")
            created = api.post("/api/v1/reason-codes", json={"code": "team_huddle", "label": "Team huddle"})
            assert created.status_code == 201, created.text

        agent.reload()  # the desktop reads the codes when it logs in to the seat
        expect(reasons).to_have_text(["Team huddle"], timeout=STEP_MS)
        agent.click("#not-ready-button")
        expect(agent.locator("#agent-state-label")).to_have_text("Not ready (Team huddle)", timeout=STEP_MS)
    finally:
        context.close()

    with admin_api(server, demo) as api:
        seat = demo_agent(api, demo)
    assert (seat["status"], seat["not_ready_reason"]) == ("not_ready", "team_huddle")


@pytest.mark.browser
def test_after_call_work_with_a_required_disposition_ends_once_the_agent_saved_one(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with admin_api(server, demo) as api:
        rules = api.patch(f"/api/v1/queues/{support_queue_id(api)}", json={"wrap_up_mode": "agent_ended", "disposition_required": True})
        assert rules.status_code == 200, rules.text
        code = api.post("/api/v1/wrap-up-codes", json={"code": "password_reset", "label": "Password reset"})
        assert code.status_code == 201, code.text
    with agent_and_caller(playwright, tmp_path, tone_wavs) as (agent, caller):
        sign_in_agent_ready(agent, server.url, demo)
        call_id = connect_call(agent, caller, server.url, demo)
        panel = agent.locator("#disposition-panel")
        expect(panel).to_be_visible()  # a disposition may be given during the call already
        expect(panel).to_have_attribute("data-call-id", call_id)
        expect(agent.locator("#wrap-up-controls")).to_be_hidden()

        agent.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(agent.locator("#agent-state")).to_have_text("wrap_up", timeout=STEP_MS)
        expect(agent.locator("#agent-state-label")).to_have_text("After-call work")
        expect(agent.locator("#wrap-up-countdown")).to_be_hidden()  # the agent ends it: no end time
        expect(panel).to_have_attribute("data-call-id", call_id)
        expect(agent.locator("#extend-wrap-up-button")).to_be_hidden()

        agent.click("#end-wrap-up-button")
        expect(agent.locator("#wrap-up-error")).to_have_text("give the call a disposition (wrap-up code) first", timeout=STEP_MS)
        expect(agent.locator("#agent-state")).to_have_text("wrap_up")

        expect(agent.locator("#wrap-up-code option")).to_have_text(["Choose a wrap-up code…", "Password reset"])
        agent.select_option("#wrap-up-code", "password_reset")
        agent.check("#first-call-resolution")
        agent.fill("#disposition-notes", "Reset by e-mail link")
        agent.click("#save-disposition-button")
        expect(agent.locator("#disposition-saved")).to_be_visible(timeout=STEP_MS)
        expect(agent.locator("#wrap-up-error")).to_be_hidden()

        agent.click("#end-wrap-up-button")
        expect(agent.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        expect(panel).to_be_hidden()

    with admin_api(server, demo) as api:
        events = api.get(f"/api/v1/calls/{call_id}/events").json()
        seat = demo_agent(api, demo)
    after_call = [(e["type"], e["data"]) for e in events if e["type"] in ("disposition", "disposition_missing", "wrap_up_ended")]
    assert [(kind, {k: data[k] for k in data if k != "wrap_up_s"}) for kind, data in after_call] == [
        ("disposition", {"agent_id": seat["id"], "code": "password_reset", "first_call_resolution": True, "has_notes": True}),
        ("wrap_up_ended", {"agent_id": seat["id"], "by": "agent"}),
    ]
    assert (seat["state"], seat["status"]) == ("available", "available")


@pytest.mark.browser
def test_extendable_after_call_work_counts_down_extends_up_to_its_limit_and_ready_ends_it(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with admin_api(server, demo) as api:
        rules = api.patch(f"/api/v1/queues/{support_queue_id(api)}", json={"wrap_up_mode": "extendable", "wrap_up_s": 60, "wrap_up_max_s": 120})
        assert rules.status_code == 200, rules.text
    with agent_and_caller(playwright, tmp_path, tone_wavs) as (agent, caller):
        sign_in_agent_ready(agent, server.url, demo)
        call_id = connect_call(agent, caller, server.url, demo)
        agent.click("#hangup-button")
        expect(agent.locator("#agent-state")).to_have_text("wrap_up", timeout=STEP_MS)
        countdown = agent.locator("#wrap-up-countdown")
        expect(countdown).to_have_text(re.compile(r"^[01]:[0-5]\d left$"))
        seconds_left = "() => Number(document.getElementById('wrap-up-countdown').dataset.secondsLeft)"
        assert 0 < agent.evaluate(seconds_left) <= 60

        agent.click("#extend-wrap-up-button")  # one more minute: two in all, the limit
        agent.wait_for_function(f"() => ({seconds_left})() > 60", timeout=STEP_MS)
        expect(countdown).to_have_text(re.compile(r"^[12]:[0-5]\d left$"))
        agent.click("#extend-wrap-up-button")
        expect(agent.locator("#wrap-up-error")).to_have_text("after-call work cannot last more than 120 s", timeout=STEP_MS)

        agent.click("#ready-button")  # no disposition required here
        expect(agent.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        expect(countdown).to_be_hidden()
        expect(agent.locator("#disposition-panel")).to_be_hidden()

    with admin_api(server, demo) as api:
        types = [e["type"] for e in api.get(f"/api/v1/calls/{call_id}/events").json()]
    assert [t for t in types if t.startswith("wrap_up")] == ["wrap_up_started", "wrap_up_extended", "wrap_up_ended"]


def ring_all_at_two_desktops(
    server: LiveServer, demo: dict[str, str], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path, contexts: list[BrowserContext]
) -> tuple[Page, Page, Page, str]:
    """Support rings all its members, the demo agent and Bo Bai, both ready on their desktops;
    a caller calls.  Returns both agents' pages, the caller's and the call id, once it rings at both."""
    second = add_agent(server, demo, email="bo@demo.kefu", display_name="Bo Bai", password="bo-bai-password")
    with admin_api(server, demo) as api:
        queue_id = support_queue_id(api)
        members = api.put(f"/api/v1/queues/{queue_id}/members", json={"agent_ids": [demo_agent(api, demo)["id"], second["agent_id"]]})
        assert members.status_code == 200, members.text
        rules = api.patch(f"/api/v1/queues/{queue_id}", json={"strategy": "ring_all"})
        assert rules.status_code == 200, rules.text
    for name, tone in (("agent", "agent"), ("other", "bright"), ("caller", "caller")):
        contexts.append(launch_chromium(playwright, tmp_path / f"{name}-profile", tone_wavs[tone]))
    agent, other, caller = (context.new_page() for context in contexts)
    sign_in_agent_ready(agent, server.url, demo)
    sign_in_agent_ready(other, server.url, demo, email="bo@demo.kefu", password="bo-bai-password")
    caller.goto(f"{server.url}/call/{demo['widget_key']}")
    caller.fill("#caller-name", "Li Lei")
    caller.click("#call-button")
    expect(agent.locator("#answer-button")).to_be_enabled(timeout=STEP_MS)
    expect(other.locator("#answer-button")).to_be_enabled(timeout=STEP_MS)
    call_id = agent.locator("#call-id").inner_text().strip()
    expect(other.locator("#call-id")).to_have_text(call_id)
    return agent, other, caller, call_id


@pytest.mark.browser
def test_a_ring_all_offer_withdrawn_when_the_caller_hangs_up_clears_both_desktops(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    contexts: list[BrowserContext] = []
    try:
        agent, other, caller, _call_id = ring_all_at_two_desktops(server, demo, playwright, tone_wavs, tmp_path, contexts)
        caller.click("#hangup-button")
        for page in (agent, other):
            notice = page.locator("#offer-withdrawn-notice")
            expect(notice).to_have_text("The caller hung up.", timeout=STEP_MS)
            expect(notice).to_have_attribute("data-reason", "call_ended")
            expect(page.locator("#call-state")).to_have_text("idle")
            expect(page.locator("#call-id")).to_have_text("")
            expect(page.locator("#answer-button")).to_be_disabled()
            expect(page.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()


@pytest.mark.browser
def test_a_ring_all_offer_answered_at_one_desktop_is_withdrawn_from_the_other(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    contexts: list[BrowserContext] = []
    try:
        agent, other, _caller, _call_id = ring_all_at_two_desktops(server, demo, playwright, tone_wavs, tmp_path, contexts)
        agent.click("#answer-button")
        agent.wait_for_function("() => document.getElementById('call-state').textContent !== 'connecting'", timeout=STEP_MS)
        assert agent.locator("#call-state").inner_text() == "connected", agent.locator("#error").inner_text()
        notice = other.locator("#offer-withdrawn-notice")
        expect(notice).to_have_text("Another agent answered the call.", timeout=STEP_MS)
        expect(notice).to_have_attribute("data-reason", "answered_elsewhere")
        expect(other.locator("#call-state")).to_have_text("idle")
        expect(other.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()


@pytest.mark.browser
def test_a_waiting_caller_sees_its_place_asks_for_a_callback_keeps_it_and_is_offered_to_the_next_ready_agent(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with agent_and_caller(playwright, tmp_path, tone_wavs) as (agent, caller):
        # Logged in to the seat but not ready: the queue is staffed, nobody takes the call.
        sign_in(agent, server.url, "/agent/", demo["tenant"], demo["agent_email"], demo["agent_password"])
        expect(agent.locator("#agent-state")).to_have_text("not_ready", timeout=STEP_MS)

        caller.goto(f"{server.url}/call/{demo['widget_key']}")
        caller.fill("#caller-name", "Han Meimei")
        caller.click("#call-button")
        expect(caller.locator("#call-state")).to_have_text("queued", timeout=STEP_MS)
        # One staffed agent and no call history: the default handle time of 180 s.
        place = caller.locator("#queue-position")
        expect(place).to_have_text("You are number 1 in the queue; expected wait about 3 minutes.", timeout=STEP_MS)
        expect(place).to_have_attribute("data-position", "1")
        call = caller_call(caller, demo)
        with httpx.Client(base_url=server.url, headers={"X-Caller-Token": call["caller_token"]}, timeout=10) as widget:
            waiting = widget.get(f"/api/v1/widget/calls/{call['call_id']}").json()
            assert (waiting["status"], waiting["position"], waiting["expected_wait_s"]) == ("queued", 1, 180)

            caller.fill("#callback-number", "+8613800000000")
            caller.click("#callback-button")
            expect(caller.locator("#call-state")).to_have_text("callback", timeout=STEP_MS)
            expect(caller.locator("#callback-notice")).to_have_text("We will call you back; you keep your place.")
            expect(place).to_be_hidden()
            expect(caller.locator("#callback-form")).to_be_hidden()
            # The page's audio is closed: the softphone and its microphone.
            caller.wait_for_function(
                "() => window.kefuSoftphone.state === 'closed' && window.kefuSoftphone.localStream.getTracks().every((t) => t.readyState === 'ended')",
                timeout=STEP_MS,
            )
            kept = widget.get(f"/api/v1/widget/calls/{call['call_id']}").json()
            assert (kept["status"], kept["callback"], kept["position"]) == ("queued", True, 1)

        agent.click("#ready-button")
        expect(agent.locator("#call-state")).to_have_text("ringing", timeout=STEP_MS)
        expect(agent.locator("#call-id")).to_have_text(call["call_id"])
        expect(agent.locator("#agent-state")).to_have_text("ringing")
        expect(caller.locator("#call-state")).to_have_text("callback")  # the page has no audio to connect

    with admin_api(server, demo) as api:
        types = [e["type"] for e in api.get(f"/api/v1/calls/{call['call_id']}/events").json()]
    assert types[:3] == ["created", "queued", "callback_requested"]
    assert "offered" in types[3:] and "ended" not in types


@pytest.mark.browser
def test_a_caller_refused_while_the_server_is_busy_setting_up_calls_is_placed_on_the_pages_retry(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    from kefu.platform.problems import Problem
    from kefu.tenants.services import contact_center

    server, demo = demo_server
    flow = contact_center(server.app.state.runtime).calls
    real_start, bound = flow.start_web_call, flow.max_setups_in_flight
    answers: list[str] = []

    async def busy_once(**kwargs: Any) -> Any:
        """The first attempt meets a process already setting up as many calls as it may."""
        flow.max_setups_in_flight = 0 if not answers else bound
        try:
            placed = await real_start(**kwargs)
        except Problem as exc:
            answers.append(exc.code)
            raise
        answers.append("placed")
        return placed

    flow.start_web_call = busy_once  # type: ignore[method-assign]
    try:
        with agent_and_caller(playwright, tmp_path, tone_wavs) as (agent, caller):
            sign_in_agent_ready(agent, server.url, demo)
            caller.goto(f"{server.url}/call/{demo['widget_key']}")
            caller.fill("#caller-name", "Li Lei")
            caller.click("#call-button")
            expect(agent.locator("#call-state")).to_have_text("ringing", timeout=STEP_MS)
            expect(caller.locator("#error")).to_be_hidden()
            assert answers == ["overloaded", "placed"]
            call = caller_call(caller, demo)
            expect(agent.locator("#call-id")).to_have_text(call["call_id"])
    finally:
        flow.start_web_call = real_start  # type: ignore[method-assign]
    with admin_api(server, demo) as api:
        calls = api.get("/api/v1/calls").json()["items"]
        assert [c["caller_name"] for c in calls] == ["Li Lei"]  # the refused attempt left no call
