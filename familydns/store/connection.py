"""Opening the SQLite file: pragmas, corruption recovery, migrations, transactions.

Durability, per connection (both in WAL mode, which readers never block):

* ``synchronous=FULL`` for the profile store. WAL+FULL fsyncs the WAL on every commit,
  so a parent's "block tiktok" survives a power cut the second after the command
  returned. These writes are rare (a CLI command), so the fsync costs nothing.
* ``synchronous=NORMAL`` for the blocked-lookup log. WAL+NORMAL stays consistent after
  power loss but may lose the last commits before the next checkpoint: losing a second
  of log rows is harmless, while an fsync per batch would wear SD cards and stall the
  writer on slow ones.

``busy_timeout`` makes a writer wait for another connection's short transaction instead
of failing with "database is locked", and every write transaction starts with
``BEGIN IMMEDIATE`` so two connections never deadlock upgrading a read to a write.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from familydns.store.schema import MIGRATIONS, SCHEMA_VERSION
from familydns.store.values import StoreError

log = logging.getLogger("familydns.store")

BUSY_TIMEOUT_MS = 5000
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
"""The WAL file is truncated back to this after a checkpoint, so it cannot keep disk."""
SQLITE_HEADER = b"SQLite format 3\x00"
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED

Synchronous = Literal["FULL", "NORMAL"]


class _Corrupt(Exception):
    """The file exists but is not a usable database; ``reason`` says what was seen."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_busy(exc: BaseException) -> bool:
    """A lock held by another connection past busy_timeout (not a bug, not corruption)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return isinstance(exc, sqlite3.OperationalError) and code in _BUSY_CODES


async def connect(
    path: str | os.PathLike[str],
    *,
    synchronous: Synchronous = "FULL",
    check: bool = True,
    clock: Callable[[], float] = time.time,
) -> aiosqlite.Connection:
    """An open, migrated connection to ``path``, created if missing.

    A file that is not SQLite or fails ``PRAGMA quick_check`` (a power cut on an SD
    card) is moved aside to ``<name>.corrupt-<UTC time>`` with one error log line, and a
    fresh database is created: the resolver keeps filtering with the config file's
    profiles instead of refusing to start. ``check=False`` skips quick_check, which
    reads the whole file (seconds for a large log on a Pi); a file that is not SQLite
    at all is still caught.
    """
    db = Path(path)
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        return await _open(db, synchronous, check)
    except _Corrupt as exc:
        moved = _move_aside(db, clock)
        log.error("database %s is corrupt (%s); moved it to %s and created a fresh one",
                  db, exc.reason, moved)
        return await _open(db, synchronous, check=False)


async def _open(db: Path, synchronous: Synchronous, check: bool) -> aiosqlite.Connection:
    _check_header(db)
    try:
        conn = await aiosqlite.connect(str(db), isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {db}: {exc}") from None
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = await _scalar(conn, "PRAGMA journal_mode = WAL")
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch {db} to WAL mode (got {mode!r})")
        await conn.execute(f"PRAGMA synchronous = {synchronous}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        if check:
            rows = await conn.execute_fetchall("PRAGMA quick_check")
            result = [str(row[0]) for row in rows]
            if result != ["ok"]:
                lines = (line for r in result for line in r.splitlines() if "***" not in line)
                raise _Corrupt(f"quick_check: {next(lines, 'failed')}")
        await migrate(conn)
    except sqlite3.DatabaseError as exc:
        await conn.close()
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in _CORRUPT_CODES:
            raise _Corrupt(str(exc)) from None
        raise StoreError(f"cannot open database {db}: {exc}") from None
    except BaseException:
        await conn.close()
        raise
    return conn


def _check_header(db: Path) -> None:
    """An empty file is a new database; anything else must start with the SQLite magic."""
    try:
        with db.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read database {db}: {exc.strerror or exc}") from None
    if head and head != SQLITE_HEADER:
        raise _Corrupt("not an SQLite database")


def _move_aside(db: Path, clock: Callable[[], float]) -> Path:
    """Rename the file (and a non-empty WAL, for forensics) to a free ``.corrupt-`` name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    target = db.with_name(f"{db.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db.with_name(f"{db.name}.corrupt-{stamp}-{n}")
    try:
        db.rename(target)
        wal = db.with_name(db.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            wal.rename(target.with_name(target.name + "-wal"))
        wal.unlink(missing_ok=True)
        db.with_name(db.name + "-shm").unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(f"database {db} is corrupt and cannot be moved aside: "
                         f"{exc.strerror or exc}") from None
    return target


async def migrate(conn: aiosqlite.Connection) -> None:
    """Apply the missing migration steps, each in its own transaction.

    The version is re-read under the write lock, so two processes opening a new file
    at once apply each step exactly once.
    """
    while True:
        current = int(await _scalar(conn, "PRAGMA user_version"))
        if current > SCHEMA_VERSION:
            raise StoreError(f"database schema version {current} is newer than this "
                             f"familydns understands ({SCHEMA_VERSION}); upgrade familydns")
        if current == SCHEMA_VERSION:
            return
        async with transaction(conn):
            current = int(await _scalar(conn, "PRAGMA user_version"))
            if current < SCHEMA_VERSION:
                for statement in MIGRATIONS[current]:
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {current + 1}")


@asynccontextmanager
async def transaction(
    conn: aiosqlite.Connection, *, write: bool = True
) -> AsyncIterator[aiosqlite.Connection]:
    """One transaction: committed on success, rolled back on any exception.

    Writes take the write lock up front (``BEGIN IMMEDIATE``); reads use a deferred
    transaction so several SELECTs see one consistent snapshot.
    """
    await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise


async def _scalar(conn: aiosqlite.Connection, sql: str) -> Any:
    rows = list(await conn.execute_fetchall(sql))
    return rows[0][0] if rows else None
