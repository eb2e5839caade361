"""Contact-center tables of one tenant: agents, queues, entry points, calls.

Every row is tenant-scoped, and references between rows carry the tenant
(composite foreign keys onto ``(tenant_id, id)``), so a queue can never hold
another tenant's agent and a call can never point at another tenant's queue.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from kefu.platform.db.base import Base, TenantScoped, utcnow


def _tenant_fk(columns: list[str], table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", *columns], [f"{table}.tenant_id", f"{table}.id"], ondelete="CASCADE"
    )


class Agent(TenantScoped, Base):
    """An agent seat holder.  ``status`` is the agent's choice; ``system_state`` is Kefu's."""

    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "user_id"),
        _tenant_fk(["user_id"], "users"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID]
    display_name: Mapped[str] = mapped_column(String(200))
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Queue(TenantScoped, Base):
    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "name"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(32), default="longest_idle")
    max_wait_s: Mapped[int] = mapped_column(Integer, default=600)
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


class EntryPoint(TenantScoped, Base):
    """Where callers come in: a web click-to-call widget key now, phone numbers later."""

    __tablename__ = "entry_points"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), _tenant_fk(["queue_id"], "queues"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="web")
    # Public, unguessable key embedded in the tenant's web site.
    widget_key: Mapped[str] = mapped_column(String(64), unique=True)
    queue_id: Mapped[uuid.UUID] = mapped_column(index=True)
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
        Index("ix_calls_tenant_started", "tenant_id", "started_at"),
        Index("ix_calls_tenant_queue_status", "tenant_id", "queue_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    entry_point_id: Mapped[uuid.UUID | None]
    queue_id: Mapped[uuid.UUID | None]
    agent_id: Mapped[uuid.UUID | None]
    caller_name: Mapped[str | None] = mapped_column(String(200))
    # queued | ringing | connected | ended
    status: Mapped[str] = mapped_column(String(16), default="queued")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Routing order: higher priority first, then earliest queued_at.  A call
    # whose ring timed out goes back at a higher priority, keeping its place.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime | None]
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


class CallEvent(TenantScoped, Base):
    """The append-only log of what happened on a call: the source of truth for CDRs."""

    __tablename__ = "call_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "call_id", "seq"),
        _tenant_fk(["call_id"], "calls"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    call_id: Mapped[uuid.UUID] = mapped_column(index=True)
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
