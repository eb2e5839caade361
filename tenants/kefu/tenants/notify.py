"""Pushes to live browser connections: an agent's desktop, a caller's page.

Channels carry the tenant: ``("agent", tenant_id, agent_id)`` and
``("call", tenant_id, call_id)``.  This hub is in-process (the embedded
default and a single API node); several API nodes need it backed by Redis
pub/sub, which is left for the scaling issue.  Messages are published only
after the change they describe has committed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

Channel = tuple[str, uuid.UUID, uuid.UUID]


def agent_channel(tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Channel:
    return ("agent", tenant_id, agent_id)


def call_channel(tenant_id: uuid.UUID, call_id: uuid.UUID) -> Channel:
    return ("call", tenant_id, call_id)


class Hub:
    def __init__(self) -> None:
        self._subscribers: dict[Channel, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    @asynccontextmanager
    async def subscribe(self, channel: Channel) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)
        self._subscribers[channel].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[channel].discard(queue)
            if not self._subscribers[channel]:
                del self._subscribers[channel]

    def publish(self, channel: Channel, message: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(channel, ())):
            if queue.full():  # a stalled browser loses old pushes, never blocks the ACD
                queue.get_nowait()
            queue.put_nowait(message)
