"""Legal holds: PUT/DELETE /api/v1/calls/{id}/legal-hold (recordings.manage), listed at
GET /api/v1/recordings/legal-holds, every change audited with its reason."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from recordings_support import T0, Tenant, audit_entries, recorded_call
from sqlalchemy import select

from kefu.tenants.recordings.models import LegalHold

HOLDS = "/api/v1/recordings/legal-holds"


def hold_url(call_id: uuid.UUID) -> str:
    return f"/api/v1/calls/{call_id}/legal-hold"


async def hold_rows(tenant: Tenant) -> list[tuple[uuid.UUID, str]]:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        rows = await session.execute(select(LegalHold.call_id, LegalHold.reason).where(LegalHold.tenant_id == tenant.id))
        return sorted(rows.all(), key=str)


async def test_a_hold_is_placed_changed_listed_and_released_with_an_audit_trail(client: Any, acme: Tenant) -> None:
    call = await recorded_call(acme, started_at=T0 - timedelta(days=2))
    serial = f"{call.started_at:%Y%m%d%H%M%S}-{call.id.hex[:8]}"
    placed = await client.put(hold_url(call.id), json={"reason": "  Case 2027-17: subpoena  "}, headers=acme.headers())
    assert placed.status_code == 200, placed.text
    body = placed.json()
    assert (body["call_id"], body["serial"], body["reason"], body["placed_by"]) == (str(call.id), serial, "Case 2027-17: subpoena", f"user:{acme.admin_id}")
    # Again with the same reason: nothing changes; with another: the reason changes.
    assert (await client.put(hold_url(call.id), json={"reason": "Case 2027-17: subpoena"}, headers=acme.headers())).json() == body
    changed = await client.put(hold_url(call.id), json={"reason": "Case 2027-17: appeal"}, headers=acme.headers())
    assert changed.json()["reason"] == "Case 2027-17: appeal" and changed.json()["placed_at"] == body["placed_at"]
    listed = await client.get(HOLDS, headers=acme.headers("supervisor"))
    assert listed.status_code == 200
    assert [(h["call_id"], h["serial"], h["reason"]) for h in listed.json()] == [(str(call.id), serial, "Case 2027-17: appeal")]
    assert (await client.delete(hold_url(call.id), headers=acme.headers())).status_code == 204
    assert (await client.delete(hold_url(call.id), headers=acme.headers())).status_code == 204  # idempotent
    assert (await client.get(HOLDS, headers=acme.headers())).json() == []
    trail = [(e.action, e.target, e.detail["reason"]) for e in await audit_entries(acme) if e.action.startswith("recording.legal_hold")]
    assert trail == [
        ("recording.legal_hold_placed", f"call:{call.id}", "Case 2027-17: subpoena"),
        ("recording.legal_hold_changed", f"call:{call.id}", "Case 2027-17: appeal"),
        ("recording.legal_hold_released", f"call:{call.id}", "Case 2027-17: appeal"),
    ]


async def test_bad_holds_are_refused_and_store_nothing(client: Any, acme: Tenant, globex: Tenant) -> None:
    mine = await recorded_call(acme, started_at=T0 - timedelta(days=1))
    theirs = await recorded_call(globex, started_at=T0 - timedelta(days=1))
    for reason, code in (("", "invalid_reason"), ("   ", "invalid_reason"), ("x" * 501, "invalid_reason")):
        response = await client.put(hold_url(mine.id), json={"reason": reason}, headers=acme.headers())
        assert (response.status_code, response.json()["code"]) == (400, code)
    response = await client.put(hold_url(mine.id), json={}, headers=acme.headers())
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    # Another tenant's call, or none at all: 404 either way, with either method.
    for call_id in (theirs.id, uuid.uuid4()):
        for method in ("PUT", "DELETE"):
            response = await client.request(method, hold_url(call_id), json={"reason": "fishing"} if method == "PUT" else None,
                                            headers=acme.headers())
            assert (response.status_code, response.json()["code"]) == (404, "not_found")
    # Only recordings managers place or release holds.
    for role in ("supervisor", "qa_reviewer"):
        response = await client.put(hold_url(mine.id), json={"reason": "mine"}, headers=acme.headers(role))
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert await hold_rows(acme) == [] and await hold_rows(globex) == []
    assert [e for e in await audit_entries(acme) if e.action.startswith("recording.legal_hold")] == []
