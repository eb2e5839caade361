"""Business hours: whether a schedule is open at an instant, when that next changes,
and what a valid schedule is.  Pure functions, no database and no clock of their own.

A schedule has an IANA time zone, weekly hours (``{"mon": [["09:00", "18:00"]], ...}``;
a day that is missing or empty is closed) and holidays
(``[{"date": "2026-12-25", "name": "Christmas", "hours": []}]``).  A holiday replaces
the weekly hours of its local date: empty hours close the whole day, other hours are
that day's special opening hours.

Intervals are ``[start, end)`` in local wall-clock time, ``"HH:MM"``, with ``"24:00"``
allowed as an end; an interval never crosses midnight (``22:00``-``02:00`` is two
intervals on two days).  Wall-clock time decides, so on a DST day ``09:00``-``18:00``
is eight or ten hours long, and an opening inside the skipped hour happens when the
clocks jump.

The ACD calls ``is_open(row, now)`` and ``next_change(row, now)`` with a
``kefu.tenants.models.Schedule`` row; ``ScheduleSpec`` is the same three attributes
without a database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kefu.platform.problems import Problem

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOKAHEAD = timedelta(days=14)
MAX_INTERVALS_PER_DAY = 12
MAX_HOLIDAYS = 400
MAX_HOLIDAY_NAME = 200

_TIME = re.compile(r"^(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_END = 24 * 60


class ScheduleLike(Protocol):
    time_zone: str
    weekly: Mapping[str, Any]
    holidays: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule without a row: what ``is_open`` and ``next_change`` read."""

    time_zone: str = "UTC"
    weekly: Mapping[str, Any] = field(default_factory=dict)
    holidays: Sequence[Mapping[str, Any]] = ()


# --- validation -------------------------------------------------------------------


def zone(time_zone: str) -> ZoneInfo:
    """The IANA zone, or 400 ``invalid_time_zone``."""
    if not isinstance(time_zone, str) or not 1 <= len(time_zone) <= 64:
        raise Problem(400, "invalid_time_zone", "the time zone must be an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Problem(400, "invalid_time_zone", f"{time_zone!r} is not an IANA time zone name such as Europe/Berlin") from None


def _minutes(value: Any, *, where: str) -> int:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise Problem(400, "invalid_hours", f"{where}: {value!r} is not a time HH:MM between 00:00 and 24:00")
    hours, minutes = (match.group(1), match.group(2)) if match.group(1) is not None else (match.group(3), match.group(4))
    return int(hours) * 60 + int(minutes)


def _intervals(value: Any, *, where: str) -> list[tuple[int, int]]:
    """``[["09:00", "12:00"], ...]`` as sorted, non-overlapping minute ranges, or 400 ``invalid_hours``."""
    if not isinstance(value, list) or len(value) > MAX_INTERVALS_PER_DAY:
        raise Problem(400, "invalid_hours", f"{where}: hours must be a list of at most {MAX_INTERVALS_PER_DAY} [start, end] pairs")
    ranges = []
    for pair in value:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise Problem(400, "invalid_hours", f"{where}: each interval is a pair [start, end] such as [\"09:00\", \"18:00\"]")
        start, end = _minutes(pair[0], where=where), _minutes(pair[1], where=where)
        if start == _DAY_END:
            raise Problem(400, "invalid_hours", f"{where}: 24:00 may only end an interval")
        if end <= start:
            raise Problem(400, "invalid_hours", f"{where}: an interval must end after it starts ({pair[0]}-{pair[1]}); "
                          "split one that crosses midnight over two days")
        ranges.append((start, end))
    ranges.sort()
    for (_, first_end), (second_start, _) in zip(ranges, ranges[1:]):
        if second_start < first_end:
            raise Problem(400, "invalid_hours", f"{where}: intervals overlap")
    return ranges


def _holiday_date(entry: Any, index: int) -> date:
    if not isinstance(entry, Mapping) or set(entry) - {"date", "name", "hours"} or "date" not in entry:
        raise Problem(400, "invalid_holiday", f"holiday {index + 1}: an entry is {{\"date\": \"YYYY-MM-DD\", \"name\": ..., \"hours\": [...]}}")
    raw = entry["date"]
    try:
        if not isinstance(raw, str) or not _DATE.match(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise Problem(400, "invalid_holiday", f"holiday {index + 1}: {raw!r} is not a date YYYY-MM-DD") from None
    name = entry.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_HOLIDAY_NAME:
        raise Problem(400, "invalid_holiday", f"holiday {index + 1}: the name must be a text of at most {MAX_HOLIDAY_NAME} characters")
    return day


def validate(time_zone: str, weekly: Any, holidays: Any) -> None:
    """Raise 400 ``invalid_time_zone``, ``invalid_hours`` or ``invalid_holiday`` for a schedule that is not valid."""
    zone(time_zone)
    if not isinstance(weekly, Mapping):
        raise Problem(400, "invalid_hours", "weekly hours are an object keyed by mon, tue, wed, thu, fri, sat, sun")
    unknown = sorted(str(day) for day in weekly if day not in DAYS)
    if unknown:
        raise Problem(400, "invalid_hours", f"unknown days {unknown}: the days are {', '.join(DAYS)}")
    for day, hours in weekly.items():
        _intervals(hours, where=day)
    if not isinstance(holidays, list) or len(holidays) > MAX_HOLIDAYS:
        raise Problem(400, "invalid_holiday", f"holidays are a list of at most {MAX_HOLIDAYS} entries")
    seen: set[date] = set()
    for index, entry in enumerate(holidays):
        day = _holiday_date(entry, index)
        if day in seen:
            raise Problem(400, "invalid_holiday", f"holiday {index + 1}: {day.isoformat()} is listed twice")
        seen.add(day)
        _intervals(entry.get("hours", []), where=f"holiday {day.isoformat()}")


# --- evaluation -------------------------------------------------------------------


def _hours_on(schedule: ScheduleLike, day: date) -> list[tuple[int, int]]:
    """The opening minutes of a local date: its holiday's hours if it has one, else its weekday's."""
    iso = day.isoformat()
    for entry in schedule.holidays or ():
        if entry.get("date") == iso:
            return _intervals(entry.get("hours", []), where=f"holiday {iso}")
    return _intervals((schedule.weekly or {}).get(DAYS[day.weekday()], []), where=DAYS[day.weekday()])


def _open_at_wall_time(schedule: ScheduleLike, local: datetime) -> bool:
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    return any(start <= minute < end for start, end in _hours_on(schedule, local.date()))


def _aware_utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(UTC)


def is_open(schedule: ScheduleLike, now: datetime) -> bool:
    """Whether ``schedule`` is open at the instant ``now`` (aware), judged by the wall clock of its time zone."""
    return _open_at_wall_time(schedule, _aware_utc(now).astimezone(zone(schedule.time_zone)))


def _offset_changes(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The UTC instants in (start, end] at which the zone's UTC offset changes (DST), to the second."""

    def offset(second: int) -> timedelta | None:
        return datetime.fromtimestamp(second, UTC).astimezone(tz).utcoffset()

    changes = []
    low, last = int(start.timestamp()), int(end.timestamp())
    while low < last:
        high = min(low + 6 * 3600, last)
        if offset(low) != offset(high):
            before, after = low, high  # offset(before) differs from offset(after)
            while after - before > 1:
                middle = (before + after) // 2
                before, after = (middle, after) if offset(middle) == offset(before) else (before, middle)
            changes.append(datetime.fromtimestamp(after, UTC))
        low = high
    return changes


def next_change(schedule: ScheduleLike, now: datetime) -> datetime | None:
    """The next UTC instant after ``now`` at which ``is_open`` flips, at most 14 days ahead; None if it never does.

    Between two candidate instants nothing can change: a candidate is each
    interval boundary and each local midnight (where the day's hours change),
    converted to UTC for both readings of an ambiguous wall time, plus each DST
    change (an opening inside the skipped hour happens when the clocks jump).
    """
    now = _aware_utc(now)
    tz = zone(schedule.time_zone)
    horizon = now + LOOKAHEAD
    local_today = now.astimezone(tz).date()
    candidates = set(_offset_changes(tz, now, horizon))
    for offset in range(-1, LOOKAHEAD.days + 2):
        day = local_today + timedelta(days=offset)
        minutes = {0, *(m for interval in _hours_on(schedule, day) for m in interval)}
        for minute in minutes:
            wall = datetime.combine(day, time()) + timedelta(minutes=minute)
            for fold in (0, 1):
                candidates.add(wall.replace(tzinfo=tz, fold=fold).astimezone(UTC))
    state = is_open(schedule, now)
    for instant in sorted(c for c in candidates if now < c <= horizon):
        if is_open(schedule, instant) != state:
            return instant
    return None


def holiday_at(schedule: ScheduleLike, now: datetime) -> bool:
    """Whether the local date at the instant ``now`` (aware) is one of the schedule's holidays."""
    iso = _aware_utc(now).astimezone(zone(schedule.time_zone)).date().isoformat()
    return any(entry.get("date") == iso for entry in schedule.holidays or ())
