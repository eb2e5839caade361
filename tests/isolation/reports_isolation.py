"""The cross-tenant harness's entries for the reporting routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there).

Reports read only the caller's tenant's rollups and facts; another tenant's queue_id,
team_id or agent_id as a filter answers 404 (tests/reports/test_report_api.py::
test_bad_input_answers_problem_details_with_stable_codes).  Without ``from``/``to`` a
report covers today in the tenant's time zone.

Each tenant gets a report schedule (``report_schedule_id``) delivered to a webhook (no
e-mail: the harness configures no SMTP server); creating it sends nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from isolation_registry import CreateCheck, ListCheck

if TYPE_CHECKING:
    from test_cross_tenant import Harness, TenantWorld

SCHEDULES = "/api/v1/reports/schedules"
SCHEDULE = SCHEDULES + "/{report_schedule_id:uuid}"


def schedule_body(slug: str, **extra: Any) -> dict[str, Any]:
    return {"name": f"{slug} daily", "period": "yesterday", "cadence": "daily", "time": "07:00",
            "webhook_url": f"https://hooks.{slug}.test/kefu", **extra}


async def make_report_schedule(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", SCHEDULES, t, json=schedule_body(t.slug))
    return str(created["id"])


ID_FACTORIES: dict[str, Any] = {"report_schedule_id": make_report_schedule}
ROUTE_ROLES: dict[str, str] = {}
WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("PUT", "/api/v1/reports/agents/{agent_id:uuid}/shift"): {"schedule_id": None},
    ("PUT", SCHEDULE): schedule_body("mallory"),
    ("POST", SCHEDULE + "/run"): None,
}
BODY_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/reports/agents/{agent_id:uuid}/shift"): {"schedule_id": "{schedule_id}"},
    # The filters are checked against the caller's tenant by building the report once
    # (tests/reports/test_report_schedules.py checks a foreign queue alone).
    ("POST", SCHEDULES): schedule_body("smuggled", dimension="agent", team_id="{team_id}", agent_id="{agent_id}"),
    ("PUT", SCHEDULE): schedule_body("smuggled", dimension="queue", queue_id="{queue_id}"),
}
NOT_REFERENCES: dict[tuple[str, str], str] = {}
LIST_ROUTES: dict[str, Any] = {
    "/api/v1/reports": ListCheck(None, "today's KPIs of the caller's tenant as a whole (the row's id is the tenant's)"),
    "/api/v1/reports/rankings": ListCheck(None, "the caller's tenant's agents ranked by calls answered today"),
    "/api/v1/reports/repeat-callers": ListCheck(None, "the caller's tenant's repeat callers today"),
    SCHEDULES: ListCheck("report_schedule_id"),
}
CREATE_ROUTES: dict[str, Any] = {
    "/api/v1/reports/rebuild": CreateCheck("rebuilds the caller's own tenant's rollups; there is no body"),
    SCHEDULES: CreateCheck("the queue, team and agent filters in the body are checked by BODY_REFERENCES"),
}
PUBLIC_ROUTES: dict[str, str] = {}
