"""Billing fixtures: the app with its in-process job worker and media plane, two
tenants renting a few seats, the local Stripe server and time frozen with
time-machine (wall-clock time only: asyncio's monotonic clock keeps running, so
timers and waits behave).  Helpers are in billing_support.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import time_machine
from billing_support import STRIPE_KEY, T0, WEBHOOK_SECRET, Admin, new_tenant
from fake_stripe import FakeStripe
from litestar import Litestar
from tenants_support import InProcessMedia, manual_runtime

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.clock import ManualClock


@pytest.fixture
def traveller() -> Iterator[Any]:
    with time_machine.travel(T0, tick=True) as traveller:
        yield traveller


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=STRIPE_KEY) as server:
        yield server


@pytest.fixture
def stripe_settings(make_settings: Any, backend: str, stripe_server: FakeStripe) -> Settings:
    """Settings with Stripe configured against the local Stripe server (test files opt in
    by defining ``settings`` from it)."""
    return make_settings(
        backend, KEFU_STRIPE_API_KEY=STRIPE_KEY, KEFU_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, KEFU_STRIPE_API_BASE=stripe_server.url,
        KEFU_STRIPE_TIMEOUT_MS="700", KEFU_STRIPE_QUANTITY_UPDATES_PER_HOUR="3",
    )


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    return manual_runtime(settings, ManualClock(T0))


@pytest.fixture
def media(runtime: Runtime) -> InProcessMedia:
    return InProcessMedia(runtime.settings.recordings_dir, runtime.components["acd.clock"])


@pytest.fixture
def app(runtime: Runtime, media: InProcessMedia, pooled_app: Callable[[Runtime], Litestar]) -> Litestar:
    app = pooled_app(runtime)
    runtime.components["media"] = media
    return app


@pytest.fixture
async def acme(runtime: Runtime, client: Any, traveller: Any) -> Admin:
    return await new_tenant(runtime, "acme", seats=2)


@pytest.fixture
async def globex(runtime: Runtime, client: Any, traveller: Any) -> Admin:
    return await new_tenant(runtime, "globex", seats=3)
