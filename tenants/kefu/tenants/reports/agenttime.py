"""Agent time per 15-minute bucket, from the presence log (pure: no database).

* logged in — status other than ``offline``;
* available — status ``available`` (on a call or in after-call work included: the
  system state is a separate axis);
* scheduled — inside the agent's shift schedule of the moment (weekly hours and
  holidays in the schedule's time zone, kefu.tenants.schedules; ``agent_shifts`` says
  which schedule applies from when);
* adherent — available and scheduled at once.

Every interval is split at bucket boundaries, so a bucket's figures depend only on
the log and the shift, whichever run computes them.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from kefu.tenants.reports.facts import BUCKET
from kefu.tenants.schedules import _hours_on, zone

Interval = tuple[datetime, datetime]


def status_intervals(initial: str | None, events: list[tuple[datetime, str]], start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
    """The status the agent had over [start, end): ``initial`` (the last status before
    ``start``; None: offline) and then each event's, in order."""
    out: list[tuple[datetime, datetime, str]] = []
    status, since = initial or "offline", start
    for at, new in events:
        at = max(at, start)
        if at > since:
            out.append((since, min(at, end), status))
        status, since = new, max(since, at)
    if since < end:
        out.append((since, end, status))
    return [(a, b, s) for a, b, s in out if a < b]


def schedule_intervals(schedule: Any, start: datetime, end: datetime) -> list[Interval]:
    """The schedule's open hours that fall in [start, end), as UTC moments."""
    tz = zone(schedule.time_zone)
    out: list[Interval] = []
    day: date = start.astimezone(tz).date() - timedelta(days=1)
    last: date = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        midnight = datetime.combine(day, time(0), tzinfo=tz)
        for open_min, close_min in _hours_on(schedule, day):
            a = (midnight + timedelta(minutes=open_min)).astimezone(start.tzinfo)
            b = (midnight + timedelta(minutes=close_min)).astimezone(start.tzinfo)
            a, b = max(a, start), min(b, end)
            if a < b:
                out.append((a, b))
        day += timedelta(days=1)
    return out


def _overlap(a: Interval, b: Interval) -> float:
    return max(0.0, (min(a[1], b[1]) - max(a[0], b[0])).total_seconds())


def bucket_times(
    *, initial: str | None, events: list[tuple[datetime, str]], start: datetime, end: datetime,
    shifts: list[tuple[datetime, datetime | None, Any | None]],
) -> dict[datetime, dict[str, int]]:
    """Every bucket of [start, end) (both on bucket boundaries) with its agent-time
    counters in milliseconds; buckets with nothing are left out.  ``shifts``: (from,
    until or None, schedule or None) in order."""
    statuses = status_intervals(initial, events, start, end)
    logged = [(a, b) for a, b, s in statuses if s != "offline"]
    available = [(a, b) for a, b, s in statuses if s == "available"]
    scheduled: list[Interval] = []
    for valid_from, until, schedule in shifts:
        a, b = max(start, valid_from), min(end, until) if until is not None else end
        if schedule is not None and a < b:
            scheduled.extend(schedule_intervals(schedule, a, b))
    adherent = [(max(a[0], s[0]), min(a[1], s[1])) for a in available for s in scheduled if _overlap(a, s) > 0]
    out: dict[datetime, dict[str, int]] = {}
    for name, intervals in (("logged_in_ms", logged), ("available_ms", available), ("scheduled_ms", scheduled), ("adherent_ms", adherent)):
        for a, b in intervals:
            bucket = start + ((a - start) // BUCKET) * BUCKET
            while bucket < b:
                ms = round(_overlap((a, b), (bucket, bucket + BUCKET)) * 1000)
                if ms:
                    row = out.setdefault(bucket, {})
                    row[name] = row.get(name, 0) + ms
                bucket += BUCKET
    return out
