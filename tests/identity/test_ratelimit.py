"""The per-IP log-in limiter: the same behaviour in memory and on a real Redis."""

from __future__ import annotations

import uuid

import pytest

from kefu.platform.devservices import RedisServer
from kefu.platform.identity.ratelimit import LoginLimiter, MemoryLoginLimiter, RedisLoginLimiter


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        made: LoginLimiter = MemoryLoginLimiter(max_failures=3, window_s=60)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisLoginLimiter(server.url, max_failures=3, window_s=60, prefix=f"test:{uuid.uuid4().hex}:")
    yield made
    await made.close()


async def test_blocks_after_max_failures_in_the_window_and_frees_as_they_age(limiter: LoginLimiter) -> None:
    start = 1_000_000.0
    for offset in (0, 10, 20):
        assert await limiter.retry_after("198.51.100.1", now=start + offset) == 0
        await limiter.failed("198.51.100.1", now=start + offset)
    assert await limiter.retry_after("198.51.100.1", now=start + 30) == 30  # the oldest failure ages out at +60
    assert await limiter.retry_after("198.51.100.2", now=start + 30) == 0  # other addresses are unaffected
    assert await limiter.retry_after("198.51.100.1", now=start + 60) == 0
