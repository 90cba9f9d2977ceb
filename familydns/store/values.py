"""Validation and normalisation of what a parent types, before anything reaches SQL.

Every value is stored in the one spelling the resolver matches on (lower-case MAC with
colons, strict CIDR, IDNA domain), so a uniqueness constraint in the database means
"the same device" and a rule stored is a rule that can match. Mistakes raise StoreError
with one line a parent can act on.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from familydns.blocklists.categories import BY_ID
from familydns.config import DeviceConfig, ProfileConfig, ScheduleConfig
from familydns.errors import FamilyDNSError
from familydns.profiles.devices import normalise_mac, parse_client_ip
from familydns.profiles.domains import normalise_domain
from familydns.profiles.schedules import Schedule, parse_days, parse_end_time, parse_time
from familydns.profiles.snapshot import parse_block_answer, parse_youtube

DEFAULT_HOUSEHOLD = "home"
DEVICE_KINDS = ("ip", "cidr", "mac", "client_id")
MAX_AGE = 120
_NAME = re.compile(r"[^\W][\w .'-]{0,63}")
_HOUSEHOLD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9-]{1,63}")

Fail = Callable[[str, str], None]


class StoreError(FamilyDNSError):
    """A store command refused: unknown profile, duplicate, bad value. Nothing was written."""


@dataclass(frozen=True, slots=True)
class Device:
    """One stored device: its profile, its one identifier and an optional label."""

    profile: str
    kind: str
    value: str
    name: str | None = None

    def as_config(self) -> DeviceConfig:
        return DeviceConfig(**{self.kind: self.value}, name=self.name)


def label(what: str, text: str) -> str:
    """Letters, digits, space, ``_ . ' -``; up to 64 characters, not starting with a symbol.

    Names show in the CLI, in reasons and as metric labels, so they stay short and plain.
    """
    name = text.strip() if isinstance(text, str) else ""
    if not _NAME.fullmatch(name):
        raise StoreError(f"bad {what} {text!r} (letters, digits, space, _ . ' -; "
                         "at most 64 characters)")
    return name


def profile_name(text: str) -> str:
    return label("profile name", text)


def device_name(text: str | None) -> str | None:
    """A free label ("Alice's iPad (school)"): printable, at most 64 characters."""
    if text is None:
        return None
    name = text.strip() if isinstance(text, str) else ""
    if not name or len(name) > 64 or not name.isprintable():
        raise StoreError(f"bad device name {text!r} (printable, at most 64 characters)")
    return name


def household_name(text: str) -> str:
    if not isinstance(text, str) or not _HOUSEHOLD.fullmatch(text):
        raise StoreError(f"bad household name {text!r} (letters, digits, _ . -)")
    return text


def birthdate(value: dt.date | str, today: dt.date) -> dt.date:
    """A date in the past; strings must be YYYY-MM-DD."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise StoreError(f"bad birthdate {value!r} (expected YYYY-MM-DD)") from None
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise StoreError(f"bad birthdate {value!r} (expected YYYY-MM-DD)")
    if value > today:
        raise StoreError(f"birthdate {value.isoformat()} is in the future")
    return value


def age(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AGE:
        raise StoreError(f"bad age {value!r} (a whole number from 0 to {MAX_AGE})")
    return value


def age_as_of(value: dt.date, today: dt.date) -> dt.date:
    """The day the stated age was true: not in the future."""
    if not isinstance(value, dt.date) or value > today:
        raise StoreError(f"bad age_as_of {value!r} (a date, not in the future)")
    return value


def youtube(value: str | None) -> str | None:
    """None follows the age band; otherwise strict, moderate or off."""
    if value is None:
        return None
    try:
        return parse_youtube(value).value
    except ValueError as exc:
        raise StoreError(f"youtube {exc}") from None


def block_answer(value: str) -> str:
    """nxdomain, nodata, zero, refused, or up to one IPv4 and one IPv6 block-page address."""
    try:
        answer, addresses = parse_block_answer(value)
    except ValueError as exc:
        raise StoreError(f"block_answer {exc}") from None
    return ",".join(addresses) if addresses else answer.value


def optional_bool(field: str, value: bool | None) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise StoreError(f"{field} must be true, false or unset, got {value!r}")
    return value


def device(kind: str, value: str) -> tuple[str, str]:
    """(kind, value) in the resolver's spelling; CIDRs must be a network (no host bits)."""
    text = value.strip() if isinstance(value, str) else ""
    if kind == "mac":
        try:
            return kind, normalise_mac(text)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
    if kind == "client_id":
        if not _CLIENT_ID.fullmatch(text):
            raise StoreError(f"bad client id {value!r} (1 to 63 letters, digits or -)")
        return kind, text.lower()
    if kind == "ip":
        try:
            return kind, str(parse_client_ip(text))
        except ValueError:
            raise StoreError(f"bad IP address {value!r}") from None
    if kind == "cidr":
        try:
            return kind, str(ipaddress.ip_network(text, strict=True))
        except ValueError:
            hint = ""
            try:
                hint = f" (did you mean {ipaddress.ip_network(text, strict=False)}?)"
            except ValueError:
                pass
            raise StoreError(f"bad CIDR {value!r}{hint}") from None
    raise StoreError(f"bad device kind {kind!r} (one of {', '.join(DEVICE_KINDS)})")


def guess_kinds(value: str) -> tuple[tuple[str, str], ...]:
    """Every (kind, normalised value) ``value`` could be, for removal by value alone."""
    found = []
    for kind in DEVICE_KINDS:
        try:
            found.append(device(kind, value))
        except StoreError:
            continue
    return tuple(found)


def device_config(cfg: DeviceConfig) -> tuple[str, str]:
    given = [(kind, getattr(cfg, kind)) for kind in DEVICE_KINDS if getattr(cfg, kind)]
    if len(given) != 1:
        found = ", ".join(kind for kind, _ in given) or "none"
        raise StoreError(f"needs exactly one of ip, cidr, mac or client_id (found {found})")
    return device(*given[0])


def domain(text: str) -> str:
    try:
        return normalise_domain(text)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def category(text: str) -> str:
    if text not in BY_ID:
        raise StoreError(f"unknown category {text!r} (known: {', '.join(BY_ID)})")
    return text


def category_action(action: str) -> str:
    if action not in ("block", "unblock"):
        raise StoreError(f"bad category action {action!r} (block or unblock)")
    return action


def schedule(cfg: ScheduleConfig) -> ScheduleConfig:
    """A schedule that compiles, in normalised form; the checks build_snapshot makes."""
    name = label("schedule name", cfg.name)
    try:
        days = parse_days(cfg.days)
        start = parse_time(cfg.start)
        end = parse_end_time(cfg.end)
    except ValueError as exc:
        raise StoreError(f"schedule {name!r}: {exc}") from None
    block = tuple(dict.fromkeys(category(c) for c in cfg.block))
    allow = tuple(dict.fromkeys(domain(d) for d in cfg.allow))
    if not isinstance(cfg.block_all, bool):
        raise StoreError(f"schedule {name!r}: block_all must be true or false")
    if not cfg.block_all and not block:
        raise StoreError(f"schedule {name!r} does nothing: set block_all or block categories")
    if allow and not cfg.block_all:
        raise StoreError(f"schedule {name!r}: allow only applies with block_all")
    try:
        Schedule.build(name, days, start, end, block_all=cfg.block_all)
    except ValueError as exc:
        raise StoreError(f"schedule {name!r}: {exc}") from None
    return ScheduleConfig(name=name, start=cfg.start.strip(), end=cfg.end.strip(),
                          days=cfg.days.strip(), block_all=cfg.block_all,
                          block=block, allow=allow)


def profile(cfg: ProfileConfig, today: dt.date) -> ProfileConfig:
    """A whole profile checked as the snapshot builder would, in normalised form.

    An age without ``age_as_of`` is taken as stated today, and recorded so.
    """
    name = profile_name(cfg.name)

    def within(message: str) -> StoreError:
        return StoreError(f"profile {name!r}: {message}")

    try:
        if (cfg.birthdate is None) == (cfg.age is None):
            raise StoreError("give exactly one of birthdate or age")
        born = birthdate(cfg.birthdate, today) if cfg.birthdate is not None else None
        years = age(cfg.age) if cfg.age is not None else None
        as_of = None
        if years is not None:
            as_of = today if cfg.age_as_of is None else age_as_of(cfg.age_as_of, today)
        elif cfg.age_as_of is not None:
            raise StoreError("age_as_of only goes with age")
        devices = tuple(_device(d) for d in cfg.devices)
        block = _unique(category(c) for c in cfg.block)
        unblock = _unique(category(c) for c in cfg.unblock)
        both = set(block) & set(unblock)
        if both:
            raise StoreError(f"{min(both)!r} is in both block and unblock")
        allow = _unique(domain(d) for d in cfg.allow)
        deny = _unique(domain(d) for d in cfg.deny)
        clash = set(allow) & set(deny)
        if clash:
            raise StoreError(f"{min(clash)!r} is in both allow and deny")
        schedules = tuple(schedule(s) for s in cfg.schedules)
        names = [s.name for s in schedules]
        if len(set(names)) != len(names):
            raise StoreError("two schedules have the same name")
        return ProfileConfig(
            name=name, birthdate=born, age=years, age_as_of=as_of, devices=devices,
            block=block, unblock=unblock, allow=allow, deny=deny,
            safe_search=optional_bool("safe_search", cfg.safe_search),
            youtube=youtube(cfg.youtube),
            allowlist_only=bool(optional_bool("allowlist_only", cfg.allowlist_only)),
            bypass_protection=optional_bool("bypass_protection", cfg.bypass_protection),
            block_answer=block_answer(cfg.block_answer),
            schedules=schedules,
        )
    except StoreError as exc:
        raise within(str(exc)) from None


def _device(cfg: DeviceConfig) -> DeviceConfig:
    kind, value = device_config(cfg)
    return DeviceConfig(**{kind: value}, name=device_name(cfg.name))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
