"""Reconnect: a caller or agent whose media leg drops gets a grace period to come back.

A browser that reloads its page closes its peer connection, and the media
plane reports the leg closed; a network change makes it fail.  Neither should
end the call at once.  ``Reconnect`` sits in front of the previous
``on_leg_closed`` handler (``CallFlow.media_callbacks``; today
``CallControls.on_leg_closed``): for a caller's or agent's leg it appends a
``disconnected`` call event and waits ``RECONNECT_GRACE_S`` on the ACD's
timers; only if the party has not re-attached by then does the report go on
to the previous handler, which ends the call exactly as before (reason
``<party>_disconnected``, or ``abandoned`` for a caller not yet answered).
Supervisor legs, and legs of calls already over, go straight through.
Explicit hang-ups never pass here: they end the call at once.

A party re-attaches by offering again (``POST /api/v1/agent/calls/{id}/media``,
``POST /api/v1/widget/calls/{id}/media``): the media plane answers a new leg
that replaces the old one, keeping the party's recording in the same file.
That is also how a browser "restarts ICE" after a network change: aiortc
1.16 cannot restart ICE inside an existing peer connection, so the browser
makes a fresh ``RTCPeerConnection`` and the new leg replaces the old.  Each
re-attach cancels the party's grace timer and appends ``reconnected``.

Grace timers are in-process (like ring timeouts): they live where the media
plane's reports arrive.  A process that dies during a grace period loses
them; the ACD's sweep on any node then finds, from the call log, parties whose
last ``disconnected`` is older than the grace (plus a second) with no
``reconnected`` after it, and ends their calls as the timer would have
(``Reconnect.sweep_lost_graces``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from kefu.platform.deps import ActiveTenantId, CurrentPrincipal, RuntimeDep
from kefu.platform.identity.principal import requires
from kefu.platform.problems import Problem, not_found
from kefu.platform.runtime import Runtime
from kefu.tenants.call_log import append_event, lock_call
from kefu.tenants.callflow import CallFlow, check_sdp
from kefu.tenants.clock import TimerHandle
from kefu.tenants.controls_api import (
    CallAudioOut,
    call_audio_out,  # the controls' own answer, field for field
)
from kefu.tenants.models import Call, CallEvent
from kefu.tenants.schemas import AnswerOut, AnswerRequest
from kefu.tenants.services import contact_center
from litestar import Controller, post
from litestar.params import FromPath, HeaderParameter, JSONBody
from sqlalchemy import select

log = logging.getLogger(__name__)

# How long a dropped caller or agent leg may stay away before its call ends.
# A reloaded page offers again within a second or two; a network change takes
# the browser a few seconds to notice (ICE "disconnected") and offer anew.
# Eight seconds covers both without keeping a caller on a dead line for long.
RECONNECT_GRACE_S = 8.0

# The parties that may come back; a supervisor's dropped leg just leaves the call.
RECONNECTING_PARTIES = ("caller", "agent")
# Where a dropped leg may come back, per party: a caller waiting or talking,
# an agent talking (an agent's leg exists only once the call is answered).
LIVE_STATUSES = {"caller": ("queued", "ringing", "connected"), "agent": ("connected",)}

LegClosed = Callable[[uuid.UUID, uuid.UUID, str], Awaitable[None]]
GraceKey = tuple[uuid.UUID, uuid.UUID, str]


@dataclass(eq=False)
class _Grace:
    deadline: datetime
    handle: TimerHandle | None = field(default=None)


class Reconnect:
    """Grace periods for dropped legs, and re-attaching a party's media to its live call."""

    def __init__(self, flow: CallFlow, *, then: LegClosed) -> None:
        self.flow = flow
        self.acd = flow.acd
        self.db = flow.db
        self._then = then
        self._pending: dict[GraceKey, _Grace] = {}
        # Drops the sweep already passed on (key, when): each only once per process.
        self._swept: set[tuple[GraceKey, datetime]] = set()

    # --- the media plane's report -------------------------------------------------

    async def on_leg_closed(self, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        if party not in RECONNECTING_PARTIES:
            await self._then(tenant_id, call_id, party)
            return
        key = (tenant_id, call_id, party)
        if key in self._pending:
            return  # the same drop reported twice
        # Armed before anything is awaited: a re-attach that completes while this
        # report reads the call finds the timer and cancels it.
        grace = self._arm(key, self.acd.clock() + timedelta(seconds=RECONNECT_GRACE_S))
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            live = call is not None and _may_come_back(call, party)
            if live and self._pending.get(key) is grace:
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="disconnected", actor="media",
                                   at=self.acd.clock(), data={"party": party, "grace_s": RECONNECT_GRACE_S})
        if not live and self._disarm(key, grace):
            await self._then(tenant_id, call_id, party)  # nothing to come back to: as before, at once

    def _arm(self, key: GraceKey, deadline: datetime) -> _Grace:
        grace = _Grace(deadline)

        async def expire() -> None:
            if self._disarm(key, grace):
                log.info("the %s of call %s did not come back within %ss", key[2], key[1], RECONNECT_GRACE_S)
                await self._then(*key)

        self._pending[key] = grace
        grace.handle = self.acd.timers.call_at(deadline, expire)
        return grace

    def _disarm(self, key: GraceKey, grace: _Grace | None = None) -> _Grace | None:
        """Stop the party's grace timer (only ``grace`` when given); returns what was stopped."""
        current = self._pending.get(key)
        if current is None or (grace is not None and current is not grace):
            return None
        del self._pending[key]
        if current.handle is not None:
            current.handle.cancel()
        return current

    async def sweep_lost_graces(self, now: datetime) -> int:
        """End the calls whose dropped party's grace ran out on a node that died
        (the ACD's sweep runs this).  Returns how many leg reports it passed on."""
        cutoff = now - timedelta(seconds=RECONNECT_GRACE_S + 1)
        async with self.db.platform_session(reason="reconnect grace periods a dead node held") as session:
            rows = (
                await session.execute(
                    select(CallEvent.tenant_id, CallEvent.call_id, CallEvent.type, CallEvent.data, CallEvent.at, Call.callback_requested_at)
                    .join(Call, (Call.tenant_id == CallEvent.tenant_id) & (Call.id == CallEvent.call_id))
                    .where(Call.status != "ended", CallEvent.type.in_(("disconnected", "reconnected")))
                    .order_by(CallEvent.call_id, CallEvent.seq)
                )
            ).all()
        latest: dict[GraceKey, tuple[str, datetime]] = {}
        for tenant_id, call_id, type_, data, at, callback in rows:
            party = (data or {}).get("party")
            if party in RECONNECTING_PARTIES and not (party == "caller" and callback is not None):  # a callback's caller left on purpose
                latest[(tenant_id, call_id, party)] = (type_, at)
        passed = 0
        for key, (type_, at) in latest.items():
            if type_ == "disconnected" and at <= cutoff and key not in self._pending and (key, at) not in self._swept:
                self._swept.add((key, at))  # passed on once per drop, whatever the handler then decides
                log.warning("the %s of call %s never came back and its grace timer was lost; ending the call", key[2], key[1])
                await self._then(*key)
                passed += 1
        self._swept = {entry for entry in self._swept if entry[0] in latest}  # forget calls that ended
        return passed

    # --- re-attaching ----------------------------------------------------------------

    async def reattach_agent(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, offer_sdp: str) -> tuple[str, Call]:
        """The agent's desktop offers again for its own connected call; returns the answer and the call."""
        check_sdp(offer_sdp)
        agent_id = await self.flow.agent_id_of_user(tenant_id=tenant_id, user_id=user_id)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.agent_id == agent_id))
        if call is None or call.taken_over:
            raise not_found("call")  # a call taken over is no longer the agent's
        if call.status != "connected":
            raise Problem(409, "call_not_connected", f"the call is {call.status}, not connected")
        answer = await self._reattach(tenant_id=tenant_id, call_id=call_id, party="agent", offer_sdp=offer_sdp, actor=f"user:{user_id}")
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
        assert call is not None
        return answer, call

    async def reattach_caller(self, *, call_id: uuid.UUID, caller_token: str | None, offer_sdp: str) -> str:
        """The caller's page offers again (reload, network change) for its call, waiting or talking."""
        check_sdp(offer_sdp)
        call = await self.flow.caller_call(call_id=call_id, caller_token=caller_token)
        if call.status == "ended":
            raise Problem(409, "call_ended", "the call has ended")
        return await self._reattach(tenant_id=call.tenant_id, call_id=call_id, party="caller", offer_sdp=offer_sdp, actor="caller")

    async def _reattach(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, offer_sdp: str, actor: str) -> str:
        key = (tenant_id, call_id, party)
        # The grace timer stops while the new leg is negotiated; a failed offer resumes it.
        held = self._disarm(key)
        try:
            answer = await self.flow.answer_leg(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=offer_sdp)
        except BaseException:
            if held is not None and key not in self._pending:
                self._arm(key, held.deadline)
            raise
        # The old leg's report may have arrived while the new leg was negotiated.
        self._disarm(key)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            live = call is not None and _may_come_back(call, party)
            if live:
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="reconnected", actor=actor,
                                   at=self.acd.clock(), data={"party": party})
        if not live:
            # The call ended (or was taken over) while the leg was negotiated: the new leg goes too.
            await self.flow._release_leg(tenant_id=tenant_id, call_id=call_id, party=party)
            raise Problem(409, "call_ended", "the call ended before the media was re-attached")
        return answer


def _may_come_back(call: Call, party: str) -> bool:
    if call.status not in LIVE_STATUSES[party]:
        return False
    return not (party == "agent" and call.taken_over)


# --- HTTP -------------------------------------------------------------------------------


class AgentMediaOut(msgspec.Struct):
    answer_sdp: str
    # The call's audio state, so a reloaded desktop shows hold, mute, recording and supervisor at once.
    audio: CallAudioOut


def reconnect(runtime: Runtime) -> Reconnect:
    return runtime.components["reconnect"]  # type: ignore[no-any-return]


CallerToken = Annotated[str | None, HeaderParameter(name="X-Caller-Token", required=False)]


class AgentMediaController(Controller):
    """``POST /api/v1/agent/calls/{id}/media``: the agent's desktop re-attaches to its connected call."""

    path = "/api/v1/agent/calls/{call_id:uuid}"
    tags = ["agent desktop"]
    guards = [requires("agent.desktop")]

    @post("/media", status_code=200)
    async def reattach(self, call_id: FromPath[uuid.UUID], data: JSONBody[AnswerRequest], active_tenant_id: ActiveTenantId,
                       principal: CurrentPrincipal, runtime: RuntimeDep) -> AgentMediaOut:
        answer, call = await reconnect(runtime).reattach_agent(
            tenant_id=active_tenant_id, user_id=principal.user_id, call_id=call_id, offer_sdp=data.offer_sdp
        )
        return AgentMediaOut(answer_sdp=answer, audio=call_audio_out(call))


class CallerMediaController(Controller):
    """``POST /api/v1/widget/calls/{id}/media`` (``X-Caller-Token``): the caller's page re-attaches to its call."""

    path = "/api/v1/widget/calls/{call_id:uuid}"
    tags = ["caller widget"]
    security = []

    @post("/media", status_code=200)
    async def reattach(self, call_id: FromPath[uuid.UUID], data: JSONBody[AnswerRequest], runtime: RuntimeDep,
                       caller_token: CallerToken = None) -> AnswerOut:
        answer = await reconnect(runtime).reattach_caller(call_id=call_id, caller_token=caller_token, offer_sdp=data.offer_sdp)
        return AnswerOut(answer_sdp=answer)


def install(runtime: Runtime) -> list[Any]:
    """Put the grace period in front of whatever handles leg reports now (call controls)."""
    flow = contact_center(runtime).calls
    runtime.components["reconnect"] = grace = Reconnect(flow, then=flow.media_callbacks["on_leg_closed"])
    flow.media_callbacks["on_leg_closed"] = grace.on_leg_closed
    flow.acd.sweepers.append(grace.sweep_lost_graces)
    return [AgentMediaController, CallerMediaController]
