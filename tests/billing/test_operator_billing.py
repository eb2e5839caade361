"""Operators: plans, tenants created with seats on an existing plan, seat grants, and the
platform-wide view of seats, revenue and past-due tenants."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from billing_support import Admin, new_tenant
from sqlalchemy import select, update

from kefu.billing.models import BillingAccount, Invoice, Plan
from kefu.platform.identity.principal import Principal
from kefu.platform.runtime import Runtime

SCOPES = frozenset({"platform:tenants.read", "platform:tenants.write", "platform:billing.read", "platform:billing.write"})


def operator(runtime: Runtime, scopes: frozenset[str] = SCOPES) -> dict[str, str]:
    token = runtime.tokens.issue(Principal(kind="operator", subject="ops-1", tenant_id=None, scopes=scopes))
    return {"Authorization": f"Bearer {token}"}


PLAN = {"code": "bpo-gold", "name": "BPO Gold", "currency": "cny", "seat_price": 30000, "included_minutes_per_seat": 2000,
        "overage_per_minute": 15, "storage_per_gb_month": 50}


async def test_operators_manage_plans_and_bad_plans_are_refused(client: Any, runtime: Runtime, traveller: Any) -> None:
    ops = operator(runtime)
    created = await client.post("/api/admin/v1/plans", json=PLAN, headers=ops)
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in PLAN} == PLAN
    assert (await client.post("/api/admin/v1/plans", json=PLAN, headers=ops)).json()["code"] == "plan_exists"
    for bad, code in (
        ({**PLAN, "code": "Gold Plan"}, "invalid_plan"), ({**PLAN, "code": "x", "currency": "RMB"}, "invalid_currency"),
        ({**PLAN, "code": "y", "seat_price": -1}, "invalid_amount"), ({**PLAN, "code": "z", "seat_price": 10**12}, "invalid_amount"),
        ({**PLAN, "code": "w", "name": " "}, "invalid_name"),
    ):
        response = await client.post("/api/admin/v1/plans", json=bad, headers=ops)
        assert (response.status_code, response.json()["code"]) == (400, code)
    changed = await client.patch("/api/admin/v1/plans/bpo-gold", json={"seat_price": 32000, "active": False}, headers=ops)
    assert (changed.json()["seat_price"], changed.json()["active"]) == (32000, False)
    assert (await client.patch("/api/admin/v1/plans/bpo-gold", json={"seat_price": -5}, headers=ops)).json()["code"] == "invalid_amount"
    assert (await client.patch("/api/admin/v1/plans/nope", json={"seat_price": 1}, headers=ops)).status_code == 404
    codes = [p["code"] for p in (await client.get("/api/admin/v1/plans", headers=ops)).json()]
    assert codes == ["bpo-gold", "premium", "standard"]
    tenants_only = operator(runtime, frozenset({"platform:tenants.read"}))
    assert (await client.get("/api/admin/v1/plans", headers=tenants_only)).status_code == 403


async def test_a_tenant_is_created_with_its_seats_on_an_active_plan(client: Any, runtime: Runtime, traveller: Any) -> None:
    ops = operator(runtime)
    body = {"name": "Northwind", "slug": "northwind", "time_zone": "Asia/Shanghai", "plan": "premium", "seats": 12,
            "admin": {"email": "boss@northwind.test", "display_name": "Boss"}}
    created = await client.post("/api/admin/v1/tenants", json=body, headers=ops)
    assert created.status_code == 201, created.text
    tenant_id = uuid.UUID(created.json()["tenant"]["id"])
    async with runtime.db.platform_session(reason="test") as session:
        seats = await session.scalar(select(BillingAccount.seats).where(BillingAccount.tenant_id == tenant_id))
    assert seats == 12
    missing = await client.post("/api/admin/v1/tenants", json={**body, "slug": "southwind", "plan": "platinum"}, headers=ops)
    assert (missing.status_code, missing.json()["code"]) == (400, "plan_not_found")
    negative = await client.post("/api/admin/v1/tenants", json={**body, "slug": "eastwind", "seats": -1}, headers=ops)
    assert (negative.status_code, negative.json()["code"]) == (400, "invalid_seats")
    listed = [t["slug"] for t in (await client.get("/api/admin/v1/tenants", headers=ops)).json()["items"]]
    assert "southwind" not in listed and "eastwind" not in listed  # nothing of a refused tenant was stored
    moved = await client.patch(f"/api/admin/v1/tenants/{tenant_id}", json={"plan": "platinum"}, headers=ops)
    assert (moved.status_code, moved.json()["code"]) == (400, "plan_not_found")
    assert (await client.get(f"/api/admin/v1/tenants/{tenant_id}", headers=ops)).json()["plan"] == "premium"


async def test_operator_seat_grants_go_to_the_ledger(client: Any, runtime: Runtime, acme: Admin) -> None:
    ops = operator(runtime)
    granted = await client.post(f"/api/admin/v1/billing/tenants/{acme.tenant_id}/seats", json={"delta": 8, "note": "contract 42"}, headers=ops)
    assert granted.status_code == 200, granted.text
    assert (granted.json()["seats_after"], granted.json()["reason"]) == (10, "operator")
    ledger = (await client.get("/api/v1/billing/ledger", headers=acme.headers)).json()
    assert [(e["delta"], e["reason"], e["actor"]) for e in ledger] == [(8, "operator", "operator:ops-1"), (2, "opening", "test")]
    assert (await client.post(f"/api/admin/v1/billing/tenants/{acme.tenant_id}/seats", json={"delta": 0}, headers=ops)).status_code == 400
    assert (await client.post("/api/admin/v1/billing/tenants/00000000-0000-4000-8000-000000000000/seats", json={"delta": 1}, headers=ops)).status_code == 404
    assert (await client.post(f"/api/admin/v1/billing/tenants/{acme.tenant_id}/seats", json={"delta": 1}, headers=acme.headers)).status_code == 403


@pytest.mark.parametrize("path", ["/api/admin/v1/billing/overview", "/api/admin/v1/billing/tenants", "/api/admin/v1/plans"])
async def test_tenant_tokens_never_reach_the_operator_view(client: Any, acme: Admin, path: str) -> None:
    response = await client.get(path, headers=acme.headers)
    assert (response.status_code, response.json()["code"]) == (403, "operator_required")


async def test_the_overview_shows_seats_revenue_and_past_due_tenants(client: Any, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    initech = await new_tenant(runtime, "initech", seats=4, plan="premium")
    async with runtime.db.platform_session(reason="test") as session:
        await session.execute(update(BillingAccount).where(BillingAccount.tenant_id == globex.tenant_id).values(status="past_due"))
        account = await session.scalar(select(BillingAccount).where(BillingAccount.tenant_id == acme.tenant_id))
        assert account is not None
        for status, paid, due in (("paid", 9800, 0), ("open", 0, 4900)):
            session.add(Invoice(tenant_id=acme.tenant_id, number=f"N-{status}", status=status, currency="usd", period_start=account.period_start,
                                period_end=account.period_end, subtotal=9800, total=9800, amount_paid=paid, amount_due=due, lines=[]))
        premium = await session.scalar(select(Plan.seat_price).where(Plan.code == "premium"))
    overview = (await client.get("/api/admin/v1/billing/overview", headers=operator(runtime))).json()
    assert (overview["tenants"], overview["seats"], overview["active"], overview["past_due"], overview["suspended"]) == (3, 9, 2, 1, 0)
    assert overview["revenue"] == [{"currency": "usd", "monthly_recurring": 2 * 4900 + 3 * 4900 + 4 * premium, "paid_last_30_days": 9800, "open_amount_due": 4900}]
    assert [t["slug"] for t in overview["past_due_tenants"]] == ["globex"]
    assert [t["slug"] for t in overview["top_tenants"]] == ["initech", "globex", "acme"]
    assert initech.tenant_id in {uuid.UUID(t["tenant_id"]) for t in overview["top_tenants"]}
    due = (await client.get("/api/admin/v1/billing/tenants?status=past_due", headers=operator(runtime))).json()
    assert [t["slug"] for t in due] == ["globex"]
