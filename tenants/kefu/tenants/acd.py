"""The ACD: agent presence (status vs system state, lease) and event-driven routing.

Routing runs when something happens — a call is queued, an agent becomes
available or frees up, a ring times out, a lease expires — never by polling
(a slow sweep is only a safety net for a crashed node).  Strategy: longest
idle, among the queue's members that chose ``available``, are ``idle`` and
hold a live lease.

Reservation is atomic across nodes: a conditional UPDATE that succeeds only
while the agent is still available+idle, then a conditional UPDATE that
claims the call only while it is still queued, in one transaction.  Every
write transaction starts with such an UPDATE, so on PostgreSQL the row lock
re-checks the condition after a concurrent commit, and on SQLite the write
lock is taken before anything is read.  Two routers can therefore never book
the same agent or the same call.

Each offer is logged as a call event naming the eligible agents and why the
chosen one won.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.db import Database
from kefu.platform.db.base import utcnow
from kefu.platform.problems import Problem
from kefu.tenants.agents import ui_state
from kefu.tenants.call_log import append_event, lock_agent
from kefu.tenants.clock import AsyncioTimers, Clock, TimerHandle, Timers
from kefu.tenants.events import agent_state_changed, call_state_changed
from kefu.tenants.models import Agent, Call, QueueMember
from kefu.tenants.notify import Hub, agent_channel, call_channel

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30
# A call whose offer timed out (or was withdrawn) goes back ahead of new calls.
REQUEUE_PRIORITY = 10
MAX_REASON_LENGTH = 64
STATUSES = ("available", "not_ready")


@dataclass(frozen=True)
class Offer:
    tenant_id: uuid.UUID
    call_id: uuid.UUID
    agent_id: uuid.UUID
    queue_id: uuid.UUID
    caller_name: str | None
    offered_at: datetime


class _CallTaken(Exception):
    """Another router claimed the call first: roll back the agent reservation."""


_RETRY = object()


def agent_state_message(agent: Agent) -> dict[str, Any]:
    return {
        "type": "agent.state",
        "agent_id": str(agent.id),
        "state": ui_state(agent),
        "status": agent.status,
        "system_state": agent.system_state,
        "reason": agent.not_ready_reason,
        "call_id": str(agent.current_call_id) if agent.current_call_id else None,
    }


class Acd:
    name = "acd"

    def __init__(
        self,
        db: Database,
        *,
        ring_timeout_s: float,
        clock: Clock = utcnow,
        timers: Timers | None = None,
        hub: Hub | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        sweep_interval_s: float | None = 5.0,
    ) -> None:
        self.db = db
        self.ring_timeout_s = ring_timeout_s
        self.clock = clock
        self.timers: Timers = timers or AsyncioTimers(clock)
        self.hub = hub or Hub()
        self.lease_s = lease_s
        self.sweep_interval_s = sweep_interval_s
        self._lease_timers: dict[tuple[uuid.UUID, uuid.UUID], TimerHandle] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # Run once when the service starts (the call flow recovers calls a restart left behind).
        self.on_start: list[Callable[[], Awaitable[object]]] = []

    # --- service lifecycle ---------------------------------------------------

    async def start(self) -> None:
        for hook in self.on_start:
            try:
                await hook()
            except Exception:
                log.exception("ACD start hook failed")
        if self.sweep_interval_s:
            self._sweeper = asyncio.create_task(self._sweep_forever(self.sweep_interval_s))

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self.timers.close()

    async def _sweep_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("ACD sweep failed")

    # --- publishing ------------------------------------------------------------

    def publish_agent(self, tenant_id: uuid.UUID, agent: Agent) -> None:
        self.hub.publish(agent_channel(tenant_id, agent.id), agent_state_message(agent))

    def publish_call(self, tenant_id: uuid.UUID, call_id: uuid.UUID, status: str, **extra: Any) -> None:
        self.hub.publish(call_channel(tenant_id, call_id), {"type": "call.state", "call_id": str(call_id), "status": status, **extra})

    # --- presence --------------------------------------------------------------

    async def _lock_agent_of_user(self, session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Agent:
        result = await session.execute(
            update(Agent).where(Agent.tenant_id == tenant_id, Agent.user_id == user_id).values(user_id=Agent.user_id)
        )
        if result.rowcount != 1:
            raise Problem(403, "not_an_agent", "this user is not an agent of the tenant")
        agent = await session.scalar(
            select(Agent).where(Agent.tenant_id == tenant_id, Agent.user_id == user_id).execution_options(populate_existing=True)
        )
        assert agent is not None
        return agent

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    def _watch_lease(self, tenant_id: uuid.UUID, agent_id: uuid.UUID, expires_at: datetime) -> None:
        key = (tenant_id, agent_id)
        previous = self._lease_timers.pop(key, None)
        if previous is not None:
            previous.cancel()

        async def check() -> None:
            self._lease_timers.pop(key, None)
            if await self.expire_lease(tenant_id=tenant_id, agent_id=agent_id):
                return
            if key in self._lease_timers:
                return  # renewed meanwhile: the renewal armed its own timer
            # The timer may fire marginally early (the loop's monotonic clock vs utcnow):
            # a lease still running is watched again, not left to the sweep.
            lease = await self._live_lease(tenant_id=tenant_id, agent_id=agent_id)
            if lease is not None and lease > self.clock() and key not in self._lease_timers:
                self._watch_lease(tenant_id, agent_id, lease)

        self._lease_timers[key] = self.timers.call_at(expires_at, check)

    async def _live_lease(self, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> datetime | None:
        """When the logged-in agent's lease runs out (None when logged out)."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            return await session.scalar(
                select(Agent.lease_expires_at).where(Agent.tenant_id == tenant_id, Agent.id == agent_id, Agent.status != "offline")
            )

    async def log_in(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Agent:
        """Log the agent in to the seat (not ready, reason ``logged_in``) and start the lease."""
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await self._lock_agent_of_user(session, tenant_id=tenant_id, user_id=user_id)
            if agent.status == "offline":
                agent.status, agent.not_ready_reason, agent.state_changed_at = "not_ready", "logged_in", now
                await agent_state_changed(session, agent)
            agent.lease_expires_at = self._lease_until(now)
            await session.flush()
        self._watch_lease(tenant_id, agent.id, agent.lease_expires_at)
        self.publish_agent(tenant_id, agent)
        return agent

    async def set_status(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, status: str, reason: str | None = None) -> Agent:
        """The agent's own choice: ``available`` or ``not_ready`` (with a reason code)."""
        if status not in STATUSES:
            raise Problem(400, "invalid_status", "status must be 'available' or 'not_ready'")
        if reason is not None and (not reason.strip() or len(reason) > MAX_REASON_LENGTH):
            raise Problem(400, "invalid_reason", f"the reason must have 1 to {MAX_REASON_LENGTH} characters")
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await self._lock_agent_of_user(session, tenant_id=tenant_id, user_id=user_id)
            if agent.status == "offline":
                raise Problem(409, "agent_logged_out", "log in to the seat first")
            new_reason = None if status == "available" else (reason.strip() if reason else "not_ready")
            if (agent.status, agent.not_ready_reason) != (status, new_reason):
                agent.status, agent.not_ready_reason, agent.state_changed_at = status, new_reason, now
                await agent_state_changed(session, agent)
            agent.lease_expires_at = self._lease_until(now)
            await session.flush()
        self._watch_lease(tenant_id, agent.id, agent.lease_expires_at)
        self.publish_agent(tenant_id, agent)
        if agent.status == "available" and agent.system_state == "idle":
            await self.route_for_agent(tenant_id=tenant_id, agent_id=agent.id)
        return agent

    async def log_out(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Agent:
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await self._lock_agent_of_user(session, tenant_id=tenant_id, user_id=user_id)
            if agent.system_state == "on_call":
                raise Problem(409, "agent_on_call", "hang up the current call before logging out")
            queue_id = await self._withdraw_offer(session, tenant_id=tenant_id, agent=agent, now=now, reason="agent_logged_out")
            agent.status, agent.not_ready_reason, agent.lease_expires_at, agent.state_changed_at = "offline", None, None, now
            await session.flush()
            await agent_state_changed(session, agent)
        handle = self._lease_timers.pop((tenant_id, agent.id), None)
        if handle is not None:
            handle.cancel()
        self.publish_agent(tenant_id, agent)
        if queue_id is not None:
            await self.route_queue(tenant_id=tenant_id, queue_id=queue_id)
        return agent

    async def renew_lease(self, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
        """Called by the agent's live connection; False once the agent is logged out."""
        now = self.clock()
        expires = self._lease_until(now)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            result = await session.execute(
                update(Agent)
                .where(Agent.tenant_id == tenant_id, Agent.id == agent_id, Agent.status != "offline")
                .values(lease_expires_at=expires)
            )
        if result.rowcount != 1:
            return False
        self._watch_lease(tenant_id, agent_id, expires)
        return True

    async def expire_lease(self, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
        """An agent whose lease ran out goes offline; a call ringing there is re-queued."""
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await lock_agent(
                session, tenant_id=tenant_id, agent_id=agent_id,
                when=(Agent.status != "offline", Agent.lease_expires_at <= now),
                values={"status": "offline", "not_ready_reason": None, "lease_expires_at": None, "state_changed_at": now},
            )
            if agent is None:
                return False
            queue_id = await self._withdraw_offer(session, tenant_id=tenant_id, agent=agent, now=now, reason="lease_expired")
            await agent_state_changed(session, agent)
        log.info("agent %s lease expired", agent_id)
        self.publish_agent(tenant_id, agent)
        if queue_id is not None:
            await self.route_queue(tenant_id=tenant_id, queue_id=queue_id)
        return True

    async def _withdraw_offer(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, agent: Agent, now: datetime, reason: str, event_type: str = "offer_withdrawn"
    ) -> uuid.UUID | None:
        """Free a ringing (locked) agent and put its call back in the queue; returns the queue to re-route."""
        withdrawn = await withdraw_offer(session, tenant_id=tenant_id, agent=agent, now=now, reason=reason, event_type=event_type)
        if withdrawn is None:
            return None
        call_id, queue_id = withdrawn
        self._after_commit_publish_call(session, tenant_id, call_id, "queued")
        return queue_id

    def _after_commit_publish_call(self, session: AsyncSession, tenant_id: uuid.UUID, call_id: uuid.UUID, status: str) -> None:
        from kefu.platform.db.session import on_commit

        async def publish() -> None:
            self.publish_call(tenant_id, call_id, status)

        on_commit(session, publish)

    # --- routing ---------------------------------------------------------------

    async def route_queue(self, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> list[Offer]:
        """Offer the queue's waiting calls to its free agents until one side runs out."""
        offers: list[Offer] = []
        for _ in range(10_000):
            outcome = await self._route_one(tenant_id=tenant_id, queue_id=queue_id)
            if outcome is _RETRY:
                continue
            if outcome is None:
                break
            offers.append(outcome)  # type: ignore[arg-type]
        return offers

    async def route_for_agent(self, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> list[Offer]:
        """An agent became free: route its queues, the one with the longest-waiting call first."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            rows = await session.execute(
                select(QueueMember.queue_id, func.min(Call.queued_at))
                .join(Call, (Call.tenant_id == QueueMember.tenant_id) & (Call.queue_id == QueueMember.queue_id) & (Call.status == "queued"))
                .where(QueueMember.tenant_id == tenant_id, QueueMember.agent_id == agent_id)
                .group_by(QueueMember.queue_id)
                .order_by(func.min(Call.queued_at), QueueMember.queue_id)
            )
            queue_ids = [queue_id for queue_id, _ in rows]
        offers: list[Offer] = []
        for queue_id in queue_ids:
            offers.extend(await self.route_queue(tenant_id=tenant_id, queue_id=queue_id))
        return offers

    async def _route_one(self, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> Offer | None | object:
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(
                select(Call)
                .where(Call.tenant_id == tenant_id, Call.queue_id == queue_id, Call.status == "queued")
                .order_by(Call.priority.desc(), Call.queued_at, Call.id)
                .limit(1)
            )
            if call is None:
                return None
            candidates = (
                await session.execute(
                    select(Agent.id, Agent.state_changed_at)
                    .join(QueueMember, (QueueMember.tenant_id == Agent.tenant_id) & (QueueMember.agent_id == Agent.id))
                    .where(
                        Agent.tenant_id == tenant_id, QueueMember.queue_id == queue_id, Agent.status == "available",
                        Agent.system_state == "idle", Agent.lease_expires_at > now,
                    )
                    .order_by(Agent.state_changed_at, Agent.id)
                )
            ).all()
        if not candidates:
            return None
        eligible = [
            {"agent_id": str(agent_id), "idle_since": since.isoformat(), "idle_s": round((now - since).total_seconds(), 3)}
            for agent_id, since in candidates
        ]
        skipped: list[str] = []
        for (agent_id, since), explained in zip(candidates, eligible):
            try:
                async with self.db.tenant_session(tenant_id=tenant_id) as session:
                    reserved = await lock_agent(
                        session, tenant_id=tenant_id, agent_id=agent_id,
                        when=(Agent.status == "available", Agent.system_state == "idle", Agent.lease_expires_at > now),
                        values={"system_state": "ringing", "current_call_id": call.id, "state_changed_at": now},
                    )
                    if reserved is None:
                        skipped.append(str(agent_id))
                        continue
                    claimed = await session.execute(
                        update(Call)
                        .where(Call.tenant_id == tenant_id, Call.id == call.id, Call.status == "queued")
                        .values(status="ringing", agent_id=agent_id, offered_at=now)
                    )
                    if claimed.rowcount != 1:
                        raise _CallTaken
                    reason = (
                        f"longest idle: idle since {explained['idle_since']} ({explained['idle_s']} s), "
                        f"the longest of {len(eligible)} eligible agent(s)"
                    )
                    if skipped:
                        reason += f"; {len(skipped)} idler agent(s) were reserved by another router first"
                    await append_event(
                        session, tenant_id=tenant_id, call_id=call.id, type="offered", actor="acd", at=now,
                        data={"agent_id": str(agent_id), "strategy": "longest_idle", "eligible": eligible, "skipped": skipped, "reason": reason},
                    )
                    await agent_state_changed(session, reserved)
                    await call_state_changed(session, tenant_id=tenant_id, call_id=call.id, status="ringing", queue_id=queue_id, agent_id=agent_id)
                    agent = reserved
            except _CallTaken:
                return _RETRY
            assert agent is not None
            offer = Offer(tenant_id, call.id, agent_id, queue_id, call.caller_name, now)
            self._after_offer(offer, agent)
            return offer
        return None

    def _after_offer(self, offer: Offer, agent: Agent) -> None:
        channel = agent_channel(offer.tenant_id, offer.agent_id)
        self.hub.publish(channel, agent_state_message(agent))
        self.hub.publish(channel, {"type": "call.offered", "call_id": str(offer.call_id), "caller_name": offer.caller_name})
        self.publish_call(offer.tenant_id, offer.call_id, "ringing")

        async def timeout() -> None:
            await self.ring_timeout(tenant_id=offer.tenant_id, call_id=offer.call_id, agent_id=offer.agent_id, offered_at=offer.offered_at)

        self.timers.call_at(offer.offered_at + timedelta(seconds=self.ring_timeout_s), timeout)

    async def ring_timeout(
        self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, agent_id: uuid.UUID, offered_at: datetime | None = None
    ) -> bool:
        """No answer: the agent becomes not ready (``no_answer``) and the call is offered again.

        With ``offered_at`` (the timer's own offer) only that offer times out;
        without it (the sweep) any offer older than the ring timeout does.
        """
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await lock_agent(
                session, tenant_id=tenant_id, agent_id=agent_id, when=(Agent.current_call_id == call_id, Agent.system_state == "ringing")
            )
            if agent is None:
                return False
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
            if call is None or call.status != "ringing" or call.agent_id != agent_id or call.offered_at is None:
                return False
            if offered_at is not None and call.offered_at != offered_at:
                return False
            if offered_at is None and call.offered_at > now - timedelta(seconds=self.ring_timeout_s):
                return False
            agent.status, agent.not_ready_reason = "not_ready", "no_answer"
            queue_id = await self._withdraw_offer(
                session, tenant_id=tenant_id, agent=agent, now=now, reason="no_answer", event_type="offer_timeout"
            )
            await agent_state_changed(session, agent)
        self.publish_agent(tenant_id, agent)
        if queue_id is not None:
            await self.route_queue(tenant_id=tenant_id, queue_id=queue_id)
        return True

    async def sweep(self) -> None:
        """Safety net across tenants: expired leases and rings left by a crashed node."""
        now = self.clock()
        ring_cutoff = now - timedelta(seconds=self.ring_timeout_s)
        async with self.db.platform_session(reason="ACD sweep: expired presence leases and stale offers") as session:
            leases = (
                await session.execute(
                    select(Agent.tenant_id, Agent.id).where(Agent.status != "offline", Agent.lease_expires_at <= now)
                )
            ).all()
            rings = (
                await session.execute(
                    select(Call.tenant_id, Call.id, Call.agent_id).where(Call.status == "ringing", Call.offered_at <= ring_cutoff)
                )
            ).all()
        for tenant_id, call_id, agent_id in rings:
            if agent_id is not None:
                await self.ring_timeout(tenant_id=tenant_id, call_id=call_id, agent_id=agent_id)
        for tenant_id, agent_id in leases:
            await self.expire_lease(tenant_id=tenant_id, agent_id=agent_id)


@dataclass(frozen=True)
class TenantLoggedOut:
    """What ``end_tenant_activity`` changed, for the pushes and media work after commit."""

    agents: int
    # (call_id, agent_id the call was ringing at, or None when it was queued)
    ended_calls: list[tuple[uuid.UUID, uuid.UUID | None]]
    # (agent_id, the agent.state push) of every agent whose state changed
    agent_states: list[tuple[uuid.UUID, dict[str, Any]]]


async def end_tenant_activity(
    session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime | None = None, reason: str = "tenant_suspended"
) -> TenantLoggedOut:
    """Tenant suspended or closed: every agent logged out, and its calls still waiting
    (queued or ringing) ended with ``reason`` — nobody can log in to answer them.
    Calls in progress continue.  Lock order: agent rows, then call rows."""
    now = now or utcnow()
    logged_out = list(
        await session.scalars(
            update(Agent)
            .where(Agent.tenant_id == tenant_id, Agent.status != "offline")
            .values(status="offline", not_ready_reason=None, lease_expires_at=None, state_changed_at=now)
            .returning(Agent.id)
        )
    )
    freed = list(
        await session.scalars(
            update(Agent)
            .where(Agent.tenant_id == tenant_id, Agent.system_state.in_(("reserved", "ringing")))
            .values(system_state="idle", current_call_id=None, state_changed_at=now)
            .returning(Agent.id)
        )
    )
    waiting = (
        await session.execute(
            select(Call.id, Call.status, Call.queue_id, Call.agent_id)
            .where(Call.tenant_id == tenant_id, Call.status.in_(("queued", "ringing")))
            .order_by(Call.queued_at, Call.id)
            .with_for_update()
        )
    ).all()
    ended: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    for call_id, was, queue_id, agent_id in waiting:
        result = await session.execute(
            update(Call)
            .where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == was)
            # A ring never answered leaves no trace at the agent (as when any call ends ringing).
            .values(status="ended", ended_at=now, end_reason=reason, offered_at=None, agent_id=None)
        )
        if result.rowcount != 1:
            continue
        await append_event(session, tenant_id=tenant_id, call_id=call_id, type="ended", actor="system", at=now,
                           data={"reason": reason, "previous_status": was})
        await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="ended", queue_id=queue_id, end_reason=reason)
        ended.append((call_id, agent_id if was == "ringing" else None))
    states: list[tuple[uuid.UUID, dict[str, Any]]] = []
    changed = set(logged_out) | set(freed)
    if changed:
        agents = await session.scalars(
            select(Agent).where(Agent.tenant_id == tenant_id, Agent.id.in_(changed)).order_by(Agent.id).execution_options(populate_existing=True)
        )
        for agent in agents:
            await agent_state_changed(session, agent)
            states.append((agent.id, agent_state_message(agent)))
    return TenantLoggedOut(len(logged_out), ended, states)


async def log_out_all_agents(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Log every agent of the tenant out (tenant suspended) and end its waiting calls
    (``tenant_suspended``); returns how many agents were logged out.

    This alone changes the database only; ``CallFlow.agents_logged_out`` (the hook the
    admin API runs) also tells the media plane and the sockets after commit.
    """
    return (await end_tenant_activity(session, tenant_id=tenant_id, now=now)).agents


async def withdraw_offer(
    session: AsyncSession, *, tenant_id: uuid.UUID, agent: Agent, now: datetime, reason: str,
    event_type: str = "offer_withdrawn", actor: str = "acd",
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """Free a ringing (locked) agent and put its call back in the queue (ahead of new calls).

    Returns ``(call_id, queue_id)`` of the re-queued call, or None when nothing was ringing.
    """
    if agent.system_state not in ("reserved", "ringing"):
        return None
    call_id = agent.current_call_id
    agent.system_state, agent.current_call_id, agent.state_changed_at = "idle", None, now
    await session.flush()
    if call_id is None:
        return None
    result = await session.execute(
        update(Call)
        .where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == "ringing", Call.agent_id == agent.id)
        .values(
            status="queued", agent_id=None, offered_at=None,
            priority=case((Call.priority < REQUEUE_PRIORITY, REQUEUE_PRIORITY), else_=Call.priority),
        )
    )
    if result.rowcount != 1:
        return None
    call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id).execution_options(populate_existing=True))
    assert call is not None
    await append_event(session, tenant_id=tenant_id, call_id=call_id, type=event_type, actor=actor, at=now, data={"agent_id": str(agent.id), "reason": reason})
    await append_event(session, tenant_id=tenant_id, call_id=call_id, type="requeued", actor=actor, at=now, data={"queue_id": str(call.queue_id), "priority": call.priority})
    await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="queued", queue_id=call.queue_id)
    return call_id, call.queue_id
