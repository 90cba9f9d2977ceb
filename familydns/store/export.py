"""Profiles as YAML: a backup a parent can read, and a way to move to or from config.yaml.

The output is the config file's ``profiles:`` section, so it can be pasted into
config.yaml as is. Import parses with the config loader itself (unknown keys are
errors), checks everything, and writes in one transaction: all or nothing. Pauses and
temporary allows are live state, not configuration, and are not exported.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

from familydns.config import DeviceConfig, ProfileConfig, ScheduleConfig, load_config_data
from familydns.errors import ConfigError
from familydns.store import values as v
from familydns.store.store import Store
from familydns.store.values import DEFAULT_HOUSEHOLD, DEVICE_KINDS, StoreError


async def export_yaml(store: Store, household: str = DEFAULT_HOUSEHOLD) -> str:
    """The household's profiles as a ``profiles:`` mapping for config.yaml."""
    profiles = await store.load_profiles(household)
    body = yaml.safe_dump({"profiles": [profile_data(p) for p in profiles]},
                          sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"# familydns profiles of household {household!r}\n{body}"


async def import_yaml(store: Store, text: str, household: str = DEFAULT_HOUSEHOLD,
                      replace: bool = False) -> tuple[ProfileConfig, ...]:
    """Add the profiles in ``text`` (a ``profiles:`` mapping or a bare list).

    Every problem is reported at once in one StoreError, before anything is written.
    ``replace`` removes the household's other profiles in the same transaction.
    """
    profiles = parse_profiles(text, dt.date.fromtimestamp(store.clock()))
    await store.write_profiles(profiles, household=household, replace=replace)
    return profiles


def parse_profiles(text: str, today: dt.date) -> tuple[ProfileConfig, ...]:
    """Validated, normalised profiles from YAML text; StoreError lists every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise StoreError(f"{where}invalid YAML: {getattr(exc, 'problem', None) or exc}") \
            from None
    if isinstance(raw, dict) and set(raw) == {"profiles"}:
        raw = raw["profiles"]
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise StoreError("expected a profiles: list")
    try:
        parsed = load_config_data({"profiles": raw}, "import").profiles
    except ConfigError as exc:
        raise StoreError(str(exc)) from None
    problems: list[str] = []
    checked: list[ProfileConfig] = []
    owners: dict[tuple[str, str], str] = {}
    for i, cfg in enumerate(parsed):
        try:
            profile = v.profile(cfg, today)
        except StoreError as exc:
            problems.append(f"profiles[{i}]: {exc}")
            continue
        checked.append(profile)
        for device in profile.devices:
            key = v.device_config(device)
            first = owners.setdefault(key, profile.name)
            if first != profile.name:
                problems.append(f"profiles[{i}]: {key[0]} {key[1]} is on profile {first!r} "
                                f"and on {profile.name!r}")
    if problems:
        raise StoreError("cannot import: " + "; ".join(problems))
    return tuple(checked)


def profile_data(p: ProfileConfig) -> dict[str, Any]:
    """One profile in config-file form, leaving out what is at its default."""
    data: dict[str, Any] = {"name": p.name}
    if p.birthdate is not None:
        data["birthdate"] = p.birthdate
    if p.age is not None:
        data["age"] = p.age
    if p.age_as_of is not None:
        data["age_as_of"] = p.age_as_of
    if p.devices:
        data["devices"] = [_device_data(d) for d in p.devices]
    for key in ("block", "unblock", "allow", "deny"):
        if getattr(p, key):
            data[key] = list(getattr(p, key))
    for key in ("safe_search", "youtube", "bypass_protection"):
        if getattr(p, key) is not None:
            data[key] = getattr(p, key)
    if p.allowlist_only:
        data["allowlist_only"] = True
    if p.block_answer != "nxdomain":
        data["block_answer"] = p.block_answer
    if p.schedules:
        data["schedules"] = [_schedule_data(s) for s in p.schedules]
    return data


def _device_data(d: DeviceConfig) -> dict[str, str]:
    data = {kind: getattr(d, kind) for kind in DEVICE_KINDS if getattr(d, kind)}
    if d.name is not None:
        data["name"] = d.name
    return data


def _schedule_data(s: ScheduleConfig) -> dict[str, Any]:
    data: dict[str, Any] = {"name": s.name, "days": s.days, "from": s.start, "to": s.end}
    if s.block_all:
        data["block_all"] = True
    if s.block:
        data["block"] = list(s.block)
    if s.allow:
        data["allow"] = list(s.allow)
    return data
