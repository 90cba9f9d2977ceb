"""The answer cache: wire-level entries, LRU-bounded, with negative caching and serve-stale.

Entries keep the upstream's sections as bytes plus the offsets of their TTL fields, so a
hit is answered by copying bytes and patching the ID and TTLs, never by re-encoding.
The cache is shared by all profiles because it only ever holds what the upstream said;
policy is applied before and after it, per query (a profile's decision is never cached
here, so one child's answer cannot leak to another).
"""

from __future__ import annotations

import functools
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from familydns.config import CacheConfig
from familydns.frozen import fast_init
from familydns.resolver import wire
from familydns.resolver.rebinding import is_private

_U32 = struct.Struct("!I")
_HDR = struct.Struct("!HHHHHH")


@fast_init
@dataclass(frozen=True, slots=True)
class Entry:
    rcode: int
    flags: int
    an: int
    ns: int
    ar: int
    body: bytes
    ttl_offsets: tuple[int, ...]
    ttls: tuple[int, ...]
    cnames: tuple[str, ...]
    addresses: tuple[str, ...]
    stored_at: float
    expires: float
    private: bool = False
    """Some address in the answer (A, AAAA, HTTPS/SVCB hints) is a private one."""

    def fresh(self, now: float) -> bool:
        return now < self.expires


_private = functools.lru_cache(maxsize=4096)(is_private)
"""Answers repeat addresses (CDNs, anycast): remember the verdict per address."""


def entry_of(reply: wire.Reply, now: float, expires: float, ttls: tuple[int, ...]) -> Entry:
    """An entry whose body carries ``ttls`` (written in when they differ from the
    reply's own, which parse_reply keeps in step with its body), so an answer rendered
    within its first second is the body as it is."""
    body = reply.body
    if ttls != reply.ttls:
        body = wire.write_ttls(body, reply.ttl_offsets, ttls)
    return Entry(reply.rcode, reply.flags, reply.an, reply.ns, reply.ar, body,
                 reply.ttl_offsets, ttls, reply.cnames, reply.addresses, now, expires,
                 any(map(_private, reply.addresses)))


class Cache:
    """Bounded LRU of upstream answers keyed by ``Query.key`` (name case-folded, type, class,
    DO and CD bits)."""

    def __init__(self, config: CacheConfig, on_evict: Callable[[], None] | None = None) -> None:
        self.config = config
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: bytes, now: float) -> Entry | None:
        """The entry for key, fresh or stale (callers check ``fresh``); None when absent
        or older than the serve-stale window."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.expires and (
            not self.config.serve_stale or now > entry.expires + self.config.stale_max_age
        ):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, reply: wire.Reply, now: float) -> Entry | None:
        """Store a reply if it is cacheable; returns the stored entry (or None)."""
        lifetime = self.lifetime(reply)
        if lifetime is None or self.config.max_entries == 0:
            return None
        cfg = self.config
        ceiling = cfg.max_ttl
        if reply.an == 0:
            # RFC 2308: a negative answer's SOA is served with the negative TTL.
            ceiling = lifetime
        ttls = tuple(min(max(t, cfg.min_ttl), ceiling) for t in reply.ttls)
        entry = entry_of(reply, now, now + lifetime, ttls)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > cfg.max_entries:
            self._entries.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict()
        return entry

    def lifetime(self, reply: wire.Reply) -> int | None:
        """Seconds an answer may be served fresh; None when it must not be cached.

        Negative answers live for the SOA's minimum (RFC 2308) capped by
        ``negative_max_ttl``; without an SOA they are not cached. Failures never are.
        """
        cfg = self.config
        if reply.truncated:
            return None
        if reply.rcode == wire.NXDOMAIN or (reply.rcode == wire.NOERROR and reply.an == 0):
            if reply.negative_ttl is None:
                return None
            return min(max(reply.negative_ttl, cfg.min_ttl), cfg.negative_max_ttl, cfg.max_ttl)
        if reply.rcode != wire.NOERROR:
            return None
        answer_ttls = reply.ttls[: reply.an] or reply.ttls
        if not answer_ttls:
            return None
        return min(max(min(answer_ttls), cfg.min_ttl), cfg.max_ttl)


def render(
    entry: Entry,
    query: wire.Query,
    now: float,
    udp_size: int,
    stale_ttl: int | None = None,
    extra_ede: bytes = b"",
) -> bytes:
    """An answer to ``query`` from a stored entry: new ID, the client's question (its letter
    case), TTLs counted down since storage (or ``stale_ttl`` when serving stale)."""
    body = entry.body
    elapsed = int(now - entry.stored_at)
    if entry.ttl_offsets and (elapsed or stale_ttl is not None):
        buf = bytearray(body)
        if stale_ttl is not None:
            for off in entry.ttl_offsets:
                _U32.pack_into(buf, off, stale_ttl)
        else:
            for off, ttl in zip(entry.ttl_offsets, entry.ttls):
                _U32.pack_into(buf, off, ttl - elapsed if ttl > elapsed else 0)
        body = bytes(buf)
    ar = entry.ar
    opt = b""
    edns = query.edns
    if edns is not None:
        opt = wire.opt_record(udp_size, edns.do, entry.rcode, extra_ede)
        ar += 1
    keep_ad = wire.AD if (edns is not None and edns.do) or query.flags & wire.AD else 0
    flags = wire.response_flags(query, entry.rcode, entry.flags & keep_ad)
    return _HDR.pack(query.id, flags, 1, entry.an, entry.ns, ar) + query.question + body + opt
