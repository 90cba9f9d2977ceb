"""Device lookup: client id > MAC > exact IP > longest CIDR > none, and validation."""

from __future__ import annotations

import re

import pytest

from familydns.config import DeviceConfig
from familydns.profiles.devices import (
    DeviceEntry,
    DeviceError,
    DeviceIndex,
    normalise_mac,
)
from familydns.resolver.identity import ClientIdentity

INDEX = DeviceIndex.build([
    DeviceEntry("tablet-id", DeviceConfig(client_id="Anna-Tablet")),
    DeviceEntry("by-mac", DeviceConfig(mac="AA-BB-CC-DD-EE-01")),
    DeviceEntry("exact", DeviceConfig(ip="192.168.1.10")),
    DeviceEntry("lan24", DeviceConfig(cidr="192.168.1.0/24")),
    DeviceEntry("lan16", DeviceConfig(cidr="192.168.0.0/16")),
    DeviceEntry("host32", DeviceConfig(cidr="192.168.1.77/32")),
    DeviceEntry("v6-exact", DeviceConfig(ip="2001:db8::10")),
    DeviceEntry("v6-64", DeviceConfig(cidr="2001:db8:0:1::/64")),
    DeviceEntry("v6-48", DeviceConfig(cidr="2001:db8::/48")),
    DeviceEntry("mapped", DeviceConfig(ip="::ffff:10.0.0.5")),
    DeviceEntry("link-local", DeviceConfig(ip="fe80::1")),
])


@pytest.mark.parametrize(
    ("client", "profile"),
    [
        # The most specific identifier wins, whatever else matches.
        (ClientIdentity("192.168.1.10", mac="aa:bb:cc:dd:ee:01", client_id="anna-tablet"),
         "tablet-id"),
        (ClientIdentity("192.168.1.10", mac="aa:bb:cc:dd:ee:01"), "by-mac"),
        (ClientIdentity("192.168.1.10", mac="AA:BB:CC:DD:EE:01"), "by-mac"),
        (ClientIdentity("192.168.1.10", mac="aa:bb:cc:dd:ee:99"), "exact"),
        (ClientIdentity("192.168.1.10", client_id="unknown"), "exact"),
        (ClientIdentity("192.168.1.11"), "lan24"),
        (ClientIdentity("192.168.1.77"), "host32"),
        (ClientIdentity("192.168.200.1"), "lan16"),
        (ClientIdentity("10.1.1.1"), None),
        # IPv6: exact, then the longest prefix.
        (ClientIdentity("2001:db8::10"), "v6-exact"),
        (ClientIdentity("2001:db8:0:1::99"), "v6-64"),
        (ClientIdentity("2001:db8:0:2::1"), "v6-48"),
        (ClientIdentity("2001:db9::1"), None),
        # IPv4-mapped IPv6 source addresses are the IPv4 address they carry.
        (ClientIdentity("::ffff:192.168.1.10"), "exact"),
        (ClientIdentity("::ffff:192.168.3.3"), "lan16"),
        (ClientIdentity("10.0.0.5"), "mapped"),
        (ClientIdentity("::ffff:10.0.0.5"), "mapped"),
        (ClientIdentity("fe80::1%eth0"), "link-local"),
        # An unparseable address is an unknown device (the default profile applies).
        (ClientIdentity("not-an-ip"), None),
    ],
)
def test_lookup_order(client: ClientIdentity, profile: str | None) -> None:
    assert INDEX.lookup(client) == profile


def test_an_empty_index_knows_nobody() -> None:
    assert DeviceIndex.empty().lookup(ClientIdentity("192.168.1.1", mac="aa:bb:cc:dd:ee:ff")) \
        is None


@pytest.mark.parametrize(
    ("text", "mac"),
    [("aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"), ("AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"),
     (" 00:1A:2b:3C:4d:5E ", "00:1a:2b:3c:4d:5e")],
)
def test_macs_are_normalised(text: str, mac: str) -> None:
    assert normalise_mac(text) == mac


@pytest.mark.parametrize("text", ["aa:bb:cc:dd:ee", "aa:bb-cc:dd:ee:ff", "gg:bb:cc:dd:ee:ff",
                                  "aabbccddeeff", "aa:bb:cc:dd:ee:ff:00"])
def test_bad_macs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad MAC address"):
        normalise_mac(text)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        (DeviceConfig(ip="192.168.1.300"), "bad ip '192.168.1.300'"),
        (DeviceConfig(ip="192.168.1.0/24"), "bad ip '192.168.1.0/24'"),
        (DeviceConfig(cidr="192.168.1.0/33"), "bad cidr '192.168.1.0/33'"),
        (DeviceConfig(mac="aa:bb"), "bad MAC address 'aa:bb'"),
        (DeviceConfig(name="laptop"),
         "needs exactly one of ip, cidr, mac or client_id (found none)"),
        (DeviceConfig(ip="192.168.1.2", mac="aa:bb:cc:dd:ee:ff"),
         "needs exactly one of ip, cidr, mac or client_id (found mac, ip)"),
    ],
)
def test_bad_devices_are_refused_with_their_path(device: DeviceConfig, message: str) -> None:
    with pytest.raises(DeviceError, match=re.escape(f"profiles[0].devices[2]: {message}")):
        DeviceIndex.build([DeviceEntry("anna", device, "profiles[0].devices[2]")])


@pytest.mark.parametrize(
    ("first", "second", "key"),
    [
        (DeviceConfig(ip="192.168.1.2"), DeviceConfig(ip="192.168.1.2"), "ip 192.168.1.2"),
        (DeviceConfig(ip="192.168.1.2"), DeviceConfig(ip="::ffff:192.168.1.2"),
         "ip 192.168.1.2"),
        (DeviceConfig(mac="aa:bb:cc:dd:ee:ff"), DeviceConfig(mac="AA-BB-CC-DD-EE-FF"),
         "mac aa:bb:cc:dd:ee:ff"),
        (DeviceConfig(cidr="10.0.0.0/8"), DeviceConfig(cidr="10.1.2.3/8"), "cidr 10.0.0.0/8"),
        (DeviceConfig(client_id="Tablet"), DeviceConfig(client_id="tablet"),
         "client_id tablet"),
    ],
)
def test_one_identifier_on_two_profiles_names_both(
    first: DeviceConfig, second: DeviceConfig, key: str
) -> None:
    with pytest.raises(DeviceError) as caught:
        DeviceIndex.build([
            DeviceEntry("anna", first, "profiles[0].devices[0]"),
            DeviceEntry("ben", second, "profiles[1].devices[0]"),
        ])
    assert caught.value.problems == (
        (f"profiles[1].devices[0]: overlapping device {key}: on profile 'anna' "
         "(profiles[0].devices[0]) and on 'ben'"),
    )


def test_nested_networks_are_not_overlaps() -> None:
    index = DeviceIndex.build([
        DeviceEntry("house", DeviceConfig(cidr="192.168.0.0/16")),
        DeviceEntry("kids", DeviceConfig(cidr="192.168.5.0/24")),
        DeviceEntry("anna", DeviceConfig(ip="192.168.5.5")),
    ])
    assert index.lookup(ClientIdentity("192.168.5.5")) == "anna"
    assert index.lookup(ClientIdentity("192.168.5.6")) == "kids"
    assert index.lookup(ClientIdentity("192.168.6.6")) == "house"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(DeviceError) as caught:
        DeviceIndex.build([
            DeviceEntry("anna", DeviceConfig(ip="bad"), "a"),
            DeviceEntry("anna", DeviceConfig(mac="bad"), "b"),
        ])
    assert [p.split(":")[0] for p in caught.value.problems] == ["a", "b"]
