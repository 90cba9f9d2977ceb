"""Wire format, sans-IO: decoding queries and replies, assembling and truncating answers."""

from __future__ import annotations

import struct
import subprocess
import sys

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from familydns.config import CacheConfig
from familydns.errors import WireError
from familydns.resolver import wire
from familydns.resolver.cache import Cache, render


def make_query(name: str = "Example.ORG", rdtype: str = "A", **kw: object) -> bytes:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    q.id = 0x1234
    return q.to_wire()


def test_query_fields_and_case_folded_cache_key() -> None:
    q = wire.parse_query(make_query())
    assert (q.id, q.qname, q.qtype, q.qclass) == (0x1234, "example.org", 1, 1)
    assert q.question[1:8] == b"Example"
    assert q.key == wire.parse_query(make_query("example.org")).key
    assert q.edns is None


def test_dnssec_ok_is_part_of_the_cache_key() -> None:
    plain = wire.parse_query(make_query(use_edns=0))
    dnssec = wire.parse_query(make_query(use_edns=0, want_dnssec=True))
    assert dnssec.wants_dnssec and not plain.wants_dnssec
    assert plain.key != dnssec.key


def test_edns_mac_and_client_subnet_options() -> None:
    mac = dns.edns.GenericOption(65001, bytes.fromhex("aabbccddeeff"))
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    q = wire.parse_query(make_query(use_edns=0, payload=4096, options=[mac, ecs]))
    assert q.edns == wire.Edns(4096, 0, False, "aa:bb:cc:dd:ee:ff", "192.0.2.0/24")


def test_text_mac_option_as_dnsmasq_add_mac_text_sends_it() -> None:
    mac = dns.edns.GenericOption(65001, b"AA:BB:CC:DD:EE:01")
    q = wire.parse_query(make_query(use_edns=0, options=[mac]))
    assert q.edns is not None and q.edns.mac == "aa:bb:cc:dd:ee:01"


@pytest.mark.parametrize(
    ("packet", "query_id", "rcode"),
    [
        (b"", None, 1),
        (b"\x00" * 11, None, 1),
        (b"\x12\x34\x81\x00" + b"\x00\x01" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01", None, 1),
        (b"\x12\x34\x28\x00" + b"\x00\x01" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01", 0x1234, 4),
        (b"\x12\x34\x01\x00" + b"\x00\x00" + b"\x00" * 6, 0x1234, 1),
        (b"\x12\x34\x01\x00" + b"\x00\x01" + b"\x00" * 6 + b"\x03abc", 0x1234, 1),
        (b"\x12\x34\x01\x00" + b"\x00\x01" + b"\x00" * 6 + b"\x00\x00", 0x1234, 1),
    ],
    ids=["empty", "short", "response", "opcode-update", "no-question", "name-past-end",
         "question-short"],
)
def test_bad_queries_raise_with_the_answerable_id(packet: bytes, query_id: int | None,
                                                   rcode: int) -> None:
    with pytest.raises(WireError) as info:
        wire.parse_query(packet)
    assert info.value.query_id == query_id
    assert info.value.rcode == rcode


def test_two_opt_records_are_formerr() -> None:
    packet = bytearray(make_query(use_edns=0))
    opt = bytes(packet[-11:])
    packet[10:12] = b"\x00\x02"
    with pytest.raises(WireError, match="two OPT"):
        wire.parse_query(bytes(packet) + opt)


def test_name_over_255_bytes_is_formerr() -> None:
    header = b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6
    name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"
    with pytest.raises(WireError, match="longer than 255"):
        wire.parse_query(header + name + b"\x00\x01\x00\x01")


def rrset(text: str) -> dns.rrset.RRset:
    name, ttl, rdtype, rdata = text.split(maxsplit=3)
    return dns.rrset.from_text(name, int(ttl), "IN", rdtype, rdata)


def upstream_reply(query: bytes, *rrs: str, authority: tuple[str, ...] = (),
                   rcode: int = 0, edns: bool = True) -> bytes:
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    for text in rrs:
        r.answer.append(rrset(text))
    for text in authority:
        r.authority.append(rrset(text))
    if not edns:
        r.use_edns(False)
    return r.to_wire(max_size=65535)


def test_reply_records_ttl_offsets_cnames_addresses_and_strips_opt() -> None:
    query = make_query("www.example.org", use_edns=0)
    data = upstream_reply(query, "www.example.org. 300 CNAME cdn.example.net.",
                          "cdn.example.net. 60 A 192.0.2.7")
    reply = wire.parse_reply(data)
    assert reply.cnames == ("cdn.example.net",)
    assert reply.addresses == ("192.0.2.7",)
    assert reply.ttls == (300, 60)
    assert reply.ar == 0 and len(reply.body) < len(data) - len(reply.question) - 12
    for off, ttl in zip(reply.ttl_offsets, reply.ttls):
        assert struct.unpack_from("!I", reply.body, off)[0] == ttl


def test_negative_ttl_is_min_of_soa_ttl_and_minimum() -> None:
    query = make_query("nope.example.org")
    soa = "example.org. 300 SOA ns.example.org. host.example.org. 1 2 3 4 60"
    reply = wire.parse_reply(upstream_reply(query, authority=(soa,), rcode=3))
    assert reply.rcode == wire.NXDOMAIN and reply.negative_ttl == 60


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-3],                          # RDATA runs past the end
        lambda b: b + b"\x00",                     # trailing byte
        lambda b: b[:2] + b"\x01\x00" + b[4:],     # not a response
    ],
    ids=["cut", "trailing", "no-qr"],
)
def test_malformed_replies_raise(mutate: object) -> None:
    data = upstream_reply(make_query(), "example.org. 300 A 192.0.2.1", edns=False)
    with pytest.raises(WireError):
        wire.parse_reply(mutate(data))  # type: ignore[operator]


def test_compression_pointer_must_point_backwards() -> None:
    data = b"\x00" * 12 + b"\x03abc\xc0\x0c"
    with pytest.raises(ValueError, match="backwards"):
        wire.read_name(data, 12)


def test_cached_answer_gets_new_id_client_case_and_counted_down_ttls() -> None:
    upstream_q = make_query("example.org")
    data = upstream_reply(upstream_q, "example.org. 300 A 192.0.2.1", edns=False)
    cache = Cache(CacheConfig())
    entry = cache.put(b"k", wire.parse_reply(data), now=1000.0)
    assert entry is not None
    client = wire.parse_query(make_query("EXAMPLE.org", use_edns=0))
    out = dns.message.from_wire(render(entry, client, 1120.5, 1232))
    assert out.id == 0x1234
    assert out.question[0].name.to_text() == "EXAMPLE.org."
    assert out.answer[0].ttl == 180
    assert out.edns == 0 and out.payload == 1232


def test_cache_is_lru_bounded() -> None:
    cache = Cache(CacheConfig(max_entries=2))
    data = upstream_reply(make_query(), "example.org. 300 A 192.0.2.1")
    reply = wire.parse_reply(data)
    for key in (b"a", b"b", b"c"):
        cache.put(key, reply, 0.0)
        cache.get(b"a", 0.0)
    assert len(cache) == 2
    assert cache.get(b"a", 0.0) is not None and cache.get(b"b", 0.0) is None


def test_ttl_clamps_apply_to_lifetime_and_output() -> None:
    cache = Cache(CacheConfig(min_ttl=60, max_ttl=120))
    short = wire.parse_reply(upstream_reply(make_query(), "example.org. 5 A 192.0.2.1"))
    long = wire.parse_reply(upstream_reply(make_query(), "example.org. 9999 A 192.0.2.1"))
    assert cache.lifetime(short) == 60 and cache.lifetime(long) == 120


def test_truncate_keeps_question_and_opt_and_sets_tc() -> None:
    query = make_query("big.example.org", "TXT", use_edns=0)
    texts = [f'big.example.org. 300 TXT "{"x" * 200}{i}"' for i in range(10)]
    data = upstream_reply(query, *texts)
    cut = wire.truncate(data, 512)
    msg = dns.message.from_wire(cut)
    assert msg.flags & dns.flags.TC and not msg.answer and msg.edns == 0
    assert wire.truncate(data, 65535) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_raise_wire_error(data: bytes) -> None:
    for parse in (wire.parse_query, wire.parse_reply):
        try:
            parse(data)
        except WireError:
            pass


def test_records_outside_the_question_tree_are_stripped() -> None:
    query = make_query("www.example.org")
    data = upstream_reply(query, "www.example.org. 300 CNAME cdn.example.net.",
                          "cdn.example.net. 60 A 192.0.2.7",
                          "evil.example.com. 86400 A 203.0.113.66",
                          authority=("example.net. 300 NS ns.evil.example.com.",
                                     "evil.example.com. 300 NS ns.evil.example.com."))
    reply = wire.parse_reply(data)
    assert (reply.an, reply.ns, reply.ar) == (2, 1, 0)
    assert reply.addresses == ("192.0.2.7",)
    assert b"evil" in reply.body  # the NS target name inside kept RDATA
    assert reply.body.count(b"\x04evil") == 1


ADDRESS_REPLIES = [  # (name, type, answers, EDNS, read in the short pass)
    ("www.example.org", "A", ("www.example.org. 300 A 192.0.2.7",), True, True),
    ("www.example.org", "A", ("www.example.org. 30 A 192.0.2.7",
                              "www.example.org. 60 A 192.0.2.8"), True, True),
    ("v6.example.org", "AAAA", ("v6.example.org. 5 AAAA 2001:db8::1",), False, True),
    ("www.example.org", "A", (), True, True),
    ("www.example.org", "A", ("www.example.org. 300 CNAME cdn.example.net.",
                              "cdn.example.net. 60 A 192.0.2.7"), True, False),
    ("www.example.org", "MX", ("www.example.org. 300 MX 10 mail.example.org.",), True,
     False),
]


@pytest.mark.parametrize(("name", "rdtype", "answers", "edns", "short_pass"),
                         ADDRESS_REPLIES)
def test_the_short_reading_of_address_replies_agrees_with_the_full_one(
    name: str, rdtype: str, answers: tuple[str, ...], edns: bool, short_pass: bool
) -> None:
    """parse_reply reads plain address answers in a short pass; where it does, the Reply
    must be exactly the one the full reading gives."""
    data = upstream_reply(make_query(name, rdtype, use_edns=0), *answers, edns=edns)
    qid, flags, _qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    short = wire._parse_address_reply(data, qid, flags, an, ar)
    full = wire._parse_reply_body(data, qid, flags, an, ns, ar)
    assert (short is not None) is short_pass
    if short is not None:
        assert short == full
    assert wire.parse_reply(data) == full


def test_the_short_reading_keeps_an_extended_rcode_and_refuses_trailing_bytes() -> None:
    data = upstream_reply(make_query("www.example.org", use_edns=0),
                          "www.example.org. 300 A 192.0.2.7")
    qid, flags, _qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    assert wire._parse_address_reply(data + b"\x00", qid, flags, an, ar) is None
    opt_ttl = len(data) - 11 + 5
    bumped = data[:opt_ttl] + b"\x01" + data[opt_ttl + 1:]   # extended rcode bits = 1
    short = wire._parse_address_reply(bumped, qid, flags, an, ar)
    full = wire._parse_reply_body(bumped, qid, flags, an, ns, ar)
    assert short is not None and short == full and short.rcode == 16


FORK_PROBE = """
import os
from familydns.resolver import wire
wire.random_bytes(1)  # the parent's buffer is filled
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write_end, wire.random_bytes(32))
    os._exit(0)
os.waitpid(pid, 0)
child = os.read(read_end, 32)
print(len(child) == 32 and child != wire.random_bytes(32))
"""


def test_random_bytes_are_never_shared_with_a_forked_worker() -> None:
    """IDs and 0x20 bits come from a buffer of os.urandom; a forked child must not
    draw the same bytes as its parent (the buffer is dropped at fork). The fork runs in
    a fresh single-threaded interpreter, as a worker's would."""
    result = subprocess.run([sys.executable, "-c", FORK_PROBE], capture_output=True,
                            text=True, timeout=30, check=True)
    assert result.stdout.strip() == "True"


def test_random_bytes_span_a_refill_of_the_buffer() -> None:
    taken = [wire.random_bytes(1000) for _ in range(10)]
    assert all(len(chunk) == 1000 for chunk in taken) and len(set(taken)) == 10
    assert 0 <= wire.random_id() < 65536


def test_a_ttl_sent_with_the_top_bit_set_is_served_as_parsed() -> None:
    """The cache serves a fresh entry's body as it is, so the body must carry the TTLs
    the parser kept (top bit cleared), in both readings."""
    for answers in (("www.example.org. 300 A 192.0.2.7",),
                    ("www.example.org. 300 CNAME cdn.example.net.",
                     "cdn.example.net. 60 A 192.0.2.7")):
        data = bytearray(upstream_reply(make_query("www.example.org", use_edns=0), *answers))
        reply = wire.parse_reply(bytes(data))
        first = 12 + len(reply.question) + reply.ttl_offsets[0]
        data[first] |= 0x80
        bumped = wire.parse_reply(bytes(data))
        assert bumped.ttls == reply.ttls and bumped.body == reply.body


def test_a_fresh_cache_entry_is_served_with_its_clamped_ttls() -> None:
    cache = Cache(CacheConfig(min_ttl=120))
    data = upstream_reply(make_query("www.example.org", use_edns=0),
                          "www.example.org. 30 A 192.0.2.7")
    entry = cache.put(b"k", wire.parse_reply(data), now=1000.0)
    assert entry is not None
    query = wire.parse_query(make_query("www.example.org"))
    for now, ttl in ((1000.0, 120), (1000.9, 120), (1001.0, 119), (1010.5, 110)):
        answer = dns.message.from_wire(render(entry, query, now, 1232))
        assert answer.answer[0].ttl == ttl, now
