"""Cache poisoning from off the path: forged replies race the real one and lose.

While the upstream is slow (stall mode), thousands of forged replies reach the
resolver's upstream socket. The resolver must accept only a datagram from the upstream's
address and port, with the query's ID, the QR bit and the same question; everything
else is ignored (and counted, when it reaches the socket at all), and the client gets
the real answer. Source ports and IDs are random per query, and concurrent identical
misses share one upstream query so an attacker cannot multiply his chances (the
birthday attack of dnsmasq CVE-2020-25686).
"""

from __future__ import annotations

import asyncio
import struct

import dns.asyncquery
import dns.message
import dns.name
import dns.rcode
import pytest

from tests.conftest import Running, StartServer, base_config, rrset_texts
from tests.upstream import FakeUpstream, QueryRecord, SpoofSender

REAL = "192.0.2.53"
POISON = "203.0.113.66"
REJECTED = "familydns_upstream_rejected_replies_total"


@pytest.fixture
async def slow(start_server: StartServer, upstream: FakeUpstream) -> Running:
    """An upstream that answers after 1.5 s, well inside the resolver's 4 s timeout."""
    upstream.add("bank.example.org", "A", REAL, ttl=300)
    upstream.set_mode("stall", delay=1.5)
    return await start_server(config=base_config([upstream.url("udp")],
                                                 upstreams={"timeout": 4.0}))


def rejected(server: Running, upstream: FakeUpstream) -> float:
    return server.metric(REJECTED, upstream=upstream.url("udp"))


async def flood(server: Running, upstream: FakeUpstream, packets: list[bytes],
                sender: SpoofSender, counted: bool) -> None:
    """Send in small batches, letting the resolver read each batch before the next, so no
    datagram is lost to a full socket buffer and the count can be exact."""
    before = rejected(server, upstream)
    for i in range(0, len(packets), 32):
        for packet in packets[i:i + 32]:
            sender._emit(packet)
        if counted:
            expected = before + min(i + 32, len(packets))
            for _ in range(200):
                if rejected(server, upstream) >= expected:
                    break
                await asyncio.sleep(0.001)
        else:
            await asyncio.sleep(0)


def with_id(packet: bytes, qid: int) -> bytes:
    return struct.pack("!H", qid) + packet[2:]


async def race(server: Running, upstream: FakeUpstream, qname: str = "bank.example.org"
               ) -> tuple[asyncio.Task[dns.message.Message], QueryRecord]:
    """Start a client query and return it with the upstream query it caused."""
    client = asyncio.create_task(server.query(qname, "A", timeout=5.0))
    [sent] = await upstream.wait_for(1, qname)
    return client, sent


async def test_forged_replies_are_rejected_and_the_real_one_wins(
        slow: Running, upstream: FakeUpstream) -> None:
    client, sent = await race(slow, upstream)
    target = sent.source
    on_path = SpoofSender(target, via=upstream, seed=1)      # right address and port
    wrong_port = SpoofSender(target, seed=2)                  # a fresh socket
    # 2,000 with a wrong ID from the upstream's own address and port
    wrong_id = on_path.packets(2_000, "bank.example.org", avoid_ids=[sent.id])
    # 500 with the right ID but another question (the name, then the type)
    wrong_name = [with_id(p, sent.id) for p in on_path.packets(250, "bonk.example.org")]
    wrong_type = [with_id(p, sent.id) for p in on_path.packets(250, "bank.example.org",
                                                               qtype="AAAA")]
    # 500 that are not DNS at all
    garbage = [on_path.garbage() for _ in range(500)]
    await flood(slow, upstream, wrong_id + wrong_name + wrong_type + garbage, on_path, True)
    # 1,000 perfect forgeries (right ID and question) from the wrong source port: the
    # kernel drops them at the connected socket, so they are not even counted.
    perfect = [with_id(p, sent.id) for p in wrong_port.packets(1_000, "bank.example.org")]
    await flood(slow, upstream, perfect, wrong_port, False)
    wrong_port.close()

    reply = await client
    assert rrset_texts(reply, "A") == [REAL]
    assert rejected(slow, upstream) == 3_000
    assert on_path.sent + wrong_port.sent == 4_000
    cached = await slow.query("bank.example.org", "A")           # and the cache holds it
    assert rrset_texts(cached, "A") == [REAL]


async def test_a_forgery_differing_only_in_letter_case_is_rejected(
        slow: Running, upstream: FakeUpstream) -> None:
    """0x20: the upstream query carries the name in random letter case and the reply
    must echo it exactly, so a forgery with the right ID and port but the name in other
    letters is ignored (and counted), and the real answer wins."""
    client, sent = await race(slow, upstream)
    on_path = SpoofSender(sent.source, via=upstream, seed=3)
    before = rejected(slow, upstream)
    asked = str(sent.message.q.qname).rstrip(".")
    for letters in ("BANK.EXAMPLE.ORG", "bank.example.org"):
        if letters != asked:
            on_path._emit(with_id(on_path.forged(letters, "A"), sent.id))
    reply = await client
    assert rrset_texts(reply, "A") == [REAL]
    assert rejected(slow, upstream) >= before + 1


async def test_upstream_queries_carry_random_letter_case(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    """Each upstream query spells the name in its own random case; answers reach the
    client in the client's own spelling."""
    server = await start_server()
    spellings = set()
    for i in range(20):
        reply = await server.query(f"casetest{i}.example.org", "A")
        assert str(reply.question[0].name) == f"casetest{i}.example.org."
        [sent] = [q for q in upstream.queries if q.qname == f"casetest{i}.example.org"]
        spellings.add(str(sent.message.q.qname)[len(f"casetest{i}"):])
    assert len(spellings) > 10, spellings


async def test_a_forgery_accepted_by_id_but_for_another_name_never_lands_in_the_cache(
        slow: Running, upstream: FakeUpstream) -> None:
    client, sent = await race(slow, upstream)
    on_path = SpoofSender(sent.source, via=upstream, seed=4)
    forged = dns.message.from_wire(with_id(on_path.forged("bank.example.org"), sent.id))
    forged.answer[0].name = dns.name.from_text("other.example.org")
    on_path._emit(forged.to_wire())
    reply = await client
    assert POISON not in rrset_texts(reply, "A")
    upstream.set_mode("normal")
    other = await slow.query("other.example.org", "A")
    assert POISON not in rrset_texts(other, "A")


async def test_identical_concurrent_misses_share_one_upstream_query(
        slow: Running, upstream: FakeUpstream) -> None:
    """200 clients' worth of the same miss (50 each from four addresses, under the
    per-client bound of waiting lookups) while the upstream is slow: one query goes out."""
    sources = ["127.0.0.1", "127.0.0.4", "127.0.0.5", "127.0.0.6"]
    replies = await asyncio.gather(*(blast(slow, ["bank.example.org"] * 50, source=source)
                                     for source in sources))
    assert all(rrset_texts(dns.message.from_wire(r), "A") == [REAL]
               for batch in replies for r in batch)
    assert upstream.count("bank.example.org", "A") == 1


async def test_upstream_ids_are_not_the_clients(start_server: StartServer,
                                                upstream: FakeUpstream) -> None:
    """AdGuard forwarded the client's ID upstream (GHSA-xgx4): a client that always sends
    ID 0 would hand an attacker the ID."""
    server = await start_server()
    for i in range(50):
        q = dns.message.make_query(f"id{i}.example.org", "A")
        q.id = 0
        await dns.asyncquery.udp(q, server.host, port=server.port, timeout=3.0)
    ids = {q.id for q in upstream.queries}
    assert len(ids) > 45


UPSTREAM_QUERIES = 10_000
"""Cold names sent through the resolver; about 10 s here, most of it in the fake
upstream's dnslib encoding."""


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: object) -> None:
        fut = self.waiting.pop(data[:2], None)
        if fut is not None and not fut.done():
            fut.set_result(data)


async def blast(server: Running, names: list[str], concurrency: int = 50,
                source: str = "127.0.0.1", rdtype: str = "A") -> list[bytes]:
    """Many queries over one client socket bound to ``source``, ``concurrency`` of them
    outstanding; the answers in the order of ``names``. Cheaper than a dnspython call per
    query, so thousands fit in a few seconds."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Client, local_addr=(source, 0), remote_addr=(server.host, server.port))
    gate = asyncio.Semaphore(concurrency)
    packets = {name: dns.message.make_query(name, rdtype).to_wire() for name in set(names)}

    async def one(i: int, name: str) -> bytes:
        async with gate:
            qid = (i & 0xFFFF).to_bytes(2, "big")
            fut = loop.create_future()
            proto.waiting[qid] = fut
            transport.sendto(qid + packets[name][2:])
            return await asyncio.wait_for(fut, 5.0)

    try:
        return await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))
    finally:
        transport.close()


async def test_source_ports_vary_per_query(start_server: StartServer,
                                           upstream: FakeUpstream) -> None:
    """RFC 5452 with ``queries_per_port: 1``: with a random port per query an off-path
    attacker must guess ~2^16 ports times 2^16 IDs. Linux hands out ports at random from
    about 28,000, so 10,000 queries on fresh ports give about 8,400 distinct ones; the
    bound leaves wide room."""
    server = await start_server(config=base_config([upstream.url("udp")],
                                                   upstreams={"queries_per_port": 1}))
    names = [f"cold{i}.example.org" for i in range(UPSTREAM_QUERIES)]
    replies = await blast(server, names)
    assert all(dns.message.from_wire(r).rcode() == dns.rcode.NXDOMAIN for r in replies)
    assert len(upstream.queries) == UPSTREAM_QUERIES
    ports = {q.source[1] for q in upstream.queries}
    assert len(ports) > UPSTREAM_QUERIES // 2, (
        f"{len(ports)} distinct source ports for {UPSTREAM_QUERIES} upstream queries")


async def test_by_default_a_source_port_carries_at_most_32_queries(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    server = await start_server()
    names = [f"pooled{i}.example.org" for i in range(2_000)]
    await blast(server, names)
    ports = {q.source[1] for q in upstream.queries}
    # 2,000 / 32 = 63 sockets; the kernel may hand a closed socket's random port to a
    # later one (a birthday collision among ~28,000 ports), so allow a few fewer.
    assert 2_000 // 32 - 5 <= len(ports) <= 2_000 // 16
