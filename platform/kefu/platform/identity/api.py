"""HTTP routes of identity: log-in, tokens, OAuth2 client credentials, users and
roles, invitations, integration clients, OIDC single sign-on and the audit log.

Handlers stay thin: they name their permission, parse a msgspec body and call
``services`` / ``sessions`` / ``oauth`` / ``sso``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post, put
from litestar.datastructures import Cookie
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect

from kefu.platform import audit
from kefu.platform.deps import CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.identity import oauth, schemas, services, sso
from kefu.platform.identity.principal import Principal, requires
from kefu.platform.identity.ratelimit import make_login_limiter
from kefu.platform.identity.sessions import Authenticator, SignedIn
from kefu.platform.models import Tenant
from kefu.platform.problems import Problem, problem_response
from kefu.platform.runtime import Runtime

PUBLIC: list[dict[str, list[str]]] = []  # OpenAPI: no bearer token needed


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _auth(runtime: Runtime) -> Authenticator:
    return runtime.components["identity"]


def _login_user(view: services.UserView) -> schemas.LoginUser:
    return schemas.LoginUser(view.id, view.email, view.display_name, list(view.roles), view.locale)


def _user_out(view: services.UserView) -> schemas.UserOut:
    return schemas.UserOut(view.id, view.email, view.display_name, list(view.roles), view.locale, view.status, view.created_at)


def _login_response(signed: SignedIn) -> schemas.LoginResponse:
    t = signed.tenant
    return schemas.LoginResponse(
        access_token=signed.access_token,
        token_type="Bearer",
        expires_in=signed.expires_in,
        refresh_token=signed.refresh_token,
        user=_login_user(signed.user),
        tenant=schemas.TenantOut(t.id, t.slug, t.name, t.locale),
    )


def _with_retry_after(request: Request, problem: Problem) -> Response[Any]:
    response = problem_response(problem.status, problem.code, problem.detail, request, **problem.extra)
    if "retry_after" in problem.extra:
        response.headers["Retry-After"] = str(problem.extra["retry_after"])
    return response


# --- sign-in -----------------------------------------------------------------


@post("/api/v1/auth/login", status_code=200, security=PUBLIC, tags=["auth"])
async def login(request: Request, runtime: RuntimeDep, data: JSONBody[schemas.LoginRequest]) -> Response[Any]:
    """Sign in with tenant slug, e-mail and password."""
    try:
        signed = await _auth(runtime).login(tenant_slug=data.tenant, email=data.email, password=data.password, ip=_ip(request))
    except Problem as problem:
        if problem.status == 429:
            return _with_retry_after(request, problem)
        raise
    return Response(_login_response(signed), headers={"Cache-Control": "no-store"})


@post("/api/v1/auth/refresh", status_code=200, security=PUBLIC, tags=["auth"])
async def refresh(request: Request, runtime: RuntimeDep, data: JSONBody[schemas.RefreshRequest]) -> Response[Any]:
    """Exchange a refresh token for a new access token and a new refresh token (rotation)."""
    signed = await _auth(runtime).refresh(refresh_token=data.refresh_token, ip=_ip(request))
    return Response(_login_response(signed), headers={"Cache-Control": "no-store"})


@post("/api/v1/auth/logout", status_code=204, security=PUBLIC, tags=["auth"])
async def logout(request: Request, runtime: RuntimeDep, data: JSONBody[schemas.LogoutRequest]) -> None:
    """Revoke this sign-in (by refresh token), or every sign-in of the user (``all_sessions``)."""
    principal = request.scope.get("user")
    await _auth(runtime).logout(
        refresh_token=data.refresh_token,
        principal=principal if isinstance(principal, Principal) else None,
        all_sessions=data.all_sessions,
        ip=_ip(request),
    )


@get("/api/v1/me", tags=["auth"])
async def me(principal: CurrentPrincipal, db: DbSession, tenant_id: TenantId) -> schemas.MeResponse:
    view = await services.get_user(db, tenant_id=tenant_id, user_id=principal.user_id)
    tenant = await db.get_one(Tenant, tenant_id)
    return schemas.MeResponse(
        user=_login_user(view),
        tenant=schemas.TenantOut(tenant.id, tenant.slug, tenant.name, tenant.locale),
        permissions=sorted(principal.permissions),
    )


@post("/api/v1/invitations/accept", status_code=200, security=PUBLIC, tags=["auth"])
async def accept_invitation(request: Request, runtime: RuntimeDep, data: JSONBody[schemas.InvitationAcceptRequest]) -> Response[Any]:
    """Choose a password for an invited account; signs the user in."""
    try:
        signed = await _auth(runtime).accept_invitation(token=data.token, password=data.password, ip=_ip(request))
    except Problem as problem:
        if problem.status == 429:
            return _with_retry_after(request, problem)
        raise
    return Response(_login_response(signed), headers={"Cache-Control": "no-store"})


# --- OAuth2 client credentials -------------------------------------------------


@post("/oauth/token", status_code=200, security=PUBLIC, tags=["oauth"])
async def oauth_token(request: Request, runtime: RuntimeDep) -> Response[Any]:
    """RFC 6749 §4.4 client credentials grant (form-encoded)."""
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type != "application/x-www-form-urlencoded":
            raise oauth.OAuthError(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        try:
            raw = await request.form()
        except Exception:
            raise oauth.OAuthError(400, "invalid_request", "the form body could not be read") from None
        form = {key: str(value) for key, value in raw.items()}
        issued = await oauth.client_credentials_grant(runtime, form=form, headers=dict(request.headers), ip=_ip(request))
    except oauth.OAuthError as error:
        headers = dict(no_store)
        if error.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="kefu"'
        return Response(error.body(), status_code=error.status, headers=headers)
    return Response(issued.body(), headers=no_store)


# --- users and roles -------------------------------------------------------------


@get("/api/v1/users", guards=[requires("directory.users.read")], tags=["users"])
async def list_users(
    db: DbSession,
    tenant_id: TenantId,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
) -> schemas.UserPage:
    users, total = await services.list_users(db, tenant_id=tenant_id, limit=limit, offset=offset)
    return schemas.UserPage([_user_out(u) for u in users], total, limit, offset)


@post("/api/v1/users", status_code=201, guards=[requires("directory.users.write")], tags=["users"])
async def create_user(
    request: Request, runtime: RuntimeDep, principal: CurrentPrincipal, db: DbSession, tenant_id: TenantId, data: JSONBody[schemas.UserCreate]
) -> schemas.UserCreated:
    """Invite a user: the answer carries the invitation link, shown once."""
    if any(r in ("tenant_admin",) for r in data.roles) and not principal.can("directory.roles.write"):
        raise Problem(403, "permission_denied", "granting tenant_admin needs 'directory.roles.write'", permission="directory.roles.write")
    created = await services.create_user(
        db, tenant_id=tenant_id, email=data.email, display_name=data.display_name, roles=data.roles, actor=principal.actor,
        locale=data.locale, ip=_ip(request), invitation_ttl_s=runtime.settings.auth.invitation_ttl_s,
    )
    view = await services.get_user(db, tenant_id=tenant_id, user_id=created.user_id)
    link = services.invitation_link(runtime.settings.public_url, created.invitation_token) if created.invitation_token else None
    return schemas.UserCreated(_user_out(view), link)


@get("/api/v1/users/{user_id:uuid}", guards=[requires("directory.users.read")], tags=["users"])
async def get_user(db: DbSession, tenant_id: TenantId, user_id: FromPath[uuid.UUID]) -> schemas.UserOut:
    return _user_out(await services.get_user(db, tenant_id=tenant_id, user_id=user_id))


@patch("/api/v1/users/{user_id:uuid}", guards=[requires("directory.users.write")], tags=["users"])
async def patch_user(
    request: Request, runtime: RuntimeDep, principal: CurrentPrincipal, db: DbSession, tenant_id: TenantId, user_id: FromPath[uuid.UUID],
    data: JSONBody[schemas.UserPatch],
) -> schemas.UserOut:
    if data.status == "disabled" and principal.kind == "user" and principal.subject == str(user_id):
        # Checked after the lookup so a foreign id still answers 404.
        await services.get_user(db, tenant_id=tenant_id, user_id=user_id)
        raise Problem(409, "cannot_disable_self", "you cannot disable your own account")
    if data.status == "active":
        # An agent's user enabled again takes a seat: the contact center checks the cap.
        before_enabled = runtime.components.get("before_user_enabled")
        if before_enabled is not None:
            await before_enabled(db, tenant_id, user_id)
    view = await services.update_user(
        db, tenant_id=tenant_id, user_id=user_id, actor=principal.actor, display_name=data.display_name,
        locale=data.locale, status=data.status, ip=_ip(request),
    )
    return _user_out(view)


@put("/api/v1/users/{user_id:uuid}/roles", guards=[requires("directory.roles.write")], tags=["users"])
async def put_roles(
    request: Request, principal: CurrentPrincipal, db: DbSession, tenant_id: TenantId, user_id: FromPath[uuid.UUID], data: JSONBody[schemas.RolesPut]
) -> schemas.UserOut:
    """Replace a user's roles (audited as ``user.roles_changed``)."""
    view = await services.set_roles(db, tenant_id=tenant_id, user_id=user_id, roles=data.roles, actor=principal.actor, ip=_ip(request))
    return _user_out(view)


# --- integration clients -------------------------------------------------------------


def _client_out(view: services.IntegrationClientView) -> schemas.IntegrationClientOut:
    return schemas.IntegrationClientOut(view.client_id, view.name, list(view.scopes), view.created_at, view.revoked_at)


@get("/api/v1/integration-clients", guards=[requires("identity.clients.write")], tags=["integration clients"])
async def list_integration_clients(db: DbSession, tenant_id: TenantId) -> list[schemas.IntegrationClientOut]:
    return [_client_out(c) for c in await services.list_integration_clients(db, tenant_id=tenant_id)]


@post("/api/v1/integration-clients", status_code=201, guards=[requires("identity.clients.write")], tags=["integration clients"])
async def create_integration_client(
    request: Request, principal: CurrentPrincipal, db: DbSession, tenant_id: TenantId, data: JSONBody[schemas.IntegrationClientCreate]
) -> schemas.IntegrationClientCreated:
    view, secret = await services.create_integration_client(
        db, tenant_id=tenant_id, name=data.name, scopes=data.scopes, actor=principal.actor, ip=_ip(request)
    )
    return schemas.IntegrationClientCreated(_client_out(view), secret)


@delete("/api/v1/integration-clients/{client_id:str}", status_code=204, guards=[requires("identity.clients.write")], tags=["integration clients"])
async def revoke_integration_client(request: Request, principal: CurrentPrincipal, db: DbSession, tenant_id: TenantId, client_id: FromPath[str]) -> None:
    await services.revoke_integration_client(db, tenant_id=tenant_id, client_id=client_id, actor=principal.actor, ip=_ip(request))


# --- single sign-on ------------------------------------------------------------------


def _sso(runtime: Runtime) -> sso.SingleSignOn:
    return runtime.components["identity.sso"]


async def _sso_out(runtime: Runtime, db: Any, tenant_id: uuid.UUID, view: sso.ProviderView) -> schemas.SsoOut:
    tenant = await db.get_one(Tenant, tenant_id)
    base = runtime.settings.public_url
    return schemas.SsoOut(view.issuer, view.client_id, view.enabled, view.auto_provision, view.has_secret,
                          redirect_uri=f"{base}/sso/callback", login_url=f"{base}/sso/{tenant.slug}/login")


@get("/api/v1/sso", guards=[requires("identity.sso.write")], tags=["sso"])
async def get_sso(runtime: RuntimeDep, db: DbSession, tenant_id: TenantId) -> schemas.SsoOut:
    return await _sso_out(runtime, db, tenant_id, await sso.get_provider(db, tenant_id=tenant_id))


@put("/api/v1/sso", guards=[requires("identity.sso.write")], tags=["sso"])
async def put_sso(
    request: Request, runtime: RuntimeDep, principal: CurrentPrincipal, db: DbSession, tenant_id: TenantId, data: JSONBody[schemas.SsoPut]
) -> schemas.SsoOut:
    """Configure the tenant's OIDC provider (discovered from its issuer URL)."""
    view = await sso.configure_provider(
        db, tenant_id=tenant_id, issuer=data.issuer, client_id=data.client_id, client_secret=data.client_secret,
        enabled=data.enabled, auto_provision=data.auto_provision, actor=principal.actor,
        discovery=_sso(runtime).discovery, ip=_ip(request),
    )
    return await _sso_out(runtime, db, tenant_id, view)


@get("/sso/{tenant_slug:str}/login", security=PUBLIC, tags=["sso"])
async def sso_login(runtime: RuntimeDep, tenant_slug: FromPath[str]) -> Redirect:
    started = await _sso(runtime).start(tenant_slug=tenant_slug)
    cookie = Cookie(
        key=sso.STATE_COOKIE, value=started.state_cookie, path="/sso/", max_age=sso.STATE_TTL_S, httponly=True,
        samesite="lax", secure=runtime.settings.public_url.startswith("https://"),
    )
    return Redirect(path=started.url, status_code=302, cookies=[cookie])


@get("/sso/callback", security=PUBLIC, tags=["sso"])
async def sso_callback(
    request: Request,
    runtime: RuntimeDep,
    code: Annotated[str | None, QueryParameter(max_length=2048)] = None,
    sso_state: Annotated[str | None, QueryParameter(name="state", max_length=512)] = None,
    error: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> Redirect:
    """Finish the provider's redirect; lands on the portal with tokens in the URL fragment."""
    signed = await _sso(runtime).finish(
        cookie=request.cookies.get(sso.STATE_COOKIE), state=sso_state, code=code, error=error, ip=_ip(request)
    )
    cleared = Cookie(key=sso.STATE_COOKIE, value="", path="/sso/", max_age=0, httponly=True, samesite="lax")
    return Redirect(path=sso.portal_redirect(signed), status_code=302, cookies=[cleared], headers={"Cache-Control": "no-store"})


# --- audit log -----------------------------------------------------------------------


@get("/api/v1/audit-log", guards=[requires("audit.read")], tags=["audit"])
async def audit_log(
    db: DbSession,
    tenant_id: TenantId,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, QueryParameter(ge=1)] = None,
    action: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> schemas.AuditPage:
    """The tenant's audit log, newest first; page with ``before_id``."""
    entries = await audit.list_entries(db, tenant_id=tenant_id, limit=limit, before_id=before_id, action=action)
    items = [schemas.AuditEntryOut(e.id, e.at, e.actor, e.action, e.target, e.detail, e.ip) for e in entries]
    return schemas.AuditPage(items, items[-1].id if len(items) == limit else None)


class _LimiterService:
    name = "identity login limiter"

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.authenticator.ip_limiter.close()


def install(runtime: Runtime) -> list[Any]:
    authenticator = Authenticator(runtime, ip_limiter=make_login_limiter(runtime.settings.redis_url))
    runtime.components["identity"] = authenticator
    runtime.components["identity.sso"] = sso.SingleSignOn(
        authenticator, sso.Discovery(production=runtime.settings.mode == "production")
    )
    runtime.add_service(_LimiterService(authenticator))
    return [
        login, refresh, logout, me, accept_invitation, oauth_token,
        list_users, create_user, get_user, patch_user, put_roles,
        list_integration_clients, create_integration_client, revoke_integration_client,
        get_sso, put_sso, sso_login, sso_callback, audit_log,
    ]
