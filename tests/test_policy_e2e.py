"""Profiles through the real server: each device's lookups decided by its child's profile."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import FakeClock, Running, StartServer, rrset_texts
from tests.upstream import FakeUpstream

ANNA = "127.0.0.2"   # 8 years old: strict YouTube, social blocked, gaming allowed
BEN = "127.0.0.3"    # 14 years old: moderate YouTube, social allowed
PARENT = "127.0.0.4"  # adult profile
UNKNOWN = "127.0.0.9"  # nobody's device: the safe baseline
TODAY = dt.date(2026, 11, 22)


def at(hour: int, minute: int = 0, day: dt.date = TODAY) -> float:
    """Epoch seconds for a wall-clock time in the household zone (UTC in these tests)."""
    return dt.datetime(day.year, day.month, day.day, hour, minute,
                       tzinfo=dt.UTC).timestamp()


PROFILES = [
    {"name": "anna", "birthdate": "2018-03-01", "devices": [{"ip": ANNA}],
     "schedules": [
         {"name": "homework", "days": "mon-sun", "from": "16:00", "to": "18:00",
          "block": ["gaming"]},
         {"name": "bedtime", "days": "mon-sun", "from": "21:00", "to": "07:00",
          "block_all": True, "allow": ["school.example.org"]},
     ]},
    {"name": "ben", "birthdate": "2012-06-01", "block_answer": "zero",
     "devices": [{"ip": BEN}, {"mac": "aa:bb:cc:dd:ee:ff"}]},
    {"name": "parents", "age": 40, "devices": [{"ip": PARENT}]},
]


@pytest.fixture
def family_upstream(upstream: FakeUpstream) -> FakeUpstream:
    for name in ("roblox.com", "facebook.com", "pornhub.com", "school.example.org"):
        upstream.add(name, "A", "192.0.2.10")
    upstream.add("forcesafesearch.google.com", "A", "216.239.38.120")
    upstream.add("forcesafesearch.google.com", "AAAA", "2001:4860:4802:32::78")
    upstream.add("restrict.youtube.com", "A", "216.239.38.120")
    upstream.add("restrictmoderate.youtube.com", "A", "216.239.38.119")
    upstream.add("www.google.com", "A", "142.250.0.1")
    upstream.add("tracker.example.org", "CNAME", "cdn.pornhub.com")
    upstream.add("cdn.pornhub.com", "A", "192.0.2.66")
    return upstream


@pytest.fixture
async def family(start_server: StartServer, family_upstream: FakeUpstream) -> Running:
    clock = FakeClock(at(12))
    return await start_server(clock=clock, profiles=PROFILES,
                              household={"timezone": "UTC"})


async def ask(server: Running, name: str, rdtype: str = "A", source: str = ANNA,
              **make: object) -> dns.message.Message:
    return await server.query(name, rdtype, source=source, **make)


def ede_texts(msg: dns.message.Message) -> list[str]:
    return [o.text or "" for o in msg.options if o.otype == dns.edns.EDE]


async def test_two_devices_on_two_profiles_get_different_answers(family: Running) -> None:
    anna = await ask(family, "facebook.com", source=ANNA, use_edns=0)
    ben = await ask(family, "facebook.com", source=BEN)
    assert anna.rcode() == dns.rcode.NXDOMAIN
    assert any("social" in t for t in ede_texts(anna))
    assert rrset_texts(ben, "A") == ["192.0.2.10"]


async def test_blocking_covers_every_query_type_and_subdomains(family: Running) -> None:
    for rdtype in ("A", "AAAA", "HTTPS", "SVCB", "MX", "TXT", "ANY"):
        reply = await ask(family, "www.pornhub.com", rdtype, source=BEN)
        assert reply.rcode() == dns.rcode.NOERROR, rdtype
        if rdtype == "A":
            assert rrset_texts(reply, "A") == ["0.0.0.0"]
        elif rdtype == "AAAA":
            assert rrset_texts(reply, "AAAA") == ["::"]
        else:
            assert not reply.answer and reply.authority, rdtype


async def test_unknown_devices_get_the_safe_baseline(family: Running,
                                                     upstream: FakeUpstream) -> None:
    adult = await ask(family, "pornhub.com", source=UNKNOWN)
    assert adult.rcode() == dns.rcode.NXDOMAIN
    social = await ask(family, "facebook.com", source=UNKNOWN)
    assert rrset_texts(social, "A") == ["192.0.2.10"]
    google = await ask(family, "www.google.com", source=UNKNOWN)
    assert google.answer[0].rdtype == dns.rdatatype.CNAME


async def test_parent_profile_is_not_filtered(family: Running) -> None:
    reply = await ask(family, "pornhub.com", source=PARENT)
    assert rrset_texts(reply, "A") == ["192.0.2.10"]
    google = await ask(family, "www.google.com", source=PARENT)
    assert rrset_texts(google, "A") == ["142.250.0.1"]


async def test_device_found_by_mac_option_from_the_router(family: Running) -> None:
    mac = dns.edns.GenericOption(65001, bytes.fromhex("aabbccddeeff"))
    reply = await ask(family, "pornhub.com", source=UNKNOWN, use_edns=0, options=[mac])
    assert rrset_texts(reply, "A") == ["0.0.0.0"], "ben's profile answers with 0.0.0.0"


async def test_google_safe_search_is_a_cname_plus_the_targets_addresses(
        family: Running) -> None:
    reply = await ask(family, "www.google.com", "A", source=ANNA)
    assert reply.rcode() == dns.rcode.NOERROR
    cname, a = reply.answer
    assert cname.name.to_text() == "www.google.com."
    assert cname.rdtype == dns.rdatatype.CNAME
    assert [r.target.to_text() for r in cname] == ["forcesafesearch.google.com."]
    assert a.name.to_text() == "forcesafesearch.google.com."
    assert a.rdtype == dns.rdatatype.A and [r.address for r in a] == ["216.239.38.120"]
    v6 = await ask(family, "www.google.co.uk", "AAAA", source=ANNA)
    assert [r.address for r in v6.answer[1]] == ["2001:4860:4802:32::78"]


async def test_youtube_is_strict_at_8_and_moderate_at_14(family: Running) -> None:
    anna = await ask(family, "www.youtube.com", source=ANNA)
    ben = await ask(family, "m.youtube.com", source=BEN)
    assert anna.answer[0][0].target.to_text() == "restrict.youtube.com."
    assert rrset_texts(anna, "A") == ["216.239.38.120"]
    assert ben.answer[0][0].target.to_text() == "restrictmoderate.youtube.com."
    assert rrset_texts(ben, "A") == ["216.239.38.119"]


async def test_bypass_canaries(family: Running) -> None:
    canary = await ask(family, "use-application-dns.net", source=ANNA)
    relay = await ask(family, "mask.icloud.com", source=BEN)
    ddr = await ask(family, "_dns.resolver.arpa", "SVCB", source=ANNA)
    assert canary.rcode() == dns.rcode.NXDOMAIN
    assert relay.rcode() == dns.rcode.NXDOMAIN
    assert ddr.rcode() == dns.rcode.NOERROR and not ddr.answer
    doh = await ask(family, "dns.google", source=ANNA)
    assert doh.rcode() == dns.rcode.NXDOMAIN


async def test_cname_cloaking_is_blocked_like_its_target(family: Running) -> None:
    reply = await ask(family, "tracker.example.org", source=BEN, use_edns=0)
    assert rrset_texts(reply, "A") == ["0.0.0.0"]
    assert any("adult" in t for t in ede_texts(reply))
    parent = await ask(family, "tracker.example.org", source=PARENT)
    assert rrset_texts(parent, "A") == ["192.0.2.66"]


async def test_schedules_follow_the_clock(family: Running) -> None:
    assert rrset_texts(await ask(family, "roblox.com"), "A") == ["192.0.2.10"]
    family.clock.now = at(17)
    homework = await ask(family, "roblox.com", use_edns=0)
    assert homework.rcode() == dns.rcode.NXDOMAIN
    assert any("gaming" in t for t in ede_texts(homework))
    family.clock.now = at(22)
    assert (await ask(family, "example.org")).rcode() == dns.rcode.NXDOMAIN
    assert rrset_texts(await ask(family, "school.example.org"), "A") == ["192.0.2.10"]
    assert rrset_texts(await ask(family, "example.org", source=BEN), "A") == ["192.0.2.1"]
    family.clock.now = at(7, 30, TODAY + dt.timedelta(days=1))
    assert rrset_texts(await ask(family, "roblox.com"), "A") == ["192.0.2.10"]


async def test_a_birthday_moves_the_child_up_a_band(start_server: StartServer,
                                                    family_upstream: FakeUpstream) -> None:
    clock = FakeClock(at(12, day=dt.date(2025, 5, 31)))
    profile = {"name": "ben", "birthdate": "2012-06-01", "devices": [{"ip": BEN}]}
    server = await start_server(clock=clock, profiles=[profile], household={"timezone": "UTC"})
    assert (await ask(server, "facebook.com", source=BEN)).rcode() == dns.rcode.NXDOMAIN
    server.clock.now = at(12, day=dt.date(2025, 6, 1))  # 13 today: social is allowed
    reply = await ask(server, "facebook.com", source=BEN)
    assert rrset_texts(reply, "A") == ["192.0.2.10"]


async def test_a_local_list_adds_a_category(start_server: StartServer, tmp_path: Path,
                                            family_upstream: FakeUpstream) -> None:
    lists = tmp_path / "data" / "lists"
    lists.mkdir(parents=True)
    (lists / "mine.txt").write_text("# my list\n||badgames.example.org^\nnot a domain\n")
    family_upstream.add("play.badgames.example.org", "A", "192.0.2.70")
    server = await start_server(
        profiles=[{"name": "kid", "age": 5, "devices": [{"ip": ANNA}]}],
        lists={"sources": [{"name": "mine", "category": "gaming", "path": "lists/mine.txt"}]})
    reply = await ask(server, "play.badgames.example.org", source=ANNA)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert server.metric("familydns_blocked_total", profile="kid", category="gaming") == 1


async def test_reload_under_load_loses_no_query(family: Running) -> None:
    stop = asyncio.Event()
    answered = 0

    async def load() -> None:
        nonlocal answered
        while not stop.is_set():
            replies = await asyncio.gather(*(ask(family, name, source=src) for name, src in (
                ("example.org", ANNA), ("facebook.com", ANNA), ("facebook.com", BEN))))
            assert replies[0].answer and replies[1].rcode() == dns.rcode.NXDOMAIN
            assert replies[2].answer
            answered += 3

    task = asyncio.create_task(load())
    for _ in range(5):
        assert await family.app.reload()
    stop.set()
    await task
    assert answered >= 15
    assert family.metric("familydns_reloads_total", result="ok") == 5


async def test_an_https_record_leading_to_a_blocked_name_is_blocked(
        family: Running, family_upstream: FakeUpstream) -> None:
    family_upstream.add("cloak.example.org", "HTTPS", "1 cdn.pornhub.com. alpn=h2")
    reply = await ask(family, "cloak.example.org", "HTTPS", source=BEN, use_edns=0)
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert any("adult" in t for t in ede_texts(reply))
    parent = await ask(family, "cloak.example.org", "HTTPS", source=PARENT)
    assert parent.answer
