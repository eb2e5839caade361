"""A background service that runs ``tick()`` every ``interval_s`` seconds, the first time
``first_delay_s`` after start (0: at once).

Worker processes use it to queue periodic jobs (the retention purge, billing's
upkeep).  A failing tick is logged and the next one tries again; stopping
cancels the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

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
