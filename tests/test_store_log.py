"""The blocked-lookup log: never blocks the caller, stays bounded, answers the parent.

Repeated identical lookups are counted in memory and written as one row per flush
window with ``hits``; everything that reads the log counts hits, not rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from familydns.app import App
from familydns.config import Config, HouseholdConfig
from familydns.profiles.model import Action, Decision
from familydns.resolver.identity import ClientIdentity
from familydns.store import LogEvent, LogWriter, Store, query_log, report
from familydns.store import connection as connection_module
from familydns.store import log as log_module
from tests.conftest import FakeClock as Clock

NOW = 1_790_000_000.0  # Monday 2026-09-21 14:13:20 UTC
DAY = 86_400.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "familydns.db", clock=clock)
    yield s
    await s.close()


def event(qname: str = "bet365.com", *, ts: float = NOW, profile: str = "alice",
          household: str = "home", category: str | None = "gambling",
          action: str = "block", device: str = "192.168.1.20", qtype: int = 1,
          hits: int = 1) -> LogEvent:
    return LogEvent(ts=ts, household=household, device=device, profile=profile,
                    qname=qname, qtype=qtype, action=action, category=category,
                    rule=qname, source="starter", reason="gambling is blocked", hits=hits)


def count(store: Store) -> int:
    with sqlite3.connect(store.path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM blocked_log").fetchone()[0])


def rows(store: Store) -> list[tuple[str, int, str, str, float, int]]:
    """(qname, qtype, device, profile, ts, hits) of every row, in insert order."""
    with sqlite3.connect(store.path) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT qname, qtype, device, profile, ts, hits FROM blocked_log ORDER BY id")]


async def write(store: Store, *events: LogEvent, **options: object) -> LogWriter:
    """Each event as its own row: one flush window per event."""
    writer = LogWriter(store, clock=store.clock, **options)  # type: ignore[arg-type]
    for e in events:
        assert writer.record_event(e)
        await writer.flush()
    return writer


# ------------------------------------------------------------------ aggregation


async def test_repeated_lookups_within_a_window_become_one_row_with_their_count(
    store: Store,
) -> None:
    writer = LogWriter(store, clock=store.clock)
    e = event()
    for i in range(12):
        assert writer.record(NOW + i * 0.4, e.key)
    assert writer.pending == 1
    assert await writer.flush() == 1
    assert rows(store) == [("bet365.com", 1, "192.168.1.20", "alice", NOW, 12)]
    assert (writer.written, writer.written_hits) == (1, 12)
    assert await query_log(store) == (dataclasses.replace(e, hits=12),)
    await writer.close()


async def test_lookups_that_differ_in_anything_but_the_time_stay_separate(
    store: Store,
) -> None:
    writer = LogWriter(store, clock=store.clock)
    variants = [event(), event(qtype=28), event(device="aa:bb:cc:dd:ee:01"),
                event(profile="ben"), event(household="smiths"), event(action="allow"),
                event(category=None), dataclasses.replace(event(), rule="*.bet365.com"),
                dataclasses.replace(event(), source="parent deny list"),
                dataclasses.replace(event(), reason="bedtime"), event("www.bet365.com")]
    for _ in range(3):
        for e in variants:
            writer.record(NOW, e.key)
    assert await writer.flush() == len(variants)
    assert count(store) == len(variants)
    assert [r[-1] for r in rows(store)] == [3] * len(variants)
    await writer.close()


async def test_each_flush_window_starts_new_rows(store: Store) -> None:
    writer = LogWriter(store, clock=store.clock)
    key = event().key
    writer.record(NOW, key)
    writer.record(NOW + 1, key)
    await writer.flush()
    writer.record(NOW + 5, key)
    await writer.flush()
    assert [(r[4], r[5]) for r in rows(store)] == [(NOW, 2), (NOW + 5, 1)]
    await writer.close()


async def test_record_event_counts_the_events_hits(store: Store) -> None:
    writer = LogWriter(store, clock=store.clock)
    assert writer.record_event(event(hits=4))
    assert writer.record_event(event(ts=NOW + 1))
    await writer.close()
    assert [(r[4], r[5]) for r in rows(store)] == [(NOW, 5)]


async def test_the_app_logs_a_decision_under_the_same_key_as_its_event(
    store: Store, tmp_path: Path,
) -> None:
    decision = Decision(Action.BLOCK, "alice", "gambling is blocked for 10-12",
                        category="gambling", rule="bet365.com", source="starter")
    client = ClientIdentity("192.168.1.20", mac="aa:bb:cc:dd:ee:01")
    app = App(lambda: Config(household=HouseholdConfig(name="smiths")), tmp_path / "data")
    app.log_writer = writer = LogWriter(store, clock=store.clock)
    for _ in range(3):
        app._log_decision(NOW, client, "www.bet365.com", 28, decision)
    await writer.close()
    expected = LogEvent.from_decision(decision, client, "www.bet365.com", 28, NOW, "smiths")
    assert await query_log(store, "smiths") == (dataclasses.replace(expected, hits=3),)
    app.log_writer = None
    app._log_decision(NOW, client, "www.bet365.com", 28, decision)  # stopping: no error


# ------------------------------------------------------------------ writer


async def test_record_only_counts_and_run_writes_the_window(store: Store) -> None:
    writer = LogWriter(store, batch_interval=0.02, clock=store.clock)
    task = asyncio.create_task(writer.run())
    try:
        for i in range(3):
            writer.record(NOW, event(f"site{i}.example").key)
        assert count(store) == 0 and writer.pending == 3
        for _ in range(100):
            await asyncio.sleep(0.01)
            if count(store) == 3:
                break
        assert count(store) == 3 and writer.pending == 0
    finally:
        await writer.close()
        await task


def test_the_default_window_is_five_seconds_to_spare_sd_cards(tmp_path: Path) -> None:
    assert LogWriter(tmp_path / "familydns.db").batch_interval == 5.0


async def test_writes_wait_for_the_window_however_many_rows_are_pending(store: Store) -> None:
    """A flood of distinct names does not make the writer busier: rows wait for the
    window, and what does not fit in ``queue_size`` is dropped and counted."""
    writer = LogWriter(store, batch_interval=0.3, batch_size=5, queue_size=20,
                       clock=store.clock)
    task = asyncio.create_task(writer.run())
    try:
        await asyncio.sleep(0.05)
        assert not task.done()
        for i in range(30):
            writer.record(NOW, event(f"site{i}.example").key)
        await asyncio.sleep(0.1)
        assert count(store) == 0
        assert writer.dropped == 10
        for _ in range(100):
            await asyncio.sleep(0.02)
            if count(store) == 20:
                break
        assert count(store) == 20
    finally:
        await writer.close()


async def test_the_key_bound_drops_and_counts_new_keys_but_never_repeats(
    store: Store,
) -> None:
    drops: list[int] = []
    writer = LogWriter(store, queue_size=3, on_drop=drops.append, clock=store.clock)
    keys = [event(f"site{i}.example").key for i in range(5)]
    assert [writer.record(NOW, k) for k in keys] == [True, True, True, False, False]
    assert all(writer.record(NOW + 1, keys[0]) for _ in range(1000))
    assert (writer.dropped, drops, writer.pending) == (2, [1, 1], 3)
    await writer.flush()
    assert writer.record(NOW + 2, keys[4])  # written keys free their room
    await writer.close()
    assert [(r[0], r[5]) for r in rows(store)] == [
        ("site0.example", 1001), ("site1.example", 1), ("site2.example", 1),
        ("site4.example", 1)]


async def test_keys_being_written_count_against_the_bound(store: Store) -> None:
    writer = LogWriter(store, queue_size=2, clock=store.clock)
    writer.record(NOW, event("a.example").key)
    writer.record(NOW, event("b.example").key)
    flushing = asyncio.create_task(writer.flush())
    await asyncio.sleep(0)  # the flush has taken both keys and is writing them
    assert writer.pending == 0
    assert writer.record(NOW, event("c.example").key) is False
    assert await flushing == 2
    assert writer.record(NOW, event("c.example").key)
    await writer.close()


async def test_close_writes_pending_counts_and_later_lookups_are_dropped(
    store: Store,
) -> None:
    writer = LogWriter(store, batch_interval=60, clock=store.clock)
    task = asyncio.create_task(writer.run())
    for _ in range(7):
        writer.record(NOW, event().key)
    writer.record(NOW, event("tiktok.com").key)
    await writer.close()
    await task
    assert [(r[0], r[5]) for r in rows(store)] == [("bet365.com", 7), ("tiktok.com", 1)]
    assert writer.record(NOW, event().key) is False and writer.dropped == 1


async def test_a_locked_database_costs_the_batch_never_the_caller(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(connection_module, "BUSY_TIMEOUT_MS", 50)
    drops: list[int] = []
    writer = LogWriter(store, on_drop=drops.append, clock=clock)
    await writer.flush()  # opens the writer's connection
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.WARNING, logger="familydns.store.log"):
            for _ in range(4):
                writer.record(NOW, event().key)
                writer.record(NOW, event().key)
                started = time.monotonic()
                assert await writer.flush() == 0
                assert time.monotonic() - started < 2
                clock.now += 25
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # One row a window, but the metric counts the lookups it stood for.
    assert (writer.dropped, drops) == (8, [2, 2, 2, 2])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # at 0 s and at 75 s: at most one a minute
    assert "locked" in warnings[0] and "6 lookups not logged" in warnings[1]
    writer.record(NOW, event().key)
    assert await writer.flush() == 1
    await writer.close()


async def test_an_unopenable_database_drops_and_counts(tmp_path: Path, clock: Clock) -> None:
    writer = LogWriter(tmp_path, clock=clock)  # a directory, not a database file
    writer.record(NOW, event().key)
    writer.record(NOW, event().key)
    assert await writer.flush() == 0
    assert writer.dropped == 2
    await writer.close()


def test_an_event_is_made_from_a_decision() -> None:
    decision = Decision(Action.BLOCK, "alice", "gambling is blocked for 10-12",
                        category="gambling", rule="bet365.com", source="starter")
    client = ClientIdentity("192.168.1.20", mac="aa:bb:cc:dd:ee:01")
    made = LogEvent.from_decision(decision, client, "www.bet365.com", 28, NOW)
    assert made == LogEvent(
        NOW, "home", "aa:bb:cc:dd:ee:01", "alice", "www.bet365.com", 28, "block",
        "gambling", "bet365.com", "starter", "gambling is blocked for 10-12", 1,
    )
    assert made.key == ("home", "aa:bb:cc:dd:ee:01", "alice", "www.bet365.com", 28,
                        "block", "gambling", "bet365.com", "starter",
                        "gambling is blocked for 10-12")


# ------------------------------------------------------------------ retention


async def test_prune_deletes_rows_past_retention(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                 clock: Clock) -> None:
    monkeypatch.setattr(log_module, "PRUNE_CHUNK", 2)
    ages = [0, 1, 29, 30.5, 31, 40, 365]
    writer = await write(store, *(event(ts=NOW - a * DAY) for a in ages))
    assert await writer.prune(NOW) == 4
    kept = await query_log(store)
    assert sorted(round((NOW - e.ts) / DAY, 1) for e in kept) == [0, 1, 29]
    await writer.close()


async def test_the_row_cap_removes_a_households_oldest_rows_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "PRUNE_CHUNK", 2)
    chatty = [event(f"t{i}.example", ts=NOW - i) for i in range(8)]
    quiet = [event("x.example", ts=NOW - 100, household="smiths")]
    writer = await write(store, *chatty, *quiet, max_rows=3)
    assert await writer.prune(NOW) == 5
    assert [e.qname for e in await query_log(store)] == ["t0.example", "t1.example",
                                                         "t2.example"]
    assert len(await query_log(store, "smiths")) == 1
    await writer.close()


async def test_the_row_cap_counts_rows_whatever_each_stands_for(store: Store) -> None:
    writer = await write(store, *(event(f"t{i}.example", ts=NOW - i, hits=50)
                                  for i in range(4)), max_rows=2)
    assert await writer.prune(NOW) == 2
    assert [(e.qname, e.hits) for e in await query_log(store)] == [
        ("t0.example", 50), ("t1.example", 50)]
    await writer.close()


async def test_run_prunes_when_it_starts(store: Store) -> None:
    writer = await write(store, event(ts=NOW - 90 * DAY), event())
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0.05)
    await writer.close()
    await task
    assert count(store) == 1


# ------------------------------------------------------------------ queries


async def test_each_household_sees_only_its_own_log(store: Store) -> None:
    await write(store, event("home.example"), event("smith.example", household="smiths"))
    assert [e.qname for e in await query_log(store)] == ["home.example"]
    assert [e.qname for e in await query_log(store, "smiths")] == ["smith.example"]
    assert await query_log(store, "nobody") == ()
    reports = await report(store, "smiths", since=NOW - DAY, until=NOW + 1)
    assert [(r.profile, r.total, r.top_domains) for r in reports] == [
        ("alice", 1, (("smith.example", 1),))]


async def test_query_log_filters_newest_first(store: Store) -> None:
    await write(
        store,
        event("a.example", ts=NOW - 3 * DAY),
        event("b.example", ts=NOW - 60, category="adult"),
        event("c.example", ts=NOW - 30, profile="ben"),
        event("d.example", ts=NOW - 10),
        event("e.example", ts=NOW, action="allow", category=None),
    )
    names = [e.qname for e in await query_log(store)]
    assert names == ["e.example", "d.example", "c.example", "b.example", "a.example"]
    assert [e.qname for e in await query_log(store, profile="ben")] == ["c.example"]
    recent = await query_log(store, profile="alice", since=NOW - DAY, category="gambling")
    assert [e.qname for e in recent] == ["d.example"]
    assert [e.qname for e in await query_log(store, action="block", limit=2)] \
        == ["d.example", "c.example"]
    first = (await query_log(store, limit=1))[0]
    assert first == event("e.example", ts=NOW, action="allow", category=None)


async def test_report_counts_categories_top_domains_and_local_hours(store: Store) -> None:
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    midnight = dt.datetime(2026, 9, 21, tzinfo=kolkata).timestamp()
    events = (
        [event("bet365.com", ts=midnight + 8 * 3600 + 60)] * 5
        + [event("pokerstars.com", ts=midnight + 8 * 3600 + 59 * 60)] * 3
        + [event(f"site{i}.example", ts=midnight + 21 * 3600 + 1800, category="adult")
           for i in range(12)]
        + [event("tiktok.com", ts=midnight + 23 * 3600 + 3599, category=None)]
        + [event("ben.example", profile="ben", ts=midnight)]
        + [event("allowed.example", ts=midnight, action="allow")]
        + [event("old.example", ts=midnight - 1)]
    )
    await write(store, *events)

    alice, ben = await report(store, since=midnight, until=midnight + DAY, tz=kolkata)

    assert alice.profile == "alice" and alice.total == 21
    assert alice.by_category == (("adult", 12), ("gambling", 8), ("none", 1))
    assert alice.top_domains[:2] == (("bet365.com", 5), ("pokerstars.com", 3))
    assert len(alice.top_domains) == 10
    assert alice.top_domains[2:] == tuple((f"site{i}.example", 1)
                                          for i in sorted(range(12), key=str)[:8])
    by_hour = dict(enumerate(alice.by_hour))
    assert {h: n for h, n in by_hour.items() if n} == {8: 8, 21: 12, 23: 1}
    assert (ben.total, ben.by_hour[0]) == (1, 1)
    only_ben = await report(store, since=midnight, until=midnight + DAY, tz=kolkata,
                            profile="ben")
    assert [r.profile for r in only_ben] == ["ben"]


async def test_reports_count_lookups_not_rows(store: Store) -> None:
    writer = LogWriter(store, clock=store.clock)
    for _ in range(40):
        writer.record(NOW, event("tracker.example", category="ads").key)
    for _ in range(3):
        writer.record(NOW, event("bet365.com").key)
    await writer.flush()
    writer.record(NOW + 60, event("bet365.com").key)
    writer.record(NOW + 2 * 3600, event("bet365.com", profile="ben").key)
    writer.record(NOW + 2 * 3600, event("bet365.com", profile="ben").key)
    await writer.close()
    assert count(store) == 4

    alice, ben = await report(store, since=NOW - DAY, until=NOW + DAY, tz=dt.UTC)

    assert alice.total == 44
    assert alice.by_category == (("ads", 40), ("gambling", 4))
    assert alice.top_domains == (("tracker.example", 40), ("bet365.com", 4))
    assert {h: n for h, n in enumerate(alice.by_hour) if n} == {14: 44}
    assert (ben.total, ben.top_domains, ben.by_hour[16]) == (2, (("bet365.com", 2),), 2)
    assert [(e.qname, e.hits) for e in await query_log(store, profile="alice")] == [
        ("bet365.com", 1), ("bet365.com", 3), ("tracker.example", 40)]
