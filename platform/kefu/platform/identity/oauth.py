"""OAuth2 client-credentials grant (RFC 6749 §4.4) at ``POST /oauth/token``.

Two kinds of clients, told apart by their id:

* ``op_…`` — platform operators (``platform_clients``): token kind
  ``operator``, no tenant, scopes ``platform:*``;
* ``int_…`` — a tenant's integrations (``integration_clients``): token kind
  ``integration``, the tenant in the token, scopes within INTEGRATION_SCOPES.

Client authentication by HTTP Basic (``client_secret_basic``) or form fields
(``client_secret_post``), never both.  Errors are RFC 6749 §5.2 JSON bodies,
not problem details, because OAuth2 client libraries parse that shape.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from authlib.oauth2.rfc6749.util import extract_basic_authorization, list_to_scope, scope_to_list
from sqlalchemy import select

from kefu.platform import audit
from kefu.platform.identity.passwords import same_hash
from kefu.platform.identity.principal import Principal
from kefu.platform.models import IntegrationClient, PlatformClient, Tenant, TenantStatus


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _invalid_client() -> OAuthError:
    return OAuthError(401, "invalid_client", "client authentication failed")


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


def client_credentials_from(headers: dict[str, str], form: dict[str, str]) -> ClientCredentials:
    """The client's id and secret from Basic auth or the form, per RFC 6749 §2.3.1."""
    authorization = headers.get("authorization", "")
    in_form = "client_id" in form or "client_secret" in form
    if authorization.lower().startswith("basic "):
        if in_form and "client_secret" in form:
            raise OAuthError(400, "invalid_request", "use one client authentication method, not two")
        client_id, secret = extract_basic_authorization({"Authorization": authorization})
        if not client_id or secret is None:
            raise _invalid_client()
        # extract_basic_authorization already form-urldecodes (RFC 6749 §2.3.1).
        return ClientCredentials(client_id, secret)
    if form.get("client_id") and form.get("client_secret"):
        return ClientCredentials(unquote(form["client_id"]), form["client_secret"])
    raise _invalid_client()


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str

    def body(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in, "scope": self.scope}


def _granted_scopes(requested: str | None, allowed: list[str]) -> list[str]:
    if requested is None or not requested.strip():
        return sorted(allowed)
    wanted = scope_to_list(requested) or []
    if any(s not in allowed for s in wanted):
        raise OAuthError(400, "invalid_scope", "the requested scope is not granted to this client")
    return sorted(set(wanted))


async def client_credentials_grant(runtime: Any, *, form: dict[str, str], headers: dict[str, str], ip: str | None) -> IssuedToken:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError(400, "invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", "only the client_credentials grant is supported here")
    creds = client_credentials_from(headers, form)
    if creds.client_id.startswith("op_"):
        return await _operator_token(runtime, creds, form.get("scope"))
    if creds.client_id.startswith("int_"):
        return await _integration_token(runtime, creds, form.get("scope"), ip)
    raise _invalid_client()


async def _operator_token(runtime: Any, creds: ClientCredentials, scope: str | None) -> IssuedToken:
    async with runtime.db.platform_session(reason="oauth: operator client credentials") as session:
        client = await session.scalar(select(PlatformClient).where(PlatformClient.client_id == creds.client_id))
        ok = client is not None and client.revoked_at is None and same_hash(client.secret_hash, creds.client_secret)
        if not ok:
            if client is not None:
                await audit.record_platform(session, actor=f"operator:{creds.client_id}", action="oauth.client_auth_failed", target=f"client:{creds.client_id}")
        else:
            assert client is not None
            granted = _granted_scopes(scope, scope_to_list(client.scopes) or [])
            await audit.record_platform(session, actor=f"operator:{client.client_id}", action="oauth.token_issued",
                                        target=f"client:{client.client_id}", detail={"scope": list_to_scope(granted)})
    if not ok:
        raise _invalid_client()
    principal = Principal("operator", creds.client_id, None, frozenset(), frozenset(granted))
    return IssuedToken(runtime.tokens.issue(principal), runtime.tokens.ttl_s, list_to_scope(granted))


async def _integration_token(runtime: Any, creds: ClientCredentials, scope: str | None, ip: str | None) -> IssuedToken:
    # The client id names no tenant: find it on the platform path, then work in its tenant.
    async with runtime.db.platform_session(reason="oauth: resolve integration client") as session:
        found = (
            await session.execute(
                select(IntegrationClient.tenant_id, Tenant.status)
                .join(Tenant, Tenant.id == IntegrationClient.tenant_id)
                .where(IntegrationClient.client_id == creds.client_id)
            )
        ).first()
    if found is None:
        raise _invalid_client()
    tenant_id: uuid.UUID = found[0]
    error: OAuthError | None = None
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        client = await session.scalar(
            select(IntegrationClient).where(IntegrationClient.tenant_id == tenant_id, IntegrationClient.client_id == creds.client_id)
        )
        actor = f"client:{creds.client_id}"
        if client is None or client.revoked_at is not None or not same_hash(client.secret_hash, creds.client_secret):
            await audit.record(session, tenant_id=tenant_id, actor=actor, action="oauth.client_auth_failed", target=actor, ip=ip)
            error = _invalid_client()
        elif found[1] != TenantStatus.ACTIVE:
            error = OAuthError(400, "unauthorized_client", f"the client's tenant is {found[1]}")
        else:
            try:
                granted = _granted_scopes(scope, scope_to_list(client.scopes) or [])
            except OAuthError as exc:
                error = exc
            else:
                await audit.record(session, tenant_id=tenant_id, actor=actor, action="oauth.token_issued", target=actor,
                                   detail={"scope": list_to_scope(granted)}, ip=ip)
    if error is not None:
        raise error
    principal = Principal("integration", creds.client_id, tenant_id, frozenset(), frozenset(granted))
    return IssuedToken(runtime.tokens.issue(principal), runtime.tokens.ttl_s, list_to_scope(granted))
