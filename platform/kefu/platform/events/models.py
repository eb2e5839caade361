"""Tables of the events context (the outbox itself lives in kefu.platform.models).

``job_runs`` records the idempotency key of every tenant job that completed,
written in the job's own transaction: a redelivered message finds its key and
does nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.platform.db.base import Base, TenantScoped, utcnow


class JobRun(TenantScoped, Base):
    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    job: Mapped[str] = mapped_column(String(200))
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)
