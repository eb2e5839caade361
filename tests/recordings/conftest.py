"""Recording management fixtures: the app with its in-process job worker (api + worker
roles, the local recording store), a hand-driven ACD clock so no routing timer runs,
wall-clock time under time-machine, and two tenants (Acme and Globex) with an admin,
a supervisor and a QA reviewer each.  Helpers are in recordings_support.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from recordings_support import T0, Tenant, new_tenant
from tenants_support import manual_runtime

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.clock import ManualClock


@pytest.fixture
def traveller() -> Iterator[Any]:
    with time_machine.travel(T0, tick=True) as traveller:
        yield traveller


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    return manual_runtime(settings, ManualClock(T0))


@pytest.fixture
async def acme(runtime: Runtime, client: Any, traveller: Any) -> Tenant:
    return await new_tenant(runtime, "acme")


@pytest.fixture
async def globex(runtime: Runtime, client: Any, traveller: Any) -> Tenant:
    return await new_tenant(runtime, "globex")
