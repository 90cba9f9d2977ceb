"""DNS wire format, sans-IO: decode client queries and upstream replies, encode answers.

Everything here works on bytes and returns bytes or frozen values, so it can be tested and
fuzzed without sockets. The cache-hit and blocked-answer paths never build dnslib objects:
a query is read straight from the packet, and answers are assembled from stored wire
sections with the new ID and TTLs patched in. dnslib is kept for the tests and the CLI.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop

import dnslib

from familydns.errors import WireError
from familydns.frozen import fast_init
from familydns.resolver.rebinding import svcb_hints

# RCODEs
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16
# Types
T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_HINFO, T_MX, T_TXT, T_AAAA = 1, 2, 5, 6, 12, 13, 15, 16, 28
T_OPT, T_DS, T_RRSIG, T_SVCB, T_HTTPS, T_ANY = 41, 43, 46, 64, 65, 255
C_IN = 1
# Header flag bits
QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010
# EDNS
OPT_ECS, OPT_EDE, OPT_MAC = 8, 15, 65001
EDE_FILTERED, EDE_STALE = 17, 3
DO_BIT = 0x8000

MAX_NAME = 255
MAX_POINTER_HOPS = 16
_HDR = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

TYPE_NAMES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 64: "SVCB",
    65: "HTTPS", 255: "ANY", 257: "CAA",
}


def type_name(qtype: int) -> str:
    return TYPE_NAMES.get(qtype, f"TYPE{qtype}")


@dataclass(frozen=True, slots=True)
class Edns:
    """The client's OPT record: what it can receive and what it told us about itself."""

    udp_size: int
    version: int
    do: bool
    mac: str | None = None
    subnet: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Query:
    """One decoded client query.

    ``question`` is the question section exactly as sent (the answer must echo the
    client's letter case); ``key`` is its case-folded form plus the DO/CD bits, the cache
    key, since answers with and without DNSSEC records differ.
    """

    id: int
    flags: int
    qname: str
    qtype: int
    qclass: int
    question: bytes
    key: bytes
    edns: Edns | None
    raw: bytes = b""

    @property
    def wants_dnssec(self) -> bool:
        return self.edns is not None and self.edns.do


def _read_labels(data: bytes, off: int, limit: int) -> tuple[str, int]:
    """Read an uncompressed name (as in a query's question); returns (name, next offset).

    It runs for every query: one pass over the length bytes checks the name, then the
    length bytes inside one copy become dots (no slice and decode per label)."""
    start = off
    while True:
        if off >= limit:
            raise ValueError("name runs past the end")
        n = data[off]
        if n == 0:
            break
        if n > 63:
            raise ValueError("compression pointer in question" if n & 0xC0
                             else "label longer than 63")
        off += n + 1
        if off - start > MAX_NAME - 1:
            raise ValueError("name longer than 255")
    if off == start:
        return "", off + 1
    name = bytearray(data[start + 1:off])
    i = data[start]
    size = len(name)
    while i < size:
        step = name[i]
        name[i] = 0x2E
        i += step + 1
    return name.decode("latin-1").lower(), off + 1


def read_name(data: bytes, off: int) -> tuple[str, int]:
    """Read a possibly compressed name; returns (lower-case name, offset after it).

    Pointers must point strictly backwards, which makes loops impossible, and a name may
    follow at most MAX_POINTER_HOPS of them: without that bound a chain of pointers, each
    one label further back, makes every name in a 64 KB reply cost a walk of the whole
    packet (the compression blow-up of CVE-2024-8508).
    """
    labels: list[str] = []
    total = 0
    hops = 0
    end_off = -1
    limit = len(data)
    floor = off
    while True:
        if off >= limit:
            raise ValueError("name runs past the end")
        n = data[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if off + 1 >= limit:
                raise ValueError("truncated compression pointer")
            ptr = ((n & 0x3F) << 8) | data[off + 1]
            if end_off < 0:
                end_off = off + 2
            if ptr >= floor or ptr < 12:
                raise ValueError("compression pointer does not point backwards")
            hops += 1
            if hops > MAX_POINTER_HOPS:
                raise ValueError("too many compression pointers in one name")
            floor = ptr
            off = ptr
            continue
        if n & 0xC0:
            raise ValueError("unknown label type")
        total += n + 1
        if total > MAX_NAME - 1:
            raise ValueError("name longer than 255")
        if off + 1 + n > limit:
            raise ValueError("label runs past the end")
        labels.append(data[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    return ".".join(labels).lower(), (end_off if end_off >= 0 else off)


def skip_name(data: bytes, off: int) -> int:
    """Offset after a name, without decoding it (a pointer ends the name)."""
    limit = len(data)
    while True:
        if off >= limit:
            raise ValueError("name runs past the end")
        n = data[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            if off + 2 > limit:
                raise ValueError("truncated compression pointer")
            return off + 2
        if n & 0xC0:
            raise ValueError("unknown label type")
        off += 1 + n


def _parse_opt_options(rdata: bytes) -> tuple[str | None, str | None]:
    """Pick the MAC (option 65001) and client subnet (option 8) out of OPT options."""
    mac = subnet = None
    off, limit, count = 0, len(rdata), 0
    while off < limit:
        if off + 4 > limit:
            raise ValueError("truncated EDNS option")
        code, length = struct.unpack_from("!HH", rdata, off)
        off += 4
        if off + length > limit:
            raise ValueError("EDNS option runs past the end")
        value = rdata[off:off + length]
        off += length
        count += 1
        if code == OPT_MAC:
            mac = decode_mac(value)
        elif code == OPT_ECS:
            subnet = decode_ecs(value)
    return mac, subnet


def decode_mac(value: bytes) -> str | None:
    """dnsmasq --add-mac sends 6 raw bytes; --add-mac=text sends 'aa:bb:...'."""
    if len(value) == 6:
        return ":".join(f"{b:02x}" for b in value)
    try:
        text = value.decode("ascii").strip().lower().replace("-", ":")
    except UnicodeDecodeError:
        return None
    parts = text.split(":")
    if len(parts) == 6 and all(len(p) == 2 for p in parts):
        try:
            bytes.fromhex("".join(parts))
        except ValueError:
            return None
        return text
    return None


def decode_ecs(value: bytes) -> str | None:
    """EDNS Client Subnet (RFC 7871) as 'address/prefix'; None when malformed."""
    if len(value) < 4:
        return None
    family, source_prefix = struct.unpack_from("!HB", value, 0)
    addr = value[4:]
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    try:
        if family == 1 and source_prefix <= 32 and len(addr) <= 4:
            net = ipaddress.IPv4Network((addr.ljust(4, b"\0"), source_prefix), strict=False)
        elif family == 2 and source_prefix <= 128 and len(addr) <= 16:
            net = ipaddress.IPv6Network((addr.ljust(16, b"\0"), source_prefix), strict=False)
        else:
            return None
    except ValueError:
        return None
    return str(net)


def parse_query(data: bytes) -> Query:
    """Decode a client query; raises WireError (with query_id when the header was readable)."""
    if len(data) < 12:
        raise WireError("shorter than a DNS header")
    qid, flags, qd, an, ns, ar = _HDR.unpack_from(data, 0)
    if flags & QR:
        raise WireError("a response, not a query")
    opcode = (flags >> 11) & 0xF
    if opcode != 0:
        raise WireError(f"opcode {opcode} not implemented", qid, NOTIMP)
    if qd != 1:
        raise WireError(f"{qd} questions (exactly one is supported)", qid)
    limit = len(data)
    try:
        qname, off = _read_labels(data, 12, limit)
    except ValueError as exc:
        raise WireError(f"bad question name: {exc}", qid) from None
    if off + 4 > limit:
        raise WireError("question runs past the end", qid)
    qtype, qclass = struct.unpack_from("!HH", data, off)
    qend = off + 4
    question = data[12:qend]
    edns: Edns | None = None
    if ar:
        try:
            edns = _parse_additional(data, qend, an + ns, ar)
        except ValueError as exc:
            raise WireError(f"bad additional section: {exc}", qid) from None
    flagbyte = (2 if edns is not None and edns.do else 0) | (1 if flags & CD else 0)
    key = data[12:off].lower() + data[off:qend] + bytes((flagbyte,))
    if edns is not None and edns.version != 0:
        raise WireError(f"EDNS version {edns.version}", qid, BADVERS)
    return Query(qid, flags, qname, qtype, qclass, question, key, edns, data)


def _parse_additional(data: bytes, off: int, skip: int, count: int) -> Edns | None:
    """Skip answer/authority records, then find the (single) OPT record."""
    limit = len(data)
    for _ in range(skip):
        off = skip_name(data, off)
        if off + 10 > limit:
            raise ValueError("record header runs past the end")
        rdlen = _U16.unpack_from(data, off + 8)[0]
        off += 10 + rdlen
        if off > limit:
            raise ValueError("RDATA runs past the end")
    edns: Edns | None = None
    for _ in range(count):
        name_start = off
        off = skip_name(data, off)
        if off + 10 > limit:
            raise ValueError("record header runs past the end")
        rtype, rclass, ttl, rdlen = _RR.unpack_from(data, off)
        off += 10
        if off + rdlen > limit:
            raise ValueError("RDATA runs past the end")
        if rtype == T_OPT:
            if edns is not None:
                raise ValueError("two OPT records")
            if data[name_start] != 0:
                raise ValueError("OPT owner is not the root")
            mac, subnet = _parse_opt_options(data[off:off + rdlen])
            edns = Edns(
                udp_size=max(rclass, 512),
                version=(ttl >> 16) & 0xFF,
                do=bool(ttl & DO_BIT),
                mac=mac,
                subnet=subnet,
            )
        off += rdlen
    return edns


def peek_id(data: bytes) -> int | None:
    return _U16.unpack_from(data, 0)[0] if len(data) >= 2 else None


# ------------------------------------------------------------------ encoding answers


def opt_record(udp_size: int, do: bool, ext_rcode: int = 0,
               options: bytes = b"") -> bytes:
    """An OPT pseudo-record (RFC 6891)."""
    ttl = ((ext_rcode >> 4) << 24) | (DO_BIT if do else 0)
    return b"\x00" + struct.pack("!HHIH", T_OPT, udp_size, ttl, len(options)) + options


def ede_option(code: int, text: str) -> bytes:
    """An Extended DNS Error option (RFC 8914) carrying a reason a person can read."""
    body = struct.pack("!H", code) + text.encode("utf-8")[:200]
    return struct.pack("!HH", OPT_EDE, len(body)) + body


def response_flags(query: Query, rcode: int, extra: int = 0) -> int:
    """QR and RA set, RD and CD copied from the query, the low rcode bits."""
    return QR | RA | (query.flags & (RD | CD)) | extra | (rcode & 0xF)


def build_response(
    query: Query,
    rcode: int,
    answer: bytes = b"",
    an: int = 0,
    authority: bytes = b"",
    ns: int = 0,
    additional: bytes = b"",
    ar: int = 0,
    flags: int = 0,
    ede: bytes = b"",
    udp_size: int = 1232,
) -> bytes:
    """Assemble an answer to ``query`` from already-encoded sections."""
    opt = b""
    if query.edns is not None:
        opt = opt_record(udp_size, query.edns.do, rcode, ede)
        ar += 1
    header = _HDR.pack(query.id, response_flags(query, rcode, flags), 1, an, ns, ar)
    return header + query.question + answer + authority + additional + opt


def error_response(data: bytes, err: WireError, udp_size: int = 1232) -> bytes | None:
    """FORMERR/NOTIMP/BADVERS for a packet whose header was readable; None to drop."""
    if err.query_id is None or len(data) < 12:
        return None
    flags = _U16.unpack_from(data, 2)[0]
    rcode = err.rcode
    out_flags = QR | RA | (flags & (RD | CD)) | (rcode & 0xF)
    if rcode == BADVERS:
        opt = opt_record(udp_size, False, BADVERS)
        try:
            _, off = _read_labels(data, 12, len(data))
            question = data[12:off + 4]
        except ValueError:
            question = b""
        qd = 1 if question and len(question) >= 5 else 0
        return _HDR.pack(err.query_id, out_flags, qd, 0, 0, 1) + (question if qd else b"") + opt
    return _HDR.pack(err.query_id, out_flags, 0, 0, 0, 0)


def rr(rtype: int, ttl: int, rdata: bytes, owner: bytes = b"\xc0\x0c") -> bytes:
    """One resource record; the owner defaults to a pointer to the question name."""
    return owner + struct.pack("!HHIH", rtype, C_IN, ttl, len(rdata)) + rdata


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted name."""
    out = bytearray()
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("ascii")
            if len(raw) > 63:
                raise ValueError(f"label too long in {name!r}")
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)


def address_rdata(address: str) -> tuple[int, bytes]:
    ip = ipaddress.ip_address(address)
    return (T_A if ip.version == 4 else T_AAAA), ip.packed


@functools.lru_cache(maxsize=64)
def synthetic_soa(ttl: int) -> bytes:
    """An SOA for synthesised negative answers, so clients cache them only ``ttl`` seconds."""
    rdata = (
        encode_name("fence.familydns.invalid")
        + encode_name("parents.familydns.invalid")
        + struct.pack("!IIIII", 1, 3600, 600, 86400, ttl)
    )
    return rr(T_SOA, ttl, rdata)


def truncate(response: bytes, limit: int) -> bytes:
    """Fit a UDP answer: when too big, keep header, question and OPT, set TC (RFC 7766)."""
    if len(response) <= limit:
        return response
    qid, flags, qd, an, ns, ar = _HDR.unpack_from(response, 0)
    off = 12
    for _ in range(qd):
        off = skip_name(response, off) + 4
    question = response[12:off]
    opt = b""
    if ar:
        opt = _find_opt(response, off, an + ns + ar)
    header = _HDR.pack(qid, flags | TC, qd, 0, 0, 1 if opt else 0)
    return header + question + opt


def _find_opt(data: bytes, off: int, count: int) -> bytes:
    for _ in range(count):
        start = off
        off = skip_name(data, off)
        rtype, _rc, _ttl, rdlen = _RR.unpack_from(data, off)
        off += 10 + rdlen
        if rtype == T_OPT:
            return data[start:off]
    return b""


# ------------------------------------------------------------------ upstream replies


def make_upstream_query(qid: int, question: bytes, do: bool, cd: bool, udp_size: int) -> bytes:
    """A fresh query for an upstream: our own ID, RD set, our EDNS, no client options.

    The client's EDNS options (its MAC address, its subnet) are never forwarded: they
    identify a child's device and stay in the house.
    """
    flags = RD | (CD if cd else 0)
    return _HDR.pack(qid, flags, 1, 0, 0, 1) + question + _upstream_opt(udp_size, do)


@functools.lru_cache(maxsize=8)
def _upstream_opt(udp_size: int, do: bool) -> bytes:
    return opt_record(udp_size, do)


@fast_init
@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream reply reduced to what the cache and policy need.

    ``body`` holds the answer, authority and additional sections exactly as received,
    minus the OPT record; ``ttl_offsets`` point at each TTL inside ``body`` so a cached
    answer is re-served by patching integers, never re-encoding.
    """

    id: int
    flags: int
    rcode: int
    question: bytes
    an: int
    ns: int
    ar: int
    body: bytes
    ttl_offsets: tuple[int, ...]
    ttls: tuple[int, ...]
    cnames: tuple[str, ...]
    addresses: tuple[str, ...]
    negative_ttl: int | None
    truncated: bool


def parse_reply(data: bytes) -> Reply:
    """Decode an upstream reply; raises WireError on anything malformed."""
    if len(data) < 12:
        raise WireError("reply shorter than a DNS header")
    qid, flags, qd, an, ns, ar = _HDR.unpack_from(data, 0)
    if not flags & QR:
        raise WireError("reply without QR bit", qid)
    if qd != 1:
        raise WireError(f"reply with {qd} questions", qid)
    try:
        if not ns and ar <= 1:
            simple = _parse_address_reply(data, qid, flags, an, ar)
            if simple is not None:
                return simple
        return _parse_reply_body(data, qid, flags, an, ns, ar)
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise WireError(f"malformed reply: {exc}", qid) from None


def _parse_address_reply(data: bytes, qid: int, flags: int, an: int, ar: int
                         ) -> Reply | None:
    """The commonest reply, read in one short pass: address records owned by the question
    name (a pointer to it), nothing in authority, at most an OPT record after them. None
    for anything else, which ``_parse_reply_body`` reads in full. Both give the same
    Reply for a reply this one accepts (tests/test_wire.py checks it)."""
    limit = len(data)
    off = 12
    while True:
        if off >= limit:
            return None
        n = data[off]
        if not n:
            break
        if n > 63:
            return None
        off += n + 1
    qend = off + 5
    off = qend
    ttl_offsets: list[int] = []
    ttls: list[int] = []
    addresses: list[str] = []
    high = 0
    for _ in range(an):
        if off + 12 > limit or data[off] != 0xC0 or data[off + 1] != 12:
            return None
        rtype, _rclass, ttl, rdlen = _RR.unpack_from(data, off + 2)
        rdata_off = off + 12
        off = rdata_off + rdlen
        if rtype == T_A and rdlen == 4:
            addresses.append(inet_ntop(AF_INET, data[rdata_off:off]))
        elif rtype == T_AAAA and rdlen == 16:
            addresses.append(inet_ntop(AF_INET6, data[rdata_off:off]))
        else:
            return None
        ttl_offsets.append(rdata_off - 6 - qend)
        ttls.append(ttl & 0x7FFFFFFF)
        high |= ttl
    ar_start = off
    rcode = flags & 0xF
    if ar:
        if off + 11 > limit or data[off] != 0:
            return None
        rtype, _udp_size, ttl, rdlen = _RR.unpack_from(data, off + 1)
        off += 11 + rdlen
        if rtype != T_OPT:
            return None
        rcode |= ((ttl >> 24) & 0xFF) << 4
    if off != limit or qend > limit:
        return None
    body = data[qend:ar_start]
    if high & 0x80000000:
        body = write_ttls(body, ttl_offsets, ttls)
    return Reply(qid, flags, rcode, data[12:qend], an, 0, 0, body,
                 tuple(ttl_offsets), tuple(ttls), (), tuple(addresses), None,
                 bool(flags & TC))


def write_ttls(body: bytes, offsets: Iterable[int], ttls: Iterable[int]) -> bytes:
    """``body`` with ``ttls`` written at ``offsets``."""
    buf = bytearray(body)
    for off, ttl in zip(offsets, ttls):
        _U32.pack_into(buf, off, ttl)
    return bytes(buf)


def _parse_reply_body(data: bytes, qid: int, flags: int, an: int, ns: int, ar: int,
                      cleaned: bool = False) -> Reply:
    limit = len(data)
    qname, off = _read_labels(data, 12, limit)  # the question we sent: never compressed
    if off + 4 > limit:
        raise ValueError("question runs past the end")
    qend = off + 4
    question = data[12:qend]
    ttl_offsets: list[int] = []
    ttls: list[int] = []
    cnames: list[str] = []
    tree = {qname}
    addresses: list[str] = []
    negative_ttl: int | None = None
    high = 0
    ext_rcode = 0
    outside = False
    ar_start = qend
    off = qend
    for index in range(an + ns + ar):
        if index == an + ns:
            ar_start = off
        start = off
        if index >= an + ns:
            off = skip_name(data, off)
        elif off + 1 < limit and data[off] == 0xC0 and data[off + 1] == 12:
            owner, off = qname, off + 2  # the usual owner: a pointer to the question
        else:
            owner, off = read_name(data, off)
        if off + 10 > limit:
            raise ValueError("record header runs past the end")
        rtype, _rclass, ttl, rdlen = _RR.unpack_from(data, off)
        rdata_off = off + 10
        end = rdata_off + rdlen
        if end > limit:
            raise ValueError("RDATA runs past the end")
        if rtype == T_OPT:
            if index < an + ns or data[start] != 0:
                raise ValueError("OPT record outside the additional section")
            if ext_rcode >= 0x100:
                raise ValueError("two OPT records")
            ext_rcode = 0x100 | ((ttl >> 24) & 0xFF)
        elif index < an:
            if owner not in tree:
                outside = True
            ttl_offsets.append(off + 4)
            ttls.append(ttl & 0x7FFFFFFF)
            high |= ttl
            if rtype == T_CNAME:
                target = read_name(data, rdata_off)[0]
                cnames.append(target)
                tree.add(target)
            elif rtype == T_A and rdlen == 4:
                addresses.append(inet_ntop(AF_INET, data[rdata_off:end]))
            elif rtype == T_AAAA and rdlen == 16:
                addresses.append(inet_ntop(AF_INET6, data[rdata_off:end]))
            elif rtype in (T_SVCB, T_HTTPS):
                addresses.extend(svcb_hints(data[rdata_off:end]))
                if rdlen > 2:
                    # The TargetName leads the client on like a CNAME does, so the
                    # CNAME-cloaking check judges it too ("." means the owner itself).
                    try:
                        target = _read_labels(data, rdata_off + 2, end)[0]
                    except ValueError:  # compressed against RFC 9460: judge by hints
                        target = ""
                    if target:
                        cnames.append(target)
        elif index < an + ns:
            if not any(name == owner or name.endswith("." + owner) or not owner
                       for name in tree):
                outside = True
            ttl_offsets.append(off + 4)
            ttls.append(ttl & 0x7FFFFFFF)
            high |= ttl
            if rtype == T_SOA:
                _, moff = read_name(data, rdata_off)
                _, moff = read_name(data, moff)
                if moff + 20 > end:
                    raise ValueError("short SOA")
                minimum = _U32.unpack_from(data, moff + 16)[0]
                negative_ttl = min(ttl, minimum)
        off = end
    if off != limit:
        raise ValueError("trailing bytes after the last record")
    if outside:
        if cleaned:
            raise ValueError("records outside the question's name tree")
        clean = _in_bailiwick_only(data, qname)
        _qid, flags, _qd, an, ns, ar = _HDR.unpack_from(clean, 0)
        return _parse_reply_body(clean, qid, flags, an, ns, ar, True)
    # The additional section (glue, OPT) is never passed on: names there are outside the
    # question's tree, and cutting the tail cannot break compression pointers before it.
    body = data[qend:ar_start] if ar else data[qend:]
    offsets = tuple(o - qend for o in ttl_offsets)
    if high & 0x80000000:  # sent with the top bit set: serve what the TTLs say
        body = write_ttls(body, offsets, ttls)
    return Reply(
        id=qid,
        flags=flags,
        rcode=((ext_rcode & 0xFF) << 4) | (flags & 0xF),
        question=question,
        an=an,
        ns=ns,
        ar=0,
        body=body,
        ttl_offsets=offsets,
        ttls=tuple(ttls),
        cnames=tuple(cnames),
        addresses=tuple(addresses),
        negative_ttl=negative_ttl,
        truncated=bool(flags & TC),
    )


def _in_bailiwick_only(data: bytes, qname: str) -> bytes:
    """Re-encode a reply without the records outside the question's name tree (answers
    not owned by the name or its CNAME chain, authority records not above it).

    Rare (an upstream stuffing extra records), so dnslib does the work here."""
    try:
        msg = dnslib.DNSRecord.parse(data)
    except (dnslib.DNSError, ValueError, IndexError, struct.error) as exc:
        raise ValueError(f"cannot re-encode: {exc}") from None
    tree = {qname}
    kept = []
    for record in msg.rr:
        owner = str(record.rname).rstrip(".").lower()
        if owner in tree:
            kept.append(record)
            if record.rtype == T_CNAME:
                tree.add(str(record.rdata.label).rstrip(".").lower())

    def above(rname: object) -> bool:
        owner = str(rname).rstrip(".").lower()
        return any(n == owner or n.endswith("." + owner) or not owner for n in tree)

    msg.rr = kept
    msg.auth = [record for record in msg.auth if above(record.rname)]
    msg.ar = []
    return bytes(msg.pack())


class _Entropy:
    """Random bytes from the kernel's CSPRNG (os.urandom), read 4 KiB at a time.

    Every upstream query takes 2 bytes of ID and one bit per letter of its name; one
    getrandom() per query each cost a system call on the miss path. The buffer is
    dropped in a forked child, so two workers never reuse the same bytes."""

    BLOCK = 4096

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0

    def take(self, n: int) -> bytes:
        pos = self.pos
        if pos + n > len(self.buf):
            self.buf = os.urandom(max(self.BLOCK, n))
            pos = 0
        self.pos = pos + n
        return self.buf[pos:pos + n]

    def reset(self) -> None:
        self.buf = b""
        self.pos = 0


_ENTROPY = _Entropy()
os.register_at_fork(after_in_child=_ENTROPY.reset)


def random_bytes(n: int) -> bytes:
    """``n`` unpredictable bytes (os.urandom, buffered)."""
    return _ENTROPY.take(n)


def random_id() -> int:
    """A fresh 16-bit query ID."""
    return int.from_bytes(_ENTROPY.take(2), "big")


_LETTER_BITS = bytes(0x20 if chr(i).isascii() and chr(i).isalpha() else 0
                     for i in range(256))


def randomize_case(question: bytes) -> bytes:
    """The question with each ASCII letter of its name in random case (draft-vixie-dnsext-
    dns0x20): an upstream echoes the question as sent, so a forger must also guess one
    bit per letter. Label length bytes (at most 63) are never letters, so they stay."""
    name = question[:-4]
    size = len(name)
    mask = (int.from_bytes(name.translate(_LETTER_BITS), "big")
            & int.from_bytes(random_bytes(size), "big"))
    return (int.from_bytes(name, "big") ^ mask).to_bytes(size, "big") + question[-4:]


def same_question(a: bytes, b: bytes) -> bool:
    """Questions match ignoring the letter case of the name (RFC 4343)."""
    return len(a) == len(b) and a[:-4].lower() == b[:-4].lower() and a[-4:] == b[-4:]
