"""Per-tenant OIDC single sign-on, end to end against a real OIDC provider
(oidc-provider-mock on loopback): discovery, authorization code + PKCE,
id_token verification, user matching and provisioning, redirects driven with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import pytest
from identity_support import Person, audit_rows, bearer, token_for

from kefu.platform.identity import services, sso
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A standards-compliant OIDC provider; yields its issuer URL."""
    users = [
        oidc_provider_mock.User(sub="bob-at-idp", claims={"email": "bob@acme.test", "email_verified": True, "name": "Bob"}),
        oidc_provider_mock.User(sub="dora-at-idp", claims={"email": "dora@acme.test", "email_verified": True, "name": "Dora Explorer"}),
        # Claims an Acme address without saying it is verified.
        oidc_provider_mock.User(sub="unverified-at-idp", claims={"email": "bob@acme.test", "name": "Not Bob"}),
        oidc_provider_mock.User(sub="unverified-dora-at-idp", claims={"email": "dora@acme.test", "email_verified": "true"}),
        # A second identity presenting the verified address of an account already linked to "erin-at-idp".
        oidc_provider_mock.User(sub="other-erin-at-idp", claims={"email": "erin@acme.test", "email_verified": True}),
    ]
    with oidc_provider_mock.run_server_in_thread(require_nonce=True, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


async def configure(client: httpx.AsyncClient, admin: Person, issuer: str, **extra: object) -> httpx.Response:
    body = {"issuer": issuer, "client_id": "kefu-acme", "client_secret": "acme-sso-secret", "enabled": True} | extra
    return await client.put("/api/v1/sso", json=body, headers=bearer(await token_for(client, admin)))


async def sign_in_through_provider(client: httpx.AsyncClient, *, slug: str, subject: str) -> httpx.Response:
    """Follow the browser's path: Kefu -> provider (user picks ``subject``) -> Kefu callback."""
    start = await client.get(f"/sso/{slug}/login")
    assert start.status_code == 302, start.text
    authorize_url = start.headers["location"]
    params = parse_qs(urlsplit(authorize_url).query)
    assert params["code_challenge_method"] == ["S256"] and params["response_type"] == ["code"]
    assert params["scope"] == ["openid email profile"] and params["nonce"] and params["state"]
    async with httpx.AsyncClient() as browser:
        consent = await browser.post(authorize_url, data={"sub": subject})
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "http://127.0.0.1:8000/sso/callback"
    return await client.get(f"/sso/callback?{back.query}")


def fragment_of(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    assert location.startswith("/portal/#")
    return {k: v[0] for k, v in parse_qs(location.split("#", 1)[1]).items()}


async def test_sso_configuration_is_discovered_audited_and_hides_the_secret(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, provider: str
) -> None:
    response = await configure(client, alice, provider)
    assert response.status_code == 200
    assert response.json() == {
        "issuer": provider, "client_id": "kefu-acme", "enabled": True, "auto_provision": False, "has_client_secret": True,
        "redirect_uri": "http://127.0.0.1:8000/sso/callback", "login_url": "http://127.0.0.1:8000/sso/acme/login",
    }
    assert (await client.get("/api/v1/sso", headers=bearer(await token_for(client, alice)))).json()["client_id"] == "kefu-acme"
    assert [r for r in await audit_rows(runtime, alice.tenant_id) if r[1] == "sso.configured"] == [
        (f"user:{alice.user_id}", "sso.configured", "sso",
         {"issuer": provider, "client_id": "kefu-acme", "enabled": True, "auto_provision": False, "secret_changed": True})
    ]
    response = await configure(client, alice, "http://127.0.0.1:9/")  # nothing listens there
    assert (response.status_code, response.json()["code"]) == (502, "sso_provider_unreachable")
    response = await configure(client, alice, "ftp://idp.example")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_issuer")


async def test_sso_signs_in_an_existing_user_matched_by_email(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, bob: Person, provider: str
) -> None:
    await configure(client, alice, provider)
    response = await sign_in_through_provider(client, slug="acme", subject="bob-at-idp")
    assert response.status_code == 302, response.text
    tokens = fragment_of(response)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == "900"
    principal = runtime.tokens.verify(tokens["access_token"])
    assert (principal.subject, principal.tenant_id, principal.roles) == (str(bob.user_id), bob.tenant_id, frozenset({"agent"}))
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert (await audit_rows(runtime, alice.tenant_id))[-1][:3] == (f"user:{bob.user_id}", "login.succeeded", f"user:{bob.user_id}")
    assert [r[3] for r in await audit_rows(runtime, alice.tenant_id) if r[1] == "login.succeeded"][-1] == {"method": "sso"}


async def test_sso_refuses_unknown_people_unless_auto_provision(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, provider: str
) -> None:
    await configure(client, alice, provider)
    response = await sign_in_through_provider(client, slug="acme", subject="dora-at-idp")
    assert (response.status_code, response.json()["code"]) == (403, "sso_user_unknown")

    await configure(client, alice, provider, auto_provision=True, client_secret=None)
    response = await sign_in_through_provider(client, slug="acme", subject="dora-at-idp")
    assert response.status_code == 302
    principal = runtime.tokens.verify(fragment_of(response)["access_token"])
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        dora = await services.get_user(session, tenant_id=alice.tenant_id, user_id=principal.user_id)
    assert (dora.email, dora.display_name, dora.status, dora.roles) == ("dora@acme.test", "Dora Explorer", "active", ("agent",))


async def test_sso_callback_rejects_a_forged_or_missing_state(client: httpx.AsyncClient, alice: Person, bob: Person, provider: str) -> None:
    await configure(client, alice, provider)
    start = await client.get("/sso/acme/login")
    assert start.status_code == 302
    response = await client.get("/sso/callback?code=whatever&state=not-the-state")
    assert (response.status_code, response.json()["code"]) == (400, "sso_state_mismatch")
    client.cookies.clear()
    response = await client.get("/sso/callback?code=whatever&state=x")
    assert (response.status_code, response.json()["code"]) == (400, "sso_state_mismatch")


async def test_sso_login_for_a_tenant_without_sso_is_404(client: httpx.AsyncClient, alice: Person) -> None:
    for slug in ("acme", "nope"):
        response = await client.get(f"/sso/{slug}/login")
        assert (response.status_code, response.json()["code"]) == (404, "sso_not_configured")


async def test_disabled_user_cannot_sign_in_through_sso(client: httpx.AsyncClient, alice: Person, bob: Person, provider: str) -> None:
    await configure(client, alice, provider)
    await client.patch(f"/api/v1/users/{bob.user_id}", json={"status": "disabled"}, headers=bearer(await token_for(client, alice)))
    response = await sign_in_through_provider(client, slug="acme", subject="bob-at-idp")
    assert (response.status_code, response.json()["code"]) == (403, "user_disabled")


async def test_sso_does_not_link_or_provision_by_an_email_not_marked_verified(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, bob: Person, provider: str
) -> None:
    await configure(client, alice, provider, auto_provision=True)
    response = await sign_in_through_provider(client, slug="acme", subject="unverified-at-idp")
    assert (response.status_code, response.json()["code"]) == (403, "sso_user_unknown")
    response = await sign_in_through_provider(client, slug="acme", subject="unverified-dora-at-idp")
    assert (response.status_code, response.json()["code"]) == (403, "sso_user_unknown")
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        users, total = await services.list_users(session, tenant_id=alice.tenant_id, limit=50, offset=0)
        bob_row = await services.get_user_in_tenant(session, tenant_id=alice.tenant_id, user_id=bob.user_id)
    assert (total, sorted(u.email for u in users)) == (2, ["alice@acme.test", "bob@acme.test"])
    assert bob_row.oidc_subject is None


async def test_sso_refuses_to_relink_an_account_bound_to_another_subject(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, provider: str
) -> None:
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        erin = await services.create_user(
            session, tenant_id=alice.tenant_id, email="erin@acme.test", display_name="Erin", roles=["agent"], actor="system", sso_subject="erin-at-idp"
        )
    await configure(client, alice, provider)
    response = await sign_in_through_provider(client, slug="acme", subject="other-erin-at-idp")
    assert (response.status_code, response.json()["code"]) == (409, "sso_subject_mismatch")
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        row = await services.get_user_in_tenant(session, tenant_id=alice.tenant_id, user_id=erin.user_id)
    assert row.oidc_subject == "erin-at-idp"
    assert (await audit_rows(runtime, alice.tenant_id))[-1] == (
        f"user:{erin.user_id}", "login.failed", f"user:{erin.user_id}", {"method": "sso", "reason": "subject_mismatch", "subject": "other-erin-at-idp"}
    )


async def test_sso_links_by_verified_email_once_then_by_subject(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, bob: Person, provider: str
) -> None:
    await configure(client, alice, provider)
    assert (await sign_in_through_provider(client, slug="acme", subject="bob-at-idp")).status_code == 302
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        assert (await services.get_user_in_tenant(session, tenant_id=alice.tenant_id, user_id=bob.user_id)).oidc_subject == "bob-at-idp"
    assert (await sign_in_through_provider(client, slug="acme", subject="bob-at-idp")).status_code == 302


def _resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


PUBLIC_META = {
    "issuer": "https://idp.example.com",
    "authorization_endpoint": "https://idp.example.com/authorize",
    "token_endpoint": "https://idp.example.com/token",
    "jwks_uri": "https://idp.example.com/jwks",
}


@pytest.mark.parametrize(
    ("issuer", "meta", "code"),
    [
        ("http://idp.example.com", {}, "invalid_issuer"),
        ("https://localhost", {}, "sso_address_forbidden"),
        ("https://10.0.0.8", {}, "sso_address_forbidden"),
        ("https://169.254.169.254", {}, "sso_address_forbidden"),
        ("https://[::1]", {}, "sso_address_forbidden"),
        ("https://split.example.com", {}, "sso_address_forbidden"),
        ("https://idp.example.com", {"jwks_uri": "https://metadata.internal/jwks"}, "sso_address_forbidden"),
        ("https://idp.example.com", {"token_endpoint": "https://192.168.1.1/token"}, "sso_address_forbidden"),
        ("https://idp.example.com", {"token_endpoint": "http://idp.example.com/token"}, "invalid_issuer"),
    ],
)
async def test_production_discovery_refuses_non_https_and_internal_addresses(
    issuer: str, meta: dict[str, str], code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    discovery = sso.Discovery(production=True, resolver=_resolver({
        "idp.example.com": ["93.184.216.34"], "localhost": ["127.0.0.1"], "10.0.0.8": ["10.0.0.8"],
        "169.254.169.254": ["169.254.169.254"], "::1": ["::1"], "split.example.com": ["93.184.216.34", "172.16.0.1"],
        "metadata.internal": ["fd00::1"], "192.168.1.1": ["192.168.1.1"],
    }))
    fetched: list[str] = []

    async def get_json(url: str) -> dict[str, str]:
        fetched.append(url)
        return PUBLIC_META | meta

    monkeypatch.setattr(discovery, "_get_json", get_json)
    with pytest.raises(Problem) as refused:
        await discovery.metadata(issuer)
    assert (refused.value.status, refused.value.code) == (400, code)
    assert fetched == ([] if not meta else ["https://idp.example.com/.well-known/openid-configuration"])


async def test_production_discovery_accepts_a_public_https_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    discovery = sso.Discovery(production=True, resolver=_resolver({"idp.example.com": ["93.184.216.34", "2606:2800:220:1::1"]}))

    async def get_json(url: str) -> dict[str, str]:
        return PUBLIC_META

    monkeypatch.setattr(discovery, "_get_json", get_json)
    assert await discovery.metadata("https://idp.example.com") == PUBLIC_META


async def test_provider_errors_do_not_echo_exception_text(client: httpx.AsyncClient, alice: Person) -> None:
    response = await configure(client, alice, "http://127.0.0.1:9/")  # nothing listens there
    assert (response.status_code, response.json()["code"], response.json()["detail"]) == (
        502, "sso_provider_unreachable", "the identity provider did not answer properly"
    )


async def test_the_providers_key_set_is_cached_between_sign_ins(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, bob: Person, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await configure(client, alice, provider)
    discovery = runtime.components["identity.sso"].discovery
    fetched: list[str] = []
    real = discovery._get_json

    async def counting(url: str) -> dict:
        fetched.append(url)
        return await real(url)

    monkeypatch.setattr(discovery, "_get_json", counting)
    for _ in range(2):
        assert (await sign_in_through_provider(client, slug="acme", subject="bob-at-idp")).status_code == 302
    assert [u for u in fetched if not u.endswith("/.well-known/openid-configuration")] == [f"{provider}/jwks"]
