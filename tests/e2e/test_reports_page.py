"""The reports page in real Chromium on a live server.

A report of calls made in the test (one answered, one abandoned): the table, the bar,
line and pie charts, and the CSV download.  Reached from the portal's navigation,
the Erlang C staffing calculator shows the published worked example's figures (Call Centre
Helper: 100 calls in 30 minutes, AHT 180 s, 80 % in 20 s, 30 % shrinkage -> 14 agents on the
phones, 20 scheduled), a bad input is refused in place, the workload formula answers, and the
page asks nothing of any other host."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser_support import STEP_MS, LiveServer, admin_api, connect_call, launch_chromium, sign_in, sign_in_agent_ready
from playwright.sync_api import Playwright, expect


@pytest.mark.browser
def test_the_staffing_calculator_shows_agents_service_level_asa_and_occupancy(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        hosts: set[str] = set()
        page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
        sign_in(page, server.url, "/portal", demo["tenant"], demo["admin_email"], demo["admin_password"])
        page.click("#reports-link")
        expect(page.locator("#reports")).to_be_visible(timeout=STEP_MS)

        for field, value in (("#staff-calls", "100"), ("#staff-interval", "30"), ("#staff-aht", "180"), ("#staff-target-percent", "80"),
                             ("#staff-target-s", "20"), ("#staff-shrinkage", "30")):
            page.fill(field, value)
        page.click("#staff-calculate")
        expect(page.locator("#staffing-result")).to_be_visible(timeout=STEP_MS)
        figures = {
            "#staff-traffic": "10 erlangs", "#staff-on-phones": "14", "#staff-scheduled": "20", "#staff-service-level": "88.84 %",
            "#staff-asa": "7.84 s", "#staff-occupancy": "71.43 %", "#staff-pwait": "17.41 %",
        }
        for selector, text in figures.items():
            expect(page.locator(selector)).to_have_text(text)

        # 100 % shrinkage is impossible: the field is marked, the figures are withdrawn.
        page.fill("#staff-shrinkage", "100")
        page.click("#staff-calculate")
        expect(page.locator("#staff-error")).to_be_visible(timeout=STEP_MS)
        expect(page.locator("#staff-error")).to_contain_text("shrinkage_percent")
        expect(page.locator("#staff-shrinkage")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#staffing-result")).to_be_hidden()

        # The monthly workload formula with the form's example: 1,500 h / 120.96 h = 12.40 -> 13 agents.
        page.click("#workload-calculate")
        expect(page.locator("#workload-agents")).to_have_text("13", timeout=STEP_MS)
        expect(page.locator("#workload-exact")).to_have_text("12.4")
        expect(page.locator("#workload-productive")).to_have_text("120.96 h")
    finally:
        context.close()
    assert hosts == {server.url.split("/")[2]}


# The report of the calls this test makes, once the rollups have them (a rebuild, then the API is polled from the page).
REPORT_HAS_CALLS_JS = """async ([from, to, calls]) => {
  const session = JSON.parse(sessionStorage.getItem("kefu.session.portal"));
  const response = await fetch(`/api/v1/reports?dimension=tenant&interval=day&from=${from}&to=${to}`,
                               { headers: { Authorization: `Bearer ${session.access_token}` } });
  if (!response.ok) return false;
  const report = await response.json();
  return report.rows.reduce((total, row) => total + (row.total_calls || 0), 0) >= calls;
}"""


@pytest.mark.browser
def test_a_report_of_calls_made_here_shows_in_the_table_the_charts_and_the_csv_download(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    contexts = [launch_chromium(playwright, tmp_path / f"{party}-profile", tone_wavs[party]) for party in ("agent", "caller")]
    try:
        agent, caller = (context.new_page() for context in contexts)
        sign_in_agent_ready(agent, server.url, demo)
        # One answered call ...
        connect_call(agent, caller, server.url, demo, caller_name="Wang Fang")
        agent.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(agent.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
        # ... and one the caller gives up on while nobody is ready (a short abandon: seconds in the queue).
        agent.click("#not-ready-button")
        expect(agent.locator("#agent-state")).to_have_text("not_ready", timeout=STEP_MS)
        caller.goto(f"{server.url}/call/{demo['widget_key']}")
        caller.fill("#caller-name", "Wang Fang")
        caller.click("#call-button")
        expect(caller.locator("#call-state")).to_have_text("queued", timeout=STEP_MS)
        caller.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()

    with admin_api(server, demo) as api:
        rebuild = api.post("/api/v1/reports/rebuild")
        assert rebuild.status_code == 202, rebuild.text
    # Any time zone's "today" is within a day of UTC's.
    today = datetime.now(UTC).date()
    first, last = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()

    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        sign_in(page, server.url, "/portal/reports", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(page.locator("#reports")).to_be_visible(timeout=STEP_MS)
        page.wait_for_function(REPORT_HAS_CALLS_JS, arg=[first, last, 2], polling=250, timeout=4 * STEP_MS)
        page.fill("#report-from", first)
        page.fill("#report-to", last)
        page.select_option("#report-dimension", "tenant")
        page.select_option("#report-interval", "day")
        page.click("#report-run")

        total = page.locator('#report-table td[data-key="total_calls"]', has_text=re.compile(r"^2$"))
        expect(total).to_have_count(1, timeout=STEP_MS)
        day = total.locator("xpath=..")
        expect(day.locator('td[data-key="answered"]')).to_have_text("1")
        expect(day.locator('td[data-key="abandoned"]')).to_have_text("1")
        period = day.get_attribute("data-period")
        assert period and period[:10] in (first, today.isoformat(), last)

        # Charts: total calls per period (bar), its trend (line), the outcomes (pie).
        page.select_option("#chart-metric", "total_calls")
        expect(page.locator('#bar-chart rect.bar[data-value="2"]')).to_have_count(1)
        expect(page.locator('#line-chart circle.point[data-value="2"]')).to_have_count(1)
        expect(page.locator('#pie-chart .slice[data-key="answered"]')).to_have_attribute("data-value", "1")
        abandoned = page.locator('#pie-chart .slice[data-key="short_abandoned"], #pie-chart .slice[data-key="abandoned"]')
        expect(abandoned).to_have_count(1)
        expect(abandoned).to_have_attribute("data-value", "1")

        # The CSV download: the same table, fetched with the bearer token.
        with page.expect_download() as download:
            page.click("#download-csv")
        saved = tmp_path / "report.csv"
        download.value.save_as(saved)
        lines = saved.read_text(encoding="utf-8-sig").splitlines()
        header = lines[0].split(",")
        assert header[:4] == ["period_start", "id", "name", "total_calls"]
        rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
        assert [(r["period_start"], r["total_calls"], r["answered"], r["abandoned"]) for r in rows if r["total_calls"] != "0"] == [
            (period, "2", "1", "1")
        ]
    finally:
        context.close()
