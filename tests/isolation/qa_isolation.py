"""The cross-tenant harness's entries for the qa routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there).

Each tenant gets a published scorecard, a submitted evaluation of its recorded call (by
the tenant admin, of the desk agent), a sampling policy whose work item (on a second
call) sits on the tenant admin's work list, a calibration the tenant admin has already
scored (so its results open), and a library item.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isolation_registry import CreateCheck, ListCheck
    from test_cross_tenant import Harness, TenantWorld

SCORECARD = {
    "sections": [
        {"id": "greeting", "title": "Greeting", "weight": 40, "questions": [
            {"id": "greeted", "text": "Greeted the caller by the script", "type": "yes_no", "weight": 100},
        ]},
        {"id": "resolution", "title": "Resolution", "weight": 60, "questions": [
            {"id": "solved", "text": "How well was the issue solved?", "type": "scale", "min": 1, "max": 5, "weight": 100},
        ]},
    ],
}
ANSWERS = [{"question_id": "greeted", "value": "yes"}, {"question_id": "solved", "value": 4}]


async def make_scorecard(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/qa/scorecards", t, json={"name": f"{t.slug} standard", "document": SCORECARD})
    version = await h.call_ok("POST", f"/api/v1/qa/scorecards/{created['id']}/publish", t)
    t.resources["scorecard_version_id"] = str(version["id"])
    return str(created["id"])


async def make_scorecard_version(h: "Harness", t: "TenantWorld") -> str:
    await h.resource(t, "scorecard_id")
    return t.resources["scorecard_version_id"]


async def make_evaluation(h: "Harness", t: "TenantWorld") -> str:
    """A submitted evaluation of the tenant's call (answered by the desk agent), so the
    agent's own routes have one to show."""
    body = {"scorecard_id": await h.resource(t, "scorecard_id"), "call_ids": [await h.resource(t, "call_id")], "qa_type": "random"}
    created = await h.call_ok("POST", "/api/v1/qa/evaluations", t, json=body)
    await h.call_ok("POST", f"/api/v1/qa/evaluations/{created['id']}/submit", t, json={"answers": ANSWERS})
    return str(created["id"])


async def make_sampling_policy(h: "Harness", t: "TenantWorld") -> str:
    body = {
        "name": f"{t.slug} weekly sample", "scorecard_id": await h.resource(t, "scorecard_id"), "calls_per_agent": 2,
        "reviewer_ids": [t.resources["tenant_admin:user"]], "queue_ids": [await h.resource(t, "queue_id")], "seed": 7,
    }
    created = await h.call_ok("POST", "/api/v1/qa/sampling-policies", t, json=body)
    return str(created["id"])


async def make_work_item(h: "Harness", t: "TenantWorld") -> str:
    """A second recorded call of the tenant (the first one is evaluated already, so sampling
    skips it), sampled onto the tenant admin's work list for the period of its end."""
    from isolation_registry import make_call
    from sqlalchemy import select

    from kefu.tenants.models import Call

    await h.resource(t, "evaluation_id")
    call_id = await make_call(h, t)
    t.resources["qa_sampled_call_id"] = call_id
    async with h.db.tenant_session(tenant_id=t.id) as session:
        ended = await session.scalar(select(Call.ended_at).where(Call.tenant_id == t.id, Call.id == uuid.UUID(call_id)))
    assert ended is not None
    policy_id = await h.resource(t, "sampling_policy_id")
    run = await h.call_ok("POST", f"/api/v1/qa/sampling-policies/{policy_id}/run", t, json={"at": ended.isoformat()})
    assert run["added"] == 1, run
    work_list = await h.call_ok("GET", "/api/v1/qa/work-list", t)
    [item] = [i for i in work_list["items"] if i["call_id"] == call_id]
    return str(item["id"])


async def make_calibration(h: "Harness", t: "TenantWorld") -> str:
    """A calibration of the tenant's call by the tenant admin and a QA reviewer; the admin
    has submitted its evaluation, so the results open for it."""
    await h.token(t, "qa_reviewer")
    body = {"call_id": await h.resource(t, "call_id"), "scorecard_id": await h.resource(t, "scorecard_id"),
            "reviewer_ids": [t.resources["tenant_admin:user"], t.resources["qa_reviewer:user"]], "title": f"{t.slug} calibration"}
    created = await h.call_ok("POST", "/api/v1/qa/calibrations", t, json=body)
    mine = await h.call_ok("POST", f"/api/v1/qa/calibrations/{created['id']}/evaluation", t)
    await h.call_ok("POST", f"/api/v1/qa/evaluations/{mine['id']}/submit", t, json={"answers": ANSWERS})
    return str(created["id"])


async def make_library_item(h: "Harness", t: "TenantWorld") -> str:
    body = {"call_id": await h.resource(t, "call_id"), "kind": "excellent", "title": f"{t.slug} model greeting", "tags": ["greeting"]}
    created = await h.call_ok("POST", "/api/v1/qa/library", t, json=body)
    return str(created["id"])


# The evaluation comes before the work item (whose factory needs it evaluated first).
ID_FACTORIES: dict[str, Any] = {
    "scorecard_id": make_scorecard,
    "scorecard_version_id": make_scorecard_version,
    "evaluation_id": make_evaluation,
    "sampling_policy_id": make_sampling_policy,
    "work_item_id": make_work_item,
    "calibration_id": make_calibration,
    "library_item_id": make_library_item,
}

ROUTE_ROLES: dict[str, str] = {
    "/api/v1/agent/qa/evaluations": "agent",
    "/api/v1/agent/qa/evaluations/{evaluation_id:uuid}": "agent",
    "/api/v1/agent/qa/evaluations/{evaluation_id:uuid}/acknowledge": "agent",
    "/api/v1/agent/qa/evaluations/{evaluation_id:uuid}/dispute": "agent",
}

WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("PATCH", "/api/v1/qa/scorecards/{scorecard_id:uuid}"): {"name": "Mallory's scorecard"},
    ("POST", "/api/v1/qa/scorecards/{scorecard_id:uuid}/publish"): None,
    ("POST", "/api/v1/qa/scorecards/{scorecard_id:uuid}/retire"): None,
    ("PATCH", "/api/v1/qa/evaluations/{evaluation_id:uuid}"): {"comments": "Mallory was here"},
    ("POST", "/api/v1/qa/evaluations/{evaluation_id:uuid}/submit"): {"answers": ANSWERS},
    ("POST", "/api/v1/qa/evaluations/{evaluation_id:uuid}/second-review"): {"outcome": "upheld"},
    ("POST", "/api/v1/agent/qa/evaluations/{evaluation_id:uuid}/acknowledge"): None,
    ("POST", "/api/v1/agent/qa/evaluations/{evaluation_id:uuid}/dispute"): {"reason": "Mallory disagrees"},
    ("PATCH", "/api/v1/qa/sampling-policies/{sampling_policy_id:uuid}"): {"name": "Mallory's sample"},
    ("POST", "/api/v1/qa/sampling-policies/{sampling_policy_id:uuid}/run"): {},
    ("POST", "/api/v1/qa/work-items/{work_item_id:uuid}/evaluation"): None,
    ("POST", "/api/v1/qa/calibrations/{calibration_id:uuid}/evaluation"): None,
    ("POST", "/api/v1/qa/calibrations/{calibration_id:uuid}/close"): None,
    ("PATCH", "/api/v1/qa/library/{library_item_id:uuid}"): {"title": "Mallory's pick"},
    ("POST", "/api/v1/qa/library/{library_item_id:uuid}/playback"): None,
}

BODY_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {
    # The other tenant's scorecard and call (each alone: tests/qa/test_qa_evaluations.py).
    ("POST", "/api/v1/qa/evaluations"): {"scorecard_id": "{scorecard_id}", "call_ids": ["{call_id}"]},
    ("POST", "/api/v1/qa/sampling-policies"): {
        "name": "smuggled", "scorecard_id": "{scorecard_id}", "calls_per_agent": 1, "reviewer_ids": ["{user_id}"], "queue_ids": ["{queue_id}"],
    },
    # The caller's own policy, the other tenant's queue, then reviewer (tests/qa/test_qa_sampling.py checks each alone).
    ("PATCH", "/api/v1/qa/sampling-policies/{sampling_policy_id:uuid}"): {"queue_ids": ["{queue_id}"], "reviewer_ids": ["{user_id}"]},
    ("POST", "/api/v1/qa/calibrations"): {"call_id": "{call_id}", "scorecard_id": "{scorecard_id}", "reviewer_ids": ["{user_id}"]},
    ("POST", "/api/v1/qa/library"): {"call_id": "{call_id}", "kind": "excellent", "title": "smuggled"},
}

NOT_REFERENCES: dict[tuple[str, str], str] = {}


def _list(shows: str | None, reason: str = "") -> "ListCheck":
    from isolation_registry import ListCheck

    return ListCheck(shows, reason)


def _create(reason: str) -> "CreateCheck":
    from isolation_registry import CreateCheck

    return CreateCheck(reason)


LIST_ROUTES: dict[str, Any] = {
    "/api/v1/qa/scorecards": _list("scorecard_id"),
    "/api/v1/qa/evaluations": _list("evaluation_id"),
    "/api/v1/agent/qa/evaluations": _list("evaluation_id", "the signed-in agent's own evaluations"),
    "/api/v1/qa/sampling-policies": _list("sampling_policy_id"),
    "/api/v1/qa/work-list": _list("work_item_id", "the signed-in reviewer's own work list"),
    "/api/v1/qa/work-items": _list("work_item_id"),
    "/api/v1/qa/calibrations": _list("calibration_id"),
    "/api/v1/qa/library": _list("library_item_id"),
    "/api/v1/qa/reports": _list("agent:agent", "average scores per agent over the last 30 days: the desk agent's evaluation"),
}

CREATE_ROUTES: dict[str, Any] = {
    "/api/v1/qa/scorecards": _create("the body (name, description, document) names no other resource"),
    "/api/v1/qa/evaluations": _create("the scorecard and calls in the body are checked by BODY_REFERENCES"),
    "/api/v1/qa/sampling-policies": _create("the scorecard, queues and reviewers in the body are checked by BODY_REFERENCES"),
    "/api/v1/qa/calibrations": _create("the call, scorecard and reviewers in the body are checked by BODY_REFERENCES"),
    "/api/v1/qa/library": _create("the call in the body is checked by BODY_REFERENCES"),
}

PUBLIC_ROUTES: dict[str, str] = {}
