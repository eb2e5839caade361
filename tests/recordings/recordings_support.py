"""Helpers of the recording management tests: tenants with an admin, agents and queues made
through the API, and ended calls with one real recording file per party, written the way
the call flow writes them (the call row, its event log, the files under
``<recordings_dir>/<tenant>/<call>/`` and their ``recordings`` rows)."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))

from tenants_support import activate_user, bearer, create_tenant, create_user  # noqa: E402

from sqlalchemy import func, select  # noqa: E402

from kefu.platform.models import AuditEntry  # noqa: E402
from kefu.platform.runtime import Runtime  # noqa: E402
from kefu.tenants import call_log  # noqa: E402
from kefu.tenants.models import Call, Recording  # noqa: E402

# The moment the tests travel to (time-machine); calls are placed relative to it.
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Tenant:
    runtime: Runtime
    id: uuid.UUID
    slug: str
    admin_id: uuid.UUID
    users: dict[str, uuid.UUID] = field(default_factory=dict)

    def headers(self, role: str = "tenant_admin", user_id: uuid.UUID | None = None) -> dict[str, str]:
        """A token minted now (tests travel in time further than a token lives)."""
        return bearer(self.runtime, tenant_id=self.id, user_id=user_id or self.user(role), roles={role})

    def user(self, role: str) -> uuid.UUID:
        return self.admin_id if role == "tenant_admin" else self.users[role]


async def new_tenant(runtime: Runtime, slug: str) -> Tenant:
    tenant_id = await create_tenant(runtime, slug)
    tenant = Tenant(runtime, tenant_id, slug, await create_user(runtime, tenant_id, f"admin@{slug}.test"))
    for role in ("supervisor", "qa_reviewer"):
        tenant.users[role] = await create_user(runtime, tenant_id, f"{role.replace('_', '-')}@{slug}.test")
    return tenant


@dataclass(frozen=True)
class AgentSeat:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str


async def add_agent(client: Any, tenant: Tenant, name: str) -> AgentSeat:
    response = await client.post(
        "/api/v1/agents", json={"email": f"{name.lower()}@{tenant.slug}.test", "display_name": name}, headers=tenant.headers()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    await activate_user(tenant.runtime, tenant.id, uuid.UUID(body["user_id"]))
    return AgentSeat(uuid.UUID(body["id"]), uuid.UUID(body["user_id"]), name)


async def add_queue(client: Any, tenant: Tenant, name: str) -> uuid.UUID:
    response = await client.post("/api/v1/queues", json={"name": name}, headers=tenant.headers())
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def audio(call_id: uuid.UUID, party: str, size: int = 4000) -> bytes:
    """A recording's bytes: distinct per call and party, so a mix-up shows."""
    pattern = f"{party}:{call_id.hex}|".encode()
    return (b"OggS" + pattern * (size // len(pattern) + 1))[:size]


@dataclass(frozen=True)
class RecordedCall:
    id: uuid.UUID
    started_at: datetime
    # party -> (recording id, file path)
    files: dict[str, tuple[uuid.UUID, Path]]

    def recording_id(self, party: str = "caller") -> uuid.UUID:
        return self.files[party][0]

    def path(self, party: str = "caller") -> Path:
        return self.files[party][1]


async def recorded_call(
    tenant: Tenant,
    *,
    started_at: datetime,
    caller_name: str = "Carol Caller",
    caller_ref: str | None = None,
    queue_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    wait_s: int = 10,
    talk_s: int | None = 60,
    disposition: str | None = None,
    parties: tuple[str, ...] = ("caller", "agent"),
) -> RecordedCall:
    """An ended call with one file per party.  ``talk_s`` None: never answered (a voicemail)."""
    runtime = tenant.runtime
    call_id = uuid.uuid4()
    answered_at = started_at + timedelta(seconds=wait_s) if talk_s is not None else None
    ended_at = (answered_at + timedelta(seconds=talk_s)) if answered_at is not None and talk_s is not None else started_at + timedelta(seconds=wait_s + 30)
    files: dict[str, tuple[uuid.UUID, Path]] = {}
    async with runtime.db.tenant_session(tenant_id=tenant.id) as session:
        session.add(Call(
            id=call_id, tenant_id=tenant.id, queue_id=queue_id, agent_id=agent_id, caller_name=caller_name, caller_ref=caller_ref,
            status="ended", started_at=started_at, queued_at=started_at if queue_id else None, answered_at=answered_at, ended_at=ended_at,
            end_reason="caller_hangup" if answered_at else "voicemail", disposition_code=disposition,
        ))
        await session.flush()
        events = [("queued", started_at)] + ([("answered", answered_at)] if answered_at else []) + [("ended", ended_at)]
        for kind, at in events:
            await call_log.append_event(session, tenant_id=tenant.id, call_id=call_id, type=kind, actor="system", at=at, data={})
        for party in parties:
            relative = f"{tenant.id}/{call_id}/{party}.ogg"
            path = runtime.settings.recordings_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(audio(call_id, party))
            recording = Recording(
                tenant_id=tenant.id, call_id=call_id, party=party, path=relative, started_at=answered_at or started_at, ended_at=ended_at,
                size_bytes=path.stat().st_size, duration_ms=int((ended_at - (answered_at or started_at)).total_seconds() * 1000),
            )
            session.add(recording)
            await session.flush()
            files[party] = (recording.id, path)
    return RecordedCall(call_id, started_at, files)


async def audit_entries(tenant: Tenant, action: str | None = None) -> list[AuditEntry]:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == tenant.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return list((await session.scalars(query.order_by(AuditEntry.id))).all())


async def recording_rows(tenant: Tenant) -> set[uuid.UUID]:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        return set((await session.scalars(select(Recording.id).where(Recording.tenant_id == tenant.id))).all())


async def call_count(tenant: Tenant) -> int:
    async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
        return int(await session.scalar(select(func.count()).select_from(Call).where(Call.tenant_id == tenant.id)) or 0)
