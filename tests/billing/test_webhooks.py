"""Stripe webhooks and dunning: payloads signed with a test secret go through the real
verification; forged, altered, stale, replayed, out-of-order and foreign events are
tried; a failed payment runs past due → grace → suspended (agents kept from ready,
callers told politely) → paid → service back at once."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from billing_support import WEBHOOK_SECRET, Admin, add_agent, agent_of, billing_account, drain
from fake_stripe import FakeStripe, event, sign
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, update
from sqlalchemy.util import await_only
from tenants_support import OFFER, InProcessMedia

from kefu.billing import jobs, webhooks
from kefu.billing.models import BillingAccount, StripeEvent
from kefu.platform.events import enqueue
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.models import Call

HOOK = "/api/billing/stripe/webhook"


class PromptingMedia(InProcessMedia):
    """The in-process media plane, also keeping the prompts it was asked to play."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prompts: list[tuple[uuid.UUID, str, str]] = []

    async def play_prompt(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, prompt_id: str, text: str | None = None, **_: Any) -> int:
        self.prompts.append((call_id, prompt_id, text or ""))
        return 4000


@pytest.fixture
def settings(stripe_settings: Settings) -> Settings:
    return stripe_settings


@pytest.fixture
def media(runtime: Runtime) -> InProcessMedia:
    return PromptingMedia(runtime.settings.recordings_dir, runtime.components["acd.clock"])


async def post_event(client: Any, body: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, payload: bytes | None = None) -> Any:
    raw = payload if payload is not None else json.dumps(body).encode()
    return await client.post(HOOK, content=raw, headers={"Stripe-Signature": sign(raw, secret, timestamp), "Content-Type": "application/json"})


async def stored_events(runtime: Runtime) -> list[tuple[str, str, str]]:
    async with runtime.db.platform_session(reason="test") as session:
        return [(e.id, e.type, e.status) for e in await session.scalars(select(StripeEvent).order_by(StripeEvent.received_at, StripeEvent.id))]


async def subscribed(client: Any, runtime: Runtime, admin: Admin, stripe_server: FakeStripe, seats: int = 1) -> str:
    """The tenant rents ``seats`` more with a card on file: its Stripe subscription exists; returns its id."""
    async with runtime.db.tenant_session(tenant_id=admin.tenant_id) as session:
        row = await session.scalar(select(BillingAccount).where(BillingAccount.tenant_id == admin.tenant_id))
        assert row is not None
        row.payment_method_ready = True
    response = await client.post("/api/v1/billing/seats", json={"rent": seats}, headers={**admin.headers, "Idempotency-Key": f"sub-{admin.tenant_id}"})
    assert response.status_code == 200, response.text
    await drain(runtime)
    return (await billing_account(runtime, admin.tenant_id)).stripe_subscription_id or ""


# --- verification ----------------------------------------------------------------------


async def test_forged_altered_stale_and_unsigned_events_are_refused_and_leave_nothing(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe,
) -> None:
    sub = await subscribed(client, runtime, acme, stripe_server)
    invoice = stripe_server.fail_invoice(stripe_server.create_invoice(sub)["id"])
    body = event("invoice.payment_failed", invoice)
    raw = json.dumps(body).encode()

    unsigned = await client.post(HOOK, content=raw, headers={"Content-Type": "application/json"})
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "invalid_signature")
    forged = await post_event(client, body, secret="whsec_someone_else")
    assert (forged.status_code, forged.json()["code"]) == (400, "invalid_signature")
    altered = await client.post(HOOK, content=raw.replace(b'"open"', b'"paid"'), headers={"Stripe-Signature": sign(raw, WEBHOOK_SECRET)})
    assert (altered.status_code, altered.json()["code"]) == (400, "invalid_signature")
    stale = await post_event(client, body, timestamp=int(time.time()) - 600)  # a capture replayed ten minutes later
    assert (stale.status_code, stale.json()["code"]) == (400, "invalid_signature")
    garbage = await post_event(client, {}, payload=b"not json at all")
    assert (garbage.status_code, garbage.json()["code"]) == (400, "invalid_event")
    shapeless = await post_event(client, {"id": "evt_1", "type": "invoice.paid"})
    assert (shapeless.status_code, shapeless.json()["code"]) == (400, "invalid_event")

    assert await stored_events(runtime) == []
    assert (await billing_account(runtime, acme.tenant_id)).status == "active"


async def test_each_event_is_stored_once_with_its_status(client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe) -> None:
    sub = await subscribed(client, runtime, acme, stripe_server)
    invoice = stripe_server.create_invoice(sub)
    created = event("invoice.finalized", invoice, event_id="evt_finalized")
    first = await post_event(client, created)
    assert first.json() == {"id": "evt_finalized", "status": "handled"}
    again = await post_event(client, created)  # Stripe delivers at least once
    assert (again.status_code, again.json()) == (200, {"id": "evt_finalized", "status": "duplicate"})

    old_version = await post_event(client, event("invoice.updated", invoice, event_id="evt_old", api_version="2020-08-27"))
    assert (old_version.status_code, old_version.json()["code"]) == (400, "api_version_mismatch")
    unknown = await post_event(client, event("charge.refunded", {"id": "ch_1", "object": "charge", "customer": invoice["customer"]}, event_id="evt_charge"))
    assert unknown.json() == {"id": "evt_charge", "status": "ignored"}
    stranger = await post_event(client, event("invoice.paid", {**invoice, "customer": "cus_nobody"}, event_id="evt_stranger"))
    assert stranger.json() == {"id": "evt_stranger", "status": "ignored"}

    assert sorted(await stored_events(runtime)) == sorted([
        ("evt_finalized", "invoice.finalized", "handled"), ("evt_old", "invoice.updated", "rejected"),
        ("evt_charge", "charge.refunded", "ignored"), ("evt_stranger", "invoice.paid", "ignored"),
    ])
    invoices = (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json()
    assert [(i["number"], i["status"], i["total"], i["sent_to_stripe"]) for i in invoices] == [(invoice["number"], "open", invoice["total"], True)]


async def test_an_event_arriving_while_another_write_commits_is_handled_not_refused(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe,
) -> None:
    """Another connection commits a write while the webhook's transaction begins (on SQLite a
    read before the first write would be made stale by it: "database is locked", a 500)."""
    sub = await subscribed(client, runtime, acme, stripe_server)
    invoice = stripe_server.create_invoice(sub)
    engine = runtime.db.platform_engine.sync_engine
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as writer:
        await writer.execute(update(BillingAccount).where(BillingAccount.tenant_id == acme.tenant_id).values(updated_at=func.now()))
        committed: list[str] = []

        def commit_the_other_write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            # Between the webhook transaction's read of its event and its first write (its insert), or, where
            # the transaction takes the write lock first (SQLite), just as it asks for the lock.
            if (statement.startswith("INSERT INTO stripe_events") or statement.startswith("UPDATE tenants SET id")) and not committed:
                committed.append(statement)
                await_only(writer.commit())

        sqlalchemy_event.listen(engine, "before_cursor_execute", commit_the_other_write)
        try:
            answer = await post_event(client, event("invoice.finalized", invoice, event_id="evt_concurrent"))
        finally:
            sqlalchemy_event.remove(engine, "before_cursor_execute", commit_the_other_write)
    assert committed
    assert (answer.status_code, answer.json()) == (200, {"id": "evt_concurrent", "status": "handled"})


async def test_a_handler_failure_is_stored_and_the_redelivery_handles_it(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sub = await subscribed(client, runtime, acme, stripe_server)
    invoice = stripe_server.pay_invoice(stripe_server.create_invoice(sub)["id"])
    body = event("invoice.paid", invoice, event_id="evt_flaky")

    async def broken(*_args: Any) -> str:
        raise RuntimeError("database went away")

    monkeypatch.setitem(webhooks.HANDLED, "invoice.paid", broken)
    failed = await post_event(client, body)
    assert (failed.status_code, failed.json()["code"]) == (500, "event_failed")
    assert await stored_events(runtime) == [("evt_flaky", "invoice.paid", "failed")]
    assert (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json() == []  # nothing half-done

    monkeypatch.undo()
    assert (await post_event(client, body)).json() == {"id": "evt_flaky", "status": "handled"}
    assert await stored_events(runtime) == [("evt_flaky", "invoice.paid", "handled")]


# --- dunning ------------------------------------------------------------------------------


async def test_failed_payment_grace_suspension_and_payment_restoring_service_at_once(
    client: Any, runtime: Runtime, acme: Admin, globex: Admin, stripe_server: FakeStripe, media: PromptingMedia, traveller: Any,
) -> None:
    sub = await subscribed(client, runtime, acme, stripe_server)
    await subscribed(client, runtime, globex, stripe_server)
    ann = agent_of(acme, await add_agent(client, runtime, acme, "Ann"))
    ann_agent = (await client.get("/api/v1/agents", headers=acme.headers)).json()[0]
    queue = (await client.post("/api/v1/queues", json={"name": "Support"}, headers=acme.headers)).json()
    await client.put(f"/api/v1/queues/{queue['id']}/members", json={"agent_ids": [ann_agent["id"]]}, headers=acme.headers)
    widget = (await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=acme.headers)).json()["widget_key"]
    assert (await client.post("/api/v1/agent/session", headers=ann.headers)).status_code == 200
    assert (await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann.headers)).status_code == 200

    invoice = stripe_server.fail_invoice(stripe_server.create_invoice(sub)["id"])
    assert (await post_event(client, event("invoice.payment_failed", invoice))).json()["status"] == "handled"
    account = (await client.get("/api/v1/billing", headers=acme.headers)).json()
    assert account["status"] == "past_due" and "payment failed" in account["notice"].lower()
    past_due = await billing_account(runtime, acme.tenant_id)
    assert past_due.grace_until is not None and past_due.past_due_since is not None
    assert past_due.grace_until - past_due.past_due_since == timedelta(days=7)
    rent = await client.post("/api/v1/billing/seats", json={"rent": 1}, headers={**acme.headers, "Idempotency-Key": "while-due"})
    assert (rent.status_code, rent.json()["code"]) == (409, "account_past_due")

    async def maintain(tick: str) -> None:
        async with runtime.db.platform_session(reason="test") as session:
            for tenant in (acme, globex):
                await enqueue(session, jobs.maintain_account, tenant_id=tenant.tenant_id, tick=tick)
        await drain(runtime)

    # During the grace period service goes on.
    traveller.shift(timedelta(days=6))
    await maintain("day-6")
    assert (await billing_account(runtime, acme.tenant_id)).status == "past_due"
    assert (await client.get("/api/v1/agent/state", headers=ann.headers)).json()["status"] == "available"

    # Grace over: suspended.  The ready agent is made not ready and cannot go ready again.
    traveller.shift(timedelta(days=1, seconds=1))
    await maintain("day-7")
    assert (await billing_account(runtime, acme.tenant_id)).status == "suspended"
    assert (await billing_account(runtime, globex.tenant_id)).status == "active"  # only the tenant that did not pay
    state = (await client.get("/api/v1/agent/state", headers=ann.headers)).json()
    assert (state["status"], state["not_ready_reason"]) == ("not_ready", "billing_suspended")
    refused = await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "billing_suspended")
    # The admin can still sign in to pay: the tenant itself is active.
    assert (await client.get("/api/v1/billing", headers=acme.headers)).json()["status"] == "suspended"

    # A caller hears the polite message; the call ends billing_suspended and its line drops after it.
    call = await client.post(f"/api/v1/widget/{widget}/calls", json={"caller_name": "Li Lei", "offer_sdp": OFFER})
    assert call.status_code == 201, call.text
    assert call.json()["status"] == "suspended"
    call_id = uuid.UUID(call.json()["call_id"])
    assert [(c, p) for c, p, _t in media.prompts] == [(call_id, "billing_suspended")]
    assert "not available" in media.prompts[0][2]
    async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
        ended = await session.scalar(select(Call).where(Call.tenant_id == acme.tenant_id, Call.id == call_id))
        assert ended is not None and (ended.status, ended.end_reason, ended.agent_id) == ("ended", "billing_suspended", None)
    await runtime.components["acd.timers"].advance(4 + 2)
    assert call_id in media.ended

    # Paying restores service at once.
    paid = stripe_server.pay_invoice(invoice["id"])
    assert (await post_event(client, event("invoice.paid", paid))).json()["status"] == "handled"
    assert (await billing_account(runtime, acme.tenant_id)).status == "active"
    assert (await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann.headers)).status_code == 200
    shown = (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json()
    assert [(i["status"], i["payment_failed"], i["amount_paid"]) for i in shown] == [("paid", False, paid["amount_paid"])]


async def test_events_out_of_order_settle_on_the_same_answer(client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe) -> None:
    sub = await subscribed(client, runtime, acme, stripe_server)
    invoice_id = stripe_server.create_invoice(sub)["id"]
    failed = stripe_server.fail_invoice(invoice_id)
    paid = stripe_server.pay_invoice(invoice_id)
    now = int(time.time())
    # The later "paid" arrives first; the earlier "payment failed" arrives after it.
    assert (await post_event(client, event("invoice.paid", paid, created=now))).json()["status"] == "handled"
    late = await post_event(client, event("invoice.payment_failed", failed, created=now - 60))
    assert late.json()["status"] == "ignored"
    assert (await billing_account(runtime, acme.tenant_id)).status == "active"
    [shown] = (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json()
    assert (shown["status"], shown["payment_failed"]) == ("paid", False)
    # An "updated" of the same moment claiming the invoice is open does not reopen it.
    assert (await post_event(client, event("invoice.updated", {**failed, "status": "open"}, created=now))).json()["status"] == "handled"
    assert (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json()[0]["status"] == "paid"


async def test_an_event_changes_only_the_tenant_of_its_customer(
    client: Any, runtime: Runtime, acme: Admin, globex: Admin, stripe_server: FakeStripe,
) -> None:
    await subscribed(client, runtime, acme, stripe_server)
    globex_sub = await subscribed(client, runtime, globex, stripe_server)
    failed = stripe_server.fail_invoice(stripe_server.create_invoice(globex_sub)["id"])
    await post_event(client, event("invoice.payment_failed", failed))
    assert (await billing_account(runtime, globex.tenant_id)).status == "past_due"
    assert (await billing_account(runtime, acme.tenant_id)).status == "active"
    assert (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json() == []
    assert len((await client.get("/api/v1/billing/invoices", headers=globex.headers)).json()) == 1


# --- payment methods -----------------------------------------------------------------------


async def test_checkout_saves_a_card_that_becomes_the_default_and_the_portal_opens(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe,
) -> None:
    link = await client.post("/api/v1/billing/checkout", json={}, headers=acme.headers)
    assert link.status_code == 200, link.text
    assert link.json()["url"].startswith(f"{stripe_server.url}/checkout/")
    [session] = stripe_server.objects("checkout.session")
    assert (session["mode"], session["success_url"]) == ("setup", f"{runtime.settings.public_url}/portal/billing?setup=done")
    completed = stripe_server.complete_checkout(session["id"], set_as_default=False)  # as Stripe does: attached, not default
    assert (await post_event(client, event("checkout.session.completed", completed))).json()["status"] == "handled"
    await drain(runtime)
    customer = stripe_server.get(session["customer"])
    assert customer["invoice_settings"]["default_payment_method"] is not None
    assert (await client.get("/api/v1/billing", headers=acme.headers)).json()["payment_method_ready"] is True
    portal = await client.post("/api/v1/billing/portal", json={"return_url": f"{runtime.settings.public_url}/portal"}, headers=acme.headers)
    assert portal.status_code == 200 and portal.json()["url"]
    elsewhere = await client.post("/api/v1/billing/portal", json={"return_url": "https://evil.example/"}, headers=acme.headers)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (400, "invalid_return_url")
    async with runtime.db.platform_session(reason="test") as session_:
        assert await session_.scalar(select(func.count()).select_from(StripeEvent)) == 1
