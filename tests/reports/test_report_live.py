"""kefu.tenants.reports.live.today_by_queue: today's figures per queue (the tenant's day,
its time zone), with the reports' definitions of service level and short abandons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reports_support import Tenant, add_queue, set_time_zone

from kefu.tenants.models import Call
from kefu.tenants.reports.live import TodayFigures, today_by_queue

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai; the local day began at 16:00 UTC the day before


def utc(hh: int, mm: int, ss: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_today_by_queue_counts_the_tenants_day_and_leaves_callbacks_out(acme: Tenant) -> None:
    await set_time_zone(acme, "Asia/Shanghai")
    queue, quiet = await add_queue(acme, "Support"), await add_queue(acme, "Quiet")

    def call(entered: datetime, *, answered_after: int | None = None, ended_after: int, reason: str, callback: bool = False) -> Call:
        answered = entered + timedelta(seconds=answered_after) if answered_after is not None else None
        return Call(tenant_id=acme.id, queue_id=queue, status="ended", started_at=entered, queued_at=entered, queue_entered_at=entered,
                    answered_at=answered, ended_at=entered + timedelta(seconds=ended_after), end_reason=reason,
                    callback_requested_at=entered + timedelta(seconds=5) if callback else None)

    rows: list[Any] = [
        call(utc(1, 0), answered_after=15, ended_after=100, reason="caller_hangup"),  # within 20 s
        call(utc(1, 10), answered_after=30, ended_after=100, reason="caller_hangup"),  # answered late
        call(utc(1, 20), ended_after=10, reason="abandoned"),  # short abandon
        call(utc(1, 30), ended_after=60, reason="abandoned"),  # abandon
        call(utc(1, 40), answered_after=3600, ended_after=3700, reason="agent_hangup", callback=True),  # a callback: left out
        call(utc(15, 59, day=22), answered_after=5, ended_after=60, reason="caller_hangup"),  # yesterday, local time
        call(utc(1, 50), ended_after=0, reason="closed"),  # blocked: neither answered nor abandoned
    ]
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        session.add_all(rows)
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        figures = await today_by_queue(session, tenant_id=acme.id, queue_ids=[queue, quiet], now=NOW)
    # 1 within ÷ (2 answered + 2 abandoned − 1 short) = 33.3 %
    assert figures[queue] == TodayFigures(target_s=20, answered=2, answered_within=1, abandoned=2, short_abandoned=1, offered=3,
                                          service_level_percent=33.3)
    assert figures[quiet] == TodayFigures(target_s=20, answered=0, answered_within=0, abandoned=0, short_abandoned=0, offered=0,
                                          service_level_percent=None)
