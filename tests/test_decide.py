"""decide(): each step of the order in familydns/profiles/decide.py, as a specification.

The household is in Europe/Paris; "Wed 12:00" is Wednesday 2026-06-10 there. Anna is
11 (10-12), Ben 16 (16-17), Mum an adult, Tim 4 in allowlist-only mode.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from familydns.blocklists.formats import parse_list
from familydns.blocklists.matcher import MatcherBuilder
from familydns.config import load_config_data
from familydns.profiles.decide import _context_of, _steps, decide, decide_chain
from familydns.profiles.model import (
    NO_OVERRIDES,
    Action,
    BlockAnswer,
    Decision,
    Overrides,
    PolicySnapshot,
    TemporaryAllow,
)
from familydns.profiles.snapshot import build_snapshot
from familydns.resolver.identity import ClientIdentity

PARIS = ZoneInfo("Europe/Paris")
A, AAAA = 1, 28
BLOCK, ALLOW, REWRITE = Action.BLOCK, Action.ALLOW, Action.REWRITE


@dataclass(frozen=True, slots=True)
class FakeHit:
    """The shape of familydns.blocklists.matcher.Hit."""

    category: str
    domain: str
    exception: bool = False
    important: bool = False
    source: str = "test-list"
    line: int = 1


class FakeMatcher:
    """Subtree rules; at most one hit per (category, exception): the most specific."""

    def __init__(self, *rules: FakeHit) -> None:
        self.rules = rules

    def match(self, name: str) -> tuple[FakeHit, ...]:
        best: dict[tuple[str, bool], FakeHit] = {}
        for rule in self.rules:
            if name == rule.domain or name.endswith("." + rule.domain):
                key = (rule.category, rule.exception)
                if key not in best or len(rule.domain) > len(best[key].domain):
                    best[key] = rule
        return tuple(best.values())


LISTS = FakeMatcher(
    FakeHit("gambling", "bet365.com", source="starter-gambling", line=12),
    FakeHit("adult", "adult.example", source="starter-adult", line=3),
    FakeHit("gambling", "casino.example"),
    FakeHit("malware", "casino.example", source="urlhaus", line=7),
    FakeHit("social", "facebook.com"),
    FakeHit("gaming", "minecraft.net"),
    FakeHit("streaming", "youtube.com"),
    FakeHit("kids_allowlist", "pbskids.org"),
    FakeHit("gaming", "kidsgame.example"),
    FakeHit("kids_allowlist", "kidsgame.example"),
    FakeHit("adult", "sexed.example"),
    FakeHit("sex_education", "sexed.example"),
    FakeHit("dns_bypass", "dns.google"),
    FakeHit("ads_tracking", "tracker.example"),
)

PROFILES: list[dict[str, Any]] = [
    {"name": "anna", "birthdate": "2015-03-10", "devices": [{"ip": "192.168.1.10"}]},
    {"name": "ben", "age": 16, "devices": [{"ip": "192.168.1.11"}]},
    {"name": "mum", "birthdate": "1985-01-01", "devices": [{"ip": "192.168.1.12"}]},
    {"name": "tim", "birthdate": "2022-01-01", "allowlist_only": True,
     "devices": [{"ip": "192.168.1.13"}]},
]
ANNA, BEN, MUM, TIM = (ClientIdentity(f"192.168.1.{i}") for i in (10, 11, 12, 13))
STRANGER = ClientIdentity("192.168.1.99")


def snap(
    *changes: dict[str, Any],
    matcher: FakeMatcher = LISTS,
    overrides: Overrides = NO_OVERRIDES,
    household: dict[str, Any] | None = None,
) -> PolicySnapshot:
    """The family above, with each dict in ``changes`` merged into the profile it names."""
    profiles = [dict(p) for p in PROFILES]
    for change in changes:
        profile = next(p for p in profiles if p["name"] == change["name"])
        profile.update(change)
    config = load_config_data({
        "household": {"timezone": "Europe/Paris", **(household or {})},
        "profiles": profiles,
    })
    return build_snapshot(config, matcher, overrides, reference_date=dt.date(2026, 1, 1))


def at(text: str) -> float:
    """Epoch seconds of a Paris wall-clock time; 'Wed 12:00' is in the week of 8 June 2026."""
    days = {"Mon": 8, "Tue": 9, "Wed": 10, "Thu": 11, "Fri": 12, "Sat": 13, "Sun": 14}
    if text[:3] in days:
        hours, minutes = map(int, text[4:].split(":"))
        return dt.datetime(2026, 6, days[text[:3]], hours, minutes, tzinfo=PARIS).timestamp()
    return dt.datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


NOON = at("Wed 12:00")
FAMILY = snap()


def verdict(snapshot: PolicySnapshot, client: ClientIdentity, name: str,
            now: float = NOON, qtype: int = A) -> Decision:
    return decide(snapshot, client, name, qtype, now)


def target(decision: Decision) -> str | None:
    """Where a rewrite sends the client, None for a decision that is no CNAME rewrite."""
    return decision.rewrite.cname if decision.rewrite else None


# ---------------------------------------------------------------- 1. profile


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("adult.example", BLOCK),
        ("casino.example", BLOCK),        # malware
        ("bet365.com", ALLOW),            # the baseline is not a child's profile
        ("facebook.com", ALLOW),
        ("www.google.com", REWRITE),      # safe search is on
        ("www.youtube.com", ALLOW),       # YouTube restricted mode is off
        ("use-application-dns.net", ALLOW),  # bypass protection is off
    ],
)
def test_an_unknown_device_gets_the_builtin_baseline(name: str, action: Action) -> None:
    decision = verdict(FAMILY, STRANGER, name)
    assert (decision.profile, decision.action) == ("default", action)


def test_an_unknown_device_gets_the_household_default_profile_when_set() -> None:
    snapshot = snap(household={"default_profile": "anna"})
    decision = verdict(snapshot, STRANGER, "bet365.com")
    assert (decision.profile, decision.action) == ("anna", BLOCK)


# ---------------------------------------------------------------- 2. bypass protection


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("use-application-dns.net", BlockAnswer.NXDOMAIN),
        ("mask.icloud.com", BlockAnswer.NXDOMAIN),
        ("mask-h2.icloud.com", BlockAnswer.NXDOMAIN),
        ("mask-canary.icloud.com", BlockAnswer.NXDOMAIN),
        ("_dns.resolver.arpa", BlockAnswer.NODATA),
    ],
)
def test_bypass_names_get_fixed_answers_whatever_the_block_answer(
    name: str, answer: BlockAnswer
) -> None:
    snapshot = snap({"name": "anna", "block_answer": "0.0.0.0"})
    decision = verdict(snapshot, ANNA, name, qtype=AAAA)
    assert (decision.action, decision.block_answer, decision.block_addresses) == (
        BLOCK, answer, ())
    assert decision.source == "bypass protection"
    assert verdict(FAMILY, MUM, name).action is ALLOW
    assert verdict(snap({"name": "anna", "bypass_protection": False}), ANNA, name).action \
        is ALLOW


def test_other_bypass_hosts_are_the_dns_bypass_category() -> None:
    decision = verdict(FAMILY, ANNA, "dns.google")
    assert (decision.action, decision.category) == (BLOCK, "dns_bypass")


def test_bypass_beats_a_parent_allow() -> None:
    snapshot = snap({"name": "anna", "allow": ["icloud.com"]})
    assert verdict(snapshot, ANNA, "mask.icloud.com").action is BLOCK


# ---------------------------------------------------------------- 3. pause


@pytest.mark.parametrize(
    ("until", "now", "action", "reason"),
    [
        (at("Wed 13:30"), NOON, BLOCK, "internet is paused for anna until 13:30"),
        (at("Thu 07:00"), NOON, BLOCK, "internet is paused for anna until Thu 07:00"),
        (None, NOON, BLOCK, "internet is paused for anna until a parent resumes it"),
        (at("Wed 11:59"), NOON, ALLOW, None),   # expired
        (NOON, NOON, ALLOW, None),              # ends exactly now
    ],
)
def test_a_pause_blocks_everything_until_it_ends(
    until: float | None, now: float, action: Action, reason: str | None
) -> None:
    snapshot = snap({"name": "anna", "allow": ["school.example"]},
                    overrides=Overrides(pauses={"anna": until}))
    decision = verdict(snapshot, ANNA, "school.example", now)
    assert decision.action is action
    if reason:
        assert (decision.reason, decision.source) == (reason, "pause")
    assert verdict(snapshot, BEN, "school.example", now).action is ALLOW


def test_a_pause_beats_a_temporary_allow() -> None:
    overrides = Overrides(pauses={"anna": None},
                          allows=(TemporaryAllow("anna", "games.example", at("Wed 18:00")),))
    assert verdict(snap(overrides=overrides), ANNA, "games.example").action is BLOCK


# ---------------------------------------------------------------- 4-5. parent rules


@pytest.mark.parametrize(
    ("name", "action", "rule"),
    [
        ("youtube.com", BLOCK, "youtube.com"),
        ("www.youtube.com", BLOCK, "youtube.com"),
        ("kids.youtube.com", ALLOW, "kids.youtube.com"),      # more specific allow wins
        ("a.kids.youtube.com", ALLOW, "kids.youtube.com"),
        ("ads.kids.youtube.com", BLOCK, "ads.kids.youtube.com"),  # more specific deny wins
        ("notyoutube.com", ALLOW, None),
        ("bet365.com", ALLOW, "bet365.com"),                  # allow beats categories
        ("mail.bet365.com", ALLOW, "bet365.com"),
    ],
)
def test_the_most_specific_parent_rule_wins(name: str, action: Action, rule: str | None
                                            ) -> None:
    snapshot = snap({"name": "anna", "deny": ["youtube.com", "ads.kids.youtube.com"],
                     "allow": ["kids.youtube.com", "bet365.com"]})
    decision = verdict(snapshot, ANNA, name)
    assert (decision.action, decision.rule) == (action, rule)


def test_a_deny_reads_as_the_parent_deny_list() -> None:
    snapshot = snap({"name": "anna", "deny": ["tiktok.com"], "block_answer": "refused"})
    decision = verdict(snapshot, ANNA, "www.tiktok.com")
    assert decision.reason == "tiktok.com is on the parent deny list for anna"
    assert (decision.source, decision.origin, decision.block_answer) == (
        "parent deny list", "added by parent", BlockAnswer.REFUSED)


def test_an_allow_lifts_blocks_but_not_safe_search() -> None:
    snapshot = snap({"name": "anna", "allow": ["google.com", "youtube.com"]})
    assert verdict(snapshot, ANNA, "www.google.com").action is REWRITE
    assert verdict(snapshot, ANNA, "www.youtube.com").action is REWRITE


@pytest.mark.parametrize(
    ("allow", "deny", "name", "now", "action"),
    [
        ("games.example", None, "games.example", at("Wed 11:59"), ALLOW),
        ("games.example", None, "play.games.example", at("Wed 11:59"), ALLOW),
        ("games.example", None, "games.example", NOON, BLOCK),           # ends exactly now
        ("games.example", None, "games.example", at("Wed 13:00"), BLOCK),  # expired
        ("www.games.example", None, "games.example", at("Wed 11:59"), BLOCK),
        # A temporary allow beats a deny of the same name: a parent just granted it.
        ("games.example", "games.example", "games.example", at("Wed 11:59"), ALLOW),
        # A more specific deny still wins.
        ("games.example", "play.games.example", "play.games.example", at("Wed 11:59"),
         BLOCK),
    ],
)
def test_temporary_allows(
    allow: str, deny: str | None, name: str, now: float, action: Action
) -> None:
    change: dict[str, Any] = {"name": "anna", "block": ["gaming"]}
    if deny:
        change["deny"] = [deny]
    matcher = FakeMatcher(FakeHit("gaming", "games.example"))
    overrides = Overrides(allows=(TemporaryAllow("anna", allow, NOON),))
    decision = verdict(snap(change, matcher=matcher, overrides=overrides), ANNA, name, now)
    assert decision.action is action
    if action is ALLOW:
        assert decision.reason == f"{allow} is temporarily allowed for anna until 12:00"


def test_temporary_allows_are_per_profile_and_normalised() -> None:
    overrides = Overrides(allows=(TemporaryAllow("anna", "BET365.com.", at("Wed 18:00")),
                                  TemporaryAllow("nobody", "bet365.com", at("Wed 18:00"))))
    snapshot = snap(overrides=overrides)
    assert verdict(snapshot, ANNA, "bet365.com").action is ALLOW
    assert verdict(snapshot, BEN, "bet365.com").action is BLOCK


# ---------------------------------------------------------------- 6. schedules

BEDTIME = {"name": "bedtime", "days": "sun-thu", "from": "21:00", "to": "07:00",
           "block_all": True, "allow": ["school.example"]}
HOMEWORK = {"name": "homework", "days": "mon-fri", "from": "16:00", "to": "18:00",
            "block": ["gaming", "streaming"]}


@pytest.mark.parametrize(
    ("name", "now", "action", "source"),
    [
        ("wikipedia.org", at("Wed 20:59"), ALLOW, None),
        ("wikipedia.org", at("Wed 21:00"), BLOCK, "schedule bedtime"),
        ("wikipedia.org", at("Thu 06:59"), BLOCK, "schedule bedtime"),   # Wed's window
        ("wikipedia.org", at("Fri 23:00"), ALLOW, None),                 # no bedtime Fri
        ("wikipedia.org", at("Sat 02:00"), ALLOW, None),
        ("wikipedia.org", at("Mon 02:00"), BLOCK, "schedule bedtime"),   # Sun's window
        # The schedule's own allow list stays reachable, but still faces categories.
        ("www.school.example", at("Wed 22:00"), ALLOW, None),
        # A standing parent allow does not beat bedtime ...
        ("minecraft.net", at("Wed 22:00"), BLOCK, "schedule bedtime"),
        # ... unless the schedule allows it too; a temporary allow always does.
        ("friends.example", at("Wed 22:00"), ALLOW, "temporary allow"),
        # A parent deny still wins and says so.
        ("tiktok.com", at("Wed 22:00"), BLOCK, "parent deny list"),
    ],
)
def test_bedtime(name: str, now: float, action: Action, source: str | None) -> None:
    snapshot = snap(
        {"name": "anna", "schedules": [BEDTIME], "allow": ["minecraft.net"],
         "deny": ["tiktok.com"]},
        overrides=Overrides(allows=(TemporaryAllow("anna", "friends.example", at("Thu 06:00")),)),
    )
    decision = verdict(snapshot, ANNA, name, now)
    assert (decision.action, decision.source) == (action, source)


def test_a_bedtime_block_names_the_schedule() -> None:
    snapshot = snap({"name": "anna", "schedules": [BEDTIME]})
    decision = verdict(snapshot, ANNA, "wikipedia.org", at("Wed 22:00"))
    assert decision.reason == (
        "everything is blocked for anna during schedule bedtime (21:00-07:00)")
    assert (decision.schedule, decision.origin) == ("bedtime", "schedule bedtime")


def test_a_name_on_one_bedtime_allow_list_is_still_blocked_by_another() -> None:
    other = {**BEDTIME, "name": "lights-out", "allow": ["music.example"]}
    snapshot = snap({"name": "anna", "schedules": [BEDTIME, other]})
    assert verdict(snapshot, ANNA, "school.example", at("Wed 22:00")).schedule == "lights-out"


@pytest.mark.parametrize(
    ("now", "action", "origin"),
    [
        (at("Wed 15:59"), ALLOW, None),
        (at("Wed 16:00"), BLOCK, "schedule homework"),
        (at("Sat 16:30"), ALLOW, None),
    ],
)
def test_a_schedule_adds_categories(now: float, action: Action, origin: str | None) -> None:
    snapshot = snap({"name": "anna", "schedules": [HOMEWORK]})
    decision = verdict(snapshot, ANNA, "minecraft.net", now)
    assert (decision.action, decision.origin) == (action, origin)
    if origin:
        assert decision.schedule == "homework"
        assert decision.reason.startswith("gaming is blocked for anna (schedule homework)")


def test_a_schedule_category_is_blocked_even_after_unblock() -> None:
    snapshot = snap({"name": "anna", "unblock": ["social"],
                     "schedules": [{**HOMEWORK, "block": ["social"]}]})
    assert verdict(snapshot, ANNA, "facebook.com", at("Wed 12:00")).action is ALLOW
    assert verdict(snapshot, ANNA, "facebook.com", at("Wed 17:00")).action is BLOCK


# ---------------------------------------------------------------- 7. categories


def test_a_category_block_explains_itself() -> None:
    decision = verdict(FAMILY, ANNA, "www.bet365.com")
    assert decision == Decision(
        Action.BLOCK, "anna",
        "gambling is blocked for anna (age default 10-12); matched bet365.com in list "
        "starter-gambling line 12",
        category="gambling", rule="bet365.com", source="starter-gambling", line=12,
        origin="age default 10-12",
    )


@pytest.mark.parametrize(
    ("client", "name", "action", "origin"),
    [
        (ANNA, "facebook.com", BLOCK, "age default 10-12"),
        (BEN, "facebook.com", ALLOW, None),
        (BEN, "bet365.com", BLOCK, "age default 16-17"),
        (MUM, "bet365.com", ALLOW, None),
        (MUM, "casino.example", BLOCK, "age default 18+"),
    ],
)
def test_categories_follow_the_age_band(
    client: ClientIdentity, name: str, action: Action, origin: str | None
) -> None:
    decision = verdict(FAMILY, client, name)
    assert (decision.action, decision.origin) == (action, origin)


def test_parents_tighten_and_loosen_the_defaults() -> None:
    snapshot = snap({"name": "ben", "block": ["social"], "unblock": ["gambling"]})
    social = verdict(snapshot, BEN, "facebook.com")
    assert (social.action, social.origin) == (BLOCK, "added by parent")
    assert verdict(snapshot, BEN, "bet365.com").action is ALLOW


def test_the_most_severe_category_is_named() -> None:
    decision = verdict(FAMILY, ANNA, "casino.example")
    assert (decision.category, decision.source, decision.line) == ("malware", "urlhaus", 7)


@pytest.mark.parametrize(
    ("block_important", "exception_important", "action"),
    [
        (False, False, ALLOW),   # exception > block
        (True, False, BLOCK),    # important > exception
        (True, True, ALLOW),     # exception+important > important
        (False, True, ALLOW),
    ],
)
def test_list_exceptions_and_important(
    block_important: bool, exception_important: bool, action: Action
) -> None:
    matcher = FakeMatcher(
        FakeHit("gambling", "lottery.example", important=block_important),
        FakeHit("gambling", "www.lottery.example", exception=True,
                important=exception_important),
    )
    snapshot = snap(matcher=matcher)
    assert verdict(snapshot, ANNA, "www.lottery.example").action is action
    assert verdict(snapshot, ANNA, "lottery.example").action is BLOCK


def test_an_exception_only_cancels_its_own_category() -> None:
    matcher = FakeMatcher(
        FakeHit("gambling", "x.example"),
        FakeHit("adult", "x.example", exception=True, important=True),
    )
    assert verdict(snap(matcher=matcher), ANNA, "x.example").category == "gambling"


@pytest.mark.parametrize(
    ("change", "action"),
    [
        ({"name": "anna"}, ALLOW),                              # sex_education lifts adult
        ({"name": "anna", "block": ["sex_education"]}, BLOCK),  # unless it is blocked itself
    ],
)
def test_sex_education_overrides_adult(change: dict[str, Any], action: Action) -> None:
    assert verdict(snap(change), ANNA, "sexed.example").action is action


def test_sex_education_does_not_lift_other_categories() -> None:
    matcher = FakeMatcher(FakeHit("sex_education", "x.example"), FakeHit("chat", "x.example"))
    assert verdict(snap(matcher=matcher), ANNA, "x.example").category == "chat"


@pytest.mark.parametrize(
    ("name", "action", "source"),
    [
        ("pbskids.org", ALLOW, None),
        ("www.pbskids.org", ALLOW, None),
        ("kidsgame.example", ALLOW, None),   # kids_allowlist lifts gaming
        ("wikipedia.org", BLOCK, "allowlist-only mode"),
        ("adult.example", BLOCK, "starter-adult"),
        ("school.example", ALLOW, "parent allow list"),
    ],
)
def test_allowlist_only(name: str, action: Action, source: str | None) -> None:
    snapshot = snap({"name": "tim", "allow": ["school.example"]})
    decision = verdict(snapshot, TIM, name)
    assert (decision.action, decision.source) == (action, source)


def test_a_malware_listing_beats_the_kids_allowlist() -> None:
    matcher = FakeMatcher(FakeHit("kids_allowlist", "x.example"), FakeHit("malware", "x.example"))
    assert verdict(snap(matcher=matcher), TIM, "x.example").category == "malware"


# ---------------------------------------------------------------- 8. rewrites


@pytest.mark.parametrize(
    ("client", "name", "action", "cname"),
    [
        (ANNA, "www.youtube.com", REWRITE, "restrict.youtube.com"),
        (BEN, "www.youtube.com", REWRITE, "restrictmoderate.youtube.com"),
        (MUM, "www.youtube.com", ALLOW, None),
        (ANNA, "www.google.fr", REWRITE, "forcesafesearch.google.com"),
        (BEN, "www.bing.com", REWRITE, "strict.bing.com"),
        (MUM, "www.google.fr", ALLOW, None),
        # A YouTube in a blocked category stays blocked (streaming, for a 4-year-old).
        (TIM, "www.youtube.com", BLOCK, None),
    ],
)
def test_safe_search_follows_the_age(
    client: ClientIdentity, name: str, action: Action, cname: str | None
) -> None:
    decision = verdict(FAMILY, client, name)
    assert decision.action is action
    assert target(decision) == cname


def test_a_rewrite_says_where_its_setting_comes_from() -> None:
    assert verdict(FAMILY, ANNA, "www.youtube.com").reason == (
        "YouTube restricted mode (strict) is enforced for anna (age default 10-12)")
    snapshot = snap({"name": "mum", "safe_search": True, "youtube": "moderate"})
    assert verdict(snapshot, MUM, "www.google.com").reason == (
        "safe search on Google is enforced for mum (set by parent)")
    assert target(verdict(snapshot, MUM, "m.youtube.com")) == "restrictmoderate.youtube.com"


def test_parents_can_turn_safe_search_off() -> None:
    snapshot = snap({"name": "ben", "safe_search": False, "youtube": "off"})
    assert verdict(snapshot, BEN, "www.google.com").action is ALLOW
    assert verdict(snapshot, BEN, "www.youtube.com").action is ALLOW


# ---------------------------------------------------------------- answers and the clock


@pytest.mark.parametrize(
    ("setting", "answer", "addresses"),
    [
        ("nxdomain", BlockAnswer.NXDOMAIN, ()),
        ("nodata", BlockAnswer.NODATA, ()),
        ("zero", BlockAnswer.ZERO, ()),
        ("refused", BlockAnswer.REFUSED, ()),
        ("192.168.1.2", BlockAnswer.CUSTOM, ("192.168.1.2",)),
        ("192.168.1.2, fd00::2", BlockAnswer.CUSTOM, ("192.168.1.2", "fd00::2")),
    ],
)
def test_blocks_use_the_profile_block_answer(
    setting: str, answer: BlockAnswer, addresses: tuple[str, ...]
) -> None:
    decision = verdict(snap({"name": "anna", "block_answer": setting}), ANNA, "bet365.com")
    assert (decision.block_answer, decision.block_addresses, decision.ttl) == (
        answer, addresses, 10)


def test_aaaa_and_https_queries_are_judged_like_a() -> None:
    for qtype in (A, AAAA, 65):
        assert verdict(FAMILY, ANNA, "bet365.com", qtype=qtype).action is BLOCK


def test_the_band_changes_at_midnight_on_the_birthday_in_the_household_zone() -> None:
    snapshot = snap({"name": "anna", "birthdate": "2013-06-11"})   # 13 on Thu 11 June
    assert verdict(snapshot, ANNA, "facebook.com", at("Wed 23:59")).action is BLOCK
    assert verdict(snapshot, ANNA, "facebook.com", at("Thu 00:00")).action is ALLOW
    assert target(verdict(snapshot, ANNA, "www.youtube.com", at("Thu 00:00"))) == (
        "restrictmoderate.youtube.com")


def test_a_stated_age_grows_up_on_its_anniversary() -> None:
    snapshot = snap({"name": "ben", "age": 17})            # stated on 2026-01-01
    assert verdict(snapshot, BEN, "bet365.com", at("2026-12-31T23:59")).action is BLOCK
    assert verdict(snapshot, BEN, "bet365.com", at("2027-01-01T00:00")).action is ALLOW


# ---------------------------------------------------------------- CNAME chains


@pytest.mark.parametrize(
    ("client", "chain", "blocked_by"),
    [
        (ANNA, ["news.example", "cdn.example", "bet365.com"], "gambling"),
        (ANNA, ["news.example", "cdn.example"], None),
        (MUM, ["news.example", "bet365.com"], None),
        (ANNA, ["news.example", "tiktok.com"], "parent deny list"),
        # A name the parent allows vouches for its chain; an allowed target passes.
        (ANNA, ["minecraft.net", "bet365.com"], None),
        (ANNA, ["news.example", "minecraft.net", "cdn.example"], None),
        # The query name itself is decide()'s job, not judged again.
        (ANNA, ["bet365.com"], None),
        (ANNA, [], None),
        # Schedule categories apply to targets too (homework blocks gaming).
        (BEN, ["news.example", "games.minecraft.net"], "gaming"),
    ],
)
def test_decide_chain(client: ClientIdentity, chain: list[str], blocked_by: str | None
                      ) -> None:
    snapshot = snap({"name": "anna", "allow": ["minecraft.net"], "deny": ["tiktok.com"]},
                    {"name": "ben", "schedules": [HOMEWORK]})
    decision = decide_chain(snapshot, client, chain, A, at("Wed 17:00"))
    if blocked_by is None:
        assert decision is None
    else:
        assert decision is not None and decision.action is BLOCK
        assert blocked_by in (decision.category, decision.source)
        assert decision.reason.endswith(f"(reached via CNAME of {chain[0]})")


def test_decide_chain_ignores_bedtime_and_safe_search() -> None:
    snapshot = snap({"name": "anna", "schedules": [BEDTIME]})
    chain = ["school.example", "www.google.com", "cdn.example"]
    assert decide_chain(snapshot, ANNA, chain, A, at("Wed 22:00")) is None


# ---------------------------------------------------------------- the real matcher


def test_decide_reads_the_real_matcher() -> None:
    builder = MatcherBuilder()
    gambling = "bet365.com\n@@||www.lottery.example^\n||lottery.example^$important\n"
    builder.add(parse_list(gambling, "adblock", "starter-gambling").rules, "gambling",
                "starter-gambling")
    matcher = builder.build()
    snapshot = build_snapshot(load_config_data({"profiles": PROFILES}), matcher,
                              reference_date=dt.date(2026, 1, 1))
    decision = decide(snapshot, ANNA, "mail.bet365.com", A, NOON)
    assert (decision.action, decision.rule, decision.line) == (BLOCK, "bet365.com", 1)
    assert decide(snapshot, ANNA, "www.lottery.example", A, NOON).action is BLOCK
    assert decide(snapshot, MUM, "mail.bet365.com", A, NOON).action is ALLOW


# ---------------------------------------------------------------- the shortcut

SHORTCUT_NAMES = [
    "wikipedia.org", "www.wikipedia.org", "adult.example", "www.adult.example",
    "bet365.com", "mail.bet365.com", "casino.example", "facebook.com", "m.facebook.com",
    "minecraft.net", "youtube.com", "www.youtube.com", "kids.youtube.com",
    "www.google.com", "www.google.de", "google.com", "www.bing.com", "duckduckgo.com",
    "use-application-dns.net", "mask.icloud.com", "_dns.resolver.arpa", "dns.google",
    "pbskids.org", "kidsgame.example", "sexed.example", "tracker.example",
    "school.example", "www.school.example", "friends.example", "a.friends.example",
    "tiktok.com", "www.tiktok.com", "games.example", "com", "example",
]
SHORTCUT_SNAPSHOTS = {
    "family": snap(),
    "rules": snap({"name": "anna", "allow": ["minecraft.net", "kids.youtube.com"],
                   "deny": ["tiktok.com", "youtube.com"]},
                  {"name": "ben", "bypass_protection": False, "safe_search": False}),
    "schedules": snap({"name": "anna", "schedules": [BEDTIME, HOMEWORK],
                       "allow": ["minecraft.net"], "deny": ["tiktok.com"]},
                      {"name": "ben", "schedules": [HOMEWORK]}),
    "overrides": snap(overrides=Overrides(
        pauses={"ben": at("Wed 13:30"), "mum": at("Wed 11:00")},
        allows=(TemporaryAllow("anna", "friends.example", at("Wed 12:30")),
                TemporaryAllow("anna", "bet365.com", at("Wed 11:00"))))),
    "sex_education": snap({"name": "anna", "block": ["sex_education"]}),
}


@pytest.mark.parametrize("snapshot_name", sorted(SHORTCUT_SNAPSHOTS))
@pytest.mark.parametrize("now", [NOON, at("Wed 12:31"), at("Wed 17:00"), at("Wed 22:00")])
def test_the_shortcut_to_the_categories_gives_the_same_verdict_as_every_step(
    snapshot_name: str, now: float
) -> None:
    """decide() skips steps 2-6 for names no parent rule, bypass or safe-search name
    covers; the verdict must be exactly the one the full sequence of steps gives."""
    snapshot = SHORTCUT_SNAPSHOTS[snapshot_name]
    for client in (ANNA, BEN, MUM, TIM, STRANGER):
        for name in SHORTCUT_NAMES:
            context = _context_of(snapshot, client, now)
            assert decide(snapshot, client, name, A, now) == _steps(context, name, now), (
                snapshot_name, client.address, name)


def test_the_shortcut_is_off_while_anything_may_block_every_name() -> None:
    snapshot = SHORTCUT_SNAPSHOTS["schedules"]
    assert _context_of(snapshot, ANNA, at("Wed 22:00")).ruled is None      # bedtime
    assert _context_of(snapshot, ANNA, at("Wed 12:00")).ruled == {"minecraft.net",
                                                                  "tiktok.com"}
    assert _context_of(FAMILY, TIM, NOON).ruled is None                    # allowlist-only
    paused = SHORTCUT_SNAPSHOTS["overrides"]
    assert _context_of(paused, MUM, NOON).ruled is None   # an expired pause still counts
