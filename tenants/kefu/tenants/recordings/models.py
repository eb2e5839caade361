"""Tables of recording management (migration 0013): how long a tenant keeps its
recordings (``recording_policies``) and the calls whose recordings must be kept
whatever the policy says (``recording_legal_holds``).

The recordings themselves are ``kefu.tenants.models.Recording`` rows (one file
per party of a call) and files in the recording store.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from kefu.platform.db.base import Base, TenantScoped, utcnow
from kefu.tenants.models import _tenant_fk

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650


class RecordingPolicy(TenantScoped, Base):
    """A retention period: the tenant-wide row (``queue_id`` NULL, at most one per
    tenant) or a queue's row, which overrides the tenant's for that queue's calls.

    ``retention_days`` NULL means "keep forever" (on a queue's row: keep this
    queue's recordings forever even though the tenant's expire).  No row at all:
    the tenant-wide default, keep forever.
    """

    __tablename__ = "recording_policies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        # One row per queue (NULLs are distinct, so this says nothing of the tenant-wide row) ...
        UniqueConstraint("tenant_id", "queue_id"),
        # ... and one tenant-wide row per tenant.
        Index(
            "uq_recording_policies_tenant_wide", "tenant_id", unique=True,
            sqlite_where=text("queue_id IS NULL"), postgresql_where=text("queue_id IS NULL"),
        ),
        CheckConstraint(
            f"retention_days IS NULL OR (retention_days >= {MIN_RETENTION_DAYS} AND retention_days <= {MAX_RETENTION_DAYS})",
            name="retention_days_range",
        ),
        # Deleting a queue deletes its override.
        _tenant_fk(["queue_id"], "queues"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    queue_id: Mapped[uuid.UUID | None]
    retention_days: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))


class LegalHold(TenantScoped, Base):
    """A call under legal hold: retention never purges its recordings while this row exists.

    Releasing the hold deletes the row; the audit log keeps who placed and released
    it, when, and why.
    """

    __tablename__ = "recording_legal_holds"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "call_id"),
        _tenant_fk(["call_id"], "calls"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID]
    reason: Mapped[str] = mapped_column(String(500))
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
