"""Billing tables.

* ``plans`` — platform-wide price lists, managed by operators; a tenant's
  ``plan`` names one.  The application role may read them (the portal shows
  the prices), never write them.
* ``billing_accounts`` — one per tenant: its seat count (a copy of the last
  ledger row, kept in the same transaction), its dunning status, and what
  mirrors it in Stripe.
* ``seat_ledger`` — append-only; every change of the seat count is a row
  written in the transaction that makes it.  The ledger is the authority.
* ``invoices`` — invoices of a tenant: mirrored from Stripe's webhooks, or
  issued locally when no Stripe key is configured (``sent_to_stripe`` false).
* ``usage_reports`` — usage beyond the seats (overage minutes, storage
  GB-months) measured per batch; each has the identifier Stripe deduplicates
  meter events on.
* ``stripe_events`` — every webhook event received, once (Stripe's event id
  is the key), with its handling status.  Platform-only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.platform.db.base import Base, TenantScoped, utcnow


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    # Amounts in the currency's minor unit (cents, fen).
    seat_price: Mapped[int] = mapped_column(BigInteger)
    included_minutes_per_seat: Mapped[int] = mapped_column(Integer)
    overage_per_minute: Mapped[int] = mapped_column(BigInteger)
    storage_per_gb_month: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Stripe mirrors (prices are immutable there: a price change makes new ones).
    stripe_product_id: Mapped[str | None] = mapped_column(String(255))
    stripe_seat_price_id: Mapped[str | None] = mapped_column(String(255))
    stripe_minutes_price_id: Mapped[str | None] = mapped_column(String(255))
    stripe_storage_price_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingAccount(TenantScoped, Base):
    __tablename__ = "billing_accounts"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    seats: Mapped[int] = mapped_column(Integer, default=0)
    ledger_seq: Mapped[int] = mapped_column(Integer, default=0)
    # active | past_due | suspended
    status: Mapped[str] = mapped_column(String(16), default="active")
    past_due_since: Mapped[datetime | None]
    grace_until: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]
    # The current billing period (monthly, anchored on the account's start).
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    stripe_seat_item_id: Mapped[str | None] = mapped_column(String(255))
    stripe_seat_price_id: Mapped[str | None] = mapped_column(String(255))
    # The ledger row whose seat count Stripe holds, and when quantities were last sent.
    stripe_synced_seq: Mapped[int] = mapped_column(Integer, default=0)
    stripe_synced_seats: Mapped[int | None] = mapped_column(Integer)
    stripe_quantity_updates: Mapped[list[str]] = mapped_column(JSON, default=list)
    stripe_sync_error: Mapped[str | None] = mapped_column(Text)
    payment_method_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SeatLedgerEntry(TenantScoped, Base):
    __tablename__ = "seat_ledger"
    __table_args__ = (UniqueConstraint("tenant_id", "seq"), UniqueConstraint("tenant_id", "request_key"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(Integer)
    delta: Mapped[int] = mapped_column(Integer)
    seats_after: Mapped[int] = mapped_column(Integer)
    # opening | rent | release | operator | migration
    reason: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    # The client's Idempotency-Key: a repeated "rent 5 seats" is the same row.
    request_key: Mapped[str | None] = mapped_column(String(200))
    request_fingerprint: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invoice(TenantScoped, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("stripe_invoice_id"),
        UniqueConstraint("tenant_id", "local_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    number: Mapped[str] = mapped_column(String(64))
    # draft | open | paid | void | uncollectible
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    subtotal: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    sent_to_stripe: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255))
    # Locally issued invoices: one per period ("local:<period start>").
    local_key: Mapped[str | None] = mapped_column(String(64))
    hosted_url: Mapped[str | None] = mapped_column(String(2000))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    payment_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The Stripe event (its ``created``) the mirror was last updated from.
    stripe_event_created: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageReport(TenantScoped, Base):
    __tablename__ = "usage_reports"
    __table_args__ = (UniqueConstraint("identifier"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # overage_minutes | storage_gb_month
    meter: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[datetime]
    measured_at: Mapped[datetime]
    # Whole units (minutes) or thousandths of a GB-month.
    quantity: Mapped[int] = mapped_column(BigInteger)
    identifier: Mapped[str] = mapped_column(String(100))
    reported_at: Mapped[datetime | None]
    report_error: Mapped[str | None] = mapped_column(Text)


class StripeEvent(Base):
    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    api_version: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # pending | handled | ignored | rejected | failed
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None]
