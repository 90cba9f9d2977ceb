"""Hardening features through the live server: access list, rate limit, per-client bound,
RFC 8482 ANY, rebinding protection and bailiwick checks on upstream answers.

These are specifications written before the wiring; each states what a client sees.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from dnslib import QTYPE, RR, A, DNSRecord

from familydns.config import load_config_data
from tests.conftest import Running, StartServer, base_config, rrset_texts
from tests.upstream import FakeUpstream

KID, ADULT = "127.0.0.2", "127.0.0.3"
DROPPED = "familydns_dropped_queries_total"


async def ask(server: Running, name: str, rdtype: str = "A", source: str = "127.0.0.1",
              tcp: bool = False, timeout: float = 3.0) -> dns.message.Message:
    return await server.query(name, rdtype, tcp=tcp, timeout=timeout, source=source)


# ---------------------------------------------------------------- access list


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_clients_outside_allow_from_are_refused_without_an_upstream_query(
        start_server: StartServer, upstream: FakeUpstream, tcp: bool) -> None:
    server = await start_server(server={"allow_from": ["127.0.0.2/32"]})
    refused = await ask(server, "example.org", source="127.0.0.1", tcp=tcp)
    assert refused.rcode() == dns.rcode.REFUSED
    assert not refused.answer
    assert upstream.queries == []
    assert server.metric(DROPPED, reason="not_allowed") == 1
    allowed = await ask(server, "example.org", source="127.0.0.2", tcp=tcp)
    assert rrset_texts(allowed, "A") == ["192.0.2.1"]


# ---------------------------------------------------------------- rate limit


async def test_the_rate_limit_drops_a_clients_burst_beyond_its_bucket(
        start_server: StartServer) -> None:
    """rate_limit 5/s with a burst of 5: of ten queries sent at once, five are answered
    and the rest get no answer (dropped, so a spoofed flood is not reflected) or REFUSED;
    another client keeps its own bucket."""
    server = await start_server(server={"rate_limit": 5, "rate_limit_burst": 5})
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((server.host, server.port))
    try:
        for i in range(10):
            q = dns.message.make_query("example.org", "A")
            q.id = i
            sock.send(q.to_wire())
        answered = refused = 0
        while True:
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5)
            except TimeoutError:
                break
            reply = dns.message.from_wire(data)
            answered += reply.rcode() == dns.rcode.NOERROR
            refused += reply.rcode() == dns.rcode.REFUSED
    finally:
        sock.close()
    assert answered == 5
    assert server.metric(DROPPED, reason="rate_limit") + refused >= 5
    other = await ask(server, "example.org", source="127.0.0.3")
    assert rrset_texts(other, "A") == ["192.0.2.1"]


async def test_one_client_can_keep_only_so_many_lookups_waiting(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    upstream.set_mode("stall", delay=0.5)
    server = await start_server(config=base_config(
        [upstream.url("udp")], server={"max_inflight_per_client": 3},
        upstreams={"timeout": 2.0}))
    results = await asyncio.gather(
        *(ask(server, f"w{i}.example.org", timeout=1.5) for i in range(5)),
        ask(server, "other.example.org", source="127.0.0.3", timeout=1.5),
        return_exceptions=True)
    answered = [r for r in results[:5] if isinstance(r, dns.message.Message)]
    assert len(answered) == 3
    assert isinstance(results[5], dns.message.Message)       # another client is not held
    assert server.metric(DROPPED, reason="client_inflight_limit") == 2


# ---------------------------------------------------------------- ANY


async def test_any_gets_the_rfc8482_answer_and_no_upstream_query(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    server = await start_server()
    for tcp in (False, True):
        reply = await ask(server, "example.org", "ANY", tcp=tcp)
        assert reply.rcode() == dns.rcode.NOERROR
        [rrset] = reply.answer
        assert rrset.rdtype == dns.rdatatype.HINFO
        assert [rd.cpu for rd in rrset] == [b"RFC8482"]
    assert upstream.queries == []


# ---------------------------------------------------------------- rebinding


PROFILES = [
    {"name": "kid", "age": 8, "devices": [{"ip": KID}]},
    {"name": "adult", "age": 40, "devices": [{"ip": ADULT}]},
    {"name": "teen", "age": 14, "rebinding_protection": False,
     "devices": [{"ip": "127.0.0.4"}]},
]
# (name, type, what the upstream answers, what a protected child gets)
REBINDING = [
    ("rebind.example.com", "A", "192.168.1.10", "blocked"),
    ("alias.example.com", "A", "CNAME to rebind.example.com", "blocked"),
    ("mapped.example.com", "AAAA", "::ffff:192.168.1.10 (IPv4-mapped)", "blocked"),
    ("nat64.example.com", "AAAA", "64:ff9b::c0a8:10a", "blocked"),
    ("loop.example.com", "A", "127.0.0.1", "blocked"),
    ("svc.example.com", "HTTPS", "1 . alpn=h2 ipv4hint=10.0.0.1", "blocked"),
    ("router.lan", "A", "192.168.1.1", "answered"),          # household.local_domains
    ("nas.home.arpa", "A", "192.168.1.20", "answered"),
    ("public.example.com", "A", "192.0.2.80", "answered"),
    ("svc-public.example.com", "HTTPS", "1 . ipv4hint=192.0.2.81", "answered"),
]


@pytest.fixture
async def family(start_server: StartServer, upstream: FakeUpstream) -> Running:
    upstream.add("rebind.example.com", "A", "192.168.1.10")
    upstream.add("alias.example.com", "CNAME", "rebind.example.com")
    upstream.add("mapped.example.com", "AAAA", "::ffff:c0a8:10a")  # ::ffff:192.168.1.10
    upstream.add("nat64.example.com", "AAAA", "64:ff9b::c0a8:10a")
    upstream.add("loop.example.com", "A", "127.0.0.1")
    upstream.add("svc.example.com", "HTTPS", "1 . alpn=h2 ipv4hint=10.0.0.1")
    upstream.add("router.lan", "A", "192.168.1.1")
    upstream.add("nas.home.arpa", "A", "192.168.1.20")
    upstream.add("public.example.com", "A", "192.0.2.80")
    upstream.add("svc-public.example.com", "HTTPS", "1 . ipv4hint=192.0.2.81")
    return await start_server(profiles=PROFILES)


@pytest.mark.parametrize("order", ["child first", "adult first"])
@pytest.mark.parametrize(("name", "rdtype", "upstream_says", "child_gets"), REBINDING,
                         ids=[f"{r[0]}/{r[1]}" for r in REBINDING])
async def test_rebinding_protection(family: Running, name: str, rdtype: str,
                                    upstream_says: str, child_gets: str, order: str) -> None:
    """A public name answering with a private address is blocked for a protected child,
    whether the answer comes fresh or from the cache another profile filled; local names
    and unprotected profiles are untouched."""
    sources = [KID, ADULT] if order == "child first" else [ADULT, KID]
    replies = {source: await ask(family, name, rdtype, source=source) for source in sources}
    child = replies[KID]
    if child_gets == "blocked":
        assert child.rcode() == dns.rcode.NXDOMAIN and not child.answer
    else:
        assert child.rcode() == dns.rcode.NOERROR and child.answer
    adult = replies[ADULT]
    assert adult.rcode() == dns.rcode.NOERROR and adult.answer
    teen = await ask(family, name, rdtype, source="127.0.0.4")
    assert teen.rcode() == dns.rcode.NOERROR and teen.answer


# ---------------------------------------------------------------- bailiwick


def stuffing(upstream: FakeUpstream) -> Any:
    """An upstream that adds records for names it was not asked about."""

    def respond(request: DNSRecord, transport: str) -> DNSRecord | None:
        if str(request.q.qname).rstrip(".").lower() != "example.org":
            return None
        reply = upstream.build_answer(request)
        reply.add_answer(RR("evil.example.net", QTYPE.A, ttl=86400, rdata=A("203.0.113.66")))
        reply.add_auth(RR("example.net", QTYPE.A, ttl=86400, rdata=A("203.0.113.67")))
        reply.add_ar(RR("ns.evil.example.net", QTYPE.A, ttl=86400, rdata=A("203.0.113.68")))
        return reply

    return respond


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_records_outside_the_question_are_never_served_or_cached(
        start_server: StartServer, upstream: FakeUpstream, tcp: bool) -> None:
    upstream.responder = stuffing(upstream)
    server = await start_server()
    reply = await server.query("example.org", "A", tcp=tcp)
    assert reply.rcode() == dns.rcode.NOERROR
    owners = {rrset.name.to_text() for section in (reply.answer, reply.authority,
                                                    reply.additional) for rrset in section}
    assert owners <= {"example.org."}
    assert rrset_texts(reply, "A") == ["192.0.2.1"]
    for name in ("evil.example.net", "example.net", "ns.evil.example.net"):
        other = await server.query(name, "A", tcp=tcp)
        assert "203.0.113" not in other.to_text()
        assert upstream.count(name, "A") == 1                 # asked, not taken from cache


async def test_a_reload_applies_a_new_access_list(start_server: StartServer) -> None:
    server = await start_server()
    assert (await server.query("example.org", "A")).rcode() == dns.rcode.NOERROR
    data = base_config([server.app.config.upstreams.servers[0].url],
                       server={"allow_from": ["127.0.0.2/32"]})
    server.app.load_config = lambda: load_config_data(data, "test config")
    assert await server.app.reload()
    assert (await server.query("example.org", "A")).rcode() == dns.rcode.REFUSED


async def test_a_response_from_a_refused_source_gets_no_answer(
        start_server: StartServer) -> None:
    server = await start_server(server={"allow_from": ["127.0.0.2/32"]})
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((server.host, server.port))
    response = dns.message.make_response(dns.message.make_query("example.org", "A"))
    await loop.sock_sendall(sock, response.to_wire())
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 512), 0.3)
    except TimeoutError:
        data = None
    sock.close()
    assert data is None
    assert server.metric("familydns_dropped_queries_total", reason="not_allowed") == 1
