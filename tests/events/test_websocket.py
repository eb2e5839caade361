"""/ws/events streams the caller's tenant's events, filtered by permission; never another tenant's."""

from __future__ import annotations

import json
import uuid

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from kefu.platform.app import create_app
from kefu.platform.events import TenantSuspended, emit
from kefu.platform.identity.principal import Principal
from kefu.platform.models import Tenant
from kefu.platform.runtime import Runtime
from tests.events.sample_events import SecretAudited, WidgetPinged
from tests.events.server import serving


async def new_tenant(runtime: Runtime) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with runtime.db.platform_session(reason="test set-up") as session:
        session.add(Tenant(id=tenant_id, slug=f"t-{tenant_id.hex[:10]}", name="Test", branding={}))
    return tenant_id


def token(runtime: Runtime, tenant_id: uuid.UUID | None, *roles: str, kind: str = "user") -> str:
    if kind == "operator":
        return runtime.tokens.issue(Principal(kind="operator", subject="test-op", tenant_id=None, scopes=frozenset({"platform:tenants.read"})))
    return runtime.tokens.issue(Principal.user(user_id=uuid.uuid4(), tenant_id=tenant_id, roles=frozenset(roles)))


async def connect(base: str, access_token: str):  # type: ignore[no-untyped-def]
    socket = await websockets.connect(f"ws://{base}/ws/events?access_token={access_token}")
    assert json.loads(await socket.recv()) == {"type": "ready"}
    return socket


async def emit_now(runtime: Runtime, event) -> uuid.UUID:  # type: ignore[no-untyped-def]
    async with runtime.db.tenant_session(tenant_id=event.tenant_id) as session:
        return await emit(session, event)


async def next_event(socket) -> dict:  # type: ignore[no-untyped-def]
    frame = json.loads(await socket.recv())
    assert frame["type"] == "event"
    return frame["event"]


async def test_tenant_a_socket_never_sees_tenant_b_events(runtime: Runtime) -> None:
    async with serving(create_app(runtime=runtime)) as base:
        acme = await new_tenant(runtime)
        globex = await new_tenant(runtime)
        async with await connect(base, token(runtime, acme, "tenant_admin")) as acme_socket, await connect(
            base, token(runtime, globex, "tenant_admin")
        ) as globex_socket:
            globex_event = await emit_now(runtime, WidgetPinged(tenant_id=globex, widget_id=uuid.uuid4(), note="globex"))
            acme_event = await emit_now(runtime, WidgetPinged(tenant_id=acme, widget_id=uuid.uuid4(), note="acme"))
            received = await next_event(acme_socket)
            assert received["event_id"] == str(acme_event)
            assert received["tenant_id"] == str(acme)
            assert received["event_type"] == "test.widget_pinged"
            assert received["routing_key"] == f"tenant.{acme}.test.widget_pinged"
            assert received["data"]["note"] == "acme"
            assert (await next_event(globex_socket))["event_id"] == str(globex_event)


async def test_events_are_filtered_by_the_permission_they_require(runtime: Runtime) -> None:
    async with serving(create_app(runtime=runtime)) as base:
        acme = await new_tenant(runtime)
        async with await connect(base, token(runtime, acme, "supervisor")) as supervisor:
            await emit_now(runtime, SecretAudited(tenant_id=acme))  # needs audit.read: supervisors lack it
            pinged = await emit_now(runtime, WidgetPinged(tenant_id=acme, widget_id=uuid.uuid4()))  # calls.read
            assert (await next_event(supervisor))["event_id"] == str(pinged)


async def test_suspension_event_closes_every_socket_of_the_tenant(runtime: Runtime) -> None:
    async with serving(create_app(runtime=runtime)) as base:
        acme = await new_tenant(runtime)
        async with await connect(base, token(runtime, acme, "tenant_admin")) as admin, await connect(
            base, token(runtime, acme, "agent")
        ) as agent:
            await emit_now(runtime, TenantSuspended(tenant_id=acme, reason="unpaid"))
            assert (await next_event(admin))["event_type"] == "tenant.suspended"
            for socket in (admin, agent):
                with pytest.raises(ConnectionClosed) as closed:
                    await socket.recv()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "tenant_suspended")


@pytest.mark.parametrize(
    ("who", "code", "reason"),
    [("nobody", 4401, "unauthorized"), ("bad", 4401, "invalid_token"), ("operator", 4403, "tenant_required")],
)
async def test_socket_without_a_tenant_token_is_refused(runtime: Runtime, who: str, code: int, reason: str) -> None:
    async with serving(create_app(runtime=runtime)) as base:
        query = {"nobody": "", "bad": "?access_token=not-a-jwt", "operator": f"?access_token={token(runtime, None, kind='operator')}"}[who]
        async with websockets.connect(f"ws://{base}/ws/events{query}") as socket:
            assert json.loads(await socket.recv()) == {"type": "error", "code": reason}
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, reason)
