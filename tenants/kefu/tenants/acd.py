"""The ACD: agent presence (status vs system state, lease), after-call work, and
event-driven routing with queue rules (docs/acd.md).

Routing runs when something happens — a call is queued, an agent becomes
available or frees up, a ring times out, a lease expires, a waiting call's
timer fires (skills relaxation, preferred agent window, overflow, maximum
wait) — never by polling (a slow sweep is only a safety net for a crashed
node).  The decision itself is :mod:`kefu.tenants.routing`: pure, over the
facts loaded here (waiting calls in order, the queue's free members, their
skills and per-queue counters).

Reservation is atomic across nodes: a conditional UPDATE that succeeds only
while the agent is still available+idle, then a conditional UPDATE that
claims the call only while it is still queued, in one transaction.  Every
write transaction starts with such an UPDATE, so on PostgreSQL the row lock
re-checks the condition after a concurrent commit, and on SQLite the write
lock is taken before anything is read.  Two routers can therefore never book
the same agent or the same call.  Lock order everywhere: agent rows, then the
call row.

Each offer is logged as a call event naming the eligible agents and why the
chosen one won.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from kefu.billing import services as billing
from kefu.platform import audit, metrics
from kefu.platform.db import Database
from kefu.platform.db.base import utcnow
from kefu.platform.db.session import on_commit
from kefu.platform.problems import Problem
from kefu.tenants import routing
from kefu.tenants.acd_config import SYSTEM_REASON_CODES
from kefu.tenants.agents import ui_state
from kefu.tenants.call_log import append_event, lock_agent, lock_call
from kefu.tenants.clock import AsyncioTimers, Clock, TimerHandle, Timers
from kefu.tenants.events import agent_state_changed, call_state_changed
from kefu.tenants.models import (
    Agent,
    AgentSkill,
    Call,
    CallEvent,
    Queue,
    QueueMember,
    QueueSkill,
    ReasonCode,
    Schedule,
    WrapUpCode,
)
from kefu.tenants.notify import Hub, agent_channel, call_channel
from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30
MAX_REASON_LENGTH = 64
STATUSES = ("available", "not_ready")
# The reasons an agent may choose while its tenant has defined none.
DEFAULT_REASON_CODES = ("break", "lunch", "meeting", "training", "coaching", "other")
# Waiting calls one routing pass looks at (in order); a pass that books someone looks again.
ROUTE_WINDOW = 1000
# A returning caller's last agent is looked up this far back.
RETURNING_CALLER_DAYS = 30
# A call moved by overflow rules this many times is ended instead (queues overflowing into each other).
MAX_QUEUE_MOVES = 10
# Handle time assumed for expected-wait figures until a queue has answered calls.
DEFAULT_HANDLE_S = 180.0


@dataclass(frozen=True)
class Offer:
    tenant_id: uuid.UUID
    call_id: uuid.UUID
    agent_id: uuid.UUID
    queue_id: uuid.UUID
    caller_name: str | None
    offered_at: datetime


@dataclass
class Arrival:
    """What ``offer_on_arrival`` did in the arriving call's transaction."""

    call: Call
    queue: Any  # the queue's row (its rules)
    offer: Offer | None = None
    agent: Any = None  # the booked agent's row
    route: bool = False  # a routing pass is still needed


class QueueActions(Protocol):
    """What the call flow does for the ACD when a waiting call leaves its queue by rule."""

    async def queue_action(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, action: str, cause: str) -> None: ...


class _CallTaken(Exception):
    """Another router claimed the call first: roll back the agent reservation."""


class _Unchanged(Exception):
    """Nothing to do after all: roll the transaction back."""


def agent_state_message(agent: Agent) -> dict[str, Any]:
    return {
        "type": "agent.state",
        "agent_id": str(agent.id),
        "state": ui_state(agent),
        "status": agent.status,
        "system_state": agent.system_state,
        "reason": agent.not_ready_reason,
        "call_id": str(agent.current_call_id) if agent.current_call_id else None,
        "wrap_up_call_id": str(agent.wrap_up_call_id) if agent.wrap_up_call_id else None,
        "wrap_up_until": agent.wrap_up_until.isoformat() if agent.wrap_up_until else None,
    }


@dataclass(frozen=True)
class Seat:
    """Which agent a presence change is for: the signed-in agent's own (``user_id``) or
    one a supervisor acts on (``agent_id``)."""

    user_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Forced:
    """A supervisor's force ready / not-ready / logout of an agent: written to the
    audit log in the change's transaction and shown on the agent's desktop."""

    agent_id: uuid.UUID
    actor: str  # the audit log's name of the supervisor (user:<id>)
    name: str  # the supervisor's display name, shown to the agent

    async def audit(self, session: AsyncSession, *, tenant_id: uuid.UUID, action: str, agent: Agent, before: dict[str, Any]) -> None:
        await audit.record(
            session, tenant_id=tenant_id, actor=self.actor, action=f"agent.forced_{action}", target=f"agent:{agent.id}",
            detail={"before": before, "after": {"status": agent.status, "reason": agent.not_ready_reason}, "supervisor": self.name},
        )

    def shown(self, action: str) -> dict[str, str]:
        return {"action": action, "by": self.name}


def _today(now: datetime) -> date:
    return now.date()


def _order_key(row: Any) -> tuple[int, datetime, uuid.UUID]:
    return (-row.priority, row.queued_at, row.id)


def _take_in_order(rows: list[Any], call: Call) -> None:
    """Put ``call`` (not written yet) among the queue's waiting ``rows`` in routing order;
    left out when it falls beyond a full routing window."""
    if any(row.id == call.id for row in rows):
        return  # already written (and read back)
    key = _order_key(call)
    at = next((i for i, row in enumerate(rows) if _order_key(row) > key), len(rows))
    if at < ROUTE_WINDOW:
        rows.insert(at, call)
        del rows[ROUTE_WINDOW:]


def call_needs(call_skills: list[dict[str, Any]] | None, queue_skills: list[routing.SkillNeed]) -> tuple[routing.SkillNeed, ...]:
    """The call's own skill needs (from the IVR or the API) over its queue's, per skill."""
    needs = {need.skill_id: need for need in queue_skills}
    for raw in call_skills or ():
        try:
            skill_id = uuid.UUID(str(raw["skill_id"]))
            needs[skill_id] = routing.SkillNeed(skill_id, int(raw.get("min_proficiency", 1)), bool(raw.get("required", True)))
        except (KeyError, TypeError, ValueError):
            continue  # validated when stored; an old malformed entry is not a routing failure
    return tuple(needs[k] for k in sorted(needs, key=str))


async def count_for_strategies(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID | None, agent_id: uuid.UUID, now: datetime,
    answered: int = 0, talk_s: int = 0,
) -> None:
    """Today's per-queue counters of a member (fewest calls, least talk time); a new day starts at 0."""
    if queue_id is None:
        return
    today = _today(now)
    fresh = QueueMember.counters_day == today
    await session.execute(
        update(QueueMember)
        .where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue_id, QueueMember.agent_id == agent_id)
        .values(
            calls_answered=case((fresh, QueueMember.calls_answered + answered), else_=answered),
            talk_s=case((fresh, QueueMember.talk_s + talk_s), else_=talk_s),
            counters_day=today,
        )
    )


def queue_rules(queue: Queue) -> routing.Rules:
    return routing.Rules(strategy=queue.strategy, relax_after_s=queue.relax_after_s, relax_any_after_s=queue.relax_any_after_s)


# The routing path's statements, built once (building a statement costs about as much
# CPU as running it) and over the tables (no ORM processing).  A queue is read as a plain
# row (its rules), not an ORM object.
_queues, _calls, _agents, _members = Queue.__table__.c, Call.__table__.c, Agent.__table__.c, QueueMember.__table__.c
_queue_skills, _agent_skills = QueueSkill.__table__.c, AgentSkill.__table__.c
_QUEUE_ROW = select(
    Queue.__table__,
    # How many skills the queue needs (most need none: their members' skills are not read).
    select(func.count()).where(_queue_skills.tenant_id == _queues.tenant_id, _queue_skills.queue_id == _queues.id)
    .scalar_subquery().label("skill_needs"),
).where(_queues.tenant_id == bindparam("t"), _queues.id == bindparam("q"))
_WAITING_CALLS = (
    select(_calls.id, _calls.priority, _calls.queued_at, _calls.skills, _calls.preferred_agent_id, _calls.preferred_until, _calls.caller_name)
    .where(_calls.tenant_id == bindparam("t"), _calls.queue_id == bindparam("q"), _calls.status == "queued")
    .order_by(_calls.priority.desc(), _calls.queued_at, _calls.id)
    .limit(ROUTE_WINDOW)
)
_FREE_MEMBERS = (
    select(_agents.id, _agents.state_changed_at, _members.position, _members.last_offered_at, _members.counters_day,
           _members.calls_answered, _members.talk_s)
    .join(QueueMember.__table__, (_members.tenant_id == _agents.tenant_id) & (_members.agent_id == _agents.id))
    .where(
        _agents.tenant_id == bindparam("t"), _members.queue_id == bindparam("q"), _agents.status == "available",
        _agents.system_state == "idle", _agents.lease_expires_at > bindparam("now"),
    )
)
_QUEUE_SKILLS = select(_queue_skills.skill_id, _queue_skills.min_proficiency, _queue_skills.required).where(
    _queue_skills.tenant_id == bindparam("t"), _queue_skills.queue_id == bindparam("q")
)
_MEMBER_SKILLS = select(_agent_skills.agent_id, _agent_skills.skill_id, _agent_skills.proficiency).where(
    _agent_skills.tenant_id == bindparam("t"),
    _agent_skills.agent_id.in_(select(_members.agent_id).where(_members.tenant_id == bindparam("t"), _members.queue_id == bindparam("q"))),
)
# Booking: the agent while still available, idle and leased (its row comes back, for the
# events and the desktop); the call while still queued in the queue; the member's last offer.
_RESERVE_AGENT = (
    update(Agent.__table__)
    .where(
        _agents.tenant_id == bindparam("t"), _agents.id == bindparam("a"), _agents.status == "available",
        _agents.system_state == "idle", _agents.lease_expires_at > bindparam("now"),
    )
    .values(system_state="ringing", current_call_id=bindparam("c"), state_changed_at=bindparam("now"))
    .returning(*Agent.__table__.c)
)
_CLAIM_CALL = (
    update(Call.__table__)
    .where(_calls.tenant_id == bindparam("t"), _calls.id == bindparam("c"), _calls.status == "queued", _calls.queue_id == bindparam("q"))
    .values(status="ringing", agent_id=bindparam("a"), offered_at=bindparam("now"), ring_group=False)
)
_MEMBER_OFFERED = (
    update(QueueMember.__table__)
    .where(_members.tenant_id == bindparam("t"), _members.queue_id == bindparam("q"), _members.agent_id == bindparam("a"))
    .values(last_offered_at=bindparam("now"))
)


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
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.ring_timeout_s = ring_timeout_s
        self.clock = clock
        self.timers: Timers = timers or AsyncioTimers(clock)
        self.hub = hub or Hub()
        self.lease_s = lease_s
        self.sweep_interval_s = sweep_interval_s
        self.rng = rng or random.Random()
        # The call flow acts for queue rules (hang up, voicemail, callback); set by CallFlow.
        self.actions: QueueActions | None = None
        # Plays announcements to waiting callers (the media plane), when there is one.
        self.media: Callable[[], Any] = lambda: None
        self._lease_timers: dict[tuple[uuid.UUID, uuid.UUID], TimerHandle] = {}
        # The current announcement chain of each waiting call.
        self._announcing: dict[uuid.UUID, int] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # Run once when the service starts (the call flow recovers calls a restart left behind).
        self.on_start: list[Callable[[], Awaitable[object]]] = []
        # Run by every sweep with its time: other contexts' safety nets for timers a dead node held.
        self.sweepers: list[Callable[[datetime], Awaitable[object]]] = []
        # Run when the service stops (before its timers are cancelled).
        self.on_stop: list[Callable[[], Awaitable[object]]] = []

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
        for hook in self.on_stop:
            try:
                await hook()
            except Exception:
                log.exception("ACD stop hook failed")
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

    def publish_agent(self, tenant_id: uuid.UUID, agent: Agent, **extra: Any) -> None:
        self.hub.publish(agent_channel(tenant_id, agent.id), {**agent_state_message(agent), **extra})

    def publish_call(self, tenant_id: uuid.UUID, call_id: uuid.UUID, status: str, **extra: Any) -> None:
        self.hub.publish(call_channel(tenant_id, call_id), {"type": "call.state", "call_id": str(call_id), "status": status, **extra})

    def _after_commit(self, session: AsyncSession, action: Callable[[], Any]) -> None:
        async def run() -> None:
            result = action()
            if asyncio.iscoroutine(result):
                await result

        on_commit(session, run)

    # --- presence --------------------------------------------------------------

    async def _lock_agent_of_user(self, session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Agent:
        return await self._lock_seat(session, tenant_id=tenant_id, seat=Seat(user_id=user_id))

    async def _lock_seat(self, session: AsyncSession, *, tenant_id: uuid.UUID, seat: Seat) -> Agent:
        """Lock the agent row (the agent's own user, or an agent a supervisor acts on) and return it."""
        where = Agent.user_id == seat.user_id if seat.agent_id is None else Agent.id == seat.agent_id
        result = await session.execute(update(Agent).where(Agent.tenant_id == tenant_id, where).values(user_id=Agent.user_id))
        if result.rowcount != 1:
            if seat.agent_id is not None:
                raise Problem(404, "not_found", "agent not found")
            raise Problem(403, "not_an_agent", "this user is not an agent of the tenant")
        agent = await session.scalar(select(Agent).where(Agent.tenant_id == tenant_id, where).execution_options(populate_existing=True))
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

    async def check_reason(self, session: AsyncSession, *, tenant_id: uuid.UUID, reason: str) -> str:
        """A not-ready reason the agent may choose: one of the tenant's active codes
        (or, while the tenant has none active, one of ``DEFAULT_REASON_CODES``)."""
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON_LENGTH:
            raise Problem(400, "invalid_reason", f"the reason must have 1 to {MAX_REASON_LENGTH} characters")
        if reason in SYSTEM_REASON_CODES:
            raise Problem(400, "reserved_reason_code", f"'{reason}' is set by Kefu itself and cannot be chosen")
        active = set(await session.scalars(select(ReasonCode.code).where(ReasonCode.tenant_id == tenant_id, ReasonCode.active.is_(True))))
        allowed = active or set(DEFAULT_REASON_CODES)  # as GET /api/v1/agent/reason-codes offers them
        if reason not in allowed:
            raise Problem(400, "unknown_reason_code", "not one of the tenant's not-ready reason codes", allowed=sorted(allowed))
        return reason

    async def set_status(
        self, *, tenant_id: uuid.UUID, user_id: uuid.UUID | None = None, status: str, reason: str | None = None, forced: Forced | None = None,
    ) -> Agent:
        """The agent's own choice: ``available`` or ``not_ready`` (with a reason code);
        or a supervisor's (``forced``: 强制示闲 / 强制示忙), audited and shown to the agent."""
        if status not in STATUSES:
            raise Problem(400, "invalid_status", "status must be 'available' or 'not_ready'")
        if reason is not None and (not reason.strip() or len(reason) > MAX_REASON_LENGTH):
            raise Problem(400, "invalid_reason", f"the reason must have 1 to {MAX_REASON_LENGTH} characters")
        now = self.clock()
        seat = Seat(user_id=user_id) if forced is None else Seat(agent_id=forced.agent_id)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await self._lock_seat(session, tenant_id=tenant_id, seat=seat)
            if agent.status == "offline":
                raise Problem(409, "agent_logged_out", "log in to the seat first" if forced is None else "the agent is not logged in to a seat")
            if status == "available" and await billing.service_suspended(session, tenant_id=tenant_id):
                raise Problem(409, "billing_suspended", "the service is suspended for non-payment: an administrator must settle the open invoice")
            if status == "available":
                new_reason = None
            elif reason is not None:
                new_reason = await self.check_reason(session, tenant_id=tenant_id, reason=reason)
            else:
                new_reason = "not_ready" if forced is None else "supervisor"
            before = {"status": agent.status, "reason": agent.not_ready_reason}
            if (agent.status, agent.not_ready_reason) != (status, new_reason):
                agent.status, agent.not_ready_reason = status, new_reason
                if agent.system_state == "idle":
                    agent.state_changed_at = now  # idle (and available) since now
                await agent_state_changed(session, agent)
            if forced is None:
                agent.lease_expires_at = self._lease_until(now)  # the agent's own request shows it is there
            else:
                action = "ready" if status == "available" else "not_ready"
                await forced.audit(session, tenant_id=tenant_id, action=action, agent=agent, before=before)
            await session.flush()
        if forced is None:
            self._watch_lease(tenant_id, agent.id, agent.lease_expires_at)
            self.publish_agent(tenant_id, agent)
        else:
            self.publish_agent(tenant_id, agent, forced=forced.shown("ready" if status == "available" else "not_ready"))
        if agent.status == "available" and agent.system_state == "idle":
            await self.route_for_agent(tenant_id=tenant_id, agent_id=agent.id)
        return agent

    async def log_out(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID | None = None, forced: Forced | None = None) -> Agent:
        """The agent leaves the seat; or a supervisor logs the agent out (``forced``: 强制签出)."""
        now = self.clock()
        seat = Seat(user_id=user_id) if forced is None else Seat(agent_id=forced.agent_id)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await self._lock_seat(session, tenant_id=tenant_id, seat=seat)
            if agent.system_state == "on_call":
                if forced is not None:
                    raise Problem(409, "agent_on_call", "the agent is on a call: log the agent out when the call has ended")
                raise Problem(409, "agent_on_call", "hang up the current call before logging out")
            if forced is not None and agent.status == "offline":
                raise Problem(409, "agent_logged_out", "the agent is not logged in to a seat")
            before = {"status": agent.status, "reason": agent.not_ready_reason}
            requeued = await self._withdraw_offer(session, tenant_id=tenant_id, agent=agent, now=now, reason="agent_logged_out")
            await self._close_wrap_up(session, tenant_id=tenant_id, agent=agent, now=now, by="logged_out")
            agent.status, agent.not_ready_reason, agent.lease_expires_at, agent.state_changed_at = "offline", None, None, now
            await session.flush()
            await agent_state_changed(session, agent)
            if forced is not None:
                await forced.audit(session, tenant_id=tenant_id, action="logout", agent=agent, before=before)
        handle = self._lease_timers.pop((tenant_id, agent.id), None)
        if handle is not None:
            handle.cancel()
        self.publish_agent(tenant_id, agent, **({} if forced is None else {"forced": forced.shown("logout")}))
        if requeued is not None:
            await self.back_in_queue(tenant_id=tenant_id, call_id=requeued[0], queue_id=requeued[1])
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
            requeued = await self._withdraw_offer(session, tenant_id=tenant_id, agent=agent, now=now, reason="lease_expired")
            await self._close_wrap_up(session, tenant_id=tenant_id, agent=agent, now=now, by="lease_expired")
            await agent_state_changed(session, agent)
        log.info("agent %s lease expired", agent_id)
        self.publish_agent(tenant_id, agent)
        if requeued is not None:
            await self.back_in_queue(tenant_id=tenant_id, call_id=requeued[0], queue_id=requeued[1])
        return True

    async def _withdraw_offer(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, agent: Agent, now: datetime, reason: str, event_type: str = "offer_withdrawn"
    ) -> tuple[uuid.UUID, uuid.UUID] | None:
        """Free a ringing (locked) agent and put its call back in the queue; returns
        ``(call_id, queue_id)`` for ``back_in_queue`` after commit."""
        withdrawn = await withdraw_offer(session, tenant_id=tenant_id, agent=agent, now=now, reason=reason, event_type=event_type)
        if withdrawn is None:
            return None
        call_id, queue_id = withdrawn
        if queue_id is None:
            return None  # another agent of a ring-all group still rings
        self._after_commit(session, lambda: self.publish_call(tenant_id, call_id, "queued"))
        return call_id, queue_id

    async def back_in_queue(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, queue_id: uuid.UUID) -> None:
        """A call went back to its queue (its offer timed out or was withdrawn): a rule
        that came due meanwhile (overflow, maximum wait) applies now, its timers and
        announcements run again, and the queue is routed."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            row = (
                await session.execute(
                    select(Call, Queue).join(Queue, (Queue.tenant_id == Call.tenant_id) & (Queue.id == Call.queue_id))
                    .where(Call.tenant_id == tenant_id, Call.id == call_id)
                )
            ).first()
        if row is not None and row[0].status == "queued" and row[0].queue_id == queue_id:
            call, queue = row
            for cause in ("overflow", "max_wait"):
                if await self.leave_queue(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id, cause=cause, due=True):
                    await self.route_queue(tenant_id=tenant_id, queue_id=queue_id)
                    return
            self._arm_waiting(call, queue)
        await self.route_queue(tenant_id=tenant_id, queue_id=queue_id)

    # --- after-call work -------------------------------------------------------

    async def _close_wrap_up(self, session: AsyncSession, *, tenant_id: uuid.UUID, agent: Agent, now: datetime, by: str) -> None:
        """End a (locked) agent's after-call work, logging it on the wrapped-up call."""
        if agent.system_state != "wrap_up":
            return
        call_id, started = agent.wrap_up_call_id, agent.wrap_up_started_at
        agent.system_state, agent.wrap_up_call_id, agent.wrap_up_until, agent.wrap_up_started_at = "idle", None, None, None
        agent.state_changed_at = now
        await session.flush()
        if call_id is None:
            return
        call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
        if call is None:
            return
        if by != "agent" and call.disposition_code is None and await self._disposition_required(session, tenant_id=tenant_id, queue_id=call.queue_id):
            await append_event(session, tenant_id=tenant_id, call_id=call_id, type="disposition_missing", actor="acd", at=now,
                               data={"agent_id": str(agent.id)})
        await append_event(session, tenant_id=tenant_id, call_id=call_id, type="wrap_up_ended", actor="acd" if by != "agent" else f"agent:{agent.id}", at=now,
                           data={"agent_id": str(agent.id), "by": by, "wrap_up_s": round((now - started).total_seconds(), 3) if started else None})

    async def _disposition_required(self, session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID | None) -> bool:
        if queue_id is None:
            return False
        return bool(await session.scalar(select(Queue.disposition_required).where(Queue.tenant_id == tenant_id, Queue.id == queue_id)))

    def watch_wrap_up(self, tenant_id: uuid.UUID, agent_id: uuid.UUID, call_id: uuid.UUID, until: datetime | None) -> None:
        """Arm the timer that ends a fixed or extendable wrap-up (agent_ended has none)."""
        if until is None:
            return

        async def fire() -> None:
            await self.end_wrap_up(tenant_id=tenant_id, agent_id=agent_id, by="timer", call_id=call_id)

        self.timers.call_at(until, fire)

    async def end_wrap_up(
        self, *, tenant_id: uuid.UUID, agent_id: uuid.UUID, by: str, call_id: uuid.UUID | None = None
    ) -> Agent | None:
        """End after-call work: by the agent (refused while a required disposition is
        missing), or by the timer once ``wrap_up_until`` passed.  Returns the agent, or
        None when there was nothing to end (the timer of an extended or ended wrap-up)."""
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            when = [Agent.system_state == "wrap_up"]
            if by == "timer":
                when += [Agent.wrap_up_until <= now]
                if call_id is not None:
                    when.append(Agent.wrap_up_call_id == call_id)
            agent = await lock_agent(session, tenant_id=tenant_id, agent_id=agent_id, when=when)
            if agent is None:
                if by == "agent":
                    raise Problem(409, "not_in_wrap_up", "you are not in after-call work")
                return None
            if by == "agent" and agent.wrap_up_call_id is not None:
                call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == agent.wrap_up_call_id))
                if call is not None and call.disposition_code is None and await self._disposition_required(session, tenant_id=tenant_id, queue_id=call.queue_id):
                    raise Problem(409, "disposition_required", "give the call a disposition (wrap-up code) first")
            await self._close_wrap_up(session, tenant_id=tenant_id, agent=agent, now=now, by=by)
            await agent_state_changed(session, agent)
        self.publish_agent(tenant_id, agent)
        if agent.status == "available" and agent.system_state == "idle":
            await self.route_for_agent(tenant_id=tenant_id, agent_id=agent.id)
        return agent

    async def extend_wrap_up(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Agent:
        """Extendable after-call work: one more ``wrap_up_s``, up to ``wrap_up_max_s`` in all."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await self._lock_agent_of_user(session, tenant_id=tenant_id, user_id=user_id)
            if agent.system_state != "wrap_up" or agent.wrap_up_call_id is None:
                raise Problem(409, "not_in_wrap_up", "you are not in after-call work")
            queue = await session.scalar(
                select(Queue).join(Call, (Call.tenant_id == Queue.tenant_id) & (Call.queue_id == Queue.id))
                .where(Call.tenant_id == tenant_id, Call.id == agent.wrap_up_call_id)
            )
            if queue is None or queue.wrap_up_mode != "extendable":
                raise Problem(409, "wrap_up_not_extendable", "this queue's after-call work cannot be extended")
            assert agent.wrap_up_until is not None and agent.wrap_up_started_at is not None
            until = agent.wrap_up_until + timedelta(seconds=queue.wrap_up_s)
            if (until - agent.wrap_up_started_at).total_seconds() > queue.wrap_up_max_s:
                raise Problem(409, "wrap_up_limit", f"after-call work cannot last more than {queue.wrap_up_max_s} s")
            agent.wrap_up_until = until
            await session.flush()
            await append_event(session, tenant_id=tenant_id, call_id=agent.wrap_up_call_id, type="wrap_up_extended", actor=f"user:{user_id}",
                               at=self.clock(), data={"agent_id": str(agent.id), "until": until.isoformat()})
        self.watch_wrap_up(tenant_id, agent.id, agent.wrap_up_call_id, until)
        self.publish_agent(tenant_id, agent)
        return agent

    async def set_disposition(
        self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, code: str,
        first_call_resolution: bool | None = None, notes: str | None = None,
    ) -> Call:
        """The agent's disposition of its call, while on it or in its after-call work."""
        if notes is not None and len(notes) > 2000:
            raise Problem(400, "invalid_notes", "notes must have at most 2000 characters")
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            agent = await self._lock_agent_of_user(session, tenant_id=tenant_id, user_id=user_id)
            call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            if call is None or call.agent_id != agent.id:
                raise Problem(404, "not_found", "call not found")
            open_now = (call.status == "connected" and agent.current_call_id == call_id) or agent.wrap_up_call_id == call_id
            if not open_now:
                raise Problem(409, "disposition_closed", "a disposition is given during the call or its after-call work")
            known = await session.scalar(
                select(WrapUpCode.id).where(WrapUpCode.tenant_id == tenant_id, WrapUpCode.code == code, WrapUpCode.active.is_(True))
            )
            if known is None:
                raise Problem(400, "unknown_wrap_up_code", "not one of the tenant's wrap-up codes")
            call.disposition_code, call.first_call_resolution, call.disposition_notes = code, first_call_resolution, notes
            await session.flush()
            await append_event(session, tenant_id=tenant_id, call_id=call_id, type="disposition", actor=f"user:{user_id}", at=self.clock(),
                               data={"agent_id": str(agent.id), "code": code, "first_call_resolution": first_call_resolution, "has_notes": bool(notes)})
        return call

    # --- a call enters a queue ----------------------------------------------------

    async def admit(self, session: AsyncSession, *, call: Call, now: datetime) -> tuple[str | None, Any]:
        """In the transaction creating ``call`` (queued, in its queue): set its routing
        facts.  Returns the rule that keeps it out of the queue — ``closed`` (outside
        business hours) or ``overflow`` (too many waiting per agent) — or None, and the
        queue's rules (a row) for ``offer_on_arrival``."""
        from kefu.tenants import schedules

        tenant_id = call.tenant_id
        queue = (await session.execute(_QUEUE_ROW, {"t": tenant_id, "q": call.queue_id})).first()
        assert queue is not None
        if queue.preferred_agent_timeout_s > 0 and call.caller_ref:
            last_agent = await session.scalar(
                select(Call.agent_id)
                .where(
                    Call.tenant_id == tenant_id, Call.caller_ref == call.caller_ref, Call.id != call.id, Call.answered_at.is_not(None),
                    Call.agent_id.is_not(None), Call.started_at >= now - timedelta(days=RETURNING_CALLER_DAYS),
                    # Only an agent who can be offered this queue's calls is worth waiting for.
                    Call.agent_id.in_(select(QueueMember.agent_id).where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue.id)),
                )
                .order_by(Call.answered_at.desc())
                .limit(1)
            )
            if last_agent is not None:
                call.preferred_agent_id = last_agent
                call.preferred_until = now + timedelta(seconds=queue.preferred_agent_timeout_s)
                await session.flush()
        if queue.schedule_id is not None:
            schedule = await session.scalar(select(Schedule).where(Schedule.tenant_id == tenant_id, Schedule.id == queue.schedule_id))
            if schedule is not None and not schedules.is_open(schedule, now):
                return "closed", queue
        if queue.overflow_ratio is not None and queue.overflow_action is not None:
            waiting = await session.scalar(
                select(func.count()).select_from(Call).where(
                    Call.tenant_id == tenant_id, Call.queue_id == queue.id, Call.status == "queued", Call.id != call.id
                )
            ) or 0
            staffed = await session.scalar(
                select(func.count()).select_from(QueueMember)
                .join(Agent, (Agent.tenant_id == QueueMember.tenant_id) & (Agent.id == QueueMember.agent_id))
                .where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue.id, Agent.status != "offline")
            ) or 0
            if waiting + 1 > queue.overflow_ratio * staffed:
                return "overflow", queue
        return None, queue

    async def call_queued(
        self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, cause: str | None = None, queue_id: uuid.UUID | None = None,
    ) -> list[Offer]:
        """After the call entered a queue (its caller leg up): apply the rule ``admit``
        named, or route its queue and arm the call's timers (one transaction reads the
        call with the routing facts)."""
        if queue_id is None or cause is not None:
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                queue_id = await session.scalar(select(Call.queue_id).where(Call.tenant_id == tenant_id, Call.id == call_id))
            if queue_id is None:
                return []
        if cause is not None:
            await self.leave_queue(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id, cause=cause)
            return []
        return await self.route_queue(tenant_id=tenant_id, queue_id=queue_id, arrived=call_id)

    async def offer_on_arrival(self, session: AsyncSession, *, call: Call, queue: Any, now: datetime) -> Arrival:
        """In the transaction creating ``call`` (admitted, queued): book it to its best free
        agent at once when nothing ahead of it is waiting for one — the common case: one
        transaction from entry point to offer (with autoflush off, as the call flow runs
        it, the call's row is written once, already ringing).
        Anything else (a call ahead could be served, ring all, every ranked agent taken
        meanwhile) is left to an ordinary routing pass after the commit (``after_arrival``)."""
        tenant_id, queue_id = call.tenant_id, queue.id
        assert call.queue_id == queue_id and queue.tenant_id == tenant_id
        arrival = Arrival(call, queue)
        facts = await self.load_routing_facts(session, tenant_id=tenant_id, queue_id=queue_id, now=now, queue=queue, arriving=call)
        assert facts is not None
        _, calls, candidates = facts
        rules = queue_rules(queue)
        for waiting, caller_name in calls:
            decision = routing.decide(waiting, candidates, rules, now, self.rng)
            if waiting.call_id != call.id:
                if decision is not None:
                    arrival.route = True  # a call ahead can be served: a full pass, in order
                    return arrival
                continue
            if decision is None:
                return arrival
            if decision.strategy == "ring_all":
                arrival.route = True
                return arrival
            skipped: list[str] = []
            for agent_id in decision.agents:
                reserved = await self._book(session, tenant_id, queue_id, call.id, decision, agent_id, skipped, now, arriving=call)
                if reserved is not None:
                    arrival.offer, arrival.agent = Offer(tenant_id, call.id, agent_id, queue_id, caller_name, now), reserved
                    return arrival
            arrival.route = True  # every ranked agent was booked elsewhere meanwhile
            return arrival
        return arrival  # no free agent, or beyond the routing window: it waits its turn

    async def after_arrival(self, arrival: Arrival) -> None:
        """After the arrival committed (and the caller's leg is up): arm the call's timers,
        ring the agent it was booked to, or route its queue."""
        call, queue = arrival.call, arrival.queue
        self._arm_waiting(call, queue)
        if arrival.offer is not None and arrival.agent is not None:
            self._after_offer([arrival.offer], [arrival.agent], queue.ring_timeout_s or self.ring_timeout_s, group=False)
        elif arrival.route:
            await self.route_queue(tenant_id=call.tenant_id, queue_id=queue.id)

    def _arm_waiting(self, call: Call, queue: Queue) -> None:
        """The timers of a waiting call: re-route when its eligibility widens, leave the
        queue at overflow or maximum wait, and announce its position."""
        tenant_id, call_id, queue_id = call.tenant_id, call.id, queue.id
        entered = call.queue_entered_at or call.queued_at or self.clock()
        queued = call.queued_at or entered
        async def reroute() -> None:
            await self.route_queue(tenant_id=tenant_id, queue_id=queue_id)

        # Eligibility widens at the queue's relaxation times (a pass with nothing to relax is harmless).
        for seconds in {s for s in (queue.relax_after_s, queue.relax_any_after_s) if s is not None}:
            self.timers.call_at(queued + timedelta(seconds=seconds), reroute)
        if call.preferred_until is not None:
            self.timers.call_at(call.preferred_until, reroute)
        if call.callback_requested_at is None:
            if queue.overflow_action is not None and queue.overflow_after_s is not None:
                async def overflow() -> None:
                    await self.leave_queue(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id, cause="overflow", due=True)

                self.timers.call_at(entered + timedelta(seconds=queue.overflow_after_s), overflow)

            async def max_wait() -> None:
                await self.leave_queue(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id, cause="max_wait", due=True)

            self.timers.call_at(entered + timedelta(seconds=queue.max_wait_s), max_wait)
            if queue.announce_interval_s > 0:
                self._arm_announcement(tenant_id, call_id, queue_id, self.clock(), first=True)

    # --- leaving a queue by rule ----------------------------------------------------------

    async def leave_queue(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, queue_id: uuid.UUID, cause: str, due: bool = False) -> str | None:
        """A queued call leaves its queue by rule (``closed``, ``overflow``, ``max_wait``):
        moved to another queue here, else handed to the call flow (hang up, voicemail,
        callback).  With ``due`` the rule's time must have come (timers, the sweep).
        Returns the action taken, or None when the call was no longer waiting there."""
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            if call is None or call.status != "queued" or call.queue_id != queue_id:
                return None
            queue = await session.scalar(select(Queue).where(Queue.tenant_id == tenant_id, Queue.id == queue_id))
            assert queue is not None
            if cause == "overflow":
                action, target, limit = queue.overflow_action, queue.overflow_queue_id, queue.overflow_after_s
            elif cause == "max_wait":
                action, target, limit = queue.max_wait_action, queue.max_wait_queue_id, queue.max_wait_s
            else:
                action, target, limit = queue.closed_action, None, None
            if action is None:
                return None
            if due:
                entered = call.queue_entered_at or call.queued_at
                if call.callback_requested_at is not None or limit is None or entered is None or entered + timedelta(seconds=limit) > now:
                    return None
            if action == "callback" and call.callback_requested_at is not None:
                return None  # already a callback: it keeps waiting for its turn
            move = action == "queue" and target is not None and target != queue_id
            if move:
                moves = await session.scalar(
                    select(func.count()).select_from(CallEvent)
                    .where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == call_id, CallEvent.type == "overflowed")
                )
                move = (moves or 0) < MAX_QUEUE_MOVES  # queues overflowing into each other end the loop here
            if move:
                call.queue_id, call.queue_entered_at = target, now
                call.preferred_agent_id = call.preferred_until = None
                await session.flush()
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="overflowed", actor="acd", at=now,
                                   data={"cause": cause, "from_queue_id": str(queue_id), "to_queue_id": str(target), "action": "queue"})
                await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="queued", queue_id=target)
            else:
                if action == "queue":
                    action = "hangup"  # the target is gone, or the call went round too often: end rather than wait forever
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="overflowed", actor="acd", at=now,
                                   data={"cause": cause, "from_queue_id": str(queue_id), "action": action})
        if move:
            await self.call_queued(tenant_id=tenant_id, call_id=call_id, queue_id=target)
            return action
        if self.actions is not None:
            await self.actions.queue_action(tenant_id=tenant_id, call_id=call_id, action=action, cause=cause)
        return action

    async def request_callback(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, number: str | None, actor: str) -> bool:
        """The waiting caller leaves and is called back when its place comes: the call stays
        queued with its priority and ``queued_at``.  False when it was not waiting."""
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            result = await session.execute(
                update(Call)
                .where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == "queued", Call.callback_requested_at.is_(None))
                .values(callback_requested_at=now, callback_number=number)
            )
            if result.rowcount != 1:
                return False
            queue_id = await session.scalar(select(Call.queue_id).where(Call.tenant_id == tenant_id, Call.id == call_id))
            await append_event(session, tenant_id=tenant_id, call_id=call_id, type="callback_requested", actor=actor, at=now,
                               data={"has_number": number is not None})
            await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="queued", queue_id=queue_id)
        self.publish_call(tenant_id, call_id, "queued", callback=True)
        return True

    # --- announcements ----------------------------------------------------------------

    async def position_of(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> tuple[int, float] | None:
        """(position in its queue from 1, expected wait in seconds) of a queued call."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == "queued"))
            if call is None or call.queue_id is None or call.queued_at is None:
                return None
            ahead = await session.scalar(
                select(func.count()).select_from(Call).where(
                    Call.tenant_id == tenant_id, Call.queue_id == call.queue_id, Call.status == "queued",
                    or_(
                        Call.priority > call.priority,
                        and_(Call.priority == call.priority, Call.queued_at < call.queued_at),
                        and_(Call.priority == call.priority, Call.queued_at == call.queued_at, Call.id < call.id),
                    ),
                )
            ) or 0
            handle = await self._handle_time(session, tenant_id=tenant_id, queue_id=call.queue_id)
            staffed = await session.scalar(
                select(func.count()).select_from(QueueMember)
                .join(Agent, (Agent.tenant_id == QueueMember.tenant_id) & (Agent.id == QueueMember.agent_id))
                .where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == call.queue_id, Agent.status != "offline")
            ) or 0
        # Each staffed agent clears one call per handle time; the caller waits for everyone ahead.
        expected = (ahead + 1) * handle / staffed if staffed else float("inf")
        return ahead + 1, expected

    async def _handle_time(self, session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> float:
        """The queue's average handle time over its last 50 answered calls (talk + wrap-up)."""
        recent = (
            select(Call.answered_at, Call.ended_at)
            .where(Call.tenant_id == tenant_id, Call.queue_id == queue_id, Call.answered_at.is_not(None), Call.ended_at.is_not(None))
            .order_by(Call.ended_at.desc())
            .limit(50)
        )
        rows = (await session.execute(recent)).all()
        wrap_up = await session.scalar(select(Queue.wrap_up_s).where(Queue.tenant_id == tenant_id, Queue.id == queue_id)) or 0
        if not rows:
            return DEFAULT_HANDLE_S + wrap_up
        return sum((ended - answered).total_seconds() for answered, ended in rows) / len(rows) + wrap_up

    def _arm_announcement(self, tenant_id: uuid.UUID, call_id: uuid.UUID, queue_id: uuid.UUID, at: datetime, *, first: bool = False) -> None:
        """One chain of announcements per waiting call: arming again (the call came back
        to its queue) supersedes the chain running before."""
        if first:
            self._announcing[call_id] = self._announcing.get(call_id, 0) + 1
        chain = self._announcing.get(call_id)

        async def announce() -> None:
            if self._announcing.get(call_id) != chain:
                return
            interval = await self.announce(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id)
            if interval and self._announcing.get(call_id) == chain:
                self._arm_announcement(tenant_id, call_id, queue_id, self.clock() + timedelta(seconds=interval))
            elif self._announcing.get(call_id) == chain:
                del self._announcing[call_id]

        self.timers.call_at(at, announce)

    async def announce(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, queue_id: uuid.UUID) -> int:
        """Tell a waiting caller its position and expected wait (page and voice); returns
        the queue's interval for the next one, 0 when the call no longer waits there."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            row = (await session.execute(
                select(Call.status, Call.queue_id, Call.callback_requested_at, Queue.announce_interval_s)
                .join(Queue, (Queue.tenant_id == Call.tenant_id) & (Queue.id == Call.queue_id))
                .where(Call.tenant_id == tenant_id, Call.id == call_id)
            )).first()
        if row is None or row.status != "queued" or row.queue_id != queue_id or row.callback_requested_at is not None or not row.announce_interval_s:
            return 0
        found = await self.position_of(tenant_id=tenant_id, call_id=call_id)
        if found is None:
            return 0
        position, expected = found
        minutes = None if expected == float("inf") else max(1, round(expected / 60))
        self.publish_call(tenant_id, call_id, "queued", position=position, expected_wait_s=None if minutes is None else round(expected))
        media = self.media()
        if media is not None and hasattr(media, "play_prompt"):
            text = f"You are number {position} in the queue."
            if minutes is not None:
                text += f" The expected wait is about {minutes} minute{'s' if minutes != 1 else ''}."
            try:
                await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id=f"position-{position}", text=text)
            except Exception:
                log.info("position announcement for call %s not played", call_id, exc_info=True)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            if await lock_call(session, tenant_id=tenant_id, call_id=call_id) is not None:
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="position_announced", actor="acd", at=self.clock(),
                                   data={"position": position, "expected_wait_s": None if minutes is None else round(expected)})
        return row.announce_interval_s

    # --- routing ---------------------------------------------------------------

    async def route_queue(
        self, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, arrived: uuid.UUID | None = None
    ) -> list[Offer]:
        """Offer the queue's waiting calls to its free agents, in order, until one side runs
        out.  ``arrived``: a call that just entered the queue, whose timers are armed."""
        offers: list[Offer] = []
        for _ in range(1000):
            started = time.perf_counter()
            booked, stale = await self._route_pass(tenant_id=tenant_id, queue_id=queue_id, arrived=arrived)
            metrics.ROUTING_PASS_SECONDS.observe(time.perf_counter() - started)
            arrived = None
            offers.extend(booked)
            if not stale:
                break
        return offers

    async def route_for_agent(self, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> list[Offer]:
        """An agent became free: route its queues, the one with the most urgent call first."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            rows = await session.execute(
                select(QueueMember.queue_id, func.max(Call.priority), func.min(Call.queued_at))
                .join(Call, (Call.tenant_id == QueueMember.tenant_id) & (Call.queue_id == QueueMember.queue_id) & (Call.status == "queued"))
                .where(QueueMember.tenant_id == tenant_id, QueueMember.agent_id == agent_id)
                .group_by(QueueMember.queue_id)
                .order_by(func.max(Call.priority).desc(), func.min(Call.queued_at), QueueMember.queue_id)
            )
            queue_ids = [queue_id for queue_id, _, _ in rows]
        offers: list[Offer] = []
        for queue_id in queue_ids:
            offers.extend(await self.route_queue(tenant_id=tenant_id, queue_id=queue_id))
        return offers

    async def load_routing_facts(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, now: datetime, queue: Queue | None = None,
        arriving: Call | None = None,
    ) -> tuple[Queue, list[tuple[routing.WaitingCall, str | None]], list[routing.Candidate]] | None:
        """The queue (``queue``: already loaded), its waiting calls in order (with caller
        names; ``arriving``, a call this transaction is creating, in its place) and its
        free members."""
        ids = {"t": tenant_id, "q": queue_id}
        if queue is None:
            queue = (await session.execute(_QUEUE_ROW, ids)).first()
        if queue is None:
            return None
        rows: list[Any] = list((await session.execute(_WAITING_CALLS, ids)).all())
        if arriving is not None:
            _take_in_order(rows, arriving)
        if not rows:
            return queue, [], []
        members = (await session.execute(_FREE_MEMBERS, {**ids, "now": now})).all()
        if not members:
            return queue, [], []
        queue_skills = [
            routing.SkillNeed(skill_id, min_proficiency, required)
            for skill_id, min_proficiency, required in await session.execute(_QUEUE_SKILLS, ids)
        ] if getattr(queue, "skill_needs", 1) else []
        calls = [
            (routing.WaitingCall(r.id, r.priority, r.queued_at or now, call_needs(r.skills, queue_skills), r.preferred_agent_id, r.preferred_until), r.caller_name)
            for r in rows
        ]
        skills: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
        if any(c.needs for c, _ in calls):
            for agent_id, skill_id, proficiency in await session.execute(_MEMBER_SKILLS, ids):
                skills.setdefault(agent_id, {})[skill_id] = proficiency
        today = _today(now)
        candidates = [
            routing.Candidate(
                agent_id=m.id, idle_since=m.state_changed_at, skills=skills.get(m.id, {}), position=m.position,
                last_offered_at=m.last_offered_at,
                calls_answered=m.calls_answered if m.counters_day == today else 0,
                talk_s=m.talk_s if m.counters_day == today else 0,
            )
            for m in members
        ]
        return queue, calls, candidates

    async def _route_pass(
        self, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, arrived: uuid.UUID | None = None
    ) -> tuple[list[Offer], bool]:
        """One look at the queue: each waiting call, in order, to the best free agent.
        Returns the offers and whether the facts went stale (look again)."""
        now = self.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            facts = await self.load_routing_facts(session, tenant_id=tenant_id, queue_id=queue_id, now=now)
            new_call = await session.get(Call, arrived) if arrived is not None and facts is not None else None
        if facts is None:
            return [], False
        queue, calls, candidates = facts
        if new_call is not None and new_call.tenant_id == tenant_id and new_call.status == "queued" and new_call.queue_id == queue_id:
            self._arm_waiting(new_call, queue)
        free = {c.agent_id: c for c in candidates}
        rules = queue_rules(queue)
        ring_timeout = queue.ring_timeout_s or self.ring_timeout_s
        offers: list[Offer] = []
        stale = False
        for call, caller_name in calls:
            if not free:
                break
            while free:
                decision = routing.decide(call, free.values(), rules, now, self.rng)
                if decision is None:
                    break
                if decision.strategy == "ring_all":
                    booked, taken = await self._reserve_group(tenant_id, queue_id, call, caller_name, decision, now, ring_timeout)
                    for agent_id in taken:
                        free.pop(agent_id, None)
                    if booked is None:
                        stale = True
                        if not taken:
                            break
                        continue
                    offers.extend(booked)
                    break
                outcome = await self._reserve_first(tenant_id, queue_id, call, caller_name, decision, now, ring_timeout, free)
                if outcome == "call_taken":
                    stale = True
                    break
                if isinstance(outcome, Offer):
                    offers.append(outcome)
                    free.pop(outcome.agent_id, None)
                    break
                stale = True  # every ranked agent was booked elsewhere: decide again without them
        return offers, stale and bool(offers or free)

    async def _reserve_first(
        self, tenant_id: uuid.UUID, queue_id: uuid.UUID, call: routing.WaitingCall, caller_name: str | None,
        decision: routing.Decision, now: datetime, ring_timeout: float, free: dict[uuid.UUID, routing.Candidate],
    ) -> Offer | str | None:
        """Book the first ranked agent that is still free; 'call_taken' when another router
        claimed the call; None when every ranked agent was gone (removed from ``free``)."""
        skipped: list[str] = []
        for agent_id in decision.agents:
            try:
                async with self.db.tenant_session(tenant_id=tenant_id) as session:
                    reserved = await self._book(session, tenant_id, queue_id, call.call_id, decision, agent_id, skipped, now)
                    if reserved is None:
                        free.pop(agent_id, None)
                        continue
            except _CallTaken:
                metrics.ROUTING_CONFLICTS.labels("call").inc()
                return "call_taken"
            offer = Offer(tenant_id, call.call_id, agent_id, queue_id, caller_name, now)
            self._after_offer([offer], [reserved], ring_timeout, group=False)
            return offer
        return None

    async def _book(
        self, session: AsyncSession, tenant_id: uuid.UUID, queue_id: uuid.UUID, call_id: uuid.UUID,
        decision: routing.Decision, agent_id: uuid.UUID, skipped: list[str], now: datetime, *, arriving: Call | None = None,
    ) -> Any:
        """Reserve the agent (still available, idle, leased) for the call (still queued
        here; ``arriving``: the call this transaction creates) and log the offer, returning
        the agent's row as it is now; None (the agent noted in ``skipped``) when the agent
        is gone; raises ``_CallTaken`` (roll back) when the call is."""
        reserved = (await session.execute(_RESERVE_AGENT, {"t": tenant_id, "a": agent_id, "c": call_id, "now": now})).first()
        if reserved is None:
            metrics.ROUTING_CONFLICTS.labels("agent").inc()
            skipped.append(str(agent_id))
            return None
        if arriving is not None:
            arriving.status, arriving.agent_id, arriving.offered_at, arriving.ring_group = "ringing", agent_id, now, False
        elif (await session.execute(_CLAIM_CALL, {"t": tenant_id, "c": call_id, "q": queue_id, "a": agent_id, "now": now})).rowcount != 1:
            raise _CallTaken
        if decision.strategy == "round_robin":  # the one strategy that reads a member's last offer
            await session.execute(_MEMBER_OFFERED, {"t": tenant_id, "q": queue_id, "a": agent_id, "now": now})
        data = decision.log_data([agent_id])
        if skipped:
            data["skipped"] = skipped
            data["reason"] += f"; {len(skipped)} better-ranked agent(s) were reserved by another router first"
        await append_event(session, tenant_id=tenant_id, call_id=call_id, type="offered", actor="acd", at=now, data=data)
        await agent_state_changed(session, reserved)
        await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="ringing", queue_id=queue_id, agent_id=agent_id)
        return reserved

    async def _reserve_group(
        self, tenant_id: uuid.UUID, queue_id: uuid.UUID, call: routing.WaitingCall, caller_name: str | None,
        decision: routing.Decision, now: datetime, ring_timeout: float,
    ) -> tuple[list[Offer] | None, list[uuid.UUID]]:
        """Ring all: book every eligible agent still free and ring them together.  Returns
        the offers (None when nobody or the call could be booked) and the agents no longer free."""
        gone: list[uuid.UUID] = []
        try:
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                reserved: list[Agent] = []
                for agent_id in decision.agents:
                    agent = await lock_agent(
                        session, tenant_id=tenant_id, agent_id=agent_id,
                        when=(Agent.status == "available", Agent.system_state == "idle", Agent.lease_expires_at > now),
                        values={"system_state": "ringing", "current_call_id": call.call_id, "state_changed_at": now},
                    )
                    gone.append(agent_id)
                    if agent is not None:
                        reserved.append(agent)
                if not reserved:
                    return None, gone
                claimed = await session.execute(
                    update(Call)
                    .where(Call.tenant_id == tenant_id, Call.id == call.call_id, Call.status == "queued", Call.queue_id == queue_id)
                    .values(status="ringing", agent_id=None, offered_at=now, ring_group=True)
                )
                if claimed.rowcount != 1:
                    raise _CallTaken
                ids = [a.id for a in reserved]
                await session.execute(
                    update(QueueMember)
                    .where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue_id, QueueMember.agent_id.in_(ids))
                    .values(last_offered_at=now)
                )
                await append_event(session, tenant_id=tenant_id, call_id=call.call_id, type="offered", actor="acd", at=now, data=decision.log_data(ids))
                for agent in reserved:
                    await agent_state_changed(session, agent)
                await call_state_changed(session, tenant_id=tenant_id, call_id=call.call_id, status="ringing", queue_id=queue_id)
        except _CallTaken:
            metrics.ROUTING_CONFLICTS.labels("call").inc()
            return None, []
        offers = [Offer(tenant_id, call.call_id, a.id, queue_id, caller_name, now) for a in reserved]
        self._after_offer(offers, reserved, ring_timeout, group=True)
        return offers, gone

    def _after_offer(self, offers: list[Offer], agents: list[Agent], ring_timeout: float, *, group: bool) -> None:
        metrics.ROUTING_OFFERS.labels("ring_all" if group else "single").inc(len(offers))
        first = offers[0]
        for offer, agent in zip(offers, agents):
            channel = agent_channel(offer.tenant_id, offer.agent_id)
            self.hub.publish(channel, agent_state_message(agent))
            self.hub.publish(channel, {"type": "call.offered", "call_id": str(offer.call_id), "caller_name": offer.caller_name})
        self.publish_call(first.tenant_id, first.call_id, "ringing")

        async def timeout() -> None:
            if group:
                await self.ring_group_timeout(tenant_id=first.tenant_id, call_id=first.call_id, offered_at=first.offered_at)
            else:
                await self.ring_timeout(tenant_id=first.tenant_id, call_id=first.call_id, agent_id=first.agent_id, offered_at=first.offered_at)

        self.timers.call_at(first.offered_at + timedelta(seconds=ring_timeout), timeout)

    async def _ring_timeout_of(self, session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID | None) -> float:
        configured = None
        if queue_id is not None:
            configured = await session.scalar(select(Queue.ring_timeout_s).where(Queue.tenant_id == tenant_id, Queue.id == queue_id))
        return float(configured or self.ring_timeout_s)

    async def ring_timeout(
        self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, agent_id: uuid.UUID, offered_at: datetime | None = None
    ) -> bool:
        """No answer: the agent becomes not ready (``no_answer``) and the call is offered again.

        With ``offered_at`` (the timer's own offer) only that offer times out;
        without it (the sweep) any offer older than its queue's ring timeout does.
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
            ring_timeout = await self._ring_timeout_of(session, tenant_id=tenant_id, queue_id=call.queue_id)
            if offered_at is None and call.offered_at > now - timedelta(seconds=ring_timeout):
                return False
            agent.status, agent.not_ready_reason = "not_ready", "no_answer"
            requeued = await self._withdraw_offer(
                session, tenant_id=tenant_id, agent=agent, now=now, reason="no_answer", event_type="offer_timeout"
            )
            await agent_state_changed(session, agent)
        self.publish_agent(tenant_id, agent)
        if requeued is not None:
            await self.back_in_queue(tenant_id=tenant_id, call_id=requeued[0], queue_id=requeued[1])
        return True

    async def ring_group_timeout(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, offered_at: datetime | None = None) -> bool:
        """Nobody of a ring-all group answered: they are freed (without the no-answer
        not-ready a single offer gets) and the call goes back to its queue."""
        now = self.clock()
        try:
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                ringing = list(await session.scalars(
                    select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.current_call_id == call_id, Agent.system_state == "ringing")
                    .order_by(Agent.id)
                ))
                freed: list[Agent] = []
                for agent_id in ringing:
                    agent = await lock_agent(
                        session, tenant_id=tenant_id, agent_id=agent_id, when=(Agent.current_call_id == call_id, Agent.system_state == "ringing"),
                        values={"system_state": "idle", "current_call_id": None, "state_changed_at": now},
                    )
                    if agent is not None:
                        freed.append(agent)
                call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
                if call is None or call.status != "ringing" or not call.ring_group or call.offered_at is None:
                    raise _Unchanged
                ring_timeout = await self._ring_timeout_of(session, tenant_id=tenant_id, queue_id=call.queue_id)
                if (offered_at is not None and call.offered_at != offered_at) or (
                    offered_at is None and call.offered_at > now - timedelta(seconds=ring_timeout)
                ):
                    raise _Unchanged
                call.status, call.offered_at, call.ring_group = "queued", None, False
                await session.flush()
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="offer_timeout", actor="acd", at=now,
                                   data={"agent_ids": [str(a.id) for a in freed], "reason": "no_answer"})
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="requeued", actor="acd", at=now,
                                   data={"queue_id": str(call.queue_id), "priority": call.priority})
                await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="queued", queue_id=call.queue_id)
                for agent in freed:
                    await agent_state_changed(session, agent)
                queue_id = call.queue_id
        except _Unchanged:
            return False
        for agent in freed:
            self.publish_agent(tenant_id, agent)
            self.hub.publish(agent_channel(tenant_id, agent.id), {"type": "call.withdrawn", "call_id": str(call_id), "reason": "no_answer"})
        self.publish_call(tenant_id, call_id, "queued")
        if queue_id is not None:
            await self.back_in_queue(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id)
        return True

    async def release_offers(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None) -> list[Agent]:
        """Free every agent still reserved or ringing for ``call_id`` (but ``keep``): the
        rest of a ring-all group once one answered, or everyone once the call ended."""
        now = self.clock()
        freed: list[Agent] = []
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            stale = list(await session.scalars(
                select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.current_call_id == call_id, Agent.system_state.in_(("reserved", "ringing")))
                .order_by(Agent.id)
            ))
            for agent_id in stale:
                if agent_id == keep:
                    continue
                agent = await lock_agent(
                    session, tenant_id=tenant_id, agent_id=agent_id,
                    when=(Agent.current_call_id == call_id, Agent.system_state.in_(("reserved", "ringing"))),
                    values={"system_state": "idle", "current_call_id": None, "state_changed_at": now},
                )
                if agent is not None:
                    freed.append(agent)
                    await agent_state_changed(session, agent)
        for agent in freed:
            self.publish_agent(tenant_id, agent)
            self.hub.publish(agent_channel(tenant_id, agent.id), {"type": "call.withdrawn", "call_id": str(call_id), "reason": reason})
        for agent in freed:
            if agent.status == "available":
                await self.route_for_agent(tenant_id=tenant_id, agent_id=agent.id)
        return freed

    async def sweep(self) -> None:
        """Safety net across tenants for what a crashed node's timers would have done:
        expired leases, stale offers, ended wrap-ups, waiting calls past their limits."""
        now = self.clock()
        async with self.db.platform_session(reason="ACD sweep: expired presence leases, stale offers, due queue rules") as session:
            leases = (
                await session.execute(select(Agent.tenant_id, Agent.id).where(Agent.status != "offline", Agent.lease_expires_at <= now))
            ).all()
            timeout = func.coalesce(Queue.ring_timeout_s, self.ring_timeout_s)
            rings = (
                await session.execute(
                    select(Call.tenant_id, Call.id, Call.agent_id, Call.ring_group, Call.offered_at, timeout)
                    .join(Queue, (Queue.tenant_id == Call.tenant_id) & (Queue.id == Call.queue_id))
                    .where(Call.status == "ringing", Call.offered_at <= now - timedelta(seconds=5))
                )
            ).all()
            wrap_ups = (
                await session.execute(select(Agent.tenant_id, Agent.id).where(Agent.system_state == "wrap_up", Agent.wrap_up_until <= now))
            ).all()
            waiting = (
                await session.execute(
                    select(Call.tenant_id, Call.id, Call.queue_id, Call.queue_entered_at, Queue.max_wait_s, Queue.overflow_after_s, Queue.overflow_action)
                    .join(Queue, (Queue.tenant_id == Call.tenant_id) & (Queue.id == Call.queue_id))
                    .where(Call.status == "queued", Call.callback_requested_at.is_(None), Call.queue_entered_at <= now - timedelta(seconds=1))
                )
            ).all()
            orphans = (
                await session.execute(
                    select(Agent.tenant_id, Agent.current_call_id)
                    .join(Call, (Call.tenant_id == Agent.tenant_id) & (Call.id == Agent.current_call_id))
                    .where(
                        Agent.system_state.in_(("reserved", "ringing")), Call.status != "ringing",
                        or_(Call.consult_agent_id.is_(None), Call.consult_agent_id != Agent.id),  # a consultation rings on a live call
                    )
                    .distinct()
                )
            ).all()
        for tenant_id, call_id, agent_id, group, offered_at, ring_s in rings:
            if offered_at > now - timedelta(seconds=ring_s):
                continue
            if group:
                await self.ring_group_timeout(tenant_id=tenant_id, call_id=call_id)
            elif agent_id is not None:
                await self.ring_timeout(tenant_id=tenant_id, call_id=call_id, agent_id=agent_id)
        for tenant_id, call_id in orphans:
            await self.release_offers(tenant_id=tenant_id, call_id=call_id, reason="call_gone")
        for tenant_id, agent_id in leases:
            await self.expire_lease(tenant_id=tenant_id, agent_id=agent_id)
        for tenant_id, agent_id in wrap_ups:
            await self.end_wrap_up(tenant_id=tenant_id, agent_id=agent_id, by="timer")
        for tenant_id, call_id, queue_id, entered, max_wait_s, overflow_after_s, overflow_action in waiting:
            waited = (now - entered).total_seconds()
            overflow_due = overflow_action is not None and overflow_after_s is not None and waited >= overflow_after_s
            if overflow_due and await self.leave_queue(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id, cause="overflow", due=True):
                continue
            if waited >= max_wait_s:
                await self.leave_queue(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id, cause="max_wait", due=True)
        for sweeper in self.sweepers:
            try:
                await sweeper(now)
            except Exception:
                log.exception("a sweep step failed")


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
    (in an IVR flow, queued or ringing) ended with ``reason`` — nobody can log in to answer them.
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
            .where(Call.tenant_id == tenant_id, Call.status.in_(("ivr", "queued", "ringing")))
            .order_by(Call.queued_at, Call.started_at, Call.id)
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


async def keep_agents_from_ready(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime | None = None) -> list[Agent]:
    """The tenant's service is suspended for non-payment: its ready agents become not ready
    (``billing_suspended``) and are offered no more calls; calls in progress continue."""
    now = now or utcnow()
    ids = list(
        await session.scalars(
            update(Agent)
            .where(Agent.tenant_id == tenant_id, Agent.status == "available")
            .values(status="not_ready", not_ready_reason="billing_suspended")
            .returning(Agent.id)
        )
    )
    agents = list(
        await session.scalars(
            select(Agent).where(Agent.tenant_id == tenant_id, Agent.id.in_(ids)).order_by(Agent.id).execution_options(populate_existing=True)
        )
    ) if ids else []
    for agent in agents:
        await agent_state_changed(session, agent)
    return agents


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
) -> tuple[uuid.UUID, uuid.UUID | None] | None:
    """Free a ringing (locked) agent and put its call back in the queue, keeping its
    priority and its place (``queued_at``): it is offered again before any call that
    came after it.

    Returns ``(call_id, queue_id)`` of the re-queued call — queue_id None while other
    agents of a ring-all group still ring — or None when nothing was ringing.
    """
    if agent.system_state not in ("reserved", "ringing"):
        return None
    call_id = agent.current_call_id
    agent.system_state, agent.current_call_id, agent.state_changed_at = "idle", None, now
    await session.flush()
    if call_id is None:
        return None
    group = await session.scalar(select(Call.ring_group).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == "ringing"))
    if group:
        others = await session.scalar(
            select(func.count()).select_from(Agent).where(
                Agent.tenant_id == tenant_id, Agent.current_call_id == call_id, Agent.system_state.in_(("reserved", "ringing"))
            )
        )
        call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
        assert call is not None
        await append_event(session, tenant_id=tenant_id, call_id=call_id, type=event_type, actor=actor, at=now, data={"agent_id": str(agent.id), "reason": reason})
        if others:
            return call_id, None
        result = await session.execute(
            update(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == "ringing", Call.ring_group.is_(True))
            .values(status="queued", offered_at=None, ring_group=False)
        )
    else:
        result = await session.execute(
            update(Call)
            .where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == "ringing", Call.agent_id == agent.id)
            .values(status="queued", agent_id=None, offered_at=None)
        )
    if result.rowcount != 1:
        return None
    call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id).execution_options(populate_existing=True))
    assert call is not None
    if not group:
        await append_event(session, tenant_id=tenant_id, call_id=call_id, type=event_type, actor=actor, at=now, data={"agent_id": str(agent.id), "reason": reason})
    await append_event(session, tenant_id=tenant_id, call_id=call_id, type="requeued", actor=actor, at=now, data={"queue_id": str(call.queue_id), "priority": call.priority})
    await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="queued", queue_id=call.queue_id)
    return call_id, call.queue_id
