"""The network edge: UDP and TCP listeners that hand bytes to the resolver chain.

Only this module touches client sockets. A query that can be answered at once (cache hit,
blocked name) is answered inside the datagram callback with no task; only misses become
tasks, and their number is bounded: past the bound, queries are dropped and counted
rather than queued without limit.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Coroutine
from typing import Any, Protocol

log = logging.getLogger("familydns.server")

_U16 = struct.Struct("!H")
MAX_TCP_WRITE_BUFFER = 256 * 1024


Pending = Coroutine[Any, Any, bytes | None] | asyncio.Future[bytes | None]
"""An answer still to come: a coroutine to run as a task, or a future others complete."""


class Handler(Protocol):
    def handle(self, data: bytes, address: str, transport: str) -> bytes | None | Pending: ...


class ServerMetrics(Protocol):
    def dropped_query(self, reason: str) -> None: ...
    def tcp_open(self, delta: int) -> None: ...


class Inflight:
    """Counts and bounds the query tasks shared by all listeners; lets shutdown wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tasks: set[asyncio.Future[Any]] = set()

    def full(self) -> bool:
        return len(self.tasks) >= self.limit

    def start(self, work: Pending) -> asyncio.Future[Any]:
        """Track ``work``: a future as it is, a coroutine as a new task."""
        fut = work if isinstance(work, asyncio.Future) else (
            asyncio.get_running_loop().create_task(work))
        self.tasks.add(fut)
        fut.add_done_callback(self.tasks.discard)
        return fut

    @staticmethod
    def abandon(work: Pending) -> None:
        """Drop work refused at the bound (a coroutine never started, a future cancelled)."""
        if isinstance(work, asyncio.Future):
            work.cancel()
        else:
            work.close()

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, inflight: Inflight, metrics: ServerMetrics) -> None:
        self.handler = handler
        self.inflight = inflight
        self.metrics = metrics
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            result = self.handler.handle(data, addr[0], "udp")
        except Exception:
            log.exception("internal error handling a UDP query")
            return
        if result is None:
            return
        if isinstance(result, bytes):
            if self.transport is not None:
                self.transport.sendto(result, addr)
            return
        if self.inflight.full():
            self.inflight.abandon(result)
            self.metrics.dropped_query("inflight_limit")
            return
        task = self.inflight.start(result)
        task.add_done_callback(lambda t: self._send(t, addr))

    def _send(self, task: asyncio.Future[bytes | None], addr: Any) -> None:
        if task.cancelled() or self.transport is None or self.transport.is_closing():
            return
        exc = task.exception()
        if exc is not None:
            log.error("internal error handling a UDP query: %r", exc)
            return
        data = task.result()
        if data is not None:
            self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp socket error: %s", exc)


class TcpListener:
    """RFC 7766: length-framed queries, pipelined and answered as they complete."""

    def __init__(self, handler: Handler, inflight: Inflight, metrics: ServerMetrics,
                 idle_timeout: float, max_connections: int, max_pipeline: int) -> None:
        self.handler = handler
        self.inflight = inflight
        self.metrics = metrics
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_pipeline = max_pipeline
        self.connections: set[asyncio.StreamWriter] = set()
        self.closing = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing or len(self.connections) >= self.max_connections:
            self.metrics.dropped_query("tcp_connection_limit")
            writer.close()
            return
        self.connections.add(writer)
        self.metrics.tcp_open(1)
        peer = writer.get_extra_info("peername")
        address = peer[0] if peer else "?"
        pending: set[asyncio.Future[Any]] = set()
        try:
            while not self.closing:
                header = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout)
                size = _U16.unpack(header)[0]
                if size == 0:
                    break
                data = await asyncio.wait_for(reader.readexactly(size), self.idle_timeout)
                result = self.handler.handle(data, address, "tcp")
                if result is None:
                    continue
                if isinstance(result, bytes):
                    self._write(writer, result)
                    continue
                if self.inflight.full() and not pending:
                    self.inflight.abandon(result)
                    self.metrics.dropped_query("inflight_limit")
                    continue
                if len(pending) >= self.max_pipeline or self.inflight.full():
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                task = self.inflight.start(result)
                pending.add(task)
                task.add_done_callback(pending.discard)
                task.add_done_callback(lambda t: self._write_task(writer, t))
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            if pending:
                await asyncio.wait(pending, timeout=self.idle_timeout)
            self.connections.discard(writer)
            self.metrics.tcp_open(-1)
            writer.close()

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() > MAX_TCP_WRITE_BUFFER:
            # The client sends but does not read: drop it rather than buffer forever.
            self.metrics.dropped_query("tcp_client_not_reading")
            writer.transport.abort()  # close() would wait to flush what it never reads
            return
        writer.write(_U16.pack(len(data)) + data)

    def _write_task(self, writer: asyncio.StreamWriter, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("internal error handling a TCP query: %r", exc)
            return
        data = task.result()
        if data is not None:
            self._write(writer, data)

    def close_all(self) -> None:
        self.closing = True
        for writer in list(self.connections):
            writer.close()
