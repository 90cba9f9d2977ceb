"""build_snapshot(): every config problem reported at once with its key path."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from familydns.blocklists.categories import BY_ID
from familydns.config import load_config_data
from familydns.errors import ConfigError
from familydns.profiles.model import (
    NO_OVERRIDES,
    BlockAnswer,
    Overrides,
    PolicySnapshot,
    TemporaryAllow,
    effective_categories,
    profile_for,
)
from familydns.profiles.safesearch import YouTubeMode
from familydns.profiles.snapshot import build_snapshot, parse_block_answer
from familydns.resolver.identity import ClientIdentity

TODAY = dt.date(2026, 6, 10)


class NoHits:
    def match(self, name: str) -> tuple[()]:
        return ()


def build(raw: dict[str, Any], overrides: Overrides = NO_OVERRIDES) -> PolicySnapshot:
    return build_snapshot(load_config_data(raw), NoHits(), overrides, reference_date=TODAY)


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(raw)
    return caught.value.problems


def one_profile(**fields: Any) -> dict[str, Any]:
    return {"profiles": [{"name": "anna", "birthdate": "2015-03-10", **fields}]}


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"block": ["gambling", "gamblin"]},
         "profiles[0].block[1]: unknown category 'gamblin' (known: adult, "),
        ({"unblock": ["socail"]}, "profiles[0].unblock[0]: unknown category 'socail'"),
        ({"block": ["social"], "unblock": ["social"]},
         "profiles[0].unblock[0]: 'social' is also in block"),
        ({"allow": ["ok.example", "https://x.com/path"]},
         "profiles[0].allow[1]: bad domain 'https://x.com/path'"),
        ({"deny": ["localhost"]}, "profiles[0].deny[0]: bad domain 'localhost'"),
        ({"allow": ["a.example"], "deny": ["A.example."]},
         "profiles[0].allow: 'a.example' is in both allow and deny"),
        ({"youtube": "stict"},
         "profiles[0].youtube: must be strict, moderate or off, got 'stict'"),
        ({"block_answer": "blackhole"},
         ("profiles[0].block_answer: must be nxdomain, nodata, zero, refused or an IP "
          "address, got 'blackhole'")),
        ({"block_answer": "10.0.0.1,10.0.0.2"},
         "profiles[0].block_answer: give at most one IPv4 and one IPv6 address"),
        ({"age": 10}, "profiles[0]: give exactly one of birthdate or age"),
        ({"birthdate": None}, "profiles[0]: needs a birthdate (YYYY-MM-DD) or an age"),
        ({"birthdate": None, "age": -1}, "profiles[0].age: must be between 0 and 120, got -1"),
        ({"devices": [{"ip": "192.168.1.300"}]},
         "profiles[0].devices[0]: bad ip '192.168.1.300'"),
        ({"schedules": [{"name": "bed", "days": "mnday", "from": "21:00", "to": "07:00",
                         "block_all": True}]},
         "profiles[0].schedules[0].days: unknown day 'mnday'"),
        ({"schedules": [{"name": "bed", "from": "25:00", "to": "07:00", "block_all": True}]},
         "profiles[0].schedules[0].from: bad time '25:00'"),
        ({"schedules": [{"name": "bed", "from": "21:00", "to": "7pm", "block_all": True}]},
         "profiles[0].schedules[0].to: bad time '7pm'"),
        ({"schedules": [{"name": "bed", "from": "21:00", "to": "21:00", "block_all": True}]},
         "profiles[0].schedules[0]: empty window 21:00-21:00"),
        ({"schedules": [{"name": "hw", "from": "16:00", "to": "18:00", "block": ["gamng"]}]},
         "profiles[0].schedules[0].block[0]: unknown category 'gamng'"),
        ({"schedules": [{"name": "hw", "from": "16:00", "to": "18:00"}]},
         "profiles[0].schedules[0]: does nothing"),
        ({"schedules": [{"name": "hw", "from": "16:00", "to": "18:00", "block": ["gaming"],
                         "allow": ["school.example"]}]},
         "profiles[0].schedules[0].allow: only applies with block_all: true"),
        ({"schedules": [{"name": "bed", "from": "21:00", "to": "07:00", "block_all": True,
                         "allow": ["not a domain"]}]},
         "profiles[0].schedules[0].allow[0]: bad domain 'not a domain'"),
        ({"schedules": [{"name": "hw", "from": "16:00", "to": "18:00", "block": ["gaming"]},
                        {"name": "hw", "from": "19:00", "to": "20:00", "block": ["gaming"]}]},
         "profiles[0].schedules[1].name: duplicate schedule name 'hw'"),
    ],
)
def test_problems_name_their_key_path(fields: dict[str, Any], problem: str) -> None:
    found = problems(one_profile(**fields))
    assert any(p.startswith(problem) for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    raw = {
        "household": {"timezone": "Mars/Olympus"},
        "profiles": [
            {"name": "anna", "birthdate": "2015-03-10", "block": ["gamblin"],
             "devices": [{"ip": "192.168.1.10"}]},
            {"name": "ben", "age": 12, "youtube": "sometimes",
             "devices": [{"ip": "192.168.1.10"}],
             "schedules": [{"name": "bed", "days": "mnday", "from": "21:00", "to": "07:00",
                            "block_all": True}]},
        ],
    }
    assert problems(raw) == [
        "profiles[0].block[0]: unknown category 'gamblin' (known: "
        + ", ".join(BY_ID) + ")",
        "profiles[1].youtube: must be strict, moderate or off, got 'sometimes'",
        ("profiles[1].schedules[0].days: unknown day 'mnday' "
         "(use mon..sun, daily, weekdays, weekends)"),
        ("profiles[1].devices[0]: overlapping device ip 192.168.1.10: on profile 'anna' "
         "(profiles[0].devices[0]) and on 'ben'"),
        ("household.timezone: unknown time zone 'Mars/Olympus' (use an IANA name like "
         "Europe/Paris, or local)"),
    ]


def test_default_is_reserved_for_the_baseline_unless_named_as_default_profile() -> None:
    raw = {"profiles": [{"name": "default", "age": 30}]}
    assert problems(raw) == [
        ("profiles[0].name: 'default' names the built-in baseline; "
         "set household.default_profile: default to use your own")
    ]
    snapshot = build({**raw, "household": {"default_profile": "default"}})
    assert snapshot.profiles["default"].stated_age == 30


def test_the_baseline_profile() -> None:
    snapshot = build({})
    profile = profile_for(snapshot, ClientIdentity("10.0.0.1"))
    assert profile.name == "default"
    assert effective_categories(profile, TODAY) == {
        "malware": "built-in baseline", "phishing": "built-in baseline",
        "adult": "built-in baseline",
    }
    band = profile.band_on(TODAY)
    assert (band.safe_search, band.youtube, band.bypass_protection) == (
        True, YouTubeMode.OFF, False)


def test_a_compiled_profile() -> None:
    snapshot = build(one_profile(
        block=["ads_tracking"], unblock=["shopping"], allow=["*.School.example."],
        deny=["tiktok.com"], youtube="Moderate", block_answer="0.0.0.0",
        devices=[{"mac": "AA-BB-CC-DD-EE-FF"}],
        schedules=[{"name": "homework", "days": "weekdays", "from": "16:00", "to": "18:00",
                    "block": ["gaming"]}],
    ))
    anna = profile_for(snapshot, ClientIdentity("10.0.0.1", mac="aa:bb:cc:dd:ee:ff"))
    assert anna.name == "anna"
    assert anna.allow == {"school.example"}
    assert anna.youtube is YouTubeMode.MODERATE
    assert (anna.block_answer, anna.block_addresses) == (BlockAnswer.CUSTOM, ("0.0.0.0",))
    categories = effective_categories(anna, TODAY, anna.schedules)
    assert categories["ads_tracking"] == "added by parent"
    assert categories["gambling"] == "age default 10-12"
    assert categories["gaming"] == "schedule homework"
    assert "shopping" not in categories
    assert "gaming" not in effective_categories(anna, TODAY)


def test_a_stated_age_is_pinned_to_the_reference_date() -> None:
    snapshot = build({"profiles": [{"name": "ben", "age": 12}]})
    ben = snapshot.profiles["ben"]
    assert (ben.birthdate, ben.stated_age) == (dt.date(2014, 6, 10), 12)
    assert ben.band_on(dt.date(2027, 6, 10)).label == "13-15"


def test_overrides_of_unknown_profiles_are_dropped_and_bad_domains_refused() -> None:
    raw = one_profile()
    overrides = Overrides(
        pauses={"anna": None, "gone": None},
        allows=(TemporaryAllow("gone", "x.example", 1.0),
                TemporaryAllow("anna", "WWW.X.example", 2.0)),
    )
    live = build(raw, overrides).overrides
    assert dict(live.pauses) == {"anna": None}
    assert live.allows == (TemporaryAllow("anna", "www.x.example", 2.0),)
    with pytest.raises(ConfigError, match=r"overrides.allows\[0\]: bad domain 'x y'"):
        build(raw, Overrides(allows=(TemporaryAllow("anna", "x y", 1.0),)))


def test_timezones() -> None:
    assert build({"household": {"timezone": "local"}}).tz is None
    assert str(build({"household": {"timezone": "Europe/Paris"}}).tz) == "Europe/Paris"


@pytest.mark.parametrize(
    ("text", "answer", "addresses"),
    [
        ("nxdomain", BlockAnswer.NXDOMAIN, ()),
        ("NODATA", BlockAnswer.NODATA, ()),
        ("zero", BlockAnswer.ZERO, ()),
        ("refused", BlockAnswer.REFUSED, ()),
        ("192.0.2.1", BlockAnswer.CUSTOM, ("192.0.2.1",)),
        ("2001:db8::1", BlockAnswer.CUSTOM, ("2001:db8::1",)),
        ("192.0.2.1,2001:db8::1", BlockAnswer.CUSTOM, ("192.0.2.1", "2001:db8::1")),
    ],
)
def test_parse_block_answer(text: str, answer: BlockAnswer, addresses: tuple[str, ...]
                            ) -> None:
    assert parse_block_answer(text) == (answer, addresses)


@pytest.mark.parametrize(
    "text", ["", "drop", "2001:db8::1,2001:db8::2", "192.0.2.1,192.0.2.300"]
)
def test_bad_block_answers(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_block_answer(text)
