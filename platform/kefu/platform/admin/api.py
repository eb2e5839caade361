"""Admin API for platform operators under ``/api/admin/v1`` (OAuth2 client-credentials tokens).

Only ``operator`` principals with the route's scope get in
(``platform:tenants.read|write|export``); tenant users and integrations get
403 ``operator_required``.  All work goes through
``runtime.db.platform_session(reason=...)``.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, patch, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream
from typing_extensions import Annotated

from kefu.platform.admin import services
from kefu.platform.admin.export import stream_export
from kefu.platform.admin.purge import purge_closed_tenants
from kefu.platform.admin.scheduler import RetentionScheduler
from kefu.platform.admin.schemas import (
    CreatedTenant,
    CreateTenant,
    PurgeScheduled,
    SuspendTenant,
    TenantPage,
    TenantView,
    UpdateTenant,
)
from kefu.platform.events import enqueue
from kefu.platform.deps import CurrentPrincipal, RuntimeDep
from kefu.platform.identity.principal import current_principal
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime

READ, WRITE, EXPORT = "platform:tenants.read", "platform:tenants.write", "platform:tenants.export"


def operator_scope(scope: str):  # type: ignore[no-untyped-def]
    """Guard: an operator principal holding ``scope``."""

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal.kind != "operator":
            raise Problem(403, "operator_required", "this API is for platform operators")
        if scope not in principal.scopes:
            raise Problem(403, "permission_denied", f"this action needs the scope {scope!r}", permission=scope)

    guard.__name__ = f"operator_scope_{scope}"
    guard.permission = scope  # type: ignore[attr-defined]
    return guard


class TenantAdminController(Controller):
    path = "/api/admin/v1/tenants"
    tags = ["admin: tenants"]

    @post("/", guards=[operator_scope(WRITE)], status_code=201, summary="Create a tenant and invite its first admin")
    async def create(self, data: JSONBody[CreateTenant], runtime: RuntimeDep, principal: CurrentPrincipal) -> CreatedTenant:
        billing = runtime.components.get("billing")  # kefu.billing's hooks: the plan must exist, the seat ledger opens
        async with runtime.db.platform_session(reason="operator creates a tenant") as session:
            created = await services.create_tenant(session, data=data, actor=principal.actor, settings=runtime.settings)
            if billing is not None:
                await billing.check_plan(session, created.tenant.plan)
                await billing.tenant_created(session, tenant_id=created.tenant.id, seats=data.seats, actor=principal.actor)
            return created

    @get("/", guards=[operator_scope(READ)], summary="List tenants (paged; filter by status and parent)")
    async def list_tenants(
        self,
        runtime: RuntimeDep,
        status: Annotated[str | None, QueryParameter()] = None,
        parent_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> TenantPage:
        async with runtime.db.platform_session(reason="operator lists tenants") as session:
            return await services.list_tenants(session, status=status, parent_id=parent_id, limit=limit, offset=offset)

    @get("/{target_tenant_id:uuid}", guards=[operator_scope(READ)], summary="Get a tenant")
    async def get_tenant(self, target_tenant_id: FromPath[uuid.UUID], runtime: RuntimeDep) -> TenantView:
        async with runtime.db.platform_session(reason="operator reads a tenant") as session:
            return await services.get_tenant(session, tenant_id=target_tenant_id)

    @patch("/{target_tenant_id:uuid}", guards=[operator_scope(WRITE)], summary="Update name, locale, time zone, plan or branding")
    async def update(self, target_tenant_id: FromPath[uuid.UUID], data: JSONBody[UpdateTenant], runtime: RuntimeDep, principal: CurrentPrincipal) -> TenantView:
        billing = runtime.components.get("billing")
        async with runtime.db.platform_session(reason="operator updates a tenant") as session:
            updated = await services.update_tenant(session, tenant_id=target_tenant_id, data=data, actor=principal.actor)
            if billing is not None and isinstance(data.plan, str):
                await billing.check_plan(session, updated.plan)
            return updated

    @post("/{target_tenant_id:uuid}/suspend", guards=[operator_scope(WRITE)], status_code=200, summary="Suspend a tenant")
    async def suspend(self, target_tenant_id: FromPath[uuid.UUID], runtime: RuntimeDep, principal: CurrentPrincipal, data: JSONBody[SuspendTenant | None] = None) -> TenantView:
        async with runtime.db.platform_session(reason="operator suspends a tenant") as session:
            return await services.suspend_tenant(
                session, tenant_id=target_tenant_id, actor=principal.actor, reason=data.reason if data else None,
                hooks=runtime.tenant_deactivation_hooks,
            )

    @post("/{target_tenant_id:uuid}/resume", guards=[operator_scope(WRITE)], status_code=200, summary="Resume a suspended tenant")
    async def resume(self, target_tenant_id: FromPath[uuid.UUID], runtime: RuntimeDep, principal: CurrentPrincipal) -> TenantView:
        async with runtime.db.platform_session(reason="operator resumes a tenant") as session:
            return await services.resume_tenant(session, tenant_id=target_tenant_id, actor=principal.actor)

    @post("/{target_tenant_id:uuid}/close", guards=[operator_scope(WRITE)], status_code=200, summary="Close a tenant (purged after retention)")
    async def close(self, target_tenant_id: FromPath[uuid.UUID], runtime: RuntimeDep, principal: CurrentPrincipal) -> TenantView:
        async with runtime.db.platform_session(reason="operator closes a tenant") as session:
            return await services.close_tenant(
                session, tenant_id=target_tenant_id, actor=principal.actor, retention_days=runtime.settings.tenant_retention_days,
                hooks=runtime.tenant_deactivation_hooks,
            )

    @get("/{target_tenant_id:uuid}/export", guards=[operator_scope(EXPORT)], summary="Export the tenant's whole data (streamed JSON)")
    async def export(self, target_tenant_id: FromPath[uuid.UUID], runtime: RuntimeDep, principal: CurrentPrincipal, request: Request) -> Stream:
        async with runtime.db.platform_session(reason="operator exports a tenant") as session:
            await services.get_tenant_row(session, tenant_id=target_tenant_id)
            await services.audit_admin_action(session, tenant_id=target_tenant_id, actor=principal.actor, action="tenant.exported")
        return Stream(
            stream_export(runtime.db, tenant_id=target_tenant_id, recordings_dir=runtime.settings.recordings_dir),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="kefu-tenant-{target_tenant_id}.json"'},
        )


class PurgeController(Controller):
    path = "/api/admin/v1/purges"
    tags = ["admin: tenants"]

    @post("/", guards=[operator_scope(WRITE)], status_code=202, summary="Purge closed tenants past retention now (a job)")
    async def schedule(self, runtime: RuntimeDep, principal: CurrentPrincipal) -> PurgeScheduled:
        async with runtime.db.platform_session(reason="operator schedules a purge") as session:
            key = await enqueue(session, purge_closed_tenants)
            from kefu.platform import audit

            await audit.record_platform(session, actor=principal.actor, action="tenant.purge_scheduled")
        return PurgeScheduled(job=purge_closed_tenants.name, key=key)


def install(runtime: Runtime) -> list[Any]:
    if "worker" in runtime.process_roles:
        runtime.add_service(RetentionScheduler(runtime, interval_s=runtime.settings.purge_interval_s))
    return [TenantAdminController, PurgeController]
