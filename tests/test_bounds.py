"""Resource bounds: nothing a client does makes familydns hold more than its limits.

The cache stays at its cap, idle and slow-loris TCP connections are closed at the idle
timeout while UDP keeps answering, connections beyond the cap are refused and counted,
one connection cannot have more than ``tcp_max_pipeline`` lookups going, and a client
that sends without reading is cut off instead of growing a write buffer without end.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.conftest import Running, StartServer, base_config
from tests.test_spoofing import blast
from tests.upstream import FakeUpstream

DROPPED = "familydns_dropped_queries_total"


def frame(name: str, rdtype: str = "A", qid: int = 1) -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = qid
    wire = q.to_wire()
    return struct.pack("!H", len(wire)) + wire


async def test_the_cache_stays_at_its_cap(start_server: StartServer) -> None:
    server = await start_server(cache={"max_entries": 500})
    replies = await blast(server, [f"u{i}.example.org" for i in range(3_000)])
    assert all(dns.message.from_wire(r).rcode() == dns.rcode.NXDOMAIN for r in replies)
    assert server.metric("familydns_cache_entries") == 500
    assert server.metric("familydns_cache_evictions_total") == 2_500
    assert (await server.query("u2999.example.org")).rcode() == dns.rcode.NXDOMAIN


async def test_the_answer_memo_stays_bounded_and_keeps_the_names_still_asked(
        start_server: StartServer) -> None:
    """One-off names push older answers out of the memo; a name asked again meanwhile
    stays, so it keeps being answered without decoding (counted as a cache hit)."""
    server = await start_server()
    resolver = server.app.resolver
    assert resolver is not None
    resolver.memo_max = 100
    def remembered() -> bool:
        keys = [*resolver.memo, *resolver._older]
        return any(key[1][10:].startswith(b"\x03hot") for key in keys)

    await server.query("hot.example.org")
    for start in range(0, 1_000, 40):
        await blast(server, [f"once{i}.example.org" for i in range(start, start + 40)])
        assert remembered()
        assert len(resolver.memo) + len(resolver._older) <= 100
        await server.query("hot.example.org")


@pytest.fixture
async def tcp_server(start_server: StartServer) -> Running:
    return await start_server(server={"tcp_idle_timeout": 0.5, "tcp_max_connections": 1200})


async def closed(reader: asyncio.StreamReader, timeout: float = 2.0) -> bool:
    """True when the server ends the connection (FIN, or RST for unread input) with
    nothing sent back."""
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionResetError:
        return True


async def until_closed(reader: asyncio.StreamReader, opened: float) -> float:
    """Seconds from ``opened`` until the server closed the connection."""
    assert await closed(reader, 5.0)
    return asyncio.get_running_loop().time() - opened


async def test_idle_and_slow_loris_connections_are_closed_while_udp_answers(
        tcp_server: Running) -> None:
    loop = asyncio.get_running_loop()
    conns = []
    for i in range(1100):
        reader, writer = await asyncio.open_connection(tcp_server.host, tcp_server.port)
        if i >= 1000:
            writer.write(b"\x00")  # slow loris: one byte of the length prefix, then nothing
        conns.append((reader, writer, loop.time()))
    for _ in range(20):  # UDP is not held up while 1100 connections sit there
        reply = await tcp_server.query("example.org", "A", timeout=0.5)
        assert reply.rcode() == dns.rcode.NOERROR
    closed_after = await asyncio.gather(*(until_closed(r, t) for r, _w, t in conns))
    for _r, writer, _t in conns:
        writer.close()
    assert max(closed_after) < 0.5 + 1.0
    await asyncio.sleep(0.05)
    assert tcp_server.metric("familydns_tcp_connections") == 0


async def test_a_dribbling_body_is_bounded_by_the_idle_timeout_too(tcp_server: Running) -> None:
    """One byte every 0.3 s would reset a per-read timer forever: the body as a whole
    must arrive within the idle timeout."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(tcp_server.host, tcp_server.port)
    opened = loop.time()
    writer.write(b"\x00\x40")                 # a 64-byte body, sent one byte at a time
    for _ in range(10):
        try:
            if await asyncio.wait_for(reader.read(), 0.3) == b"":
                break
        except TimeoutError:
            writer.write(b"a")
        except ConnectionResetError:
            break
    assert loop.time() - opened < 0.5 + 0.5
    writer.close()


async def test_connections_beyond_the_cap_are_refused_and_counted(
        start_server: StartServer) -> None:
    server = await start_server(server={"tcp_max_connections": 5, "tcp_idle_timeout": 10})
    held = [await asyncio.open_connection(server.host, server.port) for _ in range(5)]
    for reader, writer in held:  # each of the five is served
        writer.write(frame("example.org"))
        assert len(await asyncio.wait_for(reader.readexactly(2), 2.0)) == 2
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(frame("example.org"))
    assert await closed(reader)                                 # closed, unanswered
    writer.close()
    assert server.metric(DROPPED, reason="tcp_connection_limit") == 1
    held[0][1].close()
    await asyncio.sleep(0.05)
    reply = await server.query("example.org", tcp=True)         # a freed slot is reused
    assert reply.rcode() == dns.rcode.NOERROR
    for _reader, writer in held[1:]:
        writer.close()


async def test_one_connection_has_at_most_tcp_max_pipeline_lookups_going(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    upstream.set_mode("stall", delay=0.4)
    server = await start_server(config=base_config(
        [upstream.url("udp")], server={"tcp_max_pipeline": 4}, upstreams={"timeout": 2.0}))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"".join(frame(f"p{i}.example.org", qid=i) for i in range(12)))
    await asyncio.sleep(0.2)
    assert len(upstream.queries) == 4
    ids = set()
    for _ in range(12):
        size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3.0))[0]
        ids.add(dns.message.from_wire(await reader.readexactly(size)).id)
    assert ids == set(range(12))
    writer.close()


def held_by_a_process(server_port: int, client_port: int) -> bool:
    """Whether an open file descriptor still holds the server's end of a connection.

    /proc/net/tcp lists every socket with the inode of its file; a socket closed with
    unsent data lingers in the kernel as an orphan with inode 0, which costs familydns
    nothing (no descriptor, no buffer, bounded by the kernel's orphan limit)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)) == (
                server_port, client_port):
            return inode != "0"
    return False


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp")
async def test_a_client_flooding_without_reading_is_disconnected(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    """The answers pile up in the server's write buffer; past 256 KB the connection must
    be dropped. A plain ``close()`` is not enough: asyncio then waits to flush a buffer the
    client never reads, so the descriptor and the buffer would stay for good."""
    upstream.add("big.example.org", "TXT", tuple("x" * 250 for _ in range(16)))
    server = await start_server()
    assert (await server.query("big.example.org", "TXT", tcp=True)).answer
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (server.host, server.port))
    client_port = sock.getsockname()[1]
    query = frame("big.example.org", "TXT")
    try:
        for _ in range(500):
            await loop.sock_sendall(sock, query * 20)
            await asyncio.sleep(0.005)  # the server shares this loop: let it answer
            if server.metric(DROPPED, reason="tcp_client_not_reading"):
                break
        assert server.metric(DROPPED, reason="tcp_client_not_reading") >= 1
        for _ in range(100):
            if not held_by_a_process(server.port, client_port):
                break
            await asyncio.sleep(0.02)
        assert not held_by_a_process(server.port, client_port), "the server still holds it"
    finally:
        sock.close()
