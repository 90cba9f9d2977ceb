"""Age bands: the categories.md §2 table, birthdays, and ages given without a birth date."""

from __future__ import annotations

import datetime as dt

import pytest

from familydns.profiles.ages import (
    AGE_BANDS,
    age_on,
    band_for_age,
    band_on,
    implied_birthdate,
)
from familydns.profiles.model import Profile
from familydns.profiles.safesearch import YouTubeMode

D = dt.date
BANDS = ("0-5", "6-9", "10-12", "13-15", "16-17", "18+")

# categories.md §2, row by row: X = blocked by default in that band.
TABLE = [
    ("adult gambling drugs alcohol_tobacco self_harm hate_extremism", "XXXXX-"),
    ("dating weapons violence", "XXXXX-"),
    ("suggestive", "XXXX--"),
    ("social chat ai shopping", "XXX---"),
    ("gaming streaming", "X-----"),
    ("piracy hacking_cheating", "XXXXX-"),
    ("proxy_vpn dns_bypass unsafe_search", "XXXXX-"),
    ("malware phishing", "XXXXXX"),
]


def test_bands_are_labelled_in_order() -> None:
    assert tuple(band.label for band in AGE_BANDS) == BANDS


@pytest.mark.parametrize(("categories", "marks"), TABLE)
def test_default_blocked_categories_follow_the_table(categories: str, marks: str) -> None:
    for band, mark in zip(AGE_BANDS, marks, strict=True):
        for category in categories.split():
            assert (category in band.blocked) == (mark == "X"), (band.label, category)


def test_no_band_blocks_a_category_the_table_does_not_list() -> None:
    listed = {c for categories, _ in TABLE for c in categories.split()}
    for band in AGE_BANDS:
        assert band.blocked <= listed


@pytest.mark.parametrize(
    ("label", "safe_search", "youtube", "bypass", "allowlist_only"),
    [
        ("0-5", True, YouTubeMode.STRICT, True, True),
        ("6-9", True, YouTubeMode.STRICT, True, False),
        ("10-12", True, YouTubeMode.STRICT, True, False),
        ("13-15", True, YouTubeMode.MODERATE, True, False),
        ("16-17", True, YouTubeMode.MODERATE, True, False),
        ("18+", False, YouTubeMode.OFF, False, False),
    ],
)
def test_band_settings(
    label: str, safe_search: bool, youtube: YouTubeMode, bypass: bool, allowlist_only: bool
) -> None:
    band = next(b for b in AGE_BANDS if b.label == label)
    assert band.safe_search is safe_search
    assert band.youtube is youtube
    assert band.bypass_protection is bypass
    assert band.allowlist_only_recommended is allowlist_only
    assert band.origin == f"age default {label}"


@pytest.mark.parametrize(
    ("age", "label"),
    [(0, "0-5"), (5, "0-5"), (6, "6-9"), (9, "6-9"), (10, "10-12"), (12, "10-12"),
     (13, "13-15"), (15, "13-15"), (16, "16-17"), (17, "16-17"), (18, "18+"), (99, "18+")],
)
def test_band_for_age(age: int, label: str) -> None:
    assert band_for_age(age).label == label


def test_negative_age_is_refused() -> None:
    with pytest.raises(ValueError, match="-1"):
        band_for_age(-1)


@pytest.mark.parametrize(
    ("birthdate", "day", "age"),
    [
        (D(2014, 6, 15), D(2027, 6, 14), 12),
        (D(2014, 6, 15), D(2027, 6, 15), 13),
        (D(2014, 6, 15), D(2027, 12, 31), 13),
        (D(2014, 12, 31), D(2015, 1, 1), 0),
        # 29 February: a year older on 1 March in common years, on the day in leap years.
        (D(2012, 2, 29), D(2021, 2, 28), 8),
        (D(2012, 2, 29), D(2021, 3, 1), 9),
        (D(2012, 2, 29), D(2024, 2, 28), 11),
        (D(2012, 2, 29), D(2024, 2, 29), 12),
        (D(2020, 1, 1), D(2019, 12, 31), -1),
    ],
)
def test_age_on(birthdate: dt.date, day: dt.date, age: int) -> None:
    assert age_on(birthdate, day) == age


@pytest.mark.parametrize(
    ("birthdate", "eve", "birthday", "before", "after"),
    [
        (D(2014, 6, 15), D(2027, 6, 14), D(2027, 6, 15), "10-12", "13-15"),
        (D(2008, 3, 1), D(2026, 2, 28), D(2026, 3, 1), "16-17", "18+"),
        (D(2008, 2, 29), D(2026, 2, 28), D(2026, 3, 1), "16-17", "18+"),
        (D(2020, 2, 29), D(2026, 2, 28), D(2026, 3, 1), "0-5", "6-9"),
    ],
)
def test_a_birthday_moves_the_profile_up_with_no_edit(
    birthdate: dt.date, eve: dt.date, birthday: dt.date, before: str, after: str
) -> None:
    profile = Profile("anna", birthdate=birthdate)
    assert profile.band_on(eve).label == before
    assert profile.band_on(birthday).label == after


def test_a_clock_before_the_birth_date_gets_the_youngest_band() -> None:
    assert band_on(D(2026, 5, 1), D(2026, 4, 30)).label == "0-5"


@pytest.mark.parametrize(
    ("age", "reference", "birthdate"),
    [
        (10, D(2024, 5, 1), D(2014, 5, 1)),
        (0, D(2024, 5, 1), D(2024, 5, 1)),
        (10, D(2024, 2, 29), D(2014, 2, 28)),
        (8, D(2024, 2, 29), D(2016, 2, 29)),
    ],
)
def test_a_stated_age_is_pinned_to_a_birth_date(
    age: int, reference: dt.date, birthdate: dt.date
) -> None:
    implied = implied_birthdate(age, reference)
    assert implied == birthdate
    assert age_on(implied, reference) == age


def test_a_stated_age_keeps_its_band_a_full_year_then_ages() -> None:
    born = implied_birthdate(12, D(2025, 9, 1))
    assert band_on(born, D(2026, 8, 31)).label == "10-12"
    assert band_on(born, D(2026, 9, 1)).label == "13-15"
