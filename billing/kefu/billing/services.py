"""What the other contexts may ask of billing: the seat ledger, the seat cap and
the dunning status.

* ``change_seats`` appends to the seat ledger in the caller's transaction, with
  the account row locked, so concurrent changes are serialised and a repeated
  request (the same ``Idempotency-Key``) is the same ledger row.
* ``check_seat_available`` is called by whatever makes one more agent active
  (creating an agent, enabling an agent's user): the cap is the seats rented.
* ``service_suspended`` is true while a tenant is suspended for non-payment:
  its agents cannot go ready and its callers hear a polite message.

Amounts are integers in the currency's minor unit.  Every function takes the
tenant explicitly and reads nothing of another tenant.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing.models import BillingAccount, Plan, SeatLedgerEntry
from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.models import Tenant
from kefu.platform.problems import Problem

MAX_SEATS = 10_000
MAX_CHANGE = 1_000
Clock = Callable[[], datetime]

# Called in the transaction that suspends or restores a tenant's service
# (``(session, tenant_id, suspended)``): the ACD keeps agents from being ready.
ServiceHook = Callable[[AsyncSession, uuid.UUID, bool], Awaitable[object]]
_service_hooks: dict[str, ServiceHook] = {}


def on_service_change(name: str, hook: ServiceHook) -> None:
    """Register (once per name) what happens when a tenant's service is suspended or restored."""
    _service_hooks[name] = hook


def add_month(moment: datetime) -> datetime:
    """The same moment a calendar month later (the 31st becomes the month's last day)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class LedgerView:
    seq: int
    delta: int
    seats_after: int
    reason: str
    actor: str
    created_at: datetime


def ledger_view(row: SeatLedgerEntry) -> LedgerView:
    return LedgerView(row.seq, row.delta, row.seats_after, row.reason, row.actor, row.created_at)


async def plan_of(session: AsyncSession, *, tenant_id: uuid.UUID) -> Plan:
    code = await session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id))
    plan = await session.scalar(select(Plan).where(Plan.code == code)) if code is not None else None
    if plan is None:
        raise Problem(409, "plan_not_found", f"the tenant's plan {code!r} does not exist: an operator must create it")
    return plan


async def open_account(
    session: AsyncSession, *, tenant_id: uuid.UUID, seats: int, actor: str, now: datetime | None = None
) -> BillingAccount:
    """The tenant's account, opened with ``seats`` (its first ledger row)."""
    seats = check_seat_total(seats)
    now = now or utcnow()
    account = BillingAccount(
        tenant_id=tenant_id, seats=seats, ledger_seq=1, status="active", period_start=now, period_end=add_month(now),
        stripe_quantity_updates=[], created_at=now, updated_at=now,
    )
    session.add(account)
    session.add(SeatLedgerEntry(tenant_id=tenant_id, seq=1, delta=seats, seats_after=seats, reason="opening", actor=actor, created_at=now))
    await session.flush()  # the opening ledger row is its record (the tenant's creation is audited)
    return account


async def account_of(session: AsyncSession, *, tenant_id: uuid.UUID, lock: bool = False) -> BillingAccount:
    """The tenant's account (opened with no seats if it has none yet), locked for update on request."""
    query = select(BillingAccount).where(BillingAccount.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update()
    account = await session.scalar(query)
    if account is None:
        try:
            async with session.begin_nested():
                account = await open_account(session, tenant_id=tenant_id, seats=0, actor="system")
        except IntegrityError:  # opened concurrently
            account = await session.scalar(query)
            assert account is not None
    return account


def check_seat_total(seats: object) -> int:
    if isinstance(seats, bool) or not isinstance(seats, int):
        raise Problem(400, "invalid_seats", "the seat count must be a whole number")
    if not 0 <= seats <= MAX_SEATS:
        raise Problem(400, "invalid_seats", f"the seat count must be between 0 and {MAX_SEATS}")
    return seats


def check_seat_change(delta: object) -> int:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise Problem(400, "invalid_seat_change", "the number of seats must be a whole number")
    if not 1 <= delta <= MAX_CHANGE:
        raise Problem(400, "invalid_seat_change", f"rent or release between 1 and {MAX_CHANGE} seats at a time")
    return delta


def _fingerprint(delta: int, reason: str) -> str:
    return hashlib.sha256(json.dumps([delta, reason]).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SeatChange:
    entry: LedgerView
    replayed: bool


async def change_seats(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    delta: int,
    in_use: int,
    actor: str,
    reason: str,
    request_key: str | None = None,
    require_payment_method: bool = False,
    clock: Clock = utcnow,
) -> SeatChange:
    """Rent (``delta`` > 0) or release seats: one ledger row and the account's copy of it.

    ``in_use`` is how many seats active agents hold (a release may not go below it).
    A ``request_key`` seen before answers its first row again (``replayed``) when the
    change is the same, and 409 ``idempotency_key_reused`` when it is not.
    """
    if request_key is not None and not 1 <= len(request_key) <= 200:
        raise Problem(400, "invalid_idempotency_key", "the Idempotency-Key must have 1 to 200 characters")
    account = await account_of(session, tenant_id=tenant_id, lock=True)
    fingerprint = _fingerprint(delta, reason)
    if request_key is not None:
        earlier = await session.scalar(
            select(SeatLedgerEntry).where(SeatLedgerEntry.tenant_id == tenant_id, SeatLedgerEntry.request_key == request_key)
        )
        if earlier is not None:
            if earlier.request_fingerprint != fingerprint:
                raise Problem(409, "idempotency_key_reused", "this Idempotency-Key was used for a different seat change")
            return SeatChange(ledger_view(earlier), replayed=True)
    after = account.seats + delta
    if after > MAX_SEATS:
        raise Problem(409, "seat_maximum", f"a tenant can rent at most {MAX_SEATS} seats; ask us for more", seats=account.seats)
    if after < 0:
        raise Problem(409, "not_enough_seats", f"only {account.seats} seats are rented", seats=account.seats)
    if delta < 0 and after < in_use:
        raise Problem(
            409, "seats_in_use", f"{in_use} agents are active: disable {in_use - after} of them before releasing these seats",
            seats=account.seats, in_use=in_use,
        )
    if delta > 0 and account.status != "active":
        raise Problem(409, "account_past_due", "pay the open invoice before renting more seats", billing_status=account.status)
    if delta > 0 and require_payment_method and not account.payment_method_ready:
        raise Problem(409, "payment_method_required", "add a payment method before renting seats")
    now = clock()
    account.ledger_seq += 1
    account.seats = after
    account.updated_at = now
    row = SeatLedgerEntry(
        tenant_id=tenant_id, seq=account.ledger_seq, delta=delta, seats_after=after, reason=reason, actor=actor,
        request_key=request_key, request_fingerprint=fingerprint, created_at=now,
    )
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:  # the same key, committed by a concurrent request after our read
        raise Problem(409, "seat_change_in_progress", "the same seat change is being made; reload to see it") from None
    await audit.record(
        session, tenant_id=tenant_id, actor=actor, action="billing.seats_rented" if delta > 0 else "billing.seats_released",
        target=f"tenant:{tenant_id}", detail={"delta": delta, "seats": after, "seq": row.seq},
    )
    return SeatChange(ledger_view(row), replayed=False)


async def check_seat_available(session: AsyncSession, *, tenant_id: uuid.UUID, in_use: Callable[[], Awaitable[int]]) -> None:
    """Refuses one more active agent when the seats in use (``in_use()``, counted once the
    account row is locked) already fill the rented ones.  The lock is held to the end of
    the caller's transaction, so two agents created at once cannot both take the last seat."""
    account = await account_of(session, tenant_id=tenant_id, lock=True)
    count = await in_use()
    if count + 1 > account.seats:
        raise Problem(
            409, "seat_limit_reached",
            f"all {account.seats} rented seats are in use: rent more seats on the Billing page, or disable an agent first",
            seats=account.seats, in_use=count,
        )


async def service_suspended(session: AsyncSession, *, tenant_id: uuid.UUID) -> bool:
    status = await session.scalar(select(BillingAccount.status).where(BillingAccount.tenant_id == tenant_id))
    return status == "suspended"


async def ledger(session: AsyncSession, *, tenant_id: uuid.UUID, limit: int = 100) -> list[LedgerView]:
    rows = await session.scalars(
        select(SeatLedgerEntry).where(SeatLedgerEntry.tenant_id == tenant_id).order_by(SeatLedgerEntry.seq.desc()).limit(limit)
    )
    return [ledger_view(r) for r in rows]


async def seats_over_time(session: AsyncSession, *, tenant_id: uuid.UUID, start: datetime, end: datetime) -> list[tuple[datetime, datetime, int]]:
    """The seat count's segments covering [start, end): (from, to, seats), from the ledger alone."""
    rows = list(
        await session.scalars(
            select(SeatLedgerEntry).where(SeatLedgerEntry.tenant_id == tenant_id, SeatLedgerEntry.created_at < end).order_by(SeatLedgerEntry.seq)
        )
    )
    segments: list[tuple[datetime, datetime, int]] = []
    seats, since = 0, start
    for row in rows:
        at = max(row.created_at, start)
        if at > since and seats:
            segments.append((since, at, seats))
        if row.created_at >= start:
            since = at
        seats = row.seats_after
    if end > since and seats:
        segments.append((since, end, seats))
    return segments


async def set_service(session: AsyncSession, *, tenant_id: uuid.UUID, suspended: bool) -> None:
    """Run the registered hooks for a tenant whose service was just suspended or restored."""
    for hook in list(_service_hooks.values()):
        await hook(session, tenant_id, suspended)

