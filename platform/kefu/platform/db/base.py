"""The declarative base every context's models share, and the tenant mixin.

A *tenant table* is any table with a ``tenant_id`` column.  Every tenant table
gets row-level security in PostgreSQL (see ``kefu.platform.db.rls``) and is
checked by ``tests/platform/test_rls.py``.  References between tenant rows use
composite foreign keys that include ``tenant_id`` so a row can never point
into another tenant.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, MetaData, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class TenantScoped:
    """Mixin for tenant-owned rows: ``tenant_id`` NOT NULL, indexed, referencing tenants."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)


def tenant_tables(metadata: MetaData | None = None) -> list[str]:
    """Names of every table carrying ``tenant_id`` (sorted)."""
    md = metadata if metadata is not None else Base.metadata
    return sorted(t.name for t in md.tables.values() if "tenant_id" in t.c)
