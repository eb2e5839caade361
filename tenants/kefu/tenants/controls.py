"""In-call controls: hold, mute, recording pause, and supervisor monitor / whisper / barge / take over.

Each control is one transaction on the call row (state, a call event) and
then one media command: the media plane's routing table is recomputed from
the call's whole state (``kefu.tenants.audio_routes``), so applying it twice,
or after a lost update, converges.  Controls on one call are serialised in
this process, and the state is re-read after commit, so the last committed
state is the one the media plane ends up with.  The agent's desktop is told
every change (``call.audio``), including that a supervisor is listening.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.models import User
from kefu.platform.problems import Problem, not_found
from kefu.tenants.audio_routes import SUPERVISOR_MODES, CallAudio, routes
from kefu.tenants.call_log import append_event, lock_agent, lock_agent_of_call, lock_call
from kefu.tenants.callflow import CallFlow, check_sdp
from kefu.tenants.events import agent_state_changed
from kefu.tenants.models import Agent, Call
from kefu.tenants.notify import agent_channel, call_channel

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"


def audio_state(call: Call) -> CallAudio:
    return CallAudio(
        on_hold=call.on_hold, agent_muted=call.agent_muted, supervisor_mode=call.supervisor_mode, taken_over=call.taken_over,
        consult=call.consult_state,
    )


def audio_message(call: Call, supervisor_name: str | None = None) -> dict[str, Any]:
    """What an agent desktop (and a supervisor page) is told about the call's audio."""
    return {
        "type": "call.audio",
        "call_id": str(call.id),
        "on_hold": call.on_hold,
        "muted": call.agent_muted,
        "recording_paused": call.recording_paused,
        "supervisor": None if call.supervisor_mode is None else {"mode": call.supervisor_mode, "name": supervisor_name},
        "taken_over": call.taken_over,
        "consult": None if call.consult_state is None else {"agent_id": str(call.consult_agent_id), "state": call.consult_state},
    }


class CallControls:
    def __init__(self, flow: CallFlow) -> None:
        self.flow = flow
        self.db = flow.db
        self.acd = flow.acd
        self._locks: dict[tuple[uuid.UUID, uuid.UUID], asyncio.Lock] = {}
        # Parties whose dropped leg something else handles (kefu.tenants.transfers: "consult").
        self.leg_closed_handlers: dict[str, Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]] = {}

    # --- agent controls ---------------------------------------------------------------

    async def set_hold(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, on_hold: bool) -> Call:
        return await self._agent_control(
            tenant_id=tenant_id, user_id=user_id, call_id=call_id, column="on_hold", value=on_hold,
            event="held" if on_hold else "resumed",
        )

    async def set_mute(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, muted: bool) -> Call:
        return await self._agent_control(
            tenant_id=tenant_id, user_id=user_id, call_id=call_id, column="agent_muted", value=muted,
            event="agent_muted" if muted else "agent_unmuted",
        )

    async def agent_set_recording_paused(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, paused: bool) -> Call:
        return await self._agent_control(
            tenant_id=tenant_id, user_id=user_id, call_id=call_id, column="recording_paused", value=paused,
            event="recording_paused" if paused else "recording_resumed",
        )

    async def set_recording_paused(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, paused: bool) -> Call:
        """A supervisor or administrator pauses or resumes a call's recording."""

        def check(call: Call) -> None:
            _require_connected(call)

        return await self._change(
            tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}", check=check,
            values={"recording_paused": paused}, event="recording_paused" if paused else "recording_resumed",
        )

    async def _agent_control(
        self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, column: str, value: bool, event: str
    ) -> Call:
        agent_id = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)

        def check(call: Call) -> None:
            if call.agent_id != agent_id or call.taken_over:
                raise not_found("call")
            _require_connected(call)

        return await self._change(
            tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}", check=check, values={column: value}, event=event
        )

    # --- supervisor ---------------------------------------------------------------------

    async def supervise(
        self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, mode: str, offer_sdp: str
    ) -> str:
        """Join a connected call as its supervisor, in ``mode``; returns the media answer."""
        _check_mode(mode)
        check_sdp(offer_sdp)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
        if call is None:
            raise not_found("call")
        _require_connected(call)
        if call.supervisor_user_id not in (None, user_id):
            raise Problem(409, "call_supervised", "another supervisor is already on this call")
        # The supervisor's leg first: nobody is told a supervisor joined who cannot hear.
        answer = await self.flow.answer_leg(tenant_id=tenant_id, call_id=call_id, party=SUPERVISOR, offer_sdp=offer_sdp)

        def check(locked: Call) -> None:
            _require_connected(locked)
            if locked.supervisor_user_id not in (None, user_id):
                raise Problem(409, "call_supervised", "another supervisor is already on this call")

        try:
            await self._change(
                tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}", check=check,
                values={"supervisor_user_id": user_id, "supervisor_mode": mode}, event="supervisor_joined", data={"mode": mode},
            )
        except BaseException:
            await self._close_leg(tenant_id=tenant_id, call_id=call_id, party=SUPERVISOR)
            raise
        return answer

    async def set_supervisor_mode(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, mode: str) -> Call:
        _check_mode(mode)

        def check(call: Call) -> None:
            _require_supervisor(call, user_id)
            if call.taken_over:
                raise Problem(409, "call_taken_over", "you took this call over; there is no agent to monitor")

        return await self._change(
            tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}", check=check,
            values={"supervisor_mode": mode}, event="supervisor_mode_changed", data={"mode": mode},
        )

    async def take_over(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID) -> Call:
        """The supervisor replaces the agent: the agent's leg is dropped and the agent freed."""
        freed: Agent | None = None

        async def also(session: AsyncSession, call: Call) -> None:
            nonlocal freed
            if call.agent_id is not None:
                freed = await lock_agent(
                    session, tenant_id=tenant_id, agent_id=call.agent_id, when=(Agent.current_call_id == call_id,),
                    values={"system_state": "idle", "current_call_id": None, "state_changed_at": self.acd.clock(),
                            "last_call_ended_at": self.acd.clock()},
                )
                if freed is not None:
                    await agent_state_changed(session, freed)

        def check(call: Call) -> None:
            _require_supervisor(call, user_id)
            if call.taken_over:
                raise Problem(409, "call_taken_over", "this call is already taken over")
            if call.consult_agent_id is not None:
                raise Problem(409, "consult_in_progress", "the agent is consulting; take over once the consultation is over")

        call = await self._change(
            tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}", check=check, lock_agent_first=True,
            values={"taken_over": True, "agent_muted": False}, event="taken_over",
            also=also,
        )
        if call.agent_id is not None:
            self.acd.hub.publish(
                agent_channel(tenant_id, call.agent_id),
                {"type": "call.taken_over", "call_id": str(call_id), "reason": "supervisor_took_over"},
            )
        await self._close_leg(tenant_id=tenant_id, call_id=call_id, party="agent")
        if freed is not None:
            self.acd.publish_agent(tenant_id, freed)
            if freed.status == "available":
                await self.acd.route_for_agent(tenant_id=tenant_id, agent_id=freed.id)
        return call

    async def leave(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID) -> None:
        """The supervisor leaves; a call it took over ends."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
        if call is None or call.supervisor_user_id != user_id:
            raise not_found("call")
        if call.status == "ended":
            return
        if call.taken_over:
            await self.flow.end_call(tenant_id=tenant_id, call_id=call_id, reason="supervisor_hangup", actor=f"user:{user_id}")
            return
        await self.supervisor_left(tenant_id=tenant_id, call_id=call_id, actor=f"user:{user_id}")

    async def supervisor_left(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, actor: str) -> None:
        """The supervisor's leg is gone (it left, or its connection dropped): the call goes on without it."""

        def check(call: Call) -> None:
            if call.supervisor_user_id is None:
                raise _Unchanged

        try:
            await self._change(
                tenant_id=tenant_id, call_id=call_id, actor=actor, check=check,
                values={"supervisor_user_id": None, "supervisor_mode": None}, event="supervisor_left",
            )
        except _Unchanged:
            pass
        await self._close_leg(tenant_id=tenant_id, call_id=call_id, party=SUPERVISOR)

    async def on_leg_closed(self, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        """A leg the media plane reports gone: a listening supervisor just leaves, a consulted agent's
        consultation ends; the caller or the agent ends the call."""
        handler = self.leg_closed_handlers.get(party)
        if handler is not None:
            await handler(tenant_id, call_id)
            return
        if party == SUPERVISOR:
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                taken_over = await session.scalar(select(Call.taken_over).where(Call.tenant_id == tenant_id, Call.id == call_id))
            if not taken_over:
                await self.supervisor_left(tenant_id=tenant_id, call_id=call_id, actor="media")
                return
        await self.flow.on_leg_closed(tenant_id, call_id, party)

    # --- the one way state changes -------------------------------------------------------

    async def _change(
        self,
        *,
        tenant_id: uuid.UUID,
        call_id: uuid.UUID,
        actor: str,
        check: Callable[[Call], None],
        values: dict[str, Any],
        event: str,
        data: dict[str, Any] | None = None,
        lock_agent_first: bool = False,
        also: Callable[[AsyncSession, Call], Awaitable[None]] | None = None,
    ) -> Call:
        async with self._lock(tenant_id, call_id):
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                if lock_agent_first:
                    await lock_agent_of_call(session, tenant_id=tenant_id, call_id=call_id)
                call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
                if call is None:
                    raise not_found("call")
                check(call)
                changed = any(getattr(call, column) != value for column, value in values.items())
                if changed:
                    for column, value in values.items():
                        setattr(call, column, value)
                    if also is not None:
                        await also(session, call)
                    await append_event(session, tenant_id=tenant_id, call_id=call_id, type=event, actor=actor,
                                       at=self.acd.clock(), data=data or {})
            await self.apply(tenant_id=tenant_id, call_id=call_id)
        return call

    async def apply(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        """Make the media plane match the call's committed state; tell the agent and the call's watchers."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
            supervisor = (
                await session.scalar(select(User.display_name).where(User.tenant_id == tenant_id, User.id == call.supervisor_user_id))
                if call is not None and call.supervisor_user_id is not None else None
            )
        if call is None or call.status != "connected":
            return
        media = self.flow.media()
        try:
            await media.set_routes(tenant_id=tenant_id, call_id=call_id, hears=routes(audio_state(call)))
            await media.set_recording_paused(tenant_id=tenant_id, call_id=call_id, paused=call.recording_paused)
        except Exception:
            log.exception("the media plane did not take the new routing of call %s", call_id)
            raise Problem(502, "media_failed", "the media server did not apply the change; try again") from None
        message = audio_message(call, supervisor)
        if call.agent_id is not None and not call.taken_over:
            self.acd.hub.publish(agent_channel(tenant_id, call.agent_id), message)
        if call.consult_agent_id is not None:
            self.acd.hub.publish(agent_channel(tenant_id, call.consult_agent_id), message)
        self.acd.hub.publish(call_channel(tenant_id, call_id), message)

    def _lock(self, tenant_id: uuid.UUID, call_id: uuid.UUID) -> asyncio.Lock:
        key = (tenant_id, call_id)
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > 10_000:  # forget idle locks of calls long over
                for stale in [k for k, v in self._locks.items() if not v.locked()]:
                    del self._locks[stale]
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _close_leg(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        media = self.flow._media_provider()
        if media is None:
            return
        try:
            await media.close_leg(tenant_id=tenant_id, call_id=call_id, party=party)
        except Exception:
            log.exception("closing the %s leg of call %s failed", party, call_id)


class _Unchanged(Exception):
    pass


def _check_mode(mode: str) -> None:
    if mode not in SUPERVISOR_MODES:
        raise Problem(400, "invalid_mode", f"mode must be one of {', '.join(SUPERVISOR_MODES)}")


def _require_connected(call: Call) -> None:
    if call.status != "connected":
        raise Problem(409, "call_not_connected", f"the call is {call.status}, not connected")


def _require_supervisor(call: Call, user_id: uuid.UUID) -> None:
    if call.supervisor_user_id != user_id:
        raise Problem(409, "not_supervising", "join the call as its supervisor first")
    _require_connected(call)
