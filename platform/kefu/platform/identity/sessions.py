"""Sign-in sessions: password log-in with lock-out, refresh-token rotation,
log-out, invitation acceptance, and the token pair every successful sign-in
(password, invitation or SSO) ends with.

Log-in names the tenant by slug: the slug is resolved on the platform path
(``platform_session``), everything else runs in the tenant's own session.
Unknown tenant, unknown e-mail and wrong password answer the same 401
``invalid_credentials`` and cost the same argon2 verification.

Lock-out: ``settings.auth.login_max_failures`` consecutive failures for a user
lock the account for ``login_lockout_s`` (429 ``login_locked`` with
Retry-After); independently, a per-IP limiter caps failures from one address
(429 ``login_rate_limited``).  Failures are committed (and audited) before the
error is raised, so they are never rolled back with the request.

Refresh tokens are opaque (``<tenant hex>.<random>``), stored as SHA-256 and
rotated on every use.  A rotated token presented again means it leaked: the
whole family (every token descended from that log-in) is revoked.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.identity import services
from kefu.platform.identity.passwords import check_password_policy, hash_password, token_hash, verify_password
from kefu.platform.identity.principal import Principal
from kefu.platform.identity.ratelimit import LoginLimiter, MemoryLoginLimiter
from kefu.platform.models import Invitation, RefreshToken, Tenant, TenantStatus, User
from kefu.platform.problems import Problem

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _invalid_credentials() -> Problem:
    return Problem(401, "invalid_credentials", "the tenant, e-mail or password is not right")


def _locked(until: datetime, now: datetime) -> Problem:
    wait = max(1, int((until - now).total_seconds() + 0.999))
    return Problem(429, "login_locked", "this account is locked after too many failed log-ins; try again later", retry_after=wait)


def _not_locked(now: datetime):  # type: ignore[no-untyped-def]
    return or_(User.locked_until.is_(None), User.locked_until <= now)


def _invalid_refresh() -> Problem:
    return Problem(401, "invalid_refresh_token", "the refresh token is not valid; sign in again")


def tenant_status_problem(status: str) -> Problem:
    if status == TenantStatus.SUSPENDED:
        return Problem(403, "tenant_suspended", "this tenant is suspended")
    return Problem(403, "tenant_closed", "this tenant is closed")


@dataclass(frozen=True)
class TenantInfo:
    id: uuid.UUID
    slug: str
    name: str
    locale: str
    status: str


@dataclass(frozen=True)
class SignedIn:
    """What every successful sign-in returns."""

    access_token: str
    expires_in: int
    refresh_token: str
    user: services.UserView
    tenant: TenantInfo


@dataclass
class Authenticator:
    """The identity component (``runtime.components["identity"]``); its clock and
    limiter are injectable for tests."""

    runtime: "object"
    clock: Clock = utcnow
    ip_limiter: LoginLimiter = field(default_factory=MemoryLoginLimiter)

    @property
    def _settings(self):  # type: ignore[no-untyped-def]
        return self.runtime.settings  # type: ignore[attr-defined]

    @property
    def _db(self):  # type: ignore[no-untyped-def]
        return self.runtime.db  # type: ignore[attr-defined]

    # --- tenants ---------------------------------------------------------

    async def tenant_by_slug(self, slug: str, *, reason: str) -> TenantInfo | None:
        async with self._db.platform_session(reason=reason) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug.strip().lower()))
        if tenant is None:
            return None
        return TenantInfo(tenant.id, tenant.slug, tenant.name, tenant.locale, tenant.status)

    async def _tenant(self, session: AsyncSession, tenant_id: uuid.UUID) -> TenantInfo | None:
        tenant = await session.scalar(select(Tenant).where(Tenant.id == tenant_id))
        if tenant is None:
            return None
        return TenantInfo(tenant.id, tenant.slug, tenant.name, tenant.locale, tenant.status)

    # --- password log-in -------------------------------------------------

    async def login(self, *, tenant_slug: str, email: str, password: str, ip: str | None) -> SignedIn:
        now = self.clock()
        ip_key = ip or "unknown"
        wait = await self.ip_limiter.retry_after(ip_key, now=now.timestamp())
        if wait:
            raise Problem(429, "login_rate_limited", "too many failed log-ins from this address; try again later", retry_after=wait)
        tenant = await self.tenant_by_slug(tenant_slug, reason="log-in: resolve tenant slug")
        try:
            email = services.normalize_email(email)
        except Problem:
            email = ""
        if tenant is None or not email:
            await verify_password(None, password)
            await self.ip_limiter.failed(ip_key, now=now.timestamp())
            raise _invalid_credentials()

        # 1. Read the account in a short read-only transaction.
        async with self._db.tenant_session(tenant_id=tenant.id) as session:
            found = (
                await session.execute(
                    select(User.id, User.password_hash, User.status, User.locked_until)
                    .where(User.tenant_id == tenant.id, User.email == email)
                )
            ).first()
        user_id: uuid.UUID | None = found.id if found is not None else None
        if found is not None and found.locked_until is not None and found.locked_until > now:
            async with self._db.tenant_session(tenant_id=tenant.id) as session:
                await self._audit_locked(session, tenant.id, found.id, ip=ip, now=now)
            raise _locked(found.locked_until, now)

        # 2. argon2 outside any transaction: no row lock or SQLite write lock is
        #    held for the ~50 ms a verification takes.
        password_ok = await verify_password(found.password_hash if found is not None else None, password)

        # 3. Record the outcome.  Each branch writes first, so the count is
        #    atomic (a row lock on PostgreSQL, the write lock on SQLite).
        outcome: Problem | None = None
        signed_in: SignedIn | None = None
        async with self._db.tenant_session(tenant_id=tenant.id) as session:
            if user_id is None:
                await self.ip_limiter.failed(ip_key, now=now.timestamp())
                await audit.record(session, tenant_id=tenant.id, actor="anonymous", action="login.failed",
                                   detail={"method": "password", "reason": "unknown_email", "email": email}, ip=ip, at=now)
                outcome = _invalid_credentials()
            elif not password_ok:
                await self.ip_limiter.failed(ip_key, now=now.timestamp())
                outcome = await self._count_failure(session, tenant.id, user_id, ip=ip, now=now)
            elif found.status != "active":
                await audit.record(session, tenant_id=tenant.id, actor=f"user:{user_id}", action="login.failed",
                                   target=f"user:{user_id}", detail={"method": "password", "reason": f"user_{found.status}"}, ip=ip, at=now)
                outcome = Problem(403, "user_disabled", "this account is disabled") if found.status == "disabled" else _invalid_credentials()
            elif tenant.status != TenantStatus.ACTIVE:
                await audit.record(session, tenant_id=tenant.id, actor=f"user:{user_id}", action="login.failed",
                                   target=f"user:{user_id}", detail={"method": "password", "reason": f"tenant_{tenant.status}"}, ip=ip, at=now)
                outcome = tenant_status_problem(tenant.status)
            else:
                # Reset the count, unless a concurrent attempt locked the account
                # (or it was disabled) since step 1.
                reset = await session.execute(
                    update(User)
                    .where(User.tenant_id == tenant.id, User.id == user_id, User.status == "active", _not_locked(now))
                    .values(failed_logins=0, locked_until=None)
                    .returning(User.id)
                )
                if reset.first() is None:
                    outcome = await self._refused_after_race(session, tenant.id, user_id, ip=ip, now=now)
                else:
                    user = await services.get_user_in_tenant(session, tenant_id=tenant.id, user_id=user_id)
                    signed_in = await self.sign_in(session, tenant=tenant, user=user, method="password", ip=ip)
        if outcome is not None:
            raise outcome
        assert signed_in is not None
        return signed_in

    async def _audit_locked(self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, *, ip: str | None, now: datetime) -> None:
        await audit.record(session, tenant_id=tenant_id, actor=f"user:{user_id}", action="login.failed",
                           target=f"user:{user_id}", detail={"method": "password", "reason": "locked"}, ip=ip, at=now)

    async def _refused_after_race(self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, *, ip: str | None, now: datetime) -> Problem:
        """The account changed between reading it and recording the attempt."""
        row = (await session.execute(select(User.status, User.locked_until).where(User.tenant_id == tenant_id, User.id == user_id))).first()
        if row is not None and row.locked_until is not None and row.locked_until > now:
            await self._audit_locked(session, tenant_id, user_id, ip=ip, now=now)
            return _locked(row.locked_until, now)
        status = row.status if row is not None else "missing"
        await audit.record(session, tenant_id=tenant_id, actor=f"user:{user_id}", action="login.failed",
                           target=f"user:{user_id}", detail={"method": "password", "reason": f"user_{status}"}, ip=ip, at=now)
        return Problem(403, "user_disabled", "this account is disabled") if status == "disabled" else _invalid_credentials()

    async def _count_failure(self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, *, ip: str | None, now: datetime) -> Problem:
        """Count one wrong password atomically; the attempt that reaches the limit locks the account."""
        auth = self._settings.auth
        counted = await session.execute(
            update(User)
            .where(User.tenant_id == tenant_id, User.id == user_id, _not_locked(now))
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins)
        )
        consecutive = counted.scalar()
        if consecutive is None:  # a concurrent attempt locked the account meanwhile
            return await self._refused_after_race(session, tenant_id, user_id, ip=ip, now=now)
        await audit.record(session, tenant_id=tenant_id, actor=f"user:{user_id}", action="login.failed", target=f"user:{user_id}",
                           detail={"method": "password", "reason": "bad_password", "consecutive": consecutive}, ip=ip, at=now)
        if consecutive >= auth.login_max_failures:
            until = now + timedelta(seconds=auth.login_lockout_s)
            await session.execute(
                update(User).where(User.tenant_id == tenant_id, User.id == user_id).values(locked_until=until, failed_logins=0)
            )
            await audit.record(session, tenant_id=tenant_id, actor="system", action="user.locked", target=f"user:{user_id}",
                               detail={"until": until.isoformat()}, ip=ip, at=now)
        return _invalid_credentials()

    # --- tokens ------------------------------------------------------------

    async def sign_in(
        self, session: AsyncSession, *, tenant: TenantInfo, user: User, method: str, ip: str | None, family_id: uuid.UUID | None = None
    ) -> SignedIn:
        """Issue an access token and a new refresh token for ``user`` (audited as a log-in)."""
        now = self.clock()
        refresh = await self._new_refresh_token(session, tenant_id=tenant.id, user_id=user.id, family_id=family_id or uuid.uuid4(), now=now)
        if family_id is None:
            await audit.record(session, tenant_id=tenant.id, actor=f"user:{user.id}", action="login.succeeded",
                               target=f"user:{user.id}", detail={"method": method}, ip=ip, at=now)
        view = await services.get_user(session, tenant_id=tenant.id, user_id=user.id)
        principal = Principal.user(user_id=user.id, tenant_id=tenant.id, roles=frozenset(view.roles))
        access = self.runtime.tokens.issue(principal, now=now.timestamp())  # type: ignore[attr-defined]
        return SignedIn(access, self.runtime.tokens.ttl_s, refresh, view, tenant)  # type: ignore[attr-defined]

    async def _new_refresh_token(self, session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID, family_id: uuid.UUID, now: datetime) -> str:
        token = services.tenant_token(tenant_id)
        session.add(
            RefreshToken(
                tenant_id=tenant_id,
                user_id=user_id,
                token_hash=token_hash(token),
                family_id=family_id,
                created_at=now,
                expires_at=now + timedelta(seconds=self._settings.auth.refresh_token_ttl_s),
            )
        )
        await session.flush()
        return token

    async def refresh(self, *, refresh_token: str, ip: str | None) -> SignedIn:
        tenant_id = services.tenant_of_token(refresh_token)
        if tenant_id is None:
            raise _invalid_refresh()
        now = self.clock()
        outcome: Problem | None = None
        signed_in: SignedIn | None = None
        async with self._db.tenant_session(tenant_id=tenant_id) as session:
            row = await session.scalar(
                select(RefreshToken)
                .where(RefreshToken.tenant_id == tenant_id, RefreshToken.token_hash == token_hash(refresh_token))
                .with_for_update()
            )
            if row is None:
                outcome = _invalid_refresh()
            elif row.rotated_at is not None:
                revoked = await self._revoke_family(session, tenant_id=tenant_id, family_id=row.family_id, now=now)
                await audit.record(session, tenant_id=tenant_id, actor=f"user:{row.user_id}", action="refresh_token.reused",
                                   target=f"user:{row.user_id}", detail={"family_revoked": revoked}, ip=ip, at=now)
                outcome = _invalid_refresh()
            elif row.revoked_at is not None or row.expires_at <= now:
                outcome = _invalid_refresh()
            else:
                tenant = await self._tenant(session, tenant_id)
                user = await services.get_user_in_tenant(session, tenant_id=tenant_id, user_id=row.user_id)
                if tenant is None or user.status != "active":
                    outcome = _invalid_refresh()
                elif tenant.status != TenantStatus.ACTIVE:
                    outcome = tenant_status_problem(tenant.status)
                else:
                    row.revoked_at = now
                    row.rotated_at = now
                    signed_in = await self.sign_in(session, tenant=tenant, user=user, method="refresh", ip=ip, family_id=row.family_id)
        if outcome is not None:
            raise outcome
        assert signed_in is not None
        return signed_in

    async def _revoke_family(self, session: AsyncSession, *, tenant_id: uuid.UUID, family_id: uuid.UUID, now: datetime) -> int:
        result = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.tenant_id == tenant_id, RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount or 0  # type: ignore[attr-defined]

    async def logout(self, *, refresh_token: str | None, principal: Principal | None, all_sessions: bool, ip: str | None) -> int:
        """Revoke one sign-in (the refresh token's family) or, for a signed-in user, all of them."""
        now = self.clock()
        if all_sessions:
            if principal is None or principal.kind != "user" or principal.tenant_id is None:
                raise Problem(401, "unauthorized", "signing out everywhere needs a signed-in user")
            async with self._db.tenant_session(tenant_id=principal.tenant_id) as session:
                count = await services.revoke_user_sessions(session, tenant_id=principal.tenant_id, user_id=principal.user_id, clock=self.clock)
                await audit.record(session, tenant_id=principal.tenant_id, actor=principal.actor, action="logout",
                                   target=principal.actor, detail={"all_sessions": True, "revoked": count}, ip=ip, at=now)
            return count
        tenant_id = services.tenant_of_token(refresh_token or "")
        if tenant_id is None:
            raise _invalid_refresh()
        async with self._db.tenant_session(tenant_id=tenant_id) as session:
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.tenant_id == tenant_id, RefreshToken.token_hash == token_hash(refresh_token or ""))
            )
            if row is None or row.revoked_at is not None:
                count = -1
            else:
                count = await self._revoke_family(session, tenant_id=tenant_id, family_id=row.family_id, now=now)
                await audit.record(session, tenant_id=tenant_id, actor=f"user:{row.user_id}", action="logout",
                                   target=f"user:{row.user_id}", detail={"all_sessions": False, "revoked": count}, ip=ip, at=now)
        if count < 0:
            raise _invalid_refresh()
        return count

    # --- invitations ---------------------------------------------------------

    async def accept_invitation(self, *, token: str, password: str, ip: str | None) -> SignedIn:
        """Set the password of an invited account and sign it in.

        Unauthenticated, so the expensive part (argon2) runs only for a valid,
        unexpired invitation, and invalid tokens count against the caller's IP.
        """
        now = self.clock()
        ip_key = "invitation:" + (ip or "unknown")
        wait = await self.ip_limiter.retry_after(ip_key, now=now.timestamp())
        if wait:
            raise Problem(429, "invitation_rate_limited", "too many invalid invitation attempts from this address; try again later", retry_after=wait)
        invalid = Problem(400, "invalid_invitation", "this invitation link is not valid or has expired")
        tenant_id = services.tenant_of_token(token)
        if tenant_id is None:
            await self.ip_limiter.failed(ip_key, now=now.timestamp())
            raise invalid
        check_password_policy(password)
        # 1. Validate the token (read-only) before spending any argon2 work.
        async with self._db.tenant_session(tenant_id=tenant_id) as session:
            found = await session.scalar(
                select(Invitation.id).where(
                    Invitation.tenant_id == tenant_id, Invitation.token_hash == token_hash(token),
                    Invitation.accepted_at.is_(None), Invitation.expires_at > now,
                )
            )
        if found is None:
            await self.ip_limiter.failed(ip_key, now=now.timestamp())
            raise invalid
        # 2. Hash outside any transaction.
        password_hash = await hash_password(password)
        # 3. Accept, re-checking under the row lock (a concurrent accept may have won).
        outcome: Problem | None = None
        signed_in: SignedIn | None = None
        async with self._db.tenant_session(tenant_id=tenant_id) as session:
            invitation = await session.scalar(
                select(Invitation).where(Invitation.tenant_id == tenant_id, Invitation.token_hash == token_hash(token)).with_for_update()
            )
            tenant = await self._tenant(session, tenant_id)
            if invitation is None or invitation.accepted_at is not None or invitation.expires_at <= now or tenant is None:
                outcome = invalid
            else:
                user = await services.get_user_in_tenant(session, tenant_id=tenant_id, user_id=invitation.user_id)
                if user.status == "disabled":
                    outcome = invalid
                elif tenant.status != TenantStatus.ACTIVE:
                    outcome = tenant_status_problem(tenant.status)
                else:
                    invitation.accepted_at = now
                    user.password_hash = password_hash
                    user.status = "active"
                    await audit.record(session, tenant_id=tenant_id, actor=f"user:{user.id}", action="invitation.accepted",
                                       target=f"user:{user.id}", ip=ip, at=now)
                    signed_in = await self.sign_in(session, tenant=tenant, user=user, method="invitation", ip=ip)
        if outcome is not None:
            raise outcome
        assert signed_in is not None
        return signed_in
