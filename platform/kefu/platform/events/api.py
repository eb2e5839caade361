"""Wires the events context into the runtime: the event bus, the job system, ``/ws/events``.

* ``runtime.components["events"]`` — the ``EventBus`` (publisher, relay, subscriptions);
* ``runtime.components["jobs"]`` — the ``JobSystem``; ``["broker"]`` its Dramatiq broker.

The job worker runs in this process where the runtime has the ``worker`` role.
"""

from __future__ import annotations

from typing import Any

from kefu.platform.events.bus import EventBus
from kefu.platform.events.jobs import JobSystem
from kefu.platform.events.websocket import events_socket
from kefu.platform.runtime import Runtime


def install(runtime: Runtime) -> list[Any]:
    if "events" not in runtime.components:
        bus = EventBus(runtime.db, redis_url=runtime.settings.redis_url)
        jobs = JobSystem(runtime.settings, runtime.db, run_worker="worker" in runtime.process_roles)
        runtime.components["events"] = bus
        runtime.components["jobs"] = jobs
        runtime.components["broker"] = jobs.broker
        # The bus starts first (its relay publishes leftovers) and stops last.
        runtime.add_service(bus)
        runtime.add_service(jobs)
    return [events_socket]
