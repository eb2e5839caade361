"""HTTP and websocket routes of kefu.tenants: the contact-center API, the agent
and caller push sockets, and the pages.

``install(runtime)`` builds the ACD and the call flow once per process
(``runtime.components["contact_center"]``) and registers the ACD as a service.
Tests may put ``acd.clock`` / ``acd.timers`` / ``acd.sweep_interval_s`` in
``runtime.components`` beforehand to drive time by hand.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from litestar import WebSocket
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing import services as billing
from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.db.session import on_commit
from kefu.platform.deps import ActiveTenantId, CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.identity.principal import Principal, requires, requires_any
from kefu.platform.problems import Problem, problem_response
from kefu.platform.runtime import Runtime
from kefu.tenants import agents as agents_service
from kefu.tenants import call_log, pages, signalling
from kefu.tenants import queues as queues_service
from kefu.tenants.acd import Acd, agent_state_message, keep_agents_from_ready
from kefu.tenants.callflow import CallFlow
from kefu.tenants.models import Agent, EntryPoint, Queue, Recording
from kefu.tenants.notify import agent_channel, call_channel
from kefu.tenants.schemas import (
    AgentCreate,
    AgentOut,
    AgentStateOut,
    AgentStatusUpdate,
    AgentUpdate,
    AnswerOut,
    AnswerRequest,
    CallDetailOut,
    CallerCallOut,
    CallEventOut,
    CallPage,
    CallSummary,
    EntryPointCreate,
    EntryPointUpdate,
    EntryPointOut,
    QueueCreate,
    QueueMembers,
    QueueOut,
    QueueUpdate,
    RecordingOut,
    WebCallCreate,
    WebCallOut,
)
from kefu.tenants.ivr.audio import audio_root
from kefu.tenants.services import ContactCenter, contact_center
from kefu.tenants.voicemails import VoicemailsController


def install(runtime: Runtime) -> list[Any]:
    from kefu.tenants.clock import AsyncioTimers
    from kefu.tenants.notify import Hub, RedisHub

    clock = runtime.components.get("acd.clock", utcnow)
    hub: Hub = RedisHub(runtime.settings.redis_url) if runtime.settings.redis_url else Hub()
    if isinstance(hub, RedisHub):
        runtime.add_service(hub)  # before the ACD: pushes flow once routing starts
    acd = Acd(
        runtime.db,
        ring_timeout_s=runtime.settings.ring_timeout_s,
        clock=clock,
        timers=runtime.components.get("acd.timers") or AsyncioTimers(clock),
        hub=hub,
        sweep_interval_s=runtime.components.get("acd.sweep_interval_s", 5.0),
    )
    flow = CallFlow(runtime.db, acd, lambda: runtime.components.get("media"), node_id=runtime.settings.node_id,
                    setups_in_flight=runtime.settings.call_setups_in_flight)
    flow.ivr.audio_root = audio_root(runtime.settings)
    runtime.components["contact_center"] = ContactCenter(acd=acd, calls=flow)
    runtime.add_service(acd)
    runtime.tenant_deactivation_hooks.append(flow.agents_logged_out)
    # Billing: the seat cap counts agents; a suspension for non-payment keeps agents from being ready.
    runtime.components["seats_in_use"] = agents_service.seats_in_use
    runtime.components["before_user_enabled"] = agents_service.before_user_enabled

    async def billing_service_changed(session: AsyncSession, tenant_id: uuid.UUID, suspended: bool) -> None:
        if suspended:
            for agent in await keep_agents_from_ready(session, tenant_id=tenant_id):
                message = agent_state_message(agent)
                on_commit(session, _publisher(hub, agent_channel(tenant_id, agent.id), message))

    billing.on_service_change("contact_center", billing_service_changed)
    return [
        AgentsController, QueuesController, EntryPointsController, AgentDesktopController, WidgetController,
        CallsController, RecordingsController, VoicemailsController, agent_socket, caller_socket, *signalling.install(runtime), *pages.route_handlers(),
    ]


def _publisher(hub: Any, channel: str, message: dict[str, Any]) -> Any:
    async def publish() -> None:
        hub.publish(channel, message)

    return publish


def _cc(runtime: Runtime) -> ContactCenter:
    return contact_center(runtime)


# --- agents ------------------------------------------------------------------------


def _agent_out(view: agents_service.AgentView, invitation_token: str | None = None) -> AgentOut:
    return AgentOut(
        id=view.id, user_id=view.user_id, email=view.email, display_name=view.display_name, status=view.status,
        not_ready_reason=view.not_ready_reason, system_state=view.system_state, state=view.state,
        current_call_id=view.current_call_id, queue_ids=list(view.queue_ids), invitation_token=invitation_token,
    )


class AgentsController(Controller):
    path = "/api/v1/agents"
    tags = ["agents"]

    @post("/", guards=[requires("acd.agents.write")])
    async def create_agent(self, data: JSONBody[AgentCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> AgentOut:
        view, token = await agents_service.create_agent(
            db, tenant_id=tenant_id, email=data.email, display_name=data.display_name, password=data.password, actor=principal.actor
        )
        return _agent_out(view, token)

    @get("/", guards=[requires("acd.agents.read")])
    async def list_agents(self, db: DbSession, tenant_id: TenantId) -> list[AgentOut]:
        return [_agent_out(v) for v in await agents_service.list_agents(db, tenant_id=tenant_id)]

    @get("/{agent_id:uuid}", guards=[requires("acd.agents.read")])
    async def get_agent(self, agent_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> AgentOut:
        return _agent_out(await agents_service.get_agent(db, tenant_id=tenant_id, agent_id=agent_id))

    @patch("/{agent_id:uuid}", guards=[requires("acd.agents.write")])
    async def update_agent(self, agent_id: FromPath[uuid.UUID], data: JSONBody[AgentUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> AgentOut:
        view = await agents_service.update_agent(db, tenant_id=tenant_id, agent_id=agent_id, display_name=data.display_name, actor=principal.actor)
        return _agent_out(view)


# --- queues ---------------------------------------------------------------------------


async def _queue_out(db: Any, tenant_id: uuid.UUID, queue: Queue, members: list[uuid.UUID] | None = None) -> QueueOut:
    if members is None:
        members = await queues_service.member_ids(db, tenant_id=tenant_id, queue_id=queue.id)
    return QueueOut(id=queue.id, name=queue.name, agent_ids=members, created_at=queue.created_at, **queues_service.rules_of(queue))


def _rule_changes(data: QueueCreate | QueueUpdate) -> dict[str, Any]:
    """The routing rules the body sets (for an update: the fields present)."""
    fields = (f for f in queues_service.RULE_DEFAULTS if f != "max_wait_s")
    return {f: getattr(data, f) for f in fields if getattr(data, f) is not msgspec.UNSET}


class QueuesController(Controller):
    path = "/api/v1/queues"
    tags = ["queues"]

    @post("/", guards=[requires("acd.queues.write")])
    async def create_queue(self, data: JSONBody[QueueCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> QueueOut:
        queue = await queues_service.create_queue(
            db, tenant_id=tenant_id, name=data.name, max_wait_s=data.max_wait_s, rules=_rule_changes(data), actor=principal.actor
        )
        return await _queue_out(db, tenant_id, queue)

    @get("/", guards=[requires("acd.queues.read")])
    async def list_queues(self, db: DbSession, tenant_id: TenantId) -> list[QueueOut]:
        members = await queues_service.members_by_queue(db, tenant_id=tenant_id)
        return [await _queue_out(db, tenant_id, q, members.get(q.id, [])) for q in await queues_service.list_queues(db, tenant_id=tenant_id)]

    @get("/{queue_id:uuid}", guards=[requires("acd.queues.read")])
    async def get_queue(self, queue_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> QueueOut:
        return await _queue_out(db, tenant_id, await queues_service.get_queue(db, tenant_id=tenant_id, queue_id=queue_id))

    @patch("/{queue_id:uuid}", guards=[requires("acd.queues.write")])
    async def update_queue(self, queue_id: FromPath[uuid.UUID], data: JSONBody[QueueUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> QueueOut:
        queue = await queues_service.update_queue(
            db, tenant_id=tenant_id, queue_id=queue_id, name=data.name, max_wait_s=data.max_wait_s, rules=_rule_changes(data), actor=principal.actor
        )
        return await _queue_out(db, tenant_id, queue)

    @delete("/{queue_id:uuid}", guards=[requires("acd.queues.write")], status_code=204)
    async def delete_queue(self, queue_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await queues_service.delete_queue(db, tenant_id=tenant_id, queue_id=queue_id, actor=principal.actor)

    @put("/{queue_id:uuid}/members", guards=[requires("acd.queues.write")])
    async def set_members(
        self, queue_id: FromPath[uuid.UUID], data: JSONBody[QueueMembers], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep
    ) -> QueueOut:
        await queues_service.set_members(db, tenant_id=tenant_id, queue_id=queue_id, agent_ids=data.agent_ids, actor=principal.actor)
        queue = await queues_service.get_queue(db, tenant_id=tenant_id, queue_id=queue_id)
        out = await _queue_out(db, tenant_id, queue)
        acd = _cc(runtime).acd

        async def route_after_commit() -> None:
            # New members may be free right now: route the queue's waiting calls.
            await acd.route_queue(tenant_id=tenant_id, queue_id=queue_id)

        on_commit(db, route_after_commit)
        return out


# --- entry points ----------------------------------------------------------------------


def _entry_out(runtime: Runtime, entry: EntryPoint) -> EntryPointOut:
    return EntryPointOut(
        id=entry.id, name=entry.name, kind=entry.kind, widget_key=entry.widget_key, queue_id=entry.queue_id,
        caller_url=f"{runtime.settings.public_url}/call/{entry.widget_key}", created_at=entry.created_at, priority=entry.priority,
        flow_id=entry.flow_id,
    )


class EntryPointsController(Controller):
    path = "/api/v1/entry-points"
    tags = ["entry points"]

    @post("/", guards=[requires("entrypoints.write")])
    async def create_entry_point(self, data: JSONBody[EntryPointCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> EntryPointOut:
        entry = await queues_service.create_entry_point(
            db, tenant_id=tenant_id, name=data.name, queue_id=data.queue_id, priority=data.priority, actor=principal.actor,
            flow_id=data.flow_id,
        )
        return _entry_out(runtime, entry)

    @patch("/{entry_point_id:uuid}", guards=[requires("entrypoints.write")])
    async def update_entry_point(
        self, entry_point_id: FromPath[uuid.UUID], data: JSONBody[EntryPointUpdate], db: DbSession, tenant_id: TenantId,
        principal: CurrentPrincipal, runtime: RuntimeDep,
    ) -> EntryPointOut:
        changes = {name: value for name, value in msgspec.structs.asdict(data).items() if value is not msgspec.UNSET}
        entry = await queues_service.update_entry_point(db, tenant_id=tenant_id, entry_point_id=entry_point_id, changes=changes, actor=principal.actor)
        return _entry_out(runtime, entry)

    @get("/", guards=[requires("entrypoints.read")])
    async def list_entry_points(self, db: DbSession, tenant_id: TenantId, runtime: RuntimeDep) -> list[EntryPointOut]:
        return [_entry_out(runtime, e) for e in await queues_service.list_entry_points(db, tenant_id=tenant_id)]

    @get("/{entry_point_id:uuid}", guards=[requires("entrypoints.read")])
    async def get_entry_point(self, entry_point_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, runtime: RuntimeDep) -> EntryPointOut:
        return _entry_out(runtime, await queues_service.get_entry_point(db, tenant_id=tenant_id, entry_point_id=entry_point_id))

    @delete("/{entry_point_id:uuid}", guards=[requires("entrypoints.write")], status_code=204)
    async def delete_entry_point(self, entry_point_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await queues_service.delete_entry_point(db, tenant_id=tenant_id, entry_point_id=entry_point_id, actor=principal.actor)


# --- agent desktop ---------------------------------------------------------------------


def _state_out(agent: Agent) -> AgentStateOut:
    return AgentStateOut(
        agent_id=agent.id, display_name=agent.display_name, state=agents_service.ui_state(agent), status=agent.status,
        system_state=agent.system_state, not_ready_reason=agent.not_ready_reason, current_call_id=agent.current_call_id,
        lease_expires_at=agent.lease_expires_at, wrap_up_call_id=agent.wrap_up_call_id, wrap_up_until=agent.wrap_up_until,
    )


class AgentDesktopController(Controller):
    """The signed-in agent's own seat: session, status, answering and hanging up."""

    path = "/api/v1/agent"
    tags = ["agent desktop"]
    guards = [requires("agent.desktop")]

    @get("/state")
    async def my_state(self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> AgentStateOut:
        agent = await agents_service.agent_of_user(db, tenant_id=tenant_id, user_id=principal.user_id)
        if agent is None:
            raise Problem(403, "not_an_agent", "this user is not an agent of the tenant")
        return _state_out(agent)

    @post("/session", status_code=200)
    async def log_in(self, active_tenant_id: ActiveTenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> AgentStateOut:
        return _state_out(await _cc(runtime).acd.log_in(tenant_id=active_tenant_id, user_id=principal.user_id))

    @put("/status")
    async def set_status(self, data: JSONBody[AgentStatusUpdate], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> AgentStateOut:
        agent = await _cc(runtime).acd.set_status(tenant_id=active_tenant_id, user_id=principal.user_id, status=data.status, reason=data.reason)
        return _state_out(agent)

    @delete("/session", status_code=200)
    async def log_out(self, active_tenant_id: ActiveTenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> AgentStateOut:
        return _state_out(await _cc(runtime).acd.log_out(tenant_id=active_tenant_id, user_id=principal.user_id))

    @post("/calls/{call_id:uuid}/answer", status_code=200)
    async def answer(self, call_id: FromPath[uuid.UUID], data: JSONBody[AnswerRequest], tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> AnswerOut:
        # The tenant and user status are checked in the answer's first transaction (``active``).
        answer_sdp = await _cc(runtime).calls.answer(tenant_id=tenant_id, user_id=principal.user_id, call_id=call_id, offer_sdp=data.offer_sdp,
                                                     active=principal)
        return AnswerOut(answer_sdp=answer_sdp)

    @post("/calls/{call_id:uuid}/hangup", status_code=204)
    async def hangup(self, call_id: FromPath[uuid.UUID], tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> None:
        await _cc(runtime).calls.agent_hangup(tenant_id=tenant_id, user_id=principal.user_id, call_id=call_id, active=principal)


# --- caller widget (public: the widget key or the caller token identifies the tenant) ----


CallerToken = Annotated[str | None, HeaderParameter(name="X-Caller-Token", required=False)]


class WidgetController(Controller):
    path = "/api/v1/widget"
    tags = ["caller widget"]
    security = []

    @post("/{widget_key:str}/calls", status_code=201)
    async def start_call(self, widget_key: FromPath[str], data: JSONBody[WebCallCreate], runtime: RuntimeDep) -> WebCallOut:
        created = await _cc(runtime).calls.start_web_call(
            widget_key=widget_key, caller_name=data.caller_name, offer_sdp=data.offer_sdp, caller_ref=data.caller_ref
        )
        return WebCallOut(call_id=created.call_id, answer_sdp=created.answer_sdp, caller_token=created.caller_token, status=created.status)

    @get("/calls/{call_id:uuid}")
    async def call_state(self, call_id: FromPath[uuid.UUID], runtime: RuntimeDep, caller_token: CallerToken = None) -> CallerCallOut:
        cc = _cc(runtime)
        call = await cc.calls.caller_call(call_id=call_id, caller_token=caller_token)
        place = await cc.acd.position_of(tenant_id=call.tenant_id, call_id=call.id) if call.status == "queued" else None
        expected = None if place is None or place[1] == float("inf") else round(place[1])
        return CallerCallOut(
            call_id=call.id, status=call.status, end_reason=call.end_reason, position=place[0] if place else None,
            expected_wait_s=expected, callback=call.callback_requested_at is not None,
        )

    @post("/calls/{call_id:uuid}/hangup", status_code=204)
    async def hangup(self, call_id: FromPath[uuid.UUID], runtime: RuntimeDep, caller_token: CallerToken = None) -> None:
        await _cc(runtime).calls.caller_hangup(call_id=call_id, caller_token=caller_token)


# --- call log --------------------------------------------------------------------------


async def own_agent_scope(db: Any, tenant_id: uuid.UUID, principal: Principal) -> uuid.UUID | None:
    """None when the principal may read every call; else the agent whose calls it may read."""
    if principal.can("calls.read"):
        return None
    agent = await agents_service.agent_of_user(db, tenant_id=tenant_id, user_id=principal.user_id)
    # An agent-less user with calls.own.read owns no calls: a fresh id matches nothing.
    return agent.id if agent is not None else uuid.uuid4()


def _recording_out(recording: Recording) -> RecordingOut:
    return RecordingOut(
        id=recording.id, call_id=recording.call_id, party=recording.party, media_type=recording.media_type,
        started_at=recording.started_at, ended_at=recording.ended_at, size_bytes=recording.size_bytes,
        duration_ms=recording.duration_ms, media_url=f"/api/v1/recordings/{recording.id}/media",
    )


class CallsController(Controller):
    path = "/api/v1/calls"
    tags = ["calls"]
    guards = [requires_any("calls.read", "calls.own.read")]

    @get("/")
    async def list_calls(
        self,
        db: DbSession,
        tenant_id: TenantId,
        principal: CurrentPrincipal,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> CallPage:
        own = await own_agent_scope(db, tenant_id, principal)
        rows, total = await call_log.list_calls(db, tenant_id=tenant_id, limit=limit, offset=offset, own_agent_id=own)
        items = [
            CallSummary(id=c.id, caller_name=c.caller_name, queue_id=c.queue_id, agent_id=c.agent_id, status=c.status,
                        started_at=c.started_at, answered_at=c.answered_at, ended_at=c.ended_at, end_reason=c.end_reason)
            for c in rows
        ]
        return CallPage(items=items, total=total, limit=limit, offset=offset)

    @get("/{call_id:uuid}")
    async def get_call(self, call_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> CallDetailOut:
        own = await own_agent_scope(db, tenant_id, principal)
        detail = await call_log.call_detail(db, tenant_id=tenant_id, call_id=call_id, own_agent_id=own)
        recordings = await call_log.list_recordings(db, tenant_id=tenant_id, call_id=call_id)
        fields = {f: getattr(detail, f) for f in detail.__dataclass_fields__}
        return CallDetailOut(**fields, recordings=[_recording_out(r) for r in recordings])

    @get("/{call_id:uuid}/events")
    async def call_events(self, call_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> list[CallEventOut]:
        own = await own_agent_scope(db, tenant_id, principal)
        await call_log.get_call(db, tenant_id=tenant_id, call_id=call_id, own_agent_id=own)
        events = await call_log.list_events(db, tenant_id=tenant_id, call_id=call_id)
        return [CallEventOut(seq=e.seq, at=e.at, type=e.type, actor=e.actor, data=dict(e.data or {})) for e in events]

    @get("/{call_id:uuid}/recordings")
    async def call_recordings(self, call_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> list[RecordingOut]:
        own = await own_agent_scope(db, tenant_id, principal)
        await call_log.get_call(db, tenant_id=tenant_id, call_id=call_id, own_agent_id=own)
        return [_recording_out(r) for r in await call_log.list_recordings(db, tenant_id=tenant_id, call_id=call_id)]


class RecordingsController(Controller):
    path = "/api/v1/recordings"
    tags = ["recordings"]

    @get("/{recording_id:uuid}/media")
    async def play(self, recording_id: FromPath[uuid.UUID], request: Request, runtime: RuntimeDep) -> Response[Any]:
        """The recording's audio from the recording store, whole (200) or one byte range (206).

        Either a bearer token (``recordings.read``: every recording; ``calls.own.read``:
        the agent's own calls), audited ``recording.played`` per answer; or a signed
        link from ``POST /api/v1/recordings/{id}/links`` (query ``tenant``, ``user``,
        ``purpose``, ``expires``, ``signature``), audited when it was issued, which an
        ``<audio>`` element can use without a token (kefu.tenants.recordings.links).
        The store is kefu.webrtc's ``runtime.components["recordings"]`` (local folder
        or S3); its errors carry stable codes (docs/recordings.md).
        """
        from kefu.tenants.recordings import links  # here: kefu.tenants.recordings imports this module

        grant = links.media_grant(request, runtime.settings, recording_id=recording_id, now=utcnow())
        tenant_id, principal = grant.tenant_id, grant.principal
        media = None
        try:
            async with runtime.db.tenant_session(tenant_id=tenant_id) as db:
                await links.check_grant(db, grant)
                # A link was checked against the caller's scope when it was issued.
                own = None if grant.signed or principal.can("recordings.read") else await own_agent_scope(db, tenant_id, principal)
                recording = await call_log.get_recording(db, tenant_id=tenant_id, recording_id=recording_id, own_agent_id=own)
                store = runtime.components.get("recordings")
                if store is None:
                    raise Problem(503, "recording_storage_unavailable", "recordings cannot be read from this process")
                if not recording.path.startswith(f"{tenant_id}/"):
                    raise Problem(404, "recording_file_missing", "the recording's file is not available")
                try:
                    media = await store.open_range(recording.path, *(requested_byte_range(request.headers.get("range")) or ()))
                except Exception as exc:
                    code = getattr(exc, "code", None)
                    if code in ("invalid_recording_key", "recording_not_found"):
                        raise Problem(404, "recording_file_missing", "the recording's file is not available") from None
                    if code == "range_not_satisfiable":
                        response = problem_response(416, "range_not_satisfiable", str(exc), request)
                        response.headers["Content-Range"] = f"bytes */{exc.total_size}"  # type: ignore[attr-defined]
                        return response
                    if code is not None:
                        raise Problem(503, "recording_storage_unavailable", "the recording store cannot be read now; try again") from exc
                    raise
                if not grant.signed:
                    await audit.record(
                        db, tenant_id=tenant_id, actor=principal.actor, action="recording.played", target=f"recording:{recording.id}",
                        detail={"call_id": str(recording.call_id), "party": recording.party}, ip=request.client.host if request.client else None,
                    )
        except BaseException:
            if media is not None:
                await media.aclose()
            raise
        extension = recording.path.rsplit(".", 1)[1]
        disposition = "attachment" if grant.purpose == "download" else "inline"
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(media.length),
            "Content-Disposition": f'{disposition}; filename="{recording.call_id}-{recording.party}.{extension}"',
        }
        if media.partial:
            headers["Content-Range"] = media.content_range
        return Stream(_recording_body(media), status_code=206 if media.partial else 200, media_type=media.content_type, headers=headers)


_BYTE_RANGE = re.compile(r"^bytes=(?:(\d+)-(\d*)|-(\d+))$")


def requested_byte_range(header: str | None) -> tuple[int | None, int | None] | None:
    """One HTTP byte range as (first, last), (first, None) or (None, suffix length); None to
    send the whole recording: no header, a malformed one, or several ranges (RFC 9110
    section 14.2 lets a server ignore Range)."""
    match = _BYTE_RANGE.match((header or "").replace(" ", ""))
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return None, int(suffix)
    if last and int(last) < int(first):
        return None
    return int(first), int(last) if last else None


async def _recording_body(media: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in media.chunks:
            yield chunk
    finally:
        await media.aclose()


# --- push sockets ----------------------------------------------------------------------


NO_SUCH_CALL_CODE = 4404


@websocket("/ws/agent")
async def agent_socket(socket: WebSocket) -> None:
    """Pushes the agent's state and offers; each ``{"type": "ping"}`` renews the presence lease.

    The agent signals on it too (kefu.tenants.signalling, docs/signalling.md):
    ``offer`` answers or re-attaches its call, ``ice_candidate`` trickles its own leg.
    """
    await socket.accept()
    principal = socket.scope.get("user")
    if not isinstance(principal, Principal) or principal.tenant_id is None or not principal.can("agent.desktop"):
        await socket.close(code=4401, reason="an agent access token is required")
        return
    runtime: Runtime = socket.app.state.runtime
    acd = _cc(runtime).acd
    tenant_id = principal.tenant_id
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        agent = await agents_service.agent_of_user(session, tenant_id=tenant_id, user_id=principal.user_id)
    if agent is None:
        await socket.close(code=4403, reason="this user is not an agent")
        return
    agent_id = agent.id
    try:
        async with acd.hub.subscribe(agent_channel(tenant_id, agent_id)) as queue:
            if agent.status != "offline":
                await acd.renew_lease(tenant_id=tenant_id, agent_id=agent_id)
            await socket.send_json(agent_state_message(agent))
            if agent.system_state == "ringing" and agent.current_call_id:
                offered = await _offered_call(runtime, tenant_id, agent.current_call_id, agent.id)
                if offered is not None:  # a call that vanished meanwhile is not offered
                    await socket.send_json(offered)

            messages = signalling.AgentMessages(runtime, principal, tenant_id, agent_id)
            await signalling.Channel(socket, queue, clock=signalling.socket_clock(runtime)).run(messages.types, messages.handle)
    except WebSocketDisconnect:
        return


async def _offered_call(runtime: Runtime, tenant_id: uuid.UUID, call_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any] | None:
    """What rings at the agent, pushed again to a new socket: ``call.offered``, or
    ``consult.offered`` for a consultation; None when the call is gone."""
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        try:
            call = await call_log.get_call(session, tenant_id=tenant_id, call_id=call_id)
        except Problem:
            return None
        if call.consult_agent_id == agent_id and call.consult_state == "ringing":
            from_name = await session.scalar(select(Agent.display_name).where(Agent.tenant_id == tenant_id, Agent.id == call.agent_id))
            return {"type": "consult.offered", "call_id": str(call_id), "from": from_name, "caller_name": call.caller_name}
        return {"type": "call.offered", "call_id": str(call_id), "caller_name": call.caller_name}


@websocket("/ws/caller/{call_id:uuid}")
async def caller_socket(socket: WebSocket, call_id: FromPath[uuid.UUID]) -> None:
    """Pushes ``{"type": "call.state", "status": ...}`` to the caller's page (token in ``caller_token``).

    An unknown call, a wrong token or a call that vanished closes with 4404.  The
    caller signals on it too: ``offer`` re-attaches its leg, ``ice_candidate``
    trickles it (kefu.tenants.signalling, docs/signalling.md).
    """
    await socket.accept()
    runtime: Runtime = socket.app.state.runtime
    flow = _cc(runtime).calls
    caller_token = socket.query_params.get("caller_token")
    try:
        call = await flow.caller_call(call_id=call_id, caller_token=caller_token)
        async with flow.acd.hub.subscribe(call_channel(call.tenant_id, call.id)) as queue:
            current = await flow.caller_call(call_id=call_id, caller_token=caller_token)
            await socket.send_json({"type": "call.state", "call_id": str(call_id), "status": current.status})

            messages = signalling.CallerMessages(runtime, call.tenant_id, call.id, caller_token or "")
            await signalling.Channel(socket, queue, clock=signalling.socket_clock(runtime)).run(messages.types, messages.handle)
    except WebSocketDisconnect:
        return
    except Problem:
        await socket.close(code=NO_SUCH_CALL_CODE, reason="unknown call")
