"""Voicemails as tasks: every message a caller leaves (a queue's rule or an IVR flow)
is a task of its queue until someone marks it done.

Supervisors and admins (``calls.read``) see every voicemail of the tenant; an
agent sees those of the queues it is a member of, and plays them through the
recordings endpoint (kefu.tenants.call_log.get_recording lets it).  Marking one
done is written to the audit log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, TenantId
from kefu.platform.identity.principal import Principal, requires_any
from kefu.platform.problems import not_found
from kefu.tenants import agents as agents_service
from kefu.tenants.models import Call, Queue, QueueMember, Recording, Voicemail

MAX_LISTED = 200


class VoicemailOut(msgspec.Struct):
    id: uuid.UUID
    call_id: uuid.UUID
    queue_id: uuid.UUID | None
    queue_name: str | None
    caller_name: str | None
    status: str
    created_at: datetime
    done_at: datetime | None
    done_by: str | None
    duration_ms: int | None
    recording_id: uuid.UUID | None
    media_url: str | None


async def _queues_of(session: AsyncSession, tenant_id: uuid.UUID, principal: Principal) -> list[uuid.UUID] | None:
    """None: every queue (``calls.read``); else the queues of the principal's agent."""
    if principal.can("calls.read"):
        return None
    agent = await agents_service.agent_of_user(session, tenant_id=tenant_id, user_id=principal.user_id)
    if agent is None:
        return []
    return list(await session.scalars(select(QueueMember.queue_id).where(QueueMember.tenant_id == tenant_id, QueueMember.agent_id == agent.id)))


def _query(tenant_id: uuid.UUID, queues: list[uuid.UUID] | None) -> Any:
    query = (
        select(Voicemail, Call.caller_name, Queue.name, Recording.id, Recording.duration_ms)
        .join(Call, (Call.tenant_id == Voicemail.tenant_id) & (Call.id == Voicemail.call_id))
        .outerjoin(Queue, (Queue.tenant_id == Voicemail.tenant_id) & (Queue.id == Voicemail.queue_id))
        .outerjoin(
            Recording,
            (Recording.tenant_id == Voicemail.tenant_id) & (Recording.call_id == Voicemail.call_id) & (Recording.party == "caller"),
        )
        .where(Voicemail.tenant_id == tenant_id)
    )
    if queues is not None:
        query = query.where(Voicemail.queue_id.in_(queues))
    return query


def _out(row: Any) -> VoicemailOut:
    voicemail, caller_name, queue_name, recording_id, duration_ms = row
    return VoicemailOut(
        id=voicemail.id, call_id=voicemail.call_id, queue_id=voicemail.queue_id, queue_name=queue_name, caller_name=caller_name,
        status=voicemail.status, created_at=voicemail.created_at, done_at=voicemail.done_at, done_by=voicemail.done_by,
        duration_ms=duration_ms, recording_id=recording_id,
        media_url=f"/api/v1/recordings/{recording_id}/media" if recording_id else None,
    )


async def list_voicemails(session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, status: str) -> list[VoicemailOut]:
    query = _query(tenant_id, await _queues_of(session, tenant_id, principal))
    if status != "all":
        query = query.where(Voicemail.status == status)
    rows = await session.execute(query.order_by(Voicemail.created_at.desc(), Voicemail.id).limit(MAX_LISTED))
    return [_out(row) for row in rows]


async def mark_done(session: AsyncSession, *, tenant_id: uuid.UUID, voicemail_id: uuid.UUID, principal: Principal) -> VoicemailOut:
    """Done (idempotent: a second click changes nothing and answers the same)."""
    queues = await _queues_of(session, tenant_id, principal)
    row = (await session.execute(_query(tenant_id, queues).where(Voicemail.id == voicemail_id).with_for_update(of=Voicemail))).first()
    if row is None:
        raise not_found("voicemail")
    voicemail = row[0]
    if voicemail.status != "done":
        voicemail.status, voicemail.done_at, voicemail.done_by = "done", utcnow(), principal.actor
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=principal.actor, action="voicemail.done", target=f"voicemail:{voicemail.id}",
                           detail={"call_id": str(voicemail.call_id)})
    return _out(row)


class VoicemailsController(Controller):
    path = "/api/v1/voicemails"
    tags = ["voicemails"]
    guards = [requires_any("calls.read", "agent.desktop")]

    @get("/")
    async def list_voicemails(
        self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        status: Annotated[Literal["new", "done", "all"], QueryParameter()] = "new",
    ) -> list[VoicemailOut]:
        """The newest first (at most 200): ``new`` (the default), ``done`` or ``all``."""
        return await list_voicemails(db, tenant_id=tenant_id, principal=principal, status=status)

    @post("/{voicemail_id:uuid}/done", status_code=200)
    async def done(self, voicemail_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> VoicemailOut:
        return await mark_done(db, tenant_id=tenant_id, voicemail_id=voicemail_id, principal=principal)
