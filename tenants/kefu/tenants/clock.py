"""Time for the ACD: an injectable clock and timers.

Production uses ``utcnow`` and ``AsyncioTimers`` (``loop.call_later``).  Tests
use ``ManualClock`` + ``ManualTimers``: ``await timers.advance(seconds)`` moves
time forward and runs every timer that became due, in order, so ring timeouts
and presence leases are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from kefu.platform.db.base import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
TimerCallback = Callable[[], Awaitable[None]]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    def call_at(self, when: datetime, callback: TimerCallback) -> TimerHandle: ...

    async def close(self) -> None: ...


class AsyncioTimers:
    """Timers on the running event loop; callbacks run as tasks, errors are logged."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: set[asyncio.TimerHandle] = set()

    def call_at(self, when: datetime, callback: TimerCallback) -> TimerHandle:
        loop = asyncio.get_running_loop()
        delay = max(0.0, (when - self.clock()).total_seconds())

        def fire() -> None:
            self._handles.discard(handle)
            task = loop.create_task(self._run(callback))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        handle = loop.call_later(delay, fire)
        self._handles.add(handle)
        return handle

    @staticmethod
    async def _run(callback: TimerCallback) -> None:
        try:
            await callback()
        except Exception:
            log.exception("ACD timer failed")

    async def close(self) -> None:
        for handle in list(self._handles):
            handle.cancel()
        self._handles.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class _ManualHandle:
    def __init__(self, when: datetime, seq: int, callback: TimerCallback) -> None:
        self.when, self.seq, self.callback = when, seq, callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """Deterministic timers driven by a ``ManualClock``."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._pending: list[_ManualHandle] = []
        self._seq = 0

    def call_at(self, when: datetime, callback: TimerCallback) -> TimerHandle:
        self._seq += 1
        handle = _ManualHandle(when, self._seq, callback)
        self._pending.append(handle)
        return handle

    def pending(self) -> list[datetime]:
        return sorted(h.when for h in self._pending if not h.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move the clock forward, running each timer due on the way at its own time."""
        target = self.clock.now + timedelta(seconds=seconds)
        while True:
            due = sorted((h for h in self._pending if not h.cancelled and h.when <= target), key=lambda h: (h.when, h.seq))
            if not due:
                break
            handle = due[0]
            self._pending.remove(handle)
            self.clock.now = max(self.clock.now, handle.when)
            await handle.callback()
        self.clock.now = target

    async def close(self) -> None:
        self._pending.clear()
