"""IVR statistics, counted from the call event log only.

For the calls that started in a period and went through a flow, per flow:

* per node: how many times callers **entered** it (``ivr_entered``) and how
  often they left by each **exit** (``ivr_left``);
* how calls **left the flow** (``outcomes``): ``queue``, ``voicemail``,
  ``callback``, ``transfer_agent``, ``transfer_flow`` (the walk went on in
  another flow, counted there from then on), ``completed`` (the flow's hangup
  action), ``abandoned`` (the caller hung up in the flow), ``failed`` (the flow
  could not go on: the entry point's queue), ``in_progress``;
* **containment**: the calls that ended in the IVR without an agent
  (``completed`` + ``abandoned``), and its rate over the calls that entered
  the flow.

A call transferred from one flow to another counts in both, each for its part
of the walk.  Reports over long periods will read rollups (the reporting
issue); this reads the events of the period's IVR calls, so periods are
limited to ``MAX_PERIOD``.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.problems import Problem
from kefu.tenants.models import Call, CallEvent, IvrFlow, IvrFlowVersion

MAX_PERIOD = timedelta(days=31)
IVR_EVENTS = ("ivr_started", "ivr_entered", "ivr_left", "ivr_finished", "ivr_transferred", "ivr_failed", "ended")
CONTAINED = ("completed", "abandoned")
OUTCOMES = ("queue", "voicemail", "callback", "transfer_agent", "transfer_flow", "completed", "abandoned", "failed", "in_progress")


@dataclass
class FlowCounts:
    calls: int = 0
    entries: Counter[str] = field(default_factory=Counter)
    exits: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self, flow_id: uuid.UUID, name: str) -> dict[str, Any]:
        contained = sum(self.outcomes[o] for o in CONTAINED)
        nodes = sorted(set(self.entries) | set(self.exits))
        return {
            "flow_id": str(flow_id), "name": name, "calls": self.calls,
            "contained": contained, "containment_rate": round(contained / self.calls, 4) if self.calls else None,
            "outcomes": {o: self.outcomes[o] for o in OUTCOMES},
            "nodes": [{"node": n, "entries": self.entries[n], "exits": dict(sorted(self.exits[n].items()))} for n in nodes],
        }


def check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise Problem(400, "invalid_period", "from and to must carry a time zone")
    if not start < end or end - start > MAX_PERIOD:
        raise Problem(400, "invalid_period", f"from must be before to, at most {MAX_PERIOD.days} days apart")


def _outcome(finished: dict[str, Any]) -> str:
    action = finished.get("action")
    if action == "hangup":
        return "completed"
    if action == "transfer":
        return "transfer_agent" if finished.get("agent_id") else "transfer_flow"
    if action in ("queue", "voicemail", "callback"):
        return str(action)
    return "failed"


async def flow_statistics(session: AsyncSession, *, tenant_id: uuid.UUID, start: datetime, end: datetime) -> dict[uuid.UUID, FlowCounts]:
    """Counts per flow for the IVR calls that started in ``[start, end)``."""
    check_period(start, end)
    version_flow = dict((await session.execute(
        select(IvrFlowVersion.id, IvrFlowVersion.flow_id).where(IvrFlowVersion.tenant_id == tenant_id)
    )).all())
    ivr_calls = select(Call.id).where(
        Call.tenant_id == tenant_id, Call.ivr_flow_version_id.is_not(None), Call.started_at >= start, Call.started_at < end
    )
    rows = await session.stream(
        select(CallEvent.call_id, CallEvent.type, CallEvent.data)
        .where(CallEvent.tenant_id == tenant_id, CallEvent.call_id.in_(ivr_calls), CallEvent.type.in_(IVR_EVENTS))
        .order_by(CallEvent.call_id, CallEvent.seq)
    )
    counts: dict[uuid.UUID, FlowCounts] = defaultdict(FlowCounts)
    current: dict[uuid.UUID, uuid.UUID | None] = {}  # call -> the flow it is in now
    left: set[uuid.UUID] = set()  # calls that left their (last) flow
    async for call_id, type_, data in rows:
        data = data or {}
        flow = current.get(call_id)
        if type_ == "ivr_started":
            flow = _uuid(data.get("flow_id")) or version_flow.get(_uuid(data.get("flow_version_id")))  # type: ignore[arg-type]
            current[call_id] = flow
            if flow is not None:
                counts[flow].calls += 1
        elif flow is None:
            continue
        elif type_ == "ivr_entered":
            counts[flow].entries[str(data.get("node"))] += 1
        elif type_ == "ivr_left":
            counts[flow].exits[str(data.get("node"))][str(data.get("exit"))] += 1
        elif type_ == "ivr_finished":
            outcome = _outcome(data)
            if outcome != "transfer_flow":
                counts[flow].outcomes[outcome] += 1
                left.add(call_id)
        elif type_ == "ivr_transferred":
            counts[flow].outcomes["transfer_flow"] += 1
            target = _uuid(data.get("flow_id"))
            current[call_id] = target
            if target is not None:
                counts[target].calls += 1
        elif type_ == "ivr_failed" and call_id not in left:
            counts[flow].outcomes["failed"] += 1
            left.add(call_id)
        elif type_ == "ended" and call_id not in left:
            reason = data.get("reason")
            counts[flow].outcomes["abandoned" if reason == "ivr_abandoned" else "completed" if reason == "ivr_completed" else "failed"] += 1
            left.add(call_id)
    for call_id, flow in current.items():
        if flow is not None and call_id not in left:
            counts[flow].outcomes["in_progress"] += 1
    return counts


async def report(session: AsyncSession, *, tenant_id: uuid.UUID, start: datetime, end: datetime, flow_id: uuid.UUID | None = None) -> dict[str, Any]:
    counts = await flow_statistics(session, tenant_id=tenant_id, start=start, end=end)
    names = dict((await session.execute(select(IvrFlow.id, IvrFlow.name).where(IvrFlow.tenant_id == tenant_id))).all())
    # Every flow of the tenant, those without calls in the period too.
    flows = [(counts[f] if f in counts else FlowCounts()).as_dict(f, names[f]) for f in sorted(names, key=lambda f: (names[f], str(f)))]
    if flow_id is not None:
        flows = [f for f in flows if f["flow_id"] == str(flow_id)]
    known = [counts[f] for f in counts if f in names]
    # Calls that started in a flow: every flow's calls, less those transferred in from another.
    started = sum(c.calls for c in known) - sum(c.outcomes["transfer_flow"] for c in known)
    contained = sum(c.outcomes[o] for c in known for o in CONTAINED)
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "calls": started, "contained": contained, "containment_rate": round(contained / started, 4) if started else None,
        "flows": flows,
    }


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
