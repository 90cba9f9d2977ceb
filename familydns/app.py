"""Composition root: builds the pieces from config, starts listeners, reloads, stops.

This is the only module that knows every part. The policy snapshot is held by one
reference (``SnapshotPolicy.snapshot``) that a reload replaces in a single assignment; a
reload that fails to build keeps the old snapshot running and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import logging
import os
import pwd
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from familydns.blocklists.matcher import Matcher
from familydns.blocklists.sources import ListLoader, ListStatus, starter_sources
from familydns.config import Config, ListSourceConfig, parse_listen
from familydns.errors import ConfigError, FamilyDNSError
from familydns.metrics import Metrics
from familydns.profiles.decide import decide, decide_chain
from familydns.profiles.model import NO_OVERRIDES, Decision, PolicySnapshot
from familydns.profiles.snapshot import build_snapshot
from familydns.resolver.cache import Cache
from familydns.resolver.identity import ClientIdentity
from familydns.resolver.pipeline import Resolver
from familydns.resolver.server import Inflight, TcpListener, UdpListener
from familydns.resolver.upstream import UpstreamPool
from familydns.store import LogWriter, Store, StoreState, log_key

log = logging.getLogger("familydns")

STORE_RECHECK = 5.0
"""Seconds after which the profile store is read even when its files look unchanged."""
LIST_REFRESH = 300.0
"""Seconds between looks for list downloads that are due."""
LIST_FOLLOW = 10.0
"""Seconds between a secondary worker's looks for list copies worker 0 downloaded."""


class SnapshotPolicy:
    """Adapts the pure ``decide`` to the resolver, over the snapshot current right now."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot

    def decide(self, client: ClientIdentity, qname: str, qtype: int, now: float) -> Decision:
        return decide(self.snapshot, client, qname, qtype, now)

    def decide_chain(self, client: ClientIdentity, names: Iterable[str], qtype: int,
                     now: float) -> Decision | None:
        return decide_chain(self.snapshot, client, names, qtype, now)


class _ServerMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def dropped_query(self, reason: str) -> None:
        self.metrics.dropped.labels(reason).inc()

    def tcp_open(self, delta: int) -> None:
        self.metrics.tcp_connections.inc(delta)


def all_sources(config: Config) -> tuple[ListSourceConfig, ...]:
    starter = tuple(starter_sources()) if config.lists.starter else ()
    return starter + config.lists.sources


class App:
    """One running familydns instance."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        data_dir: Path,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        use_store: bool = True,
        store_poll: float = 0.5,
        worker: int = 0,
    ) -> None:
        self.load_config = load_config
        self.data_dir = data_dir
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.use_store = use_store
        self.store_poll = store_poll
        self.worker = worker
        """Index among ``serve --workers`` processes: metrics listen on their port plus
        this, and only worker 0 downloads lists (the others follow its copies)."""
        self.config = load_config()
        self.loader = ListLoader(data_dir)
        self.matcher: Matcher = Matcher.empty()
        self.list_statuses: tuple[ListStatus, ...] = ()
        self._lists_signature = self._lists_seen = ""
        self.log_writer: LogWriter | None = None
        self._store_version: int | None = None
        self.policy: SnapshotPolicy | None = None
        self.resolver: Resolver | None = None
        self.pool: UpstreamPool | None = None
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._tcp: TcpListener | None = None
        self._inflight: Inflight | None = None
        self._metrics_server: Any = None
        self._reload_lock = asyncio.Lock()
        self._background: list[asyncio.Task[None]] = []
        self._log_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- policy

    @property
    def db_path(self) -> Path:
        return self.data_dir / "familydns.db"

    def load_lists(self, config: Config) -> Matcher:
        """Every list from its disk copy or the package (no network): the slow part."""
        result = self.loader.load(all_sources(config))
        self._lists_signature = result.signature
        for status in result.statuses:
            if status.last_error:
                log.warning("list %s: %s", status.name, status.last_error)
            if status.bad_lines:
                log.info("list %s: %d bad lines skipped", status.name, status.bad_lines)
        self.list_statuses = result.statuses
        self.metrics.list_entries.set(len(result.matcher))
        return result.matcher

    def compile(self, config: Config, matcher: Matcher,
                state: StoreState | None) -> PolicySnapshot:
        """Config profiles plus the store's, compiled into one snapshot (fast, pure)."""
        overrides = NO_OVERRIDES
        if state is not None:
            clash = sorted({p.name for p in config.profiles} & {p.name for p in state.profiles})
            if clash:
                raise ConfigError(f"profile {clash[0]!r} is defined both in the config file "
                                  "and in the database; rename or remove one")
            config = dataclasses.replace(config, profiles=config.profiles + state.profiles)
            overrides = state.overrides
        today = dt.datetime.fromtimestamp(self.clock()).date()
        return build_snapshot(config, matcher, overrides, reference_date=today,
                              version=state.version if state else 0, built_at=self.clock())

    @contextlib.asynccontextmanager
    async def _store(self) -> AsyncIterator[Store]:
        """A short-lived connection for each look at the profile store.

        A long-lived reader was seen stuck on an old snapshot in long test runs (a
        pause made by the CLI never became visible); a fresh connection always reads
        the latest commit, and costs about a millisecond per poll."""
        store = await Store.open(self.db_path, clock=self.clock, check=False)
        try:
            yield store
        finally:
            await store.close()

    async def _store_state(self, config: Config) -> StoreState | None:
        if not self.use_store:
            return None
        async with self._store() as store:
            state = await store.load(config.household.name, self.clock())
        self._store_version = state.version
        return state

    def _swap(self, snapshot: PolicySnapshot) -> None:
        assert self.policy is not None
        self.policy.snapshot = snapshot
        if self.resolver is not None:
            self.resolver.forget_answers()

    async def reload(self) -> bool:
        """Re-read config and lists, swap the snapshot; on any error keep the old one."""
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(self.load_config)
                matcher = await asyncio.to_thread(self.load_lists, config)
                snapshot = self.compile(config, matcher, await self._store_state(config))
            except FamilyDNSError as exc:
                self.metrics.reloads.labels("error").inc()
                log.error("reload failed, keeping the previous policy: %s", exc)
                return False
            if config.server.listen != self.config.server.listen:
                log.warning("listen addresses changed: restart familydns to apply them")
            if config.server.workers != self.config.server.workers:
                log.warning("server.workers changed: restart familydns to apply it")
            assert self.resolver is not None
            if config.upstreams != self.config.upstreams:
                old_pool, self.pool = self.pool, UpstreamPool(config.upstreams, self.metrics)
                self.resolver.upstreams = self.pool
                if old_pool is not None:
                    self._background.append(asyncio.create_task(old_pool.close()))
            self._swap(snapshot)
            self.matcher = matcher
            self.config = config
            self.resolver.apply_config(config)
            self.resolver.cache.config = config.cache
            self.metrics.reloads.labels("ok").inc()
            log.info("policy reloaded")
            return True

    async def store_changed(self) -> bool:
        """Rebuild the snapshot from the store's new state (lists are kept as they are)."""
        async with self._reload_lock:
            try:
                snapshot = self.compile(self.config, self.matcher,
                                        await self._store_state(self.config))
            except FamilyDNSError as exc:
                self.metrics.reloads.labels("error").inc()
                log.error("profile change not applied, keeping the previous policy: %s", exc)
                return False
            self._swap(snapshot)
            self.metrics.reloads.labels("ok").inc()
            log.info("profiles changed: policy updated")
            return True

    def _store_stamp(self) -> tuple[int, ...]:
        """What a commit to the store changes on disk: size, time and inode of the
        database file and of its write-ahead log."""
        stamp: list[int] = []
        for path in (self.db_path, self.db_path.with_name(self.db_path.name + "-wal")):
            try:
                st = path.stat()
            except OSError:
                stamp += (0, 0, 0)
            else:
                stamp += (st.st_mtime_ns, st.st_size, st.st_ino)
        return tuple(stamp)

    async def _watch_store(self) -> None:
        """Poll the store's version so CLI changes apply within about a second.

        Opening the store costs a thread and a connection; two ``stat`` calls cost
        microseconds, so the store is read only when its files changed, and at least
        every STORE_RECHECK seconds in case a change landed within one tick of the
        file system's clock without changing a size."""
        stamp: tuple[int, ...] = ()
        last_read = -float("inf")
        while True:
            await asyncio.sleep(self.store_poll)
            seen, now = self._store_stamp(), time.monotonic()
            if seen == stamp and now - last_read < STORE_RECHECK:
                continue
            stamp, last_read = seen, now
            try:
                async with self._store() as store:
                    version = await store.version(self.config.household.name)
            except Exception as exc:  # noqa: BLE001 - a store hiccup must never stop DNS
                log.warning("cannot read the profile store: %s", exc)
                continue
            if version != self._store_version:
                try:
                    await self.store_changed()
                except Exception:  # the watcher must outlive any bug
                    log.exception("applying a profile change failed")

    def _log_decision(self, now: float, client: ClientIdentity, qname: str, qtype: int,
                      decision: Decision) -> None:
        """Runs for every logged lookup, so it hands the writer a plain key tuple (see
        ``LogKey``) rather than building an event object."""
        writer = self.log_writer
        if writer is not None:
            writer.record(now, log_key(decision, client, qname, qtype,
                                       self.config.household.name))

    async def refresh_lists(self, force: bool = False) -> None:
        """Download URL sources that are due, then reload if anything changed."""
        statuses = await self.loader.refresh(all_sources(self.config), force=force)
        if any(s.last_error is None and not s.from_cache for s in statuses):
            await self.reload()

    async def follow_lists(self) -> None:
        """Reload when the list copies on disk changed (worker 0 downloaded them) and
        stayed so since the last look, which gives worker 0 time to finish downloading
        and to write the compiled lists this reload then reads."""
        # A thread: resolving every source's path takes a few milliseconds.
        seen = await asyncio.to_thread(self.loader.signature, all_sources(self.config))
        if seen != self._lists_signature and seen == self._lists_seen:
            await self.reload()
        self._lists_seen = seen

    async def _refresh_forever(self) -> None:
        """Worker 0 downloads; with ``serve --workers`` the others pick up its copies."""
        while True:
            try:
                if self.worker == 0:
                    await self.refresh_lists()
                else:
                    await self.follow_lists()
            except Exception:
                log.exception("list refresh failed")
            await asyncio.sleep(LIST_REFRESH if self.worker == 0 else LIST_FOLLOW)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        config = self.config
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.matcher = await asyncio.to_thread(self.load_lists, config)
        settle_garbage_collector()
        state: StoreState | None = None
        if self.use_store:
            # Opened once with the full check: migrations, and a corrupt file moved aside.
            await (await Store.open(self.db_path, clock=self.clock)).close()
            self.log_writer = LogWriter(
                self.db_path, retention_days=config.log.retention_days, clock=self.clock,
                on_drop=self.metrics.log_dropped)
            self._log_task = asyncio.create_task(self.log_writer.run())
            state = await self._store_state(config)
        try:
            snapshot = self.compile(config, self.matcher, state)
        except ConfigError as exc:
            if state is None:
                raise
            log.error("profiles in the database cannot be used (%s); until this is fixed "
                      "their devices get the default profile", exc)
            snapshot = self.compile(config, self.matcher, None)
        self.policy = SnapshotPolicy(snapshot)
        cache = Cache(config.cache, on_evict=lambda: self.metrics.cache_event("evictions"))
        self.metrics.track_cache_size(cache.__len__)
        self.pool = UpstreamPool(config.upstreams, self.metrics)
        self.resolver = Resolver(
            config, self.pool, cache, self.policy, self.metrics, clock=self.clock,
            on_decision=self._log_decision if self.log_writer is not None else None)
        server_metrics = _ServerMetrics(self.metrics)
        self._inflight = Inflight(config.server.max_inflight)
        self._tcp = TcpListener(self.resolver, self._inflight, server_metrics,
                                config.server.tcp_idle_timeout,
                                config.server.tcp_max_connections,
                                config.server.tcp_max_pipeline)
        try:
            for item in config.server.listen:
                await self._listen(*parse_listen(item), server_metrics)
        except OSError as exc:
            await self.stop()
            raise FamilyDNSError(f"cannot listen: {exc.strerror or exc}") from None
        if config.server.user:
            drop_privileges(config.server.user, self.data_dir)
        if config.metrics.listen:
            host, port = parse_listen(config.metrics.listen)
            port += self.worker  # serve --workers: worker i on the port + i
            try:
                self._metrics_server = self.metrics.serve(host, port)
            except OSError as exc:
                log.error("metrics endpoint %s port %d unavailable: %s",
                          config.metrics.listen, port, exc.strerror or exc)
        if any(s.url for s in all_sources(config)):
            self._background.append(asyncio.create_task(self._refresh_forever()))
        if self.use_store:
            self._background.append(asyncio.create_task(self._watch_store()))
        log.info("familydns answering on %s", ", ".join(
            f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.addresses))

    async def _listen(self, host: str, port: int, server_metrics: _ServerMetrics) -> None:
        """UDP and TCP on the same address; port 0 picks one free port for both.

        With ``server.workers`` above 1, every worker binds the same address with
        SO_REUSEPORT and the kernel spreads clients (by address and port) over them."""
        loop = asyncio.get_running_loop()
        assert self.resolver is not None and self._inflight is not None
        assert self._tcp is not None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        shared = self.config.server.workers > 1 or None
        for attempt in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: UdpListener(self.resolver, self._inflight, server_metrics),  # type: ignore[arg-type]
                local_addr=(host, port), family=family, reuse_port=shared)
            bound = udp.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(self._tcp.serve, host, bound, family=family,
                                                 reuse_address=True, reuse_port=shared)
            except OSError:
                udp.close()
                if port == 0 and attempt < 19:
                    continue
                raise
            self._udp.append(udp)  # type: ignore[arg-type]
            self._tcp_servers.append(tcp)
            self.addresses.append((host, bound))
            return

    async def stop(self) -> None:
        """Stop accepting, let in-flight queries finish (bounded), flush the log, close."""
        for task in self._background:
            task.cancel()
        for server in self._tcp_servers:
            server.close()
        if self._inflight is not None:
            await self._inflight.drain(self.config.server.shutdown_grace)
        log_writer, self.log_writer = self.log_writer, None
        for udp in self._udp:
            udp.close()
        if self._tcp is not None:
            self._tcp.close_all()
        for server in self._tcp_servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if self.pool is not None:
            await self.pool.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        if log_writer is not None:
            await log_writer.close()
        self._udp.clear()
        self._tcp_servers.clear()


def settle_garbage_collector() -> None:
    """Move what start-up built (lists, config) out of the collector's sight and collect
    the older generations less often.

    Python's cyclic collector walks every tracked object of a generation; with a full
    cache that walk stalled the loop for tens of milliseconds (p99 latency). It runs
    before the database is opened: a frozen cycle holding an unfinished SQLite statement
    would pin the connection to an old snapshot, and profile changes would go unseen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def drop_privileges(user: str, data_dir: Path) -> None:
    """After binding port 53 as root, run as ``user``; the data directory becomes theirs
    so the database and list copies stay writable."""
    if os.geteuid() != 0:
        log.info("not running as root: keeping the current user (server.user=%s)", user)
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise FamilyDNSError(f"server.user: no such user {user!r}") from None
    for path in (data_dir, *data_dir.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    log.info("dropped root: running as %s", user)


async def serve_forever(app: App,
                        on_started: Callable[[Callable[[], None]], None] | None = None) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads. Returns the exit code.

    ``on_started(stop)`` runs once the listeners are up: a worker of ``serve --workers``
    tells its supervisor, and calls ``stop`` should the supervisor go away."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    try:
        await app.start()
    except (FamilyDNSError, ConfigError) as exc:
        log.error("%s", exc)
        await app.stop()
        return 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(app.reload()))
        if on_started is not None:
            on_started(stop.set)
        await stop.wait()
        log.info("stopping: finishing in-flight queries")
    finally:
        # Also on an unexpected error: an open log writer's thread would keep the
        # process from exiting, holding its listening sockets without answering.
        await app.stop()
    return 0


GIL_SWITCH_INTERVAL = 0.0005
"""Seconds a background thread (SQLite writes, the metrics server) may hold the GIL
while the DNS loop waits for it; Python's default of 5 ms showed up as p99 latency."""


def run(app_factory: Callable[[], App],
        on_started: Callable[[Callable[[], None]], None] | None = None) -> int:
    """Entry point for ``familydns serve``: uvloop when installed, else asyncio."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(app_factory, on_started))
    return uvloop.run(_run(app_factory, on_started))


async def _run(app_factory: Callable[[], App],
               on_started: Callable[[Callable[[], None]], None] | None) -> int:
    return await serve_forever(app_factory(), on_started)
