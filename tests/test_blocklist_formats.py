"""Specification of the list parsers: what each format line means, and what is refused.

Rules are summarised as (line, pattern, kind, flags): kind S(ubtree), E(xact), R(egex);
flags "@" for an exception, "!" for $important.
"""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from familydns.blocklists import formats
from familydns.blocklists.domains import DomainError, normalize_domain
from familydns.blocklists.formats import (
    FORMATS,
    NameRun,
    ParsedRule,
    ParseResult,
    ParseTally,
    RuleKind,
    iter_rules,
    iter_stream,
    parse_list,
    sniff_format,
)
from familydns.blocklists.regexes import RegexError, compile_rule_regex

UT1 = Path("/work/shared/data/ut1")
Summary = tuple[int, str, str, str]


def summary(result: ParseResult) -> list[Summary]:
    return [
        (
            rule.line,
            rule.pattern,
            rule.kind.value[0].upper(),
            ("@" if rule.exception else "") + ("!" if rule.important else ""),
        )
        for rule in result.rules
    ]


def bad_lines(result: ParseResult) -> list[tuple[int, str]]:
    return [(bad.line, bad.reason) for bad in result.bad]


HOSTS = (
    "# StevenBlack-style header\r\n"
    "127.0.0.1 localhost\r\n"
    "127.0.0.1 localhost.localdomain\r\n"
    "255.255.255.255 broadcasthost\r\n"
    "::1 localhost ip6-localhost ip6-loopback\r\n"
    "0.0.0.0 0.0.0.0\r\n"
    "\r\n"
    "0.0.0.0 ads.example.com\r\n"
    "0.0.0.0 Tracker.Example.NET. metrics.example.org # two names, one comment\r\n"
    "127.0.0.1\tTABBED.example.com\r\n"
    ":: v6.example.com\r\n"
    "0.0.0.0 bad_label!.example.com\r\n"
    "0.0.0.0 intranet\r\n"
    "0.0.0.0\r\n"
)

ADBLOCK = (
    "[Adblock Plus 2.0]\n"
    "! Title: sample\n"
    "||ads.example.com^\n"
    "|exact.example.com^\n"
    "@@||ok.example.com^\n"
    "||important.example.com^$important\n"
    "@@||vip.example.com^$important\n"
    "||off.example.com^$badfilter\n"
    "||aaaa.example.com^$dnstype=AAAA\n"
    "||rewrite.example.com^$dnsrewrite=1.2.3.4\n"
    "||deny.example.com^$denyallow=a.com\n"
    "||client.example.com^$client=192.168.1.2\n"
    "||tag.example.com^$ctag=device_pc\n"
    "||third.example.com^$third-party\n"
    "example.com##.banner\n"
    "example.com#@#.banner\n"
    "||example.com/ads/banner.js\n"
    "||ports.example.com:8080^\n"
    "/^ad[0-9]*\\./\n"
    "@@/^allowed\\./$important\n"
    "||wild*.example.com^\n"
    "||*.star.example.com^\n"
    "plain.example.org\n"
    "||UPPER.Example.COM^|\n"
    "||192.168.0.1^\n"
    "||^\n"
)

RPZ = (
    "$TTL 300\n"
    "$ORIGIN rpz.example.\n"
    "@ IN SOA localhost. admin.localhost. (\n"
    "        2024010101 ; serial\n"
    "        3600 600 86400 300 )\n"
    "  IN NS localhost.\n"
    "; blocks\n"
    "bad.example.com CNAME .\n"
    "*.bad.example.com CNAME .\n"
    "nodata.example.com 300 IN CNAME *.\n"
    "drop.example.com CNAME rpz-drop.\n"
    "ok.example.com CNAME rpz-passthru.\n"
    "abs.example.com.rpz.example. CNAME .\n"
    "outside.example.net. CNAME .\n"
    "www.google.com CNAME forcesafesearch.google.com.\n"
    "zero.example.com A 0.0.0.0\n"
    "real.example.com A 192.0.2.1\n"
    "32.1.0.0.127.rpz-ip CNAME .\n"
)

DNSMASQ = (
    "# dnsmasq blocklist\n"
    "address=/ads.example.com/0.0.0.0\n"
    "address=/nx.example.com/\n"
    "address=/a.example.com/b.example.com/#\n"
    "address=/v6.example.com/::\n"
    "local=/local.example.com/\n"
    "server=/srv.example.com/\n"
    "server=/fwd.example.com/1.2.3.4\n"
    "server=/std.example.com/#\n"
    "address=/redirect.example.com/192.0.2.10\n"
    "address=/#/0.0.0.0\n"
    "server=9.9.9.9\n"
    "no-resolv\n"
    "address=/bad..example.com/0.0.0.0\n"
)

DOMAINS = (
    "\ufeff# UT1-style list\n"
    "example.com\n"
    "*.wild.example.com\n"
    ".dotted.example.com\n"
    "UPPER.Example.COM.\n"
    "bücher.de\n"
    "with-comment.example.com # why\n"
    "under_score.example.com\n"
    "/^tracker[0-9]+\\./\n"
    "1.2.3.4\n"
    "/\n"
    "*\n"
    ".\n"
    "com\n"
    "a..b.com\n"
    "two words.com\n"
    f"{'x' * 64}.com\n"
    "0.0.0.0 hosts-line.example.com\n"
)

REGEX = (
    "# Pi-hole style regex list\n"
    "^ad[s]?\\.\n"
    "/^track(ing)?\\./\n"
    "(\\.|^)doubleclick\\.net$\n"
    "^ads\\.;querytype=A\n"
    "(a+)+$\n"
    "[unclosed\n"
    f"{'a' * 1001}\n"
)

CASES = [
    pytest.param(
        "hosts",
        HOSTS,
        "subtree",
        [
            (8, "ads.example.com", "E", ""),
            (9, "tracker.example.net", "E", ""),
            (9, "metrics.example.org", "E", ""),
            (10, "tabbed.example.com", "E", ""),
            (11, "v6.example.com", "E", ""),
        ],
        [
            (12, "invalid character in label 'bad_label!'"),
            (13, "no dot: a bare TLD or host name"),
            (14, "address without a host name"),
        ],
        7,
        id="hosts",
    ),
    pytest.param(
        "adblock",
        ADBLOCK,
        "exact",
        [
            (3, "ads.example.com", "S", ""),
            (4, "exact.example.com", "E", ""),
            (5, "ok.example.com", "S", "@"),
            (6, "important.example.com", "S", "!"),
            (7, "vip.example.com", "S", "@!"),
            (19, "^ad[0-9]*\\.", "R", ""),
            (20, "^allowed\\.", "R", "@!"),
            (22, "star.example.com", "S", ""),
            (23, "plain.example.org", "S", ""),
            (24, "upper.example.com", "S", ""),
        ],
        [(25, "IP address, not a domain name"), (26, "empty pattern")],
        14,
        id="adblock",
    ),
    pytest.param(
        "rpz",
        RPZ,
        "subtree",
        [
            (8, "bad.example.com", "E", ""),
            (9, "bad.example.com", "S", ""),
            (10, "nodata.example.com", "E", ""),
            (11, "drop.example.com", "E", ""),
            (12, "ok.example.com", "E", "@"),
            (13, "abs.example.com", "E", ""),
            (16, "zero.example.com", "E", ""),
        ],
        [(14, "owner outside the zone rpz.example")],
        10,
        id="rpz",
    ),
    pytest.param(
        "dnsmasq",
        DNSMASQ,
        "exact",
        [
            (2, "ads.example.com", "S", ""),
            (3, "nx.example.com", "S", ""),
            (4, "a.example.com", "S", ""),
            (4, "b.example.com", "S", ""),
            (5, "v6.example.com", "S", ""),
            (6, "local.example.com", "S", ""),
            (7, "srv.example.com", "S", ""),
        ],
        [(11, "wildcard for every domain"), (14, "empty label")],
        6,
        id="dnsmasq",
    ),
    pytest.param(
        "domains",
        DOMAINS,
        "exact",
        [
            (2, "example.com", "E", ""),
            (3, "wild.example.com", "S", ""),
            (4, "dotted.example.com", "S", ""),
            (5, "upper.example.com", "E", ""),
            (6, "xn--bcher-kva.de", "E", ""),
            (7, "with-comment.example.com", "E", ""),
            (8, "under_score.example.com", "E", ""),
            (9, "^tracker[0-9]+\\.", "R", ""),
            (18, "hosts-line.example.com", "E", ""),
        ],
        [
            (10, "IP address, not a domain name"),
            (11, "not a domain name"),
            (12, "not a domain name"),
            (13, "not a domain name"),
            (14, "no dot: a bare TLD or host name"),
            (15, "empty label"),
            (16, "unexpected text after the domain"),
            (17, "label longer than 63 characters"),
        ],
        1,
        id="domains-exact",
    ),
    pytest.param(
        "wildcard",
        "*.a.example.com\nb.example.com\n",
        "subtree",
        [(1, "a.example.com", "S", ""), (2, "b.example.com", "S", "")],
        [],
        0,
        id="wildcard",
    ),
    pytest.param(
        "regex",
        REGEX,
        "subtree",
        [
            (2, "^ad[s]?\\.", "R", ""),
            (3, "^track(ing)?\\.", "R", ""),
            (4, "(\\.|^)doubleclick\\.net$", "R", ""),
        ],
        [
            (6, "nested repetition such as (a+)+ can backtrack catastrophically"),
            (7, "invalid regex: unterminated character set at position 0"),
            (8, "regex longer than 1000 characters"),
        ],
        2,
        id="regex",
    ),
]


@pytest.mark.parametrize(("fmt", "text", "scope", "rules", "bad", "skipped"), CASES)
def test_format_semantics(
    fmt: str,
    text: str,
    scope: str,
    rules: list[Summary],
    bad: list[tuple[int, str]],
    skipped: int,
) -> None:
    result = parse_list(text, fmt, "sample", scope)
    assert summary(result) == rules
    assert bad_lines(result) == bad
    assert result.skipped == skipped
    assert {b.source for b in result.bad} <= {"sample"}


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("hosts", HOSTS),
        ("adblock", ADBLOCK),
        ("rpz", RPZ),
        ("dnsmasq", DNSMASQ),
        ("domains", DOMAINS.replace("0.0.0.0 hosts-line.example.com\n", "")),
    ],
)
def test_auto_detects_each_sample(fmt: str, text: str) -> None:
    assert sniff_format(io.StringIO(text).readlines()) == fmt
    assert parse_list(text, "auto", "s") == parse_list(text, fmt, "s")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (["# comment", "0.0.0.0 a.com"], "hosts"),
        (["127.0.0.1 localhost"], "hosts"),
        (["::1 localhost"], "hosts"),
        (["! comment", "||a.com^"], "adblock"),
        (["[Adblock Plus 2.0]"], "adblock"),
        (["@@||a.com^"], "adblock"),
        (["address=/a.com/0.0.0.0"], "dnsmasq"),
        (["server=/a.com/"], "dnsmasq"),
        (["local=/a.com/"], "dnsmasq"),
        (["$TTL 3600"], "rpz"),
        (["@ IN SOA ns. admin. 1 2 3 4 5"], "rpz"),
        (["a.com CNAME ."], "rpz"),
        (["a.com", "*.b.com", "/^ads\\./"], "domains"),
        ([], "domains"),
    ],
)
def test_sniff_format(head: list[str], expected: str) -> None:
    assert sniff_format(head) == expected


@pytest.mark.parametrize(
    ("scope", "kind"), [("subtree", RuleKind.SUBTREE), ("exact", RuleKind.EXACT)]
)
def test_scope_decides_plain_domain_kind(scope: str, kind: RuleKind) -> None:
    (rule,) = parse_list("example.com\n", "domains", "s", scope).rules
    assert rule.kind is kind


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("a.com\r\nb.com\r\n", [1, 2]),
        ("a.com\rb.com\r", [1, 2]),
        ("\ufeffa.com\nb.com", [1, 2]),
        ("\n\n# c\nb.com\n", [4]),
    ],
)
def test_line_numbers_survive_line_endings_and_bom(text: str, lines: list[int]) -> None:
    assert [rule.line for rule in parse_list(text, "domains", "s").rules] == lines


def test_bad_line_text_is_truncated() -> None:
    (bad,) = parse_list("x" * 300 + "\n", "domains", "src").bad
    assert bad.source == "src" and bad.line == 1
    assert len(bad.text) <= 80 and bad.text.endswith("...")


@pytest.mark.parametrize(("fmt", "scope"), [("csv", "subtree"), ("domains", "sub")])
def test_unknown_format_or_scope_is_a_config_error(fmt: str, scope: str) -> None:
    with pytest.raises(ValueError):
        parse_list("a.com", fmt, "s", scope)


def test_iter_rules_streams_and_counts_into_a_tally() -> None:
    tally = ParseTally("s", keep_bad=1)
    lines = iter(["# c\n", "a.com\n", "bad\n", "worse\n", "b.com\n"])
    rules = iter_rules(lines, "domains", "s", "subtree", tally)
    assert next(rules).pattern == "a.com"
    assert [rule.pattern for rule in rules] == ["b.com"]
    assert (tally.bad_count, len(tally.bad), tally.skipped) == (2, 1, 1)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM.", "example.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("яндекс.рф", "xn--d1acpjx3f.xn--p1ai"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("1e100.net", "1e100.net"),
        ("example.xn--p1ai", "example.xn--p1ai"),
        (".".join(["a" * 63] * 3) + ".com", ".".join(["a" * 63] * 3) + ".com"),
    ],
)
def test_normalize_domain_accepts(token: str, expected: str) -> None:
    assert normalize_domain(token) == expected


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "not a domain name"),
        ("/", "not a domain name"),
        ("*", "not a domain name"),
        (".", "not a domain name"),
        ("a.com/path", "not a domain name"),
        ("com", "no dot"),
        ("1.2.3.4", "IP address"),
        ("2001:db8::1", "IP address"),
        ("a..com", "empty label"),
        ("a" * 64 + ".com", "label longer than 63"),
        (".".join(["a" * 63] * 4) + ".com", "longer than 253"),
        ("a b.com", "invalid character"),
        ("*.a.com", "invalid character"),
        ("a.123", "numeric top-level label"),
        ("bad\ufffd.com", "undecodable bytes"),
        ("\u200b.com", "invalid internationalised name"),
    ],
)
def test_normalize_domain_rejects_with_reason(token: str, reason: str) -> None:
    with pytest.raises(DomainError, match=reason.replace("(", r"\(")):
        normalize_domain(token)


@pytest.mark.parametrize(
    "pattern",
    ["^ads?\\.", "(\\.|^)tracker\\.", "^(.+[_.-])?ad[sxv]?[0-9]*[_.-]", "(www\\.)?x\\.com$"],
)
def test_regex_vetting_accepts_list_style_patterns(pattern: str) -> None:
    assert compile_rule_regex(pattern).pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a+)+$", "nested repetition"),
        ("(a|aa)*b", "nested repetition"),
        ("(x{2,})*", "nested repetition"),
        ("((ab)*c)+", "nested repetition"),
        (".*a.*b.*c.*d.*e", "more than 4 unbounded"),
        ("a" * 1001, "longer than 1000"),
        ("(", "invalid regex"),
        ("", "empty regex"),
    ],
)
def test_regex_vetting_rejects(pattern: str, reason: str) -> None:
    with pytest.raises(RegexError, match=reason):
        compile_rule_regex(pattern)


@settings(max_examples=150, deadline=None)
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    lines=st.lists(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                [
                    "||a.com^",
                    "0.0.0.0 b.com",
                    "address=/c.com/",
                    "d.com CNAME .",
                    "$TTL 1",
                    "(",
                    ")",
                    "@@",
                    "||",
                    "$",
                    "/",
                    "//",
                    "*.",
                    ".",
                    "#",
                    "!",
                    ";",
                    "\r",
                    "\ufeff",
                ]
            ),
        ),
        max_size=20,
    ),
)
def test_fuzz_parsers_never_raise_and_only_emit_valid_rules(fmt: str, lines: list[str]) -> None:
    text = "\n".join(lines)
    result = parse_list(text, fmt, "fuzz")
    line_count = max(1, len(io.StringIO(text, newline=None).readlines()))
    for rule in result.rules:
        assert 1 <= rule.line <= line_count
        if rule.kind is RuleKind.REGEX:
            compile_rule_regex(rule.pattern)
        else:
            assert normalize_domain(rule.pattern) == rule.pattern
    for bad in result.bad:
        assert bad.source == "fuzz" and 1 <= bad.line <= line_count and bad.reason


@pytest.mark.parametrize("category", ["gambling", "dating", "doh", "vpn", "sect"])
def test_ut1_lists_parse_every_line(category: str) -> None:
    path = UT1 / category / "domains"
    if not path.exists():
        pytest.skip("UT1 sample data not available")
    text = path.read_text(encoding="utf-8")
    meaningful = [line for line in text.splitlines() if line.strip() and line[0] != "#"]
    result = parse_list(text, "auto", f"ut1-{category}")
    assert len(result.rules) == len(meaningful) - len(result.bad)
    assert all(bad.reason == "IP address, not a domain name" for bad in result.bad)
    assert all(rule.kind is RuleKind.SUBTREE for rule in result.rules)


# --- the bulk path (iter_stream, used by parse_list and the loader) ----------------------
#
# The reference is iter_rules over the same lines, one ParsedRule per line: the bulk path
# must give exactly its rules, line numbers, bad lines and skipped count.


def line_by_line(text: str, fmt: str, scope: str = "subtree") -> ParseResult:
    tally = ParseTally("s")
    rules = tuple(iter_rules(io.StringIO(text, newline=None), fmt, "s", scope, tally))
    return ParseResult(rules, tuple(tally.bad), tally.skipped)


PLAIN_LINES = ["a.com", "b.example.net", "c.d.example.org", "x-1.example.co.uk", "_srv.a.io"]
TRICKY_LINES = [
    "",
    "   ",
    "\t",
    "# comment",
    "! comment",
    "[Adblock Plus 2.0]",
    "UPPER.Example.COM",
    "trailing.dot.com.",
    "  padded.example.com  ",
    "bücher.example",
    "BÜCHER.example",
    "xn--bcher-kva.example",
    "exam\u212aple.com",  # KELVIN SIGN: lowercases to an ASCII k
    "\u0130stanbul.example",  # lowercases to two code points
    "\ufeffbom.example.com",
    "\ufffd.example.com",
    "bad_label!.example.com",
    "intranet",
    "*.wild.example.com",
    ".dot.example.com",
    "a..b.com",
    "-lead.example.com",
    "num.123",
    "x.under_tld",
    "tab\there.com",
    "v\x0btab.example.com",
    "line\u2028sep.example.com",
    "0.0.0.0 hosts.example.com",
    "0.0.0.0\tTABBED.Example.com\t",
    "  0.0.0.0 lead.example.com",
    "127.0.0.1 localhost",
    "0.0.0.0 localhost.localdomain",
    "0.0.0.0 LocalHost.LocalDomain  ",
    "::1 ip6.example.com",
    ":: v6.example.com",
    "0.0.0.0 a.com b.com",
    "0.0.0.0 a.com # comment",
    "0.0.0.0",
    "1.2.3.4",
    "1.2.3.4 other-address.example.com",
    "/^ads?\\./",
    "inline.example.com # comment",
    "||ads.example.com^",
    "@@||ok.example.com^",
    "address=/x.example.com/0.0.0.0",
    "bad.example.com CNAME .",
    "$TTL 300",
    "x" * 300,
    "l" * 63 + ".com",
    "l" * 64 + ".com",
    "a." * 125 + "com",  # 253 characters: the longest name
    "a." * 125 + "coms",
    "0.0.0.0 " + "a." * 125 + "com",
    "0.0.0.0 " + "a." * 125 + "coms",
    "tld." + "c" * 63,
    "tld." + "c" * 64,
]
ENDINGS = ["\n", "\r\n", "\r"]


def join(lines: list[str], endings: list[str], bom: str = "", final: bool = True) -> str:
    text = "".join(line + ending for line, ending in zip(lines, endings, strict=True))
    if not final and endings:
        text = text[: -len(endings[-1])]
    return bom + text


MESSY = join(
    [line for pair in zip(TRICKY_LINES, PLAIN_LINES * 20) for line in pair],
    ["\r\n"] * (2 * len(TRICKY_LINES)),
    bom="\ufeff",
)


@pytest.mark.parametrize("block", [1, 7, 64, formats.BLOCK_CHARS])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_bulk_path_gives_the_rules_of_the_line_by_line_path(fmt: str, block: int) -> None:
    with mock.patch.object(formats, "BLOCK_CHARS", block):
        assert parse_list(MESSY, fmt, "s") == line_by_line(MESSY, fmt)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.sampled_from(TRICKY_LINES) | st.sampled_from(PLAIN_LINES), max_size=30),
    endings=st.lists(st.sampled_from(ENDINGS), min_size=30, max_size=30),
    bom=st.sampled_from(["", "\ufeff", "\ufeff\ufeff"]),
    final=st.booleans(),
    fmt=st.sampled_from(sorted(FORMATS)),
    scope=st.sampled_from(["subtree", "exact"]),
    block=st.sampled_from([1, 2, 3, 5, 16, formats.BLOCK_CHARS]),
)
def test_bulk_path_matches_line_by_line_on_any_mix(
    lines: list[str],
    endings: list[str],
    bom: str,
    final: bool,
    fmt: str,
    scope: str,
    block: int,
) -> None:
    text = join(lines, endings[: len(lines)], bom, final)
    with mock.patch.object(formats, "BLOCK_CHARS", block):
        assert parse_list(text, fmt, "s", scope) == line_by_line(text, fmt, scope)


@pytest.mark.parametrize(
    "text",
    ["", "\ufeff", "\ufeff\ufeff", "\ufeff\n", "\n", "\r", "a.com", "\ufeff\ufeffa.com\r\n"],
)
@pytest.mark.parametrize("fmt", ["domains", "hosts", "rpz", "auto"])
def test_bulk_path_edge_texts(text: str, fmt: str) -> None:
    assert parse_list(text, fmt, "s") == line_by_line(text, fmt)


S, E = RuleKind.SUBTREE, RuleKind.EXACT


@pytest.mark.parametrize(
    ("fmt", "text", "items"),
    [
        (
            "domains",
            "a.com\nB.Example.com\n# note\nc.com.\nd.com\n",
            [
                NameRun((b"a.com", b"b.example.com"), S, 1),
                ParsedRule("c.com", S, False, False, 4),
                NameRun((b"d.com",), S, 5),
            ],
        ),
        (
            "hosts",
            "# h\n0.0.0.0 a.com\n127.0.0.1\tB.com \n0.0.0.0 localhost.localdomain\n:: c.com",
            [
                NameRun((b"a.com", b"b.com"), E, 2),
                ParsedRule("c.com", E, False, False, 5),  # no newline: read line by line
            ],
        ),
        ("auto", "0.0.0.0 a.com\n", [NameRun((b"a.com",), E, 1)]),
        ("adblock", "||a.com^\n", [ParsedRule("a.com", S, False, False, 1)]),
    ],
)
def test_plain_lines_come_in_bulk_as_name_runs(
    fmt: str, text: str, items: list[NameRun | ParsedRule]
) -> None:
    assert list(iter_stream(io.StringIO(text, newline=None), fmt, "s")) == items


def test_a_name_run_expands_to_its_rules() -> None:
    run = NameRun((b"a.com", b"b.com"), E, 7)
    assert list(run.rules()) == [
        ParsedRule("a.com", E, False, False, 7),
        ParsedRule("b.com", E, False, False, 8),
    ]


def test_iter_stream_rejects_unknown_format_at_once() -> None:
    with pytest.raises(ValueError):
        iter_stream(io.StringIO("a.com"), "csv", "s")


@pytest.mark.parametrize("category", ["gambling", "dating", "doh"])
@pytest.mark.parametrize("fmt", ["auto", "domains", "hosts"])
def test_ut1_lists_parse_the_same_in_bulk(category: str, fmt: str) -> None:
    path = UT1 / category / "domains"
    if not path.exists():
        pytest.skip("UT1 sample data not available")
    text = path.read_text(encoding="utf-8")
    assert parse_list(text, fmt, "s") == line_by_line(text, fmt)
