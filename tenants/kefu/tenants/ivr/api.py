"""Routes for IVR flows: drafts, validation, publishing, versions, rollback, the
simulator, lookup addresses and the published JSON Schema (docs/ivr.md).

Admins write with ``ivr.flows.write``; supervisors read with ``ivr.flows.read``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from kefu.platform.admin.purge import register_tenant_files_purger
from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.identity.principal import requires
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime
from kefu.tenants import schedules
from kefu.tenants.ivr import audio, stats, store
from kefu.tenants.ivr.flow import FlowError
from kefu.tenants.ivr.schema import flow_schema
from kefu.tenants.ivr.simulate import simulate
from kefu.tenants.ivr.vxml import VxmlInvalid, import_vxml
from kefu.tenants.models import IvrAudio, IvrFlow, IvrFlowVersion, IvrLookupAddress, Schedule
from litestar import Controller, Response, delete, get, post, put
from litestar import Request as HttpRequest
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select

MAX_INPUTS = 200


class Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


class FlowCreate(Request):
    name: str
    document: dict[str, Any] | None = None


class ImportIn(Request):
    name: str
    vxml: str


class DraftIn(Request):
    document: dict[str, Any]


class RollbackIn(Request):
    version: int


class SimulateIn(Request):
    inputs: list[str] = []
    locale: str = "en"
    variables: dict[str, str] = {}
    answers: dict[str, Any] = {}  # node id -> what its HTTP lookup gets back (absent: its fallback)
    closed: list[str] | None = None  # schedules taken as closed; None: the tenant's schedules, now (or at ``at``)
    at: datetime | None = None
    version: int | None = None  # None: the draft


class LookupAddressIn(Request):
    prefix: str


class FlowErrorOut(msgspec.Struct):
    code: str
    message: str
    node: str | None
    exit: str | None


class FlowOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    draft: dict[str, Any]
    draft_updated_at: datetime
    published_version: int | None
    created_at: datetime
    errors: list[FlowErrorOut] | None = None  # the draft's validation errors, when just saved or checked


class VersionOut(msgspec.Struct):
    number: int
    document: dict[str, Any]
    published_at: datetime
    published_by: str
    restored_from: int | None


class LookupAddressOut(msgspec.Struct):
    id: uuid.UUID
    prefix: str
    created_at: datetime


def _errors(errors: list[FlowError]) -> list[FlowErrorOut]:
    return [FlowErrorOut(e.code, e.message, e.node, e.exit) for e in errors]


def _flow_out(flow: IvrFlow, errors: list[FlowError] | None = None) -> FlowOut:
    return FlowOut(
        id=flow.id, name=flow.name, draft=flow.draft, draft_updated_at=flow.draft_updated_at, published_version=flow.published_version,
        created_at=flow.created_at, errors=None if errors is None else _errors(errors),
    )


class AudioOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    media_type: str
    size_bytes: int
    duration_ms: int
    created_at: datetime
    media_url: str


def _audio_out(row: IvrAudio) -> AudioOut:
    return AudioOut(row.id, row.name, row.media_type, row.size_bytes, row.duration_ms, row.created_at, f"/api/v1/ivr/audio/{row.id}/media")


def _version_out(version: IvrFlowVersion) -> VersionOut:
    return VersionOut(version.number, version.document, version.published_at, version.published_by, version.restored_from)


def _period(start: datetime | None, end: datetime | None) -> dict[str, datetime]:
    end = end or utcnow()
    return {"start": start or end - timedelta(days=1), "end": end}


class IvrFlowsController(Controller):
    path = "/api/v1/ivr"
    tags = ["IVR"]

    @get("/schema", guards=[requires("ivr.flows.read")])
    async def schema(self) -> dict[str, Any]:
        return flow_schema()

    @get("/flows", guards=[requires("ivr.flows.read")])
    async def list_flows(self, db: DbSession, tenant_id: TenantId) -> list[FlowOut]:
        return [_flow_out(f) for f in await store.list_flows(db, tenant_id=tenant_id)]

    @post("/flows", guards=[requires("ivr.flows.write")])
    async def create_flow(self, data: JSONBody[FlowCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> FlowOut:
        flow, errors = await store.create_flow(db, tenant_id=tenant_id, name=data.name, document=data.document, actor=principal.actor)
        return _flow_out(flow, errors)

    @post("/flows/import", guards=[requires("ivr.flows.write")])
    async def import_flow(self, data: JSONBody[ImportIn], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> FlowOut:
        """A new flow whose draft is a VoiceXML document of the subset (docs/ivr.md)."""
        try:
            document = import_vxml(data.vxml)
        except VxmlInvalid as invalid:
            raise Problem(400, "vxml_invalid", "the VoiceXML document is outside the supported subset", errors=[e.as_dict() for e in invalid.errors]) from None
        flow, errors = await store.create_flow(db, tenant_id=tenant_id, name=data.name, document=document, actor=principal.actor)
        return _flow_out(flow, errors)

    @get("/flows/{ivr_flow_id:uuid}", guards=[requires("ivr.flows.read")])
    async def get_flow(self, ivr_flow_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> FlowOut:
        return _flow_out(await store.get_flow(db, tenant_id=tenant_id, flow_id=ivr_flow_id))

    @put("/flows/{ivr_flow_id:uuid}/draft", guards=[requires("ivr.flows.write")])
    async def save_draft(
        self, ivr_flow_id: FromPath[uuid.UUID], data: JSONBody[DraftIn], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> FlowOut:
        flow, errors = await store.save_draft(db, tenant_id=tenant_id, flow_id=ivr_flow_id, document=data.document, actor=principal.actor)
        return _flow_out(flow, errors)

    @post("/flows/{ivr_flow_id:uuid}/validate", guards=[requires("ivr.flows.read")], status_code=200)
    async def validate_draft(self, ivr_flow_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> FlowOut:
        errors = await store.check_draft(db, tenant_id=tenant_id, flow_id=ivr_flow_id)
        return _flow_out(await store.get_flow(db, tenant_id=tenant_id, flow_id=ivr_flow_id), errors)

    @post("/flows/{ivr_flow_id:uuid}/publish", guards=[requires("ivr.flows.write")], status_code=201)
    async def publish(self, ivr_flow_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> VersionOut:
        return _version_out(await store.publish(db, tenant_id=tenant_id, flow_id=ivr_flow_id, actor=principal.actor))

    @post("/flows/{ivr_flow_id:uuid}/rollback", guards=[requires("ivr.flows.write")], status_code=201)
    async def rollback(
        self, ivr_flow_id: FromPath[uuid.UUID], data: JSONBody[RollbackIn], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> VersionOut:
        version = await store.rollback(db, tenant_id=tenant_id, flow_id=ivr_flow_id, number=data.version, actor=principal.actor)
        return _version_out(version)

    @get("/flows/{ivr_flow_id:uuid}/versions", guards=[requires("ivr.flows.read")])
    async def versions(self, ivr_flow_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> list[VersionOut]:
        return [_version_out(v) for v in await store.list_versions(db, tenant_id=tenant_id, flow_id=ivr_flow_id)]

    @post("/flows/{ivr_flow_id:uuid}/simulate", guards=[requires("ivr.flows.read")], status_code=200)
    async def simulate_flow(self, ivr_flow_id: FromPath[uuid.UUID], data: JSONBody[SimulateIn], db: DbSession, tenant_id: TenantId) -> dict[str, Any]:
        if len(data.inputs) > MAX_INPUTS or any(len(i) > 64 for i in data.inputs) or len(data.variables) > 50:
            raise Problem(400, "invalid_simulation", f"at most {MAX_INPUTS} inputs of up to 64 keys, and 50 variables")
        if data.version is None:
            document = (await store.get_flow(db, tenant_id=tenant_id, flow_id=ivr_flow_id)).draft
        else:
            document = (await store.get_version(db, tenant_id=tenant_id, flow_id=ivr_flow_id, number=data.version)).document
        flow = store.parse_or_problem(document)
        if data.closed is not None:
            closed = set(data.closed)

            def is_open(schedule_id: str) -> str:
                return "closed" if schedule_id in closed else "open"
        else:
            at = data.at or utcnow()
            if at.tzinfo is None:
                raise Problem(400, "invalid_simulation", "at must carry a time zone")
            rows = {str(s.id): s for s in await db.scalars(select(Schedule).where(Schedule.tenant_id == tenant_id))}

            def is_open(schedule_id: str) -> str:
                schedule = rows.get(schedule_id)
                return "open" if schedule is None or schedules.is_open(schedule, at) else "closed"

        walk = simulate(
            flow, inputs=list(data.inputs), locale=data.locale[:16], variables=dict(data.variables),
            lookup=lambda node, _variables: data.answers.get(node.id), is_open=is_open,
        )
        return walk.as_dict()

    @get("/statistics", guards=[requires("ivr.flows.read")])
    async def statistics(
        self, db: DbSession, tenant_id: TenantId,
        start: Annotated[datetime | None, QueryParameter(name="from")] = None,
        end: Annotated[datetime | None, QueryParameter(name="to")] = None,
    ) -> dict[str, Any]:
        """Per flow and node, for the calls that started in [from, to) (at most 31 days;
        default: the 24 hours up to now; docs/ivr.md)."""
        return await stats.report(db, tenant_id=tenant_id, **_period(start, end))

    @get("/flows/{ivr_flow_id:uuid}/statistics", guards=[requires("ivr.flows.read")])
    async def flow_statistics(
        self, ivr_flow_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId,
        start: Annotated[datetime | None, QueryParameter(name="from")] = None,
        end: Annotated[datetime | None, QueryParameter(name="to")] = None,
    ) -> dict[str, Any]:
        await store.get_flow(db, tenant_id=tenant_id, flow_id=ivr_flow_id)
        return await stats.report(db, tenant_id=tenant_id, flow_id=ivr_flow_id, **_period(start, end))

    @get("/audio", guards=[requires("ivr.flows.read")])
    async def list_audio(self, db: DbSession, tenant_id: TenantId) -> list[AudioOut]:
        return [_audio_out(row) for row in await audio.list_audio(db, tenant_id=tenant_id)]

    @post("/audio", guards=[requires("ivr.flows.write")], request_max_body_size=audio.MAX_AUDIO_BYTES)
    async def upload_audio(
        self, request: HttpRequest[Any, Any, Any], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep,
        name: Annotated[str, QueryParameter(min_length=1, max_length=200)],
    ) -> AudioOut:
        """The request body is the audio file itself (``Content-Type: audio/wav``, ``audio/ogg``, ``audio/mpeg``…)."""
        row = await audio.upload(db, settings=runtime.settings, prompt_length_ms=runtime.components.get("prompt_length_ms"), tenant_id=tenant_id, name=name, media_type=request.headers.get("content-type"),
                                 body=await request.body(), actor=principal.actor)
        return _audio_out(row)

    @get("/audio/{ivr_audio_id:uuid}/media", guards=[requires("ivr.flows.read")])
    async def play_audio(self, ivr_audio_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, runtime: RuntimeDep) -> Response[bytes]:
        row = await audio.get_audio(db, tenant_id=tenant_id, audio_id=ivr_audio_id)
        path = audio.audio_path(audio.audio_root(runtime.settings), tenant_id, row.id)
        try:
            body = await asyncio.to_thread(path.read_bytes)  # off the event loop: up to 8 MiB
        except FileNotFoundError:
            raise Problem(404, "audio_file_missing", "the prompt's file is not available") from None
        return Response(body, media_type=row.media_type, headers={"Content-Disposition": f'inline; filename="{row.id}"'})

    @delete("/audio/{ivr_audio_id:uuid}", guards=[requires("ivr.flows.write")], status_code=204)
    async def delete_audio(self, ivr_audio_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                           runtime: RuntimeDep) -> None:
        await audio.delete_audio(db, settings=runtime.settings, tenant_id=tenant_id, audio_id=ivr_audio_id, actor=principal.actor)

    @get("/lookup-addresses", guards=[requires("ivr.flows.read")])
    async def list_lookup_addresses(self, db: DbSession, tenant_id: TenantId) -> list[LookupAddressOut]:
        return [LookupAddressOut(a.id, a.prefix, a.created_at) for a in await store.list_lookup_addresses(db, tenant_id=tenant_id)]

    @post("/lookup-addresses", guards=[requires("ivr.flows.write")])
    async def add_lookup_address(
        self, data: JSONBody[LookupAddressIn], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> LookupAddressOut:
        row: IvrLookupAddress = await store.add_lookup_address(db, tenant_id=tenant_id, prefix=data.prefix, actor=principal.actor)
        return LookupAddressOut(row.id, row.prefix, row.created_at)

    @delete("/lookup-addresses/{ivr_lookup_address_id:uuid}", guards=[requires("ivr.flows.write")], status_code=204)
    async def remove_lookup_address(
        self, ivr_lookup_address_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> None:
        await store.remove_lookup_address(db, tenant_id=tenant_id, address_id=ivr_lookup_address_id, actor=principal.actor)


def install(runtime: Runtime) -> list[Any]:
    # A purged tenant's uploaded prompts go with it (kefu.platform may not import this context).
    register_tenant_files_purger("ivr_audio", audio.purge_tenant_audio)
    return [IvrFlowsController]
