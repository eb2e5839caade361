"""What a billing period costs, from the seat ledger and measured usage.

The arithmetic is exact (fractions), rounded once per line, half up, to the
currency's minor unit:

* seats — one line per stretch of the period with the same seat count:
  ``seats × seat price × stretch seconds / period seconds`` (proration);
* overage minutes — answered minutes beyond ``included minutes per seat ×
  the most seats rented during the period``, at the plan's price per minute;
* storage — recording GB-months at the plan's price per GB-month.

With a Stripe key, Stripe computes the invoice from the subscription and the
meters; without one, ``issue_local_invoice`` writes it here, marked as not
sent to Stripe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing.models import BillingAccount, Invoice, Plan
from kefu.billing.services import add_month, seats_over_time
from kefu.billing.usage import Usage, measure_usage


def round_half_up(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + Fraction(1, 2))


@dataclass(frozen=True)
class Line:
    kind: str  # seats | overage_minutes | storage
    description: str
    quantity: float
    unit_amount: int
    amount: int
    period_start: str
    period_end: str


def seat_lines(plan: Plan, segments: list[tuple[datetime, datetime, int]], start: datetime, end: datetime) -> list[Line]:
    period = Fraction(int((end - start).total_seconds()))
    lines = []
    for since, until, seats in segments:
        share = Fraction(int((until - since).total_seconds())) / period
        amount = round_half_up(seats * plan.seat_price * share)
        days = (until - since).total_seconds() / 86400
        lines.append(Line(
            "seats", f"{seats} seats × {days:g} of {float(period) / 86400:g} days", seats, plan.seat_price, amount,
            since.isoformat(), until.isoformat(),
        ))
    return lines


def usage_lines(plan: Plan, usage: Usage, max_seats: int, start: datetime, end: datetime) -> list[Line]:
    lines = []
    included = plan.included_minutes_per_seat * max_seats
    overage = max(0, usage.minutes - included)
    if overage:
        lines.append(Line(
            "overage_minutes", f"{overage} minutes beyond the {included} included", overage, plan.overage_per_minute,
            overage * plan.overage_per_minute, start.isoformat(), end.isoformat(),
        ))
    if usage.storage_milli_gb_months:
        gb_months = Fraction(usage.storage_milli_gb_months, 1000)
        lines.append(Line(
            "storage", f"{float(gb_months):g} GB-months of recordings", float(gb_months), plan.storage_per_gb_month,
            round_half_up(gb_months * plan.storage_per_gb_month), start.isoformat(), end.isoformat(),
        ))
    return lines


async def period_lines(session: AsyncSession, *, account: BillingAccount, plan: Plan, start: datetime, end: datetime) -> list[Line]:
    segments = await seats_over_time(session, tenant_id=account.tenant_id, start=start, end=end)
    usage = await measure_usage(session, tenant_id=account.tenant_id, start=start, end=end)
    max_seats = max((seats for _s, _u, seats in segments), default=0)
    return seat_lines(plan, segments, start, end) + usage_lines(plan, usage, max_seats, start, end)


async def issue_local_invoice(session: AsyncSession, *, account: BillingAccount, plan: Plan, now: datetime) -> Invoice | None:
    """Close the account's period if it has ended: the invoice (once per period) and the next period."""
    if account.period_end > now:
        return None
    start, end = account.period_start, account.period_end
    key = f"local:{start.isoformat()}"
    invoice = await session.scalar(select(Invoice).where(Invoice.tenant_id == account.tenant_id, Invoice.local_key == key))
    if invoice is None:
        lines = await period_lines(session, account=account, plan=plan, start=start, end=end)
        total = sum(line.amount for line in lines)
        count = await session.scalar(select(func.count()).select_from(Invoice).where(Invoice.tenant_id == account.tenant_id)) or 0
        invoice = Invoice(
            tenant_id=account.tenant_id, number=f"L-{start:%Y%m}-{count + 1:04d}", status="open", currency=plan.currency,
            period_start=start, period_end=end, subtotal=total, total=total, amount_paid=0, amount_due=total,
            lines=[_json(line) for line in lines], sent_to_stripe=False, local_key=key, created_at=now, updated_at=now,
        )
        session.add(invoice)
    account.period_start, account.period_end = end, add_month(end)
    account.updated_at = now
    await session.flush()
    return invoice


def _json(line: Line) -> dict[str, Any]:
    return asdict(line)
