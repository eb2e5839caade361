"""``/ws/events``: a live stream of the caller's tenant's events.

The token rides in the ``access_token`` query parameter (browsers cannot set
headers on a WebSocket; ``BearerAuthMiddleware`` reads it).  The tenant comes
from the token only; the stream is that tenant's channel, filtered by the
permission each event type requires.  Frames are JSON:

* ``{"type": "ready"}`` once the subscription is live;
* ``{"type": "event", "event": {event_id, event_type, tenant_id, routing_key, occurred_at, data}}``.

Close codes: 4401 (no or bad token), 4403 (not a tenant principal, or the
tenant is not active — also sent right after a ``tenant.suspended`` or
``tenant.closed`` event).
"""

from __future__ import annotations

import asyncio
import contextlib

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from sqlalchemy import select

from kefu.platform.events.bus import EventBus
from kefu.platform.events.types import PublishedEvent
from kefu.platform.identity.principal import Principal
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime

ENDING_EVENTS = {"tenant.suspended": "tenant_suspended", "tenant.closed": "tenant_closed"}


def _frame(event: PublishedEvent) -> dict[str, object]:
    return {
        "type": "event",
        "event": {
            "event_id": str(event.event_id),
            "event_type": event.event_type,
            "tenant_id": str(event.tenant_id),
            "routing_key": event.routing_key,
            "occurred_at": event.occurred_at.isoformat(),
            "data": event.data,
        },
    }


async def reject(socket: WebSocket, code: int, reason: str) -> None:
    """Refuse a socket: accept it, say why (``{"type": "error", "code"}``), close with ``code``."""
    await socket.accept()
    await socket.send_json({"type": "error", "code": reason})
    await socket.close(code=code, reason=reason)


async def socket_principal(socket: WebSocket, permission: str | None = None) -> Principal | None:
    """The tenant user or client a socket authenticated as (its bearer token), or None once
    the socket is refused: 4401 without a valid token, 4403 without a tenant or ``permission``."""
    principal = socket.scope.get("user")
    if not isinstance(principal, Principal):
        error = socket.scope.get("auth_error")
        await reject(socket, 4401, error.code if isinstance(error, Problem) else "unauthorized")
        return None
    if principal.tenant_id is None:
        await reject(socket, 4403, "tenant_required")
        return None
    if permission is not None and not principal.can(permission):
        await reject(socket, 4403, "permission_denied")
        return None
    return principal


@websocket("/ws/events")
async def events_socket(socket: WebSocket) -> None:
    runtime: Runtime = socket.app.state.runtime
    principal = await socket_principal(socket)
    if principal is None or principal.tenant_id is None:
        return
    tenant_id = principal.tenant_id
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        status = await session.scalar(select(Tenant.status).where(Tenant.id == tenant_id))
    if status != TenantStatus.ACTIVE:
        await reject(socket, 4403, f"tenant_{status or 'missing'}")
        return

    bus: EventBus = runtime.components["events"]
    await socket.accept()
    async with bus.subscribe(tenant_id=tenant_id) as subscription:
        await socket.send_json({"type": "ready"})
        receiver = asyncio.create_task(until_disconnect(socket))
        try:
            while True:
                next_event = asyncio.create_task(subscription.next())
                done, _ = await asyncio.wait({next_event, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    next_event.cancel()
                    return
                event = next_event.result()
                if event.tenant_id != tenant_id:
                    continue
                if principal.can(event.permission):
                    await socket.send_json(_frame(event))
                if event.event_type in ENDING_EVENTS:
                    await socket.close(code=4403, reason=ENDING_EVENTS[event.event_type])
                    return
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver


async def until_disconnect(socket: WebSocket) -> None:
    """Read (and ignore) client frames until the client goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")
