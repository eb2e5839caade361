"""Live wallboard pushes: one computation per tenant per change, fanned out to every socket.

``Wallboard`` (``runtime.components["wallboard"]``, a service) keeps, on each API
node, one ``TenantBoard`` per tenant that has a wallboard socket open there:

* The board follows the tenant's events on the event bus (``call.state_changed``,
  ``agent.state_changed``).  A change asks for a recomputation ``COALESCE_S``
  later; changes meanwhile ride along, so a burst costs one computation.  The
  request is a flag — in Redis (``SET … NX PX``) in production, so that of all
  the nodes that saw the event exactly one computes, or in memory on the
  embedded default.  The flag is cleared just before the computation reads the
  database, so a change committed after the read raises it again.
* The computed ``TenantSnapshot`` goes out once on the push hub (channel
  ``("wallboard", tenant, tenant)``): in-process on the embedded default,
  through Redis pub/sub (``RedisHub``) to every API node in production.  Each
  node's board keeps it as its latest and wakes its sockets.
* A socket renders its viewer's cut of the snapshot (``snapshot.view``); sockets
  with the same cut share one serialised frame, so 1,000 tenant-wide wallboards
  cost one ``json.dumps``.
* A board opened on a node computes its first snapshot itself once its event
  subscription is live, so no change in between is missed; every
  ``REFRESH_S`` it asks for a recomputation (midnight, assignments changed
  without an event, a node that crashed holding the flag).
* ``tenant.suspended`` / ``tenant.closed`` close the tenant's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from kefu.platform.db import Database
from kefu.platform.events.bus import EventBus
from kefu.tenants.notify import Channel, Hub
from kefu.tenants.wallboard.snapshot import TenantSnapshot, ViewKey, compute, view

log = logging.getLogger(__name__)

COALESCE_S = 0.25
REFRESH_S = 30.0
FLAG_TTL_MS = 5000  # a node that dies holding the flag delays the next push at most this long
TRIGGERS = frozenset({"call.state_changed", "agent.state_changed"})
ENDING_EVENTS = {"tenant.suspended": "tenant_suspended", "tenant.closed": "tenant_closed"}
KIND = "wallboard"


def board_channel(tenant_id: uuid.UUID) -> Channel:
    return (KIND, tenant_id, tenant_id)


class Mailbox:
    """One socket's latest snapshot (older ones are skipped, never queued) or its reason to close."""

    def __init__(self) -> None:
        self.snapshot: tuple[int, TenantSnapshot] | None = None
        self.closing: str | None = None
        self.wake = asyncio.Event()

    def put(self, seq: int, snapshot: TenantSnapshot) -> None:
        self.snapshot = (seq, snapshot)
        self.wake.set()

    def close(self, reason: str) -> None:
        self.closing = reason
        self.wake.set()


class TenantBoard:
    def __init__(self, wallboard: Wallboard, tenant_id: uuid.UUID) -> None:
        self.wallboard = wallboard
        self.tenant_id = tenant_id
        self.mailboxes: set[Mailbox] = set()
        self.latest: tuple[int, TenantSnapshot] | None = None
        self._seq = 0
        self._frames: dict[ViewKey, str] = {}  # frames of the latest snapshot, per cut
        self._live = asyncio.Event()
        self._first_lock = asyncio.Lock()
        self._pending = False  # the embedded flag
        self._tasks: set[asyncio.Task[None]] = set()
        self._follower = asyncio.create_task(self._follow(), name=f"kefu-wallboard-{tenant_id}")
        self._refresher = asyncio.create_task(self._refresh(), name=f"kefu-wallboard-refresh-{tenant_id}")

    # --- changes in, snapshots out ------------------------------------------------------------

    async def _follow(self) -> None:
        """Follow the tenant's events; ask for a recomputation on each relevant one."""
        while True:
            try:
                async with self.wallboard.bus.subscribe(tenant_id=self.tenant_id) as events:
                    self._live.set()
                    while True:
                        event = await events.next()
                        if event.event_type in ENDING_EVENTS:
                            for mailbox in list(self.mailboxes):
                                mailbox.close(ENDING_EVENTS[event.event_type])
                        elif event.event_type in TRIGGERS:
                            self.changed()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("the wallboard of tenant %s lost its event stream; following again", self.tenant_id, exc_info=True)
                await asyncio.sleep(1.0)

    async def _refresh(self) -> None:
        """A recomputation every REFRESH_S even without events (a timer of its own: cancelling
        a Redis read mid-flight to time it out is what redis-py handles worst)."""
        while True:
            await asyncio.sleep(REFRESH_S)
            self.changed()

    def changed(self) -> None:
        self._spawn(self._request())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self) -> None:
        if not await self.wallboard.raise_flag(self):
            return  # a computation is already due (here or on another node): this change rides along
        await asyncio.sleep(self.wallboard.coalesce_s)
        await self.wallboard.lower_flag(self)
        try:
            snapshot = await self.wallboard.compute(self.tenant_id)
        except Exception:
            log.exception("computing the wallboard of tenant %s failed", self.tenant_id)
            return
        self.wallboard.computations += 1
        self.wallboard.hub.publish(board_channel(self.tenant_id), {"snapshot": snapshot.to_wire()})

    def received(self, snapshot: TenantSnapshot) -> None:
        """A snapshot published by this node or another: the latest now."""
        self._seq += 1
        self.latest = (self._seq, snapshot)
        self._frames = {}
        for mailbox in list(self.mailboxes):
            mailbox.put(self._seq, snapshot)

    async def first(self) -> tuple[int, TenantSnapshot]:
        """The latest snapshot; the board's first one is computed here once its events are live."""
        await self._live.wait()
        async with self._first_lock:
            if self.latest is None:
                snapshot = await self.wallboard.compute(self.tenant_id)
                if self.latest is None:  # a pushed one that arrived meanwhile is newer
                    self.received(snapshot)
            assert self.latest is not None
            return self.latest

    def frame(self, seq: int, snapshot: TenantSnapshot, key: ViewKey) -> str:
        """The JSON text of one cut, serialised once per snapshot and cut."""
        if self.latest is None or seq != self.latest[0]:
            return json.dumps(view(snapshot, key), separators=(",", ":"))
        text = self._frames.get(key)
        if text is None:
            text = self._frames[key] = json.dumps(view(snapshot, key), separators=(",", ":"))
        return text

    async def close(self) -> None:
        tasks = [self._follower, self._refresher, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=2.0)


class Wallboard:
    """The service behind ``/ws/wallboard`` (see the module's docstring)."""

    name = "wallboard"

    def __init__(self, db: Database, *, bus: Callable[[], EventBus], hub: Hub, clock: Callable[[], datetime],
                 redis_url: str | None, coalesce_s: float = COALESCE_S) -> None:
        self.db = db
        self._bus = bus
        self.hub = hub
        self.clock = clock
        self.redis_url = redis_url
        self.coalesce_s = coalesce_s
        self.boards: dict[uuid.UUID, TenantBoard] = {}
        self._users: dict[uuid.UUID, int] = {}
        self._redis: Any = None
        self._watching = False
        self.computations = 0  # snapshots this node computed (tests and the bench read it)

    @property
    def bus(self) -> EventBus:
        return self._bus()

    async def start(self) -> None:
        if self.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url)
        if not self._watching:  # a hub keeps its watchers: register once
            self.hub.watch(KIND, self._on_push)
            self._watching = True

    async def stop(self) -> None:
        boards, self.boards = list(self.boards.values()), {}
        for board in boards:
            for mailbox in list(board.mailboxes):
                mailbox.close("going_away")
            await board.close()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._redis.aclose(), 2.0)
            self._redis = None

    async def compute(self, tenant_id: uuid.UUID) -> TenantSnapshot:
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            return await compute(session, tenant_id=tenant_id, now=self.clock())

    # --- the "a computation is due" flag ---------------------------------------------------

    def _flag(self, tenant_id: uuid.UUID) -> str:
        return f"kefu:wallboard:{tenant_id}:due"

    async def raise_flag(self, board: TenantBoard) -> bool:
        """True when this call raised it (and so owes the computation)."""
        if self._redis is None:
            if board._pending:
                return False
            board._pending = True
            return True
        try:
            return bool(await self._redis.set(self._flag(board.tenant_id), "1", nx=True, px=FLAG_TTL_MS))
        except Exception:
            log.warning("the wallboard flag could not be set in Redis; computing here", exc_info=True)
            return True

    async def lower_flag(self, board: TenantBoard) -> None:
        board._pending = False
        if self._redis is not None:
            try:
                await self._redis.delete(self._flag(board.tenant_id))
            except Exception:
                log.warning("the wallboard flag could not be cleared in Redis (it expires)", exc_info=True)

    # --- sockets --------------------------------------------------------------------------

    def _on_push(self, channel: Channel, message: dict[str, Any]) -> None:
        board = self.boards.get(channel[1])
        if board is None or not isinstance(message.get("snapshot"), dict):
            return  # no wallboard open on this node for that tenant
        board.received(TenantSnapshot.from_wire(message["snapshot"]))

    @asynccontextmanager
    async def open(self, tenant_id: uuid.UUID) -> AsyncIterator[tuple[TenantBoard, Mailbox]]:
        """A mailbox on the tenant's board (opened with the first socket, closed with the last)."""
        board = self.boards.get(tenant_id)
        if board is None:
            board = self.boards[tenant_id] = TenantBoard(self, tenant_id)
        self._users[tenant_id] = self._users.get(tenant_id, 0) + 1
        mailbox = Mailbox()
        board.mailboxes.add(mailbox)
        try:
            yield board, mailbox
        finally:
            board.mailboxes.discard(mailbox)
            self._users[tenant_id] -= 1
            if not self._users[tenant_id]:
                del self._users[tenant_id]
                if self.boards.get(tenant_id) is board:
                    del self.boards[tenant_id]
                await board.close()
