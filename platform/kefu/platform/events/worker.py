"""``kefu worker``: a production process running Dramatiq workers on Redis.

It builds the same runtime as the API (every context installed, so every job
is declared) with only the ``worker`` role, starts it, and runs until SIGTERM
or SIGINT.  Events the jobs emit are published from here to Redis.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings

log = logging.getLogger(__name__)


def build_worker_runtime(settings: Settings) -> Runtime:
    from kefu.platform.routes import route_handlers

    runtime = Runtime.build(settings, process_roles=frozenset({"worker"}))
    route_handlers(runtime)  # installs every context: their services and jobs
    return runtime


async def serve_worker(runtime: Runtime, stop: asyncio.Event) -> None:
    await runtime.start()
    log.info("kefu worker running (queues: %s)", ", ".join(sorted(runtime.components["jobs"].queues)))
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def run_worker_process(settings: Settings) -> int:
    if not settings.redis_url:
        print("kefu worker needs KEFU_REDIS_URL: the embedded default runs its workers inside 'kefu serve'")
        return 2
    runtime = build_worker_runtime(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_worker(runtime, stop)

    asyncio.run(main())
    return 0
