"""MAC addresses of devices on the same LAN, from the host's neighbour (ARP) table.

When familydns runs on the router or on a Pi in the home network, a child's device asks
it directly and no router adds the EDNS MAC option; the kernel's ARP table still knows
which MAC address sent from which IPv4 address. The table is re-read at most every
``max_age`` seconds, so the per-query cost is a dict lookup. IPv6 neighbours are not in
/proc; devices reached over IPv6 are matched by the MAC option, address or client id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("familydns.neighbours")

ARP_TABLE = Path("/proc/net/arp")
_ARP_COMPLETE = 0x2
_NO_MAC = "00:00:00:00:00:00"


def parse_arp_table(text: str) -> dict[str, str]:
    """IPv4 address -> lower-case MAC for the complete entries of /proc/net/arp."""
    table: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        address, _hwtype, flags, mac = fields[:4]
        try:
            complete = int(flags, 16) & _ARP_COMPLETE
        except ValueError:
            continue
        mac = mac.lower()
        if complete and mac != _NO_MAC and mac.count(":") == 5:
            table[address] = mac
    return table


class NeighbourTable:
    """The ARP table, cached for ``max_age`` seconds; a missing file means no entries."""

    def __init__(self, path: Path = ARP_TABLE, max_age: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.max_age = max_age
        self.clock = clock
        self._table: dict[str, str] = {}
        self._read_at = -float("inf")
        self._warned = False

    def mac_for(self, address: str) -> str | None:
        now = self.clock()
        if now - self._read_at >= self.max_age:
            self._read_at = now
            try:
                self._table = parse_arp_table(self.path.read_text(encoding="ascii",
                                                                  errors="replace"))
            except OSError as exc:
                if not self._warned:
                    log.info("no neighbour table at %s (%s): MAC devices need the "
                             "router's MAC option", self.path, exc.strerror or exc)
                    self._warned = True
                self._table = {}
        return self._table.get(address)
