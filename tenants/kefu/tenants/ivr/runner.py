"""Flows on live calls: the IVR machine driven by the media plane, timers and lookups.

A call whose entry point has a flow starts in status ``ivr`` with the flow's
live version (``calls.ivr_flow_version_id``; a call keeps it whatever is
published later).  Each step is one tenant transaction that locks the call,
restores the machine from ``ivr_sessions``, feeds it one event (the start, the
caller's keys, a timeout, a lookup's answer), logs the nodes it passed through
(``ivr_entered`` / ``ivr_left`` call events, what the statistics count) and
stores where it now waits — or carries out the caller action the flow ended
with, in the same transaction: into a queue (admitted and offered like any
arrival), voicemail, callback, a transfer to an agent or another flow, or a
goodbye.  Only after the commit is the media plane told (prompts, the caller's
leg) and a lookup sent.

Nothing lives only in this process: the deadline of every wait is stored, so a
timer lost with its process is fired by the ACD sweep on any node, and keys
and lookup answers for an older step are ignored (``ivr_sessions.step``).
docs/ivr.md describes the behaviour and the choices.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.models import Tenant
from kefu.tenants import schedules
from kefu.tenants.call_log import append_event, lock_call
from kefu.tenants.events import call_state_changed
from kefu.tenants.ivr.audio import audio_path
from kefu.tenants.ivr.flow import Flow, FlowInvalid, parse
from kefu.tenants.ivr.machine import Action, Ask, CheckHours, Enter, Finish, IvrMachine, Leave, Lookup, Say
from kefu.tenants.models import Agent, Call, EntryPoint, IvrFlow, IvrFlowVersion, IvrLookupAddress, IvrSession, Queue, Schedule

from kefu.tenants.callflow import VOICEMAIL_PROMPT

if TYPE_CHECKING:
    from kefu.tenants.callflow import CallFlow, Queued

log = logging.getLogger(__name__)

# A wait's deadline before the prompt's length is known (the media plane tells it after the commit).
PROMPT_ALLOWANCE_S = 120
# A lookup's answer is read up to this size; more is garbage (the fallback exit).
MAX_LOOKUP_BYTES = 64 * 1024
# Beyond a lookup's own timeout, before the sweep counts it lost with its process.
LOOKUP_SLACK_S = 5
# How long a call transferred to one agent waits for that agent before any agent of the queue may take it.
TRANSFER_AGENT_WAIT_S = 60
# After a goodbye prompt, before the call ends.
GOODBYE_GRACE_S = 0.5
MAX_FLOWS_KEPT = 512
# Text-to-speech voices for the flow locales Kefu ships (anything else is passed as it is).
TTS_LOCALES = {"en": "en-US", "zh": "zh-CN"}
DEFAULT_CALLBACK_PROMPT = {
    "en": "Thank you. We will call you back when it is your turn. Goodbye.",
    "zh": "谢谢。轮到您时我们会给您回电。再见。",
}
_MORE_KEYS: Any = object()


@dataclass
class Step:
    """What one step decided in its transaction, for the media work after the commit."""

    tenant_id: uuid.UUID
    call_id: uuid.UUID
    step: int = 0
    prompts: list[Say] = field(default_factory=list)
    ask: Ask | None = None
    lookup: Lookup | None = None
    barge_in: bool = False  # the caller's keys interrupt the prompt playing
    queued: Queued | None = None
    voicemail: str | None = None  # the voicemail node
    callback: str | None = None  # the callback node
    goodbye: bool = False
    rearm: datetime | None = None  # a key of a longer answer: wait again until then
    locale: str = "en"  # the caller's


class IvrRunner:
    def __init__(self, calls: CallFlow) -> None:
        self.calls = calls
        self.db = calls.db
        self.acd = calls.acd
        self._flows: OrderedDict[uuid.UUID, Flow] = OrderedDict()
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None
        # Where uploaded prompts are (kefu.tenants.ivr.audio; set when the API is installed).
        self.audio_root: Path | None = None
        calls.media_callbacks["on_dtmf"] = self.on_dtmf
        calls.after_end.append(self._forget)
        self.acd.sweepers.append(self.sweep)

    async def idle(self) -> None:
        """Until no lookup is in flight (each may start its retry)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- the flow of a call ---------------------------------------------------------------

    async def _flow(self, session: AsyncSession, *, tenant_id: uuid.UUID, version_id: uuid.UUID) -> Flow | None:
        """A published version, parsed once per process (versions never change)."""
        flow = self._flows.get(version_id)
        if flow is not None:
            self._flows.move_to_end(version_id)
            return flow
        document = await session.scalar(
            select(IvrFlowVersion.document).where(IvrFlowVersion.tenant_id == tenant_id, IvrFlowVersion.id == version_id)
        )
        if document is None:
            return None
        try:
            flow = parse(document)
        except FlowInvalid:  # published versions were validated; a hand-edited row is not a crash
            log.error("IVR flow version %s no longer parses", version_id)
            return None
        self._flows[version_id] = flow
        while len(self._flows) > MAX_FLOWS_KEPT:
            self._flows.popitem(last=False)
        return flow

    @staticmethod
    async def live_version_id(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID) -> uuid.UUID | None:
        return await session.scalar(
            select(IvrFlowVersion.id)
            .join(IvrFlow, (IvrFlow.tenant_id == IvrFlowVersion.tenant_id) & (IvrFlow.id == IvrFlowVersion.flow_id))
            .where(IvrFlow.tenant_id == tenant_id, IvrFlow.id == flow_id, IvrFlowVersion.number == IvrFlow.published_version)
        )

    # --- steps (each in the caller's transaction, the call row locked or being created) -----

    async def begin(self, session: AsyncSession, *, call: Call, flow_id: uuid.UUID, now: datetime) -> Step | None:
        """The call (being created) enters ``flow_id``'s live version; None when the flow
        cannot run (then the caller queues at the entry point as without a flow)."""
        tenant_id = call.tenant_id
        version_id = await self.live_version_id(session, tenant_id=tenant_id, flow_id=flow_id)
        flow = None if version_id is None else await self._flow(session, tenant_id=tenant_id, version_id=version_id)
        if flow is None or version_id is None:
            await append_event(session, tenant_id=tenant_id, call_id=call.id, type="ivr_failed", actor="ivr", at=now,
                               data={"flow_id": str(flow_id), "reason": "flow_not_live"})
            return None
        call.status, call.queue_id, call.queued_at, call.queue_entered_at = "ivr", None, None, None
        call.ivr_flow_version_id = version_id
        locale = await session.scalar(select(Tenant.locale).where(Tenant.id == tenant_id)) or "en"
        machine = IvrMachine(flow, locale=locale, variables={
            "caller_name": call.caller_name or "", "entry_point": str(call.entry_point_id or ""),
        })
        await append_event(session, tenant_id=tenant_id, call_id=call.id, type="ivr_started", actor="ivr", at=now,
                           data={"flow_id": str(flow_id), "flow_version_id": str(version_id)})
        await call_state_changed(session, tenant_id=tenant_id, call_id=call.id, status="ivr", queue_id=None)
        ivr = IvrSession(tenant_id=tenant_id, call_id=call.id, flow_version_id=version_id, state={}, waiting="", step=0, updated_at=now)
        return await self._advance(session, call, ivr, machine, machine.start(), now, new=True)

    async def _advance(
        self, session: AsyncSession, call: Call, ivr: IvrSession, machine: IvrMachine, actions: list[Action], now: datetime,
        *, new: bool = False,
    ) -> Step:
        tenant_id = call.tenant_id
        step = Step(tenant_id, call.id, step=ivr.step + 1, locale=machine.locale)
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Enter):
                await self._event(session, call, "ivr_entered", now, node=action.node, node_type=action.type)
            elif isinstance(action, Leave):
                await self._event(session, call, "ivr_left", now, node=action.node, exit=action.exit)
            elif isinstance(action, Say):
                step.prompts.append(action)
            elif isinstance(action, CheckHours):
                pending.extend(machine.hours(await self._hours(session, tenant_id, action.schedule_id, now)))
            elif isinstance(action, Ask):
                step.ask = action
            elif isinstance(action, Lookup):
                step.lookup = action
            elif isinstance(action, Finish):
                more = await self._finish(session, call, ivr, machine, action.outcome, step, now)
                pending.extend(more)
        ivr.step, ivr.updated_at = step.step, now
        if machine.waiting_for == "keys":
            assert step.ask is not None
            ivr.waiting, ivr.deadline = "keys", now + timedelta(seconds=step.ask.timeout_s + PROMPT_ALLOWANCE_S)
            ivr.state = {**machine.snapshot(), "keys": "", "ask": _ask_state(step.ask)}
        elif machine.waiting_for == "lookup":
            assert step.lookup is not None
            ivr.waiting, ivr.deadline = "lookup", now + timedelta(seconds=step.lookup.timeout_s + LOOKUP_SLACK_S)
            ivr.state = machine.snapshot()
        elif step.goodbye:
            ivr.waiting, ivr.deadline = "goodbye", now + timedelta(seconds=PROMPT_ALLOWANCE_S)
            ivr.state = machine.snapshot()
        else:
            if not new:
                await session.execute(delete(IvrSession).where(IvrSession.tenant_id == tenant_id, IvrSession.call_id == call.id))
            return step
        if new:
            session.add(ivr)
        return step

    async def _event(self, session: AsyncSession, call: Call, type: str, now: datetime, **data: Any) -> None:
        await append_event(session, tenant_id=call.tenant_id, call_id=call.id, type=type, actor="ivr", at=now, data=data)

    async def _hours(self, session: AsyncSession, tenant_id: uuid.UUID, schedule_id: str, now: datetime) -> str:
        """``open``, ``closed``, or ``holiday`` (closed on one of the schedule's holidays).  A
        schedule deleted after publishing counts as open: the caller reaches people."""
        try:
            key = uuid.UUID(schedule_id)
        except ValueError:
            return "open"
        schedule = await session.scalar(select(Schedule).where(Schedule.tenant_id == tenant_id, Schedule.id == key))
        if schedule is None:
            return "open"
        if schedules.is_open(schedule, now):
            return "open"
        return "holiday" if schedules.holiday_at(schedule, now) else "closed"

    async def _queue_of(self, session: AsyncSession, call: Call, queue_id: Any) -> uuid.UUID:
        """``queue_id`` when it is still one of the tenant's queues, else the entry point's."""
        if queue_id:
            try:
                wanted = uuid.UUID(str(queue_id))
            except ValueError:
                wanted = None
            if wanted is not None:
                found = await session.scalar(select(Queue.id).where(Queue.tenant_id == call.tenant_id, Queue.id == wanted))
                if found is not None:
                    return found
        entry_queue = await session.scalar(
            select(EntryPoint.queue_id).where(EntryPoint.tenant_id == call.tenant_id, EntryPoint.id == call.entry_point_id)
        )
        assert entry_queue is not None  # an entry point always has its queue
        return entry_queue

    async def _finish(
        self, session: AsyncSession, call: Call, ivr: IvrSession, machine: IvrMachine, outcome: dict[str, Any], step: Step, now: datetime,
    ) -> list[Action]:
        """Carry out the caller action the flow ended with; returns further actions (a transfer into another flow)."""
        action = outcome.get("action")
        await self._event(session, call, "ivr_finished", now, **{k: v for k, v in outcome.items() if k != "skills"})
        calls = self.calls
        if action == "transfer" and outcome.get("flow_id"):
            version_id = None
            try:
                version_id = await self.live_version_id(session, tenant_id=call.tenant_id, flow_id=uuid.UUID(str(outcome["flow_id"])))
            except ValueError:
                pass
            flow = None if version_id is None else await self._flow(session, tenant_id=call.tenant_id, version_id=version_id)
            if flow is not None and version_id is not None:
                ivr.flow_version_id = version_id
                await self._event(session, call, "ivr_transferred", now, flow_id=str(outcome["flow_id"]), flow_version_id=str(version_id))
                return machine.enter_flow(flow)
            action = "fallback"
        if action == "hangup":
            step.goodbye = True
            return []
        if action == "voicemail":
            queue_id = await self._queue_of(session, call, outcome.get("queue_id"))
            await calls.voicemail_in_transaction(session, call=call, queue_id=queue_id, cause="ivr", now=now)
            step.voicemail = str(outcome.get("node"))
            return []
        if action == "callback":
            queue_id = await self._queue_of(session, call, outcome.get("queue_id"))
            number = machine.variables.get("callback_number") or None
            if number is not None and not calls.is_callback_number(number):
                number = None
            step.queued = await calls.enter_queue(session, call=call, queue_id=queue_id, priority=call.priority, now=now,
                                                  callback_number=number, callback=True)
            step.callback = str(outcome.get("node"))
            return []
        preferred = None
        if action == "queue":
            queue_id = await self._queue_of(session, call, outcome.get("queue_id"))
            priority = int(outcome.get("priority", call.priority))
            call.skills = list(outcome.get("skills") or [])
        else:  # a transfer to an agent, or a flow that could not go on: the entry point's queue
            queue_id = await self._queue_of(session, call, None)
            priority = call.priority
            if action == "transfer" and outcome.get("agent_id"):
                preferred = await self._agent(session, call.tenant_id, outcome["agent_id"])
            elif action not in ("transfer",):
                await self._event(session, call, "ivr_failed", now, reason=str(action or "unknown"), node=outcome.get("node"))
        step.queued = await calls.enter_queue(
            session, call=call, queue_id=queue_id, priority=priority, now=now,
            preferred=(preferred, now + timedelta(seconds=TRANSFER_AGENT_WAIT_S)) if preferred else None,
        )
        return []

    @staticmethod
    async def _agent(session: AsyncSession, tenant_id: uuid.UUID, agent_id: Any) -> uuid.UUID | None:
        try:
            key = uuid.UUID(str(agent_id))
        except ValueError:
            return None
        return await session.scalar(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.id == key))

    # --- events --------------------------------------------------------------------------

    def _lock(self, call_id: uuid.UUID) -> asyncio.Lock:
        lock = self._locks.get(call_id)
        if lock is None:
            lock = self._locks[call_id] = asyncio.Lock()
        return lock

    async def _forget(self, _tenant_id: uuid.UUID, call_id: uuid.UUID, _ended: object) -> None:
        self._locks.pop(call_id, None)

    async def on_dtmf(self, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, digit: str) -> None:
        """A key the caller pressed (the media plane reports each once, in order per call)."""
        if party == "caller":
            await self._handle(tenant_id, call_id, kind="keys", digit=digit)

    async def on_deadline(self, tenant_id: uuid.UUID, call_id: uuid.UUID, step_number: int | None = None) -> None:
        """A wait's deadline passed (this process's timer, or the sweep for any process)."""
        await self._handle(tenant_id, call_id, kind="deadline", step_number=step_number)

    async def on_lookup(self, tenant_id: uuid.UUID, call_id: uuid.UUID, step_number: int, answer: Any) -> None:
        await self._handle(tenant_id, call_id, kind="lookup", step_number=step_number, answer=answer)

    async def _handle(self, tenant_id: uuid.UUID, call_id: uuid.UUID, **event: Any) -> None:
        """One event of the call, after the ones before it (in this process), then its media work."""
        async with self._lock(call_id):
            step = await self._step(tenant_id, call_id, **event)
        if step is not None:
            await self.carry_out(step)

    async def _step(
        self, tenant_id: uuid.UUID, call_id: uuid.UUID, *, kind: str, digit: str | None = None, step_number: int | None = None, answer: Any = None,
    ) -> Step | None:
        """One event in one transaction; None when it no longer applies (the call moved on)."""
        now = self.acd.clock()
        ended_goodbye = False
        in_flow = select(IvrSession).where(IvrSession.tenant_id == tenant_id, IvrSession.call_id == call_id)
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            # Lock order as everywhere: the call row first; then read where the call is now.
            # The lock is the transaction's first statement: on SQLite a read before it would
            # fix a snapshot that a concurrent commit (this call's previous step storing its
            # deadline) makes stale, and the write would fail "database is locked" at once.
            call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
            ivr = await session.scalar(in_flow, execution_options={"populate_existing": True})
            if ivr is None:
                return None  # not (or no longer) in a flow: a key during a conversation, a late timer
            if call is None or call.status != "ivr":
                await session.delete(ivr)  # left the IVR another way (ended, suspended tenant)
                return None
            if step_number is not None and ivr.step != step_number:
                return None  # an older step's timer or answer
            if kind == "deadline" and ivr.deadline is not None and ivr.deadline > now:
                return None  # the deadline moved (a key was pressed, the prompt's length became known)
            if ivr.waiting == "goodbye":
                if kind != "deadline":
                    return None
                ended_goodbye = True
            else:
                flow = await self._flow(session, tenant_id=tenant_id, version_id=ivr.flow_version_id)
                if flow is None:
                    return None
                machine = IvrMachine.resume(flow, ivr.state)
                actions = self._feed(machine, ivr, kind, digit, answer, now)
                if actions is _MORE_KEYS:
                    return Step(tenant_id, call_id, step=ivr.step, barge_in=True, rearm=ivr.deadline)
                if actions is None:
                    return None
                step = await self._advance(session, call, ivr, machine, actions, now)
                step.barge_in = kind == "keys"
                return step
        if ended_goodbye:
            await self.calls.end_call(tenant_id=tenant_id, call_id=call_id, reason="ivr_completed", actor="ivr")
        return None

    def _feed(self, machine: IvrMachine, ivr: IvrSession, kind: str, digit: str | None, answer: Any, now: datetime) -> Any:
        """The machine's actions for the event; ``_MORE_KEYS`` (a longer answer goes on:
        the state holds the keys so far) or None (nothing to do: a key while no question
        is asked)."""
        waiting = machine.waiting_for
        if kind == "keys":
            if waiting != "keys" or digit is None:
                return None
            ask = ivr.state.get("ask") or {}
            keys = str(ivr.state.get("keys") or "") + digit
            complete = len(keys) >= int(ask.get("max_keys") or 1) or (ask.get("terminator") and digit == ask["terminator"])
            if not complete:
                # Wait for the next key; the timeout counts again from this one.
                ivr.state = {**ivr.state, "keys": keys}
                ivr.deadline = now + timedelta(seconds=int(ask.get("timeout_s") or 5))
                ivr.step += 1  # the prompt's deadline, still to be stored, no longer applies
                return _MORE_KEYS
            return machine.answer(keys)
        if kind == "lookup":
            return machine.looked_up(answer) if waiting == "lookup" else None
        # a deadline
        if waiting == "keys":
            return machine.answer(str(ivr.state.get("keys") or ""))
        if waiting == "lookup":
            return machine.looked_up(None)
        return None

    # --- after the commit -------------------------------------------------------------------

    async def carry_out(self, step: Step) -> None:
        """The media plane's part of a committed step, its timers and its lookup."""
        tenant_id, call_id = step.tenant_id, step.call_id
        media = self.calls._media_provider()
        if step.barge_in and media is not None and hasattr(media, "stop_prompt"):
            try:
                await media.stop_prompt(tenant_id=tenant_id, call_id=call_id, party="caller")
            except Exception:
                log.info("stopping the prompt of call %s failed", call_id, exc_info=True)
        if step.rearm is not None:
            self._arm_timer(tenant_id, call_id, step.rearm)
            return
        if step.voicemail is not None:
            # The caller is recorded from now on; the prompt (the node's, else the default one) is not in the recording.
            self._default_prompt(step, step.voicemail, VOICEMAIL_PROMPT)
            await self.calls.voicemail_media(tenant_id=tenant_id, call_id=call_id, prompt=lambda: self._play(step))
            return
        if step.callback is not None:
            self._default_prompt(step, step.callback, DEFAULT_CALLBACK_PROMPT)
        played_ms = await self._play(step)
        if step.ask is not None or step.goodbye:
            seconds = played_ms / 1000 + (step.ask.timeout_s if step.ask is not None else GOODBYE_GRACE_S)
            await self._arm_deadline(step, self.acd.clock() + timedelta(seconds=seconds))
        if step.lookup is not None:
            self._spawn(self._look_up(step.tenant_id, step.call_id, step.step, step.lookup))
        if step.queued is not None:
            # The caller's page leaves its keypad (a callback's page becomes a callback).
            self.acd.publish_call(tenant_id, call_id, "queued", **({"callback": True} if step.callback else {}))
            await step.queued.go()
            if step.callback:
                # The caller hears the prompt, then its leg closes; the call keeps its place.
                async def leave() -> None:
                    await self.calls.release_caller_of_callback(tenant_id=tenant_id, call_id=call_id)

                self.acd.timers.call_at(self.acd.clock() + timedelta(seconds=played_ms / 1000 + GOODBYE_GRACE_S), leave)

    def _default_prompt(self, step: Step, node: str, texts: dict[str, str]) -> None:
        if not any(say.node == node for say in step.prompts):
            language = step.locale.split("-")[0]
            locale = step.locale if language in texts else "en"
            step.prompts.append(Say(node, texts.get(language, texts["en"]), locale=locale))

    async def _play(self, step: Step) -> int:
        """Play the step's prompts to the caller as one (a second prompt would replace the
        first); returns its length in ms (0 when nothing could be played)."""
        says = [say for say in step.prompts if say.text or say.audio]
        media = self.calls._media_provider()
        if not says or media is None or not hasattr(media, "play_prompt"):
            return 0
        target = {"tenant_id": step.tenant_id, "call_id": step.call_id, "party": "caller", "prompt_id": f"ivr-{step.step}"}
        if all(say.text for say in says):
            locale = says[-1].locale or "en"
            text = " ".join((say.text or "").strip() for say in says)[:2000]
            request: dict[str, Any] = {"text": text, "locale": TTS_LOCALES.get(locale, locale)}
        else:
            parts = []
            for say in says:
                if say.text:
                    locale = say.locale or "en"
                    parts.append({"text": say.text[:2000], "locale": TTS_LOCALES.get(locale, locale)})
                elif self.audio_root is not None:
                    try:
                        audio_id = uuid.UUID(str(say.audio))
                    except ValueError:
                        continue
                    parts.append({"file": str(audio_path(self.audio_root, step.tenant_id, audio_id))})
            if not parts:
                return 0
            request = {"parts": parts}
        try:
            return int(await media.play_prompt(**target, **request) or 0)
        except Exception:
            log.warning("the IVR prompt of call %s could not be played", step.call_id, exc_info=True)
            return 0

    async def _arm_deadline(self, step: Step, deadline: datetime) -> None:
        async with self.db.tenant_session(tenant_id=step.tenant_id) as session:
            moved = await session.execute(
                update(IvrSession)
                .where(IvrSession.tenant_id == step.tenant_id, IvrSession.call_id == step.call_id, IvrSession.step == step.step)
                .values(deadline=deadline)
            )
        if moved.rowcount != 1:
            return  # the caller was quicker than the prompt (or the call ended)
        self._arm_timer(step.tenant_id, step.call_id, deadline)

    def _arm_timer(self, tenant_id: uuid.UUID, call_id: uuid.UUID, deadline: datetime) -> None:
        async def fire() -> None:
            await self.on_deadline(tenant_id, call_id)

        self.acd.timers.call_at(deadline, fire)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look_up(self, tenant_id: uuid.UUID, call_id: uuid.UUID, step_number: int, lookup: Lookup) -> None:
        try:
            answer = await self.fetch(tenant_id, lookup)
        except Exception:
            log.exception("IVR lookup of call %s failed", call_id)
            answer = None
        await self.on_lookup(tenant_id, call_id, step_number, answer)

    async def fetch(self, tenant_id: uuid.UUID, lookup: Lookup) -> Any:
        """The lookup's JSON answer, or None: not under one of the tenant's addresses now
        (after resolving ``..``), a timeout, an error status, a redirect, more than 64 KiB, or not JSON."""
        async with self.db.tenant_session(tenant_id=tenant_id) as session:
            prefixes = list(await session.scalars(select(IvrLookupAddress.prefix).where(IvrLookupAddress.tenant_id == tenant_id)))
        try:
            url = str(httpx.URL(lookup.url))  # dot segments resolved: "/api/../admin" is "/admin"
        except httpx.InvalidURL:
            return None
        if not any(url.startswith(prefix) for prefix in prefixes):
            log.warning("IVR lookup to %s refused: not under an address the tenant configured", url[:200])
            return None
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False, headers={"user-agent": "Kefu-IVR/1"})
        try:
            async with asyncio.timeout(lookup.timeout_s):
                request = self._http.build_request(
                    lookup.method, url, json=lookup.body if lookup.method == "POST" else None,
                    params=lookup.body if lookup.method == "GET" and lookup.body else None, timeout=lookup.timeout_s,
                )
                response = await self._http.send(request, stream=True)
                try:
                    if response.status_code != 200:
                        return None
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > MAX_LOOKUP_BYTES:
                            return None
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.HTTPError):
            return None
        try:
            return json.loads(bytes(body))
        except ValueError:
            return None

    # --- safety net -----------------------------------------------------------------------------

    async def sweep(self, now: datetime) -> None:
        """Waits whose deadline passed and whose timer died with its process (any node runs this)."""
        async with self.db.platform_session(reason="IVR waits past their deadline") as session:
            due = (await session.execute(
                select(IvrSession.tenant_id, IvrSession.call_id).where(IvrSession.deadline <= now - timedelta(seconds=1))
            )).all()
        for tenant_id, call_id in due:
            await self.on_deadline(tenant_id, call_id)


def _ask_state(ask: Ask) -> dict[str, Any]:
    return {"max_keys": ask.max_keys, "terminator": ask.terminator, "timeout_s": ask.timeout_s}
