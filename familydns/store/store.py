"""The profile store: what the CLI edits and the resolver turns into a policy snapshot.

Each command is one ``BEGIN IMMEDIATE`` transaction that checks its input first, so a
refused command (unknown profile, overlapping device, bad domain) leaves nothing
written. Reads that feed the snapshot run in one read transaction, so profiles, devices
and rules always come from the same moment. Every method takes the household it acts
on; ``"home"`` is the only one at home, an ISP runs many in one database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from familydns.config import DeviceConfig, ProfileConfig, ScheduleConfig
from familydns.profiles.model import Overrides, TemporaryAllow
from familydns.store import sql
from familydns.store import values as v
from familydns.store.connection import BUSY_TIMEOUT_MS, connect, is_busy, transaction
from familydns.store.values import DEFAULT_HOUSEHOLD, Device, StoreError


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET
"""For set_profile: leave the field as it is (None means "follow the age band")."""


@dataclass(frozen=True, slots=True)
class StoreState:
    """What a snapshot is built from, read in one transaction with the version it had."""

    version: int
    profiles: tuple[ProfileConfig, ...]
    overrides: Overrides


class Store:
    """An open profile store. Create with ``await Store.open(path)``; ``close()`` after.

    One connection, used by one task at a time (an asyncio lock keeps the transactions
    of concurrent callers apart). The blocked-lookup log has its own connection, see
    familydns.store.log.
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path,
                 clock: Callable[[], float]) -> None:
        self._conn = conn
        self.path = path
        self.clock = clock
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        check: bool = True,
    ) -> Store:
        """Open (creating and migrating) the store; ``synchronous=FULL``, see connection.

        ``check`` runs ``PRAGMA quick_check`` first; the resolver passes True at start,
        a CLI command may pass False to start fast on a large database.
        """
        conn = await connect(path, synchronous="FULL", check=check, clock=clock)
        return cls(conn, Path(path), clock)

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------ transactions

    @asynccontextmanager
    async def _tx(self, write: bool) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction, with SQLite errors turned into StoreError at this boundary."""
        async with self._lock:
            try:
                async with transaction(self._conn, write=write) as conn:
                    yield conn
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"refused by the database: {exc}; nothing was changed") \
                    from None
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    raise StoreError(
                        f"the database stayed busy for {BUSY_TIMEOUT_MS // 1000} s (another "
                        "familydns command is writing); nothing was changed, try again"
                    ) from None
                raise

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read query (atomic on its own); for the package's log queries."""
        async with self._lock:
            return list(await self._conn.execute_fetchall(query, params))

    def _today(self) -> dt.date:
        return dt.date.fromtimestamp(self.clock())

    # ------------------------------------------------------------ snapshot inputs

    async def version(self, household: str = DEFAULT_HOUSEHOLD) -> int:
        """Changes on every write to the household's profiles, devices, rules, schedules
        or overrides, from any connection; cheap enough to poll every second."""
        rows = await self.fetch(sql.HOUSEHOLD_VERSION, (household,))
        return int(rows[0][0]) if rows else 0

    async def load(self, household: str = DEFAULT_HOUSEHOLD,
                   now: float | None = None) -> StoreState:
        """Version, profiles and unexpired overrides, all from one moment."""
        now = self.clock() if now is None else now
        async with self._tx(write=False) as conn:
            hid = await _household_id(conn, household)
            if hid is None:
                return StoreState(0, (), Overrides())
            version = await _one(conn, sql.HOUSEHOLD_VERSION, (household,))
            profiles = await _load_profiles(conn, hid)
            overrides = await _load_overrides(conn, hid, now)
        return StoreState(int(version[0]) if version else 0, profiles, overrides)

    async def load_profiles(self, household: str = DEFAULT_HOUSEHOLD
                            ) -> tuple[ProfileConfig, ...]:
        """The household's profiles as the config file's ProfileConfig, sorted by name."""
        return (await self.load(household)).profiles

    async def load_overrides(self, household: str = DEFAULT_HOUSEHOLD,
                             now: float | None = None) -> Overrides:
        """Pauses and temporary allows still running at ``now``."""
        return (await self.load(household, now)).overrides

    # ------------------------------------------------------------ profiles

    async def add_profile(
        self,
        name: str,
        birthdate: dt.date | str | None = None,
        age: int | None = None,
        *,
        household: str = DEFAULT_HOUSEHOLD,
        safe_search: bool | None = None,
        youtube: str | None = None,
        allowlist_only: bool = False,
        bypass_protection: bool | None = None,
        block_answer: str = "nxdomain",
    ) -> ProfileConfig:
        """A new profile given by exactly one of birthdate or age.

        An age is recorded with today's date (``age_as_of``), so the child grows older.
        """
        cfg = v.profile(ProfileConfig(
            name=name, birthdate=_date(birthdate), age=age, safe_search=safe_search,
            youtube=youtube, allowlist_only=allowlist_only,
            bypass_protection=bypass_protection, block_answer=block_answer,
        ), self._today())
        async with self._tx(write=True) as conn:
            hid = await _ensure_household(conn, household)
            if await _one(conn, sql.PROFILE_ID, (hid, cfg.name)):
                raise StoreError(f"a profile named {cfg.name!r} already exists")
            await _insert_profile(conn, hid, cfg)
        return cfg

    async def list_profiles(self, household: str = DEFAULT_HOUSEHOLD) -> tuple[str, ...]:
        """Profile names, sorted."""
        rows = await self.fetch(sql.PROFILE_NAMES, (household,))
        return tuple(str(r[0]) for r in rows)

    async def get_profile(self, name: str,
                          household: str = DEFAULT_HOUSEHOLD) -> ProfileConfig:
        for profile in await self.load_profiles(household):
            if profile.name == name:
                return profile
        raise StoreError(f"no profile named {name!r}")

    async def set_profile(
        self,
        name: str,
        *,
        household: str = DEFAULT_HOUSEHOLD,
        new_name: str | _Unset = UNSET,
        birthdate: dt.date | str | _Unset = UNSET,
        age: int | _Unset = UNSET,
        safe_search: bool | None | _Unset = UNSET,
        youtube: str | None | _Unset = UNSET,
        allowlist_only: bool | _Unset = UNSET,
        bypass_protection: bool | None | _Unset = UNSET,
        block_answer: str | _Unset = UNSET,
    ) -> ProfileConfig:
        """Change the given fields; a birthdate replaces an age and the other way round."""
        async with self._tx(write=True) as conn:
            pid, hid = await _profile_key(conn, household, name)
            row = await _one(conn, sql.PROFILE_BY_ID, (pid,))
            assert row is not None
            old = _profile_from_row(tuple(row))
            changes: dict[str, Any] = {
                key: value for key, value in (
                    ("name", new_name), ("safe_search", safe_search), ("youtube", youtube),
                    ("allowlist_only", allowlist_only),
                    ("bypass_protection", bypass_protection), ("block_answer", block_answer),
                ) if value is not UNSET
            }
            if birthdate is not UNSET and age is not UNSET:
                raise StoreError("give a birthdate or an age, not both")
            if birthdate is not UNSET:
                changes.update(birthdate=_date(birthdate), age=None, age_as_of=None)
            if age is not UNSET:
                changes.update(age=age, birthdate=None, age_as_of=None)
            cfg = v.profile(_replace(old, **changes), self._today())
            if cfg.name != old.name and await _one(conn, sql.PROFILE_ID, (hid, cfg.name)):
                raise StoreError(f"a profile named {cfg.name!r} already exists")
            await conn.execute(sql.PROFILE_UPDATE, (*_profile_row(cfg), pid))
        return cfg

    async def remove_profile(self, name: str, household: str = DEFAULT_HOUSEHOLD) -> None:
        """Remove the profile with its devices, rules, schedules and overrides."""
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, name)
            await conn.execute(sql.PROFILE_DELETE, (pid,))

    # ------------------------------------------------------------ devices

    async def add_device(self, profile: str, kind: str, value: str, name: str | None = None,
                         *, household: str = DEFAULT_HOUSEHOLD) -> Device:
        """Attach an ip, cidr, mac or client_id; one identifier belongs to one profile."""
        kind, value = v.device(kind, value)
        label = v.device_name(name)
        async with self._tx(write=True) as conn:
            pid, hid = await _profile_key(conn, household, profile)
            await _check_device_free(conn, hid, kind, value, profile)
            await conn.execute(sql.DEVICE_INSERT, (pid, hid, kind, value, label))
        return Device(profile, kind, value, label)

    async def list_devices(self, profile: str | None = None,
                           household: str = DEFAULT_HOUSEHOLD) -> tuple[Device, ...]:
        """The household's devices (or one profile's), in the order they were added."""
        async with self._tx(write=False) as conn:
            if profile is not None:
                await _profile_key(conn, household, profile)
            rows = await conn.execute_fetchall(sql.DEVICES_IN, (household,))
        devices = (Device(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows)
        return tuple(d for d in devices if profile is None or d.profile == profile)

    async def remove_device(self, value: str, kind: str | None = None,
                            *, household: str = DEFAULT_HOUSEHOLD) -> Device:
        """Detach a device by its identifier; the kind is guessed when not given."""
        candidates = [v.device(kind, value)] if kind is not None else v.guess_kinds(value)
        async with self._tx(write=True) as conn:
            hid = await _household_id(conn, household)
            for k, val in candidates if hid is not None else ():
                owner = await _one(conn, sql.DEVICE_OWNER, (hid, k, val))
                if owner is not None:
                    await conn.execute(sql.DEVICE_DELETE, (hid, k, val))
                    return Device(str(owner[0]), k, val, owner[1])
        raise StoreError(f"no device {value!r}")

    # ------------------------------------------------------------ rules

    async def allow_domain(self, profile: str, domain: str, until: float | None = None,
                           *, household: str = DEFAULT_HOUSEHOLD) -> str:
        """Allow ``domain`` and its subdomains; with ``until`` (epoch s) only until then.

        A permanent allow replaces a deny of the same domain. Returns the stored name.
        """
        name = v.domain(domain)
        now = self.clock()
        if until is not None and until <= now:
            raise StoreError("the end of a temporary allow must be in the future")
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            if until is None:
                await conn.execute(sql.DOMAIN_RULE_SET, (pid, name, "allow"))
            else:
                await conn.execute(sql.OVERRIDES_EXPIRED_DELETE, (pid, now))
                await conn.execute(sql.ALLOW_DELETE, (pid, name))
                await conn.execute(sql.OVERRIDE_INSERT, (pid, "allow", name, until))
        return name

    async def deny_domain(self, profile: str, domain: str,
                          *, household: str = DEFAULT_HOUSEHOLD) -> str:
        """Block ``domain`` and its subdomains, replacing an allow (also a temporary one)."""
        name = v.domain(domain)
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            await conn.execute(sql.ALLOW_DELETE, (pid, name))
            await conn.execute(sql.DOMAIN_RULE_SET, (pid, name, "deny"))
        return name

    async def remove_domain_rule(self, profile: str, domain: str,
                                 *, household: str = DEFAULT_HOUSEHOLD) -> str:
        """Forget the allow, deny or temporary allow of ``domain``."""
        name = v.domain(domain)
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            removed = await _rowcount(conn, sql.DOMAIN_RULE_DELETE, (pid, name))
            removed += await _rowcount(conn, sql.ALLOW_DELETE, (pid, name))
            if not removed:
                raise StoreError(f"profile {profile!r} has no rule for {name!r}")
        return name

    async def set_category(self, profile: str, category: str, action: str,
                           *, household: str = DEFAULT_HOUSEHOLD) -> None:
        """``block`` adds a category to the age defaults; ``unblock`` lifts one of them."""
        category, action = v.category(category), v.category_action(action)
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            await conn.execute(sql.CATEGORY_RULE_SET, (pid, category, action))

    async def reset_category(self, profile: str, category: str,
                             *, household: str = DEFAULT_HOUSEHOLD) -> None:
        """Back to the age default for ``category``."""
        category = v.category(category)
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            if not await _rowcount(conn, sql.CATEGORY_RULE_DELETE, (pid, category)):
                raise StoreError(f"profile {profile!r} has no rule for category {category!r}")

    # ------------------------------------------------------------ schedules

    async def add_schedule(
        self,
        profile: str,
        name: str,
        days: str,
        start: str,
        end: str,
        block_all: bool = False,
        block: Iterable[str] = (),
        allow: Iterable[str] = (),
        *,
        household: str = DEFAULT_HOUSEHOLD,
    ) -> ScheduleConfig:
        """A weekly window (``days`` like ``sun-thu``, ``start``/``end`` as ``HH:MM``)."""
        cfg = v.schedule(ScheduleConfig(name=name, start=start, end=end, days=days,
                                        block_all=block_all, block=tuple(block),
                                        allow=tuple(allow)))
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            if await _one(conn, sql.SCHEDULE_EXISTS, (pid, cfg.name)):
                raise StoreError(f"profile {profile!r} already has a schedule {cfg.name!r}")
            await _insert_schedule(conn, pid, cfg)
        return cfg

    async def list_schedules(self, profile: str,
                             household: str = DEFAULT_HOUSEHOLD) -> tuple[ScheduleConfig, ...]:
        return (await self.get_profile(profile, household)).schedules

    async def remove_schedule(self, profile: str, name: str,
                              *, household: str = DEFAULT_HOUSEHOLD) -> None:
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            if not await _rowcount(conn, sql.SCHEDULE_DELETE, (pid, name)):
                raise StoreError(f"profile {profile!r} has no schedule {name!r}")

    # ------------------------------------------------------------ overrides

    async def pause(self, profile: str, until: float | None = None,
                    *, household: str = DEFAULT_HOUSEHOLD) -> None:
        """Block everything for the profile until ``until`` (epoch s) or until resumed."""
        now = self.clock()
        if until is not None and until <= now:
            raise StoreError("the end of a pause must be in the future")
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            await conn.execute(sql.OVERRIDES_EXPIRED_DELETE, (pid, now))
            await conn.execute(sql.PAUSE_DELETE, (pid,))
            await conn.execute(sql.OVERRIDE_INSERT, (pid, "pause", None, until))

    async def resume(self, profile: str, *, household: str = DEFAULT_HOUSEHOLD) -> bool:
        """End the profile's pause; False when it was not paused."""
        async with self._tx(write=True) as conn:
            pid = await _profile_id(conn, household, profile)
            return bool(await _rowcount(conn, sql.PAUSE_DELETE, (pid,)))

    # ------------------------------------------------------------ import

    async def write_profiles(self, profiles: Sequence[ProfileConfig], *,
                             household: str = DEFAULT_HOUSEHOLD, replace: bool = False) -> None:
        """Insert validated profiles in one transaction (see familydns.store.export).

        ``replace`` first removes every profile of the household. Otherwise a name or
        device already in the store is refused, and nothing is written.
        """
        checked = [v.profile(p, self._today()) for p in profiles]
        async with self._tx(write=True) as conn:
            hid = await _ensure_household(conn, household)
            if replace:
                await conn.execute(sql.PROFILES_DELETE, (hid,))
            for cfg in checked:
                if await _one(conn, sql.PROFILE_ID, (hid, cfg.name)):
                    raise StoreError(f"a profile named {cfg.name!r} already exists "
                                     "(import with replace to overwrite)")
                await _insert_profile(conn, hid, cfg)


async def _profile_key(conn: aiosqlite.Connection, household: str,
                       profile: str) -> tuple[int, int]:
    """(profile id, household id); StoreError naming the profile when it is unknown."""
    found = await _one(conn, sql.PROFILE_KEY, (household, profile))
    if found is None:
        raise StoreError(f"no profile named {profile!r}")
    return int(found[0]), int(found[1])


async def _profile_id(conn: aiosqlite.Connection, household: str, profile: str) -> int:
    return (await _profile_key(conn, household, profile))[0]


async def _household_id(conn: aiosqlite.Connection, name: str) -> int | None:
    found = await _one(conn, sql.HOUSEHOLD_ID, (name,))
    return None if found is None else int(found[0])


async def _ensure_household(conn: aiosqlite.Connection, name: str) -> int:
    """The household's id, created on its first write."""
    await conn.execute(sql.HOUSEHOLD_ADD, (v.household_name(name),))
    hid = await _household_id(conn, name)
    assert hid is not None
    return hid


async def _one(conn: aiosqlite.Connection, query: str,
               params: Sequence[Any]) -> sqlite3.Row | None:
    async with conn.execute(query, params) as cursor:
        return await cursor.fetchone()


async def _rowcount(conn: aiosqlite.Connection, query: str, params: Sequence[Any]) -> int:
    async with conn.execute(query, params) as cursor:
        return int(cursor.rowcount)


async def _check_device_free(conn: aiosqlite.Connection, hid: int, kind: str, value: str,
                             profile: str) -> None:
    owner = await _one(conn, sql.DEVICE_OWNER, (hid, kind, value))
    if owner is not None:
        which = "this profile" if owner[0] == profile else f"profile {owner[0]!r}"
        raise StoreError(f"{kind} {value} already belongs to {which}")


async def _insert_profile(conn: aiosqlite.Connection, hid: int, cfg: ProfileConfig) -> None:
    cursor = await conn.execute(sql.PROFILE_INSERT, (hid, *_profile_row(cfg)))
    pid = cursor.lastrowid
    await cursor.close()
    for device in cfg.devices:
        kind, value = v.device_config(device)
        await _check_device_free(conn, hid, kind, value, cfg.name)
        await conn.execute(sql.DEVICE_INSERT, (pid, hid, kind, value, device.name))
    rules = [(pid, d, "allow") for d in cfg.allow] + [(pid, d, "deny") for d in cfg.deny]
    await conn.executemany(sql.DOMAIN_RULE_SET, rules)
    categories = ([(pid, c, "block") for c in cfg.block]
                  + [(pid, c, "unblock") for c in cfg.unblock])
    await conn.executemany(sql.CATEGORY_RULE_SET, categories)
    for schedule in cfg.schedules:
        await _insert_schedule(conn, pid, schedule)


async def _insert_schedule(conn: aiosqlite.Connection, pid: int | None,
                           cfg: ScheduleConfig) -> None:
    await conn.execute(sql.SCHEDULE_INSERT, (
        pid, cfg.name, cfg.days, cfg.start, cfg.end, int(cfg.block_all),
        ",".join(cfg.block), ",".join(cfg.allow),
    ))


def _profile_row(cfg: ProfileConfig) -> tuple[Any, ...]:
    return (
        cfg.name,
        cfg.birthdate.isoformat() if cfg.birthdate else None,
        cfg.age,
        cfg.age_as_of.isoformat() if cfg.age_as_of else None,
        _int(cfg.safe_search),
        cfg.youtube,
        int(cfg.allowlist_only),
        _int(cfg.bypass_protection),
        cfg.block_answer,
    )


def _profile_from_row(row: Sequence[Any]) -> ProfileConfig:
    name, born, age, as_of, safe, youtube, only, bypass, answer = row
    return ProfileConfig(
        name=name, birthdate=dt.date.fromisoformat(born) if born else None, age=age,
        age_as_of=dt.date.fromisoformat(as_of) if as_of else None,
        safe_search=_bool(safe), youtube=youtube, allowlist_only=bool(only),
        bypass_protection=_bool(bypass), block_answer=answer,
    )


async def _load_profiles(conn: aiosqlite.Connection, hid: int) -> tuple[ProfileConfig, ...]:
    """Five queries whatever the number of profiles, assembled here."""
    devices: dict[int, list[DeviceConfig]] = {}
    for pid, _, kind, value, name in await conn.execute_fetchall(sql.DEVICES, (hid,)):
        devices.setdefault(pid, []).append(Device("", kind, value, name).as_config())
    domains: dict[tuple[int, str], list[str]] = {}
    for pid, domain, action in await conn.execute_fetchall(sql.DOMAIN_RULES, (hid,)):
        domains.setdefault((pid, action), []).append(domain)
    categories: dict[tuple[int, str], list[str]] = {}
    for pid, category, action in await conn.execute_fetchall(sql.CATEGORY_RULES, (hid,)):
        categories.setdefault((pid, action), []).append(category)
    schedules: dict[int, list[ScheduleConfig]] = {}
    for pid, name, days, start, end, block_all, block, allow in await conn.execute_fetchall(
        sql.SCHEDULES, (hid,)
    ):
        schedules.setdefault(pid, []).append(ScheduleConfig(
            name=name, start=start, end=end, days=days, block_all=bool(block_all),
            block=_split(block), allow=_split(allow),
        ))
    profiles = []
    for row in await conn.execute_fetchall(sql.PROFILE_ROWS, (hid,)):
        pid = row[0]
        base = _profile_from_row(tuple(row)[1:])
        profiles.append(_replace(
            base,
            devices=tuple(devices.get(pid, ())),
            block=tuple(categories.get((pid, "block"), ())),
            unblock=tuple(categories.get((pid, "unblock"), ())),
            allow=tuple(domains.get((pid, "allow"), ())),
            deny=tuple(domains.get((pid, "deny"), ())),
            schedules=tuple(schedules.get(pid, ())),
        ))
    return tuple(profiles)


async def _load_overrides(conn: aiosqlite.Connection, hid: int, now: float) -> Overrides:
    pauses: dict[str, float | None] = {}
    allows: list[TemporaryAllow] = []
    for profile, kind, domain, until in await conn.execute_fetchall(
        sql.OVERRIDES_LIVE, (hid, now)
    ):
        if kind == "pause":
            pauses[profile] = until
        elif until is not None:
            allows.append(TemporaryAllow(profile, domain, until))
    return Overrides(pauses, tuple(allows))


def _replace(cfg: ProfileConfig, **changes: Any) -> ProfileConfig:
    return dataclasses.replace(cfg, **changes)


def _date(value: dt.date | str | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise StoreError(f"bad birthdate {value!r} (expected YYYY-MM-DD)") from None


def _int(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _split(text: str) -> tuple[str, ...]:
    return tuple(item for item in text.split(",") if item)
