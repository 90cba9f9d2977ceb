"""Export and import: the config file's profiles: section, all or nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from familydns.config import load_config_data
from familydns.store import Store, StoreError, export_yaml, import_yaml

NOW = 1_790_000_000.0
TODAY = dt.date.fromtimestamp(NOW)


def clock() -> float:
    return NOW


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "a.db", clock=clock)
    yield s
    await s.close()


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "b.db", clock=clock)
    yield s
    await s.close()


async def household(store: Store) -> None:
    """Every kind of setting a parent can make, so the round trip covers them all."""
    await store.add_profile("alice", age=10, youtube="strict")
    await store.add_profile("Ben O'Neil", birthdate="2011-02-28", safe_search=False,
                            bypass_protection=False, block_answer="192.0.2.1")
    await store.add_profile("no", age=16, allowlist_only=True, block_answer="nodata")
    for kind, value, name in (("mac", "AA-BB-CC-DD-EE-01", "Alice's iPad (school)"),
                              ("ip", "192.168.1.20", None),
                              ("client_id", "alice-phone", None)):
        await store.add_device("alice", kind, value, name)
    await store.add_device("Ben O'Neil", "cidr", "2001:db8:1::/48", "Ben's network")
    await store.allow_domain("alice", "khanacademy.org")
    await store.deny_domain("alice", "tiktok.com")
    await store.deny_domain("alice", "roblox.com")
    await store.set_category("alice", "gaming", "block")
    await store.set_category("Ben O'Neil", "social", "unblock")
    await store.add_schedule("alice", "bedtime", "sun-thu", "21:00", "07:00", block_all=True,
                             allow=["school.example.org"])
    await store.add_schedule("alice", "homework", "weekdays", "16:00", "24:00",
                             block=["gaming", "streaming"])
    await store.pause("alice")
    await store.add_profile("alice", age=7, household="smiths")


async def test_export_then_import_gives_identical_profiles(store: Store, fresh: Store) -> None:
    await household(store)
    text = await export_yaml(store)
    imported = await import_yaml(fresh, text)
    assert await fresh.load_profiles() == await store.load_profiles() == imported
    assert await export_yaml(fresh) == text


async def test_the_export_is_a_valid_profiles_section_of_config_yaml(store: Store) -> None:
    await household(store)
    config = load_config_data(yaml.safe_load(await export_yaml(store)), "config.yaml")
    assert config.profiles == await store.load_profiles()


async def test_export_is_per_household_and_leaves_out_live_overrides(store: Store) -> None:
    await household(store)
    smiths = yaml.safe_load(await export_yaml(store, "smiths"))
    assert smiths == {"profiles": [{"name": "alice", "age": 7, "age_as_of": TODAY}]}
    assert "pause" not in await export_yaml(store)


async def test_an_age_without_a_date_is_recorded_as_stated_today(store: Store) -> None:
    await import_yaml(store, "- name: alice\n  age: 9\n")
    assert (await store.get_profile("alice")).age_as_of == TODAY


async def test_a_file_with_any_problem_writes_nothing_and_names_every_problem(
    store: Store,
) -> None:
    text = """
profiles:
  - name: alice
    age: 10
    devices: [{mac: "aa:bb:cc:dd:ee:01"}]
  - name: ben
    age: 12
    devices: [{mac: "AA-BB-CC-DD-EE-01"}]
  - name: cleo
    age: 8
    deny: [https://tiktok.com/]
  - name: dan
    age: 7
    block: [gamez]
"""
    with pytest.raises(StoreError) as refused:
        await import_yaml(store, text)
    message = str(refused.value)
    assert "profiles[1]: mac aa:bb:cc:dd:ee:01 is on profile 'alice' and on 'ben'" in message
    assert "profiles[2]: profile 'cleo': bad domain 'https://tiktok.com/'" in message
    assert "profiles[3]: profile 'dan': unknown category 'gamez'" in message
    assert await store.list_profiles() == ()


@pytest.mark.parametrize(("text", "message"), [
    ("- name: alice\n  age: 10\n  blok: [gaming]\n", r"profiles\[0\]\.blok: unknown key"),
    ("- name: alice\n", "needs|exactly one"),
    ("profiles: {name: alice}\n", "expected a profiles: list"),
    ("- name: alice\n  age: [10\n", "invalid YAML"),
    ("households: []\n", "expected a profiles: list"),
])
async def test_the_config_loaders_strictness_applies_to_imports(
    store: Store, text: str, message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        await import_yaml(store, text)
    assert await store.list_profiles() == ()


async def test_import_refuses_existing_profiles_unless_replacing(store: Store) -> None:
    await household(store)
    text = "- name: alice\n  age: 11\n- name: zoe\n  age: 5\n"
    with pytest.raises(StoreError, match="'alice' already exists"):
        await import_yaml(store, text)
    assert "zoe" not in await store.list_profiles()
    await import_yaml(store, text, replace=True)
    assert await store.list_profiles() == ("alice", "zoe")
    assert await store.list_profiles("smiths") == ("alice",)


async def test_import_refuses_a_device_another_stored_profile_has(store: Store) -> None:
    await household(store)
    with pytest.raises(StoreError, match="already belongs to profile 'alice'"):
        await import_yaml(store, "- name: zoe\n  age: 5\n  devices: [{ip: 192.168.1.20}]\n")
    assert "zoe" not in await store.list_profiles()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM profiles WHERE name = 'zoe'").fetchone() \
            == (0,)
