"""Usage beyond the seats, measured from what the call log produced.

* minutes — every answered call ended in the period counts its talk time
  (answer to end), each call rounded up to a whole minute, as per-minute
  telephony is billed;
* storage — recordings' bytes times the share of the period they existed,
  in thousandths of a GB-month (1 GB = 10⁹ bytes).  A recording deleted
  before the period closes no longer counts.

Billing does not import the contact-center context: it reads the ``calls``
and ``recordings`` tables (written by kefu.tenants from the call event log)
with plain SQL, always for one tenant.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from kefu.platform.db.base import UTCDateTime

from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Usage:
    minutes: int
    storage_milli_gb_months: int


_TYPES = (bindparam("t", type_=Uuid()), bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime()))
CALLS = text(
    "select answered_at, ended_at from calls where tenant_id = :t and answered_at is not null and ended_at >= :start and ended_at < :end"
).bindparams(*_TYPES).columns(answered_at=UTCDateTime(), ended_at=UTCDateTime())
RECORDINGS = text(
    "select size_bytes, started_at from recordings where tenant_id = :t and size_bytes is not null and started_at < :end"
).bindparams(_TYPES[0], _TYPES[2]).columns(started_at=UTCDateTime())


async def measure_usage(session: AsyncSession, *, tenant_id: uuid.UUID, start: datetime, end: datetime) -> Usage:
    calls = await session.execute(CALLS, {"t": tenant_id, "start": start, "end": end})
    minutes = 0
    for answered, ended in calls:
        seconds = (ended - answered).total_seconds()
        minutes += max(0, math.ceil(seconds / 60))
    recordings = await session.execute(RECORDINGS, {"t": tenant_id, "end": end})
    period = Fraction(int((end - start).total_seconds()))
    byte_share = Fraction(0)
    for size, started in recordings:
        since = max(started, start)
        byte_share += Fraction(int(size)) * Fraction(int((end - since).total_seconds())) / period
    milli = int(byte_share * 1000 / 10**9 + Fraction(1, 2))
    return Usage(minutes, milli)
