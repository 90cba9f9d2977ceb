"""Tests for the FakeUpstream test server, driven by an independent client (dnspython)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trustme
from dnslib import DNSRecord

from tests.upstream import FakeUpstream, SpoofSender, make_tls

HOST = "127.0.0.1"


@pytest.fixture
async def up() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        server.add("example.org", "A", "192.0.2.1", ttl=300)
        server.add("example.org", "AAAA", "2001:db8::1", ttl=300)
        server.add("example.org", "MX", "10 mail.example.org", ttl=3600)
        server.add("example.org", "TXT", "v=spf1 -all")
        server.add("www.example.org", "CNAME", "cdn.example.net", ttl=120)
        server.add("cdn.example.net", "CNAME", "edge.example.net", ttl=60)
        server.add("edge.example.net", "A", "192.0.2.10", ttl=30)
        yield server


def query(
    name: str, rtype: str = "A", *, edns: bool = True, do: bool = False
) -> dns.message.Message:
    if edns:
        return dns.message.make_query(name, rtype, use_edns=0, payload=1232, want_dnssec=do)
    return dns.message.make_query(name, rtype, use_edns=False)


async def udp(
    up: FakeUpstream, q: dns.message.Message, timeout: float = 1.0
) -> dns.message.Message:
    return await dns.asyncquery.udp(q, HOST, port=up.port, timeout=timeout)


async def tcp(
    up: FakeUpstream, q: dns.message.Message, timeout: float = 1.0
) -> dns.message.Message:
    return await dns.asyncquery.tcp(q, HOST, port=up.port, timeout=timeout)


async def raw_udp(up: FakeUpstream, wire: bytes) -> bytes:
    """Send without any ID/source checks, to see exactly what the upstream returns."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_sendto(sock, wire, up.address)
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 1)
    return data


def rdatas(msg: dns.message.Message, rtype: str) -> list[str]:
    kind = dns.rdatatype.from_text(rtype)
    return [rd.to_text() for rrset in msg.answer if rrset.rdtype == kind for rd in rrset]


async def test_basic_records_over_udp_and_tcp(up: FakeUpstream) -> None:
    for send in (udp, tcp):
        a = await send(up, query("example.org", "A"))
        assert rdatas(a, "A") == ["192.0.2.1"] and a.answer[0].ttl == 300
        assert rdatas(await send(up, query("example.org", "AAAA")), "AAAA") == ["2001:db8::1"]
        assert rdatas(await send(up, query("example.org", "MX")), "MX") == ["10 mail.example.org."]
        assert rdatas(await send(up, query("example.org", "TXT")), "TXT") == ['"v=spf1 -all"']
    assert up.port == up.address[1] and up.url("udp") == f"udp://{HOST}:{up.port}"
    assert up.url("tcp") == f"tcp://{HOST}:{up.port}"


async def test_query_case_is_echoed(up: FakeUpstream) -> None:
    r = await udp(up, query("ExAmPlE.oRg", "A"))
    assert r.question[0].name.to_text() == "ExAmPlE.oRg."
    assert r.answer[0].name.to_text() == "ExAmPlE.oRg."
    assert up.queries[-1].qname == "example.org"


async def test_cname_chain_is_followed(up: FakeUpstream) -> None:
    r = await udp(up, query("www.example.org", "A"))
    assert [(s.name.to_text(), dns.rdatatype.to_text(s.rdtype)) for s in r.answer] == [
        ("www.example.org.", "CNAME"),
        ("cdn.example.net.", "CNAME"),
        ("edge.example.net.", "A"),
    ]
    assert rdatas(r, "A") == ["192.0.2.10"]
    only = await udp(up, query("www.example.org", "CNAME"))
    assert rdatas(only, "CNAME") == ["cdn.example.net."] and len(only.answer) == 1


async def test_cname_to_missing_name_and_loop(up: FakeUpstream) -> None:
    up.add("dangling.example.org", "CNAME", "gone.example.org")
    r = await udp(up, query("dangling.example.org"))
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert rdatas(r, "CNAME") == ["gone.example.org."]
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    up.add("loop1.example.org", "CNAME", "loop2.example.org")
    up.add("loop2.example.org", "CNAME", "loop1.example.org")
    assert (await udp(up, query("loop1.example.org"))).rcode() == dns.rcode.SERVFAIL


async def test_nxdomain_and_nodata_carry_soa(up: FakeUpstream) -> None:
    nx = await udp(up, query("nothere.example.org"))
    assert nx.rcode() == dns.rcode.NXDOMAIN and not nx.answer
    soa = nx.authority[0]
    assert soa.name.to_text() == "example.org." and soa.ttl == 300 and soa[0].minimum == 60
    up.soa_minimum = 15
    nodata = await udp(up, query("example.org", "SRV"))
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0][0].minimum == 15
    up.add("a.b.example.org", "A", "192.0.2.7")
    ent = await udp(up, query("b.example.org"))
    assert ent.rcode() == dns.rcode.NOERROR and not ent.answer
    other = await udp(up, query("cdn.example.net", "AAAA"))
    assert other.authority[0].name.to_text() == "example.net."
    apex = await udp(up, query("example.org", "SOA"))
    assert rdatas(apex, "SOA") and not apex.authority


async def test_big_answer_truncates_over_udp_only(up: FakeUpstream) -> None:
    up.add_many_txt("big.example.org", 30)
    r = await udp(up, query("big.example.org", "TXT"))
    assert r.flags & dns.flags.TC and not r.answer
    full = await tcp(up, query("big.example.org", "TXT"))
    assert not full.flags & dns.flags.TC and len(rdatas(full, "TXT")) == 30
    small = await udp(up, query("example.org", "TXT", edns=False))
    assert not small.flags & dns.flags.TC


async def test_truncate_mode(up: FakeUpstream) -> None:
    up.mode = "truncate"
    r = await udp(up, query("example.org"))
    assert r.flags & dns.flags.TC and not r.answer and r.edns == 0
    t = await tcp(up, query("example.org"))
    assert not t.flags & dns.flags.TC and rdatas(t, "A") == ["192.0.2.1"]


async def test_tcp_pipelining_three_queries_one_connection(up: FakeUpstream) -> None:
    reader, writer = await asyncio.open_connection(HOST, up.port)
    names = ["example.org", "www.example.org", "nothere.example.org"]
    msgs = [query(n) for n in names]
    writer.write(b"".join(len(w).to_bytes(2, "big") + w for w in (m.to_wire() for m in msgs)))
    await writer.drain()
    replies = {}
    for _ in names:
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 1), "big")
        reply = dns.message.from_wire(await reader.readexactly(size))
        replies[reply.id] = reply
    writer.close()
    await writer.wait_closed()
    assert set(replies) == {m.id for m in msgs}
    assert replies[msgs[2].id].rcode() == dns.rcode.NXDOMAIN
    assert up.connections["tcp"] == 1 and up.count(transport="tcp") == 3


async def test_stall_and_drop_timing(up: FakeUpstream) -> None:
    up.set_mode("stall", delay=0.3)
    start = time.monotonic()
    r = await udp(up, query("example.org"))
    assert rdatas(r, "A") == ["192.0.2.1"] and time.monotonic() - start >= 0.28
    up.mode = "drop"
    start = time.monotonic()
    with pytest.raises(dns.exception.Timeout):
        await udp(up, query("example.org"), timeout=0.2)
    with pytest.raises(dns.exception.Timeout):
        await tcp(up, query("example.org"), timeout=0.2)
    assert time.monotonic() - start < 1.0 and up.count("example.org") == 3


async def test_per_transport_override(up: FakeUpstream) -> None:
    up.set_mode("drop", "udp")
    with pytest.raises(dns.exception.Timeout):
        await udp(up, query("example.org"), timeout=0.2)
    assert rdatas(await tcp(up, query("example.org")), "A") == ["192.0.2.1"]
    up.mode = "normal"
    assert rdatas(await udp(up, query("example.org")), "A") == ["192.0.2.1"]
    with pytest.raises(ValueError):
        up.mode = "nonsense"


async def test_error_modes(up: FakeUpstream) -> None:
    up.mode = "servfail"
    r = await udp(up, query("example.org"))
    assert r.rcode() == dns.rcode.SERVFAIL and r.edns == 0
    up.mode = "refused"
    assert (await tcp(up, query("example.org"))).rcode() == dns.rcode.REFUSED
    up.mode = "garbage"
    with pytest.raises(dns.exception.DNSException):
        await udp(up, query("example.org"))
    with pytest.raises(dns.exception.DNSException):
        await tcp(up, query("example.org"))
    up.mode = "wrong_id"
    q = query("example.org")
    reply = dns.message.from_wire(await raw_udp(up, q.to_wire()))
    assert reply.id != q.id and rdatas(reply, "A") == ["192.0.2.1"]


async def test_edns_is_echoed_and_recorded(up: FakeUpstream) -> None:
    r = await udp(up, query("example.org", do=True))
    assert r.edns == 0 and r.ednsflags & dns.flags.DO
    assert up.last_edns() == (1232, True)
    plain = await udp(up, query("example.org", edns=False))
    assert plain.edns == -1 and up.last_edns() is None
    await tcp(up, query("example.org"))
    assert up.last_edns() == (1232, False) and up.last_edns("udp") is None


async def test_counts_and_records(up: FakeUpstream) -> None:
    await udp(up, query("example.org", "A"))
    await udp(up, query("EXAMPLE.org.", "AAAA"))
    await tcp(up, query("www.example.org", "A"))
    assert up.count() == 3 and up.count("example.org") == 2
    assert up.count("Example.Org.", "aaaa") == 1 and up.count(qtype="A") == 2
    assert up.count(transport="tcp") == 1
    transport, qname, qtype, source, raw = up.queries[0]
    assert (transport, qname, qtype, source[0]) == ("udp", "example.org", "A", HOST)
    assert dns.message.from_wire(raw).id == up.queries[0].id
    up.reset()
    assert up.count() == 0


async def test_stop_refuses_then_start_same_port(up: FakeUpstream) -> None:
    port = up.port
    await up.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    sock.connect((HOST, port))
    sock.send(query("example.org").to_wire())
    with pytest.raises(ConnectionRefusedError):
        sock.recv(4096)
    sock.close()
    await up.start()
    assert up.port == port
    assert rdatas(await udp(up, query("example.org")), "A") == ["192.0.2.1"]
    assert rdatas(await tcp(up, query("example.org")), "A") == ["192.0.2.1"]


async def test_tls_with_trustme(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx, cafile = make_tls(ca, directory=tmp_path)
    client_ctx = ssl.create_default_context(cafile=cafile)
    async with FakeUpstream(tls_context=server_ctx) as up:
        up.add("example.org", "A", "192.0.2.1")
        assert up.url("tls") == f"tls://{HOST}:{up.tls_port}#upstream.test"
        r = await dns.asyncquery.tls(
            query("example.org"),
            HOST,
            port=up.tls_port,
            timeout=2,
            ssl_context=client_ctx,
            server_hostname="upstream.test",
        )
        assert rdatas(r, "A") == ["192.0.2.1"]
        assert up.count(transport="tls") == 1 and up.connections["tls"] == 1
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(
                HOST, up.tls_port, ssl=ssl.create_default_context(), server_hostname="upstream.test"
            )
        tls_port = up.tls_port
        await up.stop()
        await up.start()
        assert up.tls_port == tls_port
        again = await dns.asyncquery.tls(
            query("example.org"),
            HOST,
            port=tls_port,
            timeout=2,
            ssl_context=client_ctx,
            server_hostname="upstream.test",
        )
        assert rdatas(again, "A") == ["192.0.2.1"]


async def test_spoof_sender_via_upstream_socket(up: FakeUpstream) -> None:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((HOST, 0))
    client.setblocking(False)
    up.set_mode("stall", delay=0.2)
    q = query("example.org")
    client.sendto(q.to_wire(), up.address)
    [seen] = await up.wait_for(1, "example.org", "A")
    assert seen.id == q.id and seen.source == client.getsockname()
    with SpoofSender(seen.source, via=up, seed=1) as spoof:
        assert await spoof.send(50, avoid_ids=[q.id], garbage_every=10) == 50
    loop = asyncio.get_running_loop()
    forged = ids_ok = 0
    while True:
        data, source = await asyncio.wait_for(loop.sock_recvfrom(client, 4096), 1)
        assert source == up.address
        try:
            msg = dns.message.from_wire(data)
        except dns.exception.DNSException:
            continue
        if msg.id != q.id:
            forged += 1
            continue
        ids_ok += 1
        assert rdatas(msg, "A") == ["192.0.2.1"]
        break
    client.close()
    assert forged == 45 and ids_ok == 1


async def test_spoof_sender_own_socket() -> None:
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind((HOST, 0))
    target.settimeout(1)
    with SpoofSender(target.getsockname(), seed=2) as spoof:
        spoof.send_sync(5, qname="victim.example", avoid_ids=range(0x8000))
    for _ in range(5):
        msg = dns.message.from_wire(target.recv(4096))
        assert msg.id >= 0x8000 and rdatas(msg, "A") == ["203.0.113.66"]
    target.close()


async def test_responder_hook_and_malformed(up: FakeUpstream) -> None:
    def hook(request: DNSRecord, transport: str) -> DNSRecord | None:
        if str(request.q.qname).startswith("custom."):
            reply = up.build_answer(request)
            reply.header.rcode = 5  # REFUSED, only for this name
            return reply
        return None

    up.responder = hook
    assert (await udp(up, query("custom.example.org"))).rcode() == dns.rcode.REFUSED
    assert rdatas(await udp(up, query("example.org")), "A") == ["192.0.2.1"]
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await loop.sock_sendto(sock, b"\x12\x34junk", up.address)
        await asyncio.sleep(0.05)
    assert up.malformed[-1][2] == b"\x12\x34junk" and up.count() == 2
