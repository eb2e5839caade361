"""The IVR in real Chromium: a caller walks a three-level menu with the caller page's
keypad (RFC 4733 DTMF on its WebRTC audio) into the right queue; an after-hours caller
leaves a voicemail that the admin finds as a task in the portal; an admin builds a
flow in the editor, sees its errors at their node and exit, publishes it and maps the
web entry point to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import STEP_MS, LiveServer, admin_api, launch_chromium, sign_in
from playwright.sync_api import Page, Playwright, expect


def say(text: str) -> dict[str, Any]:
    return {"en": {"text": text}}


def new_queue(api: httpx.Client, name: str) -> str:
    created = api.post("/api/v1/queues", json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def demo_entry_point(api: httpx.Client) -> dict[str, Any]:
    [entry] = api.get("/api/v1/entry-points").json()
    return entry


def publish_and_map(api: httpx.Client, name: str, document: dict[str, Any]) -> str:
    flow = api.post("/api/v1/ivr/flows", json={"name": name, "document": document})
    assert flow.status_code == 201, flow.text
    published = api.post(f"/api/v1/ivr/flows/{flow.json()['id']}/publish")
    assert published.status_code == 201, published.text
    mapped = api.patch(f"/api/v1/entry-points/{demo_entry_point(api)['id']}", json={"flow_id": flow.json()["id"]})
    assert mapped.status_code == 200, mapped.text
    return str(flow.json()["id"])


def caller_call_id(page: Page, widget_key: str) -> str:
    return str(json.loads(page.evaluate("(key) => sessionStorage.getItem(key)", f"kefu.call.{widget_key}"))["call_id"])


def start_call(page: Page, server: LiveServer, widget_key: str, name: str) -> None:
    page.goto(f"{server.url}/call/{widget_key}?lang=en")
    page.fill("#caller-name", name)
    page.click("#call-button")


@pytest.mark.browser
def test_a_caller_walks_a_three_level_menu_by_dtmf_into_the_right_queue(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with admin_api(server, demo) as api:
        general, printers, laptops = new_queue(api, "General"), new_queue(api, "Printers"), new_queue(api, "Laptops")
        publish_and_map(api, "Main line", {"start": "main", "nodes": {
            "main": {"type": "menu", "prompt": say("Sales one, support two."), "timeout_s": 10,
                     "exits": {"1": "sales", "2": "support", "invalid": "general", "no_input": "general"}},
            "sales": {"type": "queue", "queue_id": general},
            "support": {"type": "menu", "prompt": say("Hardware one, software two."), "timeout_s": 10,
                        "exits": {"1": "hardware", "2": "general", "invalid": "general", "no_input": "general"}},
            "hardware": {"type": "menu", "prompt": say("Printers one, laptops two."), "timeout_s": 10,
                         "exits": {"1": "printers", "2": "laptops", "invalid": "general", "no_input": "general"}},
            "printers": {"type": "queue", "queue_id": printers, "priority": 5},
            "laptops": {"type": "queue", "queue_id": laptops},
            "general": {"type": "queue", "queue_id": general},
        }})

    context = launch_chromium(playwright, tmp_path / "caller-profile", tone_wavs["caller"])
    try:
        caller = context.new_page()
        start_call(caller, server, demo["widget_key"], "Wang Fang")
        expect(caller.locator("#call-state")).to_have_text("ivr", timeout=STEP_MS)
        expect(caller.locator("#keypad")).to_be_visible()
        call_id = caller_call_id(caller, demo["widget_key"])
        for key in "211":  # support, hardware, printers (keys pressed while others sound are queued behind them)
            caller.click(f"#keypad .key[data-key='{key}']")
        with admin_api(server, demo) as api:
            expect(caller.locator("#call-state")).to_have_text("queued", timeout=STEP_MS)
            expect(caller.locator("#keypad")).to_be_hidden()
            detail = api.get(f"/api/v1/calls/{call_id}").json()
            assert (detail["queue_id"], detail["status"]) == (printers, "queued")
            exits = [(e["data"]["node"], e["data"]["exit"]) for e in api.get(f"/api/v1/calls/{call_id}/events").json() if e["type"] == "ivr_left"]
            assert exits == [("main", "2"), ("support", "1"), ("hardware", "1")]
        caller.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
    finally:
        context.close()


@pytest.mark.browser
def test_an_after_hours_caller_leaves_a_voicemail_that_the_portal_shows_as_a_task(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    with admin_api(server, demo) as api:
        [support] = [q["id"] for q in api.get("/api/v1/queues").json() if q["name"] == "Support"]
        # No opening hours at all: closed whenever the test runs.
        closed = api.post("/api/v1/schedules", json={"name": "Never", "time_zone": "Asia/Shanghai", "weekly": {}})
        assert closed.status_code == 201, closed.text
        publish_and_map(api, "After hours", {"start": "hours", "nodes": {
            "hours": {"type": "hours", "schedule_id": closed.json()["id"], "exits": {"open": "q", "closed": "closed"}},
            "closed": {"type": "play", "prompt": say("We are closed."), "exits": {"next": "vm"}},
            "vm": {"type": "voicemail", "queue_id": support},
            "q": {"type": "queue", "queue_id": support},
        }})

    caller_context = launch_chromium(playwright, tmp_path / "caller-profile", tone_wavs["caller"])
    admin_context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        caller = caller_context.new_page()
        start_call(caller, server, demo["widget_key"], "Zhao Lei")
        expect(caller.locator("#call-state")).to_have_text("voicemail", timeout=STEP_MS)
        expect(caller.locator("#voicemail-notice")).to_be_visible()
        call_id = caller_call_id(caller, demo["widget_key"])
        caller.wait_for_timeout(2000)  # the caller speaks for two seconds
        caller.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)

        portal = admin_context.new_page()
        sign_in(portal, server.url, "/portal/?lang=en", demo["tenant"], demo["admin_email"], demo["admin_password"])
        task = portal.locator(f"#voicemails-table tbody tr[data-call-id='{call_id}']")
        expect(task).to_contain_text("Zhao Lei", timeout=STEP_MS)
        expect(task).to_contain_text("Support")
        expect(task.locator(".play-voicemail")).to_be_enabled()
        task.locator(".play-voicemail").click()
        expect(portal.locator("#recording-player")).to_be_visible(timeout=STEP_MS)
        task.locator(".voicemail-done").click()
        expect(task).to_have_count(0, timeout=STEP_MS)
        expect(portal.locator("#error")).to_be_hidden()
    finally:
        caller_context.close()
        admin_context.close()

    with admin_api(server, demo) as api:
        [done] = api.get("/api/v1/voicemails?status=all").json()
        assert (done["call_id"], done["status"], done["done_by"] is not None) == (call_id, "done", True)
        assert done["duration_ms"] and done["duration_ms"] >= 1000
        detail = api.get(f"/api/v1/calls/{call_id}").json()
        assert detail["end_reason"] == "voicemail"


@pytest.mark.browser
def test_an_admin_builds_a_flow_in_the_editor_sees_errors_in_place_publishes_and_maps_it(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        sign_in(page, server.url, "/portal/ivr?lang=en", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(page.locator("#ivr")).to_be_visible(timeout=STEP_MS)
        page.fill("#flow-name", "Web menu")
        page.click("#create-flow-button")
        expect(page.locator("#editor")).to_be_visible(timeout=STEP_MS)
        expect(page.locator("#editor-title")).to_have_text("Web menu")

        # A new flow says goodbye; replace it with a menu as the start and a queue behind its key 1.
        expect(page.locator(".ivr-node")).to_have_count(1)
        page.locator(".ivr-node[data-node='goodbye'] .delete-node").click()
        expect(page.locator(".ivr-node")).to_have_count(0)
        page.fill("#node-id", "main")
        page.select_option("#node-type", "menu")
        page.click("#add-node-button")
        page.fill("#node-id", "support")
        page.select_option("#node-type", "queue")
        page.click("#add-node-button")
        expect(page.locator("#flow-start")).to_have_value("main")  # the first node added to an empty flow
        main = page.locator(".ivr-node[data-node='main']")
        main.locator(".prompt-text[data-locale='en']").fill("For support, press 1.")
        main.locator(".new-key").select_option("1")
        main.locator(".add-key").click()
        main.locator(".ivr-exit[data-exit='1'] .exit-target").select_option("support")
        support = page.locator(".ivr-node[data-node='support']")
        support.locator("select[data-field='queue_id']").select_option(label="Support")
        # The support node hangs below the menu in the tree now.
        expect(page.locator(".ivr-node")).to_have_count(2)

        page.click("#save-draft-button")
        expect(page.locator("#editor-status")).to_have_text("Saved; fix the errors before publishing", timeout=STEP_MS)
        expect(main).to_have_class("ivr-node has-errors")
        expect(main.locator(".ivr-exit[data-exit='invalid'] .exit-error")).to_contain_text("needs a invalid exit")
        expect(main.locator(".ivr-exit[data-exit='no_input'] .exit-error")).to_contain_text("needs a no_input exit")
        page.click("#publish-button")
        expect(page.locator("#error")).to_contain_text("flow", timeout=STEP_MS)  # 422: nothing published

        main.locator(".ivr-exit[data-exit='invalid'] .exit-target").select_option("main")
        main.locator(".ivr-exit[data-exit='no_input'] .exit-target").select_option("support")
        page.click("#publish-button")
        expect(page.locator("#editor-status")).to_have_text("Published version 1", timeout=STEP_MS)
        expect(main).to_have_class("ivr-node")
        expect(page.locator("#flows-table tbody tr", has_text="Web menu")).to_contain_text("1")

        page.fill("#simulate-inputs", "7,1")
        page.click("#simulate-button")
        # 7 is no option: asked again (a retry, in the same node), then 1.
        expect(page.locator("#simulate-result")).to_contain_text("path: main → support", timeout=STEP_MS)
        assert page.locator("#simulate-result").inner_text().count("For support, press 1.") == 2

        # An uploaded recording replaces the spoken prompt: version 2.
        page.fill("#audio-name", "Welcome")
        page.set_input_files("#audio-file", str(tone_wavs["agent"]))
        page.click("#upload-audio-button")
        expect(page.locator("#audio-table tbody tr", has_text="Welcome")).to_contain_text("4.0", timeout=STEP_MS)
        main.locator(".prompt-source[data-locale='en']").select_option(label="♪ Welcome")
        expect(main.locator(".prompt-text[data-locale='en']")).to_be_hidden()
        page.click("#publish-button")
        expect(page.locator("#editor-status")).to_have_text("Published version 2", timeout=STEP_MS)

        page.click("a[href='/portal']")
        entry = page.locator("#entry-points-table tbody tr")
        expect(entry.locator(".entry-point-flow option", has_text="Web menu")).to_have_count(1, timeout=STEP_MS)
        entry.locator(".entry-point-flow").select_option(label="Web menu")
        expect(entry.locator(".entry-point-flow")).to_have_attribute("data-saved", re.compile(r"^[0-9a-f-]{36}$"), timeout=STEP_MS)
        expect(page.locator("#error")).to_be_hidden()
    finally:
        context.close()

    with admin_api(server, demo) as api:
        [flow] = api.get("/api/v1/ivr/flows").json()
        [_, version] = api.get(f"/api/v1/ivr/flows/{flow['id']}/versions").json()
        [audio] = api.get("/api/v1/ivr/audio").json()
        assert version["document"]["start"] == "main"
        assert version["document"]["nodes"]["main"]["prompt"] == {"en": {"audio": audio["id"]}}
        assert version["document"]["nodes"]["main"]["exits"] == {"1": "support", "invalid": "main", "no_input": "support"}
        expect_entry = demo_entry_point(api)
        assert expect_entry["flow_id"] == flow["id"]
