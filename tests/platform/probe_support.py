"""Shared by the readiness and metrics tests: an app served in the test's own loop, and
the metrics token their runtimes are configured with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar

TOKEN = "metrics-token-0123456789abcdef"


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, in this test's loop (as the ``client`` fixture)."""
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
            yield client
