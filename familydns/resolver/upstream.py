"""Talking to upstream resolvers: UDP (with TCP fallback on TC), TCP and DNS-over-TLS.

Spoofing resistance (RFC 5452): every UDP query gets a fresh random ID from ``os.urandom``
and the letters of its name in random case (the "0x20" bits, one per letter, which the
upstream echoes); it leaves from a connected socket with a random source port, so the
kernel drops datagrams from any other address. A reply is accepted only with the same
ID, the QR bit and the question byte for byte, letter case included. Anything else is
counted and ignored while we keep waiting. A source port carries
``upstreams.queries_per_port`` queries before a new one is opened (opening one costs the
kernel more than the rest of a cache miss).

Health: upstreams are tried in configured order, but one that failed is set aside for a
backoff that grows with consecutive failures (1 s .. 60 s), so a dead upstream stops
costing every query its timeout; after the backoff it is tried first again (recovery).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from familydns.config import UpstreamConfig, UpstreamsConfig
from familydns.errors import UpstreamError, WireError
from familydns.resolver import wire

log = logging.getLogger("familydns.upstream")

_U16 = struct.Struct("!H")


ResultCallback = Callable[["wire.Reply | None", "BaseException | None"], None]
"""Called once per lookup: with the validated reply, or with the error that ended it."""


class UpstreamMetrics(Protocol):
    def upstream_result(self, upstream: str, result: str, seconds: float) -> None: ...
    def upstream_rejected(self, upstream: str) -> None: ...


class _NoMetrics:
    def upstream_result(self, upstream: str, result: str, seconds: float) -> None:
        pass

    def upstream_rejected(self, upstream: str) -> None:
        pass


def _matches(data: bytes, qid: int, question: bytes, exact: bool = False) -> bool:
    """Is this datagram the reply to our query? (ID, QR bit, one question, same question;
    with ``exact``, the same letter case too: the 0x20 bits we chose)."""
    if len(data) < 12 + len(question):
        return False
    rid, flags, qd = struct.unpack_from("!HHH", data, 0)
    if rid != qid or not flags & wire.QR or qd != 1:
        return False
    echoed = data[12:12 + len(question)]
    return echoed == question if exact else wire.same_question(echoed, question)


ReplyCallback = Callable[[bytes | None, UpstreamError | None], None]
"""Called once per UDP query: with the matching reply, or with the error (a timeout,
an unreachable port) that ended it."""


class _Port:
    """One connected UDP socket with the queries waiting on it, by ID."""

    __slots__ = ("fd", "pending", "sock", "uses")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.pending: dict[int, tuple[bytes, ReplyCallback, float]] = {}
        """ID -> (question sent, callback, deadline on the loop's clock)."""
        self.uses = 0


class UdpPorts:
    """UDP sockets to one upstream, each carrying at most ``per_port`` queries.

    A new socket means a new random source port from the kernel; a connected socket
    makes the kernel drop datagrams from any other address. ``per_port = 1`` gives every
    query its own port, at about 40 us of kernel time per query (socket, connect, the
    first send binding a port, epoll registration, close). Replies must match a pending
    ID and its question exactly (letter case included); everything else is counted and
    ignored. Each query ends in exactly one call of its callback, straight from the
    socket's reader or the sweep: no future, no task, no timer per query (a timer costs
    an object and two libuv calls; the sweep looks at the few queries in flight every
    ``SWEEP`` seconds, so a timeout fires up to that much late).
    """

    SWEEP = 0.1

    def __init__(self, host: str, port: int, per_port: int,
                 on_reject: Callable[[], None]) -> None:
        self.address = (host, port)
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.per_port = max(1, per_port)
        self.on_reject = on_reject
        self.active: _Port | None = None
        self.open_ports: dict[int, _Port] = {}
        """Open sockets by file descriptor (the active one and spent ones still waited on)."""
        self._sweeper: asyncio.TimerHandle | None = None

    def _open(self) -> _Port:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        port = _Port(sock)
        asyncio.get_running_loop().add_reader(port.fd, self._readable, port)
        self.open_ports[port.fd] = port
        return port

    def send(self, question: bytes, make: Callable[[int], bytes], timeout: float,
             callback: ReplyCallback) -> None:
        """Send ``make(id)``; ``callback`` gets the reply whose question is ``question``
        byte for byte, or the error after ``timeout`` seconds. Raises UpstreamError when
        the datagram cannot be sent (the callback is then never called)."""
        port = self.active
        if port is None or port.uses >= self.per_port:
            if port is not None and not port.pending:
                self._close(port)
            try:
                port = self.active = self._open()
            except OSError as exc:
                raise UpstreamError(f"udp error: {exc.strerror or exc}") from None
        pending = port.pending
        qid = wire.random_id()
        while qid in pending:
            qid = wire.random_id()
        try:
            port.sock.send(make(qid))
        except OSError as exc:
            raise UpstreamError(f"udp error: {exc.strerror or exc}") from None
        port.uses += 1
        loop = asyncio.get_running_loop()
        pending[qid] = (question, callback, loop.time() + timeout)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.SWEEP, self._sweep, timeout)

    def _end(self, port: _Port, qid: int) -> ReplyCallback:
        """Take a query off its port, closing a spent port nothing waits on any more."""
        callback = port.pending.pop(qid)[1]
        if not port.pending and port is not self.active:
            self._close(port)
        return callback

    def _sweep(self, timeout: float) -> None:
        """Fail the queries past their deadline; look again while any is in flight."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        late = [(port, qid) for port in list(self.open_ports.values())
                for qid, (_q, _c, deadline) in port.pending.items() if deadline <= now]
        for port, qid in late:
            if qid in port.pending:
                self._end(port, qid)(None, UpstreamError(f"timeout after {timeout:g} s"))
        if any(port.pending for port in self.open_ports.values()):
            self._sweeper = loop.call_later(self.SWEEP, self._sweep, timeout)

    def _readable(self, port: _Port) -> None:
        pending = port.pending
        while self.open_ports.get(port.fd) is port:
            try:
                data = port.sock.recv(65535)
            except BlockingIOError:
                return
            except OSError as exc:  # ICMP port unreachable arrives as ECONNREFUSED
                error = UpstreamError(f"udp error: {exc.strerror or exc}")
                for qid in list(pending):
                    self._end(port, qid)(None, error)
                return
            if len(data) < 12:
                self.on_reject()
                continue
            qid = _U16.unpack_from(data, 0)[0]
            item = pending.get(qid)
            if item is not None and _matches(data, qid, item[0], exact=True):
                self._end(port, qid)(data, None)
            else:
                self.on_reject()

    def _close(self, port: _Port) -> None:
        if port is self.active:
            self.active = None
        if self.open_ports.get(port.fd) is port:
            del self.open_ports[port.fd]
        try:
            asyncio.get_running_loop().remove_reader(port.fd)
        except RuntimeError:
            pass
        port.sock.close()
        waiting = list(port.pending.values())
        port.pending.clear()
        for _question, callback, _deadline in waiting:
            callback(None, UpstreamError("upstream socket closed"))

    def in_flight(self) -> int:
        return sum(len(port.pending) for port in self.open_ports.values())

    def close(self) -> None:
        """Close every socket; queries still waiting fail with an UpstreamError."""
        for port in list(self.open_ports.values()):
            self._close(port)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


class StreamConnection:
    """One persistent, pipelined TCP or TLS connection to an upstream (RFC 7766).

    Queries are written as they come and replies matched by ID, so many lookups share
    one handshake; a broken connection fails its pending queries and is reopened on the
    next use.
    """

    def __init__(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None,
                 server_name: str | None, connect_timeout: float) -> None:
        self.host, self.port = host, port
        self.ssl_ctx, self.server_name = ssl_ctx, server_name
        self.connect_timeout = connect_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[bytes, asyncio.Future[bytes]]] = {}
        self._lock = asyncio.Lock()

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        self.host, self.port, ssl=self.ssl_ctx,
                        server_hostname=self.server_name if self.ssl_ctx else None,
                    ),
                    self.connect_timeout,
                )
            except (TimeoutError, OSError, ssl.SSLError) as exc:
                raise UpstreamError(f"cannot connect: {exc or type(exc).__name__}") from None
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_loop(reader, writer))
            return writer

    async def _read_loop(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        error: Exception = UpstreamError("connection closed by upstream")
        try:
            while True:
                size = _U16.unpack(await reader.readexactly(2))[0]
                data = await reader.readexactly(size)
                if len(data) < 2:
                    continue
                rid = _U16.unpack_from(data, 0)[0]
                item = self._pending.get(rid)
                if item is not None and _matches(data, rid, item[0]):
                    del self._pending[rid]
                    if not item[1].done():
                        item[1].set_result(data)
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError) as exc:
            error = UpstreamError(f"connection lost: {exc or type(exc).__name__}")
        except asyncio.CancelledError:
            error = UpstreamError("connection closed")
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            for _q, fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(error)
            self._pending.clear()

    async def exchange(self, question: bytes, make_packet: Callable[[int], bytes],
                       timeout: float) -> bytes:
        writer = await self._connect()
        qid = wire.random_id()
        while qid in self._pending:
            qid = wire.random_id()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[qid] = (question, fut)
        packet = make_packet(qid)
        try:
            writer.write(_U16.pack(len(packet)) + packet)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(qid, None)

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            try:
                await self._reader_task
            except asyncio.CancelledError:
                pass
        if self._writer is not None:
            self._writer.close()


@dataclass
class Upstream:
    """One configured upstream and its health."""

    config: UpstreamConfig
    index: int
    stream: StreamConnection | None = None
    udp: UdpPorts | None = None
    failures: int = 0
    down_until: float = 0.0
    last_error: str | None = None
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.config.url

    def record_failure(self, now: float, error: str) -> None:
        self.failures += 1
        self.last_error = error
        self.down_until = now + min(2 ** (self.failures - 1), 60)
        if self.failures == 1:
            log.warning("upstream %s failed: %s", self.name, error)

    def record_success(self) -> None:
        if self.failures:
            log.info("upstream %s is answering again", self.name)
        self.failures = 0
        self.down_until = 0.0
        self.last_error = None


class UpstreamPool:
    """Sends a question to the best available upstream, failing over in order."""

    def __init__(
        self,
        config: UpstreamsConfig,
        metrics: UpstreamMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics: UpstreamMetrics = metrics or _NoMetrics()
        self.clock = clock
        self.upstreams = [Upstream(c, i) for i, c in enumerate(config.servers)]
        self._tasks: set[asyncio.Task[wire.Reply]] = set()

    def order(self) -> list[Upstream]:
        """Healthy upstreams in configured order, then those backing off, soonest first."""
        now = self.clock()
        if all(u.down_until <= now for u in self.upstreams):
            return self.upstreams
        healthy = [u for u in self.upstreams if u.down_until <= now]
        resting = sorted((u for u in self.upstreams if u.down_until > now),
                         key=lambda u: u.down_until)
        return healthy + resting

    def forward(self, question: bytes, do: bool, cd: bool, on_done: ResultCallback) -> None:
        """``resolve`` with a callback, the common case driven by the socket alone.

        When the first upstream in order is a UDP one, the query goes out at once and
        its reply calls ``on_done`` straight from the socket's reader: no future, no
        task, no coroutine frames (they cost more than the rest of a cache miss).
        Anything unusual hands over to a task: a truncated reply to TCP on the same
        upstream, a timeout, error or failing answer to ``resolve`` over the others.
        ``on_done`` is called exactly once, with the reply or the error.
        """
        up = self.order()[0] if self.upstreams else None
        if up is None or up.config.scheme != "udp":
            self._settle(self.resolve(question, do, cd), on_done)
            return
        first = up
        begun = self.clock()

        def done(data: bytes | None, failure: UpstreamError | None) -> None:
            try:
                if failure is not None:
                    raise failure
                assert data is not None
                reply = self._parse(first, data)
            except UpstreamError as exc:
                error = self._record(first, self.clock() - begun, None, exc) or str(exc)
                self._settle(self.resolve(question, do, cd, (first, error, None)), on_done)
                return
            if reply.truncated:
                self._settle(self._over_tcp(first, question, do, cd), on_done)
                return
            failed = self._record(first, self.clock() - begun, reply, None)
            if failed is None:
                on_done(reply, None)
            else:
                self._settle(self.resolve(question, do, cd, (first, failed, reply)), on_done)

        try:
            self._send_udp(first, question, do, cd, done)
        except UpstreamError as exc:
            error = self._record(first, 0.0, None, exc) or str(exc)
            self._settle(self.resolve(question, do, cd, (first, error, None)), on_done)

    def _settle(self, work: Coroutine[Any, Any, wire.Reply], on_done: ResultCallback) -> None:
        """Run ``work`` as a task and hand its outcome to ``on_done``."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)

        def finish(t: asyncio.Task[wire.Reply]) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                on_done(None, UpstreamError("lookup cancelled"))
            elif t.exception() is not None:
                on_done(None, t.exception())
            else:
                on_done(t.result(), None)

        task.add_done_callback(finish)

    async def _over_tcp(self, up: Upstream, question: bytes, do: bool, cd: bool
                        ) -> wire.Reply:
        """After a truncated UDP reply: the same upstream over TCP, then the others."""
        reply, error = await self._attempt(up, self._ask(up, question, do, cd, stream=True))
        if error is None and reply is not None:
            return reply
        return await self.resolve(question, do, cd, (up, error or "", reply))

    async def _attempt(self, up: Upstream, ask: Coroutine[Any, Any, wire.Reply]
                       ) -> tuple[wire.Reply | None, str | None]:
        """Await one exchange with ``up`` and record it: (reply, None) for a good answer,
        else (the failing reply or None, the error)."""
        begun = self.clock()
        try:
            reply = await ask
        except UpstreamError as exc:
            return None, self._record(up, self.clock() - begun, None, exc)
        return reply, self._record(up, self.clock() - begun, reply, None)

    def _record(self, up: Upstream, seconds: float, reply: wire.Reply | None,
                exc: UpstreamError | None) -> str | None:
        """Count one attempt on ``up`` and update its health: the error to report, or
        None when ``reply`` is a good answer."""
        if exc is not None:
            result = "timeout" if "timeout" in str(exc) else "error"
            self.metrics.upstream_result(up.name, result, seconds)
            up.record_failure(self.clock(), str(exc))
            return f"{up.name}: {exc}"
        assert reply is not None
        if reply.rcode in _FAILED:
            name = wire_rcode_name(reply.rcode)
            self.metrics.upstream_result(up.name, name, seconds)
            up.record_failure(self.clock(), f"answered {name}")
            return f"{up.name}: {name}"
        self.metrics.upstream_result(up.name, "ok", seconds)
        up.record_success()
        return None

    async def resolve(self, question: bytes, do: bool, cd: bool,
                      tried: tuple[Upstream, str, wire.Reply | None] | None = None
                      ) -> wire.Reply:
        """A validated reply from the first upstream that gives one; UpstreamError when
        every upstream failed (the caller may then serve stale or SERVFAIL). ``tried``
        is an upstream ``start`` already asked, with its error and failing reply: it is
        not asked again."""
        errors: list[str] = []
        last_reply: wire.Reply | None = None
        if tried is not None:
            errors.append(tried[1])
            last_reply = tried[2]
        for up in self.order():
            if tried is not None and up is tried[0]:
                continue
            reply, error = await self._attempt(up, self._ask(up, question, do, cd))
            if error is None and reply is not None:
                return reply
            errors.append(error or "")
            last_reply = reply or last_reply
        if last_reply is not None:
            return last_reply
        raise UpstreamError("all upstreams failed: " + "; ".join(errors))

    async def _ask(self, up: Upstream, question: bytes, do: bool, cd: bool,
                   stream: bool = False) -> wire.Reply:
        """One exchange: UDP first for a udp:// upstream (TCP when truncated, or when
        ``stream`` says so), else its TCP or TLS connection."""
        if up.config.scheme == "udp" and not stream:
            sent: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

            def settle(data: bytes | None, error: UpstreamError | None) -> None:
                if sent.done():
                    return
                if error is not None:
                    sent.set_exception(error)
                else:
                    sent.set_result(data or b"")

            self._send_udp(up, question, do, cd, settle)
            reply = self._parse(up, await sent)
            if not reply.truncated:
                return reply
        size = self.config.edns_udp_size
        data = await self._stream(up, question, lambda qid: wire.make_upstream_query(
            qid, question, do, cd, size))
        return self._parse(up, data)

    def _parse(self, up: Upstream, data: bytes) -> wire.Reply:
        try:
            return wire.parse_reply(data)
        except WireError as exc:
            raise UpstreamError(f"malformed reply: {exc.reason}") from None

    def _send_udp(self, up: Upstream, question: bytes, do: bool, cd: bool,
                  callback: ReplyCallback) -> None:
        """Send ``question`` (its letters in random case) to a udp:// upstream;
        ``callback`` gets the reply or, after ``timeout``, an UpstreamError."""
        if up.udp is None:
            up.udp = UdpPorts(up.config.host, up.config.port, self.config.queries_per_port,
                              lambda: self.metrics.upstream_rejected(up.name))
        mixed = wire.randomize_case(question)
        size = self.config.edns_udp_size
        up.udp.send(mixed, lambda qid: wire.make_upstream_query(qid, mixed, do, cd, size),
                    self.config.timeout, callback)

    async def _stream(self, up: Upstream, question: bytes,
                      make: Callable[[int], bytes]) -> bytes:
        if up.stream is None:
            ctx: ssl.SSLContext | None = None
            if up.config.scheme == "tls":
                ctx = ssl.create_default_context(cafile=up.config.ca_file)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            up.stream = StreamConnection(up.config.host, up.config.port, ctx,
                                         up.config.server_name, self.config.timeout)
        try:
            return await up.stream.exchange(question, make, self.config.timeout)
        except TimeoutError:
            raise UpstreamError(f"timeout after {self.config.timeout:g} s") from None

    async def close(self) -> None:
        """Let the UDP queries in flight end (answered or timed out), then close: a
        reload that replaced this pool must not cut off lookups others wait on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout + 2 * UdpPorts.SWEEP
        while loop.time() < deadline and any(
                up.udp is not None and up.udp.in_flight() for up in self.upstreams):
            await asyncio.sleep(UdpPorts.SWEEP)
        for up in self.upstreams:
            if up.stream is not None:
                await up.stream.close()
            if up.udp is not None:
                up.udp.close()


_FAILED = (wire.SERVFAIL, wire.REFUSED, wire.NOTIMP)
"""Answers that count against an upstream and make us ask the next one."""


def wire_rcode_name(rcode: int) -> str:
    return {0: "noerror", 1: "formerr", 2: "servfail", 3: "nxdomain", 4: "notimp",
            5: "refused"}.get(rcode, f"rcode{rcode}")
