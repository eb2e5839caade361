"""The event bus: publishes committed outbox rows and hands them to subscribers.

* ``publish_committed(ids)`` runs after a commit (``emit`` registers it): it
  delivers those rows and marks them ``published_at``, in one platform
  transaction.  A delivery failure leaves the rows unpublished for the relay.
* ``relay()`` publishes every row still unpublished (left by a crash, or by a
  failed delivery).  It runs when the bus starts, when ``trigger_relay()`` is
  called, and every ``relay_interval_s``.
* Delivery: with ``settings.redis_url`` each event goes to the Redis channel
  ``tenant:<tenant_id>:events`` (so every API replica's subscribers get it);
  without Redis, to this process's subscribers.
* ``subscribe(tenant_id=...)`` yields one tenant's ``PublishedEvent``s, never
  another tenant's: the channel itself carries the tenant.

Delivery is at least once (a crash between delivering and marking re-sends on
relay); ``event_id`` is the de-duplication key.  On PostgreSQL rows are taken
``FOR UPDATE SKIP LOCKED`` so replicas relaying together do not double-send.
All publishing runs on the bus's own event loop; callers on other loops (job
workers) are handed over to it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import msgspec
from sqlalchemy import bindparam, select, update

from kefu.platform.db import Database
from kefu.platform.db.base import utcnow
from kefu.platform.events import bindings
from kefu.platform.events.types import PublishedEvent, permission_of, routing_key
from kefu.platform.models import OutboxEvent

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
BATCH = 200
SUBSCRIBER_BUFFER = 1000


_outbox = OutboxEvent.__table__.c
_MARK_PUBLISHED = (
    update(OutboxEvent.__table__)
    .where(_outbox.id.in_(bindparam("ids", expanding=True)), _outbox.published_at.is_(None))
    .values(published_at=bindparam("now"), attempts=_outbox.attempts + 1)
)


def channel_name(tenant_id: uuid.UUID) -> str:
    return f"tenant:{tenant_id}:events"


def to_published(row: OutboxEvent) -> PublishedEvent:
    return PublishedEvent(
        event_id=row.event_id,
        event_type=row.event_type,
        tenant_id=row.tenant_id,
        routing_key=routing_key(row.tenant_id, row.event_type),
        permission=permission_of(row.event_type),
        occurred_at=row.created_at,
        data=dict(row.payload),
    )


class SubscriptionClosed(Exception):
    """The bus stopped, or the subscriber fell too far behind."""


class Subscription:
    """One tenant's event stream: ``async with bus.subscribe(tenant_id=t) as events: async for e in events``.

    The subscription is live once ``__aenter__`` returns, so nothing emitted
    after that is missed.
    """

    def __init__(self, bus: "EventBus", tenant_id: uuid.UUID) -> None:
        self.bus = bus
        self.tenant_id = tenant_id
        self._queue: asyncio.Queue[PublishedEvent | None] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self._pubsub = None

    async def __aenter__(self) -> "Subscription":
        if self.bus.redis is not None:
            self._pubsub = self.bus.redis.pubsub()
            await self._pubsub.subscribe(channel_name(self.tenant_id))
            # Wait for Redis to confirm: from here on no publication is missed.
            while True:
                message = await self._pubsub.get_message(timeout=5.0)
                if message is None:
                    raise SubscriptionClosed("Redis did not confirm the subscription")
                if message["type"] == "subscribe":
                    break
        else:
            self.bus._local.setdefault(self.tenant_id, set()).add(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pubsub is not None:
            await self._pubsub.unsubscribe()
            await self._pubsub.aclose()
            self._pubsub = None
        else:
            subscribers = self.bus._local.get(self.tenant_id)
            if subscribers is not None:
                subscribers.discard(self)
                if not subscribers:
                    del self.bus._local[self.tenant_id]

    def _offer(self, event: PublishedEvent | None) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("subscriber of tenant %s fell behind; closing it", self.tenant_id)
            self._queue = asyncio.Queue(1)
            self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[PublishedEvent]:
        return self

    async def __anext__(self) -> PublishedEvent:
        try:
            return await self.next()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    async def next(self, timeout: float | None = None) -> PublishedEvent:
        """The next event; ``timeout`` bounds the wait (raises ``TimeoutError``)."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> PublishedEvent:
        if self._pubsub is None:
            event = await self._queue.get()
            if event is None:
                raise SubscriptionClosed("the event stream ended")
            return event
        while True:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None or message.get("type") != "message":
                continue
            event = msgspec.json.decode(message["data"], type=PublishedEvent)
            if event.tenant_id == self.tenant_id:  # the channel says so; check anyway
                return event


class EventBus:
    """The publisher service (``runtime.components["events"]``)."""

    name = "events"

    def __init__(
        self,
        db: Database,
        *,
        redis_url: str | None,
        clock: Clock = utcnow,
        relay_interval_s: float = 30.0,
    ) -> None:
        self.db = db
        self.redis_url = redis_url
        self.clock = clock
        self.relay_interval_s = relay_interval_s
        self.redis = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._local: dict[uuid.UUID, set[Subscription]] = {}
        self._lock: asyncio.Lock | None = None
        self._relay_wanted: asyncio.Event | None = None
        self._relay_task: asyncio.Task[None] | None = None
        # Committed rows waiting to be published together, with their callers' futures.
        self._waiting: list[tuple[list[PublishedEvent], list[int], asyncio.Future[int]]] = []
        self._publisher: asyncio.Task[None] | None = None
        self.published_count = 0

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._relay_wanted = asyncio.Event()
        if self.redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(self.redis_url)
        bindings.bind_bus(self._engines(), self)
        await self.relay()
        self._relay_task = asyncio.create_task(self._relay_loop(), name="kefu-outbox-relay")

    async def stop(self) -> None:
        bindings.unbind(self._engines())
        if self._relay_task is not None:
            self._relay_task.cancel()
            try:
                await self._relay_task
            except asyncio.CancelledError:
                pass
            self._relay_task = None
        if self._publisher is not None and not self._publisher.done():
            try:  # what committed before the stop still goes out (bounded)
                await asyncio.wait_for(asyncio.shield(self._publisher), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._publisher.cancel()
        self._publisher = None
        for subscribers in list(self._local.values()):
            for subscription in list(subscribers):
                subscription._offer(None)
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        self.loop = None

    def _engines(self) -> list:  # type: ignore[type-arg]
        return [self.db.engine, self.db.platform_engine]

    # --- subscribing ------------------------------------------------------------

    def subscribe(self, *, tenant_id: uuid.UUID) -> Subscription:
        if not isinstance(tenant_id, uuid.UUID):
            raise TypeError("subscribe needs a tenant UUID")
        return Subscription(self, tenant_id)

    # --- publishing ---------------------------------------------------------------

    async def publish_committed(self, ids: list[int]) -> int:
        """Publish these committed rows now (called after commit, from any loop)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return 0  # not running: the relay of the next start publishes them
        if asyncio.get_running_loop() is loop:
            return await self._publish(ids)
        future = asyncio.run_coroutine_threadsafe(self._publish(ids), loop)
        return await asyncio.wrap_future(future)

    async def publish_rows(self, rows: list[OutboxEvent]) -> int:
        """Publish rows this process just committed, from memory: delivered, then marked
        (no read back).  Transactions committing meanwhile are published together — one
        Redis pipeline and one UPDATE for the lot (group commit) — so the cost per event
        falls as the load rises.  At least once, like every path here: a relay running at
        the same moment may send one of them again (``event_id`` de-duplicates)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not rows:
            return 0
        events = [to_published(row) for row in rows]
        ids = [row.id for row in rows]
        if asyncio.get_running_loop() is loop:
            return await self._publish_together(events, ids)
        future = asyncio.run_coroutine_threadsafe(self._publish_together(events, ids), loop)
        return await asyncio.wrap_future(future)

    async def _publish_together(self, events: list[PublishedEvent], ids: list[int]) -> int:
        assert self.loop is not None
        done: asyncio.Future[int] = self.loop.create_future()
        self._waiting.append((events, ids, done))
        if self._publisher is None or self._publisher.done():
            self._publisher = self.loop.create_task(self._publish_waiting(), name="kefu-outbox-publisher")
        return await asyncio.shield(done)  # a cancelled caller does not cancel the batch

    async def _publish_waiting(self) -> None:
        """Publish what is waiting, batch after batch, until nothing is."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            events = [event for item in batch for event in item[0]]
            ids = [row_id for item in batch for row_id in item[1]]
            try:
                sent = await self._publish_known(events, ids)
            except BaseException as exc:  # cancelled (stopping): the relay of the next start sends them
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(0)
                if isinstance(exc, Exception):
                    continue
                raise
            for item_events, _, done in batch:
                if not done.done():
                    done.set_result(len(item_events) if sent else 0)

    async def _publish_known(self, events: list[PublishedEvent], ids: list[int]) -> int:
        assert self._lock is not None
        async with self._lock:
            try:
                await self._deliver(events)
                await self._mark_published(ids)
            except Exception:
                log.exception("publishing outbox events failed; the relay will retry")
                return 0
            self.published_count += len(events)
            return len(events)

    async def _mark_published(self, ids: list[int]) -> None:
        values = {"ids": ids, "now": self.clock()}
        if not self.db.is_postgres:
            async with self.db.platform_session(reason="mark published outbox events") as session:
                await session.execute(_MARK_PUBLISHED, values)
            return
        # One statement committed on its own, without BEGIN and COMMIT round trips: marking
        # rows already delivered needs no transaction around it.
        async with self.db.platform_engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(_MARK_PUBLISHED, values)

    async def relay(self) -> int:
        """Publish every row still unpublished; returns how many were sent."""
        total = 0
        while True:
            sent = await self._publish(None)
            total += sent
            if sent < BATCH:
                return total

    def trigger_relay(self) -> None:
        if self._relay_wanted is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self._relay_wanted.set)

    async def _relay_loop(self) -> None:
        assert self._relay_wanted is not None
        while True:
            try:
                await asyncio.wait_for(self._relay_wanted.wait(), self.relay_interval_s)
            except TimeoutError:
                pass
            self._relay_wanted.clear()
            try:
                await self.relay()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying at the next interval")

    async def _publish(self, ids: list[int] | None) -> int:
        assert self._lock is not None
        async with self._lock:
            try:
                async with self.db.platform_session(reason="publish committed outbox events") as session:
                    query = select(OutboxEvent).where(OutboxEvent.published_at.is_(None)).order_by(OutboxEvent.id).limit(BATCH)
                    if ids is not None:
                        query = query.where(OutboxEvent.id.in_(ids))
                    if self.db.is_postgres:
                        query = query.with_for_update(skip_locked=True)
                    rows = (await session.scalars(query)).all()
                    if not rows:
                        return 0
                    await self._deliver([to_published(row) for row in rows])
                    await session.execute(
                        update(OutboxEvent)
                        .where(OutboxEvent.id.in_([row.id for row in rows]))
                        .values(published_at=self.clock(), attempts=OutboxEvent.attempts + 1)
                        .execution_options(synchronize_session=False)
                    )
            except Exception:
                log.exception("publishing outbox events failed; the relay will retry")
                return 0
            self.published_count += len(rows)
            return len(rows)

    async def _deliver(self, events: list[PublishedEvent]) -> None:
        if self.redis is not None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.publish(channel_name(event.tenant_id), msgspec.json.encode(event))
                await pipe.execute()
            return
        for event in events:
            for subscription in list(self._local.get(event.tenant_id, ())):
                subscription._offer(event)
