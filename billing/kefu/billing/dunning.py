"""Dunning: active → past due → (grace period) → suspended → active again.

The account's status follows its invoices, so events that arrive late or out
of order settle on the same answer:

* an open invoice whose payment failed makes an active account past due, with
  a grace period from that moment (``grace_until``);
* when no such invoice is left (paid, voided, written off), the account is
  active again at once — a suspended one gets its service back in the same
  transaction;
* ``enforce`` (the periodic billing job) suspends a past-due account whose
  grace period is over.

Suspending and restoring run the hooks other contexts registered with
``services.on_service_change`` (the ACD keeps agents from going ready).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing.models import BillingAccount, Invoice
from kefu.billing.services import set_service
from kefu.platform import audit


async def has_failed_payment(session: AsyncSession, account: BillingAccount) -> bool:
    found = await session.scalar(
        select(Invoice.id).where(Invoice.tenant_id == account.tenant_id, Invoice.status == "open", Invoice.payment_failed.is_(True)).limit(1)
    )
    return found is not None


async def settle(session: AsyncSession, account: BillingAccount, *, now: datetime, grace: timedelta, actor: str) -> str:
    """Bring the account's status in line with its invoices; returns the status."""
    failing = await has_failed_payment(session, account)
    before = account.status
    if failing and account.status == "active":
        account.status, account.past_due_since, account.grace_until = "past_due", now, now + grace
    elif not failing and account.status != "active":
        account.status, account.past_due_since, account.grace_until, account.suspended_at = "active", None, None, None
        if before == "suspended":
            await set_service(session, tenant_id=account.tenant_id, suspended=False)
    if account.status != before:
        account.updated_at = now
        await audit.record(
            session, tenant_id=account.tenant_id, actor=actor, action=f"billing.{account.status}", target=f"tenant:{account.tenant_id}",
            detail={"from": before, **({"grace_until": account.grace_until.isoformat()} if account.grace_until else {})},
        )
    return account.status


async def enforce(session: AsyncSession, account: BillingAccount, *, now: datetime, actor: str = "billing") -> bool:
    """Suspend a past-due account whose grace period is over; returns whether it did."""
    if account.status != "past_due" or account.grace_until is None or account.grace_until > now:
        return False
    account.status, account.suspended_at, account.updated_at = "suspended", now, now
    await set_service(session, tenant_id=account.tenant_id, suspended=True)
    await audit.record(
        session, tenant_id=account.tenant_id, actor=actor, action="billing.suspended", target=f"tenant:{account.tenant_id}",
        detail={"past_due_since": account.past_due_since.isoformat() if account.past_due_since else None},
    )
    return True
