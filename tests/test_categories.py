"""Specification of the canonical category taxonomy."""

from __future__ import annotations

import dataclasses

import pytest

from familydns.blocklists.categories import BY_ID, CATEGORIES, Category, validate_category

BLOCK_IDS = (
    "adult",
    "suggestive",
    "gambling",
    "dating",
    "violence",
    "hate_extremism",
    "weapons",
    "drugs",
    "alcohol_tobacco",
    "self_harm",
    "social",
    "chat",
    "gaming",
    "streaming",
    "shopping",
    "ai",
    "piracy",
    "proxy_vpn",
    "dns_bypass",
    "unsafe_search",
    "malware",
    "phishing",
    "hacking_cheating",
    "ads_tracking",
)
ALLOW_IDS = ("kids_allowlist", "sex_education")


def test_ids_are_exactly_the_taxonomy_in_order() -> None:
    assert tuple(category.id for category in CATEGORIES) == BLOCK_IDS + ALLOW_IDS


@pytest.mark.parametrize("category_id", BLOCK_IDS)
def test_block_categories_are_not_allow(category_id: str) -> None:
    assert BY_ID[category_id].allow is False


@pytest.mark.parametrize("category_id", ALLOW_IDS)
def test_allow_categories_are_marked(category_id: str) -> None:
    assert BY_ID[category_id].allow is True


@pytest.mark.parametrize("category", CATEGORIES, ids=lambda category: category.id)
def test_descriptions_are_one_short_line(category: Category) -> None:
    assert category.description
    assert "\n" not in category.description
    assert len(category.description) <= 90


def test_by_id_indexes_every_category() -> None:
    assert BY_ID == {category.id: category for category in CATEGORIES}


def test_categories_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATEGORIES[0].allow = True  # type: ignore[misc]


@pytest.mark.parametrize("category_id", BLOCK_IDS + ALLOW_IDS)
def test_validate_accepts_canonical_ids(category_id: str) -> None:
    assert validate_category(category_id) == category_id


@pytest.mark.parametrize("category_id", ["porn", "Adult", "", "adult ", "drogue"])
def test_validate_rejects_unknown_ids_naming_them_and_the_valid_ones(category_id: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        validate_category(category_id)
    message = str(excinfo.value)
    assert repr(category_id) in message
    assert "adult" in message and "sex_education" in message
