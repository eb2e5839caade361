"""HTTP API of in-call controls: the agent's hold / mute / recording buttons and supervisor audio.

One call each: ``PUT /api/v1/agent/calls/{id}/hold`` ``{"on_hold": true}``,
``PUT .../mute``, ``PUT .../recording``; supervisors ``POST
/api/v1/supervision/calls/{id}`` with ``{"mode": "monitor", "offer_sdp": ...}``
to join, ``PUT .../mode`` to switch between monitor, whisper and barge,
``POST .../takeover``, ``PUT .../recording``, ``DELETE`` to leave.
Transfers: ``POST /api/v1/agent/calls/{id}/transfer`` (blind, to an
``agent_id`` or a ``queue_id``), ``POST .../consult`` (same targets), then
``.../consult/answer`` (the consulted agent), ``.../consult/conference``,
``.../consult/complete``, ``DELETE .../consult``.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec
from litestar import Controller, delete, post, put
from litestar.params import FromPath, JSONBody

from kefu.platform.deps import ActiveTenantId, CurrentPrincipal, RuntimeDep
from kefu.platform.identity.principal import requires
from kefu.platform.runtime import Runtime
from kefu.tenants.controls import CallControls, audio_message
from kefu.tenants.models import Call
from kefu.tenants.schemas import AnswerOut, Request
from kefu.tenants.services import contact_center
from kefu.tenants.supervision_api import check_call_in_scope
from kefu.tenants.transfers import Transfers


class HoldUpdate(Request):
    on_hold: bool


class MuteUpdate(Request):
    muted: bool


class RecordingUpdate(Request):
    paused: bool


class TransferTarget(Request):
    agent_id: uuid.UUID | None = None
    queue_id: uuid.UUID | None = None


class ConsultAnswer(Request):
    offer_sdp: str


class SupervisorJoin(Request):
    mode: Literal["monitor", "whisper", "barge"]
    offer_sdp: str


class SupervisorModeUpdate(Request):
    mode: Literal["monitor", "whisper", "barge"]


class SupervisorOut(msgspec.Struct):
    mode: str
    name: str | None


class ConsultOut(msgspec.Struct):
    agent_id: uuid.UUID
    state: str  # ringing | talking | conference


class CallAudioOut(msgspec.Struct):
    call_id: uuid.UUID
    status: str
    agent_id: uuid.UUID | None
    queue_id: uuid.UUID | None
    on_hold: bool
    muted: bool
    recording_paused: bool
    supervisor: SupervisorOut | None
    taken_over: bool
    consult: ConsultOut | None


def call_audio_out(call: Call) -> CallAudioOut:
    message = audio_message(call)
    supervisor = message["supervisor"]
    return CallAudioOut(
        call_id=call.id, status=call.status, agent_id=call.agent_id, queue_id=call.queue_id,
        on_hold=call.on_hold, muted=call.agent_muted, recording_paused=call.recording_paused,
        supervisor=SupervisorOut(mode=supervisor["mode"], name=None) if supervisor else None, taken_over=call.taken_over,
        consult=ConsultOut(agent_id=call.consult_agent_id, state=call.consult_state)
        if call.consult_agent_id is not None and call.consult_state is not None else None,
    )


def controls(runtime: Runtime) -> CallControls:
    return runtime.components["call_controls"]  # type: ignore[no-any-return]


class AgentCallControlsController(Controller):
    path = "/api/v1/agent/calls/{call_id:uuid}"
    tags = ["agent desktop"]
    guards = [requires("agent.desktop")]

    @put("/hold")
    async def hold(self, call_id: FromPath[uuid.UUID], data: JSONBody[HoldUpdate], active_tenant_id: ActiveTenantId,
                   principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        return call_audio_out(await controls(runtime).set_hold(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, on_hold=data.on_hold))

    @put("/mute")
    async def mute(self, call_id: FromPath[uuid.UUID], data: JSONBody[MuteUpdate], active_tenant_id: ActiveTenantId,
                   principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        return call_audio_out(await controls(runtime).set_mute(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, muted=data.muted))

    @put("/recording")
    async def recording(self, call_id: FromPath[uuid.UUID], data: JSONBody[RecordingUpdate], active_tenant_id: ActiveTenantId,
                        principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        call = await controls(runtime).agent_set_recording_paused(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, paused=data.paused
        )
        return call_audio_out(call)


def transfers(runtime: Runtime) -> Transfers:
    return runtime.components["transfers"]  # type: ignore[no-any-return]


class TransfersController(Controller):
    """Blind and consultative transfer, three-way conference (kefu.tenants.transfers)."""

    path = "/api/v1/agent/calls/{call_id:uuid}"
    tags = ["agent desktop"]
    guards = [requires("agent.desktop")]

    @post("/transfer", status_code=200)
    async def transfer(self, call_id: FromPath[uuid.UUID], data: JSONBody[TransferTarget], active_tenant_id: ActiveTenantId,
                       principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        call = await transfers(runtime).blind_transfer(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, agent_id=data.agent_id, queue_id=data.queue_id
        )
        return call_audio_out(call)

    @post("/consult", status_code=200)
    async def consult(self, call_id: FromPath[uuid.UUID], data: JSONBody[TransferTarget], active_tenant_id: ActiveTenantId,
                      principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        call = await transfers(runtime).consult(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, agent_id=data.agent_id, queue_id=data.queue_id
        )
        return call_audio_out(call)

    @post("/consult/answer", status_code=200)
    async def answer_consult(self, call_id: FromPath[uuid.UUID], data: JSONBody[ConsultAnswer], active_tenant_id: ActiveTenantId,
                             principal: CurrentPrincipal, runtime: RuntimeDep) -> AnswerOut:
        answer = await transfers(runtime).answer_consult(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, offer_sdp=data.offer_sdp
        )
        return AnswerOut(answer_sdp=answer)

    @post("/consult/conference", status_code=200)
    async def conference(self, call_id: FromPath[uuid.UUID], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal,
                         runtime: RuntimeDep) -> CallAudioOut:
        return call_audio_out(await transfers(runtime).conference(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id))

    @post("/consult/complete", status_code=200)
    async def complete(self, call_id: FromPath[uuid.UUID], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal,
                       runtime: RuntimeDep) -> CallAudioOut:
        return call_audio_out(await transfers(runtime).complete(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id))

    @delete("/consult", status_code=204)
    async def cancel(self, call_id: FromPath[uuid.UUID], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal,
                     runtime: RuntimeDep) -> None:
        await transfers(runtime).cancel_consult(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id)


class SupervisionController(Controller):
    path = "/api/v1/supervision/calls/{call_id:uuid}"
    tags = ["supervision"]
    guards = [requires("acd.agents.supervise")]

    @post("/", status_code=200)
    async def join(self, call_id: FromPath[uuid.UUID], data: JSONBody[SupervisorJoin], active_tenant_id: ActiveTenantId,
                   principal: CurrentPrincipal, runtime: RuntimeDep) -> AnswerOut:
        await check_call_in_scope(runtime, tenant_id=active_tenant_id, principal=principal, call_id=call_id)
        answer = await controls(runtime).supervise(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, mode=data.mode, offer_sdp=data.offer_sdp
        )
        return AnswerOut(answer_sdp=answer)

    @put("/mode")
    async def mode(self, call_id: FromPath[uuid.UUID], data: JSONBody[SupervisorModeUpdate], active_tenant_id: ActiveTenantId,
                   principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        return call_audio_out(await controls(runtime).set_supervisor_mode(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, mode=data.mode))

    @post("/takeover", status_code=200)
    async def take_over(self, call_id: FromPath[uuid.UUID], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal,
                        runtime: RuntimeDep) -> CallAudioOut:
        return call_audio_out(await controls(runtime).take_over(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id))

    @put("/recording")
    async def recording(self, call_id: FromPath[uuid.UUID], data: JSONBody[RecordingUpdate], active_tenant_id: ActiveTenantId,
                        principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        await check_call_in_scope(runtime, tenant_id=active_tenant_id, principal=principal, call_id=call_id)
        call = await controls(runtime).set_recording_paused(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, paused=data.paused)
        return call_audio_out(call)

    @delete("/", status_code=204)
    async def leave(self, call_id: FromPath[uuid.UUID], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal,
                    runtime: RuntimeDep) -> None:
        await controls(runtime).leave(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id)


def install(runtime: Runtime) -> list[Any]:
    """Call controls ride on the contact center the tenants context installed."""
    flow = contact_center(runtime).calls
    calls = runtime.components["call_controls"] = CallControls(flow)
    flow.media_callbacks["on_leg_closed"] = calls.on_leg_closed
    moves = runtime.components["transfers"] = Transfers(calls)
    flow.after_end.append(moves.release_after_end)
    flow.agent_leaving.append(moves.agent_left)
    calls.leg_closed_handlers["consult"] = moves.consult_leg_closed
    return [AgentCallControlsController, TransfersController, SupervisionController]
