"""The cross-tenant harness's entries for the recordings routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there).

Signed media links (``?tenant=..&signature=..`` instead of a bearer token) are shown
not to cross tenants in tests/recordings/test_signed_links.py; the harness drives
the media route with bearer tokens, as before."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from isolation_registry import CreateCheck, ListCheck, make_call

if TYPE_CHECKING:
    from test_cross_tenant import Harness, TenantWorld


async def make_held_call(h: "Harness", t: "TenantWorld") -> str:
    """A second ended call with recordings, under legal hold (through the API), so the holds
    list and the search's held flag have a row of each tenant."""
    await h.resource(t, "recording_id")  # the tenant's first call keeps the ids the routes use
    call_id = await make_call(h, t)
    await h.call_ok("PUT", f"/api/v1/calls/{call_id}/legal-hold", t, json={"reason": f"{t.slug} litigation"})
    return call_id


async def make_retention_queue(h: "Harness", t: "TenantWorld") -> str:
    """The tenant's queue with a retention period of its own (the policy lists it)."""
    queue_id = await h.resource(t, "queue_id")
    await h.call_ok("PUT", f"/api/v1/recordings/retention/queues/{queue_id}", t, json={"retention_days": 30})
    return queue_id


ID_FACTORIES: dict[str, Any] = {
    "held_call_id": make_held_call,
    "retention_queue_id": make_retention_queue,
}
ROUTE_ROLES: dict[str, str] = {}
WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/api/v1/recordings/{recording_id:uuid}/links"): {"purpose": "listen"},
    ("POST", "/api/v1/calls/{call_id:uuid}/playback"): None,
    ("PUT", "/api/v1/calls/{call_id:uuid}/legal-hold"): {"reason": "Mallory's lawsuit"},
    ("PUT", "/api/v1/recordings/retention/queues/{queue_id:uuid}"): {"retention_days": 1},
}
BODY_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {}
NOT_REFERENCES: dict[tuple[str, str], str] = {}
LIST_ROUTES: dict[str, Any] = {
    "/api/v1/recordings": ListCheck("call_id", "calls with recordings: the tenant's recorded call"),
    "/api/v1/recordings/legal-holds": ListCheck("held_call_id"),
    "/api/v1/recordings/retention": ListCheck("retention_queue_id", "the tenant's retention policy with its queue overrides"),
}
CREATE_ROUTES: dict[str, Any] = {
    "/api/v1/recordings/retention": CreateCheck("PUT of the caller's own tenant's retention period; the body names no other resource", ("PUT",)),
}
PUBLIC_ROUTES: dict[str, str] = {}
