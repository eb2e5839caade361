"""Wallboard fixtures: the contact-center ones (tests/tenants/conftest.py: a hand-driven
clock, the in-process media plane, Acme and Globex with an admin each, agents made through
the API), and production-shaped settings on the real Redis for the two-node test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from kefu.platform.devservices import RedisServer
from kefu.platform.settings import Settings

_TENANTS = Path(__file__).parents[1] / "tenants"
sys.path.insert(0, str(_TENANTS))  # tenants_support, test_acd
_spec = importlib.util.spec_from_file_location("tenants_fixtures_for_wallboard", _TENANTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

clock = _fixtures.clock
timers = _fixtures.timers
runtime = _fixtures.runtime
media = _fixtures.media
app = _fixtures.app
cc = _fixtures.cc
acme = _fixtures.acme
globex = _fixtures.globex
make_agent = _fixtures.make_agent


@pytest.fixture
def redis_settings(make_settings, backend: str, redis_server: RedisServer) -> Settings:  # type: ignore[no-untyped-def]
    """The backend's database plus the real Redis (pub/sub between API nodes)."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    return make_settings(backend, KEFU_REDIS_URL=redis_server.url)
