"""Schedules: day and time parsing, windows across midnight, and the household's clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from familydns.profiles.schedules import (
    Schedule,
    local_time,
    parse_days,
    parse_end_time,
    parse_time,
    parse_timezone,
)

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


@pytest.mark.parametrize(
    ("spec", "days"),
    [
        ("mon-fri", {MON, TUE, WED, THU, FRI}),
        ("sat,sun", {SAT, SUN}),
        ("mon-sun", set(range(7))),
        ("daily", set(range(7))),
        ("weekends", {SAT, SUN}),
        ("weekdays", {MON, TUE, WED, THU, FRI}),
        ("sun-thu", {SUN, MON, TUE, WED, THU}),
        ("fri-mon", {FRI, SAT, SUN, MON}),
        ("Mon, Wed ,FRI", {MON, WED, FRI}),
        ("tuesday", {TUE}),
        ("mon-tue,sat", {MON, TUE, SAT}),
    ],
)
def test_parse_days(spec: str, days: set[int]) -> None:
    assert parse_days(spec) == days


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mnday", "unknown day 'mnday'"),
        ("mon-frday", "unknown day 'frday'"),
        ("mon-tue-wed", "bad day range 'mon-tue-wed'"),
        ("", "no days given"),
        (" , ", "no days given"),
    ],
)
def test_bad_days_name_the_bad_value(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_days(spec)


@pytest.mark.parametrize(("text", "minute"), [("00:00", 0), ("7:05", 425), ("23:59", 1439)])
def test_parse_time(text: str, minute: int) -> None:
    assert parse_time(text) == minute


@pytest.mark.parametrize("text", ["24:00", "25:00", "12:60", "noon", "12", "12:5", "-1:00"])
def test_bad_times_name_the_bad_value(text: str) -> None:
    with pytest.raises(ValueError, match=f"bad time '{text}'"):
        parse_time(text)


def test_24_00_is_only_an_end_time() -> None:
    assert parse_end_time("24:00") == 1440
    assert parse_end_time("07:00") == 420


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="empty window 21:00-21:00"):
        Schedule.build("bedtime", frozenset({MON}), 1260, 1260, block_all=True)


def at(day: int, hhmm: str) -> dt.datetime:
    """A wall-clock time in the week of Monday 2026-06-01."""
    hours, minutes = map(int, hhmm.split(":"))
    return dt.datetime(2026, 6, 1 + day, hours, minutes)


FRIDAY_NIGHT = Schedule.build("bedtime", frozenset({FRI}), 21 * 60, 7 * 60, block_all=True)
SUNDAY_NIGHT = Schedule.build("bedtime", frozenset({SUN}), 21 * 60, 7 * 60, block_all=True)
SCHOOL_DAYS = Schedule.build("homework", parse_days("mon-fri"), 16 * 60, 18 * 60,
                             block=frozenset({"gaming"}))
ALL_DAY = Schedule.build("sunday", frozenset({SUN}), 0, 1440, block_all=True)


@pytest.mark.parametrize(
    ("schedule", "when", "active"),
    [
        # The part after midnight belongs to the day the window started.
        (FRIDAY_NIGHT, at(FRI, "20:59"), False),
        (FRIDAY_NIGHT, at(FRI, "21:00"), True),
        (FRIDAY_NIGHT, at(FRI, "23:59"), True),
        (FRIDAY_NIGHT, at(SAT, "00:00"), True),
        (FRIDAY_NIGHT, at(SAT, "06:59"), True),
        (FRIDAY_NIGHT, at(SAT, "07:00"), False),
        (FRIDAY_NIGHT, at(FRI, "06:00"), False),
        (FRIDAY_NIGHT, at(SAT, "21:30"), False),
        # Sunday's window runs into Monday morning: the week wraps around.
        (SUNDAY_NIGHT, at(SUN, "22:00"), True),
        (SUNDAY_NIGHT, at(MON, "06:30"), True),
        (SUNDAY_NIGHT, at(MON, "07:00"), False),
        (SCHOOL_DAYS, at(WED, "16:00"), True),
        (SCHOOL_DAYS, at(WED, "17:59"), True),
        (SCHOOL_DAYS, at(WED, "18:00"), False),
        (SCHOOL_DAYS, at(SAT, "17:00"), False),
        (ALL_DAY, at(SUN, "00:00"), True),
        (ALL_DAY, at(SUN, "23:59"), True),
        (ALL_DAY, at(MON, "00:00"), False),
        (ALL_DAY, at(SAT, "23:59"), False),
    ],
)
def test_active(schedule: Schedule, when: dt.datetime, active: bool) -> None:
    assert schedule.active(when) is active


SAT_LATE = Schedule.build("late", frozenset({SAT}), 23 * 60, 3 * 60, block_all=True)
SUN_MORNING = Schedule.build("morning", frozenset({SUN}), 8 * 60, 9 * 60, block_all=True)
SUN_2AM = Schedule.build("two", frozenset({SUN}), 2 * 60, 3 * 60, block_all=True)


@pytest.mark.parametrize(
    ("schedule", "utc", "active"),
    [
        # 2024-03-31: Paris jumps from 02:00 CET to 03:00 CEST at 01:00 UTC.
        (SAT_LATE, dt.datetime(2024, 3, 31, 0, 59, tzinfo=UTC), True),   # 01:59 CET
        (SAT_LATE, dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC), False),   # 03:00 CEST
        (SUN_MORNING, dt.datetime(2024, 3, 31, 6, 30, tzinfo=UTC), True),  # 08:30 CEST
        (SUN_MORNING, dt.datetime(2024, 3, 31, 7, 0, tzinfo=UTC), False),  # 09:00 CEST
        # 2024-10-27: 02:00-03:00 happens twice (CEST then CET); both are in the window.
        (SUN_2AM, dt.datetime(2024, 10, 27, 0, 30, tzinfo=UTC), True),   # 02:30 CEST
        (SUN_2AM, dt.datetime(2024, 10, 27, 1, 30, tzinfo=UTC), True),   # 02:30 CET
        (SUN_2AM, dt.datetime(2024, 10, 27, 2, 0, tzinfo=UTC), False),   # 03:00 CET
    ],
)
def test_windows_follow_the_wall_clock_on_dst_days(
    schedule: Schedule, utc: dt.datetime, active: bool
) -> None:
    assert schedule.active(local_time(utc.timestamp(), PARIS)) is active


def test_timezones() -> None:
    assert parse_timezone("local") is None
    assert parse_timezone("Europe/Paris") == PARIS
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Pariss'"):
        parse_timezone("Europe/Pariss")
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_timezone("../etc/passwd")


def test_local_time_without_a_zone_is_the_system_clock() -> None:
    epoch = 1_790_000_000.0
    assert local_time(epoch, None) == dt.datetime.fromtimestamp(epoch)
