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

from familydns.resolver.access import parse_address

_PRIVATE_V4 = tuple(
    (int(n.network_address), int(n.netmask))
    for n in map(ipaddress.IPv4Network, (
        "0.0.0.0/8",        # "this network"; 0.0.0.0 reaches the host itself on Linux
        "10.0.0.0/8",       # RFC 1918
        "100.64.0.0/10",    # CGNAT, RFC 6598
        "127.0.0.0/8",      # loopback
        "169.254.0.0/16",   # link-local
        "172.16.0.0/12",    # RFC 1918
        "192.168.0.0/16",   # RFC 1918
    ))
)
_PRIVATE_V6 = tuple(
    (int(n.network_address), int(n.netmask))
    for n in map(ipaddress.IPv6Network, (
        "::/128",           # unspecified
        "::1/128",          # loopback
        "fc00::/7",         # unique local, RFC 4193
        "fe80::/10",        # link-local
    ))
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052 well-known prefix: the last 32 bits are an IPv4 address a NAT64 gateway
reaches, so ``64:ff9b::c0a8:10a`` is 192.168.1.10 to a host behind one."""

SVC_IPV4HINT = 4
SVC_IPV6HINT = 6
_U16 = struct.Struct("!H")


def is_private(address: str) -> bool:
    """Whether ``address`` points into a home or host network (raises ValueError when it
    is not an IP address).

    Covers RFC 1918, loopback, link-local, unspecified, CGNAT and ULA, and the same
    ranges reached through IPv4-mapped IPv6 (``::ffff:192.168.1.10``) or the NAT64
    well-known prefix, which a browser connects to exactly like the plain IPv4 address.
    """
    ip = parse_address(address)
    if ip.version == 6:
        value = int(ip)
        if ip in _NAT64:
            return _private_v4(value & 0xFFFFFFFF)
        return any(value & mask == net for net, mask in _PRIVATE_V6)
    return _private_v4(int(ip))


def _private_v4(value: int) -> bool:
    return any(value & mask == net for net, mask in _PRIVATE_V4)


def svcb_hints(rdata: bytes) -> tuple[str, ...]:
    """The ipv4hint and ipv6hint addresses in HTTPS/SVCB RDATA (RFC 9460), in order.

    RDATA is SvcPriority (u16), TargetName (uncompressed), then SvcParams as
    key (u16), length (u16), value. Malformed input never raises: parsing stops where
    the data stops making sense and the hints read so far are returned, so a broken
    record cannot hide the hints before the damage. A compressed target name (which RFC
    9460 forbids) is stepped over rather than ending the parse, for the same reason.
    Hints are read from every occurrence of the keys, in whatever order they come.
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
            hints.extend(str(ipaddress.IPv4Address(data[i:i + 4]))
                         for i in range(off, end - 3, 4))
        elif key == SVC_IPV6HINT:
            hints.extend(str(ipaddress.IPv6Address(data[i:i + 16]))
                         for i in range(off, end - 15, 16))
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
