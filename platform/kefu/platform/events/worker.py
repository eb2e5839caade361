"""``kefu worker``: a production process running Dramatiq workers on Redis.

It builds the same runtime as the API (every context installed, so every job
is declared) with only the ``worker`` role, starts it, and runs until SIGTERM
or SIGINT.  Events the jobs emit are published from here to Redis.

A small HTTP server on ``KEFU_HOST:KEFU_PORT`` (uvicorn in the worker's own
event loop) serves the probes: ``/health``, ``/ready`` and ``/metrics``
(docs/observability.md).  It answers from before the runtime starts until
after it stopped, so ``/ready`` says 503 while the worker starts and drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from litestar import Litestar, Request, Response, get

from kefu.platform import probes
from kefu.platform.problems import exception_handlers
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings

log = logging.getLogger(__name__)


def build_worker_runtime(settings: Settings) -> Runtime:
    from kefu.platform.routes import route_handlers

    runtime = Runtime.build(settings, process_roles=frozenset({"worker"}))
    route_handlers(runtime)  # installs every context: their services and jobs
    return runtime


def create_worker_app(runtime: Runtime) -> Litestar:
    """The worker's probes.  No lifespan: ``serve_worker`` starts and stops the runtime."""

    @get("/health", include_in_schema=False, sync_to_thread=False)
    def health() -> dict[str, Any]:
        return {"status": "ok" if runtime.started else "starting", "role": "worker"}

    @get("/ready", include_in_schema=False)
    async def ready() -> dict[str, Any]:
        return await probes.readiness_of(runtime).report()

    @get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response[bytes]:
        return await probes.metrics_response(runtime, request)

    return Litestar(route_handlers=[health, ready, metrics_endpoint], exception_handlers=exception_handlers, openapi_config=None)  # type: ignore[arg-type]


class _ProbeServer(uvicorn.Server):
    """uvicorn without its signal handlers: the worker's own handlers decide when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_worker(
    runtime: Runtime, stop: asyncio.Event, *, sockets: list[socket.socket] | None = None, running: asyncio.Event | None = None
) -> None:
    """Serve the probes on ``sockets`` (listening; ``kefu worker`` binds KEFU_HOST:KEFU_PORT;
    None: no probe server), start the runtime, run until ``stop``; then report not ready,
    stop the runtime and the probes.  ``running`` is set once the runtime started."""
    from kefu.platform.commands import uvicorn_options

    readiness = probes.readiness_of(runtime)
    server: _ProbeServer | None = None
    probe_task: asyncio.Task[None] | None = None
    if sockets is not None:
        options = {**uvicorn_options(runtime.settings), "lifespan": "off", "ws": "none"}
        server = _ProbeServer(uvicorn.Config(create_worker_app(runtime), **options))
        probe_task = asyncio.create_task(server.serve(sockets=sockets), name="kefu-worker-probes")
        log.info("kefu worker probes on %s", ", ".join("%s:%s" % sock.getsockname()[:2] for sock in sockets))
    try:
        readiness.begin()
        await runtime.start()
        log.info("kefu worker running (queues: %s)", ", ".join(sorted(runtime.components["jobs"].queues)))
        if running is not None:
            running.set()
        try:
            await stop.wait()
        finally:
            readiness.shutting_down()
            await runtime.stop()
            await readiness.close()
    finally:
        if server is not None and probe_task is not None:
            server.should_exit = True
            await probe_task


def run_worker_process(settings: Settings) -> int:
    if not settings.redis_url:
        print("kefu worker needs KEFU_REDIS_URL: the embedded default runs its workers inside 'kefu serve'")
        return 2
    try:  # before anything starts: a port already taken stops the worker with a clear message
        listener = socket.create_server((settings.host, settings.port))
    except OSError as exc:
        print(f"kefu worker cannot serve its probes on {settings.host}:{settings.port} (KEFU_HOST, KEFU_PORT): {exc}")
        return 2
    runtime = build_worker_runtime(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            probes.readiness_of(runtime).shutting_down()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        await serve_worker(runtime, stop, sockets=[listener])

    asyncio.run(main())
    return 0
