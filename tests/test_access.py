"""Access list and per-client rate limit: pure, table-driven, time passed in by hand."""

from __future__ import annotations

import pytest

from familydns.config import DEFAULT_ALLOW_FROM
from familydns.resolver import access
from familydns.resolver.access import AccessList, RateLimiter

DEFAULT = AccessList.build(DEFAULT_ALLOW_FROM)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("172.32.0.1", False),
        ("192.168.1.2", True),
        ("192.169.1.2", False),
        ("100.64.0.1", True),        # CGNAT: the ISP's router hands these out
        ("100.128.0.1", False),
        ("169.254.10.1", True),
        ("8.8.8.8", False),
        ("203.0.113.5", False),
        ("::1", True),
        ("::2", False),
        ("fe80::1", True),
        ("fe80::1%eth0", True),       # link-local with its zone, as sockets report it
        ("fe80::1%2", True),
        ("fd12:3456::1", True),       # ULA
        ("2001:db8::1", False),
        ("::ffff:192.168.1.2", True),  # IPv4-mapped: judged as IPv4
        ("::ffff:8.8.8.8", False),
        ("::ffff:127.0.0.1", True),
        ("", False),                  # not an address: never allowed
        ("localhost", False),
        ("?", False),
        ("999.1.1.1", False),
    ],
)
def test_default_access_allows_loopback_and_private_ranges_only(address: str,
                                                                allowed: bool) -> None:
    assert DEFAULT.allowed(address) is allowed


@pytest.mark.parametrize(
    ("networks", "address", "allowed"),
    [
        (["127.0.0.2/32"], "127.0.0.2", True),
        (["127.0.0.2/32"], "127.0.0.1", False),
        (["127.0.0.2"], "127.0.0.2", True),               # a bare address is a /32
        (["10.0.0.0/8"], "::ffff:10.9.9.9", True),
        (["::ffff:10.0.0.0/104"], "10.9.9.9", True),       # mapped network means IPv4
        (["::ffff:10.0.0.0/104"], "11.0.0.1", False),
        (["fe80::/10"], "fe80::abcd%wlan0", True),
        (["fe80::%eth0/10"], "fe80::abcd", True),          # zone in the config ignored
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "192.0.2.1", False),           # families never mix
        (["0.0.0.0/0"], "198.51.100.7", True),
        (["::/0"], "2001:db8::1", True),
        (["::/0"], "198.51.100.7", False),
        ([], "127.0.0.1", False),                          # empty: nobody (fail closed)
        (["192.168.1.77/24"], "192.168.1.1", True),        # host bits are forgiven
    ],
)
def test_configured_networks(networks: list[str], address: str, allowed: bool) -> None:
    assert AccessList.build(networks).allowed(address) is allowed


def test_a_bad_network_is_rejected_at_build() -> None:
    with pytest.raises(ValueError):
        AccessList.build(["10.0.0.0/33"])


def test_verdicts_are_remembered_but_the_memo_stays_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "MEMO_MAX", 8)
    acl = AccessList.build(["10.0.0.0/8"])
    for i in range(100):
        assert acl.allowed(f"10.0.0.{i}")
        assert not acl.allowed(f"11.0.0.{i}")
        assert len(acl._memo) <= 8
    assert acl.allowed("10.0.0.1") and not acl.allowed("11.0.0.1")


def test_building_is_the_same_for_duplicates() -> None:
    assert AccessList.build(["10.0.0.0/8", "10.1.0.0/8"]) == AccessList.build(["10.0.0.0/8"])


# ---------------------------------------------------------------- rate limiter


@pytest.mark.parametrize(
    ("rate", "burst", "times", "expected"),
    [
        # a burst is allowed at once, then the bucket is empty
        (5, 5, [0.0] * 7, [True] * 5 + [False] * 2),
        # one token comes back every 1/rate seconds
        (5, 5, [0.0] * 5 + [0.1, 0.2, 0.2, 0.4], [True] * 5 + [False, True, False, True]),
        # a long pause refills to the burst, never beyond it
        (2, 3, [0.0] * 3 + [100.0] * 4, [True] * 3 + [True] * 3 + [False]),
        # a burst of 1 with a slow rate: one query per 10 s
        (0.1, 1, [0.0, 5.0, 10.0, 10.0], [True, False, True, False]),
        # rate 0: limiting off, whatever the burst
        (0, 1, [0.0] * 50, [True] * 50),
        # a clock stepping backwards refills nothing (and does not go negative)
        (1, 2, [10.0, 10.0, 5.0, 9.0, 11.0], [True, True, False, False, True]),
    ],
)
def test_token_bucket(rate: float, burst: float, times: list[float],
                      expected: list[bool]) -> None:
    limiter = RateLimiter(rate, burst)
    assert [limiter.allow("192.168.1.5", t) for t in times] == expected


def test_each_client_has_its_own_bucket() -> None:
    limiter = RateLimiter(1, 2)
    assert [limiter.allow("10.0.0.1", 0.0) for _ in range(3)] == [True, True, False]
    assert [limiter.allow("10.0.0.2", 0.0) for _ in range(3)] == [True, True, False]


def test_a_full_table_forgets_the_client_idle_the_longest() -> None:
    limiter = RateLimiter(0.01, 1, max_clients=3)
    for t, client in enumerate(["a", "b", "c"]):
        assert limiter.allow(client, float(t))
    assert not limiter.allow("a", 3.5)       # "a" is now the most recently used
    assert limiter.allow("d", 4.0)           # evicts "b", idle the longest
    assert len(limiter) == 3
    assert not limiter.allow("c", 4.0)       # "c" kept its (empty) bucket
    assert limiter.allow("b", 4.0)           # "b" starts afresh (a full bucket)


def test_a_flood_of_sources_cannot_grow_the_table() -> None:
    limiter = RateLimiter(10, 20, max_clients=100)
    for i in range(10_000):
        limiter.allow(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", i / 1000)
    assert len(limiter) == 100


@pytest.mark.parametrize(("rate", "burst", "clients"),
                         [(-1, 5, 10), (1, 0.5, 10), (1, 5, 0)])
def test_nonsense_settings_are_refused(rate: float, burst: float, clients: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst, clients)
