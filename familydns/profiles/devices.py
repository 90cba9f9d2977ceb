"""Which profile a query belongs to, from what the resolver knows about its sender.

Lookup order, most specific first: client id > MAC > exact IP > longest-prefix CIDR >
none (the caller applies the default profile). Everything is validated when the index
is built, so a typo in a device is a load error, never a child silently unprotected.
The lookup is a few dict probes on the packed address (``inet_pton`` is much cheaper
than the ipaddress module per query); CIDRs are grouped by prefix length and probed
longest first with an integer mask.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from familydns.config import DeviceConfig
from familydns.resolver.identity import ClientIdentity

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}")
_KINDS = ("client_id", "mac", "ip", "cidr")
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def normalise_mac(text: str) -> str:
    """``AA-BB-CC-DD-EE-FF`` or ``aa:bb:...`` to lower-case colon form."""
    mac = text.strip().lower()
    if not _MAC.fullmatch(mac):
        raise ValueError(f"bad MAC address {text!r} (expected aa:bb:cc:dd:ee:ff)")
    return mac.replace("-", ":")


def parse_client_ip(text: str) -> IPAddress:
    """An address, with IPv4-mapped IPv6 (``::ffff:1.2.3.4``) unwrapped to IPv4."""
    ip = ipaddress.ip_address(text.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def pack_client_ip(text: str) -> bytes | None:
    """The 4- or 16-byte address, IPv4-mapped IPv6 as its IPv4; None if unparseable."""
    try:
        if ":" not in text:
            return socket.inet_pton(socket.AF_INET, text)
        packed = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
    except OSError:
        return None
    return packed[12:] if packed.startswith(_MAPPED_PREFIX) else packed


def device_key(device: DeviceConfig) -> tuple[str, str]:
    """The device's one identifier as (kind, normalised value); ValueError otherwise."""
    given = [(kind, getattr(device, kind)) for kind in _KINDS if getattr(device, kind)]
    if len(given) != 1:
        found = ", ".join(kind for kind, _ in given) or "none"
        raise ValueError(f"needs exactly one of ip, cidr, mac or client_id (found {found})")
    kind, value = given[0]
    if kind == "client_id":
        return kind, value.strip().lower()
    if kind == "mac":
        return kind, normalise_mac(value)
    try:
        if kind == "ip":
            return kind, str(parse_client_ip(value))
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"bad {kind} {value!r}") from None
    return kind, str(net)


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One configured device; ``where`` is its key path, used in error messages."""

    profile: str
    device: DeviceConfig
    where: str = ""


class DeviceError(ValueError):
    """Every problem found while building a DeviceIndex, each prefixed with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


_CidrTable = tuple[tuple[int, Mapping[int, str]], ...]


@dataclass(frozen=True, slots=True)
class DeviceIndex:
    """Identifier -> profile name, in the shapes the lookup probes."""

    by_client_id: Mapping[str, str]
    by_mac: Mapping[str, str]
    by_ip: Mapping[bytes, str]
    cidrs_v4: _CidrTable
    cidrs_v6: _CidrTable

    @classmethod
    def empty(cls) -> DeviceIndex:
        return cls({}, {}, {}, (), ())

    @classmethod
    def build(cls, entries: Iterable[DeviceEntry]) -> DeviceIndex:
        """Validate and index; DeviceError lists bad values and overlapping devices.

        One identifier on two profiles is an error naming both: which child a device
        belongs to must never depend on the order of the file.
        """
        problems: list[str] = []
        owners: dict[tuple[str, str], DeviceEntry] = {}
        for entry in entries:
            prefix = f"{entry.where}: " if entry.where else ""
            try:
                key = device_key(entry.device)
            except ValueError as exc:
                problems.append(f"{prefix}{exc}")
                continue
            first = owners.setdefault(key, entry)
            if first is not entry:
                where = f" ({first.where})" if first.where else ""
                problems.append(
                    f"{prefix}overlapping device {key[0]} {key[1]}: on profile "
                    f"{first.profile!r}{where} and on {entry.profile!r}"
                )
        if problems:
            raise DeviceError(problems)
        tables: dict[str, dict[str, str]] = {kind: {} for kind in _KINDS}
        for (kind, value), entry in owners.items():
            tables[kind][value] = entry.profile
        return cls(
            by_client_id=tables["client_id"],
            by_mac=tables["mac"],
            by_ip={parse_client_ip(ip).packed: name for ip, name in tables["ip"].items()},
            cidrs_v4=_cidr_table(tables["cidr"], 4),
            cidrs_v6=_cidr_table(tables["cidr"], 6),
        )

    def lookup(self, client: ClientIdentity) -> str | None:
        """The profile name for ``client``, or None when no device matches."""
        if client.client_id and self.by_client_id:
            found = self.by_client_id.get(client.client_id.lower())
            if found is not None:
                return found
        if client.mac and self.by_mac:
            found = self.by_mac.get(client.mac.lower())
            if found is not None:
                return found
        packed = pack_client_ip(client.address)
        if packed is None:
            return None
        found = self.by_ip.get(packed)
        if found is not None:
            return found
        number = int.from_bytes(packed)
        for mask, networks in self.cidrs_v4 if len(packed) == 4 else self.cidrs_v6:
            found = networks.get(number & mask)
            if found is not None:
                return found
        return None


def _cidr_table(cidrs: Mapping[str, str], version: int) -> _CidrTable:
    """Group networks by prefix length, longest first, keyed by network address int."""
    bits = 32 if version == 4 else 128
    by_len: dict[int, dict[int, str]] = {}
    for text, profile in cidrs.items():
        net = ipaddress.ip_network(text)
        if net.version == version:
            by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = profile
    return tuple(
        (((1 << plen) - 1) << (bits - plen), table)
        for plen, table in sorted(by_len.items(), reverse=True)
    )
