"""Business hours (kefu.tenants.schedules): open or closed at an instant, the next change,
holidays and special hours, DST days in Berlin and New York, 24:00, and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from kefu.platform.problems import Problem
from kefu.tenants.schedules import ScheduleSpec, is_open, next_change, validate

WEEKDAYS_9_TO_6 = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
BERLIN_OFFICE = ScheduleSpec("Europe/Berlin", WEEKDAYS_9_TO_6, ())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- is_open ---------------------------------------------------------------------------


def test_weekday_hours_are_judged_in_the_schedules_time_zone() -> None:
    # Wednesday 2026-06-17; Berlin is UTC+2 in summer.
    assert is_open(BERLIN_OFFICE, utc(2026, 6, 17, 6, 59)) is False  # 08:59 local
    assert is_open(BERLIN_OFFICE, utc(2026, 6, 17, 7, 0)) is True  # 09:00 local
    assert is_open(BERLIN_OFFICE, utc(2026, 6, 17, 15, 59, 59)) is True  # 17:59:59 local
    assert is_open(BERLIN_OFFICE, utc(2026, 6, 17, 16, 0)) is False  # 18:00 local: the end is excluded


def test_a_day_missing_from_the_weekly_hours_is_closed() -> None:
    assert is_open(BERLIN_OFFICE, utc(2026, 6, 20, 10, 0)) is False  # a Saturday


def test_the_local_date_decides_the_weekday_not_the_utc_date() -> None:
    tokyo = ScheduleSpec("Asia/Tokyo", {"mon": [["00:00", "06:00"]]}, ())
    # Sunday 2026-06-14 20:00 UTC is Monday 05:00 in Tokyo.
    assert is_open(tokyo, utc(2026, 6, 14, 20, 0)) is True
    assert is_open(tokyo, utc(2026, 6, 15, 20, 0)) is False  # Tuesday 05:00 in Tokyo


def test_24_00_ends_the_day_and_the_next_day_can_continue() -> None:
    late = ScheduleSpec("UTC", {"fri": [["20:00", "24:00"]], "sat": [["00:00", "02:00"]]}, ())
    assert is_open(late, utc(2026, 6, 19, 23, 59, 59)) is True
    assert is_open(late, utc(2026, 6, 20, 0, 0)) is True
    assert is_open(late, utc(2026, 6, 20, 2, 0)) is False
    # Open from Friday 20:00 to Saturday 02:00 without a flip at midnight.
    assert next_change(late, utc(2026, 6, 19, 21, 0)) == utc(2026, 6, 20, 2, 0)


def test_a_holiday_with_no_hours_closes_the_whole_day() -> None:
    christmas = ScheduleSpec("Europe/Berlin", WEEKDAYS_9_TO_6, ({"date": "2026-12-25", "name": "Christmas", "hours": []},))
    assert is_open(christmas, utc(2026, 12, 25, 10, 0)) is False  # a Friday
    assert is_open(christmas, utc(2026, 12, 24, 10, 0)) is True


def test_a_holiday_with_hours_replaces_the_weekly_hours_that_day() -> None:
    eve = ScheduleSpec("Europe/Berlin", WEEKDAYS_9_TO_6, ({"date": "2026-12-24", "name": "Christmas Eve", "hours": [["09:00", "12:00"]]},))
    assert is_open(eve, utc(2026, 12, 24, 10, 0)) is True  # 11:00 local
    assert is_open(eve, utc(2026, 12, 24, 12, 0)) is False  # 13:00 local, open on other Thursdays
    assert is_open(eve, utc(2026, 12, 17, 12, 0)) is True
    # Special hours on a day the weekly hours keep closed.
    saturday = ScheduleSpec("UTC", WEEKDAYS_9_TO_6, ({"date": "2026-12-19", "name": "Sale", "hours": [["10:00", "14:00"]]},))
    assert is_open(saturday, utc(2026, 12, 19, 11, 0)) is True


def test_several_intervals_a_day() -> None:
    split = ScheduleSpec("UTC", {"mon": [["13:00", "17:00"], ["08:00", "12:00"]]}, ())
    assert [is_open(split, utc(2026, 6, 15, h, 0)) for h in (7, 8, 11, 12, 13, 16, 17)] == [False, True, True, False, True, True, False]


def test_an_orm_like_row_works_like_a_spec() -> None:
    row = SimpleNamespace(time_zone="Europe/Berlin", weekly=WEEKDAYS_9_TO_6, holidays=[])
    assert is_open(row, utc(2026, 6, 17, 7, 0)) is True
    assert next_change(row, utc(2026, 6, 17, 7, 0)) == utc(2026, 6, 17, 16, 0)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        is_open(BERLIN_OFFICE, datetime(2026, 6, 17, 9, 0))


# --- DST days -----------------------------------------------------------------------------


def test_berlin_spring_forward_day_hours_follow_the_wall_clock() -> None:
    # Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    sunday = ScheduleSpec("Europe/Berlin", {"sun": [["01:00", "05:00"]]}, ())
    assert is_open(sunday, utc(2026, 3, 29, 0, 0)) is True  # 01:00 CET
    assert is_open(sunday, utc(2026, 3, 29, 2, 59)) is True  # 04:59 CEST
    assert is_open(sunday, utc(2026, 3, 29, 3, 0)) is False  # 05:00 CEST: open three real hours
    assert next_change(sunday, utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 0, 0)
    assert next_change(sunday, utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 3, 0)


def test_berlin_an_opening_inside_the_skipped_hour_happens_when_the_clocks_jump() -> None:
    skipped = ScheduleSpec("Europe/Berlin", {"sun": [["02:30", "04:00"]]}, ())
    assert is_open(skipped, utc(2026, 3, 29, 0, 59, 59)) is False  # 01:59:59 CET
    assert next_change(skipped, utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert next_change(skipped, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 2, 0)  # 04:00 CEST


def test_berlin_fall_back_day_the_repeated_hour_counts_twice() -> None:
    # Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00 UTC.
    sunday = ScheduleSpec("Europe/Berlin", {"sun": [["02:00", "03:00"]]}, ())
    assert is_open(sunday, utc(2026, 10, 25, 0, 0)) is True  # 02:00 CEST
    assert is_open(sunday, utc(2026, 10, 25, 1, 30)) is True  # 02:30 CET, the second time round
    assert is_open(sunday, utc(2026, 10, 25, 2, 0)) is False  # 03:00 CET
    assert next_change(sunday, utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 0)
    assert next_change(sunday, utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 25, 2, 0)


def test_new_york_dst_days_keep_nine_to_five_local() -> None:
    office = ScheduleSpec("America/New_York", {"sun": [["09:00", "17:00"]], "mon": [["09:00", "17:00"]]}, ())
    # Sunday 2026-03-08 springs forward (EST -5 -> EDT -4), Monday 2026-03-09 is a normal EDT day.
    assert next_change(office, utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 13, 0)  # 09:00 EDT
    assert next_change(office, utc(2026, 3, 8, 13, 0)) == utc(2026, 3, 8, 21, 0)  # 17:00 EDT
    # Sunday 2026-11-01 falls back (EDT -4 -> EST -5) at 06:00 UTC.
    assert next_change(office, utc(2026, 11, 1, 5, 0)) == utc(2026, 11, 1, 14, 0)  # 09:00 EST
    assert is_open(office, utc(2026, 11, 1, 13, 30)) is False  # 08:30 EST
    assert is_open(office, utc(2026, 11, 1, 21, 59)) is True  # 16:59 EST


# --- next_change ----------------------------------------------------------------------------


def test_next_change_from_closed_is_the_next_opening() -> None:
    # Friday 2026-06-19 18:30 Berlin -> Monday 09:00 Berlin.
    assert next_change(BERLIN_OFFICE, utc(2026, 6, 19, 16, 30)) == utc(2026, 6, 22, 7, 0)


def test_next_change_at_a_boundary_is_the_following_one() -> None:
    assert next_change(BERLIN_OFFICE, utc(2026, 6, 17, 7, 0)) == utc(2026, 6, 17, 16, 0)


def test_next_change_skips_a_closed_holiday() -> None:
    christmas = ScheduleSpec("Europe/Berlin", WEEKDAYS_9_TO_6, ({"date": "2026-12-25", "name": "Christmas", "hours": []},))
    # Thursday 24th 18:00 -> Monday 28th 09:00 (CET, UTC+1).
    assert next_change(christmas, utc(2026, 12, 24, 17, 0)) == utc(2026, 12, 28, 8, 0)


def test_next_change_is_none_when_nothing_changes_within_14_days() -> None:
    assert next_change(ScheduleSpec("UTC", {}, ()), utc(2026, 6, 17, 12, 0)) is None
    always = ScheduleSpec("UTC", {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, ())
    assert next_change(always, utc(2026, 6, 17, 12, 0)) is None
    # A single special day 15 days ahead is beyond the look-ahead; 13 days ahead is not.
    one_day = ScheduleSpec("UTC", {}, ({"date": "2026-07-02", "name": "Open day", "hours": [["10:00", "11:00"]]},))
    assert next_change(one_day, utc(2026, 6, 17, 10, 0)) is None
    assert next_change(one_day, utc(2026, 6, 19, 10, 0)) == utc(2026, 7, 2, 10, 0)


@pytest.mark.parametrize("time_zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_next_change_agrees_with_a_minute_by_minute_scan(time_zone: str) -> None:
    """Every flip found by stepping the clock one minute at a time across a DST change is next_change's answer."""
    schedule = ScheduleSpec(time_zone, {
        "sat": [["00:00", "01:30"], ["02:15", "02:45"], ["22:00", "24:00"]],
        "sun": [["00:00", "00:30"], ["01:30", "03:30"], ["09:00", "17:00"]],
        "mon": [["08:00", "12:00"]],
    }, ({"date": "2026-10-03", "name": "Special", "hours": [["02:00", "04:00"]]},))
    for start in (utc(2026, 3, 27, 0, 0), utc(2026, 10, 2, 0, 0), utc(2026, 11, 6, 0, 0), utc(2026, 4, 3, 0, 0)):
        instant, state = start, is_open(schedule, start)
        expected = []
        while instant < start + timedelta(days=4):
            instant += timedelta(minutes=1)
            if is_open(schedule, instant) != state:
                state = not state
                expected.append(instant)
        found, cursor = [], start
        while (change := next_change(schedule, cursor)) is not None and change < start + timedelta(days=4):
            found.append(change)
            cursor = change
        assert found == expected, (time_zone, start)


# --- validate ---------------------------------------------------------------------------------


def code_of(time_zone: object, weekly: object, holidays: object) -> str:
    with pytest.raises(Problem) as raised:
        validate(time_zone, weekly, holidays)  # type: ignore[arg-type]
    assert raised.value.status == 400
    return raised.value.code


def test_a_valid_schedule_passes() -> None:
    validate("America/New_York", {"mon": [["09:00", "12:00"], ["13:00", "24:00"]], "sun": []},
             [{"date": "2026-12-25", "name": "Christmas", "hours": []}, {"date": "2026-12-24", "hours": [["09:00", "12:00"]]}])


@pytest.mark.parametrize("time_zone", ["Mars/Olympus", "", "../../etc/passwd", "CET+1", "x" * 65, None])
def test_unknown_time_zones_are_invalid_time_zone(time_zone: object) -> None:
    assert code_of(time_zone, {}, []) == "invalid_time_zone"


@pytest.mark.parametrize("weekly", [
    {"monday": [["09:00", "18:00"]]},  # unknown day
    {"mon": [["18:00", "09:00"]]},  # overnight
    {"mon": [["09:00", "09:00"]]},  # empty
    {"mon": [["9:00", "18:00"]]},  # not HH:MM
    {"mon": [["09:00", "24:30"]]},
    {"mon": [["24:00", "24:00"]]},
    {"mon": [["09:60", "18:00"]]},
    {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]},  # overlap
    {"mon": [["09:00"]]},
    {"mon": "09:00-18:00"},
    {"mon": [[9, 18]]},
    {"mon": [["00:00", "01:00"]] * 13},
    [["09:00", "18:00"]],
])
def test_bad_weekly_hours_are_invalid_hours(weekly: object) -> None:
    assert code_of("UTC", weekly, []) == "invalid_hours"


@pytest.mark.parametrize("holidays", [
    [{"date": "2026-02-30", "name": "No such day", "hours": []}],
    [{"date": "25.12.2026", "hours": []}],
    [{"name": "No date", "hours": []}],
    [{"date": "2026-12-25", "hours": [], "extra": 1}],
    [{"date": "2026-12-25", "name": 5}],
    [{"date": "2026-12-25"}, {"date": "2026-12-25"}],
    ["2026-12-25"],
    {"date": "2026-12-25"},
])
def test_bad_holidays_are_invalid_holiday(holidays: object) -> None:
    assert code_of("UTC", {}, holidays) == "invalid_holiday"


def test_bad_hours_on_a_holiday_are_invalid_hours() -> None:
    assert code_of("UTC", {}, [{"date": "2026-12-25", "hours": [["18:00", "09:00"]]}]) == "invalid_hours"
