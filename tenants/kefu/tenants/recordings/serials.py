"""A call's serial number for display: ``YYYYMMDDHHMMSS-<first 8 hex of the call id>``.

The time is the call's ``started_at`` in UTC, so the serial is the same for every
viewer whatever their time zone, sorts like the calls, and names one call (the
id's first 8 hex digits tell apart calls that started in the same second).  QA
evaluations name calls by the same serial (start and end serial numbers).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol


class _CallLike(Protocol):
    id: uuid.UUID
    started_at: datetime


def call_serial(call: _CallLike) -> str:
    return serial_of(call.id, call.started_at)


def serial_of(call_id: uuid.UUID, started_at: datetime) -> str:
    if started_at.tzinfo is None:
        raise ValueError("a call's started_at is a UTC-aware datetime")
    return f"{started_at.astimezone(UTC):%Y%m%d%H%M%S}-{call_id.hex[:8]}"
