"""Drive the real ACD in-process, without HTTP: one or more "API nodes" (each a
Runtime with its own app, connection pool, ACD, call flow and ``ManualTimers``)
on one database, one ``ManualClock`` and one media plane (``InProcessMedia``,
standing in for a media node that outlives the API nodes).

Only the engine's public methods are called (``CallFlow.start_web_call``,
``answer``, ``agent_hangup``, ``caller_hangup``; ``Acd.log_in``,
``set_status``, ``log_out``, ``renew_lease``, ``sweep``) and the tables are
only read, so the harness keeps working while the engine's internals change.

A node "dies" by losing its pending timers (ring timeouts, lease watches) and
never being called again; the survivors' ``sweep()`` must clean up after it.
Used by ``test_acd_properties.py`` and ``test_acd_simulation.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from litestar import Litestar
from sqlalchemy import select, update
from tenants_support import OFFER, START, InProcessMedia, activate_user, create_tenant

from kefu.platform.app import create_app
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings, load_settings
from kefu.tenants import agents as agents_service
from kefu.tenants import queues as queues_service
from kefu.tenants.callflow import NewCall
from kefu.tenants.clock import ManualClock, ManualTimers
from kefu.tenants.models import Agent, Call, CallEvent, EntryPoint
from kefu.tenants.services import ContactCenter, contact_center

ACTOR = "test:acd-harness"


def sqlite_settings(template: Path, folder: Path, **env: str) -> Settings:
    """Settings on a private copy of the migrated SQLite template."""
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "kefu.sqlite3"
    shutil.copyfile(template, db_path)
    return load_settings(
        {"KEFU_DATA_DIR": str(folder), "KEFU_PORT": "8000", "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}", **env}
    )


@dataclass
class Node:
    """One API node: its runtime (services started by the app's lifespan) and its timers."""

    name: str
    runtime: Runtime
    app: Litestar
    timers: ManualTimers
    alive: bool = True
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Task[None] | None = None

    @property
    def cc(self) -> ContactCenter:
        return contact_center(self.runtime)

    async def start(self) -> None:
        started = asyncio.Event()

        async def serve() -> None:
            # Enter and leave the lifespan in one task (anyio cancel scopes insist).
            async with self.app.lifespan():
                started.set()
                await self._stopping.wait()

        self._server = asyncio.create_task(serve())
        await asyncio.wait([self._server, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
        if self._server.done():
            self._server.result()

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            await self._server


@dataclass(frozen=True)
class Seat:
    agent_id: uuid.UUID
    user_id: uuid.UUID
    name: str


@dataclass(frozen=True)
class PlacedCall:
    call_id: uuid.UUID
    caller_token: str
    entry_priority: int


@dataclass
class Snapshot:
    """The tenant's agents and calls as the database has them."""

    now: datetime
    agents: dict[uuid.UUID, Agent]
    calls: dict[uuid.UUID, Call]


class Harness:
    def __init__(self, settings: Settings, *, nodes: int = 1, start: datetime = START) -> None:
        self.settings = settings
        self.clock = ManualClock(start)
        self.media = InProcessMedia(settings.recordings_dir, self.clock)
        self.nodes: list[Node] = []
        for index in range(nodes):
            runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
            timers = ManualTimers(self.clock)
            runtime.components["acd.clock"] = self.clock
            runtime.components["acd.timers"] = timers
            runtime.components["acd.sweep_interval_s"] = None  # the tests sweep by hand
            app = create_app(runtime=runtime)
            runtime.components["media"] = self.media
            self.nodes.append(Node(f"node-{index}", runtime, app, timers))
        self.tenant_id: uuid.UUID | None = None
        self.queue_id: uuid.UUID | None = None
        self.widget_keys: dict[int, str] = {}  # entry point priority -> widget key
        self.seats: list[Seat] = []
        self.ring_timeout_s = float(settings.ring_timeout_s)

    # --- life cycle ---------------------------------------------------------------

    async def __aenter__(self) -> "Harness":
        for node in self.nodes:
            await node.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for node in reversed(self.nodes):
            await node.stop()

    @property
    def live_nodes(self) -> list[Node]:
        return [node for node in self.nodes if node.alive]

    def node(self, pick: int) -> Node:
        """A live node chosen by index (modulo the live ones)."""
        live = self.live_nodes
        return live[pick % len(live)]

    @property
    def db(self) -> Any:
        return self.live_nodes[0].runtime.db

    async def kill(self, node: Node) -> None:
        """The node crashes: its timers are gone and nobody calls it again."""
        node.alive = False
        await node.timers.close()

    # --- set-up through the services -------------------------------------------------

    async def set_up_tenant(self, *, agents: int, entry_priorities: tuple[int, ...] = (0,), slug: str = "acme") -> None:
        runtime = self.nodes[0].runtime
        self.tenant_id = tenant_id = await create_tenant(runtime, slug)
        async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
            views = []
            for index in range(agents):
                name = f"Agent {index}"
                view, _invitation = await agents_service.create_agent(
                    session, tenant_id=tenant_id, email=f"agent{index}@{slug}.test", display_name=name, actor=ACTOR
                )
                views.append(view)
            queue = await queues_service.create_queue(session, tenant_id=tenant_id, name="Support", actor=ACTOR)
            await queues_service.set_members(session, tenant_id=tenant_id, queue_id=queue.id, agent_ids=[v.id for v in views], actor=ACTOR)
            self.queue_id = queue.id
            for priority in entry_priorities:
                entry = await queues_service.create_entry_point(
                    session, tenant_id=tenant_id, name=f"Web {priority}", queue_id=queue.id, actor=ACTOR
                )
                if priority and hasattr(EntryPoint, "priority"):
                    await session.execute(
                        update(EntryPoint).where(EntryPoint.tenant_id == tenant_id, EntryPoint.id == entry.id).values(priority=priority)
                    )
                self.widget_keys[priority] = entry.widget_key
        for view in views:
            await activate_user(runtime, tenant_id, view.user_id)
        self.seats = [Seat(v.id, v.user_id, v.display_name) for v in views]

    # --- time ------------------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Move the shared clock forward, running every live node's due timers in time order."""
        target = self.clock.now + timedelta(seconds=seconds)
        while True:
            due = [(node.timers.pending()[0], index) for index, node in enumerate(self.nodes) if node.alive and node.timers.pending()]
            due = [(when, index) for when, index in due if when <= target]
            if not due:
                break
            when, index = min(due)
            step = max(timedelta(0), when - self.clock.now)
            # ManualTimers.advance runs that node's timers due up to `when` (one or more at that instant).
            await self.nodes[index].timers.advance(step.total_seconds())
        self.clock.now = target

    # --- the engine's public API -------------------------------------------------------

    async def place_call(self, node: Node, *, priority: int = 0, caller_name: str = "Caller") -> PlacedCall:
        new: NewCall = await node.cc.calls.start_web_call(widget_key=self.widget_keys[priority], caller_name=caller_name, offer_sdp=OFFER)
        return PlacedCall(new.call_id, new.caller_token, priority)

    async def answer(self, node: Node, seat: Seat, call_id: uuid.UUID) -> None:
        assert self.tenant_id is not None
        await node.cc.calls.answer(tenant_id=self.tenant_id, user_id=seat.user_id, call_id=call_id, offer_sdp=OFFER)

    async def agent_hangup(self, node: Node, seat: Seat, call_id: uuid.UUID) -> None:
        assert self.tenant_id is not None
        await node.cc.calls.agent_hangup(tenant_id=self.tenant_id, user_id=seat.user_id, call_id=call_id)

    async def caller_hangup(self, node: Node, call: PlacedCall) -> None:
        await node.cc.calls.caller_hangup(call_id=call.call_id, caller_token=call.caller_token)

    async def go_available(self, node: Node, seat: Seat) -> None:
        assert self.tenant_id is not None
        await node.cc.acd.log_in(tenant_id=self.tenant_id, user_id=seat.user_id)
        await node.cc.acd.set_status(tenant_id=self.tenant_id, user_id=seat.user_id, status="available")

    async def go_not_ready(self, node: Node, seat: Seat, reason: str = "break") -> None:
        assert self.tenant_id is not None
        await node.cc.acd.set_status(tenant_id=self.tenant_id, user_id=seat.user_id, status="not_ready", reason=reason)

    async def log_out(self, node: Node, seat: Seat) -> None:
        assert self.tenant_id is not None
        await node.cc.acd.log_out(tenant_id=self.tenant_id, user_id=seat.user_id)

    async def renew_lease(self, node: Node, seat: Seat) -> bool:
        assert self.tenant_id is not None
        return await node.cc.acd.renew_lease(tenant_id=self.tenant_id, agent_id=seat.agent_id)

    # --- reading the tables --------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        assert self.tenant_id is not None
        async with self.db.tenant_session(tenant_id=self.tenant_id) as session:
            agents = {a.id: a for a in await session.scalars(select(Agent).where(Agent.tenant_id == self.tenant_id))}
            calls = {c.id: c for c in await session.scalars(select(Call).where(Call.tenant_id == self.tenant_id))}
        return Snapshot(self.clock.now, agents, calls)

    async def events_after(self, last_id: int) -> list[CallEvent]:
        """Call events appended after ``last_id``, in the order they were written."""
        assert self.tenant_id is not None
        async with self.db.tenant_session(tenant_id=self.tenant_id) as session:
            return list(
                await session.scalars(
                    select(CallEvent).where(CallEvent.tenant_id == self.tenant_id, CallEvent.id > last_id).order_by(CallEvent.id)
                )
            )

    async def ringing_offers(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(agent_id, call_id) of every agent being rung."""
        assert self.tenant_id is not None
        async with self.db.tenant_session(tenant_id=self.tenant_id) as session:
            rows = await session.execute(
                select(Agent.id, Agent.current_call_id).where(
                    Agent.tenant_id == self.tenant_id, Agent.system_state == "ringing", Agent.current_call_id.is_not(None)
                ).order_by(Agent.state_changed_at, Agent.id)
            )
            return [(agent_id, call_id) for agent_id, call_id in rows]

    def seat(self, agent_id: uuid.UUID) -> Seat:
        return next(s for s in self.seats if s.agent_id == agent_id)
