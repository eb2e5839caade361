"""Pushes to live browser connections: an agent's desktop, a caller's page.

Channels carry the tenant: ``("agent", tenant_id, agent_id)`` and
``("call", tenant_id, call_id)``.  ``Hub`` is in-process (the embedded
default); with Redis (production, several API nodes) ``RedisHub`` sends every
push through Redis pub/sub, so an agent whose desktop is connected to one API
node gets the offers another node made.  Messages are published only after
the change they describe has committed; one process's pushes reach Redis in
the order they were made (one writer task).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)

Channel = tuple[str, uuid.UUID, uuid.UUID]
REDIS_PREFIX = "kefu:push:"
WRITE_BATCH = 500  # pushes sent in one Redis pipeline at most


def agent_channel(tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Channel:
    return ("agent", tenant_id, agent_id)


def call_channel(tenant_id: uuid.UUID, call_id: uuid.UUID) -> Channel:
    return ("call", tenant_id, call_id)


class Hub:
    def __init__(self) -> None:
        self._subscribers: dict[Channel, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._watchers: dict[str, list[Callable[[Channel, dict[str, Any]], None]]] = defaultdict(list)

    def watch(self, kind: str, callback: Callable[[Channel, dict[str, Any]], None]) -> None:
        """Call ``callback`` for every push on a channel of ``kind`` (any tenant, any target)."""
        self._watchers[kind].append(callback)

    def wanted(self, channel: Channel) -> bool:
        """Whether this process has anyone to hand a push on ``channel`` to."""
        return channel in self._subscribers or channel[0] in self._watchers

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
        self.deliver(channel, message)

    def deliver(self, channel: Channel, message: dict[str, Any]) -> None:
        """Hand a push to this process's subscribers of ``channel`` (and watchers of its kind)."""
        for callback in self._watchers.get(channel[0], ()):
            try:
                callback(channel, message)
            except Exception:
                log.exception("a push watcher failed")
        for queue in list(self._subscribers.get(channel, ())):
            if queue.full():  # a stalled browser loses old pushes, never blocks the ACD
                queue.get_nowait()
            queue.put_nowait(message)


def redis_channel(channel: Channel) -> str:
    kind, tenant_id, target = channel
    return f"{REDIS_PREFIX}{kind}:{tenant_id}:{target}"


def parse_redis_channel(name: str) -> Channel | None:
    if not name.startswith(REDIS_PREFIX):
        return None
    try:
        kind, tenant, target = name[len(REDIS_PREFIX):].split(":")
        return (kind, uuid.UUID(tenant), uuid.UUID(target))
    except ValueError:
        return None


class RedisHub(Hub):
    """Pushes through Redis pub/sub: every API node's subscribers get every push.

    A service (``start``/``stop``): one pattern subscription per process reads
    ``kefu:push:*`` and delivers locally; ``publish`` queues the push for one
    writer task, so this process's pushes keep their order.  While Redis is
    unreachable pushes are delivered locally only (and logged): a browser on
    another node then catches up from its next state push or its reconnect.
    """

    name = "push hub"

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.redis_url = redis_url
        self._outbox: asyncio.Queue[tuple[str, str, Channel, dict[str, Any]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Any = None
        self._pubsub: Any = None
        self._ready: asyncio.Event | None = None

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.redis_url)
        self._outbox = asyncio.Queue()
        self._ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._read(), name="kefu-push-reader"),
            asyncio.create_task(self._write(), name="kefu-push-writer"),
        ]
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A Redis command cancelled mid-flight can hang its task: wait a bounded time only.
            _done, stuck = await asyncio.wait(self._tasks, timeout=2.0)
            if stuck:
                where = [f"{t.get_name()} at {t.get_stack(limit=1)[-1].f_code.co_qualname if t.get_stack(limit=1) else '?'}" for t in stuck]
                log.warning("the push hub's Redis tasks did not stop within 2 s; leaving them: %s", ", ".join(where))
        self._tasks = []
        # A connection cancelled mid-read may never answer a polite close: bounded, then dropped.
        for closing in (self._pubsub, self._redis):
            if closing is not None:
                try:
                    await asyncio.wait_for(closing.aclose(), 2.0)
                except (TimeoutError, OSError):
                    log.warning("closing the push hub's Redis connection timed out")
        self._pubsub = self._redis = None

    def publish(self, channel: Channel, message: dict[str, Any]) -> None:
        if self._outbox is None:
            self.deliver(channel, message)  # not started (tests building an Acd by hand)
            return
        self._outbox.put_nowait((redis_channel(channel), json.dumps(message, default=str), channel, message))

    async def _write(self) -> None:
        """Send queued pushes in order; what queued up meanwhile goes in one pipeline."""
        assert self._outbox is not None
        task = asyncio.current_task()
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < WRITE_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                if len(batch) == 1:
                    await self._redis.publish(batch[0][0], batch[0][1])
                else:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for name, payload, _, _ in batch:
                            pipe.publish(name, payload)
                        await pipe.execute()
            except Exception:
                if task is not None and task.cancelling():
                    raise  # redis-py turned our cancellation into a connection error: still a stop
                log.warning("%d push(es) could not go through Redis; delivered on this node only", len(batch), exc_info=True)
                for _, _, channel, message in batch:
                    self.deliver(channel, message)
            if task is not None and task.cancelling():
                # redis-py can swallow a cancellation that lands mid-command: honour it here.
                raise asyncio.CancelledError

    async def _read(self) -> None:
        assert self._ready is not None
        while True:
            pubsub = self._pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(f"{REDIS_PREFIX}*")
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._ready.set()
                        continue
                    if message["type"] != "pmessage":
                        continue
                    name = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                    channel = parse_redis_channel(name)
                    if channel is not None and self.wanted(channel):  # most pushes are for other nodes' browsers
                        self.deliver(channel, json.loads(message["data"]))
            except asyncio.CancelledError:
                raise  # stop() closes it, with a bound
            except Exception:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                log.warning("push subscription to Redis lost; subscribing again", exc_info=True)
                await pubsub.aclose()
                await asyncio.sleep(0.5)
