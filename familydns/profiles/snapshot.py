"""Build a PolicySnapshot from the typed config: validate everything, compile once.

Every problem is collected with the key path it concerns and raised together in one
ConfigError, so a parent fixes the file in one pass, and a bad reload keeps the policy
that was running. Nothing here runs per query.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable
from typing import TypeVar

from familydns.blocklists.categories import BY_ID
from familydns.config import Config, ProfileConfig, ScheduleConfig
from familydns.errors import ConfigError
from familydns.profiles.ages import implied_birthdate
from familydns.profiles.devices import DeviceEntry, DeviceError, DeviceIndex
from familydns.profiles.domains import normalise_domain
from familydns.profiles.model import (
    BASELINE_NAME,
    NO_OVERRIDES,
    BlockAnswer,
    MatcherLike,
    Overrides,
    PolicySnapshot,
    Profile,
    TemporaryAllow,
    baseline_profile,
)
from familydns.profiles.safesearch import YouTubeMode
from familydns.profiles.schedules import (
    Schedule,
    parse_days,
    parse_end_time,
    parse_time,
    parse_timezone,
)

MAX_AGE = 120
Fail = Callable[[str, str], None]
S = TypeVar("S")
T = TypeVar("T")
D = TypeVar("D")


def build_snapshot(
    config: Config,
    matcher: MatcherLike,
    overrides: Overrides = NO_OVERRIDES,
    *,
    reference_date: dt.date,
    version: int = 0,
    built_at: float = 0.0,
) -> PolicySnapshot:
    """Compile ``config`` for decide(); ConfigError lists every problem with its path.

    ``reference_date`` pins profiles given as ``age: N`` (see implied_birthdate). Pass
    the date the age was stated, not today, or the child would never grow older.
    Overrides naming a profile that no longer exists are dropped: the store outlives
    config edits.
    """
    problems: list[str] = []

    def fail(path: str, message: str) -> None:
        problems.append(f"{path}: {message}")

    profiles: dict[str, Profile] = {}
    for i, cfg in enumerate(config.profiles):
        profile = _profile(cfg, f"profiles[{i}]", reference_date, fail)
        if profile is not None:
            profiles[profile.name] = profile
    default = config.household.default_profile
    if default is None:
        clash = [i for i, p in enumerate(config.profiles) if p.name == BASELINE_NAME]
        for i in clash:
            fail(f"profiles[{i}].name", f"{BASELINE_NAME!r} names the built-in baseline; "
                 f"set household.default_profile: {BASELINE_NAME} to use your own")
        profiles.setdefault(BASELINE_NAME, baseline_profile())
        default = BASELINE_NAME
    elif default not in (p.name for p in config.profiles):
        fail("household.default_profile", f"no profile named {default!r}")
    devices = DeviceIndex.empty()
    try:
        devices = DeviceIndex.build(
            DeviceEntry(p.name, d, f"profiles[{i}].devices[{j}]")
            for i, p in enumerate(config.profiles)
            for j, d in enumerate(p.devices)
        )
    except DeviceError as exc:
        problems.extend(exc.problems)
    tz = _attempt(fail, "household.timezone", parse_timezone, config.household.timezone, None)
    live = _overrides(overrides, profiles.keys(), fail)
    if problems:
        raise ConfigError(problems)
    return PolicySnapshot(profiles, devices, default, matcher, tz, live, version, built_at)


def _profile(
    cfg: ProfileConfig, path: str, reference_date: dt.date, fail: Fail
) -> Profile | None:
    """One profile, or None after reporting its problems through ``fail``."""
    before = _Counter(fail)
    birthdate = _birthdate(cfg, path, reference_date, before)
    added = _categories(cfg.block, f"{path}.block", before)
    removed = _categories(cfg.unblock, f"{path}.unblock", before)
    for j, category in enumerate(cfg.unblock):
        if category in added:
            before(f"{path}.unblock[{j}]", f"{category!r} is also in block")
    allow = _domains(cfg.allow, f"{path}.allow", before)
    deny = _domains(cfg.deny, f"{path}.deny", before)
    for domain in sorted(allow & deny):
        before(f"{path}.allow", f"{domain!r} is in both allow and deny")
    youtube = None
    if cfg.youtube is not None:
        youtube = _attempt(before, f"{path}.youtube", parse_youtube, cfg.youtube, None)
    answer, addresses = _attempt(before, f"{path}.block_answer", parse_block_answer,
                                 cfg.block_answer, (BlockAnswer.NXDOMAIN, ()))
    schedules = []
    names: set[str] = set()
    for j, sched in enumerate(cfg.schedules):
        if sched.name in names:
            before(f"{path}.schedules[{j}].name", f"duplicate schedule name {sched.name!r}")
        names.add(sched.name)
        compiled = _schedule(sched, f"{path}.schedules[{j}]", before)
        if compiled is not None:
            schedules.append(compiled)
    if before.count:
        return None
    return Profile(
        name=cfg.name,
        birthdate=birthdate,
        stated_age=cfg.age if cfg.birthdate is None else None,
        added=added,
        removed=removed,
        allow=allow,
        deny=deny,
        safe_search=cfg.safe_search,
        youtube=youtube,
        bypass_protection=cfg.bypass_protection,
        rebinding_protection=cfg.rebinding_protection,
        allowlist_only=cfg.allowlist_only,
        block_answer=answer,
        block_addresses=addresses,
        schedules=tuple(schedules),
    )


class _Counter:
    """Forwards problems to ``fail`` and counts them, so a caller knows if any occurred."""

    def __init__(self, fail: Fail) -> None:
        self.fail = fail
        self.count = 0

    def __call__(self, path: str, message: str) -> None:
        self.count += 1
        self.fail(path, message)


def _birthdate(
    cfg: ProfileConfig, path: str, reference_date: dt.date, fail: Fail
) -> dt.date | None:
    if (cfg.birthdate is None) == (cfg.age is None):
        fail(path, "give exactly one of birthdate or age" if cfg.birthdate
             else "needs a birthdate (YYYY-MM-DD) or an age")
        return None
    if cfg.birthdate is not None:
        return cfg.birthdate
    assert cfg.age is not None
    if not 0 <= cfg.age <= MAX_AGE:
        fail(f"{path}.age", f"must be between 0 and {MAX_AGE}, got {cfg.age}")
        return None
    return implied_birthdate(cfg.age, cfg.age_as_of or reference_date)


def _categories(names: Iterable[str], path: str, fail: Fail) -> frozenset[str]:
    found = set()
    for j, name in enumerate(names):
        if name in BY_ID:
            found.add(name)
        else:
            fail(f"{path}[{j}]", f"unknown category {name!r} (known: {', '.join(BY_ID)})")
    return frozenset(found)


def _domains(entries: Iterable[str], path: str, fail: Fail) -> frozenset[str]:
    found = set()
    for j, entry in enumerate(entries):
        try:
            found.add(normalise_domain(entry))
        except ValueError as exc:
            fail(f"{path}[{j}]", str(exc))
    return frozenset(found)


def _schedule(cfg: ScheduleConfig, path: str, fail: Fail) -> Schedule | None:
    before = _Counter(fail)
    days = _attempt(before, f"{path}.days", parse_days, cfg.days, frozenset())
    start = _attempt(before, f"{path}.from", parse_time, cfg.start, 0)
    end = _attempt(before, f"{path}.to", parse_end_time, cfg.end, 0)
    block = _categories(cfg.block, f"{path}.block", before)
    allow = _domains(cfg.allow, f"{path}.allow", before)
    if not cfg.block_all and not cfg.block:
        before(path, "does nothing: set block_all: true or list categories in block")
    if cfg.allow and not cfg.block_all:
        before(f"{path}.allow", "only applies with block_all: true")
    if before.count:
        return None
    return _attempt(fail, path, lambda _: Schedule.build(
        cfg.name, days, start, end, block_all=cfg.block_all, block=block, allow=allow
    ), None, None)


def _attempt(fail: Fail, path: str, parse: Callable[[S], T], value: S, default: D) -> T | D:
    """``parse(value)``, or ``default`` after reporting its ValueError at ``path``."""
    try:
        return parse(value)
    except ValueError as exc:
        fail(path, str(exc))
        return default


def parse_youtube(text: str) -> YouTubeMode:
    try:
        return YouTubeMode(text.strip().lower())
    except ValueError:
        raise ValueError(f"must be strict, moderate or off, got {text!r}") from None


def parse_block_answer(text: str) -> tuple[BlockAnswer, tuple[str, ...]]:
    """``nxdomain``, ``nodata``, ``zero``, ``refused``, or IP literals (a block page).

    Up to one IPv4 and one IPv6 address, comma separated, give a CUSTOM answer.
    """
    word = text.strip().lower()
    if word in ("nxdomain", "nodata", "zero", "refused"):
        return BlockAnswer(word), ()
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        ips = [ipaddress.ip_address(p) for p in parts]
    except ValueError:
        raise ValueError(f"must be nxdomain, nodata, zero, refused or an IP address, "
                         f"got {text!r}") from None
    versions = [ip.version for ip in ips]
    if not ips or len(set(versions)) != len(versions):
        raise ValueError(f"give at most one IPv4 and one IPv6 address, got {text!r}")
    return BlockAnswer.CUSTOM, tuple(str(ip) for ip in ips)


def _overrides(overrides: Overrides, profiles: Iterable[str], fail: Fail) -> Overrides:
    """Keep the overrides of existing profiles, with their domains normalised."""
    known = set(profiles)
    allows = []
    for i, allow in enumerate(overrides.allows):
        if allow.profile not in known:
            continue
        try:
            domain = normalise_domain(allow.domain)
        except ValueError as exc:
            fail(f"overrides.allows[{i}]", str(exc))
            continue
        allows.append(TemporaryAllow(allow.profile, domain, allow.until))
    pauses = {p: until for p, until in overrides.pauses.items() if p in known}
    return Overrides(pauses, tuple(allows))
