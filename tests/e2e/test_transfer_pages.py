"""Transfers from the agent desktop, in real Chromium: a consultation that becomes a conference and then a
completed transfer, and a blind transfer to a queue.

Three browsers: the caller (1000 Hz), agent A, the demo agent (440 Hz), and
agent B (1250 Hz, clear of the music on hold, so "the caller is on hold and
does not hear B" can be checked).  The demo queue has only A, so the caller's
call rings there; B is alone in the queue "Sales".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect

from browser_support import (
    AGENT_HZ,
    BRIGHT_HZ,
    CALLER_HZ,
    STEP_MS,
    LiveServer,
    add_agent,
    admin_api,
    connect_call,
    launch_chromium,
    sign_in_agent_ready,
    tones_heard_over,
    wait_for_tone,
    wait_for_tones,
    wait_until_gone,
)

B_HZ = BRIGHT_HZ
B_EMAIL = "bo@demo.kefu"
B_PASSWORD = "kefu-demo-agent-b"


def three_pages(playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path, contexts: list[BrowserContext]) -> tuple[Page, Page, Page]:
    """Agent A, agent B and the caller, each in its own Chromium with its own tone."""
    for name, tone in (("a", "agent"), ("b", "bright"), ("caller", "caller")):
        contexts.append(launch_chromium(playwright, tmp_path / f"{name}-profile", tone_wavs[tone]))
    a, b, caller = (context.new_page() for context in contexts)
    return a, b, caller


@pytest.mark.browser
def test_a_consultation_becomes_a_conference_and_then_the_consulted_agent_takes_the_call(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    b_id = add_agent(server, demo, email=B_EMAIL, display_name="Bo Bai", password=B_PASSWORD)["agent_id"]
    contexts: list[BrowserContext] = []
    try:
        a, b, caller = three_pages(playwright, tone_wavs, tmp_path, contexts)
        sign_in_agent_ready(b, server.url, demo, email=B_EMAIL, password=B_PASSWORD)
        sign_in_agent_ready(a, server.url, demo)
        call_id = connect_call(a, caller, server.url, demo, caller_name="Li Lei")

        # A picks B (shown with its state in words) and consults; the caller waits on hold.
        expect(a.locator(f'#transfer-target option[value="agent:{b_id}"]')).to_have_text("Bo Bai (Available)", timeout=STEP_MS)
        a.select_option("#transfer-target", f"agent:{b_id}")
        a.click("#consult-button")
        expect(a.locator("#consult-status")).to_have_attribute("data-state", "ringing", timeout=STEP_MS)
        expect(a.locator("#consult-status")).to_have_text("Calling Bo Bai for a consultation; the caller is on hold.")
        expect(a.locator("#blind-transfer-button")).to_be_disabled()

        offer = b.locator("#consult-offer")
        expect(offer).to_be_visible(timeout=STEP_MS)
        expect(offer).to_have_attribute("data-state", "ringing")
        expect(b.locator("#consult-offer-text")).to_have_text("Demo Agent wants to consult you about a call with Li Lei.")
        expect(b.locator("#call-state")).to_have_text("idle")  # a consultation, not a call of B's own
        b.click("#consult-answer-button")
        expect(offer).to_have_attribute("data-state", "talking", timeout=STEP_MS)
        expect(b.locator("#consult-hangup-button")).to_have_text("Hang up")
        expect(a.locator("#consult-status")).to_have_attribute("data-state", "talking", timeout=STEP_MS)
        assert wait_for_tone(a, B_HZ) == pytest.approx(B_HZ, abs=15)
        assert wait_for_tone(b, AGENT_HZ) == pytest.approx(AGENT_HZ, abs=15)
        assert tones_heard_over(caller, B_HZ) == {B_HZ: 0}  # the caller hears the music, not the agents' talk

        # Conference: each page hears the other two.
        a.click("#conference-button")
        expect(a.locator("#consult-status")).to_have_attribute("data-state", "conference", timeout=STEP_MS)
        expect(a.locator("#consult-status")).to_have_text("Three-way conference: you, Bo Bai and the caller.")
        wait_for_tones(caller, AGENT_HZ, B_HZ)
        wait_for_tones(a, CALLER_HZ, B_HZ)
        wait_for_tones(b, CALLER_HZ, AGENT_HZ)

        # A completes: B's page has the call, A's is free, the caller hears B only.
        a.click("#complete-transfer-button")
        expect(a.locator("#transferred-notice")).to_be_visible(timeout=STEP_MS)
        expect(a.locator("#call-state")).to_have_text("ended")
        expect(a.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        expect(a.locator("#consult-controls")).to_be_hidden()
        expect(b.locator("#call-state")).to_have_text("connected", timeout=STEP_MS)
        expect(b.locator("#call-id")).to_have_text(call_id)
        expect(b.locator("#caller-label")).to_have_text("Li Lei")
        expect(b.locator("#consult-offer")).to_be_hidden()
        expect(b.locator("#agent-state")).to_have_text("on_call")
        wait_until_gone(caller, AGENT_HZ)
        assert wait_for_tone(caller, B_HZ) == pytest.approx(B_HZ, abs=15)
        assert tones_heard_over(caller, AGENT_HZ) == {AGENT_HZ: 0}
        wait_until_gone(b, AGENT_HZ)
        assert wait_for_tone(b, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)

        # The call is B's own now: hold works, and B's hang-up ends it.
        b.click("#hold-button")
        expect(b.locator("#hold-button")).to_have_attribute("aria-pressed", "true", timeout=STEP_MS)
        wait_until_gone(caller, B_HZ)
        b.click("#hold-button")
        expect(b.locator("#hold-button")).to_have_attribute("aria-pressed", "false", timeout=STEP_MS)
        assert wait_for_tone(caller, B_HZ) == pytest.approx(B_HZ, abs=15)
        b.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(b.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        types = [e["type"] for e in api.get(f"/api/v1/calls/{call_id}/events").json()]
        cdr = api.get(f"/api/v1/calls/{call_id}").json()
    assert [t for t in types if t.startswith(("consult", "conference", "transferred", "held", "resumed", "ended"))] == [
        "consult_offered", "consult_answered", "conference_started", "transferred", "held", "resumed", "ended"
    ]
    assert cdr["agent_id"] == b_id


@pytest.mark.browser
def test_a_cancelled_or_declined_consultation_tidies_the_consulted_page_and_leaves_the_call_with_the_agent(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    b_id = add_agent(server, demo, email=B_EMAIL, display_name="Bo Bai", password=B_PASSWORD)["agent_id"]
    contexts: list[BrowserContext] = []
    try:
        a, b, caller = three_pages(playwright, tone_wavs, tmp_path, contexts)
        sign_in_agent_ready(b, server.url, demo, email=B_EMAIL, password=B_PASSWORD)
        sign_in_agent_ready(a, server.url, demo)
        call_id = connect_call(a, caller, server.url, demo, caller_name="Li Lei")

        # A cancels a consultation B answered: B's page hears consult.ended and tidies up.
        a.select_option("#transfer-target", f"agent:{b_id}")
        a.click("#consult-button")
        b.click("#consult-answer-button")
        expect(a.locator("#consult-status")).to_have_attribute("data-state", "talking", timeout=STEP_MS)
        assert wait_for_tone(b, AGENT_HZ) == pytest.approx(AGENT_HZ, abs=15)
        a.click("#cancel-consult-button")
        expect(b.locator("#consult-offer")).to_be_hidden(timeout=STEP_MS)
        expect(b.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        expect(b.locator("#call-state")).to_have_text("idle")
        assert b.evaluate("() => window.kefuSoftphone.state") == "closed"
        expect(a.locator("#consult-status")).to_have_attribute("data-state", "ended")
        expect(a.locator("#consult-status")).to_have_text("The consultation ended; you are back with the caller.")
        expect(a.locator("#consult-controls")).to_be_hidden()
        wait_until_gone(a, B_HZ)
        assert wait_for_tone(a, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)

        # B declines the next one while it rings: A is back with the caller again.
        a.click("#consult-button")
        expect(b.locator("#consult-offer")).to_have_attribute("data-state", "ringing", timeout=STEP_MS)
        expect(b.locator("#consult-hangup-button")).to_have_text("Decline")
        b.click("#consult-hangup-button")
        expect(b.locator("#consult-offer")).to_be_hidden(timeout=STEP_MS)
        expect(b.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        expect(a.locator("#consult-status")).to_have_attribute("data-state", "ended", timeout=STEP_MS)
        expect(a.locator("#consult-button")).to_be_enabled()
        expect(a.locator("#call-state")).to_have_text("connected")
        expect(caller.locator("#call-state")).to_have_text("connected")
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        events = api.get(f"/api/v1/calls/{call_id}/events").json()
    assert [(e["type"], e["data"].get("reason"), e["data"].get("stage")) for e in events if e["type"] == "consult_ended"] == [
        ("consult_ended", "cancelled", "talking"), ("consult_ended", "declined", "ringing")
    ]


@pytest.mark.browser
def test_a_blind_transfer_to_a_queue_rings_its_only_member_who_answers_and_hears_the_caller(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    sales = add_agent(server, demo, email=B_EMAIL, display_name="Bo Bai", password=B_PASSWORD, queue_name="Sales")
    contexts: list[BrowserContext] = []
    try:
        a, b, caller = three_pages(playwright, tone_wavs, tmp_path, contexts)
        sign_in_agent_ready(b, server.url, demo, email=B_EMAIL, password=B_PASSWORD)
        sign_in_agent_ready(a, server.url, demo)
        call_id = connect_call(a, caller, server.url, demo, caller_name="Li Lei")

        expect(a.locator(f'#transfer-target option[value="queue:{sales["queue_id"]}"]')).to_have_text("Sales", timeout=STEP_MS)
        a.select_option("#transfer-target", f"queue:{sales['queue_id']}")
        a.click("#blind-transfer-button")
        expect(a.locator("#transferred-notice")).to_be_visible(timeout=STEP_MS)
        expect(a.locator("#call-state")).to_have_text("ended")
        expect(a.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)

        expect(b.locator("#call-state")).to_have_text("ringing", timeout=STEP_MS)
        expect(b.locator("#call-id")).to_have_text(call_id)
        expect(b.locator("#caller-label")).to_have_text("Li Lei")
        b.click("#answer-button")
        expect(b.locator("#call-state")).to_have_text("connected", timeout=STEP_MS)
        expect(caller.locator("#call-state")).to_have_text("connected")
        assert wait_for_tone(b, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)
        assert wait_for_tone(caller, B_HZ) == pytest.approx(B_HZ, abs=15)
        b.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        types = [e["type"] for e in api.get(f"/api/v1/calls/{call_id}/events").json()]
        cdr = api.get(f"/api/v1/calls/{call_id}").json()
    assert types[types.index("transferred"):types.index("ended")] == ["transferred", "queued", "offered", "answered", "recording_started"]
    assert cdr["agent_id"] == sales["agent_id"]
