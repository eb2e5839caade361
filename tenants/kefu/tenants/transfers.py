"""Transfers and conferences: blind transfer, consultative transfer, three-way conference.

- **Blind transfer** to a queue puts the call back in that queue (its original
  arrival time keeps its place); to an agent, it rings that agent (the ring
  timeout sends it back to its queue).  Either way the transferring agent is
  free at once and the caller hears music on hold until someone answers.
- **Consultation**: the agent consults another agent (named, or the longest
  idle available agent of a queue).  The caller is on hold while it rings and
  while the two agents talk; then the agent *completes* (the consulted agent
  takes the call, the agent is free), *conferences* (all three hear each
  other), or *cancels* (back to the caller).  The consulted agent may hang up
  the consultation too.  An agent that hangs up while consulting completes the
  transfer, as desk phones do; a conference left by the agent goes on between
  the caller and the consulted agent.

Lock order, as everywhere: the call's agent row, then the other agent's row,
then the call row.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.problems import Problem, not_found
from kefu.tenants.acd import Offer
from kefu.tenants.call_log import append_event, lock_agent, lock_agent_of_call, lock_call
from kefu.tenants.controls import CallControls
from kefu.tenants.events import agent_state_changed, call_state_changed
from kefu.tenants.models import Agent, Call, Queue, QueueMember
from kefu.tenants.notify import agent_channel

log = logging.getLogger(__name__)

CONSULT = "consult"


class Transfers:
    def __init__(self, controls: CallControls) -> None:
        self.controls = controls
        self.flow = controls.flow
        self.db = controls.db
        self.acd = controls.acd

    # --- blind transfer -------------------------------------------------------------------

    async def blind_transfer(
        self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID,
        queue_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None,
    ) -> Call:
        _one_target(queue_id, agent_id)
        me = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)
        now = self.acd.clock()
        target: Agent | None = None
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            await lock_agent_of_call(session, tenant_id=tenant_id, call_id=call_id)
            if agent_id is not None:
                target = await self._reserve(session, tenant_id=tenant_id, agent_id=agent_id, exclude=me, call_id=call_id, now=now)
            call = await self._my_call(session, tenant_id=tenant_id, call_id=call_id, agent_id=me)
            if queue_id is not None:
                await _check_queue(session, tenant_id=tenant_id, queue_id=queue_id)
            supervised = call.supervisor_user_id is not None
            call.on_hold = call.agent_muted = False
            call.supervisor_user_id = call.supervisor_mode = None
            if target is not None:
                call.status, call.agent_id, call.offered_at = "ringing", target.id, now
            else:
                call.status, call.queue_id, call.agent_id, call.offered_at = "queued", queue_id, None, None
                call.queue_entered_at = now  # the new queue's overflow and maximum wait count from now
            freed = await self._free(session, tenant_id=tenant_id, agent_id=me, call_id=call_id, now=now)
            to = {"agent_id": str(agent_id)} if agent_id is not None else {"queue_id": str(queue_id)}
            await append_event(session, tenant_id=tenant_id, call_id=call_id, type="transferred", actor=f"user:{user_id}", at=now,
                               data={"mode": "blind", "from_agent_id": str(me), **to})
            if target is not None:
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="offered", actor=f"user:{user_id}", at=now,
                                   data={"agent_id": str(target.id), "strategy": "transfer", "eligible": [], "skipped": [],
                                         "reason": "named by the transferring agent"})
                await agent_state_changed(session, target)
                await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="ringing", queue_id=call.queue_id, agent_id=target.id)
            else:
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="queued", actor=f"user:{user_id}", at=now,
                                   data={"queue_id": str(queue_id), "priority": call.priority})
                await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="queued", queue_id=queue_id)
        media = self.flow.media()
        await self.controls._close_leg(tenant_id=tenant_id, call_id=call_id, party="agent")
        if supervised:
            await self.controls._close_leg(tenant_id=tenant_id, call_id=call_id, party="supervisor")
        await media.set_routes(tenant_id=tenant_id, call_id=call_id, hears={"caller": ["moh"]})
        self.acd.hub.publish(agent_channel(tenant_id, me), {"type": "call.transferred", "call_id": str(call_id)})
        await self._after_free(tenant_id, freed)
        if target is not None:
            offer = Offer(tenant_id, call_id, target.id, call.queue_id, call.caller_name, now)  # type: ignore[arg-type]
            self.acd._after_offer([offer], [target], self.acd.ring_timeout_s, group=False)
        else:
            self.acd.publish_call(tenant_id, call_id, "queued")
            await self.acd.call_queued(tenant_id=tenant_id, call_id=call_id, queue_id=queue_id)  # type: ignore[arg-type]
        return call

    # --- consultation ---------------------------------------------------------------------

    async def consult(
        self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID,
        queue_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None,
    ) -> Call:
        """Ring another agent for a consultation; the caller is on hold meanwhile."""
        _one_target(queue_id, agent_id)
        me = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)
        if queue_id is not None:
            agent_id = await self._longest_idle(tenant_id=tenant_id, queue_id=queue_id, exclude=me)
        assert agent_id is not None
        now = self.acd.clock()
        async with self.controls._lock(tenant_id, call_id):
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                await lock_agent_of_call(session, tenant_id=tenant_id, call_id=call_id)
                target = await self._reserve(session, tenant_id=tenant_id, agent_id=agent_id, exclude=me, call_id=call_id, now=now)
                call = await self._my_call(session, tenant_id=tenant_id, call_id=call_id, agent_id=me)
                call.consult_agent_id, call.consult_state, call.consult_offered_at = target.id, "ringing", now
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="consult_offered", actor=f"user:{user_id}", at=now,
                                   data={"agent_id": str(target.id), **({"queue_id": str(queue_id)} if queue_id else {})})
                await agent_state_changed(session, target)
                caller_name, from_name = call.caller_name, await session.scalar(select(Agent.display_name).where(Agent.tenant_id == tenant_id, Agent.id == me))
            await self.controls.apply(tenant_id=tenant_id, call_id=call_id)
        self.acd.publish_agent(tenant_id, target)
        self.acd.hub.publish(
            agent_channel(tenant_id, target.id),
            {"type": "consult.offered", "call_id": str(call_id), "from": from_name, "caller_name": caller_name},
        )

        async def timeout() -> None:
            await self.consult_timeout(tenant_id=tenant_id, call_id=call_id, offered_at=now)

        self.acd.timers.call_at(now + timedelta(seconds=self.acd.ring_timeout_s), timeout)
        return call

    async def answer_consult(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, offer_sdp: str) -> str:
        """The consulted agent answers; returns its media answer."""
        from kefu.tenants.callflow import check_sdp

        check_sdp(offer_sdp)
        me = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.consult_agent_id == me))
        if call is None:
            raise not_found("call")
        if call.consult_state != "ringing":
            raise Problem(409, "consult_not_ringing", "this consultation is not ringing at you")
        answer = await self.flow.answer_leg(tenant_id=tenant_id, call_id=call_id, party=CONSULT, offer_sdp=offer_sdp)
        now = self.acd.clock()
        try:
            async with self.controls._lock(tenant_id, call_id):
                async with self.db.tenant_session(tenant_id=tenant_id) as session:
                    await lock_agent_of_call(session, tenant_id=tenant_id, call_id=call_id)
                    agent = await lock_agent(
                        session, tenant_id=tenant_id, agent_id=me, when=(Agent.current_call_id == call_id, Agent.system_state == "ringing"),
                        values={"system_state": "on_call", "state_changed_at": now},
                    )
                    locked = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
                    if agent is None or locked is None or locked.consult_agent_id != me or locked.consult_state != "ringing":
                        raise Problem(409, "consult_not_ringing", "the consultation stopped ringing before it was answered")
                    locked.consult_state = "talking"
                    await append_event(session, tenant_id=tenant_id, call_id=call_id, type="consult_answered", actor=f"user:{user_id}", at=now,
                                       data={"agent_id": str(me)})
                    await agent_state_changed(session, agent)
                await self.controls.apply(tenant_id=tenant_id, call_id=call_id)
        except BaseException:
            await self.controls._close_leg(tenant_id=tenant_id, call_id=call_id, party=CONSULT)
            raise
        self.acd.publish_agent(tenant_id, agent)
        return answer

    async def conference(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID) -> Call:
        """The agent joins the caller into the consultation: everyone hears everyone."""
        me = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)

        def check(call: Call) -> None:
            if call.agent_id != me or call.taken_over:
                raise not_found("call")
            if call.consult_state != "talking":
                raise Problem(409, "no_consultation", "talk to the consulted agent first")

        return await self.controls._change(
            tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}", check=check,
            values={"consult_state": "conference", "on_hold": False}, event="conference_started",
        )

    async def complete(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID) -> Call:
        """The consulted agent takes the call; the agent leaves it, free."""
        me = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)
        now = self.acd.clock()
        async with self.controls._lock(tenant_id, call_id):
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                await lock_agent_of_call(session, tenant_id=tenant_id, call_id=call_id)
                new_agent = await session.scalar(select(Call.consult_agent_id).where(Call.tenant_id == tenant_id, Call.id == call_id))
                if new_agent is not None:
                    await lock_agent(session, tenant_id=tenant_id, agent_id=new_agent)  # before the call row
                call = await self._my_call(session, tenant_id=tenant_id, call_id=call_id, agent_id=me, consult=("talking", "conference"))
                if call.consult_agent_id != new_agent or new_agent is None:
                    raise Problem(409, "consult_changed", "the consultation changed; try again")
                mode = "conference" if call.consult_state == "conference" else "consultative"
                call.agent_id, call.consult_agent_id, call.consult_state, call.consult_offered_at = new_agent, None, None, None
                call.on_hold = call.agent_muted = False
                freed = await self._free(session, tenant_id=tenant_id, agent_id=me, call_id=call_id, now=now)
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="transferred", actor=f"user:{user_id}", at=now,
                                   data={"mode": mode, "from_agent_id": str(me), "agent_id": str(new_agent)})
                await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="connected", queue_id=call.queue_id, agent_id=new_agent)
            await self.flow.media().move_leg(tenant_id=tenant_id, call_id=call_id, party=CONSULT, to_party="agent")
            await self.controls.apply(tenant_id=tenant_id, call_id=call_id)
        self.acd.hub.publish(agent_channel(tenant_id, me), {"type": "call.transferred", "call_id": str(call_id)})
        self.acd.hub.publish(agent_channel(tenant_id, new_agent), {"type": "call.transferred_to_you", "call_id": str(call_id)})
        await self._after_free(tenant_id, freed)
        return call

    async def cancel_consult(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID) -> None:
        """The agent cancels, or the consulted agent declines or hangs up; back to agent and caller."""
        me = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            consulted = await session.scalar(select(Call.consult_agent_id).where(Call.tenant_id == tenant_id, Call.id == call_id))
        reason = "declined" if consulted == me else "cancelled"
        await self._end_consult(tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}", reason=reason, by=me)

    async def consult_timeout(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, offered_at: datetime) -> None:
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
        if call is None or call.consult_state != "ringing" or call.consult_offered_at != offered_at:
            return
        await self._end_consult(tenant_id=tenant_id, call_id=call_id, actor="acd", reason="no_answer", by=None)

    async def _end_consult(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, actor: str, reason: str, by: uuid.UUID | None) -> None:
        now = self.acd.clock()
        async with self.controls._lock(tenant_id, call_id):
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                await lock_agent_of_call(session, tenant_id=tenant_id, call_id=call_id)
                call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
                if call is None or (by is not None and by not in (call.agent_id, call.consult_agent_id)):
                    raise not_found("call")
                consulted = call.consult_agent_id
                if consulted is None:
                    raise Problem(409, "no_consultation", "the call has no consultation")
                freed = await self._free(session, tenant_id=tenant_id, agent_id=consulted, call_id=call_id, now=now)
                locked = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
                assert locked is not None
                was = locked.consult_state
                locked.consult_agent_id = locked.consult_state = locked.consult_offered_at = None
                locked.on_hold = False
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="consult_ended", actor=actor, at=now,
                                   data={"agent_id": str(consulted), "reason": reason, "stage": was})
            await self.controls._close_leg(tenant_id=tenant_id, call_id=call_id, party=CONSULT)
            await self.controls.apply(tenant_id=tenant_id, call_id=call_id)
        ended = {"type": "consult.ended", "call_id": str(call_id), "reason": reason}
        self.acd.hub.publish(agent_channel(tenant_id, consulted), ended)
        if locked.agent_id is not None:
            self.acd.hub.publish(agent_channel(tenant_id, locked.agent_id), ended)  # the consulting agent learns why
        await self._after_free(tenant_id, freed)

    async def consult_leg_closed(self, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        """The consulted agent's connection dropped: the consultation ends, the call goes on."""
        try:
            await self._end_consult(tenant_id=tenant_id, call_id=call_id, actor="media", reason="consult_disconnected", by=None)
        except Problem:
            pass  # the consultation was already over (completed, cancelled, or the call ended)

    async def release_after_end(self, tenant_id: uuid.UUID, call_id: uuid.UUID, ended: Call) -> None:
        """The call ended during a consultation: the consulted agent is freed and its leg closed.
        ``ended``: the call row as its ending transaction left it (no consultation: nothing to read)."""
        if ended.consult_agent_id is None:
            return
        now = self.acd.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
            if call is None or call.consult_agent_id is None:
                return
            consulted = call.consult_agent_id
            freed = await self._free(session, tenant_id=tenant_id, agent_id=consulted, call_id=call_id, now=now)
            locked = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            assert locked is not None
            locked.consult_agent_id = locked.consult_state = locked.consult_offered_at = None
        self.acd.hub.publish(agent_channel(tenant_id, consulted), {"type": "consult.ended", "call_id": str(call_id), "reason": "call_ended"})
        await self._after_free(tenant_id, freed)

    async def agent_left(self, tenant_id: uuid.UUID, call_id: uuid.UUID, user_id: uuid.UUID, call: Call) -> bool:
        """The agent hung up: during a consultation that is a transfer to the consulted agent (True).
        ``call``: the call as the hang-up just read it."""
        if call.consult_state not in ("talking", "conference"):
            return False
        await self.complete(tenant_id=tenant_id, user_id=user_id, call_id=call_id)
        return True

    # --- shared steps ------------------------------------------------------------------------

    async def _my_call(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, agent_id: uuid.UUID, consult: tuple[str | None, ...] = (None,)
    ) -> Call:
        call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
        if call is None or call.agent_id != agent_id or call.taken_over:
            raise not_found("call")
        if call.status != "connected":
            raise Problem(409, "call_not_connected", f"the call is {call.status}, not connected")
        if call.consult_state not in consult:
            if call.consult_state is None:
                raise Problem(409, "no_consultation", "the call has no consultation")
            raise Problem(409, "consult_in_progress", "finish the consultation first (complete, conference or cancel)")
        return call

    async def _reserve(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID, exclude: uuid.UUID, call_id: uuid.UUID, now: datetime
    ) -> Agent:
        if agent_id == exclude:
            raise Problem(400, "invalid_transfer_target", "you cannot transfer a call to yourself")
        agent = await lock_agent(
            session, tenant_id=tenant_id, agent_id=agent_id,
            when=(Agent.status == "available", Agent.system_state == "idle", Agent.lease_expires_at > now),
            values={"system_state": "ringing", "current_call_id": call_id, "state_changed_at": now},
        )
        if agent is None:
            exists = await session.scalar(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.id == agent_id))
            if exists is None:
                raise not_found("agent")
            raise Problem(409, "agent_not_available", "that agent is not available right now")
        return agent

    async def _longest_idle(self, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, exclude: uuid.UUID) -> uuid.UUID:
        now = self.acd.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            await _check_queue(session, tenant_id=tenant_id, queue_id=queue_id)
            agent_id = await session.scalar(
                select(Agent.id)
                .join(QueueMember, (QueueMember.tenant_id == Agent.tenant_id) & (QueueMember.agent_id == Agent.id))
                .where(Agent.tenant_id == tenant_id, QueueMember.queue_id == queue_id, Agent.id != exclude,
                       Agent.status == "available", Agent.system_state == "idle", Agent.lease_expires_at > now)
                .order_by(Agent.state_changed_at, Agent.id)
                .limit(1)
            )
        if agent_id is None:
            raise Problem(409, "agent_not_available", "no agent of that queue is available right now")
        return agent_id  # type: ignore[no-any-return]

    async def _free(self, session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID, call_id: uuid.UUID, now: datetime) -> Agent | None:
        agent = await lock_agent(
            session, tenant_id=tenant_id, agent_id=agent_id, when=(Agent.current_call_id == call_id,),
            values={"system_state": "idle", "current_call_id": None, "state_changed_at": now, "last_call_ended_at": now},
        )
        if agent is not None:
            await agent_state_changed(session, agent)
        return agent

    async def _after_free(self, tenant_id: uuid.UUID, agent: Agent | None) -> None:
        if agent is None:
            return
        self.acd.publish_agent(tenant_id, agent)
        if agent.status == "available":
            await self.acd.route_for_agent(tenant_id=tenant_id, agent_id=agent.id)


def _one_target(queue_id: uuid.UUID | None, agent_id: uuid.UUID | None) -> None:
    if (queue_id is None) == (agent_id is None):
        raise Problem(400, "invalid_transfer_target", "name exactly one of agent_id and queue_id")


async def _check_queue(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> None:
    if await session.scalar(select(Queue.id).where(Queue.tenant_id == tenant_id, Queue.id == queue_id)) is None:
        raise not_found("queue")
