"""Agent desktop routes for after-call work and dispositions, and the caller's
"call me back" (docs/acd.md).

* ``POST /api/v1/agent/wrap-up/end`` — the agent ends its after-call work
  (409 ``disposition_required`` while its queue requires a disposition and none
  was given; 409 ``not_in_wrap_up``).
* ``POST /api/v1/agent/wrap-up/extend`` — one more ``wrap_up_s`` in an
  extendable queue, up to ``wrap_up_max_s`` (409 ``wrap_up_not_extendable``,
  ``wrap_up_limit``).
* ``PUT /api/v1/agent/calls/{call_id}/disposition`` — a wrap-up code, the
  first-call-resolution flag and notes, during the call or its wrap-up.
* ``POST /api/v1/widget/calls/{call_id}/callback`` — the waiting caller (its
  token) hangs up and keeps its place; the first free agent is offered the
  callback when it comes to the head of the queue.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, post, put
from litestar.params import FromPath, HeaderParameter, JSONBody

from kefu.platform.deps import ActiveTenantId, CurrentPrincipal, RuntimeDep
from kefu.platform.identity.principal import requires
from kefu.platform.runtime import Runtime
from kefu.tenants.api import _state_out
from kefu.tenants.schemas import AgentStateOut, Request
from kefu.tenants.services import contact_center


class DispositionIn(Request):
    code: str
    first_call_resolution: bool | None = None
    notes: str | None = None


class DispositionOut(msgspec.Struct):
    call_id: uuid.UUID
    code: str | None
    first_call_resolution: bool | None
    notes: str | None


class CallbackIn(Request):
    number: str | None = None


class CallbackOut(msgspec.Struct):
    call_id: uuid.UUID
    status: str
    callback: bool


class WrapUpController(Controller):
    path = "/api/v1/agent"
    tags = ["agent desktop"]
    guards = [requires("agent.desktop")]

    @post("/wrap-up/end", status_code=200)
    async def end_wrap_up(self, active_tenant_id: ActiveTenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> AgentStateOut:
        cc = contact_center(runtime)
        agent_id = await cc.calls.agent_id_of_user(tenant_id=active_tenant_id, user_id=principal.user_id)
        agent = await cc.acd.end_wrap_up(tenant_id=active_tenant_id, agent_id=agent_id, by="agent")
        assert agent is not None  # by the agent: refused with a 409 rather than None
        return _state_out(agent)

    @post("/wrap-up/extend", status_code=200)
    async def extend_wrap_up(self, active_tenant_id: ActiveTenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> AgentStateOut:
        agent = await contact_center(runtime).acd.extend_wrap_up(tenant_id=active_tenant_id, user_id=principal.user_id)
        return _state_out(agent)

    @put("/calls/{call_id:uuid}/disposition")
    async def set_disposition(
        self, call_id: FromPath[uuid.UUID], data: JSONBody[DispositionIn], active_tenant_id: ActiveTenantId,
        principal: CurrentPrincipal, runtime: RuntimeDep,
    ) -> DispositionOut:
        call = await contact_center(runtime).acd.set_disposition(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, code=data.code,
            first_call_resolution=data.first_call_resolution, notes=data.notes,
        )
        return DispositionOut(call.id, call.disposition_code, call.first_call_resolution, call.disposition_notes)


CallerToken = Annotated[str | None, HeaderParameter(name="X-Caller-Token", required=False)]


class CallbackController(Controller):
    path = "/api/v1/widget/calls"
    tags = ["caller widget"]
    security = []

    @post("/{call_id:uuid}/callback", status_code=200)
    async def request_callback(
        self, call_id: FromPath[uuid.UUID], data: JSONBody[CallbackIn], runtime: RuntimeDep, caller_token: CallerToken = None
    ) -> CallbackOut:
        flow = contact_center(runtime).calls
        await flow.request_callback(call_id=call_id, caller_token=caller_token, number=data.number)
        call = await flow.caller_call(call_id=call_id, caller_token=caller_token)
        return CallbackOut(call.id, call.status, call.callback_requested_at is not None)


def install(runtime: Runtime) -> list[Any]:
    return [WrapUpController, CallbackController]
