"""``familydns serve --workers N``: a supervisor and N resolver processes.

One Python process answers DNS on one core, so a machine with more cores runs several
workers. Each worker is a complete ``familydns serve`` (its own cache, policy snapshot
and log writer, and a metrics endpoint on the metrics port + its index) bound to the
same listen addresses with SO_REUSEPORT: the kernel spreads clients over the workers by
address and port, and a worker that goes away leaves its share to the others.

The supervisor binds nothing and holds no policy. It starts worker 0 first and waits
until it answers, so the database check, migrations and list compilation happen once
and the others read ``lists/compiled.bin``; then it starts the rest. SIGHUP is passed
on (each worker reloads); SIGTERM or SIGINT is passed on (each drains and exits), and
the supervisor exits 0 once all have. A worker that dies while told to run is logged as
an error and restarted after a backoff (1 s, doubling to 30 s while it keeps dying): a
child's device must never silently lose its resolver. A worker that cannot start the
first time (address in use, unreadable database) fails the command instead, as a
single process would.

Each worker holds one end of a socket pair with the supervisor: it writes a byte once it
answers, the supervisor reads EOF when it dies, and a worker reads EOF when the
supervisor dies, then stops, so no orphan keeps answering with a stale policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from familydns.config import Config, parse_listen
from familydns.errors import FamilyDNSError

log = logging.getLogger("familydns.workers")

BACKOFF_FIRST = 1.0
"""Seconds before restarting a worker that died."""
BACKOFF_MAX = 30.0
"""The backoff doubles while a worker keeps dying, up to this."""
HEALTHY_AFTER = 60.0
"""A worker that ran this long before dying is restarted after BACKOFF_FIRST again."""
STOP_MARGIN = 5.0
"""Seconds a worker may take beyond ``server.shutdown_grace`` before it is killed."""
_CLEAN_EXITS = (0, -signal.SIGTERM, -signal.SIGINT)
"""Exit codes of a worker told to stop (a signal may land before its handlers do)."""


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    link: socket.socket | None = None
    ready: bool = False
    started_at: float = 0.0
    failures: int = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    """Runs ``command`` (a ``familydns serve`` command line) as ``count`` workers."""

    def __init__(self, command: Sequence[str], count: int, *, shutdown_grace: float,
                 backoff: float = BACKOFF_FIRST) -> None:
        self.command = list(command)
        self.workers = [_Worker(i) for i in range(count)]
        self.shutdown_grace = shutdown_grace
        self.backoff = backoff
        self._stop: asyncio.Event | None = None

    async def run(self) -> int:
        """Start the workers, keep them running until SIGTERM/SIGINT; the exit code."""
        loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        code = 0
        try:
            # Worker 0 alone first: it checks the database and compiles the lists.
            started = await self._start(self.workers[0]) and all(
                await asyncio.gather(*(self._start(w) for w in self.workers[1:])))
            if started:
                log.info("%d workers answering (pids %s)", len(self.workers),
                         " ".join(str(w.proc.pid) for w in self.workers if w.proc))
                await asyncio.gather(*(self._keep(w) for w in self.workers))
            elif not stop.is_set():
                log.error("a worker could not start: stopping")
                code = 1
        finally:
            if not await self._stop_all():
                code = 1
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return code

    # ------------------------------------------------------------------ one worker

    async def _start(self, w: _Worker) -> bool:
        """Spawn worker ``w`` and wait until it answers (True), dies or is told to stop."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        try:
            w.proc = await asyncio.create_subprocess_exec(
                *self.command, "--worker-index", str(w.index),
                "--worker-fd", str(theirs.fileno()),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            log.error("cannot start worker %d: %s", w.index, exc)
            return False
        finally:
            theirs.close()
        w.link, w.ready, w.started_at = ours, False, loop.time()
        log.info("worker %d starting (pid %d)", w.index, w.proc.pid)
        try:
            said = await self._unless_stopped(loop.sock_recv(ours, 1))
        except OSError:
            said = b""
        if said is None:
            return False
        if not said:
            code = await w.proc.wait()
            log.error("worker %d (pid %d) %s while starting", w.index, w.proc.pid,
                      describe_exit(code))
            return False
        w.ready = True
        return True

    async def _keep(self, w: _Worker) -> None:
        """Restart ``w`` whenever it dies, until the supervisor is told to stop."""
        loop = asyncio.get_running_loop()
        while w.proc is not None:
            code = await self._unless_stopped(w.proc.wait())
            if code is None:
                return
            w.ready = False
            if w.link is not None:
                w.link.close()
                w.link = None
            if loop.time() - w.started_at >= HEALTHY_AFTER:
                w.failures = 0
            delay = min(BACKOFF_MAX, self.backoff * 2 ** w.failures)
            w.failures += 1
            log.error("worker %d (pid %d) %s; restarting it in %g s", w.index, w.proc.pid,
                      describe_exit(code), delay)
            if await self._unless_stopped(asyncio.sleep(delay, True)) is None:
                return
            if await self._start(w):
                log.info("worker %d answering again (pid %d)", w.index,
                         w.proc.pid if w.proc else 0)

    async def _unless_stopped(self, aw: Awaitable[Any]) -> Any:
        """``aw``'s result, or None as soon as the supervisor is told to stop."""
        assert self._stop is not None
        task = asyncio.ensure_future(aw)
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if self._stop.is_set():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
            return None
        return task.result()

    # ------------------------------------------------------------------ signals

    def _reload(self) -> None:
        """SIGHUP: every answering worker reloads (a starting one reads the new config)."""
        if self._stop is not None and self._stop.is_set():
            return
        for w in self.workers:
            if w.ready and w.alive:
                assert w.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGHUP)
        log.info("reload passed on to the workers")

    async def _stop_all(self) -> bool:
        """SIGTERM to every worker, wait for them to drain; True if all exited cleanly."""
        running = [w for w in self.workers if w.alive]
        if running:
            log.info("stopping %d workers", len(running))
        for w in running:
            assert w.proc is not None
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGTERM)
        clean = True
        for w in running:
            assert w.proc is not None
            try:
                code = await asyncio.wait_for(w.proc.wait(),
                                              self.shutdown_grace + STOP_MARGIN)
            except TimeoutError:
                log.error("worker %d (pid %d) did not stop: killing it", w.index, w.proc.pid)
                w.proc.kill()
                code = await w.proc.wait()
            if code not in _CLEAN_EXITS:
                log.error("worker %d (pid %d) %s while stopping", w.index, w.proc.pid,
                          describe_exit(code))
                clean = False
        for w in self.workers:
            if w.link is not None:
                w.link.close()
                w.link = None
        return clean


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def check_listen_free(listen: Sequence[str]) -> None:
    """Fail when something already holds a listen address.

    Workers bind with SO_REUSEPORT, which would let them join the sockets of another
    familydns of the same user (an old instance, another config) and silently split the
    house's queries with it. A plain bind, closed at once, fails in that case."""
    for item in listen:
        host, port = parse_listen(item)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(family, kind) as probe:
                if kind == socket.SOCK_STREAM:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:  # as asyncio's TCP listener does
                        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    proto = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
                    raise FamilyDNSError(f"cannot listen on {item} ({proto}): "
                                         f"{exc.strerror or exc}") from None


def supervise(config: Config, command: Sequence[str]) -> int:
    """Entry point of ``familydns serve`` when ``server.workers`` is above 1."""
    try:
        check_listen_free(config.server.listen)
    except FamilyDNSError as exc:
        log.error("%s", exc)
        return 1
    supervisor = Supervisor(command, config.server.workers,
                            shutdown_grace=config.server.shutdown_grace)
    return asyncio.run(supervisor.run())


def worker_link(fd: int) -> Callable[[Callable[[], None]], None]:
    """A worker's side of the link: ``on_started`` for ``familydns.app.run``."""
    link = socket.socket(fileno=fd)

    def on_started(stop: Callable[[], None]) -> None:
        def gone() -> None:
            log.error("the supervisor is gone: stopping")
            stop()

        try:
            link.sendall(b"1")
        except OSError:  # it died while this worker was starting
            gone()
            return
        link.setblocking(False)
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = link.recv(1)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(link.fileno())
                gone()

        loop.add_reader(link.fileno(), readable)

    return on_started
