"""DNS rebinding protection, sans-IO: which addresses are private, and the addresses an
HTTPS/SVCB record hints at.

A public name answering with a home-network address lets a web page reach the router or
the NAS from inside the child's browser (DNS rebinding). Unbound's ``private-address``,
dnsmasq's ``--stop-dns-rebind`` and Blocky's ``rebindingProtection`` refuse such answers;
familydns does too for protected profiles. HTTPS and SVCB records carry address hints
that browsers use like A/AAAA records, so their hints are judged as well.
"""

from __future__ import annotations

import ipaddress
import struct
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

_MAPPED_HIGH = 0xFFFF
"""The top 96 bits of ``::ffff:0:0/96``: the IPv4-mapped addresses."""
_NAT64_HIGH = int(ipaddress.IPv6Address("64:ff9b::")) >> 32
"""RFC 6052 well-known prefix 64:ff9b::/96: the last 32 bits are an IPv4 address a NAT64
gateway reaches, so ``64:ff9b::c0a8:10a`` is 192.168.1.10 to a host behind one."""
_ULA_TOP7 = 0b1111110         # fc00::/7, RFC 4193
_LINK_LOCAL_TOP10 = 0b1111111010  # fe80::/10

SVC_IPV4HINT = 4
SVC_IPV6HINT = 6


def is_private(address: str) -> bool:
    """Whether ``address`` points into a home or host network (raises ValueError when it
    is not an IP address).

    Covers RFC 1918, loopback, link-local, unspecified, CGNAT and ULA, and the same
    ranges reached through IPv4-mapped IPv6 (``::ffff:192.168.1.10``) or the NAT64
    well-known prefix, which a browser connects to exactly like the plain IPv4 address.
    Runs once per address of every upstream answer, so it works on integers from
    ``inet_pton`` (under 1 us) rather than ``ipaddress`` objects (about 10 us): a 64 KB
    answer can carry 16,000 addresses.
    """
    text = address.partition("%")[0]
    try:
        if ":" not in text:
            return _private_v4(int.from_bytes(inet_pton(AF_INET, text), "big"))
        value = int.from_bytes(inet_pton(AF_INET6, text), "big")
    except OSError:
        raise ValueError(f"not an IP address: {address!r}") from None
    high = value >> 32
    if high == _MAPPED_HIGH or high == _NAT64_HIGH:
        return _private_v4(value & 0xFFFFFFFF)
    return (value <= 1                                   # :: and ::1
            or value >> 121 == _ULA_TOP7
            or value >> 118 == _LINK_LOCAL_TOP10)


def _private_v4(value: int) -> bool:
    """0/8 ("this network"; 0.0.0.0 reaches the host itself on Linux), 10/8, 127/8,
    100.64/10 (CGNAT, RFC 6598), 169.254/16, 172.16/12, 192.168/16."""
    first, second = value >> 24, (value >> 16) & 0xFF
    if first in (0, 10, 127):
        return True
    if first == 100:
        return 64 <= second < 128
    if first == 172:
        return 16 <= second < 32
    return (first, second) in ((169, 254), (192, 168))


def svcb_hints(rdata: bytes) -> tuple[str, ...]:
    """The ipv4hint and ipv6hint addresses in HTTPS/SVCB RDATA (RFC 9460), in order.

    RDATA is SvcPriority (u16), TargetName (uncompressed), then SvcParams as
    key (u16), length (u16), value. Malformed input never raises: parsing stops where
    the data stops making sense and the hints read so far are returned, so a broken
    record cannot hide the hints before the damage. A compressed target name (which RFC
    9460 forbids) is stepped over rather than ending the parse, for the same reason.
    Hints are read from every occurrence of the keys, in whatever order they come, and
    spelled as ``inet_ntop`` does (``::ffff:192.168.1.10``), like wire's addresses.
    """
    data = bytes(rdata)
    limit = len(data)
    off = _skip_target(data, 2, limit) if limit >= 2 else None
    hints: list[str] = []
    while off is not None and off + 4 <= limit:
        key, length = struct.unpack_from("!HH", data, off)
        off += 4
        end = min(off + length, limit)
        if key == SVC_IPV4HINT:
            hints.extend(inet_ntop(AF_INET, data[i:i + 4]) for i in range(off, end - 3, 4))
        elif key == SVC_IPV6HINT:
            hints.extend(inet_ntop(AF_INET6, data[i:i + 16]) for i in range(off, end - 15, 16))
        off += length
    return tuple(hints)


def _skip_target(data: bytes, off: int, limit: int) -> int | None:
    """Offset after the target name, or None when it runs past the end."""
    while off < limit:
        n = data[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2 if off + 2 <= limit else None
        if n > 63:
            return None
        off += 1 + n
    return None
