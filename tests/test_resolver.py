"""The resolver core, end to end on loopback: a real client, familydns, a real upstream."""

from __future__ import annotations

import asyncio
import socket
import struct
import urllib.request
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import pytest
import trustme

from familydns.config import load_config_data
from tests.conftest import StartServer, base_config, eventually, rrset_texts, run_command
from tests.upstream import FakeUpstream, make_tls


@pytest.mark.parametrize(
    ("rdtype", "expected"),
    [
        ("A", ["192.0.2.1"]),
        ("AAAA", ["2001:db8::1"]),
        ("MX", ["10 mail.example.org."]),
        ("TXT", ['"v=spf1 -all"']),
    ],
)
async def test_forwards_common_types(start_server: StartServer, rdtype: str,
                                     expected: list[str]) -> None:
    server = await start_server()
    reply = await server.query("example.org", rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert rrset_texts(reply, rdtype) == expected
    assert reply.flags & dns.flags.RA


async def test_answers_over_tcp(start_server: StartServer) -> None:
    server = await start_server()
    reply = await server.query("example.org", "A", tcp=True)
    assert rrset_texts(reply, "A") == ["192.0.2.1"]


async def test_cache_hit_does_not_ask_upstream_again_and_ttl_counts_down(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    server = await start_server()
    first = await server.query("example.org", "A")
    server.clock.advance(100)
    second = await server.query("EXAMPLE.org", "A")
    assert upstream.count("example.org", "A") == 1
    assert first.answer[0].ttl == 300
    assert second.answer[0].ttl == 200
    assert second.question[0].name.to_text() == "EXAMPLE.org."
    assert server.metric("familydns_cache_hits_total") == 1


async def test_expired_entry_is_fetched_again(start_server: StartServer,
                                              upstream: FakeUpstream) -> None:
    server = await start_server()
    await server.query("example.org", "A")
    server.clock.advance(301)
    reply = await server.query("example.org", "A")
    assert upstream.count("example.org", "A") == 2
    assert reply.answer[0].ttl == 300


async def test_negative_answers_are_cached_for_the_soa_minimum(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    server = await start_server()
    first = await server.query("missing.example.org", "A")
    assert first.rcode() == dns.rcode.NXDOMAIN
    server.clock.advance(30)
    second = await server.query("missing.example.org", "A")
    assert second.rcode() == dns.rcode.NXDOMAIN
    assert upstream.count("missing.example.org", "A") == 1
    assert second.authority[0].ttl == 30  # SOA minimum 60, counted down by 30
    server.clock.advance(31)
    await server.query("missing.example.org", "A")
    assert upstream.count("missing.example.org", "A") == 2


async def test_nodata_is_cached_too(start_server: StartServer, upstream: FakeUpstream) -> None:
    upstream.add("v4only.example.org", "A", "192.0.2.9")
    server = await start_server()
    for _ in range(2):
        reply = await server.query("v4only.example.org", "AAAA")
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert upstream.count("v4only.example.org", "AAAA") == 1


async def test_truncated_upstream_reply_is_retried_over_tcp(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    upstream.set_mode("truncate", "udp")
    server = await start_server()
    reply = await server.query("example.org", "A")
    assert rrset_texts(reply, "A") == ["192.0.2.1"]
    assert upstream.count("example.org", "A", transport="tcp") == 1


async def test_big_answers_are_truncated_for_udp_clients_and_whole_over_tcp(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    upstream.add_many_txt("big.example.org", 30)
    server = await start_server()
    plain = await server.query("big.example.org", "TXT")  # no EDNS: 512 bytes
    assert plain.flags & dns.flags.TC and not plain.answer
    edns = await server.query("big.example.org", "TXT", use_edns=0, payload=4096)
    assert edns.flags & dns.flags.TC  # 3 KB does not fit in our 1232 cap
    assert len(edns.to_wire()) <= 1232
    whole = await server.query("big.example.org", "TXT", tcp=True)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 30


async def test_tcp_pipelining_answers_every_query_on_one_connection(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    upstream.add("slow.example.org", "A", "192.0.2.50")
    server = await start_server()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    ids = []
    for i, name in enumerate(["example.org", "slow.example.org", "example.org"]):
        q = dns.message.make_query(name, "A")
        q.id = 1000 + i
        ids.append(q.id)
        wire = q.to_wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
    await writer.drain()
    got = set()
    for _ in ids:
        size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3))[0]
        got.add(dns.message.from_wire(await reader.readexactly(size)).id)
    assert got == set(ids)
    writer.close()


async def test_fails_over_to_the_next_upstream_and_remembers(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    dead = FakeUpstream()
    await dead.start()
    dead.set_mode("drop")
    server = await start_server(upstreams=[dead.url("udp"), upstream.url("udp")])
    loop = asyncio.get_running_loop()
    reply = await server.query("example.org", "A")
    assert rrset_texts(reply, "A") == ["192.0.2.1"]
    started = loop.time()
    await server.query("example.org", "AAAA")
    assert loop.time() - started < 0.4, "a dead upstream must not be tried first again"
    assert dead.count() == 1
    assert server.metric("familydns_upstream_requests_total",
                         upstream=dead.url("udp"), result="timeout") == 1
    await dead.stop()


async def test_recovered_upstream_is_used_again(start_server: StartServer,
                                                upstream: FakeUpstream) -> None:
    first = FakeUpstream()
    first.add("example.org", "A", "192.0.2.77")
    await first.start()
    first.set_mode("drop")
    server = await start_server(upstreams=[first.url("udp"), upstream.url("udp")])
    await server.query("example.org", "A")
    first.set_mode("normal")
    pool = server.app.pool
    assert pool is not None
    for up in pool.upstreams:  # the backoff has passed
        up.down_until = 0
    reply = await server.query("example.org", "AAAA")
    assert first.count("example.org", "AAAA") == 1
    assert reply.rcode() == dns.rcode.NOERROR
    await first.stop()


async def test_connection_refused_fails_over_quickly(start_server: StartServer,
                                                     upstream: FakeUpstream) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    closed_port = sock.getsockname()[1]
    sock.close()
    server = await start_server(upstreams=[f"udp://127.0.0.1:{closed_port}",
                                           upstream.url("udp")])
    reply = await server.query("example.org", "A")
    assert rrset_texts(reply, "A") == ["192.0.2.1"]


async def test_all_upstreams_down_gives_servfail(start_server: StartServer,
                                                 upstream: FakeUpstream) -> None:
    upstream.set_mode("drop")
    server = await start_server()
    reply = await server.query("example.org", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL


async def test_serves_stale_when_upstreams_fail(start_server: StartServer,
                                                upstream: FakeUpstream) -> None:
    server = await start_server()
    await server.query("example.org", "A")
    server.clock.advance(400)
    await upstream.stop()
    reply = await server.query("example.org", "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert rrset_texts(reply, "A") == ["192.0.2.1"]
    assert reply.answer[0].ttl == 30
    assert server.metric("familydns_cache_stale_answers_total") == 1


async def test_stale_answer_comes_before_a_slow_upstream_gives_up(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    server = await start_server(config=base_config(
        [upstream.url("udp")], upstreams={"timeout": 3.0}, cache={"stale_after": 0.3}))
    await server.query("example.org", "A")
    server.clock.advance(400)
    upstream.set_mode("drop")
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await server.query("example.org", "A", use_edns=0)
    assert loop.time() - started < 1.5
    assert rrset_texts(reply, "A") == ["192.0.2.1"]
    assert any(o.otype == dns.edns.EDE for o in reply.options)


async def test_reply_with_wrong_id_is_rejected(start_server: StartServer,
                                               upstream: FakeUpstream) -> None:
    upstream.set_mode("wrong_id")
    server = await start_server()
    reply = await server.query("example.org", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert server.metric("familydns_upstream_rejected_replies_total",
                         upstream=upstream.url("udp")) >= 1


async def test_garbage_from_upstream_is_not_an_answer(start_server: StartServer,
                                                      upstream: FakeUpstream) -> None:
    upstream.set_mode("garbage")
    server = await start_server()
    reply = await server.query("example.org", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL


async def test_edns_to_upstream_uses_1232_and_passes_do(start_server: StartServer,
                                                        upstream: FakeUpstream) -> None:
    server = await start_server()
    await server.query("example.org", "A", use_edns=0, want_dnssec=True)
    assert upstream.last_edns() == (1232, True)
    await server.query("example.org", "AAAA")
    assert upstream.last_edns() == (1232, False)


async def test_concurrent_identical_misses_make_one_upstream_query(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    upstream.set_mode("stall", delay=0.2)
    server = await start_server()
    replies = await asyncio.gather(*(server.query("example.org", "A") for _ in range(20)))
    assert all(rrset_texts(r, "A") == ["192.0.2.1"] for r in replies)
    assert upstream.count("example.org", "A") == 1


@pytest.mark.parametrize(
    ("packet", "answer"),
    [
        (b"", None),
        (b"\x12", None),
        (b"\x12\x34\x01\x00\x00\x01", None),  # 6 bytes: no full header
        (b"\x12\x34\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", "FORMERR"),  # no question
        (b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01",
         "FORMERR"),  # two questions
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
         "FORMERR"),  # pointer loop in the question
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x40" + b"a" * 64 + b"\x00\x00\x01",
         "FORMERR"),  # label over 63
        (b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01",
         None),  # a response sent to us is dropped
    ],
)
async def test_malformed_packets_get_formerr_or_silence(start_server: StartServer,
                                                        packet: bytes, answer: str | None
                                                        ) -> None:
    server = await start_server()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((server.host, server.port))
    await loop.sock_sendall(sock, packet)
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.3)
    except TimeoutError:
        data = None
    sock.close()
    if answer is None:
        assert data is None
    else:
        assert data is not None
        assert data[:2] == b"\x12\x34"
        assert data[3] & 0x0F == dns.rcode.FORMERR
    assert server.metric("familydns_malformed_queries_total", transport="udp") == 1
    reply = await server.query("example.org", "A")
    assert rrset_texts(reply, "A") == ["192.0.2.1"]


async def test_edns_version_1_gets_badvers(start_server: StartServer) -> None:
    server = await start_server()
    reply = await server.query("example.org", "A", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS


async def test_tcp_zero_length_frame_closes_the_connection(start_server: StartServer) -> None:
    server = await start_server()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"\x00\x00")
    assert await asyncio.wait_for(reader.read(10), 2) == b""
    writer.close()


async def test_tcp_idle_connections_are_closed(start_server: StartServer) -> None:
    server = await start_server(server={"tcp_idle_timeout": 0.2})
    reader, writer = await asyncio.open_connection(server.host, server.port)
    assert await asyncio.wait_for(reader.read(10), 2) == b""
    writer.close()


async def test_tcp_connection_cap(start_server: StartServer) -> None:
    server = await start_server(server={"tcp_max_connections": 2})
    conns = [await asyncio.open_connection(server.host, server.port) for _ in range(3)]
    third_reader = conns[2][0]
    assert await asyncio.wait_for(third_reader.read(10), 2) == b""
    assert server.metric("familydns_dropped_queries_total", reason="tcp_connection_limit") == 1
    for _r, w in conns:
        w.close()
    await asyncio.sleep(0.05)
    reply = await server.query("example.org", "A", tcp=True)
    assert rrset_texts(reply, "A") == ["192.0.2.1"]


async def test_dig_gets_a_cached_answer(start_server: StartServer, dig: str) -> None:
    server = await start_server()
    for _ in range(2):
        code, out, _err = await run_command(dig, f"@{server.host}", "-p", str(server.port),
                                            "example.org", "A", "+short", "+tries=1")
        assert code == 0
        assert out.strip() == "192.0.2.1"
    code, out, _err = await run_command(dig, f"@{server.host}", "-p", str(server.port),
                                        "example.org", "MX", "+tcp", "+short")
    assert out.strip() == "10 mail.example.org."


async def test_metrics_endpoint_serves_prometheus_text(start_server: StartServer,
                                                       upstream: FakeUpstream) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = await start_server(metrics={"listen": f"127.0.0.1:{port}"})
    await server.query("example.org", "A")
    await server.query("example.org", "A")
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read())
    text = body.decode()
    assert 'familydns_queries_total{qtype="A",result="answered"} 1.0' in text
    assert 'familydns_queries_total{qtype="A",result="cached"} 1.0' in text
    assert "familydns_cache_entries" in text
    assert "familydns_upstream_requests_total" in text


async def test_dns_over_tls_upstream_with_a_verified_certificate(
        start_server: StartServer, tmp_path: Path) -> None:
    server_ctx, cafile = make_tls(trustme.CA(), directory=tmp_path)
    async with FakeUpstream(tls_context=server_ctx) as tls_up:
        tls_up.add("secure.example.org", "A", "192.0.2.53")
        server = await start_server(config=base_config(
            [], upstreams={"servers": [{"url": tls_up.url("tls"), "ca_file": cafile}]}))
        reply = await server.query("secure.example.org", "A")
        assert rrset_texts(reply, "A") == ["192.0.2.53"]
        reply = await server.query("missing.example.org", "A")
        assert reply.rcode() == dns.rcode.NXDOMAIN
        await server.query("secure.example.org", "AAAA")
        assert tls_up.count(transport="tls") == 3
        assert tls_up.connections["tls"] == 1, "queries share one TLS connection"


async def test_tls_upstream_with_an_untrusted_certificate_is_not_used(
        start_server: StartServer, tmp_path: Path) -> None:
    server_ctx, _cafile = make_tls(trustme.CA(), directory=tmp_path)
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    async with FakeUpstream(tls_context=server_ctx) as tls_up:
        server = await start_server(config=base_config(
            [], upstreams={"servers": [{"url": tls_up.url("tls"), "ca_file": str(other_ca)}]}))
        reply = await server.query("example.org", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert tls_up.count() == 0


async def test_ipv6_listener(start_server: StartServer, upstream: FakeUpstream) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = await start_server(server={"listen": ["[::1]:0"]})
    except Exception as exc:  # noqa: BLE001 - a machine without ::1
        pytest.skip(f"cannot bind ::1: {exc}")
    for tcp in (False, True):
        reply = await server.query("example.org", "A", tcp=tcp)
        assert rrset_texts(reply, "A") == ["192.0.2.1"]


async def test_a_lookup_in_flight_survives_a_reload_that_replaces_its_upstream(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    """The replaced pool lets its queries in flight end before it closes: the client
    gets the old upstream's answer, not SERVFAIL, and the old sockets are closed after."""
    server = await start_server()
    old_pool = server.app.pool
    assert old_pool is not None
    upstream.set_mode("stall", delay=0.3)
    asking = asyncio.create_task(server.query("example.org", "A"))
    await eventually(lambda: upstream.count("example.org", "A") == 1)
    async with FakeUpstream() as other:
        other.add("example.org", "A", "192.0.2.99")
        data = base_config([other.url("udp")])
        server.app.load_config = lambda: load_config_data(data, "test config")
        assert await server.app.reload()
        reply = await asking
        assert reply.rcode() == dns.rcode.NOERROR
        assert rrset_texts(reply, "A") == ["192.0.2.1"]
        ports = old_pool.upstreams[0].udp
        assert ports is not None
        await eventually(lambda: not ports.open_ports)


async def test_a_reload_switches_to_new_upstreams(start_server: StartServer,
                                                  upstream: FakeUpstream) -> None:
    server = await start_server()
    async with FakeUpstream() as other:
        other.add("example.org", "A", "192.0.2.99")
        data = base_config([other.url("udp")])
        server.app.load_config = lambda: load_config_data(data, "test config")
        assert await server.app.reload()
        reply = await server.query("example.org", "AAAA")
        assert other.count("example.org", "AAAA") == 1
        assert upstream.count("example.org", "AAAA") == 0
        assert reply.rcode() == dns.rcode.NOERROR


async def test_a_bug_while_answering_a_miss_is_logged_and_releases_the_query(
        start_server: StartServer, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception in the answer step must end the client's pending answer (logged by
    the listener), not leave it in flight for ever."""
    server = await start_server()
    resolver = server.app.resolver
    assert resolver is not None and server.app._inflight is not None
    answer = resolver._answer

    def broken(*args: object, **kwargs: object) -> bytes:
        monkeypatch.setattr(resolver, "_answer", answer)
        raise RuntimeError("boom")

    monkeypatch.setattr(resolver, "_answer", broken)
    with pytest.raises(dns.exception.Timeout):
        await server.query("example.org", "A", timeout=0.5)
    assert "internal error handling a UDP query" in caplog.text
    assert not server.app._inflight.tasks
    reply = await server.query("example.org", "A")
    assert rrset_texts(reply, "A") == ["192.0.2.1"]
