"""HTTP API of in-call controls: the agent's hold / mute / recording buttons and supervisor audio.

One call each: ``PUT /api/v1/agent/calls/{id}/hold`` ``{"on_hold": true}``,
``PUT .../mute``, ``PUT .../recording``; supervisors ``POST
/api/v1/supervision/calls/{id}`` with ``{"mode": "monitor", "offer_sdp": ...}``
to join, ``PUT .../mode`` to switch between monitor, whisper and barge,
``POST .../takeover``, ``PUT .../recording``, ``DELETE`` to leave.
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


class HoldUpdate(Request):
    on_hold: bool


class MuteUpdate(Request):
    muted: bool


class RecordingUpdate(Request):
    paused: bool


class SupervisorJoin(Request):
    mode: Literal["monitor", "whisper", "barge"]
    offer_sdp: str


class SupervisorModeUpdate(Request):
    mode: Literal["monitor", "whisper", "barge"]


class SupervisorOut(msgspec.Struct):
    mode: str
    name: str | None


class CallAudioOut(msgspec.Struct):
    call_id: uuid.UUID
    on_hold: bool
    muted: bool
    recording_paused: bool
    supervisor: SupervisorOut | None
    taken_over: bool


def _out(call: Call) -> CallAudioOut:
    message = audio_message(call)
    supervisor = message["supervisor"]
    return CallAudioOut(
        call_id=call.id, on_hold=call.on_hold, muted=call.agent_muted, recording_paused=call.recording_paused,
        supervisor=SupervisorOut(mode=supervisor["mode"], name=None) if supervisor else None, taken_over=call.taken_over,
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
        return _out(await controls(runtime).set_hold(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, on_hold=data.on_hold))

    @put("/mute")
    async def mute(self, call_id: FromPath[uuid.UUID], data: JSONBody[MuteUpdate], active_tenant_id: ActiveTenantId,
                   principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        return _out(await controls(runtime).set_mute(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, muted=data.muted))

    @put("/recording")
    async def recording(self, call_id: FromPath[uuid.UUID], data: JSONBody[RecordingUpdate], active_tenant_id: ActiveTenantId,
                        principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        call = await controls(runtime).agent_set_recording_paused(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, paused=data.paused
        )
        return _out(call)


class SupervisionController(Controller):
    path = "/api/v1/supervision/calls/{call_id:uuid}"
    tags = ["supervision"]
    guards = [requires("acd.agents.supervise")]

    @post("/", status_code=200)
    async def join(self, call_id: FromPath[uuid.UUID], data: JSONBody[SupervisorJoin], active_tenant_id: ActiveTenantId,
                   principal: CurrentPrincipal, runtime: RuntimeDep) -> AnswerOut:
        answer = await controls(runtime).supervise(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, mode=data.mode, offer_sdp=data.offer_sdp
        )
        return AnswerOut(answer_sdp=answer)

    @put("/mode")
    async def mode(self, call_id: FromPath[uuid.UUID], data: JSONBody[SupervisorModeUpdate], active_tenant_id: ActiveTenantId,
                   principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        return _out(await controls(runtime).set_supervisor_mode(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, mode=data.mode))

    @post("/takeover", status_code=200)
    async def take_over(self, call_id: FromPath[uuid.UUID], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal,
                        runtime: RuntimeDep) -> CallAudioOut:
        return _out(await controls(runtime).take_over(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id))

    @put("/recording")
    async def recording(self, call_id: FromPath[uuid.UUID], data: JSONBody[RecordingUpdate], active_tenant_id: ActiveTenantId,
                        principal: CurrentPrincipal, runtime: RuntimeDep) -> CallAudioOut:
        call = await controls(runtime).set_recording_paused(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, paused=data.paused)
        return _out(call)

    @delete("/", status_code=204)
    async def leave(self, call_id: FromPath[uuid.UUID], active_tenant_id: ActiveTenantId, principal: CurrentPrincipal,
                    runtime: RuntimeDep) -> None:
        await controls(runtime).leave(tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id)


def install(runtime: Runtime) -> list[Any]:
    """Call controls ride on the contact center the tenants context installed."""
    flow = contact_center(runtime).calls
    calls = runtime.components["call_controls"] = CallControls(flow)
    flow.media_callbacks["on_leg_closed"] = calls.on_leg_closed
    return [AgentCallControlsController, SupervisionController]
