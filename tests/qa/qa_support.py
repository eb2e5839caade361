"""Helpers of the QA tests: a contact center with named people (an admin, reviewers Rita and
Sam, supervisor Sue, agents Alice and Bob in two teams), queues, and ended calls with
recordings written the way the call flow writes them (kefu.tenants.call_log), plus the
standard scorecard the tests score with."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))

from tenants_support import bearer, create_tenant  # noqa: E402

from sqlalchemy import select  # noqa: E402

from kefu.platform.models import AuditEntry, Membership, User  # noqa: E402
from kefu.platform.runtime import Runtime  # noqa: E402
from kefu.tenants import call_log  # noqa: E402
from kefu.tenants.models import Agent, Call, EntryPoint, Queue, Recording, Team  # noqa: E402

# A Monday morning (UTC): weeks in these tests start here.
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

STANDARD = {
    "sections": [
        {"id": "opening", "title": "Opening", "weight": 20, "questions": [
            {"id": "greeted", "text": "Greeted the caller by the script", "type": "yes_no", "weight": 50},
            {"id": "verified", "text": "Verified the caller's identity", "type": "yes_no", "weight": 50, "na_allowed": True, "auto_fail": True},
        ]},
        {"id": "handling", "title": "Handling", "weight": 50, "questions": [
            {"id": "accuracy", "text": "Accuracy of the information given", "type": "scale", "min": 1, "max": 5, "weight": 60},
            {"id": "empathy", "text": "Empathy", "type": "scale", "min": 1, "max": 5, "weight": 40, "na_allowed": True},
        ]},
        {"id": "closing", "title": "Closing", "weight": 30, "questions": [
            {"id": "summarised", "text": "Summarised the outcome", "type": "yes_no", "weight": 100, "na_allowed": True},
        ]},
    ],
}
# opening 1.0 * 20 + handling (0.75 * 60 + 0.5 * 40) / 100 * 50 + closing 0 * 30 = 20 + 32.5 + 0 = 52.5
GOOD_ANSWERS = [
    {"question_id": "greeted", "value": "yes"}, {"question_id": "verified", "value": "yes"},
    {"question_id": "accuracy", "value": 4}, {"question_id": "empathy", "value": 3}, {"question_id": "summarised", "value": "no"},
]
PERFECT_ANSWERS = [
    {"question_id": "greeted", "value": "yes"}, {"question_id": "verified", "value": "yes"},
    {"question_id": "accuracy", "value": 5}, {"question_id": "empathy", "value": 5}, {"question_id": "summarised", "value": "yes"},
]


@dataclass
class Person:
    user_id: uuid.UUID
    headers: dict[str, str]
    agent_id: uuid.UUID | None = None


@dataclass
class World:
    runtime: Runtime
    tenant_id: uuid.UUID
    admin: Person
    rita: Person  # QA reviewer
    sam: Person  # QA reviewer
    sue: Person  # supervisor
    alice: Person  # agent, team Blue
    bob: Person  # agent, team Green
    sales: uuid.UUID  # queue
    support: uuid.UUID  # queue
    entry_point: uuid.UUID
    blue: uuid.UUID  # team
    green: uuid.UUID
    calls: list[uuid.UUID] = field(default_factory=list)


async def add_person(runtime: Runtime, tenant_id: uuid.UUID, name: str, role: str, *, team_id: uuid.UUID | None = None) -> Person:
    """A signed-in user of the tenant with ``role`` (an agent gets its seat too)."""
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        user = User(tenant_id=tenant_id, email=f"{name.lower()}@example.test", display_name=name, status="active")
        session.add(user)
        await session.flush()
        session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=role))
        agent_id = None
        if role == "agent":
            agent = Agent(tenant_id=tenant_id, user_id=user.id, display_name=name, team_id=team_id)
            session.add(agent)
            await session.flush()
            agent_id = agent.id
        user_id = user.id
    return Person(user_id, bearer(runtime, tenant_id=tenant_id, user_id=user_id, roles={role}), agent_id)


async def build_world(runtime: Runtime, slug: str) -> World:
    tenant_id = await create_tenant(runtime, slug)
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        blue, green = Team(tenant_id=tenant_id, name="Blue"), Team(tenant_id=tenant_id, name="Green")
        sales, support = Queue(tenant_id=tenant_id, name="Sales"), Queue(tenant_id=tenant_id, name="Support")
        session.add_all([blue, green, sales, support])
        await session.flush()
        entry = EntryPoint(tenant_id=tenant_id, name="Web", widget_key=f"key-{uuid.uuid4().hex}", queue_id=sales.id)
        session.add(entry)
        await session.flush()
        ids = (blue.id, green.id, sales.id, support.id, entry.id)
    people = {}
    for name, role, team in (("Admin", "tenant_admin", None), ("Rita", "qa_reviewer", None), ("Sam", "qa_reviewer", None),
                             ("Sue", "supervisor", None), ("Alice", "agent", ids[0]), ("Bob", "agent", ids[1])):
        people[name.lower()] = await add_person(runtime, tenant_id, f"{name} {slug}" if slug != "acme" else name, role, team_id=team)
    return World(runtime, tenant_id, people["admin"], people["rita"], people["sam"], people["sue"], people["alice"], people["bob"],
                 sales=ids[2], support=ids[3], entry_point=ids[4], blue=ids[0], green=ids[1])


async def make_call(
    world: World, agent: Person | None, *, started: datetime = T0, queue: uuid.UUID | None = None, talk_s: int = 83,
    status: str = "ended", recorded: bool = True, disposition: str | None = None, caller_ref: str | None = None,
) -> uuid.UUID:
    """A call answered by ``agent`` 12 s after it started, talking ``talk_s`` seconds, with one
    recording per party (written as kefu.tenants.callflow writes them)."""
    runtime, tenant_id = world.runtime, world.tenant_id
    call_id = uuid.uuid4()
    answered = started + timedelta(seconds=12) if agent is not None else None
    ended = (answered or started) + timedelta(seconds=talk_s) if status == "ended" else None
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        session.add(Call(
            id=call_id, tenant_id=tenant_id, entry_point_id=world.entry_point, queue_id=queue or world.sales,
            agent_id=agent.agent_id if agent else None, caller_name="Carol", status=status, started_at=started, queued_at=started,
            answered_at=answered, ended_at=ended, end_reason="caller_hangup" if ended else None, disposition_code=disposition, caller_ref=caller_ref,
        ))
        await session.flush()
        call_log.new_call_log(session, call_id=call_id)
        await call_log.append_event(session, tenant_id=tenant_id, call_id=call_id, type="queued", actor="system", at=started,
                                    data={"queue_id": str(queue or world.sales)})
        if agent is not None and answered is not None:
            await call_log.append_event(session, tenant_id=tenant_id, call_id=call_id, type="answered", actor="system", at=answered,
                                        data={"agent_id": str(agent.agent_id)})
        if ended is not None:
            await call_log.append_event(session, tenant_id=tenant_id, call_id=call_id, type="ended", actor="system", at=ended, data={})
        if recorded and answered is not None and ended is not None:
            for party in ("caller", "agent"):
                relative = f"{tenant_id}/{call_id}/{party}.ogg"
                path = runtime.settings.recordings_dir / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"OggS" + party.encode() * 8)
                session.add(Recording(tenant_id=tenant_id, call_id=call_id, party=party, path=relative, started_at=answered, ended_at=ended,
                                      size_bytes=path.stat().st_size, duration_ms=talk_s * 1000))
    world.calls.append(call_id)
    return call_id


async def scorecard(client: Any, world: World, *, name: str = "Standard", document: dict[str, Any] | None = None) -> tuple[str, str]:
    """A published scorecard: (scorecard id, version id)."""
    created = await client.post("/api/v1/qa/scorecards", json={"name": name, "document": document or STANDARD}, headers=world.admin.headers)
    assert created.status_code == 201, created.text
    version = await client.post(f"/api/v1/qa/scorecards/{created.json()['id']}/publish", headers=world.admin.headers)
    assert version.status_code == 201, version.text
    return created.json()["id"], version.json()["id"]


async def evaluate(client: Any, world: World, reviewer: Person, scorecard_id: str, call_ids: list[uuid.UUID], *,
                   answers: list[dict[str, Any]] | None = None, qa_type: str = "random", **extra: Any) -> dict[str, Any]:
    """Open and submit an evaluation; returns the submitted evaluation."""
    body = {"scorecard_id": scorecard_id, "call_ids": [str(c) for c in call_ids], "qa_type": qa_type, **extra}
    created = await client.post("/api/v1/qa/evaluations", json=body, headers=reviewer.headers)
    assert created.status_code == 201, created.text
    submitted = await client.post(f"/api/v1/qa/evaluations/{created.json()['id']}/submit", json={"answers": answers or GOOD_ANSWERS},
                                  headers=reviewer.headers)
    assert submitted.status_code == 200, submitted.text
    return submitted.json()  # type: ignore[no-any-return]


async def audit_actions(world: World, prefix: str = "qa.") -> list[tuple[str, str | None]]:
    async with world.runtime.db.tenant_session(tenant_id=world.tenant_id) as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.target).where(AuditEntry.tenant_id == world.tenant_id, AuditEntry.action.startswith(prefix))
            .order_by(AuditEntry.id)
        )
        return [(a, t) for a, t in rows]


async def table_rows(world: World, model: Any) -> list[Any]:
    """Every row of a QA table for the tenant (to prove a refused request stored nothing)."""
    async with world.runtime.db.tenant_session(tenant_id=world.tenant_id) as session:
        rows = await session.scalars(select(model).where(model.tenant_id == world.tenant_id))
        return sorted(repr({c.name: getattr(r, c.key) for c in model.__table__.columns}) for r in rows)
