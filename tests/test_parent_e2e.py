"""A parent's loop: the CLI changes a profile while the resolver runs; DNS follows."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from tests.conftest import FakeClock, Running, StartServer, rrset_texts, run_command
from tests.upstream import FakeUpstream

KID = "127.0.0.5"


async def familydns(data_dir: Path, *args: str) -> str:
    code, out, err = await run_command(sys.executable, "-m", "familydns", "--data-dir",
                                       str(data_dir), *args, timeout=30)
    assert code == 0, err
    return out


async def ask(server: Running, name: str, timeout: float = 3.0) -> dns.message.Message:
    return await server.query(name, "A", timeout=timeout, source=KID)


async def wait_for_rcode(server: Running, name: str, rcode: dns.rcode.Rcode,
                         limit: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        try:
            if (await ask(server, name, timeout=0.3)).rcode() == rcode:
                return loop.time() - start
        except dns.exception.Timeout:
            pass  # one lost datagram must not be mistaken for a slow policy change
        assert loop.time() - start < limit, f"{name} not {rcode.name} after {limit} s"
        await asyncio.sleep(0.05)


async def test_cli_changes_apply_to_the_running_resolver_within_2_seconds(
        start_server: StartServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    data = tmp_path / "data"
    await familydns(data, "profile", "add", "kid", "--age", "9")
    await familydns(data, "device", "add", "kid", "--ip", KID)
    server = await start_server()
    assert rrset_texts(await ask(server, "example.org"), "A") == ["192.0.2.1"]

    await familydns(data, "deny", "kid", "example.org")
    assert await wait_for_rcode(server, "example.org", dns.rcode.NXDOMAIN, 2.0) <= 2.0

    await familydns(data, "allow", "kid", "example.org", "--for", "10m")
    assert await wait_for_rcode(server, "example.org", dns.rcode.NOERROR, 2.0) <= 2.0

    await familydns(data, "pause", "kid")
    assert await wait_for_rcode(server, "example.org", dns.rcode.NXDOMAIN, 2.0) <= 2.0
    await familydns(data, "resume", "kid")
    assert await wait_for_rcode(server, "example.org", dns.rcode.NOERROR, 2.0) <= 2.0


async def test_blocked_lookups_are_logged_and_allowed_ones_are_not(
        start_server: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    await familydns(data, "profile", "add", "kid", "--age", "9")
    await familydns(data, "device", "add", "kid", "--ip", KID)
    server = await start_server(clock=FakeClock(time.time()))
    assert (await ask(server, "www.bet365.com")).rcode() == dns.rcode.NXDOMAIN
    assert (await ask(server, "example.org")).rcode() == dns.rcode.NOERROR
    assert server.app.log_writer is not None
    await server.app.log_writer.flush()
    rows = [json.loads(line) for line in
            (await familydns(data, "logs", "--json")).splitlines()]
    assert [(r["qname"], r["profile"], r["category"], r["device"], r["source"])
            for r in rows] == [("www.bet365.com", "kid", "gambling", KID, "starter-gambling")]
    report = json.loads(await familydns(data, "report", "--json"))
    assert report[0]["top_domains"] == [["www.bet365.com", 1]]


async def test_logs_follow_prints_new_blocked_lookups_as_they_come(
        start_server: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    await familydns(data, "profile", "add", "kid", "--age", "9")
    await familydns(data, "device", "add", "kid", "--ip", KID)
    server = await start_server(clock=FakeClock(time.time()))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "familydns", "--data-dir", str(data), "logs", "--follow",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.sleep(1.0)  # --follow is now polling
        assert (await ask(server, "www.pokerstars.com")).rcode() == dns.rcode.NXDOMAIN
        assert server.app.log_writer is not None
        await server.app.log_writer.flush()
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 5)
        assert b"www.pokerstars.com" in line and b"gambling" in line
    finally:
        proc.kill()
        await proc.wait()
