"""One call's fact, folded from its event log (pure: no database), and the rollup
counters it contributes to each dimension key and bucket (docs/reports.md).

Outcomes, first match wins:

* ``answered`` — someone answered (an ``answered`` event);
* ``voicemail`` — the caller reached voicemail (``voicemail_started`` or end reason ``voicemail``);
* ``ivr_contained`` — the call entered the IVR and ended without reaching a queue;
* ``blocked`` — ended unanswered by a rule or the platform (``BLOCKED_REASONS``);
* ``abandoned`` / ``short_abandoned`` — queued, and the caller left before an answer;
  short when it left at or under ``SHORT_ABANDON_S`` after entering the queue;
* ``other`` — anything else (a media failure before an answer, …).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

BUCKET = timedelta(minutes=15)
SHORT_ABANDON_S = 20
DEFAULT_SERVICE_LEVEL_S = 20
CALLER_LEFT_REASONS = frozenset({"abandoned", "caller_hangup", "caller_disconnected"})
BLOCKED_REASONS = frozenset({"closed", "overflow", "max_wait", "billing_suspended", "tenant_suspended"})
OUTCOMES = ("answered", "abandoned", "short_abandoned", "blocked", "ivr_contained", "voicemail", "other")

# The rollup counters (columns of report_rollups) a call contributes to.
CALL_COUNTERS = (
    "calls", "answered", "abandoned", "short_abandoned", "blocked", "ivr_entered", "ivr_contained", "voicemails",
    "callbacks", "other", "sl_offered", "sl_answered_within", "asa_answered", "asa_wait_ms", "abandon_wait_ms",
    "handled", "talk_ms", "hold_ms", "acw_ms", "transferred", "fcr_resolved", "fcr_flagged",
)
AGENT_TIME_COUNTERS = ("logged_in_ms", "available_ms", "scheduled_ms", "adherent_ms")


def bucket_of(moment: datetime) -> datetime:
    """The start of the 15-minute UTC bucket holding ``moment``."""
    moment = moment.astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def _ms(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() * 1000))


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


@dataclass
class Segment:
    """One agent's part of a call: from its answer (or the transfer that handed it the
    call) to the call's end or the transfer that took it away."""

    agent_id: uuid.UUID
    start: datetime
    end: datetime | None = None
    hold_ms: int = 0
    acw_ms: int = 0
    transferred: bool = False
    team_id: uuid.UUID | None = None

    @property
    def talk_ms(self) -> int:
        return 0 if self.end is None else max(0, _ms(self.end - self.start) - self.hold_ms)


@dataclass
class Fact:
    call_id: uuid.UUID
    started_at: datetime
    bucket_start: datetime
    caller: str | None
    queue_id: uuid.UUID | None
    outcome: str
    end_reason: str | None
    callback: bool
    ivr_entered: bool
    service_level_s: int
    wait_ms: int | None
    transferred: bool
    first_call_resolution: bool | None
    segments: list[Segment] = field(default_factory=list)

    @property
    def talk_ms(self) -> int:
        return sum(s.talk_ms for s in self.segments)

    @property
    def hold_ms(self) -> int:
        return sum(s.hold_ms for s in self.segments)

    @property
    def acw_ms(self) -> int:
        return sum(s.acw_ms for s in self.segments)

    def contributions(self, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        """The counters this call adds, per ``{"d": dimension, "k": key, "b": bucket}``."""
        answered = self.outcome == "answered"
        abandoned = self.outcome in ("abandoned", "short_abandoned")
        short = self.outcome == "short_abandoned"
        call: dict[str, int] = {"calls": 1, "ivr_entered": int(self.ivr_entered), "callbacks": int(self.callback)}
        call[{"answered": "answered", "abandoned": "abandoned", "short_abandoned": "abandoned", "blocked": "blocked",
              "ivr_contained": "ivr_contained", "voicemail": "voicemails", "other": "other"}[self.outcome]] = 1
        if short:
            call["short_abandoned"] = 1
        if abandoned:
            call["abandon_wait_ms"] = self.wait_ms or 0
        # Service level and ASA leave callbacks out (the caller was not waiting on the line).
        if not self.callback and (answered or (abandoned and not short)):
            call["sl_offered"] = 1
        if not self.callback and answered:
            call["sl_answered_within"] = int((self.wait_ms or 0) <= self.service_level_s * 1000)
            call["asa_answered"] = 1
            call["asa_wait_ms"] = self.wait_ms or 0
        handling = {
            "handled": len(self.segments), "talk_ms": self.talk_ms, "hold_ms": self.hold_ms, "acw_ms": self.acw_ms,
            "transferred": sum(s.transferred for s in self.segments),
        }
        fcr = {} if not answered or self.first_call_resolution is None else {
            "fcr_flagged": 1, "fcr_resolved": int(self.first_call_resolution)
        }
        bucket = self.bucket_start.isoformat()
        rows: dict[tuple[str, str], dict[str, int]] = {}

        def add(dimension: str, key: uuid.UUID, counters: dict[str, int]) -> None:
            row = rows.setdefault((dimension, str(key)), {})
            for name, value in counters.items():
                if value:
                    row[name] = row.get(name, 0) + value

        whole = {**call, **handling, **fcr}
        add("tenant", tenant_id, whole)
        if self.queue_id is not None:
            add("queue", self.queue_id, whole)
        for index, segment in enumerate(self.segments):
            counters: dict[str, int] = {
                "handled": 1, "talk_ms": segment.talk_ms, "hold_ms": segment.hold_ms, "acw_ms": segment.acw_ms,
                "transferred": int(segment.transferred),
            }
            if index == 0:  # the answering agent carries the call's answer, service level and ASA
                counters.update({k: v for k, v in call.items() if k in ("calls", "answered", "sl_offered", "sl_answered_within", "asa_answered", "asa_wait_ms", "callbacks")})
            if index == len(self.segments) - 1:  # the agent who wrapped it up gave the disposition
                counters.update(fcr)
            add("agent", segment.agent_id, counters)
        return [{"d": d, "k": k, "b": bucket, **counters} for (d, k), counters in sorted(rows.items()) if counters]

    def segments_json(self) -> list[dict[str, Any]]:
        return [
            {"agent_id": str(s.agent_id), "team_id": str(s.team_id) if s.team_id else None, "start": s.start.isoformat(),
             "talk_ms": s.talk_ms, "hold_ms": s.hold_ms, "acw_ms": s.acw_ms, "transferred": s.transferred}
            for s in self.segments
        ]


def derive_fact(
    *, call_id: uuid.UUID, started_at: datetime, caller: str | None, events: list[Any],
    service_levels: dict[uuid.UUID, int], teams: dict[uuid.UUID, uuid.UUID | None],
) -> Fact | None:
    """Fold an ended call's events (ordered by ``seq``) into its fact; None while it has not ended.

    ``service_levels``: each queue's threshold in seconds; ``teams``: each agent's team."""
    first_queued: datetime | None = None
    queue_id: uuid.UUID | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    ivr_entered = callback = voicemail = False
    fcr: bool | None = None
    segments: list[Segment] = []
    current: Segment | None = None
    held_since: datetime | None = None

    def close(at: datetime, *, transferred: bool) -> None:
        nonlocal current, held_since
        if current is None:
            return
        if held_since is not None:
            current.hold_ms += _ms(at - held_since)
            held_since = None
        current.end, current.transferred = at, transferred
        current = None

    for event in events:
        data = event.data or {}
        kind, at = event.type, event.at
        if kind == "ivr_started":
            ivr_entered = True
        elif kind == "queued":
            if first_queued is None:
                first_queued, queue_id = at, _uuid(data.get("queue_id"))
        elif kind == "callback_requested":
            callback = True
        elif kind == "voicemail_started":
            voicemail = True
        elif kind == "answered":
            answered_at = answered_at or at
            agent_id = _uuid(data.get("agent_id"))
            if agent_id is not None and (current is None or current.agent_id != agent_id):
                close(at, transferred=True)
                current = Segment(agent_id, at)
                segments.append(current)
        elif kind == "transferred":
            close(at, transferred=True)
            if data.get("mode") in ("consultative", "conference") and data.get("agent_id"):
                current = Segment(uuid.UUID(data["agent_id"]), at)
                segments.append(current)
        elif kind == "held":
            if current is not None and held_since is None:
                held_since = at
        elif kind == "resumed":
            if current is not None and held_since is not None:
                current.hold_ms += _ms(at - held_since)
                held_since = None
        elif kind == "wrap_up_ended":
            agent_id = _uuid(data.get("agent_id"))
            seconds = data.get("wrap_up_s")
            for segment in reversed(segments):
                if segment.agent_id == agent_id and seconds is not None:
                    segment.acw_ms += round(float(seconds) * 1000)
                    break
        elif kind == "disposition":
            if data.get("first_call_resolution") is not None:
                fcr = bool(data["first_call_resolution"])
        elif kind == "ended":
            ended_at, end_reason = at, data.get("reason")
            close(at, transferred=False)
    if ended_at is None:
        return None
    entered = first_queued or started_at
    wait_ms = _ms((answered_at or ended_at) - entered) if first_queued is not None else None
    if answered_at is not None:
        outcome = "answered"
    elif voicemail or end_reason == "voicemail":
        outcome = "voicemail"
    elif ivr_entered and first_queued is None:
        outcome = "ivr_contained"
    elif end_reason in BLOCKED_REASONS:
        outcome = "blocked"
    elif first_queued is not None and end_reason in CALLER_LEFT_REASONS:
        outcome = "short_abandoned" if (wait_ms or 0) <= SHORT_ABANDON_S * 1000 else "abandoned"
    else:
        outcome = "other"
    for segment in segments:
        segment.team_id = teams.get(segment.agent_id)
    return Fact(
        call_id=call_id, started_at=started_at, bucket_start=bucket_of(entered), caller=caller, queue_id=queue_id,
        outcome=outcome, end_reason=end_reason, callback=callback, ivr_entered=ivr_entered,
        service_level_s=service_levels.get(queue_id, DEFAULT_SERVICE_LEVEL_S) if queue_id else DEFAULT_SERVICE_LEVEL_S,
        wait_ms=wait_ms, transferred=any(s.transferred for s in segments), first_call_resolution=fcr, segments=segments,
    )
