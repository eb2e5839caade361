"""The ACD's configuration API: skills, agent and queue skills, reason and wrap-up codes,
schedules, queue routing rules and entry-point priority.

Every bad input answers a problem with a stable code and stores nothing; another
tenant's ids answer exactly like missing ones.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import bindparam, select, text
from sqlalchemy.types import Uuid
from tenants_support import Admin, MakeAgent

from kefu.platform.db.base import tenant_tables
from kefu.platform.db.registry import metadata
from kefu.platform.models import AuditEntry
from kefu.platform.runtime import Runtime
from kefu.tenants.models import QueueMember

MISSING = "00000000-0000-4000-8000-00000000abcd"


async def stored(runtime: Runtime) -> dict[str, list[str]]:
    """Every tenant row in the database, table by table (the platform path sees all tenants)."""
    rows: dict[str, list[str]] = {}
    async with runtime.db.platform_session(reason="test: what is stored") as session:
        for table in tenant_tables(metadata()):
            result = await session.execute(text(f'select * from "{table}"'))
            rows[table] = sorted(repr(tuple(r)) for r in result)
    return rows


async def refused(client: AsyncClient, runtime: Runtime, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, str]:
    """The answer's status and code, after checking that nothing was stored."""
    before = await stored(runtime)
    response = await client.request(method, path, json=body, headers=headers)
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    assert await stored(runtime) == before
    return response.status_code, response.json()["code"]


async def audit_actions(runtime: Runtime, tenant_id: uuid.UUID) -> list[tuple[str, str | None]]:
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        entries = await session.scalars(select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.at, AuditEntry.id))
        return [(e.action, e.target) for e in entries]


async def post_ok(client: AsyncClient, path: str, admin: Admin, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def make_skill(client: AsyncClient, admin: Admin, name: str) -> str:
    return (await post_ok(client, "/api/v1/skills", admin, {"name": name}))["id"]


async def make_queue(client: AsyncClient, admin: Admin, name: str, **rules: Any) -> dict[str, Any]:
    return await post_ok(client, "/api/v1/queues", admin, {"name": name, **rules})


# --- skills ---------------------------------------------------------------------------------------


async def test_skill_crud_with_audit(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    created = await post_ok(client, "/api/v1/skills", acme, {"name": " Mandarin ", "description": "Putonghua"})
    assert (created["name"], created["description"]) == ("Mandarin", "Putonghua")
    await make_skill(client, acme, "English")
    listed = (await client.get("/api/v1/skills", headers=acme.headers)).json()
    assert [s["name"] for s in listed] == ["English", "Mandarin"]

    renamed = await client.patch(f"/api/v1/skills/{created['id']}", json={"name": "Chinese", "description": ""}, headers=acme.headers)
    assert (renamed.status_code, renamed.json()["name"], renamed.json()["description"]) == (200, "Chinese", None)
    assert (await client.get(f"/api/v1/skills/{created['id']}", headers=acme.headers)).json()["name"] == "Chinese"

    assert (await client.delete(f"/api/v1/skills/{created['id']}", headers=acme.headers)).status_code == 204
    assert (await client.get(f"/api/v1/skills/{created['id']}", headers=acme.headers)).status_code == 404
    target = f"skill:{created['id']}"
    assert [a for a in await audit_actions(runtime, acme.tenant_id) if a[1] == target] == [
        ("skill.created", target), ("skill.updated", target), ("skill.deleted", target)
    ]


async def test_skill_names_are_unique_per_tenant(client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    await make_skill(client, acme, "Billing")
    await make_skill(client, globex, "Billing")  # another tenant may use the name
    assert await refused(client, runtime, "POST", "/api/v1/skills", acme.headers, {"name": "Billing"}) == (409, "skill_name_taken")
    other = await make_skill(client, acme, "Sales")
    assert await refused(client, runtime, "PATCH", f"/api/v1/skills/{other}", acme.headers, {"name": "Billing"}) == (409, "skill_name_taken")


@pytest.mark.parametrize(("body", "code"), [
    ({"name": ""}, "invalid_name"),
    ({"name": "x" * 101}, "invalid_name"),
    ({"name": "Ok", "description": "x" * 501}, "invalid_description"),
    ({"name": "Ok", "level": 3}, "validation_error"),
])
async def test_bad_skills_are_refused(client: AsyncClient, runtime: Runtime, acme: Admin, body: dict[str, Any], code: str) -> None:
    assert await refused(client, runtime, "POST", "/api/v1/skills", acme.headers, body) == (400, code)


async def test_a_skill_in_use_cannot_be_deleted(client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    held, needed = await make_skill(client, acme, "Held"), await make_skill(client, acme, "Needed")
    queue = await make_queue(client, acme, "Support")
    await client.put(f"/api/v1/agents/{ann.agent_id}/skills", json={"skills": [{"skill_id": held, "proficiency": 5}]}, headers=acme.headers)
    await client.put(f"/api/v1/queues/{queue['id']}/skills", json={"skills": [{"skill_id": needed}]}, headers=acme.headers)
    for skill in (held, needed):
        assert await refused(client, runtime, "DELETE", f"/api/v1/skills/{skill}", acme.headers) == (409, "skill_in_use")
    await client.put(f"/api/v1/agents/{ann.agent_id}/skills", json={"skills": []}, headers=acme.headers)
    assert (await client.delete(f"/api/v1/skills/{held}", headers=acme.headers)).status_code == 204


async def test_another_tenants_skill_is_not_found(client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    theirs = await make_skill(client, globex, "Secret")
    for method, body in (("GET", None), ("PATCH", {"name": "Mine"}), ("DELETE", None)):
        assert await refused(client, runtime, method, f"/api/v1/skills/{theirs}", acme.headers, body) == (404, "not_found")
    assert await refused(client, runtime, "GET", f"/api/v1/skills/{MISSING}", acme.headers) == (404, "not_found")
    assert (await client.get("/api/v1/skills", headers=acme.headers)).json() == []


# --- agent skills ---------------------------------------------------------------------------------


async def test_agent_skills_are_replaced_as_a_set(client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    mandarin, english, french = [await make_skill(client, acme, n) for n in ("Mandarin", "English", "French")]
    path = f"/api/v1/agents/{ann.agent_id}/skills"
    assert (await client.get(path, headers=acme.headers)).json() == {"agent_id": str(ann.agent_id), "skills": []}

    first = await client.put(path, json={"skills": [{"skill_id": mandarin, "proficiency": 9}, {"skill_id": english, "proficiency": 4}]}, headers=acme.headers)
    assert first.status_code == 200
    # Listed by skill name.
    assert first.json()["skills"] == [{"skill_id": english, "proficiency": 4}, {"skill_id": mandarin, "proficiency": 9}]
    second = await client.put(path, json={"skills": [{"skill_id": french, "proficiency": 1}, {"skill_id": mandarin, "proficiency": 10}]}, headers=acme.headers)
    assert second.json()["skills"] == [{"skill_id": french, "proficiency": 1}, {"skill_id": mandarin, "proficiency": 10}]
    assert (await client.get(path, headers=acme.headers)).json() == second.json()
    # The same set again changes nothing and is not audited again.
    await client.put(path, json={"skills": [{"skill_id": mandarin, "proficiency": 10}, {"skill_id": french, "proficiency": 1}]}, headers=acme.headers)
    assert [a for a in await audit_actions(runtime, acme.tenant_id) if a[0] == "agent.skills_changed"] == [
        ("agent.skills_changed", f"agent:{ann.agent_id}")
    ] * 2


@pytest.mark.parametrize(("proficiency"), [0, 11, -1])
async def test_agent_proficiency_out_of_range_is_refused(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, proficiency: int
) -> None:
    ann = await make_agent(acme, "Ann")
    skill = await make_skill(client, acme, "Mandarin")
    body = {"skills": [{"skill_id": skill, "proficiency": proficiency}]}
    assert await refused(client, runtime, "PUT", f"/api/v1/agents/{ann.agent_id}/skills", acme.headers, body) == (400, "invalid_proficiency")


async def test_agent_skill_set_refuses_duplicates_and_unknown_or_foreign_skills(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent
) -> None:
    ann = await make_agent(acme, "Ann")
    mine, theirs = await make_skill(client, acme, "Mandarin"), await make_skill(client, globex, "Mandarin")
    path = f"/api/v1/agents/{ann.agent_id}/skills"
    twice = {"skills": [{"skill_id": mine, "proficiency": 3}, {"skill_id": mine, "proficiency": 5}]}
    assert await refused(client, runtime, "PUT", path, acme.headers, twice) == (400, "duplicate_skill")
    for skill in (theirs, MISSING):
        body = {"skills": [{"skill_id": mine, "proficiency": 3}, {"skill_id": skill, "proficiency": 5}]}
        assert await refused(client, runtime, "PUT", path, acme.headers, body) == (404, "not_found")
    assert await refused(client, runtime, "PUT", path, acme.headers, {"skills": [{"skill_id": mine}]}) == (400, "validation_error")


async def test_another_tenants_agent_skills_are_not_found(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent
) -> None:
    theirs = await make_agent(globex, "Gus")
    mine = await make_skill(client, acme, "Mandarin")
    path = f"/api/v1/agents/{theirs.agent_id}/skills"
    assert await refused(client, runtime, "GET", path, acme.headers) == (404, "not_found")
    assert await refused(client, runtime, "PUT", path, acme.headers, {"skills": [{"skill_id": mine, "proficiency": 5}]}) == (404, "not_found")


async def test_agent_skills_need_the_agents_permission(client: AsyncClient, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    response = await client.get(f"/api/v1/agents/{ann.agent_id}/skills", headers=ann.headers)
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


# --- queue skills ---------------------------------------------------------------------------------


async def test_queue_skills_are_replaced_as_a_set(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    queue = await make_queue(client, acme, "Support")
    mandarin, english = await make_skill(client, acme, "Mandarin"), await make_skill(client, acme, "English")
    path = f"/api/v1/queues/{queue['id']}/skills"
    body = {"skills": [{"skill_id": mandarin, "min_proficiency": 6}, {"skill_id": english, "min_proficiency": 2, "required": False}]}
    response = await client.put(path, json=body, headers=acme.headers)
    assert response.status_code == 200
    assert response.json() == {"queue_id": queue["id"], "skills": [
        {"skill_id": english, "min_proficiency": 2, "required": False},
        {"skill_id": mandarin, "min_proficiency": 6, "required": True},
    ]}
    assert (await client.get(path, headers=acme.headers)).json() == response.json()
    assert (await client.put(path, json={"skills": []}, headers=acme.headers)).json()["skills"] == []


@pytest.mark.parametrize(("need", "status", "code"), [
    ({"min_proficiency": 0}, 400, "invalid_proficiency"),
    ({"min_proficiency": 11}, 400, "invalid_proficiency"),
    ({"required": "yes"}, 400, "validation_error"),
])
async def test_bad_queue_skills_are_refused(
    client: AsyncClient, runtime: Runtime, acme: Admin, need: dict[str, Any], status: int, code: str
) -> None:
    queue = await make_queue(client, acme, "Support")
    skill = await make_skill(client, acme, "Mandarin")
    body = {"skills": [{"skill_id": skill, **need}]}
    assert await refused(client, runtime, "PUT", f"/api/v1/queues/{queue['id']}/skills", acme.headers, body) == (status, code)


async def test_queue_skills_refuse_foreign_queues_and_skills(client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    mine, theirs = await make_queue(client, acme, "Support"), await make_queue(client, globex, "Support")
    my_skill, their_skill = await make_skill(client, acme, "Mandarin"), await make_skill(client, globex, "Mandarin")
    assert await refused(client, runtime, "GET", f"/api/v1/queues/{theirs['id']}/skills", acme.headers) == (404, "not_found")
    assert await refused(client, runtime, "PUT", f"/api/v1/queues/{theirs['id']}/skills", acme.headers,
                         {"skills": [{"skill_id": my_skill}]}) == (404, "not_found")
    assert await refused(client, runtime, "PUT", f"/api/v1/queues/{mine['id']}/skills", acme.headers,
                         {"skills": [{"skill_id": their_skill}]}) == (404, "not_found")
    twice = {"skills": [{"skill_id": my_skill}, {"skill_id": my_skill, "required": False}]}
    assert await refused(client, runtime, "PUT", f"/api/v1/queues/{mine['id']}/skills", acme.headers, twice) == (400, "duplicate_skill")


async def test_deleting_a_queue_removes_its_skills(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    queue = await make_queue(client, acme, "Support")
    skill = await make_skill(client, acme, "Mandarin")
    await client.put(f"/api/v1/queues/{queue['id']}/skills", json={"skills": [{"skill_id": skill}]}, headers=acme.headers)
    assert (await client.delete(f"/api/v1/queues/{queue['id']}", headers=acme.headers)).status_code == 204
    assert (await client.delete(f"/api/v1/skills/{skill}", headers=acme.headers)).status_code == 204


# --- reason codes and wrap-up codes ---------------------------------------------------------------------


@pytest.mark.parametrize("base", ["/api/v1/reason-codes", "/api/v1/wrap-up-codes"])
async def test_codes_are_created_relabelled_and_deactivated(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent, base: str
) -> None:
    ann = await make_agent(acme, "Ann")
    lunch = await post_ok(client, base, acme, {"code": "lunch", "label": "Lunch"})
    training = await post_ok(client, base, acme, {"code": "training", "label": "Training"})
    assert (lunch["code"], lunch["label"], lunch["active"]) == ("lunch", "Lunch", True)

    relabelled = await client.patch(f"{base}/{lunch['id']}", json={"label": "Lunch break"}, headers=acme.headers)
    assert (relabelled.status_code, relabelled.json()["label"], relabelled.json()["code"]) == (200, "Lunch break", "lunch")
    assert (await client.delete(f"{base}/{training['id']}", headers=acme.headers)).status_code == 204

    # Deactivated codes stay in the admin's list, and leave the agent desktop's.
    listed = (await client.get(base, headers=acme.headers)).json()
    assert [(c["code"], c["active"]) for c in listed] == [("lunch", True), ("training", False)]
    agent_path = base.replace("/api/v1/", "/api/v1/agent/")
    offered = await client.get(agent_path, headers=ann.headers)
    assert (offered.status_code, [(c["code"], c["label"]) for c in offered.json()]) == (200, [("lunch", "Lunch break")])
    # An agent may read, not write; an admin without a seat may not read the desktop's list.
    assert (await client.post(base, json={"code": "nap", "label": "Nap"}, headers=ann.headers)).status_code == 403
    assert (await client.get(agent_path, headers=acme.headers)).status_code == 403

    reactivated = await client.patch(f"{base}/{training['id']}", json={"active": True}, headers=acme.headers)
    assert reactivated.json()["active"] is True
    prefix = "reason_code" if "reason" in base else "wrap_up_code"
    assert [a[0] for a in await audit_actions(runtime, acme.tenant_id) if a[0].startswith(prefix)] == [
        f"{prefix}.created", f"{prefix}.created", f"{prefix}.updated", f"{prefix}.updated", f"{prefix}.updated"
    ]


@pytest.mark.parametrize("code", ["logged_in", "no_answer", "not_ready", "lease_expired"])
async def test_system_reason_codes_are_reserved(client: AsyncClient, runtime: Runtime, acme: Admin, code: str) -> None:
    assert await refused(client, runtime, "POST", "/api/v1/reason-codes", acme.headers, {"code": code, "label": "Mine"}) == (400, "reserved_reason_code")


async def test_a_wrap_up_code_may_use_a_system_reasons_name(client: AsyncClient, acme: Admin) -> None:
    await post_ok(client, "/api/v1/wrap-up-codes", acme, {"code": "no_answer", "label": "Customer did not answer"})


@pytest.mark.parametrize("base", ["/api/v1/reason-codes", "/api/v1/wrap-up-codes"])
@pytest.mark.parametrize(("body", "code"), [
    ({"code": "Lunch", "label": "x"}, "invalid_code"),
    ({"code": "1st", "label": "x"}, "invalid_code"),
    ({"code": "lunch-break", "label": "x"}, "invalid_code"),
    ({"code": "", "label": "x"}, "invalid_code"),
    ({"code": "a" * 65, "label": "x"}, "invalid_code"),
    ({"code": "lunch", "label": " "}, "invalid_label"),
    ({"code": "lunch", "label": "x" * 201}, "invalid_label"),
    ({"code": "lunch"}, "validation_error"),
])
async def test_bad_codes_are_refused(client: AsyncClient, runtime: Runtime, acme: Admin, base: str, body: dict[str, Any], code: str) -> None:
    assert await refused(client, runtime, "POST", base, acme.headers, body) == (400, code)


@pytest.mark.parametrize(("base", "taken"), [("/api/v1/reason-codes", "reason_code_taken"), ("/api/v1/wrap-up-codes", "wrap_up_code_taken")])
async def test_codes_are_unique_per_tenant_even_when_inactive(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, base: str, taken: str
) -> None:
    lunch = await post_ok(client, base, acme, {"code": "lunch", "label": "Lunch"})
    await post_ok(client, base, globex, {"code": "lunch", "label": "Lunch"})
    await client.delete(f"{base}/{lunch['id']}", headers=acme.headers)
    assert await refused(client, runtime, "POST", base, acme.headers, {"code": "lunch", "label": "Again"}) == (409, taken)


@pytest.mark.parametrize("base", ["/api/v1/reason-codes", "/api/v1/wrap-up-codes"])
async def test_another_tenants_codes_are_not_found_or_listed(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin, make_agent: MakeAgent, base: str
) -> None:
    ann = await make_agent(acme, "Ann")
    theirs = await post_ok(client, base, globex, {"code": "lunch", "label": "Lunch"})
    for method, body in (("GET", None), ("PATCH", {"label": "Mine"}), ("DELETE", None)):
        assert await refused(client, runtime, method, f"{base}/{theirs['id']}", acme.headers, body) == (404, "not_found")
    assert (await client.get(base, headers=acme.headers)).json() == []
    assert (await client.get(base.replace("/api/v1/", "/api/v1/agent/"), headers=ann.headers)).json() == []


# --- schedules ---------------------------------------------------------------------------------


OFFICE = {"name": "Office hours", "time_zone": "Europe/Berlin", "weekly": {"mon": [["09:00", "18:00"]], "fri": [["09:00", "16:00"]]},
          "holidays": [{"date": "2026-12-25", "name": "Christmas", "hours": []}, {"date": "2026-12-24", "name": "Eve", "hours": [["09:00", "12:00"]]}]}


async def test_schedule_crud_with_audit(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    created = await post_ok(client, "/api/v1/schedules", acme, OFFICE)
    assert (created["name"], created["time_zone"], created["weekly"]) == ("Office hours", "Europe/Berlin", OFFICE["weekly"])
    # Holidays are kept in date order.
    assert [h["date"] for h in created["holidays"]] == ["2026-12-24", "2026-12-25"]
    assert (await client.get(f"/api/v1/schedules/{created['id']}", headers=acme.headers)).json() == created
    assert [s["id"] for s in (await client.get("/api/v1/schedules", headers=acme.headers)).json()] == [created["id"]]

    changed = await client.patch(f"/api/v1/schedules/{created['id']}", json={"time_zone": "Asia/Shanghai", "holidays": []}, headers=acme.headers)
    assert changed.status_code == 200
    assert (changed.json()["time_zone"], changed.json()["holidays"], changed.json()["weekly"]) == ("Asia/Shanghai", [], OFFICE["weekly"])

    assert (await client.delete(f"/api/v1/schedules/{created['id']}", headers=acme.headers)).status_code == 204
    target = f"schedule:{created['id']}"
    assert [a for a in await audit_actions(runtime, acme.tenant_id) if a[1] == target] == [
        ("schedule.created", target), ("schedule.updated", target), ("schedule.deleted", target)
    ]


async def test_schedule_status_answers_open_and_the_next_change(client: AsyncClient, acme: Admin) -> None:
    always = await post_ok(client, "/api/v1/schedules", acme, {
        "name": "Always", "weekly": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    })
    never = await post_ok(client, "/api/v1/schedules", acme, {"name": "Never"})
    assert (await client.get(f"/api/v1/schedules/{always['id']}/status", headers=acme.headers)).json() == {"open": True, "next_change": None}
    assert (await client.get(f"/api/v1/schedules/{never['id']}/status", headers=acme.headers)).json() == {"open": False, "next_change": None}


@pytest.mark.parametrize(("change", "code"), [
    ({"time_zone": "Mars/Olympus"}, "invalid_time_zone"),
    ({"time_zone": ""}, "invalid_time_zone"),
    ({"weekly": {"mon": [["18:00", "09:00"]]}}, "invalid_hours"),
    ({"weekly": {"mon": [["09:00", "25:00"]]}}, "invalid_hours"),
    ({"weekly": {"monday": [["09:00", "18:00"]]}}, "invalid_hours"),
    ({"weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "invalid_hours"),
    ({"holidays": [{"date": "2026-13-01", "hours": []}]}, "invalid_holiday"),
    ({"holidays": [{"date": "2026-12-25"}, {"date": "2026-12-25"}]}, "invalid_holiday"),
    ({"holidays": [{"date": "2026-12-25", "hours": [["12:00", "10:00"]]}]}, "invalid_hours"),
    ({"holidays": [{"date": "2026-12-25", "closed": True}]}, "validation_error"),
    ({"name": " "}, "invalid_name"),
])
async def test_bad_schedules_are_refused_on_create_and_update(
    client: AsyncClient, runtime: Runtime, acme: Admin, change: dict[str, Any], code: str
) -> None:
    assert await refused(client, runtime, "POST", "/api/v1/schedules", acme.headers, {**OFFICE, "name": "New", **change}) == (400, code)
    existing = await post_ok(client, "/api/v1/schedules", acme, OFFICE)
    assert await refused(client, runtime, "PATCH", f"/api/v1/schedules/{existing['id']}", acme.headers, change) == (400, code)


async def test_schedule_names_are_unique_and_one_a_queue_uses_cannot_be_deleted(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    schedule = await post_ok(client, "/api/v1/schedules", acme, OFFICE)
    assert await refused(client, runtime, "POST", "/api/v1/schedules", acme.headers, OFFICE) == (409, "schedule_name_taken")
    queue = await make_queue(client, acme, "Support", schedule_id=schedule["id"], closed_action="voicemail")
    assert (queue["schedule_id"], queue["closed_action"]) == (schedule["id"], "voicemail")
    assert await refused(client, runtime, "DELETE", f"/api/v1/schedules/{schedule['id']}", acme.headers) == (409, "schedule_in_use")
    await client.patch(f"/api/v1/queues/{queue['id']}", json={"schedule_id": None}, headers=acme.headers)
    assert (await client.delete(f"/api/v1/schedules/{schedule['id']}", headers=acme.headers)).status_code == 204


async def test_another_tenants_schedule_is_not_found(client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    theirs = await post_ok(client, "/api/v1/schedules", globex, OFFICE)
    for method, path, body in (
        ("GET", f"/api/v1/schedules/{theirs['id']}", None),
        ("GET", f"/api/v1/schedules/{theirs['id']}/status", None),
        ("PATCH", f"/api/v1/schedules/{theirs['id']}", {"name": "Mine"}),
        ("DELETE", f"/api/v1/schedules/{theirs['id']}", None),
        ("POST", "/api/v1/queues", {"name": "Support", "schedule_id": theirs["id"]}),
    ):
        assert await refused(client, runtime, method, path, acme.headers, body) == (404, "not_found")


# --- queue rules ---------------------------------------------------------------------------------


ALL_RULES = {
    "strategy": "linear", "ring_timeout_s": 25, "max_wait_s": 900, "max_wait_action": "voicemail", "max_wait_queue_id": None,
    "overflow_after_s": 120, "overflow_ratio": 2.5, "overflow_action": "callback", "overflow_queue_id": None,
    "relax_after_s": 30, "relax_any_after_s": 90, "preferred_agent_timeout_s": 20, "wrap_up_mode": "extendable",
    "wrap_up_s": 30, "wrap_up_max_s": 120, "disposition_required": True, "service_level_s": 30, "announce_interval_s": 45,
    "schedule_id": None, "closed_action": "callback",
}
DEFAULT_RULES = {
    "strategy": "longest_idle", "ring_timeout_s": None, "max_wait_s": 600, "max_wait_action": "hangup", "max_wait_queue_id": None,
    "overflow_after_s": None, "overflow_ratio": None, "overflow_action": None, "overflow_queue_id": None,
    "relax_after_s": None, "relax_any_after_s": None, "preferred_agent_timeout_s": 0, "wrap_up_mode": "none",
    "wrap_up_s": 0, "wrap_up_max_s": 0, "disposition_required": False, "service_level_s": 20, "announce_interval_s": 0,
    "schedule_id": None, "closed_action": "hangup",
}


def rules(queue: dict[str, Any]) -> dict[str, Any]:
    return {k: queue[k] for k in DEFAULT_RULES}


async def test_a_new_queue_has_the_default_rules(client: AsyncClient, acme: Admin) -> None:
    assert rules(await make_queue(client, acme, "Support")) == DEFAULT_RULES


async def test_every_rule_is_set_on_create_and_read_back(client: AsyncClient, acme: Admin) -> None:
    created = await make_queue(client, acme, "Support", **ALL_RULES)
    assert rules(created) == ALL_RULES
    assert rules((await client.get(f"/api/v1/queues/{created['id']}", headers=acme.headers)).json()) == ALL_RULES


async def test_patch_changes_only_the_given_rules_and_null_clears(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    queue = await make_queue(client, acme, "Support", **ALL_RULES)
    response = await client.patch(f"/api/v1/queues/{queue['id']}", json={"strategy": "ring_all", "ring_timeout_s": None}, headers=acme.headers)
    assert response.status_code == 200
    assert rules(response.json()) == {**ALL_RULES, "strategy": "ring_all", "ring_timeout_s": None}
    off = {"overflow_after_s": None, "overflow_ratio": None, "overflow_action": None}
    response = await client.patch(f"/api/v1/queues/{queue['id']}", json=off, headers=acme.headers)
    assert rules(response.json()) == {**ALL_RULES, "strategy": "ring_all", "ring_timeout_s": None, **off}
    updates = [e for e in await audit_actions(runtime, acme.tenant_id) if e[0] == "queue.updated"]
    assert updates == [("queue.updated", f"queue:{queue['id']}")] * 2


async def test_overflow_and_max_wait_to_another_queue(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    backup = await make_queue(client, acme, "Backup")
    queue = await make_queue(client, acme, "Support", overflow_ratio=3, overflow_action="queue", overflow_queue_id=backup["id"],
                             max_wait_action="queue", max_wait_queue_id=backup["id"])
    assert (queue["overflow_queue_id"], queue["max_wait_queue_id"], queue["overflow_ratio"]) == (backup["id"], backup["id"], 3.0)
    # A queue other queues send calls to cannot be deleted.
    assert await refused(client, runtime, "DELETE", f"/api/v1/queues/{backup['id']}", acme.headers) == (409, "queue_in_use")
    # Not to itself.
    assert await refused(client, runtime, "PATCH", f"/api/v1/queues/{queue['id']}", acme.headers,
                         {"overflow_queue_id": queue["id"]}) == (400, "invalid_overflow_queue")
    assert await refused(client, runtime, "PATCH", f"/api/v1/queues/{queue['id']}", acme.headers,
                         {"max_wait_queue_id": queue["id"]}) == (400, "invalid_max_wait_queue")
    await client.patch(f"/api/v1/queues/{queue['id']}", json={"overflow_action": "voicemail", "overflow_queue_id": None,
                                                               "max_wait_action": "hangup", "max_wait_queue_id": None}, headers=acme.headers)
    assert (await client.delete(f"/api/v1/queues/{backup['id']}", headers=acme.headers)).status_code == 204


async def test_overflow_to_an_unknown_or_foreign_queue_is_not_found(client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    theirs = await make_queue(client, globex, "Backup")
    mine = await make_queue(client, acme, "Support")
    for target in (theirs["id"], MISSING):
        overflow = {"overflow_after_s": 60, "overflow_action": "queue", "overflow_queue_id": target}
        assert await refused(client, runtime, "POST", "/api/v1/queues", acme.headers, {"name": "New", **overflow}) == (404, "not_found")
        assert await refused(client, runtime, "PATCH", f"/api/v1/queues/{mine['id']}", acme.headers, overflow) == (404, "not_found")
        max_wait = {"max_wait_action": "queue", "max_wait_queue_id": target}
        assert await refused(client, runtime, "PATCH", f"/api/v1/queues/{mine['id']}", acme.headers, max_wait) == (404, "not_found")
    assert await refused(client, runtime, "PATCH", f"/api/v1/queues/{mine['id']}", acme.headers, {"schedule_id": MISSING}) == (404, "not_found")


@pytest.mark.parametrize(("body", "code"), [
    ({"strategy": "fastest"}, "invalid_strategy"),
    ({"strategy": ""}, "invalid_strategy"),
    ({"ring_timeout_s": 4}, "invalid_ring_timeout"),
    ({"ring_timeout_s": 301}, "invalid_ring_timeout"),
    ({"max_wait_s": 0}, "invalid_max_wait"),
    ({"max_wait_s": 86401}, "invalid_max_wait"),
    ({"max_wait_action": "transfer"}, "invalid_max_wait_action"),
    ({"max_wait_action": "queue"}, "invalid_max_wait_queue"),
    ({"max_wait_queue_id": MISSING}, "invalid_max_wait_queue"),
    ({"overflow_after_s": 0, "overflow_action": "voicemail"}, "invalid_overflow"),
    ({"overflow_after_s": 86401, "overflow_action": "voicemail"}, "invalid_overflow"),
    ({"overflow_ratio": 0, "overflow_action": "voicemail"}, "invalid_overflow"),
    ({"overflow_ratio": -1.5, "overflow_action": "voicemail"}, "invalid_overflow"),
    ({"overflow_ratio": 1000.5, "overflow_action": "voicemail"}, "invalid_overflow"),
    ({"overflow_action": "voicemail"}, "invalid_overflow"),
    ({"overflow_after_s": 60}, "invalid_overflow"),
    ({"overflow_after_s": 60, "overflow_action": "hangup"}, "invalid_overflow_action"),
    ({"overflow_after_s": 60, "overflow_action": "queue"}, "invalid_overflow_queue"),
    ({"overflow_after_s": 60, "overflow_action": "voicemail", "overflow_queue_id": MISSING}, "invalid_overflow_queue"),
    ({"relax_after_s": 0}, "invalid_relaxation"),
    ({"relax_any_after_s": 86401}, "invalid_relaxation"),
    ({"relax_after_s": 60, "relax_any_after_s": 60}, "invalid_relaxation"),
    ({"relax_after_s": 60, "relax_any_after_s": 30}, "invalid_relaxation"),
    ({"preferred_agent_timeout_s": -1}, "invalid_preferred_agent_timeout"),
    ({"preferred_agent_timeout_s": 3601}, "invalid_preferred_agent_timeout"),
    ({"wrap_up_mode": "forever"}, "invalid_wrap_up"),
    ({"wrap_up_mode": "fixed"}, "invalid_wrap_up"),
    ({"wrap_up_mode": "fixed", "wrap_up_s": 3601}, "invalid_wrap_up"),
    ({"wrap_up_mode": "extendable", "wrap_up_s": 0, "wrap_up_max_s": 60}, "invalid_wrap_up"),
    ({"wrap_up_mode": "extendable", "wrap_up_s": 60, "wrap_up_max_s": 30}, "invalid_wrap_up"),
    ({"wrap_up_s": -1}, "invalid_wrap_up"),
    ({"service_level_s": 0}, "invalid_service_level"),
    ({"service_level_s": 3601}, "invalid_service_level"),
    ({"announce_interval_s": 14}, "invalid_announce_interval"),
    ({"announce_interval_s": -1}, "invalid_announce_interval"),
    ({"announce_interval_s": 3601}, "invalid_announce_interval"),
    ({"closed_action": "queue"}, "invalid_closed_action"),
    ({"strategy": 5}, "validation_error"),
    ({"ring_timeout_s": "soon"}, "validation_error"),
])
async def test_bad_queue_rules_are_refused_on_create_and_update(
    client: AsyncClient, runtime: Runtime, acme: Admin, body: dict[str, Any], code: str
) -> None:
    assert await refused(client, runtime, "POST", "/api/v1/queues", acme.headers, {"name": "New", **body}) == (400, code)
    queue = await make_queue(client, acme, "Support")
    assert await refused(client, runtime, "PATCH", f"/api/v1/queues/{queue['id']}", acme.headers, body) == (400, code)


@pytest.mark.parametrize(("body"), [
    {"ring_timeout_s": 5}, {"ring_timeout_s": 300}, {"max_wait_s": 1}, {"max_wait_s": 86400},
    {"overflow_ratio": 1000, "overflow_action": "callback"}, {"overflow_ratio": 0.01, "overflow_action": "voicemail"},
    {"overflow_after_s": 86400, "overflow_action": "voicemail"}, {"relax_after_s": 1, "relax_any_after_s": 2},
    {"relax_any_after_s": 5}, {"wrap_up_mode": "fixed", "wrap_up_s": 1}, {"wrap_up_mode": "agent_ended"},
    {"wrap_up_mode": "extendable", "wrap_up_s": 3600, "wrap_up_max_s": 3600}, {"announce_interval_s": 15},
    {"announce_interval_s": 3600}, {"service_level_s": 1}, {"service_level_s": 3600}, {"closed_action": "voicemail"},
    *({"strategy": s} for s in ("longest_idle", "round_robin", "fewest_calls", "least_talk_time", "ring_all", "linear", "random")),
])
async def test_rules_at_their_limits_are_accepted(client: AsyncClient, acme: Admin, body: dict[str, Any]) -> None:
    queue = await make_queue(client, acme, "Support", **body)
    assert {k: queue[k] for k in body} == body


async def test_members_keep_the_order_given_as_their_position(
    client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent
) -> None:
    ann, ben, cai = await make_agent(acme, "Ann"), await make_agent(acme, "Ben"), await make_agent(acme, "Cai")
    queue = await make_queue(client, acme, "Support", strategy="linear")

    async def positions() -> list[tuple[uuid.UUID, int]]:
        async with runtime.db.tenant_session(tenant_id=acme.tenant_id) as session:
            rows = await session.scalars(select(QueueMember).where(QueueMember.queue_id == uuid.UUID(queue["id"])).order_by(QueueMember.position))
            return [(r.agent_id, r.position) for r in rows]

    path = f"/api/v1/queues/{queue['id']}/members"
    await client.put(path, json={"agent_ids": [str(cai.agent_id), str(ann.agent_id), str(ben.agent_id)]}, headers=acme.headers)
    assert await positions() == [(cai.agent_id, 0), (ann.agent_id, 1), (ben.agent_id, 2)]
    await client.put(path, json={"agent_ids": [str(ben.agent_id), str(cai.agent_id)]}, headers=acme.headers)
    assert await positions() == [(ben.agent_id, 0), (cai.agent_id, 1)]
    changes = [e for e in await audit_actions(runtime, acme.tenant_id) if e[0] == "queue.members_changed"]
    assert len(changes) == 2


# --- entry points ---------------------------------------------------------------------------------


async def test_entry_point_priority_defaults_to_zero_and_is_bounded(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    queue = await make_queue(client, acme, "Support")
    plain = await post_ok(client, "/api/v1/entry-points", acme, {"name": "Web", "queue_id": queue["id"]})
    vip = await post_ok(client, "/api/v1/entry-points", acme, {"name": "VIP", "queue_id": queue["id"], "priority": 100})
    assert (plain["priority"], vip["priority"]) == (0, 100)
    assert (await client.get(f"/api/v1/entry-points/{vip['id']}", headers=acme.headers)).json()["priority"] == 100
    for priority in (-101, 101):
        body = {"name": "Bad", "queue_id": queue["id"], "priority": priority}
        assert await refused(client, runtime, "POST", "/api/v1/entry-points", acme.headers, body) == (400, "invalid_priority")


async def test_configuration_needs_the_queues_write_permission(client: AsyncClient, runtime: Runtime, acme: Admin, make_agent: MakeAgent) -> None:
    ann = await make_agent(acme, "Ann")
    for path, body in (("/api/v1/skills", {"name": "X"}), ("/api/v1/schedules", {"name": "X"}), ("/api/v1/reason-codes", {"code": "x", "label": "X"})):
        assert await refused(client, runtime, "POST", path, ann.headers, body) == (403, "permission_denied")
