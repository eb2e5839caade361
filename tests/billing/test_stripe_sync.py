"""Stripe mirrors the seat ledger: Customer, Subscription, seat quantity with proration —
through the official library against the local Stripe server, which refuses any
request that does not match Stripe's published shapes.  Faults are injected at the
HTTP level: errors, lost answers, slow answers; the ledger and Stripe stay
consistent and nobody is charged twice."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from billing_support import Admin, billing_account, drain
from fake_stripe import FakeStripe
from sqlalchemy import select

from kefu.billing.models import BillingAccount, Plan
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings


@pytest.fixture
def settings(stripe_settings: Settings) -> Settings:
    return stripe_settings


async def rent(client: Any, admin: Admin, count: int, key: str, *, release: bool = False) -> Any:
    response = await client.post("/api/v1/billing/seats", json={"release" if release else "rent": count}, headers={**admin.headers, "Idempotency-Key": key})
    assert response.status_code == 200, response.text
    return response.json()


async def ready_with_payment_method(runtime: Runtime, admin: Admin) -> None:
    async with runtime.db.tenant_session(tenant_id=admin.tenant_id) as session:
        row = await session.scalar(select(BillingAccount).where(BillingAccount.tenant_id == admin.tenant_id))
        assert row is not None
        row.payment_method_ready = True


def seat_items(server: FakeStripe) -> list[dict[str, Any]]:
    return [item for sub in server.objects("subscription") if sub["status"] != "canceled"
            for item in sub["items"]["data"] if item["price"]["recurring"]["usage_type"] == "licensed"]


async def test_renting_seats_makes_the_customer_the_subscription_and_prorated_quantity_changes(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe, traveller: Any,
) -> None:
    body = (await client.get("/api/v1/billing", headers=acme.headers)).json()
    assert (body["mode"], body["notice"]) == ("stripe", None)
    refused = await client.post("/api/v1/billing/seats", json={"rent": 1}, headers={**acme.headers, "Idempotency-Key": "early"})
    assert (refused.status_code, refused.json()["code"]) == (409, "payment_method_required")
    await ready_with_payment_method(runtime, acme)

    await rent(client, acme, 3, "first")
    await drain(runtime)
    [customer] = stripe_server.objects("customer")
    assert customer["metadata"] == {"kefu_tenant_id": str(acme.tenant_id)}
    [subscription] = stripe_server.objects("subscription")
    assert subscription["customer"] == customer["id"]
    assert [i["quantity"] for i in seat_items(stripe_server)] == [5]
    assert {i["price"]["recurring"]["usage_type"] for i in subscription["items"]["data"]} == {"licensed", "metered"}
    [created] = stripe_server.requests_to("POST", "/v1/subscriptions")
    assert created.idempotency_key == f"kefu-subscription-{acme.tenant_id}-2-0"
    assert created.stripe_version == "2026-10-28.endive"
    synced = await billing_account(runtime, acme.tenant_id)
    assert (synced.stripe_customer_id, synced.stripe_subscription_id, synced.stripe_synced_seq, synced.stripe_synced_seats) == (
        customer["id"], subscription["id"], 2, 5)
    async with runtime.db.platform_session(reason="test") as session:
        plan = await session.scalar(select(Plan).where(Plan.code == "standard"))
        assert plan is not None and plan.stripe_seat_price_id == seat_items(stripe_server)[0]["price"]["id"]

    # Ten days into the 31-day period, two more seats: Stripe prorates the 21 days left.
    traveller.shift(timedelta(days=10))
    await rent(client, acme, 2, "second")
    await drain(runtime)
    [update] = stripe_server.requests_to("POST", "/v1/subscription_items/")
    assert update.idempotency_key == f"kefu-seats-{acme.tenant_id}-3"
    assert update.params == {"quantity": "7", "proration_behavior": "create_prorations"}
    assert [i["quantity"] for i in seat_items(stripe_server)] == [7]
    [proration] = stripe_server.pending_invoice_items(customer["id"])
    assert proration["amount"] == 6639  # 2 × 49.00 × 21/31 = 66.387…
    assert (await client.get("/api/v1/billing", headers=acme.headers)).json()["stripe_synced"] is True
    # Every request Kefu sent matched Stripe's published shapes (the server refuses any other).
    assert all(r.status is not None and r.status < 400 for r in stripe_server.requests)


async def test_a_stripe_error_mid_change_is_retried_with_the_same_key_and_charges_once(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe,
) -> None:
    await ready_with_payment_method(runtime, acme)
    await rent(client, acme, 1, "one")
    await drain(runtime)
    stripe_server.fail_next("POST", "/v1/subscription_items/", status=500, times=1)
    await rent(client, acme, 1, "two")
    await drain(runtime)
    attempts = stripe_server.requests_to("POST", "/v1/subscription_items/")
    assert [a.status for a in attempts] == [500, 200]
    assert len({a.idempotency_key for a in attempts}) == 1
    assert [(old, new) for _item, old, new, _at in stripe_server.quantity_changes] == [(3, 4)]
    assert [i["quantity"] for i in seat_items(stripe_server)] == [4]


async def test_a_lost_answer_is_replayed_not_applied_twice(client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe) -> None:
    await ready_with_payment_method(runtime, acme)
    stripe_server.drop_response_next("POST", "/v1/subscriptions")
    await rent(client, acme, 2, "one")
    await drain(runtime)
    assert len(stripe_server.objects("subscription")) == 1  # the retry got the first one back
    stripe_server.drop_response_next("POST", "/v1/subscription_items/")
    await rent(client, acme, 2, "two")
    await drain(runtime)
    attempts = stripe_server.requests_to("POST", "/v1/subscription_items/")
    assert [(a.status, a.replayed) for a in attempts] == [(None, False), (200, True)]
    assert [(old, new) for _item, old, new, _at in stripe_server.quantity_changes] == [(4, 6)]
    assert [i["quantity"] for i in seat_items(stripe_server)] == [6]
    assert len(stripe_server.pending_invoice_items(stripe_server.objects("customer")[0]["id"])) == 1


async def test_a_timeout_mid_change_converges_on_one_change(client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe) -> None:
    await ready_with_payment_method(runtime, acme)
    await rent(client, acme, 1, "one")
    await drain(runtime)
    hang = stripe_server.hang_next("POST", "/v1/subscription_items/", 2.0)  # longer than the client's 0.7 s
    await rent(client, acme, 1, "two")
    await drain(runtime)  # the job's own retries (Dramatiq, with backoff) run until Stripe answers
    assert hang.wait_done()
    keys = {a.idempotency_key for a in stripe_server.requests_to("POST", "/v1/subscription_items/")}
    assert keys == {f"kefu-seats-{acme.tenant_id}-3"}
    assert [(old, new) for _item, old, new, _at in stripe_server.quantity_changes] == [(3, 4)]
    synced = await billing_account(runtime, acme.tenant_id)
    assert (synced.seats, synced.stripe_synced_seats, synced.stripe_synced_seq) == (4, 4, 3)


async def test_quantity_updates_are_limited_per_hour_and_later_changes_go_together(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe, traveller: Any,
) -> None:
    await ready_with_payment_method(runtime, acme)
    broker = runtime.components["broker"]
    await rent(client, acme, 1, "c1")  # creates the subscription: the first of 3 this hour
    await drain(runtime)
    for n in (2, 3):
        await rent(client, acme, 1, f"c{n}")
        await drain(runtime)
    assert [new for _i, _o, new, _t in stripe_server.quantity_changes] == [4, 5]
    for n in (4, 5, 6):  # the hour's budget is spent: these wait, then go as one
        await rent(client, acme, 1, f"c{n}")
        await asyncio.to_thread(broker.queues["kefu"].join)
    assert [new for _i, _o, new, _t in stripe_server.quantity_changes] == [4, 5]
    assert broker.queues["kefu.DQ"].qsize() + broker.queues["kefu.DQ"].unfinished_tasks >= 1
    assert (await client.get("/api/v1/billing", headers=acme.headers)).json()["stripe_synced"] is False
    traveller.shift(timedelta(hours=1, seconds=1))
    await drain(runtime)
    assert [new for _i, _o, new, _t in stripe_server.quantity_changes] == [4, 5, 8]
    synced = await billing_account(runtime, acme.tenant_id)
    assert (synced.seats, synced.stripe_synced_seats) == (8, 8)


async def test_tenants_each_get_their_own_customer_and_subscription(
    client: Any, runtime: Runtime, acme: Admin, globex: Admin, stripe_server: FakeStripe,
) -> None:
    for admin in (acme, globex):
        await ready_with_payment_method(runtime, admin)
        await rent(client, admin, 1, "x")
    await drain(runtime)
    customers = {c["metadata"]["kefu_tenant_id"]: c["id"] for c in stripe_server.objects("customer")}
    assert set(customers) == {str(acme.tenant_id), str(globex.tenant_id)}
    by_customer = {s["customer"]: s["items"]["data"] for s in stripe_server.objects("subscription")}
    quantities = {tenant: [i["quantity"] for i in by_customer[cid] if i["price"]["recurring"]["usage_type"] == "licensed"] for tenant, cid in customers.items()}
    assert quantities == {str(acme.tenant_id): [3], str(globex.tenant_id): [4]}


async def test_minutes_beyond_the_included_ones_are_reported_in_batches_each_counted_once(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe, traveller: Any,
) -> None:
    from kefu.billing import jobs
    from kefu.platform.events import enqueue
    from test_local_invoices import add_call

    await ready_with_payment_method(runtime, acme)
    await rent(client, acme, 1, "three")  # 3 seats × 1000 included minutes
    await drain(runtime)
    customer = stripe_server.objects("customer")[0]["id"]
    start = (await billing_account(runtime, acme.tenant_id)).period_start
    traveller.shift(timedelta(days=5))  # the calls below have ended by now

    async def maintain(tick: str) -> None:
        async with runtime.db.platform_session(reason="test") as session:
            await enqueue(session, jobs.maintain_account, tenant_id=acme.tenant_id, tick=tick)
        await drain(runtime)

    await add_call(runtime, acme.tenant_id, answered_after_s=0, talk_s=3004 * 60 + 1, at=start)  # 3005 minutes: 5 beyond
    await maintain("1")
    assert stripe_server.meter_total("kefu_overage_minutes", customer) == 5
    await maintain("2")  # nothing new measured: nothing sent
    assert len(stripe_server.requests_to("POST", "/v1/billing/meter_events")) == 1

    await add_call(runtime, acme.tenant_id, answered_after_s=0, talk_s=7 * 60, at=start)
    stripe_server.drop_response_next("POST", "/v1/billing/meter_events")  # counted by Stripe, answer lost
    await maintain("3")
    assert stripe_server.meter_total("kefu_overage_minutes", customer) == 12
    await add_call(runtime, acme.tenant_id, answered_after_s=0, talk_s=60, at=start)
    stripe_server.fail_next("POST", "/v1/billing/meter_events", status=500, times=1)
    await maintain("4")
    assert stripe_server.meter_total("kefu_overage_minutes", customer) == 13
    identifiers = {r.params["identifier"] for r in stripe_server.requests_to("POST", "/v1/billing/meter_events")}
    assert identifiers == {f"kefu-{acme.tenant_id}-{int(start.timestamp())}-minutes-{n}" for n in (5, 12, 13)}


async def test_a_subscription_cancelled_in_stripe_is_made_again_from_the_ledger(
    client: Any, runtime: Runtime, acme: Admin, stripe_server: FakeStripe,
) -> None:
    import httpx
    from billing_support import WEBHOOK_SECRET
    from fake_stripe import event, sign

    await ready_with_payment_method(runtime, acme)
    await rent(client, acme, 2, "four")
    await drain(runtime)
    first = (await billing_account(runtime, acme.tenant_id)).stripe_subscription_id
    async with httpx.AsyncClient() as stripe_http:
        cancelled = await stripe_http.delete(f"{stripe_server.url}/v1/subscriptions/{first}", headers={"Authorization": "Bearer sk_test_kefu"})
    body = json.dumps(event("customer.subscription.deleted", cancelled.json())).encode()
    hook = await client.post("/api/billing/stripe/webhook", content=body, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)})
    assert hook.json()["status"] == "handled"
    await drain(runtime)
    again = await billing_account(runtime, acme.tenant_id)
    assert again.stripe_subscription_id not in (None, first)
    assert [i["quantity"] for i in seat_items(stripe_server)] == [4]  # the ledger's count, on a live subscription
