"""The recordings page in real Chromium, on a real recorded call: search, play both
channels through short-lived signed links and hear each party alone, download one
party's file, put the call on legal hold; every link is in the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Playwright, expect

from browser_support import AGENT_HZ, CALLER_HZ, STEP_MS, LiveServer, admin_api, launch_chromium, sign_in
from player_support import listen_to_player, recorded_call, wait_for_player_tones


@pytest.mark.browser
def test_search_play_each_party_alone_download_and_hold_a_recorded_call(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    call_id = recorded_call(server, demo, playwright, tone_wavs, tmp_path, caller_name="Zhang Wei")
    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        media_requests: list[str] = []
        page.on("request", lambda request: media_requests.append(request.url) if "/media?" in request.url else None)
        sign_in(page, server.url, "/portal/recordings", demo["tenant"], demo["admin_email"], demo["admin_password"])
        row = page.locator(f'#recordings-table tr[data-call-id="{call_id}"]')
        expect(row).to_be_visible(timeout=STEP_MS)
        expect(row).to_contain_text("Zhang Wei")
        expect(row).to_contain_text("Demo Agent")

        # A search that excludes it, then one that finds it.
        page.fill("#search-caller", "nobody")
        page.click("#search-button")
        expect(page.locator("#no-recordings")).to_be_visible(timeout=STEP_MS)
        page.fill("#search-caller", "zhang")
        page.click("#search-button")
        expect(row).to_be_visible(timeout=STEP_MS)

        # Play: both parties' channels, in step; then each alone.
        row.locator(".play-button").click()
        expect(page.locator(".player .player-party")).to_have_count(2, timeout=STEP_MS)
        listen_to_player(page)
        wait_for_player_tones(page, {CALLER_HZ: True, AGENT_HZ: True})
        page.locator('.player-party[data-party="caller"] .player-solo').click()
        wait_for_player_tones(page, {CALLER_HZ: True, AGENT_HZ: False})
        page.locator('.player-party[data-party="agent"] .player-solo').click()
        wait_for_player_tones(page, {CALLER_HZ: False, AGENT_HZ: True})
        assert media_requests and all("signature=" in url and "expires=" in url for url in media_requests)

        # Download one party's file (a download link, served as an attachment).
        with page.expect_download() as download:
            row.locator('.download-button[data-party="caller"]').click()
        saved = tmp_path / "caller-download"
        download.value.save_as(saved)
        assert saved.read_bytes()[:4] == b"OggS"

        # Legal hold, with its reason.
        page.once("dialog", lambda dialog: dialog.accept("Case 2026-117"))
        row.locator(".hold-button").click()
        expect(row.locator(".held")).to_have_attribute("data-held", "true", timeout=STEP_MS)
    finally:
        context.close()

    with admin_api(server, demo) as api:
        entries = api.get("/api/v1/audit-log", params={"limit": 100}).json()["items"]
        actions = {e["action"] for e in entries}
        assert {"recording.listened", "recording.downloaded"} <= actions, actions
        holds = api.get("/api/v1/recordings/legal-holds").json()
        assert [(h["call_id"], h["reason"]) for h in holds] == [(call_id, "Case 2026-117")]
