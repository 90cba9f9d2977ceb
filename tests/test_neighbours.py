"""Devices on the same LAN are recognised by MAC through the host's ARP table."""

from __future__ import annotations

from pathlib import Path

import dns.rcode

from familydns.resolver.neighbours import NeighbourTable, parse_arp_table
from tests.conftest import StartServer, rrset_texts
from tests.upstream import FakeUpstream

ARP = """\
IP address       HW type     Flags       HW address            Mask     Device
192.168.1.23     0x1         0x2         AA:BB:CC:DD:EE:01     *        eth0
192.168.1.24     0x1         0x0         00:00:00:00:00:00     *        eth0
127.0.0.7        0x1         0x2         aa:bb:cc:dd:ee:07     *        lo
192.168.1.25     0x1         0x6         aa:bb:cc:dd:ee:02     *        eth0
garbage
"""


def test_complete_entries_only_lower_case() -> None:
    assert parse_arp_table(ARP) == {"192.168.1.23": "aa:bb:cc:dd:ee:01",
                                    "127.0.0.7": "aa:bb:cc:dd:ee:07",
                                    "192.168.1.25": "aa:bb:cc:dd:ee:02"}


def test_table_is_reread_after_max_age_and_missing_file_is_empty(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "arp"
    table = NeighbourTable(path, max_age=10, clock=lambda: now[0])
    assert table.mac_for("192.168.1.23") is None
    path.write_text(ARP)
    assert table.mac_for("192.168.1.23") is None  # cached "no table" for max_age
    now[0] = 10
    assert table.mac_for("192.168.1.23") == "aa:bb:cc:dd:ee:01"


async def test_a_lan_device_without_the_mac_option_gets_its_profile(
        start_server: StartServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add("facebook.com", "A", "192.0.2.10")
    arp = tmp_path / "arp"
    arp.write_text(ARP)
    server = await start_server(profiles=[
        {"name": "kid", "age": 8, "devices": [{"mac": "aa:bb:cc:dd:ee:07"}]}])
    assert server.app.resolver is not None
    server.app.resolver.neighbours = NeighbourTable(arp)
    kid = await server.query("facebook.com", "A", source="127.0.0.7")
    other = await server.query("facebook.com", "A", source="127.0.0.8")
    assert kid.rcode() == dns.rcode.NXDOMAIN
    assert rrset_texts(other, "A") == ["192.0.2.10"]
