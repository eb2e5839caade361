"""HTTP API of recording management: search, signed playback and download links,
the access log, retention policies and legal holds (docs/recordings.md).

The audio itself is served by ``GET /api/v1/recordings/{id}/media``
(``kefu.tenants.api.RecordingsController``), which accepts the links made here.
``install`` also registers the retention scheduler on worker processes and
remembers the runtime whose recording store the retention job uses.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select

from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.identity.principal import Principal, requires, requires_any
from kefu.platform.models import AuditEntry
from kefu.platform.runtime import Runtime
from kefu.tenants import call_log
from kefu.tenants.api import own_agent_scope
from kefu.tenants.recordings import holds, links, retention
from kefu.tenants.recordings.schemas import (
    AccessEntryOut,
    LegalHoldOut,
    LegalHoldRequest,
    LinkOut,
    LinkRequest,
    PartyLinkOut,
    PlaybackOut,
    RecordedCallPage,
    RetentionOut,
    RetentionUpdate,
)
from kefu.tenants.recordings.search import DEFAULT_LIMIT, SearchFilters, search_recorded_calls
from kefu.tenants.recordings.serials import call_serial
from kefu.tenants.recordings.store import remember_runtime

MAX_ACCESS_ENTRIES = 500


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _own_scope(db: Any, tenant_id: uuid.UUID, principal: Principal) -> uuid.UUID | None:
    """As the media route: ``recordings.read`` sees every recording, else the agent's own calls."""
    return None if principal.can("recordings.read") else await own_agent_scope(db, tenant_id, principal)


class RecordingManagementController(Controller):
    path = "/api/v1/recordings"
    tags = ["recordings"]

    @get("/", guards=[requires("recordings.read")])
    async def search(
        self, db: DbSession, tenant_id: TenantId,
        caller: FromQuery[str | None] = None, agent_id: FromQuery[uuid.UUID | None] = None, queue_id: FromQuery[uuid.UUID | None] = None,
        started_from: FromQuery[datetime | None] = None, started_to: FromQuery[datetime | None] = None,
        disposition: FromQuery[str | None] = None, min_talk_s: FromQuery[int | None] = None, max_talk_s: FromQuery[int | None] = None,
        qa_status: FromQuery[str | None] = None, held: FromQuery[bool | None] = None,
        limit: FromQuery[int] = DEFAULT_LIMIT, cursor: FromQuery[str | None] = None,
    ) -> RecordedCallPage:
        """Calls that have recordings, newest first, filtered (all filters combine); ``limit``
        1..200; ``cursor`` from the previous page's ``next_cursor``.  Times without a zone are UTC."""
        filters = SearchFilters(
            caller=caller, agent_id=agent_id, queue_id=queue_id, started_from=started_from, started_to=started_to,
            disposition=disposition, min_talk_s=min_talk_s, max_talk_s=max_talk_s, qa_status=qa_status, held=held,
        )
        items, next_cursor = await search_recorded_calls(db, tenant_id=tenant_id, filters=filters, limit=limit, cursor=cursor)
        return RecordedCallPage(items=items, limit=limit, next_cursor=next_cursor)

    @get("/legal-holds", guards=[requires("recordings.read")])
    async def legal_holds(self, db: DbSession, tenant_id: TenantId) -> list[LegalHoldOut]:
        return await holds.list_holds(db, tenant_id=tenant_id)

    @post("/{recording_id:uuid}/links", status_code=201, guards=[requires_any(*links.PLAY_PERMISSIONS)])
    async def make_link(
        self, recording_id: FromPath[uuid.UUID], data: JSONBody[LinkRequest], request: Request, db: DbSession, tenant_id: TenantId,
        principal: CurrentPrincipal, runtime: RuntimeDep,
    ) -> LinkOut:
        """A short-lived signed URL to play (``listen``) or download (``download``) one party's file."""
        own = await _own_scope(db, tenant_id, principal)
        recording = await call_log.get_recording(db, tenant_id=tenant_id, recording_id=recording_id, own_agent_id=own)
        link = await links.issue_link(
            db, tenant_id=tenant_id, recording=recording, principal=principal, purpose=data.purpose, settings=runtime.settings,
            now=utcnow(), ip=_ip(request),
        )
        return LinkOut(recording_id=link.recording_id, purpose=link.purpose, url=link.url, expires_at=link.expires_at)

    @get("/{recording_id:uuid}/access-log", guards=[requires("audit.read")])
    async def access_log(self, recording_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> list[AccessEntryOut]:
        """Who got a link to this recording or played it with a token, newest first (at most 500)."""
        await call_log.get_recording(db, tenant_id=tenant_id, recording_id=recording_id)
        # The audit API filters by action only; this reads the tenant's entries about one target.
        rows = await db.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tenant_id, AuditEntry.target == f"recording:{recording_id}")
            .order_by(AuditEntry.id.desc())
            .limit(MAX_ACCESS_ENTRIES)
        )
        return [AccessEntryOut(id=e.id, at=e.at, actor=e.actor, action=e.action, detail=dict(e.detail or {}), ip=e.ip) for e in rows]

    @get("/retention", guards=[requires("recordings.manage")])
    async def get_retention(self, db: DbSession, tenant_id: TenantId) -> RetentionOut:
        return await retention.retention_view(db, tenant_id=tenant_id)

    @put("/retention", guards=[requires("recordings.manage")])
    async def set_retention(self, data: JSONBody[RetentionUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> RetentionOut:
        """The tenant-wide period in days (1..3650), or null to keep recordings forever."""
        return await retention.set_tenant_retention(db, tenant_id=tenant_id, retention_days=data.retention_days, actor=principal.actor, now=utcnow())

    @put("/retention/queues/{queue_id:uuid}", guards=[requires("recordings.manage")])
    async def set_queue_retention(
        self, queue_id: FromPath[uuid.UUID], data: JSONBody[RetentionUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
    ) -> RetentionOut:
        """The queue's own period, overriding the tenant's (null: keep this queue's recordings forever)."""
        return await retention.set_queue_retention(
            db, tenant_id=tenant_id, queue_id=queue_id, retention_days=data.retention_days, actor=principal.actor, now=utcnow()
        )

    @delete("/retention/queues/{queue_id:uuid}", status_code=200, guards=[requires("recordings.manage")])
    async def clear_queue_retention(self, queue_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> RetentionOut:
        """The queue follows the tenant's period again."""
        return await retention.clear_queue_retention(db, tenant_id=tenant_id, queue_id=queue_id, actor=principal.actor, now=utcnow())


class CallRecordingsController(Controller):
    path = "/api/v1/calls"
    tags = ["recordings"]

    @post("/{call_id:uuid}/playback", status_code=201, guards=[requires_any(*links.PLAY_PERMISSIONS)])
    async def playback(
        self, call_id: FromPath[uuid.UUID], request: Request, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        runtime: RuntimeDep,
    ) -> PlaybackOut:
        """A ``listen`` link for every party of the call (one channel each), audited per link."""
        own = await _own_scope(db, tenant_id, principal)
        call = await call_log.get_call(db, tenant_id=tenant_id, call_id=call_id, own_agent_id=own)
        now = utcnow()
        parties, expires_at = [], now
        for recording in await call_log.list_recordings(db, tenant_id=tenant_id, call_id=call_id):
            link = await links.issue_link(
                db, tenant_id=tenant_id, recording=recording, principal=principal, purpose="listen", settings=runtime.settings,
                now=now, ip=_ip(request),
            )
            expires_at = link.expires_at
            parties.append(PartyLinkOut(recording.party, recording.id, recording.media_type, recording.duration_ms, link.url))
        return PlaybackOut(call_id=call.id, serial=call_serial(call), expires_at=expires_at, parties=parties)

    @put("/{call_id:uuid}/legal-hold", guards=[requires("recordings.manage")])
    async def place_hold(
        self, call_id: FromPath[uuid.UUID], data: JSONBody[LegalHoldRequest], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
    ) -> LegalHoldOut:
        """Keep the call's recordings whatever the retention says (again: changes the reason)."""
        return await holds.place_hold(db, tenant_id=tenant_id, call_id=call_id, reason=data.reason, actor=principal.actor, now=utcnow())

    @delete("/{call_id:uuid}/legal-hold", guards=[requires("recordings.manage")])
    async def release_hold(self, call_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        """Release the hold (idempotent); retention applies to the call again."""
        await holds.release_hold(db, tenant_id=tenant_id, call_id=call_id, actor=principal.actor, now=utcnow())


def install(runtime: Runtime) -> list[Any]:
    remember_runtime(runtime)
    if "worker" in runtime.process_roles:
        runtime.add_service(retention.RecordingRetentionScheduler(runtime, interval_s=retention.retention_interval_s(runtime.settings)))
    return [RecordingManagementController, CallRecordingsController]
