"""KEFU_TRUSTED_PROXIES: behind a load balancer the per-IP limiter and the audit
log see the client's address, taken from X-Forwarded-For only when the peer is a
configured proxy."""

from __future__ import annotations

import httpx
import pytest
from identity_support import audit_rows
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kefu.platform import commands
from kefu.platform.logsafety import uninstall_log_redaction


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    calls: list[dict] = []
    monkeypatch.setattr(commands.uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    yield calls
    uninstall_log_redaction()


def test_trusted_proxies_reach_uvicorn(make_settings, uvicorn_calls: list[dict]) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings("sqlite", KEFU_TRUSTED_PROXIES=" 10.0.0.1, 10.0.0.0/24 ,")
    assert settings.trusted_proxies == ("10.0.0.1", "10.0.0.0/24")
    commands.run_api(settings)
    commands.run_media(settings)
    commands.serve(settings, demo=False)
    assert [(c["proxy_headers"], c["forwarded_allow_ips"]) for c in uvicorn_calls] == [(True, "10.0.0.1,10.0.0.0/24")] * 3


def test_without_trusted_proxies_forwarded_headers_are_ignored(make_settings, uvicorn_calls: list[dict]) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings("sqlite")
    assert settings.trusted_proxies == ()
    commands.run_api(settings)
    assert (uvicorn_calls[0]["proxy_headers"], uvicorn_calls[0]["forwarded_allow_ips"]) == (False, None)


async def test_the_limiter_and_audit_see_the_forwarded_client_of_a_trusted_proxy(client, runtime, alice, make_settings) -> None:  # type: ignore[no-untyped-def]
    # What uvicorn builds from the options: the test client's address (203.0.113.7) is the balancer.
    options = commands.uvicorn_options(make_settings("sqlite", KEFU_TRUSTED_PROXIES="203.0.113.7"))
    uninstall_log_redaction()
    behind = ProxyHeadersMiddleware(client.app, trusted_hosts=options["forwarded_allow_ips"])
    limiter = runtime.components["identity"].ip_limiter
    limiter.max_failures, limiter.window_s = 2, 60
    transport = httpx.ASGITransport(app=behind, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as lb:
        for forwarded in ("198.51.100.1", "198.51.100.1", "198.51.100.2"):
            response = await lb.post("/api/v1/auth/login", headers={"X-Forwarded-For": forwarded},
                                     json={"tenant": "acme", "email": alice.email, "password": "wrong password!"})
            assert response.status_code == 401
        response = await lb.post("/api/v1/auth/login", headers={"X-Forwarded-For": "198.51.100.1"},
                                 json={"tenant": "acme", "email": alice.email, "password": alice.password})
        assert (response.status_code, response.json()["code"]) == (429, "login_rate_limited")
        # Another client behind the same balancer is not blocked.
        response = await lb.post("/api/v1/auth/login", headers={"X-Forwarded-For": "198.51.100.2"},
                                 json={"tenant": "acme", "email": alice.email, "password": alice.password})
        assert response.status_code == 200
    rows = await audit_rows(runtime, alice.tenant_id)
    assert [r[1] for r in rows][-4:] == ["login.failed", "login.failed", "login.failed", "login.succeeded"]
    async with runtime.db.tenant_session(tenant_id=alice.tenant_id) as session:
        from sqlalchemy import select

        from kefu.platform.models import AuditEntry

        ips = (await session.scalars(select(AuditEntry.ip).where(AuditEntry.tenant_id == alice.tenant_id).order_by(AuditEntry.id))).all()
    assert ips[-4:] == ["198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.2"]
