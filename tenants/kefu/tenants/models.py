"""Contact-center tables of one tenant: agents, queues, entry points, calls.

Every row is tenant-scoped, and references between rows carry the tenant
(composite foreign keys onto ``(tenant_id, id)``), so a queue can never hold
another tenant's agent and a call can never point at another tenant's queue.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from kefu.platform.db.base import Base, TenantScoped, utcnow


def _tenant_column_without_index() -> Any:
    """``tenant_id`` for a table written on every call whose composite indexes all lead
    with it: a single-column index would only cost a write per row (migration 0007)."""
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def _tenant_fk(columns: list[str], table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", *columns], [f"{table}.tenant_id", f"{table}.id"], ondelete="CASCADE"
    )


class Team(TenantScoped, Base):
    """A group of agents led by one or more supervisors (组长 / team leader): what a
    supervisor sees on the console and may act on (docs/supervision.md)."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "name"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamSupervisor(TenantScoped, Base):
    """A supervisor (a user) assigned to a team."""

    __tablename__ = "team_supervisors"
    __table_args__ = (
        UniqueConstraint("tenant_id", "team_id", "user_id"),
        _tenant_fk(["team_id"], "teams"),
        _tenant_fk(["user_id"], "users"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID] = mapped_column(index=True)


class QueueSupervisor(TenantScoped, Base):
    """A supervisor (a user) assigned to a queue: sees its callers and the calls it routed."""

    __tablename__ = "queue_supervisors"
    __table_args__ = (
        UniqueConstraint("tenant_id", "queue_id", "user_id"),
        _tenant_fk(["queue_id"], "queues"),
        _tenant_fk(["user_id"], "users"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    queue_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID] = mapped_column(index=True)


class Agent(TenantScoped, Base):
    """An agent seat holder.  ``status`` is the agent's choice; ``system_state`` is Kefu's."""

    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "user_id"),
        _tenant_fk(["user_id"], "users"),
        # No cascade: deleting a team first takes its agents out of it (kefu.tenants.teams).
        ForeignKeyConstraint(["tenant_id", "team_id"], ["teams.tenant_id", "teams.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID]
    display_name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # offline | available | not_ready
    status: Mapped[str] = mapped_column(String(16), default="offline")
    not_ready_reason: Mapped[str | None] = mapped_column(String(64))
    # idle | reserved | ringing | on_call | wrap_up
    system_state: Mapped[str] = mapped_column(String(16), default="idle")
    current_call_id: Mapped[uuid.UUID | None]
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Presence is a lease renewed by the agent's live connection.
    lease_expires_at: Mapped[datetime | None]
    last_call_ended_at: Mapped[datetime | None]
    # After-call work (system_state ``wrap_up``): the call being wrapped up and when the
    # wrap-up ends by itself (None: when the agent ends it).
    wrap_up_call_id: Mapped[uuid.UUID | None]
    wrap_up_until: Mapped[datetime | None]
    wrap_up_started_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Schedule(TenantScoped, Base):
    """Business hours and holidays in a time zone (kefu.tenants.schedules decides open or closed)."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "name"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": [["09:00", "18:00"]], ...}; a day that is missing is closed.
    weekly: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # [{"date": "2026-12-25", "name": "Christmas", "hours": []}]; empty hours: closed all day.
    holidays: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Queue(TenantScoped, Base):
    """A queue and its routing rules (docs/acd.md names each one and its default)."""

    __tablename__ = "queues"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "name"),
        ForeignKeyConstraint(["tenant_id", "schedule_id"], ["schedules.tenant_id", "schedules.id"]),
        # A queue another queue overflows to cannot be deleted (409 queue_in_use).
        ForeignKeyConstraint(["tenant_id", "overflow_queue_id"], ["queues.tenant_id", "queues.id"]),
        ForeignKeyConstraint(["tenant_id", "max_wait_queue_id"], ["queues.tenant_id", "queues.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    # longest_idle | round_robin | fewest_calls | least_talk_time | ring_all | linear | random
    strategy: Mapped[str] = mapped_column(String(32), default="longest_idle")
    # Seconds an offer rings before it times out (None: the deployment's KEFU_RING_TIMEOUT_S).
    ring_timeout_s: Mapped[int | None] = mapped_column(Integer)
    max_wait_s: Mapped[int] = mapped_column(Integer, default=600)
    # What happens when a call waited max_wait_s: hangup | voicemail | callback | queue
    max_wait_action: Mapped[str] = mapped_column(String(16), default="hangup")
    max_wait_queue_id: Mapped[uuid.UUID | None]
    # Overflow: after overflow_after_s of waiting, or on arrival while more than
    # overflow_ratio calls wait per logged-in member: queue | voicemail | callback.
    overflow_after_s: Mapped[int | None] = mapped_column(Integer)
    overflow_ratio: Mapped[float | None] = mapped_column(Float)
    overflow_action: Mapped[str | None] = mapped_column(String(16))
    overflow_queue_id: Mapped[uuid.UUID | None]
    # Skills relaxation: after relax_after_s any proficiency of a required skill will do,
    # after relax_any_after_s any member will do.
    relax_after_s: Mapped[int | None] = mapped_column(Integer)
    relax_any_after_s: Mapped[int | None] = mapped_column(Integer)
    # A returning caller waits this long for the agent who last answered it (0: off).
    preferred_agent_timeout_s: Mapped[int] = mapped_column(Integer, default=0)
    # After-call work: none | fixed | extendable | agent_ended.
    wrap_up_mode: Mapped[str] = mapped_column(String(16), default="none")
    wrap_up_s: Mapped[int] = mapped_column(Integer, default=0)
    # extendable: each extension adds wrap_up_s, up to wrap_up_max_s in all.
    wrap_up_max_s: Mapped[int] = mapped_column(Integer, default=0)
    disposition_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Service level: answered within this many seconds of queuing.
    service_level_s: Mapped[int] = mapped_column(Integer, default=20)
    # Position and expected-wait announcements every N seconds (0: off).
    announce_interval_s: Mapped[int] = mapped_column(Integer, default=0)
    # Open or closed by this schedule (None: always open); closed_action: hangup | voicemail | callback.
    schedule_id: Mapped[uuid.UUID | None]
    closed_action: Mapped[str] = mapped_column(String(16), default="hangup")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueMember(TenantScoped, Base):
    __tablename__ = "queue_members"
    __table_args__ = (
        UniqueConstraint("tenant_id", "queue_id", "agent_id"),
        _tenant_fk(["queue_id"], "queues"),
        _tenant_fk(["agent_id"], "agents"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    queue_id: Mapped[uuid.UUID] = mapped_column(index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # Linear order (the members list's order) and the strategies' per-queue counters.
    position: Mapped[int] = mapped_column(Integer, default=0)
    last_offered_at: Mapped[datetime | None]
    # Calls answered and seconds talked from this queue on ``counters_day`` (UTC).
    counters_day: Mapped[date | None] = mapped_column(Date)
    calls_answered: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[int] = mapped_column(Integer, default=0)


class Skill(TenantScoped, Base):
    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "name"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentSkill(TenantScoped, Base):
    """An agent's proficiency (1-10) in a skill."""

    __tablename__ = "agent_skills"
    __table_args__ = (
        UniqueConstraint("tenant_id", "agent_id", "skill_id"),
        _tenant_fk(["agent_id"], "agents"),
        _tenant_fk(["skill_id"], "skills"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_id: Mapped[uuid.UUID] = mapped_column(index=True)
    skill_id: Mapped[uuid.UUID] = mapped_column(index=True)
    proficiency: Mapped[int] = mapped_column(Integer)


class QueueSkill(TenantScoped, Base):
    """A skill the queue's calls need (``required``) or would rather have (preferred)."""

    __tablename__ = "queue_skills"
    __table_args__ = (
        UniqueConstraint("tenant_id", "queue_id", "skill_id"),
        _tenant_fk(["queue_id"], "queues"),
        _tenant_fk(["skill_id"], "skills"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    queue_id: Mapped[uuid.UUID] = mapped_column(index=True)
    skill_id: Mapped[uuid.UUID] = mapped_column(index=True)
    min_proficiency: Mapped[int] = mapped_column(Integer, default=1)
    required: Mapped[bool] = mapped_column(Boolean, default=True)


class _Code:
    """A tenant's code with a label; deactivated rather than deleted (rows name it)."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple[UniqueConstraint, ...]:  # new constraint objects per table
        return (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "code"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReasonCode(_Code, TenantScoped, Base):
    """A not-ready reason an agent may choose (break, lunch, training...)."""

    __tablename__ = "reason_codes"


class WrapUpCode(_Code, TenantScoped, Base):
    """A disposition an agent gives a call in after-call work."""

    __tablename__ = "wrap_up_codes"


class EntryPoint(TenantScoped, Base):
    """Where callers come in: a web click-to-call widget key now, phone numbers later."""

    __tablename__ = "entry_points"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), _tenant_fk(["queue_id"], "queues"), _tenant_fk(["flow_id"], "ivr_flows"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="web")
    # Public, unguessable key embedded in the tenant's web site.
    widget_key: Mapped[str] = mapped_column(String(64), unique=True)
    # Calls queue here directly, or when the entry point's flow cannot go on (docs/ivr.md).
    queue_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # The priority of calls coming in here (higher is answered first).
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # The IVR flow callers go through first (its live version), or None: straight to the queue.
    flow_id: Mapped[uuid.UUID | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Call(TenantScoped, Base):
    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        _tenant_fk(["entry_point_id"], "entry_points"),
        _tenant_fk(["queue_id"], "queues"),
        _tenant_fk(["agent_id"], "agents"),
        _tenant_fk(["consult_agent_id"], "agents"),
        _tenant_fk(["preferred_agent_id"], "agents"),
        _tenant_fk(["ivr_flow_version_id"], "ivr_flow_versions"),
        Index("ix_calls_tenant_started", "tenant_id", "started_at"),
        Index("ix_calls_tenant_queue_status", "tenant_id", "queue_id", "status"),
        Index("ix_calls_tenant_caller_ref", "tenant_id", "caller_ref"),
        # The live calls only: the sweeps (reconnect grace, media orphans) and the metrics read
        # ``status <> 'ended'`` across tenants, which must not grow with every call ever made.
        Index("ix_calls_live", "tenant_id", "status", postgresql_where=text("status <> 'ended'"), sqlite_where=text("status <> 'ended'")),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    entry_point_id: Mapped[uuid.UUID | None]
    queue_id: Mapped[uuid.UUID | None]
    agent_id: Mapped[uuid.UUID | None]
    caller_name: Mapped[str | None] = mapped_column(String(200))
    # ivr | queued | ringing | connected | voicemail | ended
    status: Mapped[str] = mapped_column(String(16), default="queued")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Routing order: higher priority first, then earliest queued_at.  A call
    # whose ring timed out goes back at a higher priority, keeping its place.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime | None]
    # When the call entered its current queue (an overflow moves it; queued_at, its place, stays).
    queue_entered_at: Mapped[datetime | None]
    # When the current offer started ringing (the ring timeout counts from it).
    offered_at: Mapped[datetime | None]
    # SHA-256 of the caller's secret (X-Caller-Token); the caller has no account.
    caller_token_hash: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    media_node: Mapped[str | None] = mapped_column(String(64))
    # In-call controls (kefu.tenants.controls): the media routing follows from these.
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_muted: Mapped[bool] = mapped_column(Boolean, default=False)
    recording_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # The supervisor listening in (one at a time) and how: monitor | whisper | barge.
    supervisor_user_id: Mapped[uuid.UUID | None]
    supervisor_mode: Mapped[str | None] = mapped_column(String(16))
    # The supervisor took the call over: the agent left, the supervisor talks to the caller.
    taken_over: Mapped[bool] = mapped_column(Boolean, default=False)
    # A consultation: the agent consulted (its leg is the "consult" party) and
    # its stage: ringing | talking | conference.
    consult_agent_id: Mapped[uuid.UUID | None]
    consult_state: Mapped[str | None] = mapped_column(String(16))
    consult_offered_at: Mapped[datetime | None]
    # Routing: who the caller is for returning-caller routing (a customer reference the
    # widget passes), what skills the call needs ([{"skill_id", "min_proficiency",
    # "required"}], besides its queue's), and the agent it waits for until preferred_until.
    caller_ref: Mapped[str | None] = mapped_column(String(200))
    skills: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    preferred_agent_id: Mapped[uuid.UUID | None]
    preferred_until: Mapped[datetime | None]
    # Ringing at every eligible agent at once (ring_all): no single agent_id until answered.
    ring_group: Mapped[bool] = mapped_column(Boolean, default=False)
    # A callback keeps the caller's place: the caller left, the call stays queued.
    callback_requested_at: Mapped[datetime | None]
    callback_number: Mapped[str | None] = mapped_column(String(32))
    # Disposition given in after-call work.
    disposition_code: Mapped[str | None] = mapped_column(String(64))
    first_call_resolution: Mapped[bool | None] = mapped_column(Boolean)
    disposition_notes: Mapped[str | None] = mapped_column(String(2000))
    # The IVR flow version the call went through (kept whatever is published later).
    ivr_flow_version_id: Mapped[uuid.UUID | None]


class CallEvent(TenantScoped, Base):
    """The append-only log of what happened on a call: the source of truth for CDRs."""

    __tablename__ = "call_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "call_id", "seq"),
        _tenant_fk(["call_id"], "calls"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    call_id: Mapped[uuid.UUID] = mapped_column()  # looked up with its tenant: the unique index serves
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Recording(TenantScoped, Base):
    """One file per party of a call, under ``<recordings>/<tenant_id>/<call_id>/``."""

    __tablename__ = "recordings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "call_id", "party"),
        _tenant_fk(["call_id"], "calls"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID] = mapped_column(index=True)
    party: Mapped[str] = mapped_column(String(16))  # caller | agent
    # Relative to the recordings root; always starts with the tenant id.
    path: Mapped[str] = mapped_column(String(500))
    media_type: Mapped[str] = mapped_column(String(64), default="audio/ogg")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class IvrFlow(TenantScoped, Base):
    """An IVR call flow: its working draft and which of its versions is live (docs/ivr.md)."""

    __tablename__ = "ivr_flows"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "name"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    draft: Mapped[dict[str, Any]] = mapped_column(JSON)
    draft_updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_version: Mapped[int | None] = mapped_column(Integer)  # None: never published
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IvrFlowVersion(TenantScoped, Base):
    """A published version of a flow, never changed; a live call keeps the one it started with."""

    __tablename__ = "ivr_flow_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "flow_id", "number"),
        _tenant_fk(["flow_id"], "ivr_flows"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    flow_id: Mapped[uuid.UUID]
    number: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(128))
    restored_from: Mapped[int | None] = mapped_column(Integer)  # a rollback republishes that version


class IvrLookupAddress(TenantScoped, Base):
    """A URL prefix the tenant allows its flows' HTTP lookups to call."""

    __tablename__ = "ivr_lookup_addresses"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "prefix"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    prefix: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IvrAudio(TenantScoped, Base):
    """An uploaded audio prompt (kefu.tenants.ivr.audio): its file is ``<data dir>/ivr-audio/<tenant>/<id>``."""

    __tablename__ = "ivr_audio"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "name"))

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IvrSession(TenantScoped, Base):
    """Where a call is in its IVR flow while it is there (kefu.tenants.ivr.runner): the
    machine's state, what it waits for and until when.  Deleted when the call leaves the IVR."""

    __tablename__ = "ivr_sessions"
    __table_args__ = (
        _tenant_fk(["call_id"], "calls"),
        _tenant_fk(["flow_version_id"], "ivr_flow_versions"),
        Index("ix_ivr_sessions_deadline", "deadline"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    call_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    flow_version_id: Mapped[uuid.UUID]
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    # keys | lookup | hangup (the goodbye prompt playing) — what ``deadline`` ends.
    waiting: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[datetime | None]
    # Counts the machine's steps: a timer or lookup answer for an older step is ignored.
    step: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Voicemail(TenantScoped, Base):
    """A caller's message: a task for the queue's agents until someone marks it done."""

    __tablename__ = "voicemails"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "call_id"),
        _tenant_fk(["call_id"], "calls"),
        _tenant_fk(["queue_id"], "queues"),
        Index("ix_voicemails_tenant_status_created", "tenant_id", "status", "created_at"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID]
    queue_id: Mapped[uuid.UUID | None]
    # new | done
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(128))


# --- reporting (kefu.tenants.reports, docs/reports.md) ------------------------------------


class AgentEvent(TenantScoped, Base):
    """The append-only presence log: one row per change of an agent's status or system
    state, written by ``kefu.tenants.events.agent_state_changed`` in the change's transaction."""

    __tablename__ = "agent_events"
    __table_args__ = (
        _tenant_fk(["agent_id"], "agents"),
        Index("ix_agent_events_tenant_agent_at", "tenant_id", "agent_id", "at", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    agent_id: Mapped[uuid.UUID]
    at: Mapped[datetime]
    # offline | available | not_ready
    status: Mapped[str] = mapped_column(String(16))
    system_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[uuid.UUID | None]


class AgentShift(TenantScoped, Base):
    """The shift schedule an agent is expected to work (adherence), from ``valid_from`` until
    the agent's next row; append-only, so changing a shift never rewrites past adherence.
    ``schedule_id`` None: no shift from then on.  No foreign key to schedules: a deleted
    schedule simply counts as no shift (schedules stay deletable)."""

    __tablename__ = "agent_shifts"
    __table_args__ = (
        _tenant_fk(["agent_id"], "agents"),
        Index("ix_agent_shifts_tenant_agent_from", "tenant_id", "agent_id", "valid_from"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_id: Mapped[uuid.UUID]
    schedule_id: Mapped[uuid.UUID | None]
    valid_from: Mapped[datetime]
    set_by: Mapped[str] = mapped_column(String(128))


class ReportDirtyCall(TenantScoped, Base):
    """A call whose log changed since its fact was last computed.  ``version`` grows with
    every transaction that appends to the log; the rollup job deletes the row only at the
    version it read, so an append committing meanwhile leaves it dirty."""

    __tablename__ = "report_dirty_calls"
    # No foreign key to calls: the marker is written before the call row is flushed
    # (append_event does not flush), and a call is never deleted without its tenant.
    __table_args__ = (UniqueConstraint("tenant_id", "call_id"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer, default=1)


class ReportDirtyAgent(TenantScoped, Base):
    """An agent whose presence log got rows at or after ``since`` that the rollups may miss."""

    __tablename__ = "report_dirty_agents"
    # No foreign key, as report_dirty_calls: written without a flush.
    __table_args__ = (UniqueConstraint("tenant_id", "agent_id"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_id: Mapped[uuid.UUID]
    since: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)


class ReportState(TenantScoped, Base):
    """Per tenant: how far agent time is rolled up (a bucket boundary).  Its row is also
    the lock that keeps two rollup jobs of one tenant from running at once."""

    __tablename__ = "report_state"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    agent_time_through: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportCallFact(TenantScoped, Base):
    """One ended call, folded from its event log (kefu.tenants.reports.facts)."""

    __tablename__ = "report_call_facts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "call_id"),
        _tenant_fk(["call_id"], "calls"),
        Index("ix_report_call_facts_tenant_bucket", "tenant_id", "bucket_start"),
        Index("ix_report_call_facts_tenant_caller", "tenant_id", "caller"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID]
    # The 15-minute UTC bucket of the first entry to a queue (or of the creation).
    bucket_start: Mapped[datetime]
    started_at: Mapped[datetime]
    caller: Mapped[str | None] = mapped_column(String(200))
    # The first queue the call entered (no foreign key: a fact outlives its queue).
    queue_id: Mapped[uuid.UUID | None]
    # answered | abandoned | short_abandoned | blocked | ivr_contained | voicemail | other
    outcome: Mapped[str] = mapped_column(String(16))
    end_reason: Mapped[str | None] = mapped_column(String(32))
    callback: Mapped[bool] = mapped_column(Boolean, default=False)
    ivr_entered: Mapped[bool] = mapped_column(Boolean, default=False)
    # The queue's service-level threshold when the fact was computed.
    service_level_s: Mapped[int] = mapped_column(Integer, default=20)
    wait_ms: Mapped[int | None] = mapped_column(BigInteger)
    talk_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    hold_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    acw_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    transferred: Mapped[bool] = mapped_column(Boolean, default=False)
    first_call_resolution: Mapped[bool | None] = mapped_column(Boolean)
    # [{"agent_id", "team_id", "talk_ms", "hold_ms", "acw_ms", "transferred", "first"}]: one per handled segment.
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The rollup counters this fact contributed, per (dimension, key, bucket): what the next
    # recomputation subtracts before adding the new ones.
    contributions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class ReportRollup(TenantScoped, Base):
    """Sums and counts of one 15-minute UTC bucket for one dimension key: ``tenant`` (key:
    the tenant id), ``queue`` or ``agent``.  Every KPI derives from these (docs/reports.md)."""

    __tablename__ = "report_rollups"
    __table_args__ = (UniqueConstraint("tenant_id", "dimension", "key_id", "bucket_start"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_column_without_index()
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    dimension: Mapped[str] = mapped_column(String(8))
    key_id: Mapped[uuid.UUID]
    bucket_start: Mapped[datetime]
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    answered: Mapped[int] = mapped_column(BigInteger, default=0)
    abandoned: Mapped[int] = mapped_column(BigInteger, default=0)
    short_abandoned: Mapped[int] = mapped_column(BigInteger, default=0)
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    ivr_entered: Mapped[int] = mapped_column(BigInteger, default=0)
    ivr_contained: Mapped[int] = mapped_column(BigInteger, default=0)
    voicemails: Mapped[int] = mapped_column(BigInteger, default=0)
    callbacks: Mapped[int] = mapped_column(BigInteger, default=0)
    other: Mapped[int] = mapped_column(BigInteger, default=0)
    sl_offered: Mapped[int] = mapped_column(BigInteger, default=0)
    sl_answered_within: Mapped[int] = mapped_column(BigInteger, default=0)
    asa_answered: Mapped[int] = mapped_column(BigInteger, default=0)
    asa_wait_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    abandon_wait_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    handled: Mapped[int] = mapped_column(BigInteger, default=0)
    talk_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    hold_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    acw_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    transferred: Mapped[int] = mapped_column(BigInteger, default=0)
    fcr_resolved: Mapped[int] = mapped_column(BigInteger, default=0)
    fcr_flagged: Mapped[int] = mapped_column(BigInteger, default=0)
    # Agent time (agent rows only), replaced whole per bucket by the upkeep.
    logged_in_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    available_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    scheduled_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    adherent_ms: Mapped[int] = mapped_column(BigInteger, default=0)
