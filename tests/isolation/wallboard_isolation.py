"""The cross-tenant harness's entries for the wallboard routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isolation_registry import ListCheck


def _list_check(shows: str, reason: str) -> "ListCheck":
    from isolation_registry import ListCheck

    return ListCheck(shows, reason)


ID_FACTORIES: dict[str, Any] = {}
ROUTE_ROLES: dict[str, str] = {}
WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {}
LIST_ROUTES: dict[str, Any] = {
    "/api/v1/wallboard": _list_check(
        "queue_id", "a tenant admin's wallboard: every queue and team of the tenant with its live figures "
        "(another tenant's queue_id or team_id in the query answers 404: tests/wallboard/test_wallboard_api.py)",
    ),
}
PUBLIC_ROUTES: dict[str, str] = {
    "/wallboard": "the wallboard page's log-in page; its data comes from /ws/wallboard with the user's token",
}
# Merged into isolation_registry.WEBSOCKET_ROUTES by its wallboard block.
WEBSOCKET_ROUTES: dict[str, str] = {
    "/ws/wallboard": "tenant taken from the access token; the board is that tenant's and another tenant's queue_id or "
    "team_id closes with 4404 like a missing one (tests/wallboard/test_wallboard_live.py)",
}
