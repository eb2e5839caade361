"""QA fixtures: the app with a hand-driven clock for QA (``runtime.components["qa.clock"]``),
and two contact centers, Acme and Globex, with named people (qa_support.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from qa_support import T0, World, build_world

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + timedelta(days=1))


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock) -> Runtime:
    runtime = Runtime.build(settings)
    runtime.components["qa.clock"] = clock
    runtime.components["acd.sweep_interval_s"] = None
    return runtime


@pytest.fixture
async def acme(runtime: Runtime, client: Any) -> World:
    return await build_world(runtime, "acme")


@pytest.fixture
async def globex(runtime: Runtime, client: Any) -> World:
    return await build_world(runtime, "globex")
