"""A real HTTP/WebSocket server (uvicorn) around a Kefu app, on a free loopback port, in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from litestar import Litestar

from kefu.platform.devservices import free_port


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[str]:
    """Yields the server's base URL once its start-up (and the runtime's) has completed."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="on", log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    if server.should_exit:
        raise RuntimeError("the test server did not start")
    main_loop = asyncio.create_task(server.main_loop())
    try:
        yield f"127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await main_loop
        await server.shutdown()
