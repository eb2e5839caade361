"""The agent desktop's Hold, Mute and Pause-recording buttons on a live call, in real Chromium.

For hold, the agent's microphone plays 1250 Hz (clear of the music on hold's
notes, so the music and the agent can be told apart); otherwise 440 Hz.  The
caller plays 1000 Hz.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect

from browser_support import (
    AGENT_HZ,
    BRIGHT_HZ,
    CALLER_HZ,
    MUSIC_HZ,
    STEP_MS,
    LiveServer,
    admin_api,
    connect_call,
    launch_chromium,
    sign_in_agent_ready,
    tones_heard_over,
    wait_for_any_tone,
    wait_for_tone,
    wait_until_gone,
)


def agent_and_caller(playwright: Playwright, agent_wav: Path, caller_wav: Path, tmp_path: Path, contexts: list[BrowserContext]) -> tuple[Page, Page]:
    contexts.append(launch_chromium(playwright, tmp_path / "agent-profile", agent_wav))
    contexts.append(launch_chromium(playwright, tmp_path / "caller-profile", caller_wav))
    return contexts[0].new_page(), contexts[1].new_page()


@pytest.mark.browser
def test_hold_plays_music_to_the_caller_instead_of_the_agent_until_resumed(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    contexts: list[BrowserContext] = []
    try:
        agent, caller = agent_and_caller(playwright, tone_wavs["bright"], tone_wavs["caller"], tmp_path, contexts)
        sign_in_agent_ready(agent, server.url, demo)
        call_id = connect_call(agent, caller, server.url, demo)
        wait_for_tone(caller, BRIGHT_HZ)
        hold = agent.locator("#hold-button")
        expect(hold).to_have_text("Hold")

        hold.click()
        expect(hold).to_have_attribute("aria-pressed", "true", timeout=STEP_MS)
        expect(hold).to_have_text("Resume")
        expect(agent.locator("#audio-state")).to_have_text("On hold: the caller hears music")
        note = wait_for_any_tone(caller, MUSIC_HZ)  # the caller hears the music's notes
        assert min(abs(note - hz) for hz in MUSIC_HZ) <= 12
        wait_until_gone(caller, BRIGHT_HZ)
        assert tones_heard_over(caller, BRIGHT_HZ) == {BRIGHT_HZ: 0}
        wait_until_gone(agent, CALLER_HZ)
        assert tones_heard_over(agent, CALLER_HZ) == {CALLER_HZ: 0}  # nor does the agent hear the caller

        hold.click()
        expect(hold).to_have_attribute("aria-pressed", "false", timeout=STEP_MS)
        expect(agent.locator("#audio-state")).to_be_hidden()
        assert wait_for_tone(caller, BRIGHT_HZ) == pytest.approx(BRIGHT_HZ, abs=15)
        assert wait_for_tone(agent, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        types = [e["type"] for e in api.get(f"/api/v1/calls/{call_id}/events").json()]
    assert [t for t in types if t in ("held", "resumed")] == ["held", "resumed"]


@pytest.mark.browser
def test_mute_silences_the_agent_for_the_caller_and_a_recording_pause_is_in_the_call_log(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    contexts: list[BrowserContext] = []
    try:
        agent, caller = agent_and_caller(playwright, tone_wavs["agent"], tone_wavs["caller"], tmp_path, contexts)
        sign_in_agent_ready(agent, server.url, demo)
        call_id = connect_call(agent, caller, server.url, demo)
        wait_for_tone(caller, AGENT_HZ)
        mute = agent.locator("#mute-button")

        mute.click()
        expect(mute).to_have_attribute("aria-pressed", "true", timeout=STEP_MS)
        expect(mute).to_have_text("Unmute")
        wait_until_gone(caller, AGENT_HZ)
        assert tones_heard_over(caller, AGENT_HZ) == {AGENT_HZ: 0}
        assert wait_for_tone(agent, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)  # a muted agent still hears the caller
        mute.click()
        expect(mute).to_have_attribute("aria-pressed", "false", timeout=STEP_MS)
        assert wait_for_tone(caller, AGENT_HZ) == pytest.approx(AGENT_HZ, abs=15)

        recording = agent.locator("#recording-button")
        expect(recording).to_have_text("Pause recording")
        recording.click()
        expect(recording).to_have_attribute("aria-pressed", "true", timeout=STEP_MS)
        expect(recording).to_have_text("Resume recording")
        expect(agent.locator("#audio-state")).to_have_text("Recording paused")
        recording.click()
        expect(recording).to_have_attribute("aria-pressed", "false", timeout=STEP_MS)
        expect(recording).to_have_text("Pause recording")

        agent.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(mute).to_be_disabled()
        expect(recording).to_be_disabled()
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        events = api.get(f"/api/v1/calls/{call_id}/events").json()
    controls = [e["type"] for e in events if e["type"] in ("agent_muted", "agent_unmuted", "recording_paused", "recording_resumed")]
    assert controls == ["agent_muted", "agent_unmuted", "recording_paused", "recording_resumed"]
    assert {e["actor"] for e in events if e["type"] in ("recording_paused", "recording_resumed")} == {e["actor"] for e in events if e["type"] == "answered"}
