"""Identity's service interface: users of a tenant, their roles and invitations,
and the OAuth2 clients of operators and tenant integrations.

Other contexts call these functions, never the identity tables.  Every
function touching tenant data takes ``tenant_id`` keyword-only and filters by
it; a foreign id answers exactly like a missing one (``not_found``).  The
caller owns the session (and so the transaction); audit entries are written
in that same transaction.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db import Database
from kefu.platform.db.base import utcnow
from kefu.platform.identity.passwords import hash_password, new_token, token_hash
from kefu.platform.identity.permissions import INTEGRATION_SCOPES, PLATFORM_SCOPES
from kefu.platform.models import IntegrationClient, Invitation, Membership, PlatformClient, RefreshToken, Role, User
from kefu.platform.problems import Problem, check_text, not_found

Clock = Callable[[], datetime]

DEFAULT_INVITATION_TTL_S = 7 * 24 * 3600
USER_STATUSES = ("invited", "active", "disabled")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class CreatedUser:
    user_id: uuid.UUID
    # The invitation secret (only for users created without a password); the
    # link is f"{settings.public_url}/invite#{token}" (see invitation_link).
    invitation_token: str | None


@dataclass(frozen=True)
class UserView:
    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    display_name: str
    locale: str | None
    status: str
    roles: tuple[str, ...]
    created_at: datetime


def invitation_link(public_url: str, token: str) -> str:
    """The link a new user opens; the secret rides in the fragment, never in server logs."""
    return f"{public_url.rstrip('/')}/invite#{token}"


def tenant_token(tenant_id: uuid.UUID) -> str:
    """An opaque secret that names its tenant (refresh tokens, invitations).

    The tenant prefix lets a public endpoint open the right tenant session
    (row-level security) without a platform-wide lookup; the secret part is
    256 random bits and only its SHA-256 is stored.
    """
    return f"{tenant_id.hex}.{new_token()}"


def tenant_of_token(token: str) -> uuid.UUID | None:
    prefix, dot, secret = token.partition(".")
    if not dot or not secret or len(token) > 200:
        return None
    try:
        return uuid.UUID(hex=prefix)
    except ValueError:
        return None


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise Problem(400, "invalid_email", "this is not a valid e-mail address")
    return value


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(sorted(set(roles)))
    valid = {r.value for r in Role if r is not Role.PLATFORM_ADMIN}
    unknown = [r for r in wanted if r not in valid]
    if unknown:
        raise Problem(400, "unknown_role", f"unknown role(s): {', '.join(unknown)}", roles=unknown)
    return wanted



# --- users -----------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    email: str,
    display_name: str,
    roles: Iterable[str],
    actor: str,
    password: str | None = None,
    locale: str | None = None,
    ip: str | None = None,
    invitation_ttl_s: int = DEFAULT_INVITATION_TTL_S,
    sso_subject: str | None = None,
    clock: Clock = utcnow,
) -> CreatedUser:
    """Create a user in the tenant; without a password (or SSO subject) the user is invited."""
    email = normalize_email(email)
    display_name = check_text(display_name, code="invalid_display_name", what="the display name")
    role_names = check_roles(roles)
    password_hash = await hash_password(password) if password is not None else None
    existing = await session.scalar(select(User.id).where(User.tenant_id == tenant_id, User.email == email))
    if existing is not None:
        raise Problem(409, "email_taken", "a user with this e-mail already exists in this tenant")
    now = clock()
    user = User(
        tenant_id=tenant_id,
        email=email,
        display_name=display_name,
        locale=locale,
        password_hash=password_hash,
        oidc_subject=sso_subject,
        status="active" if password is not None or sso_subject is not None else "invited",
        failed_logins=0,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise Problem(409, "email_taken", "a user with this e-mail already exists in this tenant") from None
    for role in role_names:
        session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=role, created_at=now))
    token: str | None = None
    if password is None and sso_subject is None:
        token = tenant_token(tenant_id)
        session.add(
            Invitation(
                tenant_id=tenant_id,
                user_id=user.id,
                token_hash=token_hash(token),
                expires_at=now + timedelta(seconds=invitation_ttl_s),
                created_at=now,
            )
        )
    await audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="user.created",
        target=f"user:{user.id}",
        detail={"email": email, "roles": list(role_names), "invited": token is not None},
        ip=ip,
        at=now,
    )
    return CreatedUser(user_id=user.id, invitation_token=token)


async def _roles_of(session: AsyncSession, *, tenant_id: uuid.UUID, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, ...]]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(Membership.user_id, Membership.role).where(Membership.tenant_id == tenant_id, Membership.user_id.in_(user_ids))
    )
    found: dict[uuid.UUID, list[str]] = {u: [] for u in user_ids}
    for user_id, role in rows:
        found[user_id].append(role)
    return {u: tuple(sorted(r)) for u, r in found.items()}


def _view(user: User, roles: tuple[str, ...]) -> UserView:
    return UserView(user.id, user.tenant_id, user.email, user.display_name, user.locale, user.status, roles, user.created_at)


async def get_user_in_tenant(session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user = await session.scalar(select(User).where(User.tenant_id == tenant_id, User.id == user_id))
    if user is None:
        raise not_found("user")
    return user


async def get_user(session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> UserView:
    user = await get_user_in_tenant(session, tenant_id=tenant_id, user_id=user_id)
    roles = await _roles_of(session, tenant_id=tenant_id, user_ids=[user.id])
    return _view(user, roles[user.id])


async def list_users(
    session: AsyncSession, *, tenant_id: uuid.UUID, limit: int = 50, offset: int = 0
) -> tuple[list[UserView], int]:
    """One page of the tenant's users (by e-mail) and the total count."""
    total = await session.scalar(select(func.count()).select_from(User).where(User.tenant_id == tenant_id)) or 0
    users = (
        await session.scalars(
            select(User).where(User.tenant_id == tenant_id).order_by(User.email, User.id).limit(limit).offset(offset)
        )
    ).all()
    roles = await _roles_of(session, tenant_id=tenant_id, user_ids=[u.id for u in users])
    return [_view(u, roles[u.id]) for u in users], total


async def update_user(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    actor: str,
    display_name: str | None = None,
    locale: str | None = None,
    status: str | None = None,
    ip: str | None = None,
    clock: Clock = utcnow,
) -> UserView:
    """Change a user's name, locale or status (``active``/``disabled``)."""
    user = await get_user_in_tenant(session, tenant_id=tenant_id, user_id=user_id)
    changes: dict[str, object] = {}
    if display_name is not None and display_name != user.display_name:
        user.display_name = check_text(display_name, code="invalid_display_name", what="the display name")
        changes["display_name"] = user.display_name
    if locale is not None and locale != user.locale:
        user.locale = locale
        changes["locale"] = locale
    if status is not None and status != user.status:
        if status not in ("active", "disabled"):
            raise Problem(400, "invalid_status", "status must be 'active' or 'disabled'")
        if status == "active" and user.password_hash is None and user.oidc_subject is None:
            raise Problem(409, "invitation_pending", "this user has not accepted the invitation yet")
        user.status = status
        changes["status"] = status
        if status == "disabled":
            # A disabled user's sessions end now, not when their refresh token expires.
            await revoke_user_sessions(session, tenant_id=tenant_id, user_id=user.id, clock=clock)
    if changes:
        action = {"disabled": "user.disabled", "active": "user.enabled"}.get(str(changes.get("status")), "user.updated")
        await audit.record(
            session, tenant_id=tenant_id, actor=actor, action=action, target=f"user:{user.id}", detail=changes, ip=ip, at=clock()
        )
    return await get_user(session, tenant_id=tenant_id, user_id=user.id)


async def set_roles(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    roles: Iterable[str],
    actor: str,
    ip: str | None = None,
    clock: Clock = utcnow,
) -> UserView:
    """Replace the user's roles (a permission change: always audited)."""
    user = await get_user_in_tenant(session, tenant_id=tenant_id, user_id=user_id)
    wanted = check_roles(roles)
    before = (await _roles_of(session, tenant_id=tenant_id, user_ids=[user.id]))[user.id]
    if before != wanted:
        await session.execute(
            delete(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user.id, Membership.role.not_in(wanted))
        )
        now = clock()
        for role in set(wanted) - set(before):
            session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=role, created_at=now))
        await session.flush()
        await audit.record(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="user.roles_changed",
            target=f"user:{user.id}",
            detail={"before": list(before), "after": list(wanted)},
            ip=ip,
            at=now,
        )
    return await get_user(session, tenant_id=tenant_id, user_id=user.id)


async def revoke_user_sessions(session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID, clock: Clock = utcnow) -> int:
    """Revoke every live refresh token of the user; returns how many."""
    tokens = (
        await session.scalars(
            select(RefreshToken).where(
                RefreshToken.tenant_id == tenant_id, RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
            )
        )
    ).all()
    now = clock()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


# --- OAuth2 clients --------------------------------------------------------


def _check_scopes(scopes: Iterable[str], allowed: frozenset[str]) -> tuple[str, ...]:
    wanted = tuple(sorted(set(scopes)))
    unknown = [s for s in wanted if s not in allowed]
    if unknown:
        raise Problem(400, "unknown_scope", f"unknown or not allowed scope(s): {', '.join(unknown)}", scopes=unknown)
    if not wanted:
        raise Problem(400, "unknown_scope", "a client needs at least one scope")
    return wanted



async def create_platform_client(db: Database, *, name: str, scopes: list[str], actor: str) -> tuple[str, str]:
    """Create an operator client (client credentials); returns (client_id, secret).

    The secret is shown once; only its hash is kept.
    """
    name = check_text(name, code="invalid_name", what="the client name")
    wanted = _check_scopes(scopes, PLATFORM_SCOPES)
    client_id = "op_" + secrets.token_hex(12)
    secret = new_token()
    async with db.platform_session(reason="create platform client") as session:
        session.add(PlatformClient(client_id=client_id, secret_hash=token_hash(secret), name=name, scopes=" ".join(wanted)))
        await audit.record_platform(
            session, actor=actor, action="platform_client.created", target=f"client:{client_id}", detail={"name": name, "scopes": list(wanted)}
        )
    return client_id, secret


@dataclass(frozen=True)
class IntegrationClientView:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


async def create_integration_client(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, scopes: Iterable[str], actor: str, ip: str | None = None
) -> tuple[IntegrationClientView, str]:
    """Create a tenant integration client; returns its view and the secret (shown once)."""
    name = check_text(name, code="invalid_name", what="the client name")
    wanted = _check_scopes(scopes, INTEGRATION_SCOPES)
    client = IntegrationClient(
        tenant_id=tenant_id, client_id="int_" + secrets.token_hex(12), secret_hash="", name=name, scopes=" ".join(wanted), created_at=utcnow()
    )
    secret = new_token()
    client.secret_hash = token_hash(secret)
    session.add(client)
    await session.flush()
    await audit.record(
        session, tenant_id=tenant_id, actor=actor, action="integration_client.created", target=f"client:{client.client_id}",
        detail={"name": name, "scopes": list(wanted)}, ip=ip,
    )
    return _client_view(client), secret


def _client_view(client: IntegrationClient) -> IntegrationClientView:
    return IntegrationClientView(client.client_id, client.name, tuple(client.scopes.split()), client.created_at, client.revoked_at)


async def list_integration_clients(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[IntegrationClientView]:
    rows = await session.scalars(
        select(IntegrationClient).where(IntegrationClient.tenant_id == tenant_id).order_by(IntegrationClient.created_at, IntegrationClient.client_id)
    )
    return [_client_view(c) for c in rows]


async def revoke_integration_client(
    session: AsyncSession, *, tenant_id: uuid.UUID, client_id: str, actor: str, ip: str | None = None
) -> None:
    client = await session.scalar(
        select(IntegrationClient).where(IntegrationClient.tenant_id == tenant_id, IntegrationClient.client_id == client_id)
    )
    if client is None or client.revoked_at is not None:
        raise not_found("integration client")
    client.revoked_at = utcnow()
    await audit.record(
        session, tenant_id=tenant_id, actor=actor, action="integration_client.revoked", target=f"client:{client_id}", ip=ip
    )
