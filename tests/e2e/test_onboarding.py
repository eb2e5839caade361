"""Onboarding in a real browser: an operator creates a tenant through the admin
API, its first admin opens the invitation link, chooses a password, lands in
the portal signed in, and creates an agent there; a single sign-on landing
(tokens in the fragment) opens the portal too."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from browser_support import LiveServer, launch_chromium
from playwright.sync_api import Playwright, expect

from kefu.platform.identity.principal import Principal

STEP_MS = 15_000


@pytest.mark.browser
def test_an_invited_admin_sets_a_password_and_lands_in_the_portal(
    live_server: LiveServer, playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    runtime = live_server.app.state.runtime
    operator = runtime.tokens.issue(
        Principal(kind="operator", subject="ops-e2e", tenant_id=None, scopes=frozenset({"platform:tenants.write"}))
    )
    created = httpx.post(
        f"{live_server.url}/api/admin/v1/tenants",
        json={"name": "Northwind", "slug": "northwind", "locale": "zh-CN", "time_zone": "Asia/Shanghai", "plan": "standard", "seats": 3,
              "admin": {"email": "nina@northwind.test", "display_name": "Nina"}},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert created.status_code == 201, created.text
    invitation_url = created.json()["admin"]["invitation_url"]
    assert invitation_url.startswith(f"{live_server.url}/invite#")

    context = launch_chromium(playwright, tmp_path / "admin-profile", tone_wavs["agent"])
    try:
        page = context.new_page()
        page.goto(invitation_url)
        # The secret leaves the address bar (and so the history) at once.
        page.wait_for_function("() => location.hash === ''", timeout=STEP_MS)
        page.fill("#new-password", "nina-password-1")
        page.fill("#confirm-password", "nina-password-2")
        page.click("#accept-button")
        expect(page.locator("#invite-error")).to_be_visible()
        page.fill("#confirm-password", "nina-password-1")
        page.click("#accept-button")

        page.wait_for_url(f"{live_server.url}/portal/", timeout=STEP_MS)
        expect(page.locator("#portal")).to_be_visible(timeout=STEP_MS)
        expect(page.locator("#portal-tenant")).to_have_text("Northwind")
        # The tenant's locale (zh-CN) takes over once signed in.
        expect(page.locator("#logout-button")).to_have_text("签出")

        page.fill("#agent-email", "omar@northwind.test")
        page.fill("#agent-name", "Omar")
        page.fill("#agent-password", "omar-password-1")
        page.click("#create-agent-button")
        expect(page.locator("#agents-table tbody")).to_contain_text("omar@northwind.test", timeout=STEP_MS)

        # Single sign-on hands the portal its tokens in the fragment (docs/identity.md).
        tokens = httpx.post(f"{live_server.url}/api/v1/auth/login",
                            json={"tenant": "northwind", "email": "nina@northwind.test", "password": "nina-password-1"}).json()
        sso_tab = context.new_page()
        sso_tab.goto(f"{live_server.url}/portal/#access_token={tokens['access_token']}&refresh_token={tokens['refresh_token']}")
        expect(sso_tab.locator("#portal")).to_be_visible(timeout=STEP_MS)
        expect(sso_tab.locator("#portal-tenant")).to_have_text("Northwind")
        expect(sso_tab.locator("#agents-table tbody")).to_contain_text("omar@northwind.test", timeout=STEP_MS)
        assert "access_token" not in sso_tab.url
    finally:
        context.close()

    # The invitation is spent, and the new password signs the admin in.
    reused = httpx.post(f"{live_server.url}/api/v1/invitations/accept",
                        json={"token": invitation_url.split("#", 1)[1], "password": "another-password-1"})
    assert reused.status_code in (400, 401, 404, 409, 410) and reused.json()["code"]
    login = httpx.post(f"{live_server.url}/api/v1/auth/login",
                       json={"tenant": "northwind", "email": "nina@northwind.test", "password": "nina-password-1"})
    assert login.status_code == 200
