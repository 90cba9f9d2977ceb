"""Weekly schedules (bedtime, homework), compiled to a minute-of-week table at load.

A schedule is judged on the household's wall clock: ``21:00-07:00`` means 21:00 as the
kitchen clock shows it, including on daylight-saving days. A window that crosses
midnight belongs to the day it starts on: Friday's 21:00-07:00 runs until Saturday 07:00,
and a school-night bedtime is written ``days: sun-thu``.

Compiling to one byte per minute of the week (10 080 bytes) makes ``active`` a single
index, whatever the number of days and windows.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {name: i for names in (DAY_NAMES, _FULL_NAMES) for i, name in enumerate(names)}
_ALIASES = {
    "daily": frozenset(range(7)),
    "everyday": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "weekend": frozenset({5, 6}),
}
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


def parse_days(spec: str) -> frozenset[int]:
    """``mon-fri``, ``sat,sun``, ``fri-mon`` (wraps), ``daily``, ``weekdays``, ``weekends``.

    Returns weekday numbers (Monday is 0); ValueError names the first bad part.
    """
    days: set[int] = set()
    parts = [p.strip().lower() for p in spec.split(",")]
    if not any(parts):
        raise ValueError(f"no days given in {spec!r}")
    for part in parts:
        if part in _ALIASES:
            days |= _ALIASES[part]
            continue
        ends = [e.strip() for e in part.split("-")]
        for end in ends:
            if end not in _DAYS:
                raise ValueError(f"unknown day {end!r} (use mon..sun, daily, weekdays, weekends)")
        if len(ends) == 1:
            days.add(_DAYS[ends[0]])
        elif len(ends) == 2:
            first, last = _DAYS[ends[0]], _DAYS[ends[1]]
            days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            raise ValueError(f"bad day range {part!r} (expected like mon-fri)")
    return frozenset(days)


def parse_time(text: str) -> int:
    """``HH:MM`` (00:00 to 23:59) to minutes after midnight."""
    m = _TIME.fullmatch(text.strip())
    if m and int(m.group(1)) < 24 and int(m.group(2)) < 60:
        return int(m.group(1)) * 60 + int(m.group(2))
    raise ValueError(f"bad time {text!r} (expected HH:MM, 00:00 to 23:59)")


def parse_end_time(text: str) -> int:
    """Like parse_time, and ``24:00`` for a window that runs to the end of the day."""
    if text.strip() == "24:00":
        return MINUTES_PER_DAY
    return parse_time(text)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A named weekly window; during it, block everything or some more categories."""

    name: str
    days: frozenset[int]
    start: int
    end: int
    block_all: bool
    block: frozenset[str]
    allow: frozenset[str]
    """Domains (subtree) still reachable while ``block_all`` is on."""
    week: bytes = field(repr=False, compare=False)

    @classmethod
    def build(
        cls,
        name: str,
        days: frozenset[int],
        start: int,
        end: int,
        *,
        block_all: bool = False,
        block: frozenset[str] = frozenset(),
        allow: frozenset[str] = frozenset(),
    ) -> Schedule:
        """Compile the minute table; ValueError for an empty window (from equals to)."""
        length = (end - start) % MINUTES_PER_DAY
        if length == 0 and end != MINUTES_PER_DAY:
            raise ValueError(f"empty window {format_minute(start)}-{format_minute(end)}")
        length = length or MINUTES_PER_DAY
        week = bytearray(MINUTES_PER_WEEK)
        for day in days:
            begin = day * MINUTES_PER_DAY + start
            for minute in range(begin, begin + length):
                week[minute % MINUTES_PER_WEEK] = 1
        return cls(name, days, start, end, block_all, block, allow, bytes(week))

    def active(self, now_local: dt.datetime) -> bool:
        """Whether the window covers ``now_local``, a wall-clock time in the household."""
        minute = now_local.weekday() * MINUTES_PER_DAY + now_local.hour * 60 + now_local.minute
        return self.week[minute] != 0

    @property
    def window(self) -> str:
        """``21:00-07:00``, for reasons a parent reads."""
        return f"{format_minute(self.start)}-{format_minute(self.end)}"


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_timezone(name: str) -> dt.tzinfo | None:
    """``local`` (None: the system's zone) or an IANA name; ValueError if unknown."""
    if name == "local":
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like "
                         "Europe/Paris, or local)") from None


def local_time(epoch: float, tz: dt.tzinfo | None) -> dt.datetime:
    """The household's wall clock at ``epoch``; naive system local time when tz is None."""
    return dt.datetime.fromtimestamp(epoch, tz)
