"""Who is asking: the client identity every query carries into the policy layer."""

from __future__ import annotations

from dataclasses import dataclass

from familydns.frozen import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """What the resolver knows about the sender of one query.

    ``address`` is the packet's source IP. ``mac`` comes from EDNS0 option 65001, which
    routers running dnsmasq ``--add-mac`` attach (lower-case, colon separated).
    ``subnet`` is the EDNS Client Subnet a forwarder may add (``192.0.2.0/24``).
    ``client_id`` names a device explicitly (e.g. from a DoT server name in the future).
    """

    address: str
    mac: str | None = None
    subnet: str | None = None
    client_id: str | None = None
