"""Request and response bodies of the identity API (msgspec; unknown fields rejected on input)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Locale = Annotated[str, msgspec.Meta(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]
RoleList = Annotated[list[Annotated[str, msgspec.Meta(max_length=32)]], msgspec.Meta(max_length=10)]
ScopeList = Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=32)]


class Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


class LoginRequest(Request):
    tenant: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
    email: Email
    password: Secret


class RefreshRequest(Request):
    refresh_token: Secret


class LogoutRequest(Request):
    refresh_token: Secret | None = None
    all_sessions: bool = False


class InvitationAcceptRequest(Request):
    token: Secret
    password: Secret


class UserOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    display_name: str
    roles: list[str]
    locale: str | None
    status: str
    created_at: datetime


class TenantOut(msgspec.Struct):
    id: uuid.UUID
    slug: str
    name: str
    locale: str


class LoginUser(msgspec.Struct):
    id: uuid.UUID
    email: str
    display_name: str
    roles: list[str]
    locale: str | None


class LoginResponse(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    user: LoginUser
    tenant: TenantOut


class MeResponse(msgspec.Struct):
    user: LoginUser
    tenant: TenantOut
    permissions: list[str]


class UserCreate(Request):
    email: Email
    display_name: Name
    roles: RoleList
    locale: Locale | None = None


class UserCreated(msgspec.Struct):
    user: UserOut
    # Shown once: the link the new user opens to choose a password.
    invitation_link: str | None


class UserPatch(Request):
    display_name: Name | None = None
    locale: Locale | None = None
    status: Annotated[str, msgspec.Meta(max_length=16)] | None = None


class RolesPut(Request):
    roles: RoleList


class UserPage(msgspec.Struct):
    items: list[UserOut]
    total: int
    limit: int
    offset: int


class IntegrationClientCreate(Request):
    name: Name
    scopes: ScopeList


class IntegrationClientOut(msgspec.Struct):
    client_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class IntegrationClientCreated(msgspec.Struct):
    client: IntegrationClientOut
    # Shown once; only its hash is kept.
    client_secret: str


class SsoPut(Request):
    issuer: Annotated[str, msgspec.Meta(min_length=8, max_length=500)]
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    client_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    enabled: bool = True
    auto_provision: bool = False


class SsoOut(msgspec.Struct):
    issuer: str
    client_id: str
    enabled: bool
    auto_provision: bool
    has_client_secret: bool
    redirect_uri: str
    login_url: str


class AuditEntryOut(msgspec.Struct):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, object]
    ip: str | None


class AuditPage(msgspec.Struct):
    items: list[AuditEntryOut]
    # Pass as ``before_id`` for the next (older) page; null on the last page.
    next_before_id: int | None
