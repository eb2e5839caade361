"""The wallboard over HTTP and WebSocket (docs/wallboard.md).

* ``GET /api/v1/wallboard[?queue_id=…][&team_id=…]`` (``reports.read``): the
  snapshot, computed now.
* ``/ws/wallboard?access_token=<JWT>[&queue_id=…][&team_id=…]``: the same
  snapshot at once, then again within a second of every call or agent change
  (``kefu.tenants.wallboard.live``).  Close codes as on ``/ws/events``: 4401
  no or bad token; 4403 ``tenant_required``, ``permission_denied``,
  ``outside_supervision_scope``, ``tenant_suspended`` / ``tenant_closed``;
  4404 ``not_found`` (a queue or team that is not the tenant's).

A tenant admin, a report viewer and an integration client see the whole
tenant; any other supervisor sees their queues and their teams (as on the
supervision console).  A queue or team outside that answers 403
``outside_supervision_scope``; another tenant's answers 404 like a missing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from litestar import Controller, WebSocket, get, websocket
from litestar.params import FromQuery
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.deps import CurrentPrincipal, RuntimeDep, TenantId
from kefu.platform.events.websocket import reject, socket_principal, until_disconnect
from kefu.platform.identity.principal import Principal, requires
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime
from kefu.tenants import queues as queues_service
from kefu.tenants import supervision
from kefu.tenants.supervision import Scope
from kefu.tenants.wallboard.live import Wallboard
from kefu.tenants.wallboard.snapshot import ViewKey, view

PERMISSION = "reports.read"
WHOLE_TENANT_ROLES = frozenset({"tenant_admin", "report_viewer"})


def wallboard_of(runtime: Runtime) -> Wallboard:
    return runtime.components["wallboard"]


async def view_key(
    session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, queue_id: uuid.UUID | None, team_id: uuid.UUID | None,
) -> ViewKey:
    """The viewer's cut: 404 for a queue or team that is not the tenant's, 403 for one outside their scope."""
    if principal.kind != "user" or principal.roles & WHOLE_TENANT_ROLES:
        scope = Scope(everything=True)
    else:
        scope = await supervision.scope_of(session, tenant_id=tenant_id, principal=principal)
    if queue_id is not None:
        await queues_service.get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
        if not scope.sees_queue(queue_id):
            raise supervision.outside_scope("queue")
    if team_id is not None:
        await supervision.get_team(session, tenant_id=tenant_id, team_id=team_id)
        if not (scope.everything or team_id in scope.team_ids):
            raise supervision.outside_scope("team")
    return ViewKey.of(scope, queue_id=queue_id, team_id=team_id)


class WallboardController(Controller):
    path = "/api/v1/wallboard"
    tags = ["wallboard"]

    @get("/", guards=[requires(PERMISSION)])
    async def snapshot(
        self, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep,
        queue_id: FromQuery[uuid.UUID | None] = None, team_id: FromQuery[uuid.UUID | None] = None,
    ) -> dict[str, Any]:
        """Per queue and per team: waiting, longest wait, today's answered, abandoned and
        service level, agents by state; and the totals over them."""
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            key = await view_key(session, tenant_id=tenant_id, principal=principal, queue_id=queue_id, team_id=team_id)
        return view(await wallboard_of(runtime).compute(tenant_id), key)




def _uuid_param(socket: WebSocket, name: str) -> uuid.UUID | None:
    value = socket.query_params.get(name)
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(404, "not_found", f"{name} not found") from None


@websocket("/ws/wallboard")
async def wallboard_socket(socket: WebSocket) -> None:
    runtime: Runtime = socket.app.state.runtime
    principal = await socket_principal(socket, PERMISSION)
    if principal is None or principal.tenant_id is None:
        return
    tenant_id = principal.tenant_id
    try:
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            status = await session.scalar(select(Tenant.status).where(Tenant.id == tenant_id))
            if status != TenantStatus.ACTIVE:
                await reject(socket, 4403, f"tenant_{status or 'missing'}")
                return
            key = await view_key(session, tenant_id=tenant_id, principal=principal,
                                 queue_id=_uuid_param(socket, "queue_id"), team_id=_uuid_param(socket, "team_id"))
    except Problem as problem:
        await reject(socket, 4000 + problem.status, problem.code)
        return

    await socket.accept()
    async with wallboard_of(runtime).open(tenant_id) as (board, mailbox):
        receiver = asyncio.create_task(until_disconnect(socket))
        try:
            sent, snapshot = await board.first()
            await socket.send_data(board.frame(sent, snapshot, key), mode="text")
            while True:
                woken = asyncio.create_task(mailbox.wake.wait())
                done, _ = await asyncio.wait({woken, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    woken.cancel()
                    return
                mailbox.wake.clear()
                if mailbox.closing is not None:
                    await socket.close(code=4403 if mailbox.closing.startswith("tenant_") else 1001, reason=mailbox.closing)
                    return
                if mailbox.snapshot is not None and mailbox.snapshot[0] != sent:
                    sent, snapshot = mailbox.snapshot
                    await socket.send_data(board.frame(sent, snapshot, key), mode="text")
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver

