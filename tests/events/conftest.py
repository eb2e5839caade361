"""Fixtures of the events tests (settings are built outside the event loop: migrations run their own)."""

from __future__ import annotations

import pytest

from kefu.platform.devservices import RedisServer
from kefu.platform.settings import Settings


@pytest.fixture
def sqlite_settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings("sqlite")


@pytest.fixture
def redis_settings(make_settings, backend: str, redis_server: RedisServer) -> Settings:  # type: ignore[no-untyped-def]
    """Production-shaped settings: the backend's database plus the real Redis (jobs and pub/sub)."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    return make_settings(backend, KEFU_REDIS_URL=redis_server.url)
