"""The portal's billing page in real Chromium: local billing says so and keeps a double
submit to one seat change; with Stripe, the admin goes to Checkout to add a card, rents
seats, and sees a failed payment, the invoice and the service restored when it is paid —
the webhooks signed with the endpoint's secret as Stripe signs them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import STEP_MS, STRIPE_WEBHOOK_SECRET, LiveServer, admin_api, launch_chromium, sign_in
from playwright.sync_api import Playwright, expect


@pytest.mark.browser
def test_local_billing_shows_itself_and_a_double_submit_is_one_seat_change(
    demo_server: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server
    context = launch_chromium(playwright, tmp_path / "admin", tone_wavs["agent"])
    try:
        page = context.new_page()
        sign_in(page, server.url, "/portal/billing?lang=en", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(page.locator("#seats")).to_have_text("5", timeout=STEP_MS)
        expect(page.locator("#billing-notice")).to_contain_text("not sent to Stripe")
        expect(page.locator("#seats-in-use")).to_have_text("1")
        expect(page.locator("#stripe-actions")).to_be_hidden()
        page.fill("#seat-count", "2")
        # Two submits of the same open form, as a double click on a slow network sends them.
        page.evaluate("() => { const form = document.getElementById('seats-form'); form.requestSubmit(); form.requestSubmit(); }")
        expect(page.locator("#seats")).to_have_text("7", timeout=STEP_MS)
        expect(page.locator("#ledger-table tbody tr")).to_have_count(2)
        page.fill("#seat-count", "7")  # the demo agent holds a seat
        page.click("#release-button")
        expect(page.locator("#error")).to_contain_text("agents are active", timeout=STEP_MS)
        expect(page.locator("#seats")).to_have_text("7")
        page.fill("#seat-count", "3")
        page.click("#release-button")
        expect(page.locator("#seats")).to_have_text("4", timeout=STEP_MS)
        with admin_api(server, demo) as api:
            assert [e["delta"] for e in api.get("/api/v1/billing/ledger").json()] == [-3, 2, 5]
    finally:
        context.close()


def deliver(server: LiveServer, event: dict[str, Any]) -> dict[str, Any]:
    from fake_stripe import sign

    body = json.dumps(event).encode()
    response = httpx.post(f"{server.url}/api/billing/stripe/webhook", content=body,
                          headers={"Stripe-Signature": sign(body, STRIPE_WEBHOOK_SECRET), "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.browser
def test_with_stripe_the_admin_adds_a_card_rents_seats_and_sees_dunning_and_invoices(
    demo_server_with_stripe: tuple[LiveServer, dict[str, str], Any], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    from fake_stripe import event

    server, demo, stripe_server = demo_server_with_stripe
    context = launch_chromium(playwright, tmp_path / "admin", tone_wavs["agent"])
    try:
        page = context.new_page()
        sign_in(page, server.url, "/portal/billing?lang=en", demo["tenant"], demo["admin_email"], demo["admin_password"])
        expect(page.locator("#stripe-actions")).to_be_visible(timeout=STEP_MS)
        expect(page.locator("#billing-notice")).to_be_hidden()
        page.fill("#seat-count", "3")
        page.click("#rent-button")
        expect(page.locator("#error")).to_contain_text("add a payment method", timeout=STEP_MS)

        page.click("#checkout-button")
        page.wait_for_url(f"{stripe_server.url}/checkout/*", timeout=STEP_MS)
        [checkout] = stripe_server.objects("checkout.session")
        assert checkout["mode"] == "setup" and checkout["success_url"].startswith(f"{server.url}/portal/billing")
        assert deliver(server, event("checkout.session.completed", stripe_server.complete_checkout(checkout["id"], set_as_default=False)))["status"] == "handled"

        page.goto(checkout["success_url"])
        expect(page.locator("#seats")).to_have_text("5", timeout=STEP_MS)
        page.fill("#seat-count", "3")
        page.click("#rent-button")
        expect(page.locator("#seats")).to_have_text("8", timeout=STEP_MS)

        customer = checkout["customer"]
        now = int(time.time())
        invoice = {
            "id": "in_e2e_1", "object": "invoice", "customer": customer, "status": "open", "number": "KEFU-E2E-0001", "currency": "usd",
            "subtotal": 39200, "total": 39200, "amount_due": 39200, "amount_paid": 0, "attempt_count": 1,
            "period_start": now - 86400 * 30, "period_end": now, "hosted_invoice_url": f"{stripe_server.url}/invoices/in_e2e_1", "lines": {"data": []},
        }
        assert deliver(server, event("invoice.payment_failed", invoice, created=now))["status"] == "handled"
        page.reload()
        expect(page.locator("#billing-status")).to_have_text("past_due", timeout=STEP_MS)
        expect(page.locator("#billing-notice")).to_contain_text("payment failed")
        expect(page.locator("#invoices-table tbody tr")).to_have_count(1)
        expect(page.locator("#invoices-table tbody tr").first).to_contain_text("KEFU-E2E-0001")
        expect(page.locator("#invoices-table tbody a")).to_have_attribute("href", invoice["hosted_invoice_url"])

        paid = {**invoice, "status": "paid", "amount_paid": 39200, "amount_due": 0}
        assert deliver(server, event("invoice.paid", paid, created=now + 1))["status"] == "handled"
        page.reload()
        expect(page.locator("#billing-status")).to_have_text("active", timeout=STEP_MS)
        expect(page.locator("#billing-notice")).to_be_hidden()
        expect(page.locator("#invoices-table tbody tr").first).to_contain_text("paid")
    finally:
        context.close()
