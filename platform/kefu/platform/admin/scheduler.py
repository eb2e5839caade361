"""Runs the retention purge on its own: every ``interval_s`` the worker process
queues ``purge_closed_tenants`` (idempotent by the state it checks), so a closed
tenant's data disappears once its retention is over without an operator asking.

Only processes with the "worker" role run it; with several workers each queues
the job, which is harmless (a tenant already purged is no longer found).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kefu.platform.admin.purge import purge_closed_tenants
from kefu.platform.events import enqueue
from kefu.platform.runtime import Runtime

log = logging.getLogger(__name__)


class RetentionScheduler:
    name = "retention purge scheduler"

    def __init__(self, runtime: Runtime, *, interval_s: float) -> None:
        self.runtime = runtime
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> str:
        """Queue one purge run now; returns the job's key."""
        async with self.runtime.db.platform_session(reason="scheduled retention purge") as session:
            return await enqueue(session, purge_closed_tenants)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the next tick tries again; a failed queueing must not stop the loop
                log.exception("queueing the retention purge failed")
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
