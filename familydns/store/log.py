"""The blocked-lookup log: a writer that never slows DNS, and the parent's queries.

``LogWriter.record`` is called on the query path for every blocked lookup, so it only
counts: lookups are aggregated in memory by everything that identifies a row except the
time (device, profile, name, type, action, category, rule, list, reason), and a flush
writes one row per distinct key with ``hits`` = how many lookups it stands for. An app
retrying the same blocked tracker hundreds of times a minute costs one row per flush
window, not hundreds. Memory is bounded: at most ``queue_size`` distinct keys are held;
a new key beyond that is dropped and counted (``on_drop`` feeds a Prometheus counter),
as Blocky does, instead of waiting for the disk. A background task writes in batches of
one transaction each on its own ``synchronous=NORMAL`` connection. A locked or failing
database costs the batch (dropped, counted, logged at most once a minute), never the
caller.

Retention keeps the file bounded: rows older than ``retention_days`` go, and so do the
oldest rows of a household beyond ``max_rows``, so one chatty device cannot fill an SD
card (Pi-hole FTL #2715). The cap counts rows, and a row may stand for many lookups.
Deletes run in chunks so no transaction is long. Every reader (``query_log``,
``report``) counts ``hits``, not rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from familydns.profiles.model import Decision
from familydns.resolver.identity import ClientIdentity
from familydns.store import sql
from familydns.store.connection import connect, transaction
from familydns.store.store import Store
from familydns.store.values import DEFAULT_HOUSEHOLD, StoreError, household_name

log = logging.getLogger("familydns.store.log")

WARN_INTERVAL = 60.0
"""Seconds between two warnings about failed writes: a broken disk must not flood logs."""
PRUNE_CHUNK = 10_000
"""Rows deleted per transaction, so pruning never holds the write lock for long."""
NO_CATEGORY = "none"
"""The report's name for blocks without a category (parent deny list, schedules)."""
FLUSH_WINDOW = 5.0
"""Default ``LogWriter.batch_interval``: seconds between writes, long enough that an
app's retries share a row and an SD card sees few writes."""

LogKey = tuple[str, str, str, str, int, str, str | None, str | None, str | None, str | None]
"""What makes two lookups one row: (household, device, profile, qname, qtype, action,
category, rule, source, reason), in ``LogEvent``'s field order. A plain tuple because
building and hashing one is the cheapest thing the query path can do."""


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One log row; ``device`` is the client's id, MAC or address.

    ``ts`` is the first of ``hits`` identical lookups aggregated into the row, the rest
    coming within one flush window (``LogWriter.batch_interval``) after it.
    """

    ts: float
    household: str
    device: str
    profile: str
    qname: str
    qtype: int
    action: str
    category: str | None = None
    rule: str | None = None
    source: str | None = None
    reason: str | None = None
    hits: int = 1

    @property
    def key(self) -> LogKey:
        return (self.household, self.device, self.profile, self.qname, self.qtype,
                self.action, self.category, self.rule, self.source, self.reason)

    @classmethod
    def from_decision(cls, decision: Decision, client: ClientIdentity, qname: str,
                      qtype: int, ts: float,
                      household: str = DEFAULT_HOUSEHOLD) -> LogEvent:
        return cls(ts, *log_key(decision, client, qname, qtype, household))


def log_key(decision: Decision, client: ClientIdentity, qname: str, qtype: int,
            household: str = DEFAULT_HOUSEHOLD) -> LogKey:
    """The row a lookup counts towards; ``device`` is the client's id, MAC or address."""
    return (household, client.client_id or client.mac or client.address, decision.profile,
            qname, qtype, decision.action.value, decision.category, decision.rule,
            decision.source, decision.reason)


class LogWriter:
    """Lookups aggregated per key in memory, written as batched inserts; start ``run()``
    as a task.

    ``record`` is synchronous and O(1). ``close()`` stops ``run()``, writes everything
    pending and closes the connection. Pruning runs when ``run()`` starts and then
    every ``prune_interval`` seconds of the injected clock.

    ``batch_interval`` is the flush window (``FLUSH_WINDOW``, 5 s, by default): the
    longer it is, the more repeats share a row and the fewer writes reach the disk (an
    SD card's lifetime is counted in writes), at the cost of rows appearing later and,
    on a power cut or ``kill -9``, of losing up to that many seconds of log. ``close()``
    (SIGTERM) loses nothing.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        *,
        queue_size: int = 10_000,
        batch_interval: float | None = None,
        batch_size: int = 1_000,
        retention_days: float = 30,
        max_rows: int = 2_000_000,
        prune_interval: float = 3_600.0,
        clock: Callable[[], float] = time.time,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or max_rows < 1 or retention_days <= 0:
            raise ValueError("queue_size, batch_size, max_rows and retention_days must be > 0")
        self.path = store.path if isinstance(store, Store) else Path(store)
        self.queue_size = queue_size
        """Distinct keys held in memory at most, pending or being written."""
        self.batch_interval = FLUSH_WINDOW if batch_interval is None else batch_interval
        self.batch_size = batch_size
        """Rows per transaction."""
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.prune_interval = prune_interval
        self.clock = clock
        self.on_drop = on_drop
        self.dropped = 0
        """Lookups lost since start: a new key with ``queue_size`` held, or a failed write."""
        self.written = 0
        """Rows written since start."""
        self.written_hits = 0
        """Lookups those rows stand for."""
        self._pending: dict[LogKey, list[float]] = {}
        """key -> [first ts, hits]: a list so a repeat is one in-place increment."""
        self._writing = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._conn: aiosqlite.Connection | None = None
        self._households: dict[str, int] = {}
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._last_warning = -math.inf
        self._unreported = 0

    def record(self, ts: float, key: LogKey) -> bool:
        """Count one lookup at ``ts``; False (dropped and counted) for a new key when
        ``queue_size`` keys are held, or after ``close()``. A repeat of a pending key
        is never dropped."""
        entry = self._pending.get(key)
        if entry is not None:
            entry[1] += 1
            return True
        if len(self._pending) + self._writing >= self.queue_size or self._closing:
            self._drop(1)
            return False
        self._pending[key] = [ts, 1]
        return True

    def record_event(self, event: LogEvent) -> bool:
        """``record`` for a ready-made event (tools, tests), counting its ``hits``."""
        if not self.record(event.ts, event.key):
            return False
        self._pending[event.key][1] += event.hits - 1
        return True

    @property
    def pending(self) -> int:
        """Rows waiting for the next flush (distinct keys, however many hits each)."""
        return len(self._pending)

    async def run(self) -> None:
        """Flush every ``batch_interval`` s until close, and never sooner: under a
        flood of distinct blocked names the writes stay at ``queue_size`` rows per
        window (2,000 rows/s by default, a few percent of a core) and the rest is
        dropped and counted, rather than SQLite taking a growing share of the CPU
        that answers DNS."""
        self._runner = asyncio.current_task()
        next_prune = self.clock()
        while not self._closing:
            if self.clock() >= next_prune:
                await self.prune()
                next_prune = self.clock() + self.prune_interval
            if not self._closing:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.batch_interval)
                except TimeoutError:
                    pass
            await self.flush()

    async def flush(self) -> int:
        """Write what is pending now, one row per key, ``batch_size`` rows per
        transaction; returns the rows written. Lookups recorded meanwhile wait for
        the next flush."""
        batch = list(self._pending.items())
        self._pending = {}
        self._writing += len(batch)
        done = written = 0
        try:
            while done < len(batch):
                chunk = batch[done:done + self.batch_size]
                written += await self._write(chunk)
                done += len(chunk)
                self._writing -= len(chunk)
        finally:
            if done < len(batch):  # cancelled mid-write: the rest is lost, and counted
                self._writing -= len(batch) - done
                self._drop(sum(int(entry[1]) for _, entry in batch[done:]))
        return written

    async def close(self) -> None:
        """Stop ``run()``, write everything pending, close the connection."""
        self._closing = True
        self._wake.set()
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task() and not runner.done():
            await runner
        await self.flush()
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def prune(self, now: float | None = None) -> int:
        """Delete rows past retention, then each household's oldest beyond ``max_rows``."""
        now = self.clock() if now is None else now
        cutoff = now - self.retention_days * 86_400
        deleted = 0
        try:
            async with self._lock:
                conn = await self._connection()
                for (hid,) in await conn.execute_fetchall(sql.HOUSEHOLD_IDS):
                    deleted += await _delete_chunks(conn, sql.LOG_DELETE_BEFORE, (hid, cutoff))
                    count = (await _scalar(conn, sql.LOG_COUNT, (hid,))) or 0
                    excess = int(count) - self.max_rows
                    while excess > 0:
                        n = await _delete(conn, sql.LOG_DELETE_OLDEST,
                                          (hid, min(excess, PRUNE_CHUNK)))
                        if n == 0:
                            break
                        excess -= n
                        deleted += n
        except (sqlite3.Error, StoreError, OSError) as exc:
            self._warn(f"pruning the blocked-lookup log failed: {exc}")
        if deleted:
            log.info("pruned %d blocked-lookup log rows", deleted)
        return deleted

    async def _write(self, batch: list[tuple[LogKey, list[float]]]) -> int:
        hits = sum(int(entry[1]) for _, entry in batch)
        try:
            async with self._lock:
                conn = await self._connection()
                created: dict[str, int] = {}
                async with transaction(conn):
                    for name in {k[0] for k, _ in batch} - self._households.keys():
                        created[name] = await _household_id(conn, name)
                    ids = self._households | created
                    await conn.executemany(sql.LOG_INSERT, [
                        (ids[k[0]], ts, *k[1:], int(n)) for k, (ts, n) in batch])
                self._households.update(created)
        except (sqlite3.Error, StoreError, OSError) as exc:
            self._drop(hits)
            self._warn(f"writing the blocked-lookup log failed: {exc}")
            return 0
        self.written += len(batch)
        self.written_hits += hits
        return len(batch)

    async def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            self._conn = await connect(self.path, synchronous="NORMAL", check=False,
                                       clock=self.clock)
        return self._conn

    def _drop(self, n: int) -> None:
        self.dropped += n
        self._unreported += n
        if self.on_drop is not None:
            self.on_drop(n)

    def _warn(self, message: str) -> None:
        now = self.clock()
        if now - self._last_warning >= WARN_INTERVAL:
            log.warning("%s (%d lookups not logged since the last warning)", message,
                        self._unreported)
            self._last_warning = now
            self._unreported = 0


async def _household_id(conn: aiosqlite.Connection, name: str) -> int:
    await conn.execute(sql.HOUSEHOLD_ADD, (household_name(name),))
    return int(await _scalar(conn, sql.HOUSEHOLD_ID, (name,)))


async def _scalar(conn: aiosqlite.Connection, query: str, params: Sequence[Any]) -> Any:
    async with conn.execute(query, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def _delete(conn: aiosqlite.Connection, query: str, params: Sequence[Any]) -> int:
    async with transaction(conn), conn.execute(query, params) as cursor:
        return int(cursor.rowcount)


async def _delete_chunks(conn: aiosqlite.Connection, query: str,
                         params: Sequence[Any]) -> int:
    """Run ``query`` (taking a trailing LIMIT) in short transactions until it is done."""
    total = 0
    while True:
        n = await _delete(conn, query, (*params, PRUNE_CHUNK))
        total += n
        if n < PRUNE_CHUNK:
            return total


# ---------------------------------------------------------------- queries for the CLI


async def query_log(
    store: Store,
    household: str = DEFAULT_HOUSEHOLD,
    *,
    profile: str | None = None,
    since: float | None = None,
    category: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> tuple[LogEvent, ...]:
    """The household's newest log rows first, optionally filtered; ``limit`` counts
    rows, each standing for its ``hits`` lookups."""
    hid = await _hid(store, household)
    if hid is None:
        return ()
    filters = (profile, since, category, action)
    query = sql.log_query(*(f is not None for f in filters))
    params = (hid, *(f for f in filters if f is not None), limit)
    rows = await store.fetch(query, params)
    return tuple(LogEvent(r[0], household, *r[1:]) for r in rows)


@dataclass(frozen=True, slots=True)
class ProfileReport:
    """One profile's blocked lookups over a period; pairs are sorted most first."""

    profile: str
    total: int
    by_category: tuple[tuple[str, int], ...]
    top_domains: tuple[tuple[str, int], ...]
    by_hour: tuple[int, ...]
    """24 counts, index = hour of day on the household's clock."""


async def report(
    store: Store,
    household: str = DEFAULT_HOUSEHOLD,
    *,
    since: float,
    until: float | None = None,
    profile: str | None = None,
    tz: dt.tzinfo | None = None,
    top: int = 10,
    action: str = "block",
) -> tuple[ProfileReport, ...]:
    """Per profile (sorted by name): total, by category, top domains, by local hour.

    Every count is of lookups: a row adds its ``hits``. ``tz`` is the household's zone;
    None is the system's local time.
    """
    hid = await _hid(store, household)
    if hid is None:
        return ()
    until = store.clock() if until is None else until
    one = profile is not None
    where: tuple[Any, ...] = (hid, action, since, until, *((profile,) if one else ()))
    totals = await store.fetch(sql.report_totals(one), where)
    categories = await store.fetch(sql.report_categories(one), where)
    domains = await store.fetch(sql.report_top_domains(one), (*where, top))
    quarters = await store.fetch(sql.report_quarter_hours(one), where)
    hours = _local_hours((int(r[1]) for r in quarters), tz)
    reports = []
    for name, total in totals:
        by_hour = [0] * 24
        for p, q, n in quarters:
            if p == name:
                by_hour[hours[int(q)]] += int(n)
        reports.append(ProfileReport(
            profile=name,
            total=int(total),
            by_category=_most_first((c or NO_CATEGORY, int(n))
                                    for p, c, n in categories if p == name),
            top_domains=tuple((str(d), int(n)) for p, d, n in domains if p == name),
            by_hour=tuple(by_hour),
        ))
    return tuple(reports)


async def _hid(store: Store, household: str) -> int | None:
    rows = await store.fetch(sql.HOUSEHOLD_ID, (household,))
    return int(rows[0][0]) if rows else None


def _local_hours(quarters: Iterable[int], tz: dt.tzinfo | None) -> dict[int, int]:
    """Quarter-hour bucket number -> hour of day in ``tz``."""
    return {q: dt.datetime.fromtimestamp(q * 900, tz).hour for q in set(quarters)}


def _most_first(pairs: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(pairs, key=lambda pair: (-pair[1], pair[0])))
