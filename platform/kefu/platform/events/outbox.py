"""``emit``: write a typed event to the outbox in the caller's transaction.

The row commits or rolls back with the change it describes.  After commit,
``on_commit`` hands the new row to the event bus of the process that owns the
session's engine (see ``bindings``), which publishes it at once; if the
process dies first, the bus's relay publishes it later.  Nothing is ever
published for a transaction that rolled back.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.db.base import utcnow
from kefu.platform.db.session import on_commit
from kefu.platform.events import bindings
from kefu.platform.events.types import TenantEvent
from kefu.platform.models import OutboxEvent


async def emit(session: AsyncSession, event: TenantEvent) -> uuid.UUID:
    """Add ``event`` to the session's transaction; returns its ``event_id``."""
    if not isinstance(event, TenantEvent) or not event.event_type:
        raise TypeError("emit needs a TenantEvent subclass with an event_type")
    session_tenant = session.info.get("tenant_id")
    if session_tenant is not None and session_tenant != event.tenant_id:
        # A tenant session may only speak for its own tenant.
        raise ValueError("an event's tenant_id must be the session's tenant")
    row = OutboxEvent(
        tenant_id=event.tenant_id,
        event_id=uuid.uuid4(),
        event_type=event.event_type,
        payload=event.data(),
        created_at=utcnow(),
        attempts=0,
    )
    session.add(row)  # inserted with the transaction's next flush (in one batch with its siblings)
    bus = bindings.bus_for(session)
    if bus is not None:
        pending: list[OutboxEvent] | None = session.info.get(_PENDING)
        if pending is None:
            pending = session.info[_PENDING] = []

            async def publish_after_commit() -> None:
                await bus.publish_rows(session.info.pop(_PENDING, []))

            on_commit(session, publish_after_commit)
        pending.append(row)
    return row.event_id


# The transaction's outbox rows, published together after its commit.
_PENDING = "kefu.outbox.pending"
