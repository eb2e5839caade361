"""The cross-tenant harness's entries for the staffing routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there).

The staffing calculator is a computation on the numbers in the request: it reads
and stores no tenant data, so there is nothing of another tenant to reach.  It is
still a tenant route (``reports.read``): operator tokens get 403, no token 401."""

from __future__ import annotations

from typing import Any

from isolation_registry import CreateCheck

ID_FACTORIES: dict[str, Any] = {}
ROUTE_ROLES: dict[str, str] = {}
WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {}
CREATE_ROUTES: dict[str, Any] = {
    "/api/v1/staffing/erlang-c": CreateCheck("a computation on the body's numbers (Erlang C); reads and stores no tenant data"),
    "/api/v1/staffing/workload": CreateCheck("a computation on the body's numbers (the workload formula); reads and stores no tenant data"),
}
PUBLIC_ROUTES: dict[str, str] = {
    "/portal/reports": "the reports page's log-in page; its data comes from the API with the user's token",
}
