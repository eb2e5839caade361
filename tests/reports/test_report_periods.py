"""Periods in the tenant's time zone: a call that enters the queue just before local
midnight in Asia/Shanghai (UTC+8) and is answered after it belongs to the day, week
and month it entered; 30-minute, hour, week (Monday first) and month rows are whole
sums of the 15-minute UTC buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from reports_support import Tenant, add_agent, add_queue, ev, log, new_call, presence, report, row_of, run_upkeep, set_time_zone


def utc(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_call_just_before_local_midnight_counts_in_the_day_it_entered(acme: Tenant) -> None:
    await set_time_zone(acme, "Asia/Shanghai")
    agent, queue = await add_agent(acme, "Ann"), await add_queue(acme, "Support")
    # Sunday 29 Nov 23:59:50 in Shanghai = 15:59:50 UTC; answered 00:00:05 Monday 30 Nov local (15 s wait).
    call = await new_call(acme, started_at=utc(29, 15, 59, 50))
    await log(acme, call, ev("queued", utc(29, 15, 59, 50), queue_id=queue), ev("answered", utc(29, 16, 0, 5), agent_id=agent),
              ev("ended", utc(29, 16, 2, 5), reason="caller_hangup"))
    # A second call on Tuesday 1 Dec 10:00 local (02:00 UTC), abandoned after 40 s.
    other = await new_call(acme, started_at=utc(30, 18, 0) + timedelta(hours=8))
    await log(acme, other, ev("queued", datetime(2026, 12, 1, 2, 0, tzinfo=UTC), queue_id=queue),
              ev("ended", datetime(2026, 12, 1, 2, 0, 40, tzinfo=UTC), reason="abandoned"))
    # Ann available from 23:30 to 00:30 local: half an hour on each side of midnight.
    await presence(acme, agent, utc(29, 15, 30), "available")
    await presence(acme, agent, utc(29, 16, 30), "offline")
    await run_upkeep(acme, datetime(2026, 12, 2, tzinfo=UTC))

    days = await report(acme, interval="day", **{"from": "2026-11-29", "to": "2026-12-01"})
    assert days["time_zone"] == "Asia/Shanghai"
    assert [(r["period_start"], r["answered"], r["abandoned"]) for r in days["rows"]] == [
        ("2026-11-29T00:00:00+08:00", 1, 0), ("2026-11-30T00:00:00+08:00", 0, 0), ("2026-12-01T00:00:00+08:00", 0, 1),
    ]
    # Logged in 30 minutes each side of midnight: 1 handled / 0.5 h on Sunday, 0 on Monday.
    assert [r["calls_per_logged_in_hour"] for r in days["rows"]] == [2.0, 0.0, None]

    halves = await report(acme, interval="30m", **{"from": "2026-11-29", "to": "2026-11-29"})
    assert len(halves["rows"]) == 48
    last = row_of(halves, "2026-11-29T23:30:00+08:00")
    assert (last["answered"], last["asa_s"], last["service_level"]) == (1, 15.0, 100.0)

    hours = await report(acme, interval="hour", **{"from": "2026-11-29", "to": "2026-11-30"})
    assert len(hours["rows"]) == 48 and row_of(hours, "2026-11-29T23:00:00+08:00")["answered"] == 1

    # Weeks start on Monday: Sunday 29 Nov is in the week of Monday 23 Nov.
    weeks = await report(acme, interval="week", **{"from": "2026-11-23", "to": "2026-12-06"})
    assert [(r["period_start"], r["total_calls"]) for r in weeks["rows"]] == [
        ("2026-11-23T00:00:00+08:00", 1), ("2026-11-30T00:00:00+08:00", 1),
    ]
    months = await report(acme, interval="month", **{"from": "2026-11-01", "to": "2026-12-31"})
    assert [(r["period_start"], r["answered"], r["abandoned"], r["abandon_rate"]) for r in months["rows"]] == [
        ("2026-11-01T00:00:00+08:00", 1, 0, 0.0), ("2026-12-01T00:00:00+08:00", 0, 1, 100.0),
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_time_zone_a_quarter_hour_off_gets_whole_half_hours(acme: Tenant) -> None:
    # Asia/Kathmandu is UTC+05:45: local half hours are still whole sums of 15-minute UTC buckets.
    await set_time_zone(acme, "Asia/Kathmandu")
    queue = await add_queue(acme, "Support")
    call = await new_call(acme, started_at=utc(23, 4, 20))  # 10:05 local
    await log(acme, call, ev("queued", utc(23, 4, 20), queue_id=queue), ev("ended", utc(23, 4, 20, 5), reason="abandoned"))
    await run_upkeep(acme, utc(24, 0, 0))
    halves = await report(acme, interval="30m", **{"from": "2026-11-23", "to": "2026-11-23"})
    assert row_of(halves, "2026-11-23T10:00:00+05:45")["short_abandoned"] == 1
    assert sum(r["total_calls"] for r in halves["rows"]) == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_daylight_saving_days_have_25_and_23_hours_and_the_repeated_hour_stays_two_rows(acme: Tenant) -> None:
    # PostgreSQL sums the buckets per local period in the database (query._local_period);
    # SQLite sums them in Python (period_start): both must cut the same periods.
    await set_time_zone(acme, "America/New_York")
    queue = await add_queue(acme, "Support")
    # Sunday 1 Nov 2026, clocks go back at 02:00 EDT: 01:00-02:00 happens twice.
    for at in (utc(1, 4, 50), utc(1, 5, 10), utc(1, 5, 40), utc(1, 6, 10)):  # 00:50 EDT, 01:10 EDT, 01:40 EDT, 01:10 EST
        call = await new_call(acme, started_at=at)
        await log(acme, call, ev("queued", at, queue_id=queue), ev("ended", at + timedelta(seconds=30), reason="abandoned"))
    # Sunday 8 Mar 2026, clocks go forward at 02:00 EST: 03:10 EDT is 07:10 UTC.
    spring = datetime(2026, 3, 8, 7, 10, tzinfo=UTC)
    call = await new_call(acme, started_at=spring)
    await log(acme, call, ev("queued", spring, queue_id=queue), ev("ended", spring + timedelta(seconds=30), reason="abandoned"))
    await run_upkeep(acme, utc(2, 0, 0))

    hours = await report(acme, interval="hour", **{"from": "2026-11-01", "to": "2026-11-01"})
    assert len(hours["rows"]) == 25
    assert [(r["period_start"], r["total_calls"]) for r in hours["rows"][:4]] == [
        ("2026-11-01T00:00:00-04:00", 1), ("2026-11-01T01:00:00-04:00", 2), ("2026-11-01T01:00:00-05:00", 1),
        ("2026-11-01T02:00:00-05:00", 0),
    ]
    halves = await report(acme, interval="30m", **{"from": "2026-11-01", "to": "2026-11-01"})
    assert len(halves["rows"]) == 50
    assert [r["total_calls"] for r in halves["rows"][1:6]] == [1, 1, 1, 1, 0]  # 00:30, 01:00, 01:30 EDT, 01:00, 01:30 EST
    days = await report(acme, interval="day", **{"from": "2026-10-31", "to": "2026-11-02"})
    assert [(r["period_start"], r["total_calls"]) for r in days["rows"]] == [
        ("2026-10-31T00:00:00-04:00", 0), ("2026-11-01T00:00:00-04:00", 4), ("2026-11-02T00:00:00-05:00", 0),
    ]

    short = await report(acme, interval="hour", **{"from": "2026-03-08", "to": "2026-03-08"})
    assert len(short["rows"]) == 23  # 02:00-03:00 does not exist that day
    assert row_of(short, "2026-03-08T03:00:00-04:00")["total_calls"] == 1
    month = await report(acme, interval="month", **{"from": "2026-03-01", "to": "2026-03-31"})
    assert [(r["period_start"], r["total_calls"]) for r in month["rows"]] == [("2026-03-01T00:00:00-05:00", 1)]
