"""Billing's Dramatiq jobs: every call to Stripe that changes something, and the
periodic upkeep of each account.

* ``sync_subscription`` — makes Stripe hold the ledger's seat count: the
  Customer, then the Subscription (seat item + metered items), then the seat
  item's quantity with proration.  Quantities are absolute, the idempotency key
  is the ledger row's (``kefu-seats-<tenant>-<seq>``), and it runs with the
  account row locked, so retries, duplicates and concurrent jobs converge on one
  subscription with the right quantity.  At most
  ``stripe_quantity_updates_per_hour`` quantity updates per subscription per
  hour: beyond that the job reschedules itself for when the window allows and
  sends the count of that moment (bursts coalesce).
* ``mirror_plan`` — a plan's Stripe Product and Prices (and the two billing
  meters), created once per plan version; then the syncs that waited for them.
* ``report_usage`` — one meter event per usage report; the report's identifier
  makes Stripe count it once however often it is sent.
* ``maintain_account`` — the periodic upkeep: dunning (suspend after grace),
  local invoices when Stripe is not configured, usage batches when it is, and
  a sync for a ledger Stripe has not caught up with.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing import dunning
from kefu.billing.gateway import METERS, enabled, options, stripe_client
from kefu.billing.invoicing import issue_local_invoice
from kefu.billing.models import BillingAccount, Plan, UsageReport
from kefu.billing.services import account_of, add_month, plan_of, seats_over_time
from kefu.billing.usage import measure_usage
from kefu.platform.db.base import utcnow
from kefu.platform.events import enqueue
from kefu.platform.events.jobs import JobContext, platform_job, tenant_job
from kefu.platform.problems import Problem

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)


def _prices_ready(plan: Plan) -> bool:
    return bool(plan.stripe_seat_price_id and plan.stripe_minutes_price_id and plan.stripe_storage_price_id)


@tenant_job(key=lambda kw: f"billing-sync:{kw['seq']}:{kw.get('not_before') or ''}", max_retries=12, min_backoff_ms=2_000, max_backoff_ms=900_000)
async def sync_subscription(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, seq: int, not_before: str | None = None) -> None:
    if not enabled(job.settings):
        return
    account = await account_of(session, tenant_id=tenant_id, lock=True)
    if account.stripe_synced_seq >= account.ledger_seq:
        return  # a later job already sent this count (or a newer one)
    plan = await plan_of(session, tenant_id=tenant_id)
    if not _prices_ready(plan):
        await enqueue(session, mirror_plan, plan_id=str(plan.id), version=plan.updated_at.isoformat(), then_tenant=str(tenant_id), then_seq=account.ledger_seq)
        return
    now = utcnow()
    async with stripe_client(job.settings) as client:
        customer = await ensure_customer(client, account)
        if account.stripe_subscription_id is None:
            if account.seats == 0:
                account.stripe_synced_seq, account.stripe_synced_seats = account.ledger_seq, 0
                return
            await ensure_subscription(client, account, plan, customer, now)
        if account.stripe_synced_seats != account.seats:
            recent = [at for at in account.stripe_quantity_updates if datetime.fromisoformat(at) > now - WINDOW]
            if len(recent) >= job.settings.stripe_quantity_updates_per_hour:
                when = datetime.fromisoformat(min(recent)) + WINDOW
                await enqueue(
                    session, sync_subscription, tenant_id=tenant_id, seq=account.ledger_seq, not_before=when.isoformat(),
                    delay_ms=max(1, int((when - now).total_seconds() * 1000)),
                )
                account.stripe_quantity_updates = recent
                return
            await client.v1.subscription_items.update_async(
                account.stripe_seat_item_id or "",
                {"quantity": account.seats, "proration_behavior": "create_prorations"},
                options(f"kefu-seats-{tenant_id}-{account.ledger_seq}"),
            )
            account.stripe_quantity_updates = [*recent, now.isoformat()]
    account.stripe_synced_seq, account.stripe_synced_seats = account.ledger_seq, account.seats
    account.stripe_sync_error = None
    account.updated_at = now


async def ensure_customer(client: stripe.StripeClient, account: BillingAccount) -> str:
    if account.stripe_customer_id is None:
        customer = await client.v1.customers.create_async(
            {"metadata": {"kefu_tenant_id": str(account.tenant_id)}, "description": f"Kefu tenant {account.tenant_id}"},
            options(f"kefu-customer-{account.tenant_id}"),
        )
        account.stripe_customer_id = customer.id
    return account.stripe_customer_id


async def ensure_subscription(client: stripe.StripeClient, account: BillingAccount, plan: Plan, customer: str, now: datetime) -> None:
    """Adopt the customer's live subscription (one made by an attempt whose commit was lost), or create it."""
    found = await client.v1.subscriptions.list_async({"customer": customer, "status": "all", "limit": 10})
    live = [s for s in found.data if s.status not in ("canceled", "incomplete_expired")]
    if live:
        subscription = live[0]
    else:
        subscription = await client.v1.subscriptions.create_async(
            {
                "customer": customer,
                "items": [
                    {"price": plan.stripe_seat_price_id or "", "quantity": account.seats},
                    {"price": plan.stripe_minutes_price_id or ""},
                    {"price": plan.stripe_storage_price_id or ""},
                ],
                "proration_behavior": "create_prorations",
                "collection_method": "charge_automatically",
                "payment_behavior": "allow_incomplete",
                "metadata": {"kefu_tenant_id": str(account.tenant_id)},
            },
            # The ledger row and how many subscriptions the customer had: a retry is the same
            # request, a subscription made again after a cancellation is a new one.
            options(f"kefu-subscription-{account.tenant_id}-{account.ledger_seq}-{len(found.data)}"),
        )
        account.stripe_quantity_updates = [*account.stripe_quantity_updates, now.isoformat()]
    account.stripe_subscription_id = subscription.id
    for item in subscription.to_dict()["items"]["data"]:
        if item["price"]["id"] == plan.stripe_seat_price_id:
            account.stripe_seat_item_id = item["id"]
            account.stripe_seat_price_id = plan.stripe_seat_price_id
            account.stripe_synced_seats = item.get("quantity")


@platform_job(reason="billing mirrors a plan's prices in Stripe", max_retries=12, min_backoff_ms=2_000, max_backoff_ms=900_000)
async def mirror_plan(job: JobContext, session: AsyncSession, *, plan_id: str, version: str, then_tenant: str | None = None, then_seq: int | None = None) -> None:
    if not enabled(job.settings):
        return
    plan = await session.scalar(select(Plan).where(Plan.id == uuid.UUID(plan_id)).with_for_update())
    if plan is None:
        return
    tag = f"{plan.id}-{int(plan.updated_at.timestamp())}"
    async with stripe_client(job.settings) as client:
        meters = await ensure_meters(client)
        if plan.stripe_product_id is None:
            product = await client.v1.products.create_async(
                {"name": f"Kefu {plan.name}", "metadata": {"kefu_plan": plan.code}}, options(f"kefu-plan-{plan.id}-product")
            )
            plan.stripe_product_id = product.id
        base: dict[str, Any] = {"currency": plan.currency, "product": plan.stripe_product_id, "metadata": {"kefu_plan": plan.code}}
        if plan.stripe_seat_price_id is None:
            price = await client.v1.prices.create_async(
                {**base, "unit_amount": plan.seat_price, "nickname": "seat", "recurring": {"interval": "month", "usage_type": "licensed"}},
                options(f"kefu-price-{tag}-seat"),
            )
            plan.stripe_seat_price_id = price.id
        for meter, column, amount in (
            ("overage_minutes", "stripe_minutes_price_id", plan.overage_per_minute),
            ("storage_gb_month", "stripe_storage_price_id", plan.storage_per_gb_month),
        ):
            if getattr(plan, column) is None:
                # Storage is metered in thousandths of a GB-month: the unit price is a thousandth.
                unit = {"unit_amount_decimal": f"{amount / 1000:.4f}"} if meter == "storage_gb_month" else {"unit_amount": amount}
                price = await client.v1.prices.create_async(
                    {**base, **unit, "nickname": meter, "recurring": {"interval": "month", "usage_type": "metered", "meter": meters[meter]}},
                    options(f"kefu-price-{tag}-{meter}"),
                )
                setattr(plan, column, price.id)
    if then_tenant is not None:
        await enqueue(session, sync_subscription, tenant_id=uuid.UUID(then_tenant), seq=int(then_seq or 0), not_before=f"plan-{tag}")


async def ensure_meters(client: stripe.StripeClient) -> dict[str, str]:
    existing = await client.v1.billing.meters.list_async({"limit": 100})
    by_event = {m.event_name: m.id for m in existing.data if m.status == "active"}
    found = {}
    for meter, (event_name, display) in METERS.items():
        if event_name not in by_event:
            created = await client.v1.billing.meters.create_async(
                {
                    "display_name": display, "event_name": event_name, "default_aggregation": {"formula": "sum"},
                    "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
                    "value_settings": {"event_payload_key": "value"},
                },
                options(f"kefu-meter-{event_name}"),
            )
            by_event[event_name] = created.id
        found[meter] = by_event[event_name]
    return found


@tenant_job(key=lambda kw: f"billing-payment-method:{kw['setup_intent']}", max_retries=12, min_backoff_ms=2_000, max_backoff_ms=900_000)
async def adopt_payment_method(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, setup_intent: str) -> None:
    """The card a Checkout set-up saved becomes the customer's default for invoices."""
    if not enabled(job.settings):
        return
    account = await account_of(session, tenant_id=tenant_id, lock=True)
    if account.stripe_customer_id is None:
        return
    async with stripe_client(job.settings) as client:
        intent = await client.v1.setup_intents.retrieve_async(setup_intent)
        payment_method = intent.payment_method if isinstance(intent.payment_method, str) else getattr(intent.payment_method, "id", None)
        if intent.customer != account.stripe_customer_id or not payment_method:
            log.warning("set-up intent %s is not a saved card of tenant %s's customer", setup_intent, tenant_id)
            return
        await client.v1.customers.update_async(
            account.stripe_customer_id, {"invoice_settings": {"default_payment_method": payment_method}},
            options(f"kefu-default-payment-method-{setup_intent}"),
        )
    account.payment_method_ready = True
    account.updated_at = utcnow()


@tenant_job(key=lambda kw: f"billing-usage:{kw['report_id']}", max_retries=12, min_backoff_ms=2_000, max_backoff_ms=900_000)
async def report_usage(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, report_id: str) -> None:
    if not enabled(job.settings):
        return
    report = await session.scalar(select(UsageReport).where(UsageReport.tenant_id == tenant_id, UsageReport.id == uuid.UUID(report_id)))
    if report is None or report.reported_at is not None:
        return
    account = await account_of(session, tenant_id=tenant_id)
    if account.stripe_customer_id is None:
        raise RuntimeError("usage measured for a tenant with no Stripe customer yet: retried after the subscription sync")
    event_name = METERS[report.meter][0]
    async with stripe_client(job.settings) as client:
        try:
            await client.v1.billing.meter_events.create_async(
                {
                    "event_name": event_name, "identifier": report.identifier, "timestamp": int(report.measured_at.timestamp()),
                    "payload": {"stripe_customer_id": account.stripe_customer_id, "value": str(report.quantity)},
                },
                options(f"kefu-usage-{report.identifier}"),
            )
        except stripe.InvalidRequestError as error:
            if error.code != "resource_already_exists":
                raise
    report.reported_at = utcnow()


@tenant_job(key=lambda kw: f"billing-maintain:{kw['tick']}", max_retries=5)
async def maintain_account(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, tick: str) -> None:
    now = utcnow()
    account = await account_of(session, tenant_id=tenant_id, lock=True)
    await dunning.enforce(session, account, now=now)
    try:
        plan = await plan_of(session, tenant_id=tenant_id)
    except Problem:
        log.warning("tenant %s names a plan that does not exist: nothing to invoice", tenant_id)
        return
    if not enabled(job.settings):
        for _ in range(24):  # a long-idle account catches up, a period at a time
            if await issue_local_invoice(session, account=account, plan=plan, now=now) is None:
                break
        return
    if account.stripe_synced_seq < account.ledger_seq:  # a sync that gave up (or never ran): once more
        await enqueue(session, sync_subscription, tenant_id=tenant_id, seq=account.ledger_seq, not_before=f"tick-{tick}")
    if account.stripe_customer_id is None:  # never synced (no seats ever rented): nothing to meter against
        while account.period_end <= now:
            account.period_start, account.period_end = account.period_end, add_month(account.period_end)
        return
    while account.period_end <= now:
        await _measure(session, account, plan, end=account.period_end, closing=True)
        account.period_start, account.period_end = account.period_end, add_month(account.period_end)
    await _measure(session, account, plan, end=now, closing=False)


async def _measure(session: AsyncSession, account: BillingAccount, plan: Plan, *, end: datetime, closing: bool) -> None:
    """Usage reports for the account's period up to ``end``: overage minutes so far beyond those already
    reported, and (when the period closes) its storage.  Identifiers come from the period and the running
    totals, so measuring twice reports nothing twice."""
    tenant_id, start = account.tenant_id, account.period_start
    usage = await measure_usage(session, tenant_id=tenant_id, start=start, end=end)
    segments = await seats_over_time(session, tenant_id=tenant_id, start=start, end=max(end, start))
    included = plan.included_minutes_per_seat * max((s for _a, _b, s in segments), default=0)
    overage = max(0, usage.minutes - included)
    reported = await session.scalar(
        select(func.coalesce(func.sum(UsageReport.quantity), 0)).where(
            UsageReport.tenant_id == tenant_id, UsageReport.meter == "overage_minutes", UsageReport.period_start == start
        )
    ) or 0
    stamp = int(start.timestamp())
    batches = []
    if overage > reported:
        batches.append(("overage_minutes", overage - reported, f"kefu-{tenant_id}-{stamp}-minutes-{overage}"))
    if closing and usage.storage_milli_gb_months:
        batches.append(("storage_gb_month", usage.storage_milli_gb_months, f"kefu-{tenant_id}-{stamp}-storage"))
    for meter, quantity, identifier in batches:
        exists = await session.scalar(select(UsageReport.id).where(UsageReport.identifier == identifier))
        if exists is not None:
            continue
        report = UsageReport(tenant_id=tenant_id, meter=meter, period_start=start, measured_at=min(end, utcnow()), quantity=quantity, identifier=identifier)
        session.add(report)
        await session.flush()
        await enqueue(session, report_usage, tenant_id=tenant_id, report_id=str(report.id))
