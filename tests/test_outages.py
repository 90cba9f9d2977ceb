"""When every upstream is gone: stale answers, quick SERVFAIL, filtering unchanged.

Two kinds of outage: "drop" (packets vanish, so each try costs the upstream timeout) and
"refused" (the port is closed, so the kernel reports it at once). In both, cached names
are answered from the expired cache (RFC 8767), uncached names get SERVFAIL within the
upstream timeout plus 200 ms, blocked names stay blocked, and nothing about the failure
is remembered once the upstream is back (AdGuard Home #7292). A resolver that boots with
no network and no downloaded lists still serves from the lists it ships with.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import dns.edns
import dns.message
import dns.rcode
import pytest

from tests.conftest import FakeClock, Running, StartServer, base_config, rrset_texts
from tests.upstream import FakeUpstream

TIMEOUT = 0.5
"""upstreams.timeout in these tests (base_config's value, stated again for the bounds)."""
KID = [{"name": "kid", "age": 8, "devices": [{"ip": "127.0.0.1"}]}]


async def drop(upstream: FakeUpstream) -> None:
    upstream.set_mode("drop")


async def refuse(upstream: FakeUpstream) -> None:
    await upstream.stop()


async def recover_dropped(upstream: FakeUpstream) -> None:
    upstream.set_mode("normal")


async def recover_refused(upstream: FakeUpstream) -> None:
    await upstream.start()


Outage = Callable[[FakeUpstream], Awaitable[None]]
OUTAGES = [pytest.param(drop, recover_dropped, id="dropped"),
           pytest.param(refuse, recover_refused, id="refused")]


async def timed(server: Running, name: str, rdtype: str = "A",
                ) -> tuple[dns.message.Message, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    reply = await server.query(name, rdtype, timeout=5.0, use_edns=0)
    return reply, loop.time() - start


@pytest.fixture
async def kid(start_server: StartServer, upstream: FakeUpstream) -> Running:
    upstream.add("later.example.org", "A", "192.0.2.77")
    return await start_server(profiles=KID)


@pytest.mark.parametrize(("outage", "recover"), OUTAGES)
async def test_cached_names_are_answered_stale(kid: Running, upstream: FakeUpstream,
                                               outage: Outage, recover: Outage) -> None:
    await kid.query("example.org", "A")
    kid.clock.advance(301)                       # the TTL (300) has run out
    await outage(upstream)
    reply, seconds = await timed(kid, "example.org")
    print(f"stale answer after {seconds * 1000:.0f} ms")
    assert seconds < 1.8
    assert reply.rcode() == dns.rcode.NOERROR
    assert rrset_texts(reply, "A") == ["192.0.2.1"]
    assert reply.answer[0].ttl == 30             # RFC 8767's recommended stale TTL
    assert any(o.otype == dns.edns.EDE and o.code == dns.edns.EDECode.STALE_ANSWER
               for o in reply.options)
    assert kid.metric("familydns_cache_stale_answers_total") == 1


async def test_a_slow_upstream_gets_1_8_seconds_before_the_stale_answer(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    """With an upstream timeout longer than cache.stale_after, the client is not kept
    waiting for it: the expired answer goes out at 1.8 s (Unbound's default)."""
    server = await start_server(config=base_config([upstream.url("udp")],
                                                   upstreams={"timeout": 5.0}))
    await server.query("example.org", "A")
    server.clock.advance(301)
    upstream.set_mode("drop")
    reply, seconds = await timed(server, "example.org")
    print(f"stale answer behind a silent upstream after {seconds * 1000:.0f} ms")
    assert 1.7 < seconds < 1.8 + 0.2
    assert rrset_texts(reply, "A") == ["192.0.2.1"]


@pytest.mark.parametrize(("outage", "recover"), OUTAGES)
async def test_uncached_names_get_servfail_within_the_timeout(
        kid: Running, upstream: FakeUpstream, outage: Outage, recover: Outage) -> None:
    await outage(upstream)
    for name in ("nowhere.example.org", "nowhere.example.net"):
        reply, seconds = await timed(kid, name)
        print(f"SERVFAIL after {seconds * 1000:.0f} ms")
        assert reply.rcode() == dns.rcode.SERVFAIL     # never NXDOMAIN: we do not know
        assert seconds < TIMEOUT + 0.2


@pytest.mark.parametrize(("outage", "recover"), OUTAGES)
async def test_blocked_names_stay_blocked(kid: Running, upstream: FakeUpstream,
                                          outage: Outage, recover: Outage) -> None:
    await outage(upstream)
    for name in ("bet365.com", "www.bet365.com"):
        reply, seconds = await timed(kid, name)
        assert reply.rcode() == dns.rcode.NXDOMAIN
        assert seconds < 0.2                           # no upstream involved at all


@pytest.mark.parametrize(("outage", "recover"), OUTAGES)
async def test_failures_are_forgotten_as_soon_as_the_upstream_is_back(
        kid: Running, upstream: FakeUpstream, outage: Outage, recover: Outage) -> None:
    await outage(upstream)
    failed, _ = await timed(kid, "later.example.org")
    assert failed.rcode() == dns.rcode.SERVFAIL
    await recover(upstream)
    reply, seconds = await timed(kid, "later.example.org")
    assert reply.rcode() == dns.rcode.NOERROR
    assert rrset_texts(reply, "A") == ["192.0.2.77"]
    assert seconds < 0.2                               # at once: no cached failure, no wait


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port: int = udp.getsockname()[1]
    return port


async def test_boot_with_no_network_and_no_downloaded_lists(start_server: StartServer) -> None:
    """The boot catch-22 (Blocky #547): the resolver cannot download its lists because it
    is the resolver. It must serve from the shipped starter lists within 5 s."""
    port = closed_port()
    config = base_config(
        [f"udp://127.0.0.1:{port}"],
        profiles=KID,
        lists={"sources": [{"name": "remote", "category": "gambling",
                            "url": f"http://127.0.0.1:{port}/list.txt"}]},
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    server = await start_server(config=config, clock=FakeClock())
    blocked = await server.query("bet365.com", "A", timeout=5.0)
    other = await server.query("example.org", "A", timeout=5.0)
    seconds = loop.time() - start
    print(f"serving {seconds * 1000:.0f} ms after start")
    assert seconds < 5.0
    assert blocked.rcode() == dns.rcode.NXDOMAIN
    assert other.rcode() == dns.rcode.SERVFAIL
