"""Runs the retention purge on its own: every ``interval_s`` the worker process
queues ``purge_closed_tenants`` (idempotent by the state it checks), so a closed
tenant's data disappears once its retention is over without an operator asking.

Only processes with the "worker" role run it; with several workers each queues
the job, which is harmless (a tenant already purged is no longer found).
"""

from __future__ import annotations

from kefu.platform.admin.purge import purge_closed_tenants
from kefu.platform.events import enqueue
from kefu.platform.periodic import PeriodicService
from kefu.platform.runtime import Runtime


class RetentionScheduler(PeriodicService):
    name = "retention purge scheduler"

    def __init__(self, runtime: Runtime, *, interval_s: float) -> None:
        super().__init__(interval_s=interval_s)
        self.runtime = runtime

    async def tick(self) -> str:
        """Queue one purge run now; returns the job's key."""
        async with self.runtime.db.platform_session(reason="scheduled retention purge") as session:
            return await enqueue(session, purge_closed_tenants)
