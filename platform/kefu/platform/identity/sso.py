"""Per-tenant OpenID Connect single sign-on: authorization code flow with PKCE (S256).

* A tenant admin configures the provider by issuer URL; its endpoints come from
  ``<issuer>/.well-known/openid-configuration`` (cached for a few minutes).
* ``GET /sso/<slug>/login`` sends the browser to the provider.  The state,
  nonce and PKCE code verifier ride in a short-lived (10 min), HttpOnly,
  signed cookie scoped to ``/sso/`` — stateless, so any API replica can
  finish the flow.  The callback compares the returned ``state`` with the
  cookie's and clears the cookie.
* ``GET /sso/callback`` exchanges the code (with the code verifier), verifies
  the id_token against the provider's JWKS with joserfc (signature, ``iss``,
  ``aud``, ``exp``, ``nonce``), finds the user by subject or e-mail within that
  tenant (or provisions an agent when ``auto_provision`` is on), and ends like
  any other sign-in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import logging
import warnings

import httpx

with warnings.catch_warnings():
    # Authlib 1.9 nags about its httpx (vs httpx2) integration on import; it works with httpx.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.identity import services
from kefu.platform.identity.models import OidcProvider
from kefu.platform.identity.sessions import Authenticator, SignedIn, tenant_status_problem
from kefu.platform.models import TenantStatus, User
from kefu.platform.problems import Problem, not_found

log = logging.getLogger(__name__)

STATE_COOKIE = "kefu_sso"
STATE_AUDIENCE = "kefu-sso-state"
STATE_TTL_S = 600
DISCOVERY_TTL_S = 300
JWKS_TTL_S = 300
SCOPES = "openid email profile"


@dataclass(frozen=True)
class ProviderView:
    issuer: str
    client_id: str
    enabled: bool
    auto_provision: bool
    has_secret: bool


def _view(p: OidcProvider) -> ProviderView:
    return ProviderView(p.issuer, p.client_id, p.enabled, p.auto_provision, bool(p.client_secret))


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved
        or ip.is_multicast or ip.is_unspecified or not ip.is_global
    )


class Discovery:
    """Provider metadata (cached DISCOVERY_TTL_S) and JWKS (cached JWKS_TTL_S) by URL.

    In production (``production=True``) every URL the server itself fetches —
    the issuer's discovery document, ``jwks_uri`` and ``token_endpoint`` —
    must be https and resolve only to public addresses (no loopback, private,
    link-local or otherwise reserved ranges), so a tenant admin cannot point
    Kefu at internal services.  Error details never carry exception text.
    """

    def __init__(self, *, timeout_s: float = 10.0, production: bool = False, resolver: Resolver | None = None) -> None:
        self.timeout_s = timeout_s
        self.production = production
        self._resolver = resolver or _resolve
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jwks: dict[str, tuple[float, KeySet]] = {}

    async def check_url(self, url: str, *, what: str) -> None:
        """Refuse a URL the server must not fetch (production only)."""
        if not self.production:
            return
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise Problem(400, "invalid_issuer", f"in production the provider's {what} must be an https URL")
        try:
            addresses = await self._resolver(parts.hostname, parts.port or 443)
        except (OSError, UnicodeError):
            raise Problem(502, "sso_provider_unreachable", f"the provider's {what} host does not resolve") from None
        try:
            forbidden = not addresses or any(_forbidden_address(a) for a in addresses)
        except ValueError:
            forbidden = True
        if forbidden:
            raise Problem(400, "sso_address_forbidden", f"the provider's {what} resolves to a non-public address")

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as http:
                response = await http.get(url)
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError):
            raise Problem(502, "sso_provider_unreachable", "the identity provider did not answer properly") from None
        if not isinstance(data, dict):
            raise Problem(502, "sso_provider_unreachable", "the identity provider answered something unexpected")
        return data

    async def metadata(self, issuer: str) -> dict[str, Any]:
        cached = self._cache.get(issuer)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        await self.check_url(issuer, what="issuer")
        meta = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if any(not isinstance(meta.get(k), str) for k in needed):
            raise Problem(502, "sso_provider_unreachable", "the provider's discovery document lacks required endpoints")
        if meta["issuer"].rstrip("/") != issuer.rstrip("/"):
            raise Problem(400, "sso_issuer_mismatch", "the provider's discovery document names another issuer")
        await self.check_url(meta["jwks_uri"], what="jwks_uri")
        await self.check_url(meta["token_endpoint"], what="token_endpoint")
        self._cache[issuer] = (time.monotonic() + DISCOVERY_TTL_S, meta)
        return meta

    async def jwks(self, meta: dict[str, Any], *, fresh: bool = False) -> KeySet:
        """The provider's key set, cached JWKS_TTL_S (``fresh``: fetch again, e.g. after a key rotation)."""
        uri = meta["jwks_uri"]
        cached = self._jwks.get(uri)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1]
        try:
            keys = KeySet.import_key_set(await self._get_json(uri))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise Problem(502, "sso_provider_unreachable", "the provider's key set is not valid") from None
        self._jwks[uri] = (time.monotonic() + JWKS_TTL_S, keys)
        return keys


def _check_issuer(issuer: str) -> str:
    value = issuer.strip().rstrip("/")
    if not value.startswith(("https://", "http://")) or len(value) > 500:
        raise Problem(400, "invalid_issuer", "the issuer must be an http(s) URL")
    return value


async def get_provider(session: AsyncSession, *, tenant_id: uuid.UUID) -> ProviderView:
    provider = await session.scalar(select(OidcProvider).where(OidcProvider.tenant_id == tenant_id))
    if provider is None:
        raise not_found("SSO configuration")
    return _view(provider)


async def configure_provider(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    enabled: bool,
    auto_provision: bool,
    actor: str,
    discovery: Discovery,
    ip: str | None = None,
) -> ProviderView:
    """Create or replace the tenant's provider; the issuer must answer discovery."""
    issuer = _check_issuer(issuer)
    if not client_id.strip() or len(client_id) > 255:
        raise Problem(400, "invalid_client_id", "the client id must have 1 to 255 characters")
    await discovery.metadata(issuer)
    provider = await session.scalar(select(OidcProvider).where(OidcProvider.tenant_id == tenant_id))
    if provider is None:
        if not client_secret:
            raise Problem(400, "client_secret_required", "a new SSO configuration needs the client secret")
        provider = OidcProvider(tenant_id=tenant_id, issuer=issuer, client_id=client_id, client_secret=client_secret)
        session.add(provider)
    provider.issuer = issuer
    provider.client_id = client_id.strip()
    if client_secret:
        provider.client_secret = client_secret
    provider.enabled = enabled
    provider.auto_provision = auto_provision
    await session.flush()
    await audit.record(
        session, tenant_id=tenant_id, actor=actor, action="sso.configured", target="sso",
        detail={"issuer": issuer, "client_id": provider.client_id, "enabled": enabled, "auto_provision": auto_provision,
                "secret_changed": bool(client_secret)},
        ip=ip,
    )
    return _view(provider)


@dataclass(frozen=True)
class LoginRedirect:
    url: str
    state_cookie: str


class SingleSignOn:
    def __init__(self, authenticator: Authenticator, discovery: Discovery | None = None) -> None:
        self.auth = authenticator
        self.discovery = discovery or Discovery()

    @property
    def runtime(self) -> Any:
        return self.auth.runtime

    @property
    def redirect_uri(self) -> str:
        return f"{self.runtime.settings.public_url}/sso/callback"

    async def _provider(self, tenant_id: uuid.UUID) -> OidcProvider:
        async with self.runtime.db.tenant_session(tenant_id=tenant_id) as session:
            provider = await session.scalar(select(OidcProvider).where(OidcProvider.tenant_id == tenant_id))
        if provider is None or not provider.enabled:
            raise Problem(404, "sso_not_configured", "single sign-on is not set up for this tenant")
        return provider

    async def start(self, *, tenant_slug: str) -> LoginRedirect:
        tenant = await self.auth.tenant_by_slug(tenant_slug, reason="sso: resolve tenant slug")
        if tenant is None:
            raise Problem(404, "sso_not_configured", "single sign-on is not set up for this tenant")
        if tenant.status != TenantStatus.ACTIVE:
            raise tenant_status_problem(tenant.status)
        provider = await self._provider(tenant.id)
        meta = await self.discovery.metadata(provider.issuer)
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        client = AsyncOAuth2Client(provider.client_id, provider.client_secret, scope=SCOPES,
                                   redirect_uri=self.redirect_uri, code_challenge_method="S256")
        url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier)
        now = int(self.auth.clock().timestamp())
        cookie = self.runtime.tokens.sign_claims(
            {"aud": STATE_AUDIENCE, "tid": str(tenant.id), "state": state, "nonce": nonce, "cv": verifier, "iat": now, "exp": now + STATE_TTL_S}
        )
        return LoginRedirect(url, cookie)

    def _read_state(self, cookie: str | None, state: str | None) -> dict[str, Any]:
        mismatch = Problem(400, "sso_state_mismatch", "the sign-in attempt expired or was not started here; start again")
        if not cookie or not state:
            raise mismatch
        try:
            claims = self.runtime.tokens.verify_claims(cookie, audience=STATE_AUDIENCE, now=int(self.auth.clock().timestamp()))
        except Problem:
            raise mismatch from None
        if not secrets.compare_digest(str(claims.get("state", "")), state):
            raise mismatch
        return claims

    async def finish(self, *, cookie: str | None, state: str | None, code: str | None, error: str | None, ip: str | None) -> SignedIn:
        claims = self._read_state(cookie, state)
        if error or not code:
            raise Problem(400, "sso_denied", "the identity provider did not sign you in")
        tenant_id = uuid.UUID(claims["tid"])
        provider = await self._provider(tenant_id)
        meta = await self.discovery.metadata(provider.issuer)
        try:
            async with AsyncOAuth2Client(provider.client_id, provider.client_secret, redirect_uri=self.redirect_uri, timeout=10) as client:
                token = await client.fetch_token(meta["token_endpoint"], code=code, code_verifier=claims["cv"], grant_type="authorization_code")
        except Exception:  # the provider refused the code or is unreachable; its text stays out of the answer
            log.info("sso: token exchange with %s failed", provider.issuer, exc_info=True)
            raise Problem(502, "sso_token_exchange_failed", "the identity provider refused the sign-in") from None
        id_claims = await self._verify_id_token(token.get("id_token"), provider, meta, nonce=claims["nonce"])
        return await self._sign_in(tenant_id, provider, id_claims, ip=ip)

    async def _verify_id_token(self, id_token: Any, provider: OidcProvider, meta: dict[str, Any], *, nonce: str) -> dict[str, Any]:
        invalid = Problem(401, "sso_invalid_id_token", "the identity provider's id_token did not verify")
        if not isinstance(id_token, str):
            raise invalid
        algorithms = [a for a in (meta.get("id_token_signing_alg_values_supported") or ["RS256"]) if a != "none"]
        try:
            try:
                decoded = jwt.decode(id_token, await self.discovery.jwks(meta), algorithms=algorithms)
            except JoseError:
                # Perhaps the provider rotated its keys since we cached them: fetch once more.
                decoded = jwt.decode(id_token, await self.discovery.jwks(meta, fresh=True), algorithms=algorithms)
            JWTClaimsRegistry(
                now=int(self.auth.clock().timestamp()),
                leeway=60,
                iss={"essential": True, "value": meta["issuer"]},
                aud={"essential": True, "value": provider.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError):
            raise invalid from None
        return decoded.claims

    async def _sign_in(self, tenant_id: uuid.UUID, provider: OidcProvider, claims: dict[str, Any], *, ip: str | None) -> SignedIn:
        subject = str(claims["sub"])
        email = claims.get("email")
        outcome: Problem | None = None
        mismatch: Problem | None = None
        signed_in: SignedIn | None = None
        async with self.runtime.db.tenant_session(tenant_id=tenant_id) as session:
            tenant_info = await self.auth._tenant(session, tenant_id)
            assert tenant_info is not None
            user = await session.scalar(select(User).where(User.tenant_id == tenant_id, User.oidc_subject == subject))
            # Only an e-mail the provider vouches for (email_verified exactly true,
            # not merely absent) may link to, or create, a Kefu account.
            if user is None and isinstance(email, str) and claims.get("email_verified") is True:
                try:
                    normalized = services.normalize_email(email)
                except Problem:
                    normalized = None
                if normalized:
                    user = await session.scalar(select(User).where(User.tenant_id == tenant_id, User.email == normalized))
                    if user is not None and user.oidc_subject is not None:
                        # Already linked to another identity at the provider: linking
                        # again by e-mail would hand the account to whoever holds that address.
                        await audit.record(session, tenant_id=tenant_id, actor=f"user:{user.id}", action="login.failed", target=f"user:{user.id}",
                                           detail={"method": "sso", "reason": "subject_mismatch", "subject": subject}, ip=ip, at=self.auth.clock())
                        mismatch = Problem(409, "sso_subject_mismatch", "this e-mail belongs to an account linked to another identity; ask your administrator")
                        user = None
                    elif user is None and provider.auto_provision:
                        created = await services.create_user(
                            session, tenant_id=tenant_id, email=normalized, display_name=str(claims.get("name") or normalized.split("@")[0]),
                            roles=["agent"], actor="system:sso", sso_subject=subject, ip=ip, clock=self.auth.clock,
                        )
                        user = await services.get_user_in_tenant(session, tenant_id=tenant_id, user_id=created.user_id)
            if mismatch is not None:
                outcome = mismatch
            elif user is None:
                await audit.record(session, tenant_id=tenant_id, actor="anonymous", action="login.failed",
                                   detail={"method": "sso", "reason": "no_matching_user", "subject": subject}, ip=ip, at=self.auth.clock())
                outcome = Problem(403, "sso_user_unknown", "no Kefu account matches this identity; ask your administrator")
            elif user.status == "disabled":
                await audit.record(session, tenant_id=tenant_id, actor=f"user:{user.id}", action="login.failed", target=f"user:{user.id}",
                                   detail={"method": "sso", "reason": "user_disabled"}, ip=ip, at=self.auth.clock())
                outcome = Problem(403, "user_disabled", "this account is disabled")
            elif tenant_info.status != TenantStatus.ACTIVE:
                outcome = tenant_status_problem(tenant_info.status)
            else:
                if user.oidc_subject is None:
                    user.oidc_subject = subject
                if user.status == "invited":
                    user.status = "active"
                signed_in = await self.auth.sign_in(session, tenant=tenant_info, user=user, method="sso", ip=ip)
        if outcome is not None:
            raise outcome
        assert signed_in is not None
        return signed_in


def portal_redirect(signed_in: SignedIn) -> str:
    """Where a finished SSO sign-in lands: tokens in the URL fragment, which
    browsers never send to a server nor put in Referer headers."""
    from urllib.parse import urlencode

    fragment = urlencode(
        {"access_token": signed_in.access_token, "token_type": "Bearer", "expires_in": signed_in.expires_in,
         "refresh_token": signed_in.refresh_token}
    )
    return f"/portal/#{fragment}"


