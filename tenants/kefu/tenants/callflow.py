"""The call lifecycle, driven by the control plane: caller arrives, is queued,
is answered by an agent, hangs up (or a leg drops), and the recordings land.

The media plane (``runtime.components["media"]``, kefu.webrtc) owns peers,
bridging and files; this module owns call state and asks the media plane to
act.  Every step appends a call event.  Database transactions are never held
open across a media operation.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from kefu.billing import services as billing
from kefu.platform import metrics
from kefu.platform.db import Database
from kefu.platform.db.session import on_commit
from kefu.platform.deps import check_active
from kefu.platform.identity.passwords import token_hash
from kefu.platform.identity.principal import Principal
from kefu.platform.identity.services import tenant_of_token, tenant_token
from kefu.platform.models import Tenant
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants.acd import Acd, count_for_strategies, end_tenant_activity
from kefu.tenants.call_log import (
    append_event,
    lock_agent,
    lock_agent_of_call,
    lock_call,
    new_call_log,
)
from kefu.tenants.events import agent_state_changed, call_state_changed
from kefu.tenants.models import Agent, Call, IvrSession, Queue, Recording, Voicemail
from kefu.tenants.notify import agent_channel
from kefu.tenants.widgets import WidgetDirectory, WidgetEntry
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

MAX_SDP_LENGTH = 64 * 1024
MediaProvider = Callable[[], Any]
# The embedded default runs one media node; several nodes each set their own id (KEFU_NODE_ID).
DEFAULT_NODE = "embedded"
# Ending retries when the call moves to another agent between reading and locking it.
MAX_END_ATTEMPTS = 20
# The longest voicemail message.
VOICEMAIL_MAX_S = 120
CALLBACK_NUMBER = re.compile(r"\+?[0-9]{3,20}")
# A tenant suspended for non-payment: its callers hear this, then the call ends (``billing_suspended``).
SUSPENDED_PROMPT = {
    "en": "We are sorry, this service is not available at the moment. Please try again later. Thank you for calling.",
    "zh": "很抱歉，本服务暂时无法使用，请稍后再拨。感谢您的来电。",
}
SUSPENDED_GRACE_S = 2.0  # after the prompt, before the line drops

# What a caller hears before leaving a message, by language.
VOICEMAIL_PROMPT = {
    "en": "Please leave your message now. Hang up when you are done.",
    "zh": "请在现在留言，留言完毕请挂机。",
}


class _AgentChanged(Exception):
    """The call's agent changed before the call row was locked: roll back and lock again in order."""


@dataclass(frozen=True)
class NewCall:
    call_id: uuid.UUID
    tenant_id: uuid.UUID
    answer_sdp: str
    caller_token: str
    status: str = "queued"  # as the arrival left it: ivr, queued, ringing, voicemail


@dataclass(frozen=True)
class Queued:
    """A call ``CallFlow.enter_queue`` put in a queue; ``go()`` after the commit rings the
    agent it was booked to, routes the queue, or applies the rule that kept it out."""

    acd: Acd
    tenant_id: uuid.UUID
    call_id: uuid.UUID
    queue_id: uuid.UUID
    cause: str | None
    offered: Any  # kefu.tenants.acd.Arrival, or None

    async def go(self) -> None:
        if self.offered is not None:
            await self.acd.after_arrival(self.offered)
        else:
            await self.acd.call_queued(tenant_id=self.tenant_id, call_id=self.call_id, cause=self.cause, queue_id=self.queue_id)


@dataclass(frozen=True)
class NewArrival:
    """A web call about to be created."""

    entry: WidgetEntry
    call_id: uuid.UUID
    caller_name: str
    caller_ref: str | None
    caller_token_hash: str
    media_node: str


def check_sdp(sdp: str) -> str:
    if not sdp.strip().startswith("v=0") or len(sdp) > MAX_SDP_LENGTH:
        raise Problem(400, "invalid_sdp", "offer_sdp must be a session description (starting with v=0, at most 64 KiB)")
    return sdp



def _caller_tenant(caller_token: str | None) -> tuple[uuid.UUID, str]:
    """The tenant a caller's secret names (``<tenant hex>.<secret>``), and the secret; else 404."""
    tenant_id = tenant_of_token(caller_token) if caller_token else None
    if tenant_id is None or caller_token is None:
        raise not_found("call")
    return tenant_id, caller_token


async def agent_id_in(session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID:
    """The agent of this user (in the caller's transaction), or 403 ``not_an_agent``."""
    agent_id = await session.scalar(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.user_id == user_id))
    if agent_id is None:
        raise Problem(403, "not_an_agent", "this user is not an agent of the tenant")
    return agent_id


class CallFlow:
    def __init__(self, db: Database, acd: Acd, media: MediaProvider, *, node_id: str = DEFAULT_NODE, setups_in_flight: int = 32) -> None:
        self.db = db
        self.acd = acd
        self._media_provider = media
        self.node_id = node_id
        # Back-pressure: web calls being set up in this process right now, and the bound.
        self.setups_in_flight = 0
        self.max_setups_in_flight = setups_in_flight
        # What the media plane's callbacks go to (kefu.tenants.controls wires supervisor
        # legs and reconnect grace in front of ``on_leg_closed``; the IVR adds DTMF).
        self.media_callbacks: dict[str, Any] = {"on_leg_closed": self.on_leg_closed}
        # Run after a call ended (kefu.tenants.transfers frees a consulted agent): (tenant_id,
        # call_id, the call row as the ending transaction left it).
        self.after_end: list[Callable[[uuid.UUID, uuid.UUID, Call], Any]] = []
        # Asked first when an agent hangs up (tenant_id, call_id, user_id, the call as just
        # read); True: handled (hanging up during a consultation transfers the call).
        self.agent_leaving: list[Callable[[uuid.UUID, uuid.UUID, uuid.UUID, Call], Any]] = []
        self.widgets = WidgetDirectory(db, acd.hub)
        acd.actions = self
        acd.media = media
        acd.on_start.append(self.recover_lost_calls)
        acd.on_start.append(self._attach_media_nodes)
        acd.on_start.append(self.widgets.warm)
        from kefu.tenants.ivr.runner import IvrRunner

        self.ivr = IvrRunner(self)
        acd.on_stop.append(self.ivr.close)

    async def recover_lost_calls(self) -> int:
        """After a restart: end every live call of this media node whose caller leg is gone
        (reason ``media_lost``), freeing its agent.  Returns how many were ended."""
        return await self._end_calls_of_node(self.node_id, keep_live_caller_legs=True)

    async def _end_calls_of_node(self, node: str, *, keep_live_caller_legs: bool) -> int:
        media = self._media_provider()
        async with self.db.platform_session(reason="recover calls whose media legs died with their node") as session:
            rows = (
                await session.execute(
                    select(Call.tenant_id, Call.id).where(Call.media_node == node, Call.status != "ended")
                    # Waiting calls first, so agents freed by connected calls are not offered calls about to end.
                    .order_by(Call.status == "connected", Call.started_at, Call.id)
                )
            ).all()
        ended = 0
        for tenant_id, call_id in rows:
            leg_state = getattr(media, "leg_state", None) if media is not None and keep_live_caller_legs else None
            if leg_state is not None and leg_state(tenant_id=tenant_id, call_id=call_id, party="caller") is not None:
                continue
            if await self.end_call(tenant_id=tenant_id, call_id=call_id, reason="media_lost", actor="media", route_freed=False):
                ended += 1
        if ended:
            log.warning("ended %d call(s) whose media legs were lost on node %s", ended, node)
        # Only now route the freed agents: none is offered a call that was about to end.
        now = self.acd.clock()
        for tenant_id in dict.fromkeys(tenant_id for tenant_id, _ in rows):
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                free = list(await session.scalars(
                    select(Agent.id).where(
                        Agent.tenant_id == tenant_id, Agent.status == "available", Agent.system_state == "idle", Agent.lease_expires_at > now
                    ).order_by(Agent.state_changed_at, Agent.id)
                ))
            for agent_id in free:
                await self.acd.route_for_agent(tenant_id=tenant_id, agent_id=agent_id)
        return ended

    async def agents_logged_out(self, session: AsyncSession, tenant_id: uuid.UUID) -> int:
        """The admin API's hook (its name is the audit detail's key), in its transaction: agents logged out, waiting calls ended
        (``tenant_suspended``); after commit the media plane ends those calls and the
        callers' and agents' sockets learn their new state.  Returns the agents logged out."""
        done = await end_tenant_activity(session, tenant_id=tenant_id, now=self.acd.clock())

        async def after_commit() -> None:
            metrics.CALLS_ENDED.labels("tenant_suspended").inc(len(done.ended_calls))
            hub = self.acd.hub
            for call_id, agent_id in done.ended_calls:
                self.acd.publish_call(tenant_id, call_id, "ended", reason="tenant_suspended")
                if agent_id is not None:
                    hub.publish(agent_channel(tenant_id, agent_id), {"type": "call.ended", "call_id": str(call_id), "reason": "tenant_suspended"})
            for agent_id, message in done.agent_states:
                hub.publish(agent_channel(tenant_id, agent_id), message)
            for call_id, _agent_id in done.ended_calls:
                await self._collect_recordings(tenant_id=tenant_id, call_id=call_id)

        on_commit(session, after_commit)
        return done.agents

    # --- media nodes (production: kefu.webrtc.remote, docs/media-nodes.md) ---------

    async def _attach_media_nodes(self) -> None:
        """ACD start: a media plane on remote nodes reports to this control plane from now on."""
        media = self._media_provider()
        if media is None or not hasattr(media, "place_call"):
            return  # in-process media: nothing to place, no node to lose
        self.media()  # leg reports (media_callbacks), even for calls another replica placed
        media.on_node_lost = self.end_calls_of_lost_node
        media.locate_call = self.media_node_of
        media.live_call_nodes = self.media_nodes_of_live_calls

    async def _place_call(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> str:
        """The media node the new call is pinned to (this process's own in-process media otherwise)."""
        place = getattr(self.media(), "place_call", None)
        if place is None:
            return self.node_id
        return await place(tenant_id=tenant_id, call_id=call_id)

    async def end_calls_of_lost_node(self, node: str) -> int:
        """A media node died: its live calls end (``media_lost``), their agents are freed, then routed.
        Each call ends once (``_end_once`` locks the row), whichever replica runs this."""
        return await self._end_calls_of_node(node, keep_live_caller_legs=False)

    async def media_node_of(self, tenant_id: uuid.UUID, call_id: uuid.UUID) -> str | None:
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            return await session.scalar(select(Call.media_node).where(Call.tenant_id == tenant_id, Call.id == call_id))

    async def media_nodes_of_live_calls(self) -> set[str]:
        async with self.db.platform_session(reason="find calls pinned to media nodes that stopped reporting") as session:
            nodes = await session.scalars(select(Call.media_node).where(Call.status != "ended", Call.media_node.is_not(None)).distinct())
            return set(nodes)

    # --- media plane -------------------------------------------------------------

    def media(self) -> Any:
        media = self._media_provider()
        if media is None:
            raise Problem(503, "media_unavailable", "no media server is running in this deployment")
        for name, callback in self.media_callbacks.items():
            if getattr(media, name, None) is None:
                setattr(media, name, callback)
        return media

    async def answer_leg(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, offer_sdp: str) -> str:
        media = self.media()
        try:
            return await media.answer_leg(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=offer_sdp)
        except Problem:
            raise
        except ValueError as exc:  # kefu.webrtc's OfferRejected carries a stable code
            raise Problem(400, getattr(exc, "code", "invalid_sdp"), f"the media server rejected the offer: {exc}") from None

    # --- caller side -------------------------------------------------------------

    async def resolve_widget(self, widget_key: str) -> WidgetEntry:
        """The entry point behind a public widget key (kefu.tenants.widgets: remembered per
        process, forgotten everywhere when the tenant's entry points or status change)."""
        return await self.widgets.resolve(widget_key)

    async def start_web_call(self, *, widget_key: str, caller_name: str, offer_sdp: str, caller_ref: str | None = None) -> NewCall:
        """A web caller arrives: its leg is answered, then one transaction creates the call
        queued in the entry point's queue (at the entry point's priority), applies the
        queue's rules (closed, overflow) and, when an agent is free and nothing older waits,
        books it to that agent.  ``caller_ref`` identifies a returning caller (a customer
        reference the tenant's site passes) for preferred-agent routing."""
        arrived = time.perf_counter()  # kefu_call_setup_seconds counts from here
        caller_name = check_text(caller_name, code="invalid_caller_name", what="the caller name")
        if caller_ref is not None:
            caller_ref = check_text(caller_ref, code="invalid_caller_ref", what="the caller reference")
        check_sdp(offer_sdp)
        if self.setups_in_flight >= self.max_setups_in_flight:
            # Refused before anything exists (no leg, no call): a caller retrying after a
            # second meets a process that is not still working through a backlog.
            metrics.CALLS_REFUSED.labels("overloaded").inc()
            raise Problem(503, "overloaded", "too many calls are being set up here right now; retry shortly", headers={"Retry-After": "1"})
        self.setups_in_flight += 1
        try:
            return await self._start_web_call(arrived, widget_key, caller_name, caller_ref, offer_sdp)
        finally:
            self.setups_in_flight -= 1

    async def _start_web_call(self, arrived: float, widget_key: str, caller_name: str, caller_ref: str | None, offer_sdp: str) -> NewCall:
        entry = await self.resolve_widget(widget_key)
        tenant_id = entry.tenant_id
        call_id = uuid.uuid4()
        # Fails (503 media_unavailable) before creating a call nobody can hear.
        media_node = await self._place_call(tenant_id=tenant_id, call_id=call_id)
        caller_token = tenant_token(tenant_id)  # <tenant hex>.<secret>: the caller endpoints open only this tenant
        arrival = NewArrival(entry, call_id, caller_name, caller_ref, token_hash(caller_token), media_node)
        try:
            # The leg first: nobody is offered a call whose caller cannot be heard yet.
            try:
                answer_sdp = await self.answer_leg(tenant_id=tenant_id, call_id=call_id, party="caller", offer_sdp=offer_sdp)
            except Problem as exc:
                if not getattr(exc, "node_lost", False):
                    raise
                # The node died between its last report and this call (kefu.webrtc.remote's
                # MediaUnavailable.node_lost): nothing of the call exists yet, so it goes to
                # another node, once.
                media_node = await self._place_call(tenant_id=tenant_id, call_id=call_id)
                arrival = replace(arrival, media_node=media_node)
                answer_sdp = await self.answer_leg(tenant_id=tenant_id, call_id=call_id, party="caller", offer_sdp=offer_sdp)
        except Problem:
            # The attempt still leaves a call record, ended media_failed.
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                await self._create_call(session, arrival, self.acd.clock())
            metrics.CALLS_STARTED.labels("web").inc()
            await self.end_call(tenant_id=tenant_id, call_id=call_id, reason="media_failed", actor="media")
            raise
        committed = False

        async def note_commit() -> None:
            nonlocal committed
            committed = True

        try:
            now = self.acd.clock()
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                on_commit(session, note_commit)  # first of the after-commit work
                session.autoflush = False  # the call, its events and outbox rows go in together at commit
                call = await self._create_call(session, arrival, now)
                if not self.db.is_postgres:
                    # SQLite: write first, so the transaction holds the write lock before it
                    # reads (a read-then-write transaction can meet SQLITE_BUSY_SNAPSHOT).
                    await session.flush()
                step = None
                queued = None
                suspended = await billing.service_suspended(session, tenant_id=tenant_id)
                if suspended:
                    await self._end_for_billing(session, call=call, now=now)
                elif entry.flow_id is not None:
                    step = await self.ivr.begin(session, call=call, flow_id=entry.flow_id, now=now)
                if step is None and not suspended:
                    queued = await self.enter_queue(session, call=call, queue_id=entry.queue_id, priority=entry.priority, now=now)
                status = call.status
        except BaseException:
            if not committed:  # a call that exists keeps its leg (its own rules end it)
                await self._drop_media_quietly(tenant_id=tenant_id, call_id=call_id)
            raise
        metrics.CALLS_STARTED.labels("web").inc()
        if suspended:
            metrics.CALLS_ENDED.labels("billing_suspended").inc()
            await self._suspended_message(tenant_id=tenant_id, call_id=call_id)
            return NewCall(call_id, tenant_id, answer_sdp, caller_token, "suspended")
        if step is not None:
            await self.ivr.carry_out(step)
        elif queued is not None:
            await queued.go()
            if queued.offered is not None and queued.offered.offer is not None:  # booked on arrival: the agent's phone rings
                metrics.CALL_SETUP_SECONDS.observe(time.perf_counter() - arrived)
        return NewCall(call_id, tenant_id, answer_sdp, caller_token, "ivr" if status == "ivr" else "voicemail" if status == "voicemail" else "queued")

    async def _end_for_billing(self, session: AsyncSession, *, call: Call, now: datetime) -> None:
        """A call to a tenant suspended for non-payment ends at once (``billing_suspended``): no
        queue, no agent; its caller hears the polite message after the commit."""
        call.status, call.ended_at, call.end_reason, call.queued_at, call.queue_entered_at = "ended", now, "billing_suspended", None, None
        await append_event(session, tenant_id=call.tenant_id, call_id=call.id, type="ended", actor="system", at=now,
                           data={"reason": "billing_suspended", "previous_status": "new"})
        await call_state_changed(session, tenant_id=call.tenant_id, call_id=call.id, status="ended", queue_id=call.queue_id, end_reason="billing_suspended")

    async def _suspended_message(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        """Play ``SUSPENDED_PROMPT`` to the caller, then drop the line."""
        media = self._media_provider()
        length_ms = 0
        if media is not None and hasattr(media, "play_prompt"):
            try:
                locale = await self._tenant_locale(tenant_id)
                text = SUSPENDED_PROMPT["zh" if locale.startswith("zh") else "en"]
                length_ms = await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="billing_suspended",
                                                    text=text, locale="zh-CN" if locale.startswith("zh") else "en-US")
            except Exception:
                log.exception("the suspension message of call %s failed", call_id)

        async def drop() -> None:
            await self._drop_media_quietly(tenant_id=tenant_id, call_id=call_id)

        self.acd.timers.call_at(self.acd.clock() + timedelta(seconds=length_ms / 1000 + SUSPENDED_GRACE_S), drop)

    async def _tenant_locale(self, tenant_id: uuid.UUID) -> str:
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            return await session.scalar(select(Tenant.locale).where(Tenant.id == tenant_id)) or "en"

    async def _create_call(self, session: AsyncSession, arrival: NewArrival, now: datetime) -> Call:
        """The call row, queued in the entry point's queue, and its ``created`` event."""
        entry = arrival.entry
        call = Call(
            id=arrival.call_id, tenant_id=entry.tenant_id, entry_point_id=entry.id, queue_id=entry.queue_id, caller_name=arrival.caller_name,
            status="queued", started_at=now, queued_at=now, queue_entered_at=now, priority=entry.priority,
            caller_token_hash=arrival.caller_token_hash,
            media_node=arrival.media_node,  # the call's legs live there; when that node dies the call ends
            caller_ref=arrival.caller_ref, skills=[],
        )
        session.add(call)
        new_call_log(session, call_id=call.id)
        await append_event(session, tenant_id=entry.tenant_id, call_id=call.id, type="created", actor="caller", at=now,
                           data={"entry_point_id": str(entry.id), "caller_name": arrival.caller_name, "channel": "web"})
        return call

    async def enter_queue(
        self, session: AsyncSession, *, call: Call, queue_id: uuid.UUID, priority: int, now: datetime,
        preferred: tuple[uuid.UUID, datetime] | None = None, callback: bool = False, callback_number: str | None = None,
    ) -> Queued:
        """In the call's transaction: the call (arriving, or leaving its IVR flow) waits in
        ``queue_id`` at ``priority``; the queue's rules apply (closed, overflow) and, when an
        agent is free and nothing older waits, the call is booked to it.  ``preferred``: the
        agent it waits for first, and until when; ``callback``: the caller leaves and keeps
        its place.  ``Queued.go()`` after the commit does the rest."""
        tenant_id = call.tenant_id
        call.status, call.queue_id, call.priority = "queued", queue_id, priority
        call.queued_at, call.queue_entered_at = call.queued_at or now, now
        if callback:
            call.callback_requested_at, call.callback_number = now, callback_number
        cause, queue = await self.acd.admit(session, call=call, now=now)
        if preferred is not None:
            call.preferred_agent_id, call.preferred_until = preferred
        await append_event(session, tenant_id=tenant_id, call_id=call.id, type="queued", actor="acd", at=now,
                           data={"queue_id": str(queue_id), "priority": priority,
                                 **({"preferred_agent_id": str(call.preferred_agent_id)} if call.preferred_agent_id else {})})
        if callback:
            await append_event(session, tenant_id=tenant_id, call_id=call.id, type="callback_requested", actor="ivr", at=now,
                               data={"has_number": callback_number is not None})
        await call_state_changed(session, tenant_id=tenant_id, call_id=call.id, status="queued", queue_id=queue_id)
        offered = None if cause is not None else await self.acd.offer_on_arrival(session, call=call, queue=queue, now=now)
        return Queued(self.acd, tenant_id, call.id, queue_id, cause, offered)

    async def _drop_media_quietly(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        """The call was never created after all: its media goes (nothing was recorded)."""
        try:
            await self.media().end_call(tenant_id=tenant_id, call_id=call_id)
        except Exception:  # the original error is what matters
            log.warning("dropping the media of call %s that was never created failed", call_id, exc_info=True)

    # --- queue rules the ACD hands over (kefu.tenants.acd.QueueActions) ---------------

    async def queue_action(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, action: str, cause: str) -> None:
        """A waiting call leaves its queue by rule (``cause``: closed, overflow, max_wait):
        hang up, take a voicemail, or become a callback that keeps its place."""
        if action == "callback":
            if await self.acd.request_callback(tenant_id=tenant_id, call_id=call_id, number=None, actor="acd"):
                await self._release_leg(tenant_id=tenant_id, call_id=call_id, party="caller")
            return
        if action == "voicemail":
            await self.start_voicemail(tenant_id=tenant_id, call_id=call_id, cause=cause)
            return
        await self.end_call(tenant_id=tenant_id, call_id=call_id, reason=cause, actor="acd")

    async def start_voicemail(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, cause: str) -> bool:
        """A waiting caller leaves a message (a queue's rule, ``cause``): a prompt, then the
        caller's leg is recorded alone until it hangs up or ``VOICEMAIL_MAX_S`` passed (the
        call ends ``voicemail``).  The message is a task of the queue (``voicemails``)."""
        now = self.acd.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            if call is None or call.status != "queued":
                return False
            await self.voicemail_in_transaction(session, call=call, queue_id=call.queue_id, cause=cause, now=now)
        await self.voicemail_media(tenant_id=tenant_id, call_id=call_id)
        return True

    async def voicemail_in_transaction(self, session: AsyncSession, *, call: Call, queue_id: uuid.UUID | None, cause: str, now: datetime) -> None:
        """The call (locked, or being created) starts its message: status ``voicemail``, its event, its task."""
        call.status, call.queue_id = "voicemail", queue_id
        session.add(Voicemail(tenant_id=call.tenant_id, call_id=call.id, queue_id=queue_id, status="new", created_at=now))
        await append_event(session, tenant_id=call.tenant_id, call_id=call.id, type="voicemail_started", actor="acd", at=now,
                           data={"cause": cause, **({"queue_id": str(queue_id)} if queue_id else {})})
        await call_state_changed(session, tenant_id=call.tenant_id, call_id=call.id, status="voicemail", queue_id=queue_id)

    async def voicemail_media(
        self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, prompt: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        """After the commit: record the caller, play the prompt (``prompt``, else the standard
        one), and end the call when ``VOICEMAIL_MAX_S`` passed."""
        now = self.acd.clock()
        self.acd.publish_call(tenant_id, call_id, "voicemail")
        media = self._media_provider()
        if media is not None:
            try:
                if hasattr(media, "record_party"):
                    await media.record_party(tenant_id=tenant_id, call_id=call_id, party="caller", enabled=True)
                if prompt is not None:
                    await prompt()
                elif hasattr(media, "play_prompt"):
                    await media.play_prompt(tenant_id=tenant_id, call_id=call_id, party="caller", prompt_id="voicemail",
                                            text=VOICEMAIL_PROMPT["en"])
            except Exception:
                log.exception("voicemail media for call %s failed", call_id)

        async def limit() -> None:
            await self.end_call(tenant_id=tenant_id, call_id=call_id, reason="voicemail", actor="acd")

        self.acd.timers.call_at(now + timedelta(seconds=VOICEMAIL_MAX_S), limit)

    @staticmethod
    def is_callback_number(number: str) -> bool:
        return CALLBACK_NUMBER.fullmatch(number) is not None

    async def release_caller_of_callback(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        """The caller of a callback leaves (after its prompt), unless an agent already took the call."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            status = await session.scalar(select(Call.status).where(Call.tenant_id == tenant_id, Call.id == call_id))
        if status in ("queued", "ringing"):
            await self._release_leg(tenant_id=tenant_id, call_id=call_id, party="caller")

    async def request_callback(self, *, call_id: uuid.UUID, caller_token: str | None, number: str | None) -> None:
        """The waiting caller asks to be called back: it hangs up and keeps its place."""
        call = await self.caller_call(call_id=call_id, caller_token=caller_token)
        if number is not None:
            number = number.strip()
            if not CALLBACK_NUMBER.fullmatch(number):
                raise Problem(400, "invalid_callback_number", "give a phone number of 3 to 20 digits, optionally starting with +")
        if not await self.acd.request_callback(tenant_id=call.tenant_id, call_id=call.id, number=number, actor="caller"):
            raise Problem(409, "call_not_waiting", "only a call waiting in a queue can become a callback")
        await self._release_leg(tenant_id=call.tenant_id, call_id=call.id, party="caller")

    async def caller_call(self, *, call_id: uuid.UUID, caller_token: str | None) -> Call:
        """The call a caller's secret opens; anything else answers 404."""
        tenant_id, caller_token = _caller_tenant(caller_token)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            call = await session.scalar(
                select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.caller_token_hash == token_hash(caller_token))
            )
        if call is None:
            raise not_found("call")
        return call

    async def caller_hangup(self, *, call_id: uuid.UUID, caller_token: str | None) -> None:
        """The caller hangs up: its secret is checked in the transaction that ends the call
        (404 as ``caller_call`` for anything else; a call already ended stays as it is)."""
        tenant_id, caller_token = _caller_tenant(caller_token)
        await self.end_call(tenant_id=tenant_id, call_id=call_id, reason=None, actor="caller", party="caller",
                            caller_token_hash=token_hash(caller_token))

    # --- agent side --------------------------------------------------------------

    async def agent_id_of_user(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID:
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            return await agent_id_in(session, tenant_id=tenant_id, user_id=user_id)

    async def answer(
        self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, offer_sdp: str, active: Principal | None = None,
    ) -> str:
        """The agent answers the call ringing at it; returns the media answer and bridges the legs.

        A call ringing at a ring-all group is claimed first (the first to answer
        wins; the others are released), then its agent leg is negotiated.
        ``active``: the request's principal, whose tenant and user must still be
        active (checked in the same read as the call).
        """
        check_sdp(offer_sdp)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:  # who answers, and the call, in one read
            if active is not None:
                await check_active(session, active, tenant_id)
            agent_id = await agent_id_in(session, tenant_id=tenant_id, user_id=user_id)
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.agent_id == agent_id))
            if call is None:
                rings_here = await session.scalar(
                    select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.id == agent_id, Agent.current_call_id == call_id)
                )
                if rings_here is not None:
                    call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.ring_group.is_(True)))
        if call is None:
            raise not_found("call")
        if call.status != "ringing":
            raise Problem(409, "call_not_ringing", f"the call is {call.status}, not ringing at you")
        if call.ring_group:
            agent = await self._connect(tenant_id=tenant_id, user_id=user_id, agent_id=agent_id, call=call)
            await self.acd.release_offers(tenant_id=tenant_id, call_id=call_id, reason="answered_elsewhere", keep=agent_id)
            try:
                answer_sdp = await self.answer_leg(tenant_id=tenant_id, call_id=call_id, party="agent", offer_sdp=offer_sdp)
            except Problem:
                await self.end_call(tenant_id=tenant_id, call_id=call_id, reason="media_failed", actor="media")
                raise
        else:
            answer_sdp = await self.answer_leg(tenant_id=tenant_id, call_id=call_id, party="agent", offer_sdp=offer_sdp)
            try:
                agent = await self._connect(tenant_id=tenant_id, user_id=user_id, agent_id=agent_id, call=call)
            except BaseException:
                await self._release_leg(tenant_id=tenant_id, call_id=call_id, party="agent")
                raise
        self.acd.publish_agent(tenant_id, agent)
        self.acd.publish_call(tenant_id, call_id, "connected")
        try:
            await self.media().bridge(tenant_id=tenant_id, call_id=call_id)
        except Exception:
            log.exception("bridging call %s failed", call_id)
            await self.end_call(tenant_id=tenant_id, call_id=call_id, reason="media_failed", actor="media")
            raise Problem(502, "media_failed", "the media server could not connect the call") from None
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            locked = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            if locked is not None and locked.status == "connected":
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="recording_started", actor="media", at=self.acd.clock(),
                                   data={"parties": ["caller", "agent"]})
        return answer_sdp

    async def _connect(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, agent_id: uuid.UUID, call: Call) -> Agent:
        """Agent ringing -> on_call and call ringing -> connected, in one transaction (409 rolls both back)."""
        call_id = call.id
        now = self.acd.clock()
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            # Both updates commit together or not at all: a 409 raised here rolls the agent back too.
            agent = await lock_agent(
                session, tenant_id=tenant_id, agent_id=agent_id,
                when=(Agent.current_call_id == call_id, Agent.system_state == "ringing"),
                values={"system_state": "on_call", "state_changed_at": now},
            )
            if agent is None:
                raise Problem(409, "call_not_ringing", "the call stopped ringing at you before it was answered")
            mine = (Call.agent_id == agent_id) | (Call.ring_group.is_(True) & Call.agent_id.is_(None))
            connected = await session.execute(
                update(Call)
                .where(Call.tenant_id == tenant_id, Call.id == call_id, Call.status == "ringing", mine)
                .values(status="connected", agent_id=agent_id, ring_group=False, answered_at=func.coalesce(Call.answered_at, now), offered_at=None)
            )
            if connected.rowcount != 1:
                raise Problem(409, "call_not_ringing", "the call stopped ringing at you before it was answered")
            await count_for_strategies(session, tenant_id=tenant_id, queue_id=call.queue_id, agent_id=agent_id, now=now, answered=1)
            await append_event(session, tenant_id=tenant_id, call_id=call_id, type="answered", actor=f"user:{user_id}", at=now,
                               data={"agent_id": str(agent_id), "ring_s": round((now - call.offered_at).total_seconds(), 3) if call.offered_at else None})
            await agent_state_changed(session, agent)
            await call_state_changed(session, tenant_id=tenant_id, call_id=call_id, status="connected", queue_id=call.queue_id, agent_id=agent_id)
        return agent

    async def _release_leg(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        """A leg negotiated for a call that did not take it: close it (the whole bridge once the call is over)."""
        media = self._media_provider()
        if media is None:
            return
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            status = await session.scalar(select(Call.status).where(Call.tenant_id == tenant_id, Call.id == call_id))
        if status in (None, "ended"):
            await self._collect_recordings(tenant_id=tenant_id, call_id=call_id)
            return
        close_leg = getattr(media, "close_leg", None)
        if close_leg is None:
            return
        try:
            await close_leg(tenant_id=tenant_id, call_id=call_id, party=party)
        except Exception:
            log.exception("closing the %s leg of call %s failed", party, call_id)

    async def agent_hangup(self, *, tenant_id: uuid.UUID, user_id: uuid.UUID, call_id: uuid.UUID, active: Principal | None = None) -> None:
        """The agent hangs up its call (``active`` as for ``answer``)."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:  # who hangs up, and the call, in one read
            if active is not None:
                await check_active(session, active, tenant_id)
            agent_id = await agent_id_in(session, tenant_id=tenant_id, user_id=user_id)
            call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id, Call.agent_id == agent_id))
        if call is None:
            raise not_found("call")
        if call.status == "ringing":
            raise Problem(409, "call_not_answered", "a ringing call is declined by letting it time out")
        if call.taken_over:
            return  # a supervisor took the call over; the agent already left it
        for leaving in self.agent_leaving:
            if await leaving(tenant_id, call_id, user_id, call):
                return
        await self.end_call(tenant_id=tenant_id, call_id=call_id, reason="agent_hangup", actor=f"user:{user_id}")

    # --- ending --------------------------------------------------------------------

    async def on_leg_closed(self, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        """The media plane reports a leg that failed or closed.  The caller's leg of a
        callback closes on purpose: the call keeps waiting without it."""
        if party == "caller":
            async with self.db.tenant_session(tenant_id=tenant_id) as session:
                row = (await session.execute(
                    select(Call.status, Call.callback_requested_at).where(Call.tenant_id == tenant_id, Call.id == call_id)
                )).first()
            if row is not None and row.callback_requested_at is not None and row.status in ("queued", "ringing", "connected"):
                return
        await self.end_call(tenant_id=tenant_id, call_id=call_id, reason=None, actor="media", party=party, disconnected=True)

    async def _end_in_db(
        self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, reason: str | None, actor: str, party: str | None, disconnected: bool,
        caller_token_hash: str | None = None,
    ) -> tuple[str, Agent | None, Call] | None:
        """The ``ended`` transition and its event: (reason, the agent freed, the call row as it
        ended); None when the call is missing or already ended.  With
        ``caller_token_hash`` a call that secret does not open answers 404."""
        now = self.acd.clock()
        for _attempt in range(MAX_END_ATTEMPTS):
            try:
                return await self._end_once(
                    now, tenant_id=tenant_id, call_id=call_id, reason=reason, actor=actor, party=party, disconnected=disconnected,
                    caller_token_hash=caller_token_hash,
                )
            except _AgentChanged:
                continue  # the call was re-offered between the two locks: take the new agent's lock first
        raise RuntimeError(f"call {call_id} kept changing agents while being ended")

    async def _end_once(
        self, now: datetime, *, tenant_id: uuid.UUID, call_id: uuid.UUID, reason: str | None, actor: str, party: str | None, disconnected: bool,
        caller_token_hash: str | None,
    ) -> tuple[str, Agent | None, Call] | None:
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            # Lock order everywhere (as the router): the call's current agent row, then the call row.
            locked_agent = await lock_agent_of_call(session, tenant_id=tenant_id, call_id=call_id)
            call = await lock_call(session, tenant_id=tenant_id, call_id=call_id, events_next=True)
            if caller_token_hash is not None and (call is None or call.caller_token_hash != caller_token_hash):
                raise not_found("call")  # rolls back: nothing was changed
            if call is None or call.status == "ended":
                return None
            if call.agent_id != locked_agent:
                raise _AgentChanged
            if reason is None:
                if party == "caller" and call.status == "ivr":
                    reason = "ivr_abandoned"
                elif party == "caller" and call.status == "voicemail":
                    reason = "voicemail"
                elif party == "caller" and call.callback_requested_at is not None and call.status != "connected":
                    reason = "callback_cancelled"
                elif party == "caller" and call.status != "connected":
                    reason = "abandoned"
                elif disconnected:
                    reason = f"{party}_disconnected"
                else:
                    reason = f"{party}_hangup"
            was, agent_id = call.status, call.agent_id
            call.status, call.ended_at, call.end_reason, call.offered_at = "ended", now, reason, None
            if was == "ringing":
                # The offer was never answered: the agent keeps no trace of this call.
                call.agent_id = None
            await session.flush()
            if was == "ivr":
                await session.execute(delete(IvrSession).where(IvrSession.tenant_id == tenant_id, IvrSession.call_id == call_id))
            freed = None
            if agent_id is not None:
                values: dict[str, Any] = {"system_state": "idle", "current_call_id": None, "state_changed_at": now, "last_call_ended_at": now}
                queue = None
                if was == "connected":
                    queue = await session.scalar(select(Queue).where(Queue.tenant_id == tenant_id, Queue.id == call.queue_id))
                    talked = int((now - call.answered_at).total_seconds()) if call.answered_at else 0
                    await count_for_strategies(session, tenant_id=tenant_id, queue_id=call.queue_id, agent_id=agent_id, now=now, talk_s=talked)
                if queue is not None and queue.wrap_up_mode != "none":
                    until = None if queue.wrap_up_mode == "agent_ended" else now + timedelta(seconds=queue.wrap_up_s)
                    values.update(system_state="wrap_up", wrap_up_call_id=call_id, wrap_up_started_at=now, wrap_up_until=until)
                freed = await lock_agent(
                    session, tenant_id=tenant_id, agent_id=agent_id, when=(Agent.current_call_id == call_id,), values=values,
                )
            await append_event(session, tenant_id=tenant_id, call_id=call_id, type="ended", actor=actor, at=now,
                               data={"reason": reason, "previous_status": was})
            await call_state_changed(
                session, tenant_id=tenant_id, call_id=call_id, status="ended", queue_id=call.queue_id, agent_id=call.agent_id, end_reason=reason
            )
            if freed is not None:
                if freed.system_state == "wrap_up":
                    await append_event(session, tenant_id=tenant_id, call_id=call_id, type="wrap_up_started", actor="acd", at=now,
                                       data={"agent_id": str(freed.id), "until": freed.wrap_up_until.isoformat() if freed.wrap_up_until else None})
                await agent_state_changed(session, freed)
        return reason, freed, call

    async def end_call(
        self,
        *,
        tenant_id: uuid.UUID,
        call_id: uuid.UUID,
        reason: str | None,
        actor: str,
        party: str | None = None,
        disconnected: bool = False,
        route_freed: bool = True,
        caller_token_hash: str | None = None,
    ) -> bool:
        """End the call once (idempotent); without a ``reason`` it follows from who ended it and when.
        ``caller_token_hash``: the caller's secret, checked in the ending transaction (404).

        The media plane is told every time (its ``end_call`` is idempotent), so
        legs of a call another path already ended never stay behind.
        """
        ended = await self._end_in_db(tenant_id=tenant_id, call_id=call_id, reason=reason, actor=actor, party=party, disconnected=disconnected,
                                      caller_token_hash=caller_token_hash)
        if ended is None:
            await self._collect_recordings(tenant_id=tenant_id, call_id=call_id)
            return False
        reason, freed, call = ended
        metrics.CALLS_ENDED.labels(metrics.end_reason(reason)).inc()
        if call.ring_group:  # the rest of a ring-all group still rings for this call
            await self.acd.release_offers(tenant_id=tenant_id, call_id=call_id, reason="call_ended")
        # (A single offer's agent was freed with the call; an offer some crash left behind on
        # another agent is the sweep's: agents ringing for a call that no longer rings.)
        if freed is not None and freed.system_state == "wrap_up":
            self.acd.watch_wrap_up(tenant_id, freed.id, call_id, freed.wrap_up_until)
        for hook in self.after_end:
            try:
                await hook(tenant_id, call_id, call)
            except Exception:
                log.exception("an after-end step failed for call %s", call_id)
        self.acd.publish_call(tenant_id, call_id, "ended", reason=reason)
        if freed is not None:
            self.acd.hub.publish(
                ("agent", tenant_id, freed.id), {"type": "call.ended", "call_id": str(call_id), "reason": reason}
            )
            self.acd.publish_agent(tenant_id, freed)
        await self._collect_recordings(tenant_id=tenant_id, call_id=call_id)
        if route_freed and freed is not None and freed.status == "available" and freed.system_state == "idle":
            await self.acd.route_for_agent(tenant_id=tenant_id, agent_id=freed.id)
        return True

    async def _collect_recordings(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        media = self._media_provider()
        if media is None:
            return
        try:
            files = await media.end_call(tenant_id=tenant_id, call_id=call_id)
        except Exception:
            log.exception("the media plane failed to end call %s", call_id)
            return
        if not files:
            return
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            for recorded in files:
                if not str(recorded.relative_path).startswith(f"{tenant_id}/"):
                    log.error("recording outside the tenant's folder ignored: %s", recorded.relative_path)
                    continue
                recording = Recording(
                    tenant_id=tenant_id, call_id=call_id, party=recorded.party, path=str(recorded.relative_path),
                    media_type=recorded.media_type, started_at=recorded.started_at, ended_at=recorded.ended_at,
                    size_bytes=recorded.size_bytes, duration_ms=recorded.duration_ms,
                )
                session.add(recording)
                await session.flush()
                await append_event(session, tenant_id=tenant_id, call_id=call_id, type="recording_saved", actor="media", at=self.acd.clock(),
                                   data={"recording_id": str(recording.id), "party": recorded.party, "duration_ms": recorded.duration_ms, "size_bytes": recorded.size_bytes})
