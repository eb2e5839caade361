"""The wallboard in real Chromium: the demo admin's board shows a caller waiting and the
demo agent's states change live, an abandon and an answered call counted (the service
level green), and the page reconnects after its socket drops; an agent is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_support import STEP_MS, LiveServer, admin_api, launch_chromium, sign_in
from playwright.sync_api import Playwright, expect


@pytest.mark.browser
def test_the_wallboard_shows_a_waiting_call_and_agent_states_live(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with admin_api(server, demo) as api:
        [queue] = api.get("/api/v1/queues").json()
    contexts = [launch_chromium(playwright, tmp_path / f"{party}-profile", tone_wavs[party]) for party in ("supervisor", "agent", "caller")]
    try:
        board, agent, caller = (context.new_page() for context in contexts)
        sign_in(board, server.url, "/wallboard/", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(board.locator("#wallboard")).to_be_visible(timeout=STEP_MS)
        expect(board.locator("#wb-status")).to_have_attribute("data-state", "live", timeout=STEP_MS)
        expect(board.locator("#wb-clock")).to_have_text(re.compile(r"^\d{1,2}:\d{2}:\d{2}$"))
        expect(board.locator("#wb-scope")).to_have_attribute("data-all", "true")
        row = board.locator(f'#queues-board tr[data-queue-id="{queue["id"]}"]')
        expect(row.locator(".waiting")).to_have_text("0", timeout=STEP_MS)
        offline = board.locator('#agents-legend [data-state="offline"] .count')
        expect(offline).to_have_text("1")
        expect(board.locator("#total-sl")).to_have_attribute("data-level", "none")

        # The agent logs in: not ready, then the board says so without a reload.
        sign_in(agent, server.url, "/agent/", demo["tenant"], demo["agent_email"], demo["agent_password"])
        expect(agent.locator("#agent-state")).to_have_text("not_ready", timeout=STEP_MS)
        expect(board.locator('#agents-legend [data-state="not_ready"] .count')).to_have_text("1", timeout=STEP_MS)
        expect(offline).to_have_text("0")
        expect(board.locator('#agents-bar .segment[data-state="not_ready"]')).to_have_count(1)

        # A caller waits: the tile and the queue row show it, and the longest wait ticks.
        caller.goto(f"{server.url}/call/{demo['widget_key']}")
        caller.fill("#caller-name", "Li Lei")
        caller.click("#call-button")
        expect(caller.locator("#call-state")).to_have_text("queued", timeout=STEP_MS)
        expect(board.locator("#total-waiting")).to_have_text("1", timeout=STEP_MS)
        expect(row.locator(".waiting")).to_have_text("1")
        expect(board.locator("#total-longest")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=STEP_MS)

        # The agent goes ready: the call rings there, and the board shows the agent ringing.
        agent.click("#ready-button")
        expect(board.locator('#agents-legend [data-state="ringing"] .count')).to_have_text("1", timeout=STEP_MS)
        expect(board.locator('#agents-legend [data-state="not_ready"] .count')).to_have_text("0")

        # The socket drops: the page reconnects and keeps following.
        board.evaluate("window.kefuWallboard.socket.close()")
        expect(board.locator("#wb-status")).to_have_attribute("data-state", "live", timeout=STEP_MS)

        # The caller gives up within 20 s: one abandoned, a short one, left out of the service level.
        caller.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(board.locator("#total-waiting")).to_have_text("0", timeout=STEP_MS)
        expect(board.locator("#total-abandoned")).to_have_text("1", timeout=STEP_MS)
        expect(board.locator('#agents-legend [data-state="available"] .count')).to_have_text("1", timeout=STEP_MS)
        expect(board.locator("#total-sl")).to_have_attribute("data-level", "none")

        # The next caller is answered at once: answered today 1, service level 100 % (green), agent on a call.
        caller.click("#call-button")
        expect(agent.locator("#answer-button")).to_be_enabled(timeout=STEP_MS)
        agent.click("#answer-button")
        expect(board.locator('#agents-legend [data-state="on_call"] .count')).to_have_text("1", timeout=STEP_MS)
        expect(board.locator("#total-answered")).to_have_text("1", timeout=STEP_MS)
        expect(board.locator("#total-sl")).to_have_text("100%")
        expect(board.locator("#total-sl")).to_have_attribute("data-level", "green")
        expect(row.locator(".sl")).to_have_attribute("data-level", "green")
        caller.click("#hangup-button")
        expect(board.locator('#agents-legend [data-state="on_call"] .count')).to_have_text("0", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()


@pytest.mark.browser
def test_an_agent_is_refused_the_wallboard_and_the_page_speaks_chinese(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    context = launch_chromium(playwright, tmp_path / "agent-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        sign_in(page, server.url, "/wallboard/?lang=zh-CN", demo["tenant"], demo["agent_email"], demo["agent_password"])
        expect(page.locator("#login-error")).to_have_text("该账号无权查看实时大屏（需要报表权限）。", timeout=STEP_MS)
        expect(page.locator("#wallboard")).to_be_hidden()
        expect(page).to_have_title("实时大屏")
    finally:
        context.close()
