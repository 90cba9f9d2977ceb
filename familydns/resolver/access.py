"""Who may query, and how fast: the access list and the per-client rate limit.

Both sit on the hot path before any other work, so both are pure and O(1) per query in
the common case: the access list remembers its verdict per address, and the rate limiter
keeps one token bucket per address in an LRU-ordered table. Neither does I/O or reads a
clock: the caller passes ``now``, so tests drive time by hand.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

MEMO_MAX = 4096
"""Addresses whose verdict the access list remembers. A home has a few dozen devices;
when a scan of spoofed sources fills the memo it is simply emptied (one clear per 4096
new addresses keeps the amortised cost O(1) and the memory bounded)."""

_MAPPED_V4 = ipaddress.IPv6Network("::ffff:0:0/96")
_ZONE = re.compile(r"%[^/]*")


def parse_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a client really is: zone dropped, IPv4-mapped IPv6 as IPv4.

    ``fe80::1%eth0`` is link-local whatever the interface, and a dual-stack socket reports
    an IPv4 client as ``::ffff:192.168.1.2``; both must meet the same rules as their plain
    forms. Raises ValueError for anything that is not an IP address.
    """
    text = address.split("%", 1)[0]
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    net = ipaddress.ip_network(_ZONE.sub("", text), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED_V4):
        # ``::ffff:10.0.0.0/104`` is written by people who mean 10.0.0.0/8.
        low = int(net.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((low, net.prefixlen - 96))
    return net


@dataclass(frozen=True, slots=True)
class AccessList:
    """The networks allowed to query; everyone else is refused before any work.

    Build it once per config with :meth:`build`; ``allowed`` is then a dict lookup for
    every address seen before. An empty list allows nobody (fail closed), and a string
    that is not an address is never allowed.
    """

    v4: tuple[tuple[int, int], ...]
    v6: tuple[tuple[int, int], ...]
    _memo: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, networks: Iterable[str]) -> AccessList:
        """Precompile ``networks`` (CIDR or bare addresses); raises ValueError on a bad one."""
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for text in networks:
            net = _network(text)
            pair = (int(net.network_address), int(net.netmask))
            (v4 if net.version == 4 else v6).append(pair)
        return cls(tuple(dict.fromkeys(v4)), tuple(dict.fromkeys(v6)))

    def allowed(self, address: str) -> bool:
        verdict = self._memo.get(address)
        if verdict is None:
            verdict = self._judge(address)
            if len(self._memo) >= MEMO_MAX:
                self._memo.clear()
            self._memo[address] = verdict
        return verdict

    def _judge(self, address: str) -> bool:
        try:
            ip = parse_address(address)
        except ValueError:
            return False
        value = int(ip)
        networks = self.v4 if ip.version == 4 else self.v6
        return any(value & mask == net for net, mask in networks)


class RateLimiter:
    """A token bucket per client address: ``rate`` queries per second, bursts of ``burst``.

    ``allow`` is O(1): one dict lookup, a little arithmetic and an LRU move. The table
    holds at most ``max_clients`` buckets; when a new address arrives at a full table the
    bucket idle the longest is dropped. That forgets a client which has not asked for a
    while, and such a client's bucket would have refilled to ``burst`` anyway, so
    eviction never makes anyone stricter than the rule; a flood of spoofed sources can
    only recycle the table, not grow it. ``rate`` 0 switches limiting off.
    """

    __slots__ = ("_buckets", "burst", "max_clients", "rate")

    def __init__(self, rate: float, burst: float, max_clients: int = 65536) -> None:
        if rate < 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be >= 0, burst >= 1 and max_clients >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, address: str, now: float) -> bool:
        """Take one token from ``address``'s bucket; False when it is empty."""
        if self.rate == 0:
            return True
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)
            self._buckets[address] = [self.burst - 1.0, now]
            return True
        self._buckets.move_to_end(address)
        tokens, last = bucket
        if now > last:
            # A clock that steps backwards refills nothing rather than going negative.
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True
