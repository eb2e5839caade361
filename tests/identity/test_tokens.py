"""Access tokens: RS256 JWTs verifiable by a standard library against the served JWKS; bad tokens are 401 problems."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt as pyjwt
from identity_support import Person, bearer, token_for

from kefu.platform.identity.principal import Principal
from kefu.platform.runtime import Runtime


async def test_access_token_verifies_with_pyjwt_against_the_served_jwks(client: httpx.AsyncClient, runtime: Runtime, alice: Person) -> None:
    token = await token_for(client, alice)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    [key] = jwks["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig") and "d" not in key
    assert pyjwt.get_unverified_header(token)["kid"] == key["kid"]
    signing_key = pyjwt.PyJWKSet.from_dict(jwks)[key["kid"]]
    claims = pyjwt.decode(token, signing_key.key, algorithms=["RS256"], audience="kefu", issuer=runtime.settings.auth.issuer)
    assert (claims["sub"], claims["tid"], claims["kind"], claims["roles"]) == (str(alice.user_id), str(alice.tenant_id), "user", ["tenant_admin"])
    assert claims["exp"] - claims["iat"] == 900


async def test_expired_and_tampered_tokens_are_401_problems(client: httpx.AsyncClient, runtime: Runtime, alice: Person) -> None:
    principal = Principal.user(user_id=alice.user_id, tenant_id=alice.tenant_id, roles=frozenset({"tenant_admin"}))
    expired = runtime.tokens.issue(principal, now=time.time() - 3600)
    response = await client.get("/api/v1/me", headers=bearer(expired))
    assert (response.status_code, response.json()["code"]) == (401, "token_expired")

    header, payload, signature = (await token_for(client, alice)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["tenant_admin", "platform_admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{header}.{forged}.{signature}", "garbage", "a.b.c"):
        response = await client.get("/api/v1/users", headers=bearer(bad))
        assert (response.status_code, response.json()["code"]) == (401, "invalid_token")
    response = await client.get("/api/v1/users")
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


async def test_sso_state_cookie_cannot_pass_as_an_access_token(client: httpx.AsyncClient, runtime: Runtime, alice: Person) -> None:
    now = int(time.time())
    cookie = runtime.tokens.sign_claims({"aud": "kefu-sso-state", "sub": str(alice.user_id), "tid": str(alice.tenant_id), "iat": now, "exp": now + 60})
    response = await client.get("/api/v1/me", headers=bearer(cookie))
    assert (response.status_code, response.json()["code"]) == (401, "invalid_token")
