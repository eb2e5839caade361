"""A first call, end to end, in two real headless Chromium browsers (issue 2, section 6).

The demo agent (its microphone plays 440 Hz) logs in to the agent desktop and
goes ready; a caller (1000 Hz) calls from the demo tenant's caller page; the
call rings at the agent, who answers.  Each page must hear the other side's
tone through the aiortc media server.  After the agent hangs up, the API shows
the call's event log, its CDR and two recordings, each holding its own
party's tone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from browser_support import AGENT_HZ, CALLER_HZ, LiveServer, agent_and_caller, wait_for_tone
from media_support import decode_recording, steady_frequency
from playwright.sync_api import Page, Playwright, expect

STEP_MS = 15_000


def sign_in_agent(page: Page, url: str, demo: dict[str, str]) -> None:
    page.goto(f"{url}/agent/")
    page.fill("#tenant", demo["tenant"])
    page.fill("#email", demo["agent_email"])
    page.fill("#password", demo["agent_password"])
    page.click("#login-button")
    expect(page.locator("#ready-button")).to_be_visible(timeout=STEP_MS)
    page.click("#ready-button")
    expect(page.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)


@pytest.mark.browser
def test_a_caller_and_an_agent_hear_each_other_and_the_call_is_logged_and_recorded(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with agent_and_caller(playwright, tmp_path, tone_wavs) as (agent, caller):

        sign_in_agent(agent, server.url, demo)
        expect(agent.locator("#answer-button")).to_be_disabled()

        caller.goto(f"{server.url}/call/{demo['widget_key']}")
        expect(caller.locator("#call-state")).to_have_text("idle")
        caller.fill("#caller-name", "Li Lei")
        caller.click("#call-button")

        expect(agent.locator("#agent-state")).to_have_text("ringing", timeout=STEP_MS)
        expect(agent.locator("#call-state")).to_have_text("ringing")
        expect(caller.locator("#call-state")).to_have_text("queued")
        expect(agent.locator("#answer-button")).to_be_enabled()
        agent.click("#answer-button")

        expect(agent.locator("#call-state")).to_have_text("connected", timeout=STEP_MS)
        expect(caller.locator("#call-state")).to_have_text("connected", timeout=STEP_MS)
        expect(agent.locator("#agent-state")).to_have_text("on_call")
        call_id = agent.locator("#call-id").inner_text().strip()

        # Audio both ways, through the media server.
        assert wait_for_tone(agent, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)
        assert wait_for_tone(caller, AGENT_HZ) == pytest.approx(AGENT_HZ, abs=15)

        agent.click("#hangup-button")
        expect(agent.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(agent.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)

    with httpx.Client(base_url=server.url, timeout=10) as api:
        login = api.post(
            "/api/v1/auth/login",
            json={"tenant": demo["tenant"], "email": demo["admin_email"], "password": demo["admin_password"]},
        )
        assert login.status_code == 200, login.text
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

        cdr = api.get(f"/api/v1/calls/{call_id}").json()
        events = api.get(f"/api/v1/calls/{call_id}/events").json()
        recordings = api.get(f"/api/v1/calls/{call_id}/recordings").json()
        audio = {r["party"]: api.get(r["media_url"]) for r in recordings}

    assert cdr["call_id"] == call_id
    assert cdr["caller_name"] == "Li Lei"
    assert cdr["status"] == "ended"
    assert cdr["end_reason"] == "agent_hangup"
    assert cdr["offers"] == 1
    assert cdr["answered_at"] is not None and cdr["ended_at"] is not None
    assert cdr["talk_s"] > 0

    assert [e["type"] for e in events] == [
        "created", "queued", "offered", "answered", "recording_started", "ended", "recording_saved", "recording_saved",
    ]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert sorted(e["data"]["party"] for e in events if e["type"] == "recording_saved") == ["agent", "caller"]

    assert sorted(r["party"] for r in recordings) == ["agent", "caller"]
    assert sorted(r["id"] for r in cdr["recordings"]) == sorted(r["id"] for r in recordings)
    for recording in recordings:
        response = audio[recording["party"]]
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("audio/ogg")
        assert len(response.content) == recording["size_bytes"]
        path = tmp_path / f"{recording['party']}.ogg"
        path.write_bytes(response.content)
        samples = decode_recording(path)
        assert len(samples) / 48 == pytest.approx(recording["duration_ms"], abs=30)
        # Recording runs from the bridge to the media plane's end_call; the file
        # covers that span up to its last packet (arrival jitter aside).
        recorded_ms = (datetime.fromisoformat(recording["ended_at"]) - datetime.fromisoformat(recording["started_at"])) / timedelta(milliseconds=1)
        assert recorded_ms - 500 <= recording["duration_ms"] <= recorded_ms + 100
        expected = AGENT_HZ if recording["party"] == "agent" else CALLER_HZ
        assert steady_frequency(samples, seconds=2.0) == pytest.approx(expected, abs=4)
