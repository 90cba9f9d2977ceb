"""No answer leaks across profiles (Blocky GHSA-x845), under interleaved load.

A child (127.0.0.2, age 8: social blocked) and a parent (127.0.0.3) query the same names
at the same time: social names, CNAME-cloaked social names and allowed names, hot and
cold, so the cache, the in-flight dedupe of concurrent misses and the per-client reuse
of recent answers are all shared by both. Every answer must be exactly what that
device's own profile gives: the child never sees a social address, the parent never
sees a block.

20,000 queries in CI (about 5 s); ``FAMILYDNS_LONG=1`` runs 100,000.
"""

from __future__ import annotations

import asyncio
import os
import random

import dns.message
import dns.rcode
import dns.rdatatype

from tests.conftest import StartServer
from tests.test_spoofing import blast
from tests.upstream import FakeUpstream

KID, PARENT = "127.0.0.2", "127.0.0.3"
PROFILES = [
    {"name": "kid", "age": 8, "devices": [{"ip": KID}]},
    {"name": "parent", "age": 40, "devices": [{"ip": PARENT}]},
]
TOTAL = 100_000 if os.environ.get("FAMILYDNS_LONG") == "1" else 20_000

SOCIAL = {f"s{i}.{site}": f"198.51.100.{i + 1}" for i, site in enumerate(
    ["facebook.com", "instagram.com", "tiktok.com", "snapchat.com", "twitter.com"] * 12)}
CLOAKED = {f"c{i}.example.org": target for i, target in enumerate(list(SOCIAL)[:20])}
ALLOWED = {f"a{i}.example.org": f"192.0.2.{i + 1}" for i in range(80)}


def expected(source: str, name: str) -> str | None:
    """The address this device's profile answers with; None for a block (NXDOMAIN)."""
    if name in ALLOWED:
        return ALLOWED[name]
    if source == KID:
        return None
    return SOCIAL[CLOAKED.get(name, name)]


def outcome(wire: bytes) -> str | None:
    reply = dns.message.from_wire(wire)
    if reply.rcode() == dns.rcode.NXDOMAIN:
        assert not reply.answer
        return None
    assert reply.rcode() == dns.rcode.NOERROR
    return next(rd.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
                for rd in rrset)


async def test_interleaved_profiles_never_get_each_others_answers(
        start_server: StartServer, upstream: FakeUpstream) -> None:
    for name, address in {**SOCIAL, **ALLOWED}.items():
        upstream.add(name, "A", address, ttl=3600)
    for name, target in CLOAKED.items():
        upstream.add(name, "CNAME", target, ttl=3600)
    server = await start_server(profiles=PROFILES)
    rng = random.Random(8482)
    names = [*SOCIAL, *CLOAKED, *ALLOWED]
    work = {source: [rng.choice(names) for _ in range(TOTAL // 2)] for source in (KID, PARENT)}

    kid, parent = await asyncio.gather(
        *(blast(server, work[source], concurrency=25, source=source) for source in work))

    leaks = [(source, name, got)
             for source, replies in ((KID, kid), (PARENT, parent))
             for name, got in zip(work[source], map(outcome, replies), strict=True)
             if got != expected(source, name)]
    assert leaks == [], f"{len(leaks)} of {TOTAL} answers were wrong, e.g. {leaks[:5]}"
    assert len(kid) + len(parent) == TOTAL
