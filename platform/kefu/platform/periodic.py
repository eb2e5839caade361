"""A background service that runs ``tick()`` every ``interval_s`` seconds, the first time
``first_delay_s`` after start (0: at once).

Worker processes use it to queue periodic jobs (the retention purge, billing's
upkeep).  A failing tick is logged and the next one tries again; stopping
cancels the loop.  ``TenantJobScheduler`` is the common case: one job per
tenant that has something to do, every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.db.base import utcnow

if TYPE_CHECKING:
    from kefu.platform.runtime import Runtime

log = logging.getLogger(__name__)


class PeriodicService:
    name = "periodic service"

    def __init__(self, *, interval_s: float, first_delay_s: float = 0.0) -> None:
        self.interval_s = interval_s
        self.first_delay_s = first_delay_s
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> Any:
        raise NotImplementedError

    async def _loop(self) -> None:
        if self.first_delay_s:
            await asyncio.sleep(self.first_delay_s)
        while True:
            try:
                await self.tick()
            except Exception:  # the next tick tries again; one failure must not stop the loop
                log.exception("%s: a tick failed", self.name)
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class TenantJobScheduler(PeriodicService):
    """Every ``interval_s`` (worker processes): one job per tenant that ``tenants`` names.

    Jobs of one interval share their key (``tick``, the interval's number), so
    several workers queueing them run each once.  The first run is one interval
    after start: a worker's start writes nothing, and a restart loop must not
    become a job loop.  Subclasses name the tenants and queue the job.
    """

    reason = "scheduled tenant jobs"

    def __init__(self, runtime: Runtime, *, interval_s: float) -> None:
        super().__init__(interval_s=interval_s, first_delay_s=interval_s)
        self.runtime = runtime

    async def tenants(self, session: AsyncSession) -> list[uuid.UUID]:
        raise NotImplementedError

    async def enqueue(self, session: AsyncSession, tenant_id: uuid.UUID, *, tick: str, now: datetime) -> None:
        raise NotImplementedError

    async def tick(self, now: datetime | None = None) -> int:
        """Queue this interval's jobs; returns how many tenants got one."""
        now = now or utcnow()
        tick = str(int(now.timestamp() // max(1, self.interval_s)))
        async with self.runtime.db.platform_session(reason=self.reason) as session:
            tenant_ids = await self.tenants(session)
            for tenant_id in tenant_ids:
                await self.enqueue(session, tenant_id, tick=tick, now=now)
        return len(tenant_ids)
