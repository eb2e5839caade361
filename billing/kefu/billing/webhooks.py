"""Stripe webhooks: verified, pinned, allow-listed, stored once, handled in one transaction.

``receive`` runs in one platform transaction per delivery:

1. the ``Stripe-Signature`` header must verify against the endpoint secret
   (HMAC-SHA256 over ``<timestamp>.<body>``, timestamp within 5 minutes) —
   otherwise 400 ``invalid_signature`` and nothing is stored (a forged or
   replayed-late payload leaves no trace but the log);
2. the event is stored under its Stripe id; a delivery of an id already
   handled or ignored answers 200 and changes nothing (Stripe delivers at
   least once);
3. an event on another API version than the pinned one is stored
   ``rejected`` (400 ``api_version_mismatch``); a type outside ``HANDLED`` is
   stored ``ignored``;
4. the handler updates the mirror and the dunning status in the same
   transaction as the event's ``handled`` status.  If it fails, the
   transaction rolls back, the event is stored ``failed`` on its own, and 500
   makes Stripe deliver it again.

Out-of-order deliveries: an invoice's mirror only moves forward (an event
older than the one it was last updated from is ignored, and a paid, void or
uncollectible invoice never reopens); the account's status is then settled
from all its invoices (``dunning.settle``), so the order events arrive in does
not change the outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing import dunning
from kefu.billing.gateway import PINNED_API_VERSION
from kefu.billing.models import BillingAccount, Invoice, StripeEvent
from kefu.platform.db import Database
from kefu.platform.db.base import utcnow
from kefu.platform.db.session import write_first
from kefu.platform.events import enqueue
from kefu.platform.problems import Problem
from kefu.platform.settings import Settings

log = logging.getLogger(__name__)

TOLERANCE_S = 300
INVOICE_RANK = {"draft": 0, "open": 1, "paid": 2, "void": 2, "uncollectible": 2}
Handler = Callable[[AsyncSession, BillingAccount, dict[str, Any], int, Settings], Awaitable[str]]


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _customer_of(obj: dict[str, Any]) -> str | None:
    if obj.get("object") == "customer":
        return obj.get("id")
    customer = obj.get("customer")
    return customer.get("id") if isinstance(customer, dict) else customer


async def _invoice(session: AsyncSession, account: BillingAccount, obj: dict[str, Any], created: int, settings: Settings, *, failed: bool | None = None) -> str:
    invoice = await session.scalar(select(Invoice).where(Invoice.stripe_invoice_id == obj["id"]).with_for_update())
    status = str(obj.get("status") or "draft")
    if invoice is not None and invoice.tenant_id != account.tenant_id:
        raise Problem(400, "invoice_customer_mismatch", "the invoice belongs to another customer")
    if invoice is None:
        invoice = Invoice(tenant_id=account.tenant_id, stripe_invoice_id=obj["id"], sent_to_stripe=True, status=status, number="",
                          currency="usd", subtotal=0, total=0, amount_due=0, period_start=utcnow(), period_end=utcnow())
        session.add(invoice)
    elif created < invoice.stripe_event_created:
        return "older than the invoice's mirror"
    if INVOICE_RANK.get(invoice.status, 0) > INVOICE_RANK.get(status, 0) and invoice.stripe_event_created:
        status = invoice.status  # a settled invoice never reopens
    lines = (obj.get("lines") or {}).get("data") or []
    invoice.status = status
    invoice.number = str(obj.get("number") or invoice.number or obj["id"])
    invoice.currency = str(obj.get("currency") or invoice.currency)
    invoice.period_start = _ts(obj.get("period_start")) or invoice.period_start
    invoice.period_end = _ts(obj.get("period_end")) or invoice.period_end
    invoice.subtotal = int(obj.get("subtotal") or 0)
    invoice.total = int(obj.get("total") or 0)
    invoice.amount_paid = int(obj.get("amount_paid") or 0)
    invoice.amount_due = int(obj.get("amount_due") or 0)
    invoice.attempt_count = int(obj.get("attempt_count") or 0)
    invoice.hosted_url = obj.get("hosted_invoice_url")
    invoice.lines = [
        {"description": line.get("description"), "amount": line.get("amount"), "quantity": line.get("quantity"),
         "proration": bool((line.get("parent") or {}).get("subscription_item_details", {}).get("proration") or line.get("proration")),
         "period_start": (line.get("period") or {}).get("start"), "period_end": (line.get("period") or {}).get("end")}
        for line in lines[:200]
    ]
    if failed is not None:
        invoice.payment_failed = failed
    if invoice.status != "open":
        invoice.payment_failed = False
    invoice.stripe_event_created = created
    invoice.updated_at = utcnow()
    await session.flush()
    await dunning.settle(session, account, now=utcnow(), grace=timedelta(days=settings.billing_grace_days), actor="stripe")
    return "handled"


async def _invoice_event(session: AsyncSession, account: BillingAccount, obj: dict[str, Any], created: int, settings: Settings) -> str:
    return await _invoice(session, account, obj, created, settings)


async def _payment_failed(session: AsyncSession, account: BillingAccount, obj: dict[str, Any], created: int, settings: Settings) -> str:
    return await _invoice(session, account, obj, created, settings, failed=True)


async def _paid(session: AsyncSession, account: BillingAccount, obj: dict[str, Any], created: int, settings: Settings) -> str:
    return await _invoice(session, account, {**obj, "status": "paid"}, created, settings, failed=False)


async def _checkout_completed(session: AsyncSession, account: BillingAccount, obj: dict[str, Any], created: int, settings: Settings) -> str:
    """Checkout saved a card on the customer (seats may be rented from now on); a job makes it
    the default payment method of the customer's invoices."""
    from kefu.billing.jobs import adopt_payment_method

    setup_intent = obj.get("setup_intent")
    setup_intent = setup_intent.get("id") if isinstance(setup_intent, dict) else setup_intent
    if obj.get("mode") != "setup" or obj.get("status") != "complete" or not isinstance(setup_intent, str):
        return "not a completed payment-method set-up"
    account.payment_method_ready = True
    await enqueue(session, adopt_payment_method, tenant_id=account.tenant_id, setup_intent=setup_intent)
    return "handled"


async def _customer_updated(session: AsyncSession, account: BillingAccount, obj: dict[str, Any], created: int, settings: Settings) -> str:
    account.payment_method_ready = bool((obj.get("invoice_settings") or {}).get("default_payment_method"))
    return "handled"


async def _subscription_changed(session: AsyncSession, account: BillingAccount, obj: dict[str, Any], created: int, settings: Settings) -> str:
    """The ledger is the authority: a subscription changed or cancelled outside Kefu is set back by a sync."""
    from kefu.billing.jobs import sync_subscription

    if obj.get("id") != account.stripe_subscription_id:
        return "not the tenant's current subscription"
    items = (obj.get("items") or {}).get("data") or []
    seat_item = next((i for i in items if i.get("id") == account.stripe_seat_item_id), None)
    if obj.get("status") == "canceled":
        account.stripe_subscription_id = account.stripe_seat_item_id = None
        account.stripe_synced_seats = None
    elif seat_item is not None:
        account.stripe_synced_seats = int(seat_item.get("quantity") or 0)
    if account.stripe_synced_seats != account.seats:
        account.stripe_synced_seq = 0
        await enqueue(session, sync_subscription, tenant_id=account.tenant_id, seq=account.ledger_seq, not_before=f"event-{created}")
    return "handled"


HANDLED: dict[str, Handler] = {
    "invoice.created": _invoice_event,
    "invoice.finalized": _invoice_event,
    "invoice.updated": _invoice_event,
    "invoice.voided": _invoice_event,
    "invoice.marked_uncollectible": _invoice_event,
    "invoice.payment_failed": _payment_failed,
    "invoice.paid": _paid,
    "checkout.session.completed": _checkout_completed,
    "customer.updated": _customer_updated,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
}


def verify(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    if not signature:
        raise Problem(400, "invalid_signature", "the Stripe-Signature header is missing")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, TOLERANCE_S)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise Problem(400, "invalid_signature", "the Stripe signature does not verify (wrong secret, altered body or too old)") from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise Problem(400, "invalid_event", "the body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str) \
            or not isinstance((event.get("data") or {}).get("object"), dict) or not isinstance(event.get("created"), int):
        raise Problem(400, "invalid_event", "not a Stripe event (id, type, created and data.object are required)")
    return event


async def receive(db: Database, settings: Settings, *, payload: bytes, signature: str | None) -> dict[str, str]:
    if not settings.stripe_webhook_secret:
        raise Problem(404, "stripe_not_configured", "Stripe webhooks are not configured here")
    event = verify(payload, signature, settings.stripe_webhook_secret)
    obj = event["data"]["object"]
    try:
        async with db.platform_session(reason="Stripe webhook") as session:
            await write_first(session)  # it reads, then writes (SQLite: see write_first)
            stored = await session.scalar(select(StripeEvent).where(StripeEvent.id == event["id"]).with_for_update())
            if stored is not None and stored.status in ("handled", "ignored"):
                return {"id": stored.id, "status": "duplicate"}
            if stored is None:
                stored = StripeEvent(
                    id=event["id"], type=event["type"], api_version=event.get("api_version"), created=event["created"],
                    customer_id=_customer_of(obj), status="pending", payload=event,
                )
                session.add(stored)
            if event.get("api_version") != PINNED_API_VERSION:
                stored.status, stored.detail = "rejected", f"API version {event.get('api_version')!r}; Kefu is pinned to {PINNED_API_VERSION}"
            elif event["type"] not in HANDLED:
                stored.status, stored.detail = "ignored", "type not handled"
            else:
                account = await session.scalar(
                    select(BillingAccount).where(BillingAccount.stripe_customer_id == stored.customer_id).with_for_update()
                ) if stored.customer_id else None
                if account is None:
                    stored.status, stored.detail = "ignored", "no tenant has this customer"
                else:
                    outcome = await HANDLED[event["type"]](session, account, obj, event["created"], settings)
                    stored.status, stored.detail = ("handled", None) if outcome == "handled" else ("ignored", outcome)
            stored.handled_at = utcnow()
            await session.flush()
            result = {"id": stored.id, "status": stored.status}
    except Exception as error:
        log.exception("handling Stripe event %s failed", event["id"])
        await _store_failure(db, event, obj, error)
        raise Problem(500, "event_failed", "the event could not be handled; Stripe will deliver it again") from None
    if result["status"] == "rejected":
        raise Problem(400, "api_version_mismatch", f"events must use API version {PINNED_API_VERSION}", event_id=event["id"])
    return result


async def _store_failure(db: Database, event: dict[str, Any], obj: dict[str, Any], error: Exception) -> None:
    async with db.platform_session(reason="Stripe webhook failed") as session:
        stored = await session.get(StripeEvent, event["id"])
        if stored is None:
            stored = StripeEvent(id=event["id"], type=event["type"], api_version=event.get("api_version"), created=event["created"],
                                 customer_id=_customer_of(obj), payload=event, status="failed")
            session.add(stored)
        stored.status, stored.detail = "failed", f"{type(error).__name__}: {error}"[:2000]
