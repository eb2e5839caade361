"""Local invoices (no Stripe key): proration from the seat ledger, overage minutes from
the calls, storage from the recordings — every figure worked out by hand, with time
frozen and moved by time-machine so the periods are exact."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from billing_support import T0, Admin, new_tenant
from sqlalchemy import select

from kefu.billing import jobs
from kefu.billing.models import Plan
from kefu.platform.db.base import utcnow
from kefu.platform.events import enqueue
from kefu.platform.runtime import Runtime
from kefu.tenants.models import Call, Recording

DAY = timedelta(days=1)


async def make_plan(runtime: Runtime) -> None:
    async with runtime.db.platform_session(reason="test") as session:
        if await session.scalar(select(Plan.id).where(Plan.code == "tiny")) is None:
            session.add(Plan(code="tiny", name="Tiny", currency="usd", seat_price=4900, included_minutes_per_seat=10,
                             overage_per_minute=3, storage_per_gb_month=100, created_at=utcnow(), updated_at=utcnow()))


async def add_call(runtime: Runtime, tenant_id: uuid.UUID, *, answered_after_s: float | None, talk_s: float, at: Any, recording_bytes: int | None = None) -> None:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        call = Call(id=uuid.uuid4(), tenant_id=tenant_id, caller_name="Caller", status="ended", started_at=at, skills=[],
                    answered_at=at + timedelta(seconds=answered_after_s) if answered_after_s is not None else None,
                    ended_at=at + timedelta(seconds=(answered_after_s or 0) + talk_s), end_reason="caller_hangup")
        session.add(call)
        await session.flush()
        if recording_bytes is not None:
            session.add(Recording(tenant_id=tenant_id, call_id=call.id, party="caller", path=f"{tenant_id}/{call.id}/caller.ogg",
                                  started_at=at, ended_at=call.ended_at, size_bytes=recording_bytes, duration_ms=int(talk_s * 1000)))


async def maintain(runtime: Runtime, tenant_id: uuid.UUID, tick: str) -> None:
    async with runtime.db.platform_session(reason="test") as session:
        await enqueue(session, jobs.maintain_account, tenant_id=tenant_id, tick=tick)
    await runtime.components["jobs"].drain()


async def test_a_period_is_invoiced_once_with_prorated_seats_overage_and_storage(client: Any, runtime: Runtime, traveller: Any) -> None:
    traveller.move_to(T0, tick=False)
    await make_plan(runtime)
    acme = await new_tenant(runtime, "acme", seats=2, plan="tiny")
    other = await new_tenant(runtime, "globex", seats=9, plan="tiny")  # its calls and seats are not acme's
    seats = lambda body, key: client.post("/api/v1/billing/seats", json=body, headers={**acme.headers, "Idempotency-Key": key})  # noqa: E731

    traveller.move_to(T0 + 10 * DAY, tick=False)
    assert (await seats({"rent": 3}, "a")).status_code == 200  # 5 seats from day 10
    traveller.move_to(T0 + 20 * DAY, tick=False)
    assert (await seats({"release": 4}, "b")).status_code == 200  # 1 seat from day 20

    # Talk time, each call rounded up to a whole minute: 61 s → 2, 120 s → 2, 3599 s → 60.
    await add_call(runtime, acme.tenant_id, answered_after_s=5, talk_s=61, at=T0 + 1 * DAY)
    await add_call(runtime, acme.tenant_id, answered_after_s=30, talk_s=120, at=T0 + 2 * DAY)
    # 1.5 GB recorded on day 15: it exists for 16 of the period's 31 days.
    await add_call(runtime, acme.tenant_id, answered_after_s=1, talk_s=3599, at=T0 + 15 * DAY, recording_bytes=1_500_000_000)
    await add_call(runtime, acme.tenant_id, answered_after_s=None, talk_s=40, at=T0 + 3 * DAY)  # abandoned: no minutes
    await add_call(runtime, acme.tenant_id, answered_after_s=0, talk_s=600, at=T0 + 31 * DAY + timedelta(hours=1))  # next period
    await add_call(runtime, other.tenant_id, answered_after_s=0, talk_s=6000, at=T0 + 4 * DAY, recording_bytes=9_000_000_000)

    traveller.move_to(T0 + 31 * DAY - timedelta(seconds=1), tick=False)
    await maintain(runtime, acme.tenant_id, "before")
    assert (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json() == []  # the period has not ended

    traveller.move_to(T0 + 31 * DAY + timedelta(hours=2), tick=False)
    await maintain(runtime, acme.tenant_id, "after")
    await maintain(runtime, acme.tenant_id, "again")  # a second run issues nothing more
    invoices = (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json()
    assert len(invoices) == 1
    invoice = invoices[0]
    lines = [(line["kind"], line["quantity"], line["unit_amount"], line["amount"]) for line in invoice["lines"]]
    assert lines == [
        ("seats", 2, 4900, 3161),  # 2 × 49.00 × 10/31 = 31.6129…
        ("seats", 5, 4900, 7903),  # 5 × 49.00 × 10/31 = 79.0322…
        ("seats", 1, 4900, 1739),  # 1 × 49.00 × 11/31 = 17.3870…
        ("overage_minutes", 14, 3, 42),  # 64 minutes − 10 × 5 (the most seats in the period)
        ("storage", 0.774, 100, 77),  # 1.5 GB × 16/31 = 0.774 GB-month × 1.00
    ]
    assert (invoice["total"], invoice["amount_due"], invoice["status"], invoice["sent_to_stripe"], invoice["currency"]) == (12922, 12922, "open", False, "usd")
    assert (invoice["period_start"], invoice["period_end"]) == ("2027-01-01T09:00:00Z", "2027-02-01T09:00:00Z")
    account = (await client.get("/api/v1/billing", headers=acme.headers)).json()
    assert (account["period_start"], account["period_end"]) == ("2027-02-01T09:00:00Z", "2027-03-01T09:00:00Z")
    one = await client.get(f"/api/v1/billing/invoices/{invoice['id']}", headers=acme.headers)
    assert one.json()["total"] == 12922
    assert (await client.get(f"/api/v1/billing/invoices/{invoice['id']}", headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/billing/invoices", headers=other.headers)).json() == []  # not maintained yet


async def test_a_month_with_the_31st_ends_on_the_last_day_of_a_shorter_month(client: Any, runtime: Runtime, traveller: Any) -> None:
    start = T0.replace(month=1, day=31)
    traveller.move_to(start, tick=False)
    acme: Admin = await new_tenant(runtime, "acme", seats=1)
    traveller.move_to(start + 29 * DAY, tick=False)  # 1 March: February's period ended on the 28th
    await maintain(runtime, acme.tenant_id, "march")
    invoice = (await client.get("/api/v1/billing/invoices", headers=acme.headers)).json()[0]
    assert (invoice["period_start"], invoice["period_end"], invoice["total"]) == ("2027-01-31T09:00:00Z", "2027-02-28T09:00:00Z", 4900)
