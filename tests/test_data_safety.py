"""The blocked-lookup log and the database survive crashes, power cuts and locks.

SQLite in WAL mode with ``synchronous=NORMAL`` (the log writer's setting) stays
consistent after a crash and keeps every commit a killed process made; a power cut may
lose the last commits but never corrupts. A corrupt file at start is moved aside and
replaced, so DNS comes up; a database locked by someone else costs log rows (dropped
and counted), never DNS answers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.rcode
import pytest

from familydns.store import connection
from familydns.store import log as log_module
from tests.conftest import Running, StartServer, eventually

WRITER = """
import asyncio, sys
from familydns.store import LogEvent, LogWriter

async def main(path: str) -> None:
    writer = LogWriter(path, batch_size=250, queue_size=10_000)
    total = 0
    while True:
        for i in range(250):
            n = total + i
            writer.record_event(LogEvent(
                ts=1_790_000_000.0 + n, household="home", device="127.0.0.2", profile="kid",
                qname=f"n{n}.example", qtype=1, action="block", category="social"))
        total += await writer.flush()
        print(total, flush=True)   # after the commit: this many rows are durable

asyncio.run(main(sys.argv[1]))
"""


async def start_writer(db: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(db), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


async def committed_at_least(proc: asyncio.subprocess.Process, rows: int) -> int:
    """Read the writer's reports until one says ``rows`` are committed."""
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 10.0)
        assert line, "the writer stopped"
        if int(line) >= rows:
            return int(line)


def check_database(db: Path) -> int:
    """integrity_check must say ok; returns the number of log rows."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return int(conn.execute("SELECT count(*) FROM blocked_log").fetchone()[0])
    finally:
        conn.close()


async def test_kill_9_during_heavy_logging_loses_no_commit(tmp_path: Path) -> None:
    db = tmp_path / "familydns.db"
    proc = await start_writer(db)
    reported = await committed_at_least(proc, 20_000)
    proc.kill()                                   # SIGKILL: no cleanup, no final flush
    rest, _ = await proc.communicate()
    reported = max([reported, *(int(n) for n in rest.split())])
    assert check_database(db) >= reported


async def test_a_power_cut_mid_write_leaves_a_consistent_database(tmp_path: Path) -> None:
    """The disk image at an instant: the writer is frozen (SIGSTOP) mid-stream and the
    database and its WAL are copied, without the -shm index (a reboot loses it too).
    Freezing matters: copying two files while they change gives a mix of moments no
    power cut can produce. Every snapshot must open and pass integrity_check, and holds
    at least what was reported committed before the freeze (the copy sees the page
    cache; on a real power cut NORMAL may lose the last commits, never consistency)."""
    db = tmp_path / "familydns.db"
    proc = await start_writer(db)
    try:
        for shot in range(5):
            reported = await committed_at_least(proc, 2_000 * (shot + 1))
            proc.send_signal(signal.SIGSTOP)
            copy = tmp_path / f"cut{shot}" / "familydns.db"
            copy.parent.mkdir()
            shutil.copyfile(db, copy)
            wal = db.with_name(db.name + "-wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
            proc.send_signal(signal.SIGCONT)
            assert check_database(copy) >= reported
    finally:
        proc.kill()
        await proc.wait()


async def test_a_corrupt_database_at_start_is_moved_aside(start_server: StartServer,
                                                          tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "familydns.db").write_bytes(b"this is not SQLite\x00" * 500)
    loop = asyncio.get_running_loop()
    start = loop.time()
    server = await start_server()
    reply = await server.query("example.org", "A")
    assert loop.time() - start < 5.0
    assert reply.rcode() == dns.rcode.NOERROR
    [moved] = data.glob("familydns.db.corrupt-*")
    assert moved.read_bytes().startswith(b"this is not SQLite")
    assert (data / "familydns.db").read_bytes()[:16] == connection.SQLITE_HEADER
    check_database(data / "familydns.db")


KID = [{"name": "kid", "age": 8, "devices": [{"ip": "127.0.0.1"}]}]


def log_rows(server: Running) -> int:
    conn = sqlite3.connect(server.app.db_path)
    try:
        return int(conn.execute("SELECT count(*) FROM blocked_log").fetchone()[0])
    finally:
        conn.close()


async def blocked_queries(server: Running, first: int, count: int) -> None:
    """Blocked lookups (each one logged), answered at once whatever the database does."""
    loop = asyncio.get_running_loop()
    for i in range(first, first + count):
        start = loop.time()
        reply = await server.query(f"n{i}.bet365.com", "A")
        assert reply.rcode() == dns.rcode.NXDOMAIN
        assert loop.time() - start < 0.2


Locker = Callable[[Running], sqlite3.Connection]


@pytest.fixture
def one_second_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log writer flushes every second here (5 s by default), so these tests see a
    batch wait for the lock well within their timeouts."""
    monkeypatch.setattr(log_module, "FLUSH_WINDOW", 1.0)


@pytest.fixture
def locker(one_second_window: None) -> Iterator[Locker]:
    """Another connection holding the database's write lock (BEGIN EXCLUSIVE)."""
    conns: list[sqlite3.Connection] = []

    def lock(server: Running) -> sqlite3.Connection:
        conn = sqlite3.connect(server.app.db_path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        conns.append(conn)
        return conn

    yield lock
    for conn in conns:
        conn.close()


async def test_a_lock_held_past_busy_timeout_drops_and_counts_log_rows(
        start_server: StartServer, locker: Locker, monkeypatch: pytest.MonkeyPatch) -> None:
    """What happens: the writer waits busy_timeout for the lock (shortened here from 5 s
    to 0.3 s), then drops that batch and counts it in familydns_log_dropped_total. DNS
    answers all along; rows logged after the lock is gone are written as usual, the
    dropped ones never are."""
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 300)
    server = await start_server(profiles=KID)
    conn = locker(server)
    await blocked_queries(server, 0, 20)
    await eventually(lambda: server.metric("familydns_log_dropped_total") >= 20)
    conn.execute("ROLLBACK")
    await blocked_queries(server, 20, 5)
    await eventually(lambda: log_rows(server) == 5)
    assert server.metric("familydns_log_dropped_total") == 20


async def test_a_short_lock_only_delays_log_rows(start_server: StartServer,
                                                 locker: Locker) -> None:
    """Shorter than busy_timeout (5 s): the writer waits, nothing is lost."""
    server = await start_server(profiles=KID)
    conn = locker(server)
    await blocked_queries(server, 0, 20)
    await asyncio.sleep(1.3)      # the writer's batch (every 1 s) is now waiting
    assert log_rows(server) == 0
    conn.execute("ROLLBACK")
    await eventually(lambda: log_rows(server) == 20)
    assert server.metric("familydns_log_dropped_total") == 0
