"""Who is calling: the authenticated principal attached to every request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from kefu.platform.identity.permissions import permissions_for
from kefu.platform.problems import Problem


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "integration" | "operator"
    subject: str  # user id, or client id
    tenant_id: uuid.UUID | None
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    token_id: str | None = None
    permissions: frozenset[str] = field(default=frozenset())

    @classmethod
    def user(cls, *, user_id: uuid.UUID, tenant_id: uuid.UUID, roles: frozenset[str], token_id: str | None = None) -> "Principal":
        return cls("user", str(user_id), tenant_id, roles, frozenset(), token_id, permissions_for(roles))

    @property
    def actor(self) -> str:
        """How this principal is named in the audit log."""
        prefix = {"user": "user", "integration": "client", "operator": "operator"}[self.kind]
        return f"{prefix}:{self.subject}"

    @property
    def user_id(self) -> uuid.UUID:
        if self.kind != "user":
            raise Problem(403, "user_required", "this action needs a signed-in user")
        return uuid.UUID(self.subject)

    def can(self, permission: str) -> bool:
        return permission in self.permissions or permission in self.scopes

    def require_tenant(self) -> uuid.UUID:
        if self.tenant_id is None:
            raise Problem(403, "tenant_required", "this action needs a tenant user or integration")
        return self.tenant_id


def current_principal(connection: ASGIConnection) -> Principal:
    """The request's principal, or the 401 problem explaining why there is none."""
    principal = connection.scope.get("user")
    if isinstance(principal, Principal):
        return principal
    error = connection.scope.get("auth_error")
    if isinstance(error, Problem):
        raise error
    raise Problem(401, "unauthorized", "authentication required")


def authenticated(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    """A guard for routes any signed-in principal may use."""
    current_principal(connection)


def requires(permission: str):  # type: ignore[no-untyped-def]
    """A Litestar guard: the principal must hold ``permission`` (role or scope)."""

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if not principal.can(permission):
            raise Problem(403, "permission_denied", f"this action needs the permission {permission!r}", permission=permission)

    guard.__name__ = f"requires_{permission}"
    guard.permission = permission  # type: ignore[attr-defined]
    return guard


def requires_any(*permissions: str):  # type: ignore[no-untyped-def]
    """A Litestar guard: the principal must hold at least one of ``permissions``."""

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if not any(principal.can(p) for p in permissions):
            raise Problem(403, "permission_denied", f"this action needs one of the permissions {', '.join(permissions)}", permissions=list(permissions))

    guard.__name__ = "requires_any_" + "_".join(permissions)
    return guard
