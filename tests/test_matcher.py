"""Specification of the compact matcher, checked against a naive reference implementation."""

from __future__ import annotations

import hashlib
import random
import re
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from familydns.blocklists.formats import NameRun, ParsedRule, RuleItem, RuleKind, parse_list
from familydns.blocklists.matcher import Hit, Matcher, MatcherBuilder, _sort_part, domain_hash
from familydns.blocklists.regexes import RegexError

UT1 = Path("/work/shared/data/ut1")
S, E, R = RuleKind.SUBTREE, RuleKind.EXACT, RuleKind.REGEX


def rule(
    pattern: str,
    kind: RuleKind = S,
    exception: bool = False,
    important: bool = False,
    line: int = 1,
) -> ParsedRule:
    return ParsedRule(pattern, kind, exception, important, line)


Entry = tuple[ParsedRule, str, str]  # rule, category, source


def build(entries: list[Entry]) -> Matcher:
    builder = MatcherBuilder()
    for parsed, category, source in entries:
        builder.add([parsed], category, source)
    return builder.build()


def reference_match(entries: list[Entry], name: str) -> tuple[Hit, ...]:
    """The contract of Matcher.match, written the slow and obvious way."""
    name = name.rstrip(".").lower()
    best: dict[tuple[str, bool], tuple[tuple[bool, bool, int, bool], int, Hit]] = {}
    for order, (parsed, category, source) in enumerate(entries):
        pattern = parsed.pattern
        if parsed.kind is R:
            if not name or not re.search(pattern, name, re.IGNORECASE | re.ASCII):
                continue
            rank = (parsed.important, False, 0, False)
        elif parsed.kind is E:
            if name != pattern:
                continue
            rank = (parsed.important, True, len(pattern), True)
        else:
            if name != pattern and not name.endswith("." + pattern):
                continue
            rank = (parsed.important, True, len(pattern), False)
        hit = Hit(
            category, pattern, parsed.kind, parsed.exception, parsed.important, source, parsed.line
        )
        key = (category, parsed.exception)
        current = best.get(key)
        if current is None or (rank, -order) > (current[0], -current[1]):
            best[key] = (rank, order, hit)
    return tuple(sorted((h for _, _, h in best.values()), key=lambda h: (h.category, h.exception)))


def brief(hits: tuple[Hit, ...]) -> list[tuple[str, str, str, str]]:
    """(category, domain, kind letter, flags) per hit."""
    return [
        (
            h.category,
            h.domain,
            h.kind.value[0].upper(),
            ("@" if h.exception else "") + ("!" if h.important else ""),
        )
        for h in hits
    ]


ENTRIES: list[Entry] = [
    (rule("example.com", line=1), "adult", "list-a"),
    (rule("www.example.com", E, line=2), "adult", "list-a"),
    (rule("deep.www.example.com", line=3), "adult", "list-b"),
    (rule("example.com", E, line=4), "gambling", "list-c"),
    (rule("safe.example.com", exception=True, line=5), "adult", "list-a"),
    (rule("broad.net", important=True, line=6), "ads_tracking", "list-d"),
    (rule("narrow.broad.net", line=7), "ads_tracking", "list-d"),
    (rule("^ads?\\.", R, line=8), "ads_tracking", "list-d"),
    (rule("example.org", line=9), "social", "list-e"),
    (rule("^www\\.example\\.org$", R, line=10), "social", "list-e"),
    (rule("tie.com", S, line=11), "shopping", "list-f"),
    (rule("tie.com", E, line=12), "shopping", "list-f"),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example.com", [("adult", "example.com", "S", ""), ("gambling", "example.com", "E", "")]),
        ("www.example.com", [("adult", "www.example.com", "E", "")]),
        ("a.www.example.com", [("adult", "example.com", "S", "")]),
        ("x.deep.www.example.com", [("adult", "deep.www.example.com", "S", "")]),
        ("sub.example.com", [("adult", "example.com", "S", "")]),
        (
            "safe.example.com",
            [("adult", "example.com", "S", ""), ("adult", "safe.example.com", "S", "@")],
        ),
        ("WWW.Example.COM.", [("adult", "www.example.com", "E", "")]),
        ("thisexample.com", []),
        ("example.com.evil.net", []),
        ("com", []),
        ("", []),
        ("x.narrow.broad.net", [("ads_tracking", "broad.net", "S", "!")]),
        ("ads.unlisted.net", [("ads_tracking", "^ads?\\.", "R", "")]),
        ("ad.narrow.broad.net", [("ads_tracking", "broad.net", "S", "!")]),
        ("www.example.org", [("social", "example.org", "S", "")]),
        ("tie.com", [("shopping", "tie.com", "E", "")]),
        ("www.tie.com", [("shopping", "tie.com", "S", "")]),
    ],
)
def test_match_ranks_hits_per_category_and_exception(
    name: str, expected: list[tuple[str, str, str, str]]
) -> None:
    assert brief(build(ENTRIES).match(name)) == expected


def test_hit_names_the_source_and_line() -> None:
    (hit,) = build(ENTRIES).match("x.deep.www.example.com")
    assert (hit.source, hit.line) == ("list-b", 3)


def test_same_domain_in_several_lists_keeps_the_first_per_category() -> None:
    matcher = build(
        [
            (rule("dup.com", line=10), "adult", "first"),
            (rule("dup.com", line=20), "adult", "second"),
            (rule("dup.com", line=30), "gambling", "third"),
        ]
    )
    assert [(h.category, h.source) for h in matcher.match("www.dup.com")] == [
        ("adult", "first"),
        ("gambling", "third"),
    ]


def test_single_label_rules_are_looked_up_when_present() -> None:
    matcher = build([(rule("zip", line=1), "malware", "tld")])
    assert brief(matcher.match("files.example.zip")) == [("malware", "zip", "S", "")]


def test_introspection() -> None:
    matcher = build(ENTRIES)
    assert len(matcher) == 10
    assert matcher.categories() == {"adult", "gambling", "ads_tracking", "social", "shopping"}
    assert matcher.rule_count("list-d") == 3
    assert matcher.rule_count("unknown") == 0


def test_empty_matcher_matches_nothing() -> None:
    matcher = Matcher.empty()
    assert (len(matcher), matcher.categories(), matcher.match("example.com")) == (0, set(), ())
    assert MatcherBuilder().build().match("example.com") == ()


def test_build_empties_the_builder() -> None:
    builder = MatcherBuilder()
    builder.add([rule("a.com")], "adult", "s")
    assert len(builder.build()) == 1
    assert len(builder.build()) == 0


def test_a_failing_source_is_rolled_back_entirely() -> None:
    builder = MatcherBuilder()
    builder.add([rule("kept.com")], "adult", "good")

    def broken() -> Iterator[ParsedRule]:
        yield rule("half.com")
        yield rule("^ads\\.", R)
        raise OSError("disk went away")

    with pytest.raises(OSError):
        builder.add(broken(), "adult", "bad")
    with pytest.raises(RegexError):
        builder.add([rule("other.com"), rule("(a+)+", R)], "adult", "bad-regex")
    matcher = builder.build()
    assert len(matcher) == 1
    assert matcher.match("ads.half.com") == ()
    assert matcher.match("other.com") == ()
    assert (matcher.rule_count("good"), matcher.rule_count("bad")) == (1, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [("example.com", 10044734154400447347), ("com", 16111924882789704313)],
)
def test_domain_hash_is_stable_across_processes(name: str, value: int) -> None:
    assert domain_hash(name) == value


def test_memory_is_about_sixteen_bytes_per_domain() -> None:
    builder = MatcherBuilder()
    builder.add((rule(f"host{i}.example{i % 7}.com") for i in range(20_000)), "adult", "s")
    matcher = builder.build()
    assert 16 <= matcher.memory_bytes() / len(matcher) <= 17
    assert matcher.match(f"a.host19999.example{19999 % 7}.com")


LABELS = ["a", "b", "ab", "x-y", "com", "net"]
domain_names = st.lists(st.sampled_from(LABELS), min_size=1, max_size=4).map(".".join)
REGEXES = ["^a\\.", "b$", "x-y", "^ab\\.com$"]
rules_strategy = st.tuples(
    st.one_of(
        st.builds(
            rule,
            domain_names,
            st.sampled_from([S, E]),
            st.booleans(),
            st.booleans(),
            st.integers(1, 99),
        ),
        st.builds(
            rule,
            st.sampled_from(REGEXES),
            st.just(R),
            st.booleans(),
            st.booleans(),
            st.integers(1, 99),
        ),
    ),
    st.sampled_from(["adult", "gambling", "social"]),
    st.sampled_from(["s1", "s2"]),
)


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(rules_strategy, max_size=25),
    queries=st.lists(domain_names, min_size=1, max_size=10),
)
def test_matches_the_reference_implementation(entries: list[Entry], queries: list[str]) -> None:
    matcher = build(entries)
    for name in queries:
        for variant in (name, name.upper() + "."):
            assert matcher.match(variant) == reference_match(entries, variant)


@pytest.mark.parametrize("category", ["gambling", "dating", "doh"])
def test_ut1_list_entries_and_their_subdomains_match(category: str) -> None:
    path = UT1 / category / "domains"
    if not path.exists():
        pytest.skip("UT1 sample data not available")
    result = parse_list(path.read_text(encoding="utf-8"), "domains", f"ut1-{category}")
    builder = MatcherBuilder()
    builder.add(result.rules, category, f"ut1-{category}")
    matcher = builder.build()
    assert len(matcher) == len(result.rules)
    for parsed in result.rules[:: max(1, len(result.rules) // 200)]:
        (hit,) = matcher.match(parsed.pattern)
        assert (hit.category, hit.domain, hit.line) == (category, parsed.pattern, parsed.line)
        (sub,) = matcher.match("deep.www." + parsed.pattern)
        assert sub.category == category
        assert all(h.domain != parsed.pattern for h in matcher.match("zz" + parsed.pattern))


# --- bulk building: NameRun items, parts sorted separately -----------------------------


def expand(items: list[RuleItem]) -> list[ParsedRule]:
    return [r for item in items for r in (item.rules() if isinstance(item, NameRun) else [item])]


def compiled(sources: list[tuple[list[RuleItem], str, str]]) -> bytes:
    builder = MatcherBuilder()
    for items, category, source in sources:
        builder.add(items, category, source)
    return builder.build().to_bytes()


def names(*values: str) -> tuple[bytes, ...]:
    return tuple(value.encode() for value in values)


@pytest.mark.skipif(sys.byteorder != "little", reason="the header names the byte order")
def test_the_compiled_form_is_unchanged() -> None:
    """Pinned: the compiled form (version 2, XXH3-64 keys) must not drift, or every
    installation's saved lists would be rebuilt for nothing (and a change of key order
    would be a change of lookup results for equal keys)."""

    def batch(start: int, stop: int, step: int = 1) -> list[RuleItem]:
        return [
            rule(f"host{i % 1500}.example{i % 7}.com", E if i % 3 == 0 else S,
                 i % 5 == 0, i % 11 == 0, 1 + i % 997)
            for i in range(start, stop, step)
        ]

    data = compiled([
        (batch(0, 3000), "adult", "a"),
        (batch(2999, -1, -1), "adult", "b"),
        (batch(0, 3000, 2) + [rule("^ads?\\.", R, line=4)], "gambling", "c"),
        (batch(1, 3000, 2), "adult", "a"),
    ])
    assert hashlib.sha256(data).hexdigest() == (
        "45d4232f214487135d58eb9f7df944ac774cbfee85137b102d88769256a41e10"
    )


def test_name_runs_build_the_same_matcher_as_their_rules() -> None:
    first: list[RuleItem] = [
        NameRun(names("a.com", "b.a.com", "dup.com"), S, 1),
        rule("^ads?\\.", R, line=4),
        rule("x.org", E, exception=True, line=5),
        NameRun(names("dup.com", "c.net"), E, 6),
    ]
    second: list[RuleItem] = [NameRun(names("dup.com", "zz.example", "cap.example"), S, 0xFFFFFFFE)]
    sources = [(first, "adult", "one"), (second, "adult", "two"), (first, "social", "one")]
    expanded = [(expand(items), category, source) for items, category, source in sources]
    assert compiled(sources) == compiled(expanded)


def test_a_failing_source_of_name_runs_is_rolled_back_entirely() -> None:
    builder = MatcherBuilder()
    builder.add([NameRun(names("kept.com"), S, 1)], "adult", "good")

    def broken() -> Iterator[RuleItem]:
        yield NameRun(names(*(f"h{i}.half.com" for i in range(1000))), S, 1)
        raise OSError("disk went away")

    with pytest.raises(OSError):
        builder.add(broken(), "adult", "bad")
    matcher = builder.build()
    assert (len(matcher), matcher.rule_count("bad")) == (1, 0)
    assert matcher.match("h7.half.com") == ()


run_names = st.lists(domain_names.filter(lambda n: "." in n), min_size=1, max_size=6)
items_strategy = st.lists(
    st.one_of(
        rules_strategy.map(lambda entry: entry[0]),
        st.builds(
            lambda ns, kind, line: NameRun(names(*ns), kind, line),
            run_names,
            st.sampled_from([S, E]),
            st.integers(1, 99),
        ),
    ),
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(
    sources=st.lists(
        st.tuples(items_strategy, st.sampled_from(["adult", "social"]), st.sampled_from(["s1", "s2"])),
        max_size=5,
    )
)
def test_any_mix_of_runs_and_rules_builds_like_the_rules(
    sources: list[tuple[list[RuleItem], str, str]],
) -> None:
    expanded = [(expand(items), category, source) for items, category, source in sources]
    assert compiled(sources) == compiled(expanded)


EDGE_LOW_BITS = [0, 1, 2, (1 << 52) - 1, 1 << 52, (1 << 52) + 1, 1 << 55, (1 << 56) - 1]


@pytest.mark.parametrize("top", [0x00, 0x0F, 0x40, 0x7F, 0x80, 0xF0, 0xFF])
def test_a_part_sorts_like_its_keys_at_the_bit_edges(top: int) -> None:
    """The float trick must order every 56-bit tail exactly, duplicates in added order."""
    rng = random.Random(top)
    tails = EDGE_LOW_BITS + [rng.getrandbits(56) for _ in range(300)]
    tails += rng.sample(tails, 60)  # equal keys, which must keep their order
    rng.shuffle(tails)
    keys = [top << 56 | tail for tail in tails]
    records = array("Q", range(len(keys)))
    order = sorted(range(len(keys)), key=keys.__getitem__)
    assert _sort_part(array("Q", keys), records) == (
        array("Q", [keys[i] for i in order]),
        array("Q", order),
    )
