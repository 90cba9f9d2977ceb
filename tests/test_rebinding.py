"""Rebinding protection's pure parts: private addresses and HTTPS/SVCB address hints."""

from __future__ import annotations

import ipaddress
import socket
import struct

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from familydns.resolver.rebinding import is_private, svcb_hints


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.0.0.1", True),
        ("10.255.255.255", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("172.15.255.255", False),
        ("172.32.0.0", False),
        ("192.168.1.10", True),
        ("192.167.1.10", False),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("169.254.169.254", True),     # the cloud metadata address: link-local
        ("0.0.0.0", True),
        ("0.1.2.3", True),             # "this network"
        ("100.64.0.1", True),          # CGNAT
        ("100.127.255.255", True),
        ("100.128.0.0", False),
        ("8.8.8.8", False),
        ("192.0.2.1", False),          # documentation ranges are public for this purpose
        ("::", True),
        ("::1", True),
        ("::2", False),
        ("fe80::1", True),
        ("fe80::1%eth0", True),
        ("febf::1", True),
        ("fec0::1", False),
        ("fc00::1", True),             # ULA
        ("fd00:1234::5", True),
        ("fe00::1", False),
        ("2001:db8::1", False),
        ("2606:4700::1111", False),
        ("::ffff:192.168.1.10", True),  # IPv4-mapped
        ("::ffff:127.0.0.1", True),
        ("::ffff:0.0.0.0", True),
        ("::ffff:8.8.8.8", False),
        ("64:ff9b::192.168.1.10", True),  # NAT64 well-known prefix
        ("64:ff9b::c0a8:10a", True),
        ("64:ff9b::10.1.1.1", True),
        ("64:ff9b::8.8.8.8", False),
        ("64:ff9b:1::c0a8:10a", False),   # outside the /96
    ],
)
def test_is_private(address: str, private: bool) -> None:
    assert is_private(address) is private


@pytest.mark.parametrize("text", ["", "router.lan", "192.168.1", "::g", "1.2.3.4/32"])
def test_is_private_rejects_what_is_not_an_address(text: str) -> None:
    with pytest.raises(ValueError):
        is_private(text)


PRIVATE_NETWORKS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "::/128", "::1/128", "fc00::/7", "fe80::/10")]


def oracle(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The definition, spelled with ipaddress: slow, obviously right."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return oracle(ip.ipv4_mapped)
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            return oracle(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return any(ip in net for net in PRIVATE_NETWORKS if net.version == ip.version)


interesting_v6 = st.one_of(
    st.ip_addresses(v=6),
    st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}")),
    st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address(f"64:ff9b::{a}")),
    st.ip_addresses(network="fe80::/10"), st.ip_addresses(network="fc00::/7"))
interesting_v4 = st.one_of(st.ip_addresses(v=4), *(
    st.ip_addresses(network=str(n)) for n in PRIVATE_NETWORKS if n.version == 4))


@given(st.one_of(interesting_v4, interesting_v6))
@settings(max_examples=500)
def test_is_private_agrees_with_its_definition_however_the_address_is_spelled(
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    spellings = {str(ip), ip.exploded}
    if ip.version == 6:
        spellings.add(socket.inet_ntop(socket.AF_INET6, ip.packed))
    for text in spellings:
        assert is_private(text) is oracle(ip), text


# ---------------------------------------------------------------- HTTPS / SVCB hints


def svcb(text: str, rdtype: str = "HTTPS") -> bytes:
    """RDATA wire bytes as a real upstream would send them (dnspython's encoder)."""
    rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)
    return rd.to_wire() or b""


@pytest.mark.parametrize(
    ("text", "hints"),
    [
        ("1 . alpn=h2 ipv4hint=10.0.0.1", ("10.0.0.1",)),
        ("1 svc.example.net. ipv4hint=192.0.2.1,10.0.0.1", ("192.0.2.1", "10.0.0.1")),
        ("1 . ipv6hint=::1,2001:db8::1", ("::1", "2001:db8::1")),
        ("1 . alpn=h3,h2 port=8443 ipv4hint=192.168.1.10 ipv6hint=fd00::1 key65000=x",
         ("192.168.1.10", "fd00::1")),
        ("1 . ipv6hint=::ffff:192.168.1.10", ("::ffff:192.168.1.10",)),
        ("1 . alpn=h2", ()),
        ("0 alias.example.net.", ()),      # AliasMode has no parameters
    ],
)
def test_hints_from_real_records(text: str, hints: tuple[str, ...]) -> None:
    assert svcb_hints(svcb(text)) == hints
    assert svcb_hints(svcb(text, "SVCB")) == hints


def params(*items: tuple[int, bytes]) -> bytes:
    return b"".join(struct.pack("!HH", key, len(value)) + value for key, value in items)


V4 = ipaddress.IPv4Address("10.0.0.1").packed
V4B = ipaddress.IPv4Address("192.0.2.7").packed


@pytest.mark.parametrize(
    ("rdata", "hints"),
    [
        (b"", ()),
        (b"\x00", ()),
        (b"\x00\x01", ()),                                     # no target name
        (b"\x00\x01\x03abc", ()),                              # target runs off the end
        (b"\x00\x01\x00" + params((4, V4)), ("10.0.0.1",)),
        # truncated in the middle of the second hint: the first still counts
        (b"\x00\x01\x00" + params((4, V4 + V4B))[:-2], ("10.0.0.1",)),
        # a value length past the end: the whole addresses present are read
        (b"\x00\x01\x00" + struct.pack("!HH", 4, 400) + V4 + V4B, ("10.0.0.1", "192.0.2.7")),
        # a hint length that is not a multiple of 4: whole addresses only
        (b"\x00\x01\x00" + params((4, V4 + b"\x01\x02")), ("10.0.0.1",)),
        # damage after the hints does not hide them
        (b"\x00\x01\x00" + params((4, V4)) + b"\xff", ("10.0.0.1",)),
        # keys out of order and repeated (forbidden, but read anyway)
        (b"\x00\x01\x00" + params((6, bytes(15) + b"\x01"), (4, V4), (4, V4B)),
         ("::1", "10.0.0.1", "192.0.2.7")),
        # a compressed target (forbidden by RFC 9460) is stepped over, not trusted
        (b"\x00\x01\xc0\x0c" + params((4, V4)), ("10.0.0.1",)),
        # a label length with reserved bits: the target cannot be read
        (b"\x00\x01\x80abc" + params((4, V4)), ()),
        (b"\x00\x01\x07example\x03com\x00" + params((1, b"\x02h2"), (4, V4)), ("10.0.0.1",)),
    ],
)
def test_hints_from_malformed_rdata(rdata: bytes, hints: tuple[str, ...]) -> None:
    assert svcb_hints(rdata) == hints


label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
target = st.one_of(st.just("."), st.lists(label, min_size=1, max_size=4).map(
    lambda parts: ".".join(parts) + "."))
v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)


@given(target=target, v4s=st.lists(v4, max_size=6), v6s=st.lists(v6, max_size=4),
       port=st.none() | st.integers(0, 65535), alpn=st.booleans())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hints_round_trip_through_a_real_encoder(target: str, v4s: list[str],
                                                 v6s: list[str], port: int | None,
                                                 alpn: bool) -> None:
    parts = ["1", target]
    if alpn:
        parts.append("alpn=h3,h2")
    if port is not None:
        parts.append(f"port={port}")
    if v4s:
        parts.append("ipv4hint=" + ",".join(v4s))
    if v6s:
        parts.append("ipv6hint=" + ",".join(v6s))
    expected = [ipaddress.ip_address(a) for a in v4s + v6s]
    assert list(map(ipaddress.ip_address, svcb_hints(svcb(" ".join(parts))))) == expected


@given(st.binary(max_size=600))
@settings(max_examples=500, deadline=None)
def test_any_bytes_give_addresses_or_nothing_never_an_exception(data: bytes) -> None:
    for hint in svcb_hints(data):
        ipaddress.ip_address(hint)


GOOD = svcb("1 . ipv4hint=10.0.0.1,10.0.0.2 ipv6hint=fd00::1")
FULL = ("10.0.0.1", "10.0.0.2", "fd00::1")


@given(st.integers(0, len(GOOD)))
def test_a_truncated_record_yields_a_prefix_of_its_hints(keep: int) -> None:
    assert FULL[:len(svcb_hints(GOOD[:keep]))] == svcb_hints(GOOD[:keep])


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_junk_after_a_record_cannot_hide_its_hints(tail: bytes) -> None:
    assert svcb_hints(GOOD + tail)[:len(FULL)] == FULL
