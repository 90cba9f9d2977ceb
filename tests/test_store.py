"""The profile store: schema, commands the CLI runs, households, versions, recovery."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from familydns.config import DeviceConfig, ProfileConfig, ScheduleConfig
from familydns.profiles.model import TemporaryAllow
from familydns.store import LogEvent, LogWriter, Store, StoreError, query_log, report, values
from familydns.store import connection as connection_module
from familydns.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import FakeClock as Clock

NOW = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
TODAY = dt.date.fromtimestamp(NOW)
HOUR = 3600.0




@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "familydns.db"


@pytest.fixture
async def store(db: Path, clock: Clock) -> AsyncIterator[Store]:
    s = await Store.open(db, clock=clock)
    yield s
    await s.close()


def dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, to show that a refused command wrote nothing."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in tables}
    finally:
        conn.close()


async def alice(store: Store) -> None:
    await store.add_profile("alice", age=10)
    await store.add_device("alice", "mac", "AA-BB-CC-DD-EE-01", "tablet")


# ------------------------------------------------------------------ schema


async def test_an_empty_file_gets_every_migration(store: Store, db: Path) -> None:
    tables = set(dump(db))
    assert {"households", "profiles", "devices", "domain_rules", "category_rules",
            "schedules", "overrides", "blocked_log"} <= tables
    assert await store.fetch("PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_reopening_keeps_the_data_and_applies_nothing_twice(db: Path,
                                                                  clock: Clock) -> None:
    first = await Store.open(db, clock=clock)
    await alice(first)
    await first.close()
    second = await Store.open(db, clock=clock)
    try:
        assert await second.list_profiles() == ("alice",)
        assert await second.fetch("PRAGMA user_version") == [(SCHEMA_VERSION,)]
    finally:
        await second.close()


async def test_a_failing_migration_step_leaves_the_file_at_the_previous_version(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "MIGRATIONS",
                        ((*MIGRATIONS[0], "CREATE TABLE broken ("),))
    with pytest.raises(StoreError, match="cannot open database"):
        await Store.open(db)
    assert dump(db) == {}
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone() == (0,)


async def test_a_v1_database_upgrades_in_place_and_old_log_rows_count_once(
    db: Path, clock: Clock
) -> None:
    """Version 2 added ``blocked_log.hits``; a row written before stands for one lookup."""
    conn = sqlite3.connect(db)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO households (name) VALUES ('home')")
    conn.executemany(
        "INSERT INTO blocked_log (household_id, ts, device, profile, qname, qtype, action,"
        " category) VALUES (1, ?, '10.0.0.5', 'alice', ?, 1, 'block', 'gambling')",
        [(NOW - 60, "bet365.com"), (NOW - 30, "bet365.com"), (NOW, "pokerstars.com")])
    conn.commit()
    conn.close()

    store = await Store.open(db, clock=clock)
    try:
        assert await store.fetch("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert await store.fetch("SELECT qname, hits FROM blocked_log ORDER BY id") == [
            ("bet365.com", 1), ("bet365.com", 1), ("pokerstars.com", 1)]
        [alice_report] = await report(store, since=NOW - HOUR, until=NOW + 1)
        assert alice_report.top_domains == (("bet365.com", 2), ("pokerstars.com", 1))
        assert [e.hits for e in await query_log(store)] == [1, 1, 1]
    finally:
        await store.close()


async def test_a_database_from_a_newer_familydns_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer than this familydns"):
        await Store.open(db)


async def test_connection_is_wal_full_with_foreign_keys_and_a_busy_timeout(
    store: Store,
) -> None:
    assert await store.fetch("PRAGMA journal_mode") == [("wal",)]
    assert await store.fetch("PRAGMA synchronous") == [(2,)]  # FULL
    assert await store.fetch("PRAGMA foreign_keys") == [(1,)]
    assert await store.fetch("PRAGMA busy_timeout") == [(5000,)]


# ------------------------------------------------------------------ commands


async def test_profile_commands_build_exactly_the_config_dataclasses(store: Store) -> None:
    await store.add_profile("alice", age=10, youtube="Strict")
    await store.add_profile("ben", birthdate="2012-05-01", safe_search=False,
                            block_answer="192.0.2.1, 2001:db8::1")
    await store.add_device("alice", "mac", "AA-BB-CC-DD-EE-01", "tablet")
    await store.add_device("alice", "ip", "::ffff:192.168.1.20")
    await store.add_device("ben", "cidr", "192.168.2.0/24")
    await store.add_device("ben", "client_id", "Ben-Laptop")
    await store.deny_domain("alice", "TikTok.com")
    await store.allow_domain("alice", "*.khanacademy.org")
    await store.set_category("alice", "gaming", "block")
    await store.set_category("ben", "social", "unblock")
    await store.add_schedule("alice", "bedtime", "sun-thu", "21:00", "07:00",
                             block_all=True, allow=["School.example.org"])
    await store.add_schedule("ben", "homework", "mon-fri", "16:00", "18:00",
                             block=["gaming", "streaming"])

    assert await store.load_profiles() == (
        ProfileConfig(
            name="alice", age=10, age_as_of=TODAY, youtube="strict",
            devices=(DeviceConfig(mac="aa:bb:cc:dd:ee:01", name="tablet"),
                     DeviceConfig(ip="192.168.1.20")),
            block=("gaming",), allow=("khanacademy.org",), deny=("tiktok.com",),
            schedules=(ScheduleConfig(name="bedtime", start="21:00", end="07:00",
                                      days="sun-thu", block_all=True,
                                      allow=("school.example.org",)),),
        ),
        ProfileConfig(
            name="ben", birthdate=dt.date(2012, 5, 1), safe_search=False,
            block_answer="192.0.2.1,2001:db8::1",
            devices=(DeviceConfig(cidr="192.168.2.0/24"),
                     DeviceConfig(client_id="ben-laptop")),
            unblock=("social",),
            schedules=(ScheduleConfig(name="homework", start="16:00", end="18:00",
                                      days="mon-fri", block=("gaming", "streaming")),),
        ),
    )


Command = Callable[[Store], Awaitable[object]]

REFUSED: list[tuple[str, Command, str]] = [
    ("unknown profile", lambda s: s.add_device("bob", "ip", "10.0.0.9"), "no profile named 'bob'"),
    ("duplicate profile", lambda s: s.add_profile("alice", age=8), "already exists"),
    ("device on another profile",
     lambda s: s.add_device("ben", "mac", "aa:bb:cc:dd:ee:01"),
     "mac aa:bb:cc:dd:ee:01 already belongs to profile 'alice'"),
    ("bad MAC", lambda s: s.add_device("alice", "mac", "aa:bb:cc:dd:ee"), "bad MAC"),
    ("CIDR with host bits", lambda s: s.add_device("alice", "cidr", "10.0.0.1/24"),
     "did you mean 10.0.0.0/24"),
    ("bad IP", lambda s: s.add_device("alice", "ip", "10.0.0.300"), "bad IP address"),
    ("bad client id", lambda s: s.add_device("alice", "client_id", "a b"), "bad client id"),
    ("bad kind", lambda s: s.add_device("alice", "hostname", "pc"), "bad device kind"),
    ("pasted URL", lambda s: s.deny_domain("alice", "https://tiktok.com/"), "bad domain"),
    ("bare word", lambda s: s.allow_domain("alice", "tiktok"), "bad domain"),
    ("unknown category", lambda s: s.set_category("alice", "gamez", "block"),
     "unknown category 'gamez'"),
    ("bad category action", lambda s: s.set_category("alice", "gaming", "ban"), "block or"),
    ("bad time", lambda s: s.add_schedule("alice", "bed", "daily", "25:00", "07:00",
                                          block_all=True), "bad time"),
    ("bad days", lambda s: s.add_schedule("alice", "bed", "funday", "21:00", "07:00",
                                          block_all=True), "unknown day"),
    ("empty window", lambda s: s.add_schedule("alice", "bed", "daily", "21:00", "21:00",
                                              block_all=True), "empty window"),
    ("schedule that does nothing",
     lambda s: s.add_schedule("alice", "bed", "daily", "21:00", "07:00"), "does nothing"),
    ("duplicate schedule",
     lambda s: s.add_schedule("alice", "bedtime", "daily", "20:00", "07:00", block_all=True),
     "already has a schedule"),
    ("birthdate in the future", lambda s: s.add_profile("cleo", birthdate="2099-01-01"),
     "in the future"),
    ("age and birthdate", lambda s: s.add_profile("cleo", "2015-01-01", 10), "exactly one"),
    ("neither age nor birthdate", lambda s: s.add_profile("cleo"), "exactly one"),
    ("bad age", lambda s: s.add_profile("cleo", age=300), "bad age"),
    ("bad name", lambda s: s.add_profile("", age=3), "bad profile name"),
    ("bad youtube", lambda s: s.set_profile("alice", youtube="loose"), "strict, moderate"),
    ("bad block answer", lambda s: s.set_profile("alice", block_answer="blackhole"),
     "nxdomain, nodata"),
    ("rename onto another profile", lambda s: s.set_profile("alice", new_name="ben"),
     "already exists"),
    ("temporary allow in the past",
     lambda s: s.allow_domain("alice", "roblox.com", until=NOW - 1), "in the future"),
    ("pause ending in the past", lambda s: s.pause("alice", until=NOW), "in the future"),
    ("removing an unknown rule", lambda s: s.remove_domain_rule("alice", "example.com"),
     "no rule for 'example.com'"),
    ("removing an unknown device", lambda s: s.remove_device("10.9.9.9"), "no device"),
    ("removing an unknown schedule", lambda s: s.remove_schedule("alice", "nap"),
     "no schedule 'nap'"),
    ("removing an unknown profile", lambda s: s.remove_profile("bob"), "no profile"),
    ("bad household", lambda s: s.add_profile("cleo", age=3, household="a b"),
     "bad household"),
]


@pytest.mark.parametrize(("case", "command", "message"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_wrong_input_is_refused_with_one_line_and_nothing_written(
    store: Store, db: Path, case: str, command: Command, message: str
) -> None:
    await alice(store)
    await store.add_profile("ben", age=14)
    await store.add_schedule("alice", "bedtime", "daily", "21:00", "07:00", block_all=True)
    before, version = dump(db), await store.version()

    with pytest.raises(StoreError, match=message.replace("(", r"\(")) as refused:
        await command(store)

    assert "\n" not in str(refused.value)
    assert dump(db) == before
    assert await store.version() == version


async def test_removing_a_profile_removes_everything_that_was_its(store: Store,
                                                                   db: Path) -> None:
    await alice(store)
    await store.deny_domain("alice", "tiktok.com")
    await store.set_category("alice", "gaming", "block")
    await store.add_schedule("alice", "bedtime", "daily", "21:00", "07:00", block_all=True)
    await store.pause("alice")
    await store.remove_profile("alice")
    rows = dump(db)
    for table in ("profiles", "devices", "domain_rules", "category_rules", "schedules",
                  "overrides"):
        assert rows[table] == [], table


async def test_a_device_is_removed_by_its_value_in_any_spelling(store: Store) -> None:
    await alice(store)
    await store.add_device("alice", "cidr", "10.1.0.0/16")
    removed = await store.remove_device("AA:BB:CC:DD:EE:01")
    assert (removed.profile, removed.kind, removed.value) == ("alice", "mac",
                                                              "aa:bb:cc:dd:ee:01")
    await store.remove_device("10.1.0.0/16", kind="cidr")
    assert await store.list_devices("alice") == ()


async def test_a_parents_latest_word_on_a_domain_wins(store: Store) -> None:
    await alice(store)
    await store.allow_domain("alice", "youtube.com")
    await store.deny_domain("alice", "youtube.com")
    profile = await store.get_profile("alice")
    assert (profile.allow, profile.deny) == ((), ("youtube.com",))
    await store.remove_domain_rule("alice", "youtube.com")
    assert (await store.get_profile("alice")).deny == ()


async def test_overrides_are_loaded_only_while_they_run(store: Store, clock: Clock) -> None:
    await alice(store)
    await store.pause("alice", until=NOW + HOUR)
    await store.allow_domain("alice", "Roblox.com", until=NOW + 2 * HOUR)

    live = await store.load_overrides(now=NOW)
    assert live.pauses == {"alice": NOW + HOUR}
    assert live.allows == (TemporaryAllow("alice", "roblox.com", NOW + 2 * HOUR),)
    assert (await store.load_overrides(now=NOW + 1.5 * HOUR)).pauses == {}
    assert (await store.load_overrides(now=NOW + 3 * HOUR)).allows == ()


async def test_resume_ends_a_pause_and_deny_ends_a_temporary_allow(store: Store) -> None:
    await alice(store)
    await store.pause("alice")
    await store.allow_domain("alice", "roblox.com", until=NOW + HOUR)
    assert (await store.load_overrides()).pauses == {"alice": None}
    assert await store.resume("alice") is True
    assert await store.resume("alice") is False
    await store.deny_domain("alice", "roblox.com")
    assert (await store.load_overrides()).allows == ()


async def test_set_profile_changes_only_what_is_given(store: Store, clock: Clock) -> None:
    await store.add_profile("alice", age=10, youtube="strict", safe_search=True)
    clock.now += 400 * 24 * HOUR
    changed = await store.set_profile("alice", safe_search=None, new_name="Alice B")
    assert (changed.name, changed.youtube, changed.safe_search) == ("Alice B", "strict", None)
    assert changed.age_as_of == TODAY
    born = await store.set_profile("Alice B", birthdate=dt.date(2016, 2, 29))
    assert (born.birthdate, born.age, born.age_as_of) == (dt.date(2016, 2, 29), None, None)
    aged = await store.set_profile("Alice B", age=11)
    assert (aged.birthdate, aged.age_as_of) == (None, dt.date.fromtimestamp(clock.now))
    assert await store.load_profiles() == (aged,)


# ------------------------------------------------------------------ households


async def test_each_household_sees_only_its_own_profiles(store: Store) -> None:
    await alice(store)
    await store.add_profile("alice", age=15, household="smiths")
    await store.add_device("alice", "mac", "aa:bb:cc:dd:ee:01", household="smiths")
    await store.deny_domain("alice", "tiktok.com", household="smiths")

    home, smiths = await store.load_profiles(), await store.load_profiles("smiths")
    assert [(p.name, p.age, p.deny) for p in home] == [("alice", 10, ())]
    assert [(p.name, p.age, p.deny) for p in smiths] == [("alice", 15, ("tiktok.com",))]
    assert [d.name for d in await store.list_devices(household="smiths")] == [None]
    assert await store.load_profiles("nobody") == ()
    await store.remove_profile("alice", household="smiths")
    assert await store.list_profiles() == ("alice",)


async def test_a_write_changes_only_its_own_households_version(store: Store) -> None:
    await alice(store)
    await store.add_profile("tom", age=9, household="smiths")
    home, smiths = await store.version(), await store.version("smiths")
    await store.deny_domain("tom", "tiktok.com", household="smiths")
    assert await store.version() == home
    assert await store.version("smiths") > smiths


# ------------------------------------------------------------------ two connections


async def test_version_sees_a_change_committed_by_another_connection(
    db: Path, clock: Clock
) -> None:
    resolver = await Store.open(db, clock=clock)
    cli = await Store.open(db, clock=clock, check=False)
    try:
        await cli.add_profile("alice", age=10)
        seen = await resolver.version()
        state = await resolver.load()
        assert (state.version, [p.name for p in state.profiles]) == (seen, ["alice"])
        for command in (lambda: cli.add_device("alice", "ip", "10.0.0.5"),
                        lambda: cli.set_category("alice", "gaming", "block"),
                        lambda: cli.add_schedule("alice", "bed", "daily", "21:00", "07:00",
                                                 block_all=True),
                        lambda: cli.pause("alice"),
                        lambda: cli.remove_device("10.0.0.5")):
            await command()
            now = await resolver.version()
            assert now != seen
            seen = now
    finally:
        await cli.close()
        await resolver.close()


async def test_log_writes_do_not_change_the_version(db: Path, store: Store) -> None:
    await alice(store)
    before = await store.version()
    writer = LogWriter(store)
    writer.record_event(LogEvent(NOW, "home", "10.0.0.5", "alice", "bet365.com", 1, "block"))
    await writer.close()
    assert await store.version() == before


async def test_two_writers_and_the_log_never_see_database_is_locked(
    db: Path, clock: Clock
) -> None:
    first = await Store.open(db, clock=clock)
    second = await Store.open(db, clock=clock, check=False)
    writer = LogWriter(first, batch_size=200, batch_interval=0.01, clock=clock)
    task = asyncio.create_task(writer.run())
    try:
        await first.add_profile("alice", age=10)
        await second.add_profile("ben", age=12)

        async def edits(store: Store, profile: str) -> None:
            for i in range(40):
                await store.deny_domain(profile, f"site{i}.example")
                for j in range(50):
                    writer.record_event(LogEvent(NOW, "home", "10.0.0.5", profile,
                                                 f"ads{i}-{j}.example", 1, "block"))
                await asyncio.sleep(0)

        await asyncio.gather(edits(first, "alice"), edits(second, "ben"))
        await writer.close()
        await task
        assert writer.dropped == 0 and writer.written == 4000
        assert [len(p.deny) for p in await first.load_profiles()] == [40, 40]
    finally:
        await writer.close()
        await second.close()
        await first.close()


# ------------------------------------------------------------------ corruption


async def test_a_file_that_is_not_sqlite_is_moved_aside_and_replaced(
    db: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    db.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with caplog.at_level(logging.ERROR, logger="familydns.store"):
        store = await Store.open(db, clock=clock)
    try:
        assert await store.list_profiles() == ()
        await alice(store)
    finally:
        await store.close()
    moved = list(db.parent.glob("familydns.db.corrupt-*"))
    assert [m.name for m in moved] == ["familydns.db.corrupt-20260921T141320Z"]
    assert moved[0].read_bytes().startswith(b"this is not a database")
    assert len(caplog.records) == 1 and "is corrupt" in caplog.records[0].getMessage()


async def test_a_database_failing_quick_check_is_moved_aside(db: Path, clock: Clock) -> None:
    store = await Store.open(db, clock=clock)
    for i in range(300):
        await store.add_profile(f"child {i}", age=i % 18)
    await store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with db.open("r+b") as f:  # the profiles table's root page, as a power cut might
        f.seek(4096 * 3)
        f.write(b"\xa5" * 4096)

    fresh = await Store.open(db, clock=clock)
    try:
        assert await fresh.list_profiles() == ()
    finally:
        await fresh.close()
    assert len(list(db.parent.glob("familydns.db.corrupt-*"))) == 1


# ------------------------------------------------------------------ values


@given(st.binary(min_size=6, max_size=6), st.sampled_from([":", "-"]), st.booleans())
def test_every_spelling_of_a_mac_is_stored_the_same(raw: bytes, sep: str, upper: bool) -> None:
    text = sep.join(f"{b:02x}" for b in raw)
    kind, value = values.device("mac", text.upper() if upper else text)
    assert value == ":".join(f"{b:02x}" for b in raw)
    assert values.device(kind, value) == (kind, value)


@given(st.ip_addresses())
def test_an_ip_is_stored_in_the_form_the_resolver_looks_up(ip: object) -> None:
    kind, value = values.device("ip", str(ip))
    assert values.device(kind, value) == (kind, value)
