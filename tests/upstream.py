"""A real, in-process upstream DNS server for the test suite.

The resolver's integration tests forward to :class:`FakeUpstream` over actual loopback sockets
so that wire handling (UDP/TCP/TLS framing, truncation, EDNS, IDs, timeouts) is exercised for
real rather than mocked. The answers mimic a *recursive* upstream: CNAME chains are followed,
negative answers carry an SOA so negative caching can be tested.

Example::

    async with FakeUpstream() as up:
        up.add("example.org", "A", "192.0.2.1", ttl=300)
        ...  # point the resolver at up.url("udp")
        assert up.count("example.org", "A") == 1
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import random
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from dnslib import (
    EDNS0,
    MX,
    QTYPE,
    RCODE,
    RD,
    RR,
    SOA,
    TXT,
    DNSError,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)

if TYPE_CHECKING:
    import trustme

__all__ = [
    "MODES",
    "TLS_NAME",
    "TRANSPORTS",
    "FakeUpstream",
    "QueryRecord",
    "SpoofSender",
    "make_tls",
]

TLS_NAME = "upstream.test"
TRANSPORTS = ("udp", "tcp", "tls")
MODES = ("normal", "drop", "stall", "servfail", "refused", "truncate", "garbage", "wrong_id")

_MAX_CHAIN = 16  # CNAME hops before we call it a loop and SERVFAIL, like real resolvers do
_BIND_ATTEMPTS = 50
_HEADER_LEN = 12
_POISON = (("A", "203.0.113.66"), ("AAAA", "2001:db8:bad::66"), ("TXT", "poisoned"))

Responder = Callable[[DNSRecord, str], "DNSRecord | bytes | None"]


def _norm(name: object) -> str:
    """Comparable form of a DNS name: lower case, no trailing dot, root is ''."""
    return str(name).rstrip(".").lower()


def _in_zone(key: str, apex: str) -> bool:
    return apex == "" or key == apex or key.endswith("." + apex)


def _qtype_name(qtype: int) -> str:
    return str(QTYPE[qtype])  # dnslib renders unknown codes as 'TYPE65280'


def _qtype_code(rtype: str | int) -> int:
    if isinstance(rtype, int):
        return rtype
    code = QTYPE.reverse.get(rtype.upper())
    if code is None:
        raise ValueError(f"unknown record type {rtype!r}")
    return int(code)


def _edns_of(message: DNSRecord) -> tuple[int, bool] | None:
    """(advertised UDP size, DO bit) of a message's OPT record, or None without EDNS."""
    for rr in message.ar:
        if rr.rtype == QTYPE.OPT:
            return int(rr.rclass), bool(rr.ttl & 0x8000)
    return None


def _make_rdata(rtype: str, value: Any) -> RD:
    """Turn a friendly value ('10 mail.x', ('a', 'b'), '1.2.3.4') into dnslib rdata."""
    if isinstance(value, RD):
        return value
    if rtype == "TXT":
        strings = [value] if isinstance(value, (str, bytes)) else list(value)
        chunks: list[bytes] = []
        for item in strings:
            raw = item.encode() if isinstance(item, str) else bytes(item)
            chunks.extend(raw[i : i + 255] for i in range(0, max(len(raw), 1), 255))
        return TXT(chunks)
    if rtype == "MX" and isinstance(value, tuple):
        preference, host = value
        return MX(host, int(preference))
    return RR.fromZone(f"placeholder. 0 IN {rtype} {value}")[0].rdata


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class QueryRecord(NamedTuple):
    """One query the upstream received. ``qname`` is lower case without the trailing dot."""

    transport: str
    qname: str
    qtype: str
    source: tuple[str, int]
    raw: bytes

    @property
    def id(self) -> int:
        return int.from_bytes(self.raw[:2], "big")

    @property
    def message(self) -> DNSRecord:
        return DNSRecord.parse(self.raw)

    @property
    def edns(self) -> tuple[int, bool] | None:
        return _edns_of(self.message)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: FakeUpstream) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.server._spawn(self.server._serve_udp(data, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (client went away) are normal here; ignore them."""


class FakeUpstream:
    """UDP+TCP (same port) and optional DoT upstream with a programmable zone and failure modes.

    ``mode`` (see :data:`MODES`) can be changed at any time; ``set_mode`` can also override it for
    single transports (e.g. drop UDP but answer TCP). ``stop()`` closes every socket so the port
    refuses; ``start()`` again rebinds the same ports.

    ``responder``, if set, is called as ``responder(request, transport)`` after drop/stall are
    applied; a DNSRecord or raw bytes it returns replaces the mode's answer, None falls through.
    Only parseable queries are recorded in ``queries``; junk lands in ``malformed``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        tls_context: ssl.SSLContext | None = None,
        tls_name: str = TLS_NAME,
        zone: str = "example.org",
        soa_minimum: int = 60,
        soa_ttl: int = 300,
        mode: str = "normal",
        delay: float = 1.0,
        udp_payload: int = 1232,
    ) -> None:
        self.host = host
        self.tls_context = tls_context
        self.tls_name = tls_name
        self.soa_minimum = soa_minimum
        self.soa_ttl = soa_ttl
        self.soa_serial = 2024010101
        self.delay = delay
        self.udp_payload = udp_payload
        self.responder: Responder | None = None
        self.port = 0
        self.tls_port = 0
        self.queries: list[QueryRecord] = []
        self.malformed: list[tuple[str, tuple[str, int], bytes]] = []
        self.connections: dict[str, int] = {"tcp": 0, "tls": 0}
        self.zones: set[str] = {_norm(zone)}
        self._records: dict[str, list[RR]] = {}
        self._mode = "normal"
        self._overrides: dict[str, str] = {}
        self.set_mode(mode)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tls: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: set[asyncio.Future[None]] = set()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> Self:
        """Bind (or re-bind after ``stop``) UDP+TCP on one port and TLS if configured."""
        if self.running:
            return self
        fixed = self.port != 0
        for attempt in range(_BIND_ATTEMPTS):
            try:
                await self._bind_plain(self.port)
                break
            except OSError:
                await self._close_sockets()
                if attempt == _BIND_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.02 if fixed else 0)
        if self.tls_context is not None:
            await self._bind_tls()
        return self

    async def stop(self) -> None:
        """Close all sockets and connections so that the ports refuse, keep the port numbers."""
        await self._close_sockets()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._udp is not None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _bind_plain(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.host, port)
        )
        self._udp = transport
        bound = transport.get_extra_info("sockname")[1]
        self._tcp = await asyncio.start_server(
            lambda r, w: self._serve_stream(r, w, "tcp"), self.host, bound, reuse_address=True
        )
        self.port = bound

    async def _bind_tls(self) -> None:
        for attempt in range(_BIND_ATTEMPTS):
            try:
                self._tls = await asyncio.start_server(
                    lambda r, w: self._serve_stream(r, w, "tls"),
                    self.host,
                    self.tls_port,
                    ssl=self.tls_context,
                    reuse_address=True,
                    ssl_handshake_timeout=5.0,
                )
                break
            except OSError:
                if attempt == _BIND_ATTEMPTS - 1:
                    await self._close_sockets()
                    raise
                await asyncio.sleep(0.02)
        assert self._tls is not None
        self.tls_port = self._tls.sockets[0].getsockname()[1]

    async def _close_sockets(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for server in (self._tcp, self._tls):
            if server is not None:
                server.close()
                await server.wait_closed()
        self._tcp = self._tls = None

    # ----------------------------------------------------------------- addresses

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the UDP/TCP listener."""
        return self.host, self.port

    @property
    def tls_address(self) -> tuple[str, int]:
        return self.host, self.tls_port

    def url(self, transport: str = "udp") -> str:
        """'udp://127.0.0.1:P', 'tcp://...', or 'tls://127.0.0.1:TP#upstream.test'."""
        host = _host_for_url(self.host)
        if transport in ("udp", "tcp"):
            return f"{transport}://{host}:{self.port}"
        if transport == "tls":
            if self.tls_context is None:
                raise ValueError("FakeUpstream was created without tls_context")
            return f"tls://{host}:{self.tls_port}#{self.tls_name}"
        raise ValueError(f"unknown transport {transport!r}")

    # ----------------------------------------------------------------- behaviour

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self.set_mode(value)

    def set_mode(self, mode: str, *transports: str, delay: float | None = None) -> None:
        """Set the mode for all transports (dropping overrides) or only for the named ones."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        unknown = [t for t in transports if t not in TRANSPORTS]
        if unknown:
            raise ValueError(f"unknown transport(s) {unknown}")
        if delay is not None:
            self.delay = delay
        if transports:
            self._overrides.update(dict.fromkeys(transports, mode))
        else:
            self._mode = mode
            self._overrides.clear()

    def mode_for(self, transport: str) -> str:
        return self._overrides.get(transport, self._mode)

    def reset(self) -> None:
        """Forget queries and counters and go back to normal mode; the zone is kept."""
        self.queries.clear()
        self.malformed.clear()
        self.connections = {"tcp": 0, "tls": 0}
        self.set_mode("normal")

    # ----------------------------------------------------------------- zone

    def add(self, name: str, rtype: str, value: Any, ttl: int = 300) -> None:
        """Add one record. TXT takes a str or a list of strings, MX '10 host' or (10, 'host').

        A name outside every known zone creates a zone at its last two labels, so negative
        answers for it carry a plausible SOA.
        """
        rtype = rtype.upper()
        code = _qtype_code(rtype)
        key = _norm(name)
        if not any(_in_zone(key, z) for z in self.zones if z):
            self.zones.add(".".join(key.split(".")[-2:]))
        rr = RR(DNSLabel(name), code, ttl=ttl, rdata=_make_rdata(rtype, value))
        self._records.setdefault(key, []).append(rr)

    def add_many_txt(self, name: str, count: int, length: int = 100, ttl: int = 300) -> None:
        """Add ``count`` distinct TXT records of ``length`` bytes each, to force truncation."""
        for i in range(count):
            text = f"record-{i:04d}-"
            self.add(name, "TXT", (text + "x" * length)[:length], ttl=ttl)

    def add_zone(self, apex: str) -> None:
        """Declare a zone apex: it exists (SOA) and names below it get its SOA when negative."""
        self.zones.add(_norm(apex))

    def remove(self, name: str, rtype: str | None = None) -> None:
        key = _norm(name)
        if rtype is None:
            self._records.pop(key, None)
            return
        code = _qtype_code(rtype)
        kept = [rr for rr in self._records.get(key, []) if rr.rtype != code]
        if kept:
            self._records[key] = kept
        else:
            self._records.pop(key, None)

    def clear(self) -> None:
        self._records.clear()

    # ----------------------------------------------------------------- observation

    def count(
        self, qname: str | None = None, qtype: str | None = None, transport: str | None = None
    ) -> int:
        """Number of received queries matching every given filter (names case-insensitive)."""
        return len(self._matching(qname, qtype, transport))

    def last_edns(self, transport: str | None = None) -> tuple[int, bool] | None:
        """(UDP size, DO) advertised by the most recent query, None if it had no OPT."""
        matching = self._matching(None, None, transport)
        return matching[-1].edns if matching else None

    async def wait_for(
        self,
        n: int = 1,
        qname: str | None = None,
        qtype: str | None = None,
        transport: str | None = None,
        timeout: float = 2.0,
    ) -> list[QueryRecord]:
        """Wait until at least ``n`` matching queries arrived (e.g. to learn a source port)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(matching := self._matching(qname, qtype, transport)) < n:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"only {len(matching)} of {n} queries arrived")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)
        return matching

    def _matching(
        self, qname: str | None, qtype: str | None, transport: str | None
    ) -> list[QueryRecord]:
        name = None if qname is None else _norm(qname)
        kind = None if qtype is None else qtype.upper()
        return [
            q
            for q in self.queries
            if (name is None or q.qname == name)
            and (kind is None or q.qtype == kind)
            and (transport is None or q.transport == transport)
        ]

    def _record(self, record: QueryRecord) -> None:
        self.queries.append(record)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ----------------------------------------------------------------- serving

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_udp(self, data: bytes, source: tuple[str, int]) -> None:
        reply = await self._respond(data, "udp", source)
        if reply is not None and self._udp is not None:
            self._udp.sendto(reply, source)

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        """RFC 7766: many length-prefixed queries per connection, answered as they complete."""
        self.connections[transport] += 1
        self._writers.add(writer)
        me = asyncio.current_task()
        if me is not None:
            self._tasks.add(me)
        peer = writer.get_extra_info("peername") or ("", 0)
        source = (peer[0], peer[1])
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
                self._spawn(self._answer_stream(data, writer, transport, source))
        except (asyncio.IncompleteReadError, OSError):  # EOF, reset or TLS failure
            pass
        except asyncio.CancelledError:
            pass  # stop() cancels us; asyncio's stream callback would log a re-raised cancel
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            if me is not None:
                self._tasks.discard(me)

    async def _answer_stream(
        self, data: bytes, writer: asyncio.StreamWriter, transport: str, source: tuple[str, int]
    ) -> None:
        reply = await self._respond(data, transport, source)
        if reply is not None and not writer.is_closing():
            writer.write(len(reply).to_bytes(2, "big") + reply)

    async def _respond(self, data: bytes, transport: str, source: tuple[str, int]) -> bytes | None:
        """Build the wire reply for one query according to the current mode (None = silence)."""
        try:
            request = DNSRecord.parse(data)
        except DNSError:
            self.malformed.append((transport, source, data))
            return None
        if request.header.qr:
            return None
        if len(request.questions) != 1 or request.header.opcode != 0:
            rcode = RCODE.FORMERR if len(request.questions) != 1 else RCODE.NOTIMP
            reply = self._skeleton(request, rcode)
            reply.questions = list(request.questions)
            return reply.pack()
        q = request.q
        self._record(QueryRecord(transport, _norm(q.qname), _qtype_name(q.qtype), source, data))
        mode = self.mode_for(transport)
        if mode == "drop":
            return None
        if mode == "stall":
            await asyncio.sleep(self.delay)
        if self.responder is not None:
            custom = self.responder(request, transport)
            if isinstance(custom, bytes):
                return custom
            if custom is not None:
                return self._pack(custom, request, transport)
        if mode == "garbage":
            return data[:2] + os.urandom(random.randint(3, _HEADER_LEN - 3))
        if mode in ("servfail", "refused"):
            rcode = RCODE.SERVFAIL if mode == "servfail" else RCODE.REFUSED
            return self._skeleton(request, rcode).pack()
        reply = self.build_answer(request)
        if mode == "wrong_id":
            reply.header.id = (request.header.id + random.randint(1, 0xFFFE)) & 0xFFFF
        if mode == "truncate" and transport == "udp":
            return self._truncated(reply).pack()
        return self._pack(reply, request, transport)

    def _pack(self, reply: DNSRecord, request: DNSRecord, transport: str) -> bytes:
        """Pack, setting TC and dropping records if a UDP answer exceeds the client's limit."""
        wire = reply.pack()
        if transport != "udp":
            return wire
        edns = _edns_of(request)
        limit = max(512, edns[0]) if edns else 512
        return self._truncated(reply).pack() if len(wire) > limit else wire

    def _truncated(self, reply: DNSRecord) -> DNSRecord:
        short = DNSRecord(DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap), q=reply.q)
        short.header.tc = 1
        short.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
        return short

    def _skeleton(self, request: DNSRecord, rcode: int) -> DNSRecord:
        """Empty reply echoing ID, question, RD/CD and (if asked) EDNS with the DO bit."""
        h = request.header
        reply = DNSRecord(
            DNSHeader(id=h.id, qr=1, rd=h.rd, ra=1, cd=h.cd, rcode=rcode), q=request.q
        )
        edns = _edns_of(request)
        if edns is not None:
            reply.add_ar(EDNS0(udp_len=self.udp_payload, flags="do" if edns[1] else ""))
        return reply

    def build_answer(self, request: DNSRecord) -> DNSRecord:
        """The normal-mode answer from the zone (public so a ``responder`` can tweak it)."""
        rcode, answer, authority = self._resolve(request.q.qname, request.q.qtype)
        reply = self._skeleton(request, rcode)
        reply.rr = answer
        reply.auth = authority
        return reply

    # ----------------------------------------------------------------- resolution

    def _resolve(self, qname: DNSLabel, qtype: int) -> tuple[int, list[RR], list[RR]]:
        """Follow CNAMEs like a recursive resolver: (rcode, answer, authority)."""
        answer: list[RR] = []
        name = qname
        seen: set[str] = set()
        for _ in range(_MAX_CHAIN):
            key = _norm(name)
            seen.add(key)
            rrs = list(self._records.get(key, []))
            if key in self.zones:
                rrs.append(self._soa(key))
            hits = [rr for rr in rrs if qtype == QTYPE.ANY or rr.rtype == qtype]
            if hits:
                return RCODE.NOERROR, answer + [self._owned(rr, name) for rr in hits], []
            cname = next((rr for rr in rrs if rr.rtype == QTYPE.CNAME), None)
            if cname is None:
                rcode = RCODE.NOERROR if self._exists(key) else RCODE.NXDOMAIN
                return rcode, answer, [self._soa(key)]
            answer.append(self._owned(cname, name))
            name = cname.rdata.label
            if _norm(name) in seen:
                break
        return RCODE.SERVFAIL, [], []

    def _exists(self, key: str) -> bool:
        """A name exists if it has records, is an apex, or is an empty non-terminal."""
        if self._records.get(key) or key in self.zones:
            return True
        return any(owner.endswith("." + key) for owner in self._records)

    def _soa(self, key: str) -> RR:
        apex = max((z for z in self.zones if _in_zone(key, z)), key=len, default="")
        server = f"ns1.{apex}" if apex else "ns1.upstream.test"
        mailbox = f"hostmaster.{apex}" if apex else "hostmaster.upstream.test"
        times = (self.soa_serial, 7200, 3600, 1209600, self.soa_minimum)
        return RR(apex + ".", QTYPE.SOA, ttl=self.soa_ttl, rdata=SOA(server, mailbox, times))

    @staticmethod
    def _owned(rr: RR, name: DNSLabel) -> RR:
        return RR(name, rr.rtype, rr.rclass, rr.ttl, rr.rdata)


def make_tls(
    ca: trustme.CA, hostname: str = TLS_NAME, directory: str | os.PathLike[str] | None = None
) -> tuple[ssl.SSLContext, str]:
    """Server context with a cert for ``hostname`` (and 127.0.0.1/::1) plus the CA file path.

    Usage: ``server_ctx, cafile = make_tls(trustme.CA())`` then
    ``FakeUpstream(tls_context=server_ctx)``; clients trust ``cafile``. Without ``directory``
    the CA file goes to a temp file removed at interpreter exit.
    """
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname, "127.0.0.1", "::1").configure_cert(server_ctx)
    server_ctx.set_alpn_protocols(["dot"])
    if directory is None:
        fd, path = tempfile.mkstemp(prefix="familydns-ca-", suffix=".pem")
        os.close(fd)
        atexit.register(_unlink_quietly, path)
    else:
        path = str(Path(directory) / "upstream-ca.pem")
    ca.cert_pem.write_to_path(path)
    return server_ctx, path


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class SpoofSender:
    """Floods a UDP target with forged responses (wrong IDs) and/or junk, as fast as possible.

    With ``via=upstream`` the datagrams leave from the upstream's own UDP socket, i.e. the right
    source address and port: only the ID (and question) protect the resolver then. Otherwise a
    fresh socket is used, which tests source-address checking.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        via: FakeUpstream | None = None,
        seed: int | None = None,
    ) -> None:
        self.target = target
        self.via = via
        self.sent = 0
        self._rng = random.Random(seed)
        self._sock: socket.socket | None = None

    def forged(
        self,
        qname: str = "example.org",
        qtype: str = "A",
        *,
        answer: str | None = None,
        avoid_ids: Iterable[int] = (),
        ttl: int = 86400,
    ) -> bytes:
        """One plausible poisoned response with a random ID not in ``avoid_ids``.

        ``answer`` is the rdata for ``qtype``; by default A/AAAA/TXT get a recognisable bogus
        value and any other type gets a CNAME to poisoned.invalid.
        """
        avoid = set(avoid_ids)
        msg_id = self._rng.randrange(0x10000)
        while msg_id in avoid:
            msg_id = self._rng.randrange(0x10000)
        code = _qtype_code(qtype)
        reply = DNSRecord(DNSHeader(id=msg_id, qr=1, aa=1, rd=1, ra=1), q=DNSQuestion(qname, code))
        rtype = _qtype_name(code)
        if answer is None:
            rtype, answer = next(
                ((t, v) for t, v in _POISON if t == rtype), ("CNAME", "poisoned.invalid.")
            )
        rdata = _make_rdata(rtype, answer)
        reply.add_answer(RR(qname, _qtype_code(rtype), ttl=ttl, rdata=rdata))
        return reply.pack()

    def garbage(self) -> bytes:
        return os.urandom(self._rng.randint(1, 64))

    def packets(
        self,
        count: int,
        qname: str = "example.org",
        qtype: str = "A",
        *,
        answer: str | None = None,
        avoid_ids: Sequence[int] = (),
        garbage_every: int = 0,
    ) -> list[bytes]:
        """The datagrams ``send`` would emit; every ``garbage_every``-th one is junk."""
        out = []
        for i in range(count):
            if garbage_every and i % garbage_every == garbage_every - 1:
                out.append(self.garbage())
            else:
                out.append(self.forged(qname, qtype, answer=answer, avoid_ids=avoid_ids))
        return out

    def send_sync(self, count: int, **kwargs: Any) -> int:
        """Send ``count`` datagrams immediately; kwargs as for :meth:`packets`."""
        for packet in self.packets(count, **kwargs):
            self._emit(packet)
        return count

    async def send(self, count: int, *, batch: int = 64, **kwargs: Any) -> int:
        """Like ``send_sync`` but yields to the loop every ``batch`` packets so the resolver
        (running in the same loop) keeps reading while being flooded."""
        for i, packet in enumerate(self.packets(count, **kwargs)):
            self._emit(packet)
            if i % batch == batch - 1:
                await asyncio.sleep(0)
        return count

    def _emit(self, packet: bytes) -> None:
        if self.via is not None:
            if self.via._udp is None:
                raise RuntimeError("SpoofSender(via=...) needs a running FakeUpstream")
            self.via._udp.sendto(packet, self.target)
        else:
            if self._sock is None:
                family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                self._sock.sendto(packet, self.target)
        self.sent += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
