"""Age bands and what each blocks by default (categories.md §2).

A profile stores a birth date, never an age, so the band is a function of the day being
judged: on a child's birthday the next band applies with no edit by the parent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from familydns.profiles.safesearch import YouTubeMode

_ALL_MINORS = frozenset({
    "adult", "gambling", "drugs", "alcohol_tobacco", "self_harm", "hate_extremism",
    "dating", "weapons", "violence", "piracy", "hacking_cheating",
    "proxy_vpn", "dns_bypass", "unsafe_search", "malware", "phishing",
})
_UP_TO_15 = frozenset({"suggestive"})
_UP_TO_12 = frozenset({"social", "chat", "ai", "shopping"})
_UP_TO_5 = frozenset({"gaming", "streaming"})


@dataclass(frozen=True, slots=True)
class AgeBand:
    """One column of the age table: the defaults a parent can loosen or tighten."""

    label: str
    min_age: int
    max_age: int | None
    blocked: frozenset[str]
    safe_search: bool
    youtube: YouTubeMode
    bypass_protection: bool
    allowlist_only_recommended: bool
    origin: str
    """Why its categories apply, as a parent reads it: ``age default 10-12``."""


def _minor(label: str, lo: int, hi: int, blocked: frozenset[str]) -> AgeBand:
    youtube = YouTubeMode.STRICT if hi <= 12 else YouTubeMode.MODERATE
    return AgeBand(label, lo, hi, blocked, safe_search=True, youtube=youtube,
                   bypass_protection=True, allowlist_only_recommended=hi <= 5,
                   origin=f"age default {label}")


AGE_BANDS: tuple[AgeBand, ...] = (
    _minor("0-5", 0, 5, _ALL_MINORS | _UP_TO_15 | _UP_TO_12 | _UP_TO_5),
    _minor("6-9", 6, 9, _ALL_MINORS | _UP_TO_15 | _UP_TO_12),
    _minor("10-12", 10, 12, _ALL_MINORS | _UP_TO_15 | _UP_TO_12),
    _minor("13-15", 13, 15, _ALL_MINORS | _UP_TO_15),
    _minor("16-17", 16, 17, _ALL_MINORS),
    AgeBand("18+", 18, None, frozenset({"malware", "phishing"}), safe_search=False,
            youtube=YouTubeMode.OFF, bypass_protection=False,
            allowlist_only_recommended=False, origin="age default 18+"),
)

BASELINE_BAND = AgeBand(
    "baseline", 0, None, frozenset({"malware", "phishing", "adult"}),
    safe_search=True, youtube=YouTubeMode.OFF, bypass_protection=False,
    allowlist_only_recommended=False, origin="built-in baseline",
)
"""For devices no profile claims: safe for anyone, too loose to be a child's profile."""


def age_on(birthdate: dt.date, day: dt.date) -> int:
    """Completed years on ``day``; negative before the birth date.

    A 29 February child turns a year older on 1 March in common years, as the
    comparison of (month, day) pairs gives: (2, 28) < (2, 29) <= (3, 1).
    """
    before_birthday = (day.month, day.day) < (birthdate.month, birthdate.day)
    return day.year - birthdate.year - before_birthday


def band_for_age(age: int) -> AgeBand:
    """The band containing ``age``; ValueError for a negative age."""
    if age < 0:
        raise ValueError(f"age must not be negative, got {age}")
    for band in AGE_BANDS:
        if band.max_age is None or age <= band.max_age:
            return band
    raise AssertionError("the last band is open-ended")


def band_on(birthdate: dt.date, day: dt.date) -> AgeBand:
    """The band on ``day``; a clock set before the birth date gets the youngest band."""
    return band_for_age(max(0, age_on(birthdate, day)))


def implied_birthdate(age: int, reference_date: dt.date) -> dt.date:
    """Pin ``age: N`` to the latest birth date for which the child is N on that date.

    The child is taken to turn N on ``reference_date`` (the date the age was stated), so
    they keep every protection of age N for a full year and then age normally. A
    29 February reference date maps to 28 February in a common birth year.
    """
    if age < 0:
        raise ValueError(f"age must not be negative, got {age}")
    year = reference_date.year - age
    try:
        return reference_date.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)
