"""The cross-tenant harness's entries for the reporting routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there).

Reports read only the caller's tenant's rollups and facts; another tenant's queue_id,
team_id or agent_id as a filter answers 404 (tests/reports/test_report_api.py::
test_bad_input_answers_problem_details_with_stable_codes).  Without ``from``/``to`` a
report covers today in the tenant's time zone."""

from __future__ import annotations

from typing import Any

from isolation_registry import CreateCheck, ListCheck

ID_FACTORIES: dict[str, Any] = {}
ROUTE_ROLES: dict[str, str] = {}
WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("PUT", "/api/v1/reports/agents/{agent_id:uuid}/shift"): {"schedule_id": None},
}
BODY_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/reports/agents/{agent_id:uuid}/shift"): {"schedule_id": "{schedule_id}"},
}
NOT_REFERENCES: dict[tuple[str, str], str] = {}
LIST_ROUTES: dict[str, Any] = {
    "/api/v1/reports": ListCheck(None, "today's KPIs of the caller's tenant as a whole (the row's id is the tenant's)"),
    "/api/v1/reports/rankings": ListCheck(None, "the caller's tenant's agents ranked by calls answered today"),
    "/api/v1/reports/repeat-callers": ListCheck(None, "the caller's tenant's repeat callers today"),
}
CREATE_ROUTES: dict[str, Any] = {
    "/api/v1/reports/rebuild": CreateCheck("rebuilds the caller's own tenant's rollups; there is no body"),
}
PUBLIC_ROUTES: dict[str, str] = {}
