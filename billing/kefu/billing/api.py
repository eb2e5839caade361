"""Billing's HTTP API.

Tenant admins (``billing.read`` / ``billing.write``), under ``/api/v1/billing``:
the account (plan, seats, status, mode), the seat ledger, renting and releasing
seats (``Idempotency-Key`` required: a double click is one change), invoices,
and the Stripe Checkout (payment method set-up) and Billing Portal links.

Operators, under ``/api/admin/v1``: plans (``platform:billing.*``) and the
platform-wide view of seats, revenue and past-due tenants.

Stripe, at ``/api/billing/stripe/webhook`` (public; the signature is the
authentication).

Checkout and Billing Portal sessions are created during the request — the
browser is waiting for the address to go to, and they change nothing billable.
Every call to Stripe that changes what a customer pays runs in a job.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing import gateway, jobs, services, webhooks
from kefu.billing.models import BillingAccount, Invoice, Plan
from kefu.platform import audit
from kefu.platform.admin.api import operator_scope
from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.events import enqueue
from kefu.platform.identity.principal import requires
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.periodic import TenantJobScheduler
from kefu.platform.problems import Problem, not_found
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings

log = logging.getLogger(__name__)

BILLING_READ, BILLING_WRITE = "platform:billing.read", "platform:billing.write"


# --- shapes -------------------------------------------------------------------------------


class PlanOut(msgspec.Struct):
    code: str
    name: str
    currency: str
    seat_price: int
    included_minutes_per_seat: int
    overage_per_minute: int
    storage_per_gb_month: int
    active: bool
    stripe_seat_price_id: str | None


class AccountOut(msgspec.Struct):
    mode: str  # stripe | local
    plan: PlanOut
    seats: int
    seats_in_use: int
    status: str
    past_due_since: datetime | None
    grace_until: datetime | None
    suspended_at: datetime | None
    period_start: datetime
    period_end: datetime
    payment_method_ready: bool
    stripe_synced: bool
    notice: str | None


class SeatChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    # Checked by kefu.billing.services (whole numbers only: "5", 2.5 and true are refused).
    rent: Any = None
    release: Any = None


class SeatChangeOut(msgspec.Struct):
    entry: services.LedgerView
    replayed: bool
    account: AccountOut


class InvoiceOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    status: str
    currency: str
    period_start: datetime
    period_end: datetime
    subtotal: int
    total: int
    amount_paid: int
    amount_due: int
    payment_failed: bool
    sent_to_stripe: bool
    hosted_url: str | None
    lines: list[dict[str, Any]]


class LinkIn(msgspec.Struct, forbid_unknown_fields=True):
    return_url: str | None = None


class LinkOut(msgspec.Struct):
    url: str


class PlanIn(msgspec.Struct, forbid_unknown_fields=True):
    code: str
    name: str
    currency: str
    seat_price: int
    included_minutes_per_seat: int
    overage_per_minute: int
    storage_per_gb_month: int


class PlanPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    seat_price: int | msgspec.UnsetType = msgspec.UNSET
    included_minutes_per_seat: int | msgspec.UnsetType = msgspec.UNSET
    overage_per_minute: int | msgspec.UnsetType = msgspec.UNSET
    storage_per_gb_month: int | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class OperatorSeatsIn(msgspec.Struct, forbid_unknown_fields=True):
    delta: int
    note: str | None = None


class TenantBillingOut(msgspec.Struct):
    tenant_id: uuid.UUID
    slug: str
    name: str
    plan: str
    seats: int
    status: str
    grace_until: datetime | None
    monthly_seat_revenue: int
    currency: str
    open_amount_due: int


class RevenueOut(msgspec.Struct):
    currency: str
    monthly_recurring: int
    paid_last_30_days: int
    open_amount_due: int


class OverviewOut(msgspec.Struct):
    tenants: int
    seats: int
    active: int
    past_due: int
    suspended: int
    revenue: list[RevenueOut]
    past_due_tenants: list[TenantBillingOut]
    top_tenants: list[TenantBillingOut]


# --- views -----------------------------------------------------------------------------


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut(plan.code, plan.name, plan.currency, plan.seat_price, plan.included_minutes_per_seat, plan.overage_per_minute,
                   plan.storage_per_gb_month, plan.active, plan.stripe_seat_price_id)


def invoice_out(invoice: Invoice) -> InvoiceOut:
    return InvoiceOut(
        invoice.id, invoice.number, invoice.status, invoice.currency, invoice.period_start, invoice.period_end, invoice.subtotal,
        invoice.total, invoice.amount_paid, invoice.amount_due, invoice.payment_failed, invoice.sent_to_stripe, invoice.hosted_url,
        invoice.lines,
    )


async def _in_use(runtime: Runtime, session: AsyncSession, tenant_id: uuid.UUID) -> int:
    counter = runtime.components.get("seats_in_use")
    return int(await counter(session, tenant_id)) if counter is not None else 0


NOTICES = {
    "local": "Billing runs locally: no Stripe key is configured, so invoices are issued here and are not sent to Stripe.",
    "past_due": "A payment failed. Update the payment method before {grace}, or agents will be kept from taking calls.",
    "suspended": "Service is suspended for non-payment: agents cannot go ready and callers hear a message. Paying restores it at once.",
}


async def account_out(runtime: Runtime, session: AsyncSession, tenant_id: uuid.UUID) -> AccountOut:
    account = await services.account_of(session, tenant_id=tenant_id)
    plan = await services.plan_of(session, tenant_id=tenant_id)
    mode = "stripe" if gateway.enabled(runtime.settings) else "local"
    notice = None
    if account.status == "past_due":
        notice = NOTICES["past_due"].format(grace=account.grace_until.isoformat() if account.grace_until else "the grace period ends")
    elif account.status == "suspended":
        notice = NOTICES["suspended"]
    elif mode == "local":
        notice = NOTICES["local"]
    return AccountOut(
        mode, plan_out(plan), account.seats, await _in_use(runtime, session, tenant_id), account.status, account.past_due_since,
        account.grace_until, account.suspended_at, account.period_start, account.period_end, account.payment_method_ready,
        mode == "local" or account.stripe_synced_seq >= account.ledger_seq, notice,
    )


def _seat_delta(data: SeatChangeIn) -> int:
    if (data.rent is None) == (data.release is None):
        raise Problem(400, "invalid_seat_change", "give either 'rent' or 'release'")
    if data.rent is not None:
        return services.check_seat_change(data.rent)
    return -services.check_seat_change(data.release)


async def change_seats(
    runtime: Runtime, session: AsyncSession, *, tenant_id: uuid.UUID, delta: int, actor: str, reason: str, request_key: str | None,
    require_payment_method: bool,
) -> services.SeatChange:
    change = await services.change_seats(
        session, tenant_id=tenant_id, delta=delta, in_use=await _in_use(runtime, session, tenant_id), actor=actor, reason=reason,
        request_key=request_key, require_payment_method=require_payment_method,
    )
    if not change.replayed and gateway.enabled(runtime.settings):
        await enqueue(session, jobs.sync_subscription, tenant_id=tenant_id, seq=change.entry.seq)
    return change


def _return_url(settings: Settings, given: str | None) -> str:
    base = f"{settings.public_url}/portal/billing"
    if given is None:
        return base
    if not given.startswith(f"{settings.public_url}/"):
        raise Problem(400, "invalid_return_url", "the return address must be on this site")
    return given


async def _customer(runtime: Runtime, session: AsyncSession, tenant_id: uuid.UUID, client: Any) -> str:
    account = await services.account_of(session, tenant_id=tenant_id, lock=True)
    return await jobs.ensure_customer(client, account)


async def stripe_link(runtime: Runtime, session: AsyncSession, *, tenant_id: uuid.UUID, kind: str, return_url: str | None) -> str:
    settings = runtime.settings
    if not gateway.enabled(settings):
        raise Problem(409, "billing_local", "billing runs locally here: there is no Stripe account to manage")
    url = _return_url(settings, return_url)
    try:
        async with gateway.stripe_client(settings) as client:
            customer = await _customer(runtime, session, tenant_id, client)
            if kind == "checkout":
                created = await client.v1.checkout.sessions.create_async({
                    "mode": "setup", "customer": customer, "currency": (await services.plan_of(session, tenant_id=tenant_id)).currency,
                    "success_url": f"{url}?setup=done", "cancel_url": url,
                    "metadata": {"kefu_tenant_id": str(tenant_id)},
                })
            else:
                created = await client.v1.billing_portal.sessions.create_async({"customer": customer, "return_url": url})
    except Problem:
        raise
    except Exception as error:  # the Stripe library's errors: a clear answer, nothing stored changes
        log.warning("Stripe %s session failed: %s", kind, error)
        raise Problem(502, "stripe_unavailable", "Stripe did not answer; try again in a moment") from None
    return str(created.url)


# --- tenant admins ------------------------------------------------------------------------


class BillingController(Controller):
    path = "/api/v1/billing"
    tags = ["billing"]

    @get("/", guards=[requires("billing.read")])
    async def account(self, db: DbSession, tenant_id: TenantId, runtime: RuntimeDep) -> AccountOut:
        """The plan, the seats rented and in use, the dunning status and whether billing runs on Stripe or locally."""
        return await account_out(runtime, db, tenant_id)

    @get("/ledger", guards=[requires("billing.read")])
    async def ledger(self, db: DbSession, tenant_id: TenantId, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100) -> list[services.LedgerView]:
        """The seat ledger, newest first."""
        return await services.ledger(db, tenant_id=tenant_id, limit=limit)

    @post("/seats", guards=[requires("billing.write")], status_code=200)
    async def seats(self, data: JSONBody[SeatChangeIn], request: Request, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> SeatChangeOut:
        """Rent or release seats.  ``Idempotency-Key`` is required: the same key is the same change."""
        key = request.headers.get("idempotency-key")
        if not key:
            raise Problem(400, "idempotency_key_required", "send an Idempotency-Key header (one per intended change)")
        change = await change_seats(
            runtime, db, tenant_id=tenant_id, delta=_seat_delta(data), actor=principal.actor, reason="rent" if data.rent else "release",
            request_key=key, require_payment_method=gateway.enabled(runtime.settings),
        )
        return SeatChangeOut(change.entry, change.replayed, await account_out(runtime, db, tenant_id))

    @get("/invoices", guards=[requires("billing.read")])
    async def invoices(self, db: DbSession, tenant_id: TenantId) -> list[InvoiceOut]:
        rows = await db.scalars(select(Invoice).where(Invoice.tenant_id == tenant_id).order_by(Invoice.period_start.desc(), Invoice.created_at.desc()).limit(120))
        return [invoice_out(i) for i in rows]

    @get("/invoices/{invoice_id:uuid}", guards=[requires("billing.read")])
    async def invoice(self, invoice_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> InvoiceOut:
        row = await db.scalar(select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.id == invoice_id))
        if row is None:
            raise not_found("invoice")
        return invoice_out(row)

    @post("/checkout", guards=[requires("billing.write")], status_code=200)
    async def checkout(self, data: JSONBody[LinkIn], db: DbSession, tenant_id: TenantId, runtime: RuntimeDep) -> LinkOut:
        """A Stripe Checkout page (set-up mode) where the admin adds a payment method (``{}``: back to /portal/billing)."""
        return LinkOut(await stripe_link(runtime, db, tenant_id=tenant_id, kind="checkout", return_url=data.return_url))

    @post("/portal", guards=[requires("billing.write")], status_code=200)
    async def portal(self, data: JSONBody[LinkIn], db: DbSession, tenant_id: TenantId, runtime: RuntimeDep) -> LinkOut:
        """Stripe's Billing Portal: payment methods, invoices and receipts (``{}``: back to /portal/billing)."""
        return LinkOut(await stripe_link(runtime, db, tenant_id=tenant_id, kind="portal", return_url=data.return_url))


# --- Stripe ---------------------------------------------------------------------------------


class StripeWebhookController(Controller):
    path = "/api/billing/stripe"
    tags = ["billing"]
    security = []

    @post("/webhook", status_code=200, include_in_schema=False)
    async def webhook(self, request: Request, runtime: RuntimeDep) -> dict[str, str]:
        payload = await request.body()
        return await webhooks.receive(runtime.db, runtime.settings, payload=payload, signature=request.headers.get("stripe-signature"))


# --- operators -------------------------------------------------------------------------------

_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CURRENCY = re.compile(r"^[a-z]{3}$")
MAX_AMOUNT = 10**9


def _amount(name: str, value: int) -> int:
    if isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT:
        raise Problem(400, "invalid_amount", f"{name} must be a whole number of minor units between 0 and {MAX_AMOUNT}", field=name)
    return value


def _name(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 200:
        raise Problem(400, "invalid_name", "a plan's name has 1 to 200 characters")
    return value


async def _plan_changed(runtime: Runtime, session: AsyncSession, plan: Plan) -> None:
    if gateway.enabled(runtime.settings):
        await enqueue(session, jobs.mirror_plan, plan_id=str(plan.id), version=plan.updated_at.isoformat())


class PlanAdminController(Controller):
    path = "/api/admin/v1/plans"
    tags = ["admin: billing"]

    @get("/", guards=[operator_scope(BILLING_READ)])
    async def list_plans(self, runtime: RuntimeDep) -> list[PlanOut]:
        async with runtime.db.platform_session(reason="operator lists plans") as session:
            return [plan_out(p) for p in await session.scalars(select(Plan).order_by(Plan.code))]

    @post("/", guards=[operator_scope(BILLING_WRITE)], status_code=201)
    async def create_plan(self, data: JSONBody[PlanIn], runtime: RuntimeDep, principal: CurrentPrincipal) -> PlanOut:
        if not _CODE.match(data.code):
            raise Problem(400, "invalid_plan", "a plan code has up to 64 lowercase letters, digits, '-' or '_'")
        if not _CURRENCY.match(data.currency):
            raise Problem(400, "invalid_currency", "the currency is a lowercase ISO 4217 code such as 'usd' or 'cny'")
        now = utcnow()
        plan = Plan(
            code=data.code, name=_name(data.name), currency=data.currency, seat_price=_amount("seat_price", data.seat_price),
            included_minutes_per_seat=_amount("included_minutes_per_seat", data.included_minutes_per_seat),
            overage_per_minute=_amount("overage_per_minute", data.overage_per_minute),
            storage_per_gb_month=_amount("storage_per_gb_month", data.storage_per_gb_month), active=True, created_at=now, updated_at=now,
        )
        async with runtime.db.platform_session(reason="operator creates a plan") as session:
            try:
                async with session.begin_nested():
                    session.add(plan)
                    await session.flush()
            except IntegrityError:
                raise Problem(409, "plan_exists", "a plan with this code exists") from None
            await audit.record_platform(session, actor=principal.actor, action="plan.created", target=f"plan:{plan.code}", detail={"seat_price": plan.seat_price})
            await _plan_changed(runtime, session, plan)
            return plan_out(plan)

    @patch("/{code:str}", guards=[operator_scope(BILLING_WRITE)])
    async def update_plan(self, code: FromPath[str], data: JSONBody[PlanPatch], runtime: RuntimeDep, principal: CurrentPrincipal) -> PlanOut:
        """A price change makes new Stripe prices; subscriptions move to them at their next seat sync."""
        async with runtime.db.platform_session(reason="operator updates a plan") as session:
            plan = await session.scalar(select(Plan).where(Plan.code == code).with_for_update())
            if plan is None:
                raise not_found("plan")
            changes: dict[str, Any] = {}
            if not isinstance(data.name, msgspec.UnsetType):
                changes["name"] = _name(data.name)
            for field in ("seat_price", "included_minutes_per_seat", "overage_per_minute", "storage_per_gb_month"):
                value = getattr(data, field)
                if not isinstance(value, msgspec.UnsetType) and value != getattr(plan, field):
                    changes[field] = _amount(field, value)
            if not isinstance(data.active, msgspec.UnsetType):
                changes["active"] = data.active
            for field, value in changes.items():
                setattr(plan, field, value)
            prices = {"seat_price": "stripe_seat_price_id", "overage_per_minute": "stripe_minutes_price_id", "storage_per_gb_month": "stripe_storage_price_id"}
            for field, column in prices.items():
                if field in changes:
                    setattr(plan, column, None)  # Stripe prices are immutable: new ones are made
            if changes:
                plan.updated_at = utcnow()
                await audit.record_platform(session, actor=principal.actor, action="plan.updated", target=f"plan:{plan.code}", detail=changes)
                await _plan_changed(runtime, session, plan)
            return plan_out(plan)


class BillingAdminController(Controller):
    path = "/api/admin/v1/billing"
    tags = ["admin: billing"]

    @get("/overview", guards=[operator_scope(BILLING_READ)])
    async def overview(self, runtime: RuntimeDep) -> OverviewOut:
        """Seats, revenue and past-due tenants across the platform."""
        async with runtime.db.platform_session(reason="operator reads the billing overview") as session:
            return await overview(session)

    @get("/tenants", guards=[operator_scope(BILLING_READ)])
    async def tenants(self, runtime: RuntimeDep, status: Annotated[str | None, QueryParameter()] = None) -> list[TenantBillingOut]:
        async with runtime.db.platform_session(reason="operator lists tenants' billing") as session:
            return [t for t in await tenant_rows(session) if status is None or t.status == status]

    @post("/tenants/{target_tenant_id:uuid}/seats", guards=[operator_scope(BILLING_WRITE)], status_code=200)
    async def grant(self, target_tenant_id: FromPath[uuid.UUID], data: JSONBody[OperatorSeatsIn], request: Request, runtime: RuntimeDep, principal: CurrentPrincipal) -> services.LedgerView:
        """An operator's seat change (a contract, a correction), written to the ledger like any other."""
        if data.delta == 0:
            raise Problem(400, "invalid_seat_change", "the change must not be zero")
        services.check_seat_change(abs(data.delta))
        async with runtime.db.platform_session(reason="operator changes a tenant's seats") as session:
            if await session.scalar(select(Tenant.id).where(Tenant.id == target_tenant_id, Tenant.status != TenantStatus.CLOSED)) is None:
                raise not_found("tenant")
            change = await change_seats(
                runtime, session, tenant_id=target_tenant_id, delta=data.delta, actor=principal.actor, reason="operator",
                request_key=request.headers.get("idempotency-key"), require_payment_method=False,
            )
            await audit.record_platform(session, actor=principal.actor, action="billing.operator_seats", target=f"tenant:{target_tenant_id}",
                                        detail={"delta": data.delta, "note": data.note})
            return change.entry


async def tenant_rows(session: AsyncSession) -> list[TenantBillingOut]:
    due = dict(
        (await session.execute(
            select(Invoice.tenant_id, func.sum(Invoice.amount_due)).where(Invoice.status == "open").group_by(Invoice.tenant_id)
        )).all()
    )
    rows = await session.execute(
        select(Tenant, BillingAccount, Plan)
        .join(BillingAccount, BillingAccount.tenant_id == Tenant.id)
        .outerjoin(Plan, Plan.code == Tenant.plan)
        .where(Tenant.status != TenantStatus.CLOSED)
        .order_by(Tenant.slug)
    )
    return [
        TenantBillingOut(
            tenant.id, tenant.slug, tenant.name, tenant.plan, account.seats, account.status, account.grace_until,
            account.seats * (plan.seat_price if plan else 0), plan.currency if plan else "usd", int(due.get(tenant.id) or 0),
        )
        for tenant, account, plan in rows
    ]


async def overview(session: AsyncSession) -> OverviewOut:
    tenants = await tenant_rows(session)
    since = utcnow() - timedelta(days=30)
    paid = dict(
        (await session.execute(
            select(Invoice.currency, func.sum(Invoice.amount_paid)).where(Invoice.status == "paid", Invoice.updated_at >= since).group_by(Invoice.currency)
        )).all()
    )
    by_currency: dict[str, list[int]] = {}
    for t in tenants:
        totals = by_currency.setdefault(t.currency, [0, 0])
        totals[0] += t.monthly_seat_revenue
        totals[1] += t.open_amount_due
    for currency in paid:
        by_currency.setdefault(currency, [0, 0])
    revenue = [RevenueOut(c, v[0], int(paid.get(c) or 0), v[1]) for c, v in sorted(by_currency.items())]
    count = {s: sum(1 for t in tenants if t.status == s) for s in ("active", "past_due", "suspended")}
    return OverviewOut(
        len(tenants), sum(t.seats for t in tenants), count["active"], count["past_due"], count["suspended"], revenue,
        [t for t in tenants if t.status != "active"], sorted(tenants, key=lambda t: (-t.seats, t.slug))[:20],
    )


# --- tenant creation, periodic upkeep ---------------------------------------------------------------


class BillingHooks:
    """What the admin API asks of billing when an operator creates a tenant or changes its plan."""

    async def check_plan(self, session: AsyncSession, code: str) -> None:
        plan = await session.scalar(select(Plan).where(Plan.code == code))
        if plan is None or not plan.active:
            raise Problem(400, "plan_not_found", f"there is no active plan {code!r}")

    async def tenant_created(self, session: AsyncSession, *, tenant_id: uuid.UUID, seats: int, actor: str) -> None:
        await services.open_account(session, tenant_id=tenant_id, seats=seats, actor=actor)


class BillingScheduler(TenantJobScheduler):
    """Every ``billing_interval_s`` (worker processes): one ``maintain_account`` job per open
    account (nothing in billing's upkeep is due the moment a worker starts)."""

    name = "billing upkeep scheduler"
    reason = "scheduled billing upkeep"

    async def tenants(self, session: AsyncSession) -> list[uuid.UUID]:
        return list(await session.scalars(
            select(BillingAccount.tenant_id).join(Tenant, Tenant.id == BillingAccount.tenant_id).where(Tenant.status != TenantStatus.CLOSED)
        ))

    async def enqueue(self, session: AsyncSession, tenant_id: uuid.UUID, *, tick: str, now: datetime) -> None:
        await enqueue(session, jobs.maintain_account, tenant_id=tenant_id, tick=tick)


def install(runtime: Runtime) -> list[Any]:
    runtime.components["billing"] = BillingHooks()
    if "worker" in runtime.process_roles:
        runtime.add_service(BillingScheduler(runtime, interval_s=runtime.settings.billing_interval_s))
    return [BillingController, StripeWebhookController, PlanAdminController, BillingAdminController]
