"""Access tokens: short-lived RS256 JWTs carrying the tenant, roles and scopes.

The tenant always comes from the token, never from a client-supplied field.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from kefu.platform.identity.keys import SigningKeys
from kefu.platform.identity.permissions import permissions_for
from kefu.platform.identity.principal import Principal
from kefu.platform.problems import Problem

ALGORITHM = "RS256"
AUDIENCE = "kefu"


class TokenService:
    def __init__(self, keys: SigningKeys, *, issuer: str, ttl_s: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, principal: Principal, *, now: float | None = None, ttl_s: int | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": principal.subject,
            "kind": principal.kind,
            "iat": issued,
            "exp": issued + (ttl_s or self.ttl_s),
            "jti": uuid.uuid4().hex,
        }
        if principal.tenant_id is not None:
            claims["tid"] = str(principal.tenant_id)
        if principal.roles:
            claims["roles"] = sorted(principal.roles)
        if principal.scopes:
            claims["scope"] = " ".join(sorted(principal.scopes))
        return jwt.encode({"alg": ALGORITHM, "kid": self.keys.kid, "typ": "JWT"}, claims, self.keys.private)

    def sign_claims(self, claims: dict[str, Any]) -> str:
        """Sign arbitrary short-lived claims (e.g. the SSO state cookie) with our key.

        Callers set their own ``aud`` so such a token can never pass as an access token.
        """
        return jwt.encode({"alg": ALGORITHM, "kid": self.keys.kid}, {"iss": self.issuer, **claims}, self.keys.private)

    def verify_claims(self, token: str, *, audience: str, now: float | None = None) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, self.keys.private, algorithms=[ALGORITHM])
            JWTClaimsRegistry(
                now=int(now if now is not None else time.time()),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError):
            raise Problem(401, "invalid_token", "the token is not valid") from None
        return dict(decoded.claims)

    def verify(self, token: str, *, now: float | None = None) -> Principal:
        try:
            decoded = jwt.decode(token, self.keys.private, algorithms=[ALGORITHM])
            JWTClaimsRegistry(
                now=int(now if now is not None else time.time()),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": AUDIENCE},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError) as exc:
            code = "token_expired" if "expired" in str(exc).lower() else "invalid_token"
            raise Problem(401, code, "the access token is expired" if code == "token_expired" else "the access token is not valid") from None
        claims = decoded.claims
        try:
            tenant_id = uuid.UUID(claims["tid"]) if claims.get("tid") else None
        except ValueError:
            raise Problem(401, "invalid_token", "the access token is not valid") from None
        roles = frozenset(claims.get("roles", ()))
        kind = claims.get("kind", "user")
        if kind not in ("user", "integration", "operator"):
            raise Problem(401, "invalid_token", "the access token is not valid")
        return Principal(
            kind=kind,
            subject=str(claims["sub"]),
            tenant_id=tenant_id,
            roles=roles,
            scopes=frozenset(str(claims.get("scope", "")).split()),
            token_id=claims.get("jti"),
            permissions=permissions_for(roles) if kind == "user" else frozenset(),
        )
