"""Unauthenticated argon2 work is bounded: invitation tokens are checked before
hashing, invalid tokens are rate-limited per IP, and argon2 runs a bounded
number of computations at once."""

from __future__ import annotations

import asyncio
import threading
import weakref

import httpx
import pytest
from identity_support import FakeClock, Person, bearer, token_for

from kefu.platform.identity import passwords, sessions
from kefu.platform.runtime import Runtime


async def _invite(client: httpx.AsyncClient, runtime: Runtime, admin: Person, email: str) -> str:
    response = await client.post("/api/v1/users", json={"email": email, "display_name": "New", "roles": ["agent"]},
                                 headers=bearer(await token_for(client, admin)))
    assert response.status_code == 201, response.text
    return response.json()["invitation_link"].split("#", 1)[1]


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the invitation path hashes."""
    seen: list[str] = []
    real = sessions.hash_password

    async def counting(password: str) -> str:
        seen.append(password)
        return await real(password)

    monkeypatch.setattr(sessions, "hash_password", counting)
    return seen


async def test_invalid_invitation_tokens_cost_no_argon2(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, hashes: list[str], clock: FakeClock
) -> None:
    token = await _invite(client, runtime, alice, "carol@acme.test")
    tenant_hex = token.split(".", 1)[0]
    for bad in ("garbage", f"{tenant_hex}.not-the-secret", token + "x"):
        response = await client.post("/api/v1/invitations/accept", json={"token": bad, "password": "a fine password"})
        assert (response.status_code, response.json()["code"]) == (400, "invalid_invitation")
    assert hashes == []
    clock.advance(runtime.settings.auth.invitation_ttl_s + 60)  # expired: still no hashing
    response = await client.post("/api/v1/invitations/accept", json={"token": token, "password": "a fine password"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_invitation")
    assert hashes == []


async def test_a_valid_invitation_hashes_once(client: httpx.AsyncClient, runtime: Runtime, alice: Person, hashes: list[str]) -> None:
    token = await _invite(client, runtime, alice, "carol@acme.test")
    response = await client.post("/api/v1/invitations/accept", json={"token": token, "password": "a fine password"})
    assert response.status_code == 200
    assert hashes == ["a fine password"]


async def test_invitation_acceptance_is_rate_limited_per_ip(
    client: httpx.AsyncClient, runtime: Runtime, alice: Person, clock: FakeClock
) -> None:
    token = await _invite(client, runtime, alice, "carol@acme.test")
    limiter = runtime.components["identity"].ip_limiter
    limiter.max_failures, limiter.window_s = 3, 60
    for n in range(3):
        response = await client.post("/api/v1/invitations/accept", json={"token": f"{alice.tenant_id.hex}.guess{n}", "password": "a fine password"})
        assert response.status_code == 400
    # Even the right token waits out the window: guessing is what the limit stops.
    response = await client.post("/api/v1/invitations/accept", json={"token": token, "password": "a fine password"})
    assert (response.status_code, response.json()["code"], response.headers["retry-after"]) == (429, "invitation_rate_limited", "60")
    # Password log-ins from the address are a separate budget.
    assert (await client.post("/api/v1/auth/login", json={"tenant": "acme", "email": alice.email, "password": alice.password})).status_code == 200
    clock.advance(60)
    response = await client.post("/api/v1/invitations/accept", json={"token": token, "password": "a fine password"})
    assert response.status_code == 200


async def test_argon2_runs_at_most_the_configured_number_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "ARGON2_CONCURRENCY", 2)
    monkeypatch.setattr(passwords, "_semaphores", weakref.WeakKeyDictionary())
    release = threading.Event()
    lock = threading.Lock()
    running, peak = [0], [0]
    two_running = asyncio.Event()
    loop = asyncio.get_running_loop()

    class BlockingHasher:
        def verify(self, stored: str, password: str) -> bool:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                if running[0] == 2:
                    loop.call_soon_threadsafe(two_running.set)
            release.wait(timeout=30)
            with lock:
                running[0] -= 1
            return True

    monkeypatch.setattr(passwords, "_hasher", BlockingHasher())
    tasks = [asyncio.create_task(passwords.verify_password("h", "pw")) for _ in range(3)]
    await two_running.wait()
    assert passwords.argon2_slots().locked() and running[0] == 2  # the third waits for a slot
    release.set()
    assert await asyncio.gather(*tasks) == [True, True, True]
    assert peak[0] == 2
