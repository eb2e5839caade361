"""The seat ledger and the seat cap, with billing running locally (no Stripe key)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from billing_support import Admin, add_agent, new_tenant
from sqlalchemy import select

from kefu.billing.models import BillingAccount, SeatLedgerEntry
from kefu.platform.runtime import Runtime


async def ledger_rows(runtime: Runtime, tenant_id: uuid.UUID) -> list[tuple[int, int, int, str]]:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        rows = await session.scalars(select(SeatLedgerEntry).where(SeatLedgerEntry.tenant_id == tenant_id).order_by(SeatLedgerEntry.seq))
        return [(r.seq, r.delta, r.seats_after, r.reason) for r in rows]


async def account_seats(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        return (await session.scalar(select(BillingAccount.seats).where(BillingAccount.tenant_id == tenant_id))) or 0


async def rent(client: Any, admin: Admin, count: int, key: str | None = None, *, release: bool = False) -> Any:
    headers = {**admin.headers, **({"Idempotency-Key": key} if key else {})}
    return await client.post("/api/v1/billing/seats", json={"release" if release else "rent": count}, headers=headers)


async def test_the_account_says_billing_runs_locally_without_a_stripe_key(client: Any, acme: Admin) -> None:
    response = await client.get("/api/v1/billing", headers=acme.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["mode"], body["seats"], body["seats_in_use"], body["status"], body["stripe_synced"]) == ("local", 2, 0, "active", True)
    assert "not sent to Stripe" in body["notice"]
    assert body["plan"]["code"] == "standard" and body["plan"]["seat_price"] == 4900
    checkout = await client.post("/api/v1/billing/checkout", json={}, headers=acme.headers)
    assert (checkout.status_code, checkout.json()["code"]) == (409, "billing_local")


async def test_adding_an_agent_beyond_the_rented_seats_is_refused_with_a_clear_message(client: Any, runtime: Runtime, acme: Admin) -> None:
    assert (await add_agent(client, runtime, acme, "Ann")).status_code == 201
    assert (await add_agent(client, runtime, acme, "Bob")).status_code == 201
    refused = await add_agent(client, runtime, acme, "Cid")
    assert refused.status_code == 409
    problem = refused.json()
    assert (problem["code"], problem["seats"], problem["in_use"]) == ("seat_limit_reached", 2, 2)
    assert "rent more seats" in problem["detail"]
    agents = (await client.get("/api/v1/agents", headers=acme.headers)).json()
    assert sorted(a["display_name"] for a in agents) == ["Ann", "Bob"]  # nothing of Cid was stored
    users = (await client.get("/api/v1/users", headers=acme.headers)).json()
    assert not any(u["email"] == "cid@example.test" for u in users["items"])

    assert (await rent(client, acme, 1, "rent-1")).status_code == 200
    assert (await add_agent(client, runtime, acme, "Cid")).status_code == 201


async def test_a_disabled_agent_frees_its_seat_and_enabling_it_again_needs_one(client: Any, runtime: Runtime, acme: Admin) -> None:
    ann = (await add_agent(client, runtime, acme, "Ann")).json()
    await add_agent(client, runtime, acme, "Bob")
    disabled = await client.patch(f"/api/v1/users/{ann['user_id']}", json={"status": "disabled"}, headers=acme.headers)
    assert disabled.status_code == 200, disabled.text
    assert (await add_agent(client, runtime, acme, "Cid")).status_code == 201  # Ann's seat went to Cid
    enabled = await client.patch(f"/api/v1/users/{ann['user_id']}", json={"status": "active"}, headers=acme.headers)
    assert (enabled.status_code, enabled.json()["code"]) == (409, "seat_limit_reached")
    user = (await client.get(f"/api/v1/users/{ann['user_id']}", headers=acme.headers)).json()
    assert user["status"] == "disabled"


async def test_renting_and_releasing_append_to_the_ledger_which_is_the_authority(client: Any, runtime: Runtime, acme: Admin) -> None:
    rented = await rent(client, acme, 5, "k-rent")
    assert rented.status_code == 200, rented.text
    assert (rented.json()["entry"]["seats_after"], rented.json()["replayed"], rented.json()["account"]["seats"]) == (7, False, 7)
    await add_agent(client, runtime, acme, "Ann")
    released = await rent(client, acme, 6, "k-release", release=True)
    assert released.status_code == 200, released.text
    assert await ledger_rows(runtime, acme.tenant_id) == [(1, 2, 2, "opening"), (2, 5, 7, "rent"), (3, -6, 1, "release")]
    assert await account_seats(runtime, acme.tenant_id) == 1
    listed = (await client.get("/api/v1/billing/ledger", headers=acme.headers)).json()
    assert [e["seq"] for e in listed] == [3, 2, 1]
    # Below the seats agents hold: refused, and nothing changes.
    below = await rent(client, acme, 1, "k-below", release=True)
    assert (below.status_code, below.json()["code"], below.json()["in_use"]) == (409, "seats_in_use", 1)
    assert await account_seats(runtime, acme.tenant_id) == 1
    assert len(await ledger_rows(runtime, acme.tenant_id)) == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"rent": -3}, "invalid_seat_change"),
        ({"rent": 0}, "invalid_seat_change"),
        ({"rent": 10**9}, "invalid_seat_change"),
        ({"rent": 2.5}, "invalid_seat_change"),
        ({"rent": "5"}, "invalid_seat_change"),
        ({"rent": True}, "invalid_seat_change"),
        ({"rent": 1, "release": 1}, "invalid_seat_change"),
        ({}, "invalid_seat_change"),
        ({"seats": 5}, "validation_error"),
    ],
)
async def test_bad_seat_changes_get_a_clear_error_and_change_nothing(client: Any, runtime: Runtime, acme: Admin, body: dict[str, Any], code: str) -> None:
    response = await client.post("/api/v1/billing/seats", json=body, headers={**acme.headers, "Idempotency-Key": "k"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert await ledger_rows(runtime, acme.tenant_id) == [(1, 2, 2, "opening")]


async def test_a_seat_change_without_an_idempotency_key_is_refused(client: Any, runtime: Runtime, acme: Admin) -> None:
    response = await rent(client, acme, 1)
    assert (response.status_code, response.json()["code"]) == (400, "idempotency_key_required")
    assert await account_seats(runtime, acme.tenant_id) == 2


async def test_the_maximum_number_of_seats_is_enforced(client: Any, runtime: Runtime, acme: Admin) -> None:
    for n in range(10):
        assert (await rent(client, acme, 999, f"big-{n}")).status_code == 200
    over = await rent(client, acme, 999, "big-over")
    assert (over.status_code, over.json()["code"]) == (409, "seat_maximum")
    assert await account_seats(runtime, acme.tenant_id) == 2 + 9990


# What the second of two simultaneous requests may meet: the first's row (replayed), the first
# still in progress, or (SQLite, one writer at a time) a busy database to retry.
SECOND_ANSWERS = {(200, True, None), (409, None, "seat_change_in_progress")}
BUSY = (503, None, "database_busy")


async def test_a_double_click_on_rent_seats_is_one_change(client: Any, runtime: Runtime, acme: Admin, backend: str) -> None:
    first, second = await asyncio.gather(rent(client, acme, 3, "dialog-42"), rent(client, acme, 3, "dialog-42"))
    answers = sorted((r.status_code, r.json().get("replayed"), r.json().get("code")) for r in (first, second))
    assert answers[0] == (200, False, None)
    assert answers[1] in (SECOND_ANSWERS | ({BUSY} if backend == "sqlite" else set()))
    again = await rent(client, acme, 3, "dialog-42")
    assert (again.status_code, again.json()["replayed"], again.json()["entry"]["seq"]) == (200, True, 2)
    assert await ledger_rows(runtime, acme.tenant_id) == [(1, 2, 2, "opening"), (2, 3, 5, "rent")]
    reused = await rent(client, acme, 4, "dialog-42")
    assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")
    assert await account_seats(runtime, acme.tenant_id) == 5


async def test_concurrent_agent_creations_cannot_both_take_the_last_seat(client: Any, runtime: Runtime, acme: Admin, backend: str) -> None:
    await add_agent(client, runtime, acme, "Ann")
    results = await asyncio.gather(*(add_agent(client, runtime, acme, name) for name in ("Bob", "Cid", "Dee")))
    codes = sorted(r.status_code for r in results)
    assert codes[0] == 201 and codes[1:] in ([409, 409], *([[409, 503], [503, 503]] if backend == "sqlite" else []))
    assert len((await client.get("/api/v1/agents", headers=acme.headers)).json()) == 2


async def test_billing_needs_its_permissions_and_sees_only_its_own_tenant(client: Any, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    agent = await add_agent(client, runtime, acme, "Ann")
    agent_headers = Admin(runtime, acme.tenant_id, uuid.UUID(agent.json()["user_id"]), frozenset({"agent"})).headers
    assert (await client.get("/api/v1/billing", headers=agent_headers)).status_code == 403
    assert (await client.post("/api/v1/billing/seats", json={"rent": 1}, headers={**agent_headers, "Idempotency-Key": "x"})).status_code == 403
    assert (await rent(client, globex, 4, "g")).status_code == 200
    assert (await client.get("/api/v1/billing", headers=acme.headers)).json()["seats"] == 2
    assert (await client.get("/api/v1/billing", headers=globex.headers)).json()["seats"] == 7
    assert [e["seq"] for e in (await client.get("/api/v1/billing/ledger", headers=acme.headers)).json()] == [1]


async def test_a_tenant_whose_plan_does_not_exist_gets_a_clear_error(client: Any, runtime: Runtime, traveller: Any) -> None:
    lost = await new_tenant(runtime, "lost", seats=1, plan="vanished")
    response = await client.get("/api/v1/billing", headers=lost.headers)
    assert (response.status_code, response.json()["code"]) == (409, "plan_not_found")
