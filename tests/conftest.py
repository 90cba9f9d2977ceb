"""Fixtures that start real servers on loopback: a fake upstream and familydns itself."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest
from prometheus_client import CollectorRegistry

from familydns.app import App
from familydns.config import Config, load_config_data
from familydns.metrics import Metrics
from tests.upstream import FakeUpstream

UT1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ut1"


class FakeClock:
    """A wall clock the test moves by hand (TTL countdown, schedules, retention)."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Running:
    app: App
    host: str
    port: int
    clock: FakeClock
    metrics: Metrics

    async def query(self, name: str, rdtype: str = "A", *, tcp: bool = False,
                    timeout: float = 3.0, source: str | None = None,
                    **make: Any) -> dns.message.Message:
        """Ask over UDP (or TCP) from ``source``, a loopback address standing for a device."""
        q = dns.message.make_query(name, rdtype, **make)
        if tcp:
            return await dns.asyncquery.tcp(q, self.host, port=self.port, timeout=timeout,
                                            source=source)
        return await dns.asyncquery.udp(q, self.host, port=self.port, timeout=timeout,
                                        source=source)

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


StartServer = Callable[..., Awaitable[Running]]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds, polling every 50 ms; fail after ``timeout``."""
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


def base_config(upstream_urls: list[str], **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        # Rate limiting off unless a test is about it: tests query fast from one address.
        "server": {"listen": ["127.0.0.1:0"], "rate_limit": 0},
        "upstreams": {"servers": upstream_urls, "timeout": 0.5},
        "metrics": {"listen": None},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    up.add("example.org", "A", "192.0.2.1", ttl=300)
    up.add("example.org", "AAAA", "2001:db8::1", ttl=300)
    up.add("example.org", "MX", "10 mail.example.org", ttl=300)
    up.add("example.org", "TXT", "v=spf1 -all", ttl=300)
    async with up:
        yield up


@pytest.fixture
async def start_server(tmp_path: Path, upstream: FakeUpstream
                       ) -> AsyncIterator[StartServer]:
    """``await start_server(**config_sections)`` runs familydns against ``upstream``."""
    apps: list[App] = []

    async def start(*, upstreams: list[str] | None = None, clock: FakeClock | None = None,
                    config: dict[str, Any] | None = None, **sections: Any) -> Running:
        data = config or base_config(upstreams or [upstream.url("udp")], **sections)
        clock = clock or FakeClock()
        metrics = Metrics(CollectorRegistry())

        def load() -> Config:
            return load_config_data(data, "test config")

        app = App(load, tmp_path / "data", metrics=metrics, clock=clock)
        await app.start()
        apps.append(app)
        host, port = app.addresses[0]
        return Running(app, host, port, clock, metrics)

    yield start
    for app in apps:
        await app.stop()


@pytest.fixture
def dig() -> str:
    path = shutil.which("dig")
    if path is None:
        pytest.skip("dig is not installed (make test installs bind9-dnsutils as root)")
    return path


async def run_command(*argv: str, timeout: float = 10.0) -> tuple[int, str, str]:
    """Run a command without blocking the event loop the server under test runs in."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def rrset_texts(msg: dns.message.Message, rdtype: str) -> list[str]:
    t = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rrset in msg.answer if rrset.rdtype == t for rd in rrset)
