"""Legal holds: a call whose recordings retention must never purge, until released.

Placing and releasing a hold lock the call row first (``call_log.lock_call``), as
the retention purge does for the calls it deletes recordings of, so a hold and a
purge of the same call never interleave: either the hold is in place before the
purge looks, or the purge finished first.  Both are audited with the reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.problems import check_text, not_found
from kefu.tenants.call_log import lock_call
from kefu.tenants.models import Call
from kefu.tenants.recordings.models import LegalHold
from kefu.tenants.recordings.schemas import LegalHoldOut
from kefu.tenants.recordings.serials import serial_of

MAX_REASON = 500
MAX_LISTED = 500


async def place_hold(
    session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, reason: str, actor: str, now: datetime
) -> LegalHoldOut:
    """Hold the call (or change the reason of its hold); idempotent for the same reason."""
    reason = check_text(reason, code="invalid_reason", what="reason", max_length=MAX_REASON)
    call = await lock_call(session, tenant_id=tenant_id, call_id=call_id)
    if call is None:
        raise not_found("call")
    hold = await session.scalar(select(LegalHold).where(LegalHold.tenant_id == tenant_id, LegalHold.call_id == call_id))
    if hold is None:
        hold = LegalHold(tenant_id=tenant_id, call_id=call_id, reason=reason, placed_by=actor, placed_at=now)
        session.add(hold)
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="recording.legal_hold_placed", target=f"call:{call_id}",
                           detail={"reason": reason}, at=now)
    elif hold.reason != reason:
        previous, hold.reason = hold.reason, reason
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="recording.legal_hold_changed", target=f"call:{call_id}",
                           detail={"reason": reason, "previous_reason": previous}, at=now)
    return _out(hold, call)


async def release_hold(session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, actor: str, now: datetime) -> bool:
    """Release the call's hold; False when it had none (nothing changes, nothing is audited)."""
    if await lock_call(session, tenant_id=tenant_id, call_id=call_id) is None:
        raise not_found("call")
    hold = await session.scalar(select(LegalHold).where(LegalHold.tenant_id == tenant_id, LegalHold.call_id == call_id))
    if hold is None:
        return False
    await session.execute(delete(LegalHold).where(LegalHold.tenant_id == tenant_id, LegalHold.id == hold.id))
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="recording.legal_hold_released", target=f"call:{call_id}",
                       detail={"reason": hold.reason, "placed_by": hold.placed_by, "placed_at": hold.placed_at.isoformat()}, at=now)
    return True


async def list_holds(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[LegalHoldOut]:
    """The tenant's holds, newest first (at most 500; the search's ``held`` filter pages through all)."""
    rows = await session.execute(
        select(LegalHold, Call.started_at)
        .join(Call, (Call.tenant_id == LegalHold.tenant_id) & (Call.id == LegalHold.call_id))
        .where(LegalHold.tenant_id == tenant_id)
        .order_by(LegalHold.placed_at.desc(), LegalHold.id)
        .limit(MAX_LISTED)
    )
    return [
        LegalHoldOut(call_id=h.call_id, serial=serial_of(h.call_id, started_at), reason=h.reason, placed_by=h.placed_by, placed_at=h.placed_at)
        for h, started_at in rows
    ]


def _out(hold: LegalHold, call: Call) -> LegalHoldOut:
    return LegalHoldOut(call_id=hold.call_id, serial=serial_of(call.id, call.started_at), reason=hold.reason,
                        placed_by=hold.placed_by, placed_at=hold.placed_at)
