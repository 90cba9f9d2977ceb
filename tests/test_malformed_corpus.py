"""A hand-made corpus of broken queries sent to the live server over UDP and TCP.

Each packet is answered FORMERR (or BADVERS / NOTIMP / REFUSED where the header says
more) or dropped, as the table states, and a valid query sent right after it on the
same socket or connection is still answered. Dropped means: nothing at all comes back,
which is what a packet without a readable header or with the QR bit set must get (a
reply to a reply is how two servers are made to loop).

Ordering makes "dropped" checkable without waiting: the valid query that follows is a
cache hit, answered synchronously like every error reply, so any reply to the bad packet
would arrive before the valid one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import dns.message
import dns.rcode
import pytest

from tests.conftest import Running, StartServer

VALID_ID = 0xBEEF
BAD_ID = 0x1234


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x0100,
           qid: int = BAD_ID) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


QUESTION = b"\x07example\x03org\x00\x00\x01\x00\x01"


def opt(version: int = 0, options: bytes = b"", size: int = 1232) -> bytes:
    return b"\x00" + struct.pack("!HHIH", 41, size, version << 16, len(options)) + options


def valid_query(qid: int = VALID_ID) -> bytes:
    return header(qid=qid) + QUESTION


@dataclass(frozen=True)
class Case:
    name: str
    packet: bytes
    expect: str
    """formerr, badvers, notimp, refused, answer (a normal answer) or drop."""
    tcp: bool = True


LABEL_64 = b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"
NAME_320 = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00\x00\x01\x00\x01"
BAD_RDLENGTH = b"\x00" + struct.pack("!HHIH", 1, 1, 60, 200) + b"\x01\x02\x03\x04"
THOUSAND_OPTIONS = b"".join(struct.pack("!HH", 65000 + i % 500, 0) for i in range(1000))

CORPUS = [
    Case("pointer loop in the question", header() + b"\xc0\x0c\x00\x01\x00\x01", "formerr"),
    Case("pointer chain in the question",
         header() + b"\x01a\xc0\x0e\xc0\x0c\x00\x01\x00\x01", "formerr"),
    Case("pointer into the header", header() + b"\xc0\x02\x00\x01\x00\x01", "formerr"),
    Case("pointer past the end", header() + b"\xc3\xff\x00\x01\x00\x01", "formerr"),
    Case("label over 63 bytes", header() + LABEL_64, "formerr"),
    Case("name over 255 bytes", header() + NAME_320, "formerr"),
    Case("name without its end", header() + b"\x07example\x03org", "formerr"),
    Case("question without type and class", header() + b"\x07example\x03org\x00", "formerr"),
    Case("qdcount 0", header(qd=0), "formerr"),
    Case("qdcount 2", header(qd=2) + QUESTION + QUESTION, "formerr"),
    Case("qdcount 2, one present", header(qd=2) + QUESTION, "formerr"),
    Case("RDLENGTH past the end in an additional record",
         header(ar=1) + QUESTION + BAD_RDLENGTH, "formerr"),
    Case("additional count past the end", header(ar=3) + QUESTION + opt(), "formerr"),
    Case("two OPT records", header(ar=2) + QUESTION + opt() + opt(), "formerr"),
    Case("OPT owned by a name", header(ar=1) + QUESTION + b"\x01x" + opt()[1:], "formerr"),
    Case("EDNS version 1", header(ar=1) + QUESTION + opt(version=1), "badvers"),
    # RFC 6891 6.1.2: unknown options are ignored, so this is an ordinary query.
    Case("1000 EDNS options", header(ar=1) + QUESTION + opt(options=THOUSAND_OPTIONS),
         "answer"),
    Case("EDNS option past the end",
         header(ar=1) + QUESTION + b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4)
         + struct.pack("!HH", 8, 40), "formerr"),
    Case("opcode UPDATE", header(flags=0x2800) + QUESTION, "notimp"),
    Case("class CHAOS (version.bind)",
         header() + b"\x07version\x04bind\x00\x00\x10\x00\x03", "refused"),
    Case("a response (QR=1) sent as a query", header(flags=0x8180) + QUESTION, "drop"),
    *(Case(f"{n}-byte datagram", header()[:n], "drop", tcp=n > 0) for n in range(12)),
]
EXPECTED_RCODE = {"formerr": dns.rcode.FORMERR, "badvers": dns.rcode.BADVERS,
                  "notimp": dns.rcode.NOTIMP, "refused": dns.rcode.REFUSED,
                  "answer": dns.rcode.NOERROR}


def check(case: Case, before: list[bytes]) -> None:
    """What arrived before the valid query's answer is exactly what the case expects."""
    if case.expect == "drop":
        assert before == [], f"{case.name}: expected no reply"
        return
    assert len(before) == 1, f"{case.name}: expected one reply, got {len(before)}"
    reply = dns.message.from_wire(before[0])
    assert reply.id == BAD_ID
    assert reply.rcode() == EXPECTED_RCODE[case.expect], dns.rcode.to_text(reply.rcode())
    if case.expect == "answer":
        assert reply.answer


@contextlib.contextmanager
def udp_socket(server: Running) -> Iterator[socket.socket]:
    """A plain socket: asyncio's transports silently skip empty datagrams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((server.host, server.port))
    try:
        yield sock
    finally:
        sock.close()


def receiver(sock: socket.socket) -> Callable[[], Awaitable[bytes]]:
    return lambda: asyncio.get_running_loop().sock_recv(sock, 65535)


async def until_valid(read: Callable[[], Awaitable[bytes]]) -> list[bytes]:
    """Replies up to (not including) the valid query's answer."""
    before: list[bytes] = []
    while True:
        data = await asyncio.wait_for(read(), 2.0)
        if data[:2] == struct.pack("!H", VALID_ID):
            return before
        before.append(data)


@pytest.fixture
async def server(start_server: StartServer) -> Running:
    running = await start_server(server={"tcp_idle_timeout": 0.5})
    await running.query("example.org", "A")  # cached: the valid probe is answered at once
    return running


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
async def test_udp(server: Running, case: Case) -> None:
    with udp_socket(server) as sock:
        sock.send(case.packet)
        sock.send(valid_query())
        check(case, await until_valid(receiver(sock)))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack("!H", await reader.readexactly(2))[0]
    return await reader.readexactly(size)


def frame(packet: bytes) -> bytes:
    return struct.pack("!H", len(packet)) + packet


@pytest.mark.parametrize("case", [c for c in CORPUS if c.tcp],
                         ids=[c.name for c in CORPUS if c.tcp])
async def test_tcp(server: Running, case: Case) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(frame(case.packet) + frame(valid_query()))
        check(case, await until_valid(lambda: read_frame(reader)))
    finally:
        writer.close()


async def test_tcp_length_zero_closes_the_connection_and_the_next_one_is_served(
        server: Running) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"\x00\x00" + frame(valid_query()))
    assert await asyncio.wait_for(reader.read(), 2.0) == b""  # closed, nothing answered
    writer.close()
    assert (await server.query("example.org", tcp=True)).answer


async def test_tcp_length_65535_with_a_short_body_waits_only_the_idle_timeout(
        server: Running) -> None:
    """The valid frame is swallowed as part of the promised 64 KB body; the server gives
    up after tcp_idle_timeout (0.5 s here) instead of holding the connection."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    start = loop.time()
    writer.write(b"\xff\xff" + valid_query() + frame(valid_query()))
    assert await asyncio.wait_for(reader.read(), 3.0) == b""
    assert loop.time() - start < 0.5 + 1.0
    writer.close()
    assert (await server.query("example.org", tcp=True)).answer


async def test_the_corpus_is_counted_as_malformed(server: Running) -> None:
    with udp_socket(server) as sock:
        for case in CORPUS:
            sock.send(case.packet)
        sock.send(valid_query())
        await until_valid(receiver(sock))
    undecodable = [c for c in CORPUS if c.expect not in ("answer", "refused")]
    assert server.metric("familydns_malformed_queries_total", transport="udp") == len(
        undecodable)
