"""``familydns serve --workers N``: a supervisor and worker processes sharing one port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from familydns.app import App
from familydns.config import load_config_data
from tests.conftest import rrset_texts
from tests.test_process import free_port, serving, start_process, wait_answering
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")

TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test leaves running (a worker names tmp_path) is killed."""
    yield
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(tmp_path).encode() in (
                    entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass


def free_tcp_ports(count: int) -> int:
    """The first of ``count`` consecutive TCP ports free on 127.0.0.1 (metrics + i)."""
    while True:
        base = free_port()
        if base + count > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base


def workers_of(supervisor: int) -> dict[int, int]:
    """{worker index: pid} of the supervisor's live children."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == supervisor and state != "Z" and b"--worker-index" in argv:
            found[int(argv[argv.index(b"--worker-index") + 1])] = int(entry.name)
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                != "Z")
    except OSError:
        return False


async def scrape(port: int, name: str, **labels: str) -> float:
    """The sum of metric ``name``'s samples matching ``labels``; 0 when unreachable."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return 0.0
    try:
        writer.write(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        body = (await asyncio.wait_for(reader.read(), 2.0)).partition(b"\r\n\r\n")[2]
    except (OSError, TimeoutError):
        return 0.0
    finally:
        writer.close()
    return sum(sample.value for family in text_string_to_metric_families(body.decode())
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


async def query(port: int, name: str) -> dns.message.Message:
    """One query from a fresh socket, so a fresh source port the kernel hashes anew."""
    q = dns.message.make_query(name, "A")
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2.0)


async def until_every_worker_counts(port: int, metrics: int, workers: int, name: str,
                                    check: Callable[[dns.message.Message], None],
                                    metric: str = "familydns_queries_total") -> None:
    """Ask for ``name`` from many source ports, checking every answer, until each
    worker's ``metric`` has risen: every worker answered and passed ``check``."""
    loop = asyncio.get_running_loop()
    before = [await scrape(metrics + i, metric) for i in range(workers)]
    deadline = loop.time() + TIMEOUT
    while True:
        for reply in await asyncio.gather(*(query(port, name) for _ in range(10))):
            check(reply)
        after = [await scrape(metrics + i, metric) for i in range(workers)]
        if all(a > b for a, b in zip(after, before)):
            return
        assert loop.time() < deadline, f"{metric} per worker: {before} -> {after}"


def answered(reply: dns.message.Message) -> None:
    assert rrset_texts(reply, "A") == ["192.0.2.1"], reply


def blocked(reply: dns.message.Message) -> None:
    assert reply.rcode() == dns.rcode.NXDOMAIN, reply


def write_config(path: Path, port: int, upstream: str, metrics: int, deny: str) -> None:
    path.write_text(
        f"server: {{listen: ['127.0.0.1:{port}'], rate_limit: 0}}\n"
        f"upstreams: {{servers: ['{upstream}'], timeout: 0.5}}\n"
        f"metrics: {{listen: '127.0.0.1:{metrics}'}}\n"
        "lists: {starter: false}\n"
        "household: {default_profile: kid}\n"
        f"profiles: [{{name: kid, age: 10, deny: [{deny}]}}]\n")


async def test_two_workers_share_the_port_reload_restart_and_stop(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        for name in ("example.org", "one.example", "two.example"):
            up.add(name, "A", "192.0.2.1")
        port, metrics = free_port(), free_tcp_ports(2)
        config = tmp_path / "config.yaml"
        write_config(config, port, up.url("udp"), metrics, deny="one.example")
        async with serving("serve", "--config", str(config), "--workers", "2",
                           data_dir=tmp_path / "data") as proc:
            try:
                await wait_answering(port)
                # Both workers answer, and both block.
                await until_every_worker_counts(port, metrics, 2, "example.org", answered)
                await until_every_worker_counts(port, metrics, 2, "one.example", blocked,
                                                "familydns_blocked_total")
                pids = workers_of(proc.pid)
                assert sorted(pids) == [0, 1]

                # SIGHUP reaches both: the new deny list applies in each.
                async def reloads() -> list[float]:
                    return [await scrape(metrics + i, "familydns_reloads_total", result="ok")
                            for i in range(2)]

                before = await reloads()
                write_config(config, port, up.url("udp"), metrics, deny="two.example")
                proc.send_signal(signal.SIGHUP)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + TIMEOUT
                while not all(a > b for a, b in zip(await reloads(), before)):
                    assert loop.time() < deadline, "a worker did not reload"
                    await asyncio.sleep(0.1)
                await until_every_worker_counts(port, metrics, 2, "two.example", blocked,
                                                "familydns_blocked_total")
                await until_every_worker_counts(port, metrics, 2, "one.example", answered)

                # A worker killed outright is restarted and answers again.
                os.kill(pids[1], signal.SIGKILL)
                deadline = loop.time() + TIMEOUT
                while workers_of(proc.pid).get(1) in (None, pids[1]):
                    assert loop.time() < deadline, "worker 1 was not restarted"
                    await asyncio.sleep(0.1)
                await until_every_worker_counts(port, metrics, 2, "two.example", blocked,
                                                "familydns_blocked_total")
                pids = workers_of(proc.pid)

                # SIGTERM: every worker drains and exits, then the supervisor, with 0.
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), TIMEOUT)
            finally:
                for pid in workers_of(proc.pid).values():
                    os.kill(pid, signal.SIGKILL)
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert code == 0, log
        assert not any(running(pid) for pid in pids.values()), log
        assert "worker 1 (pid" in log and "was killed by SIGKILL; restarting it" in log
        assert log.count("policy reloaded") >= 2, log
        assert "familydns[worker 1]" in log


async def test_workers_stop_when_the_supervisor_dies(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        up.add("example.org", "A", "192.0.2.1")
        port = free_port()
        async with serving("serve", "--listen", f"127.0.0.1:{port}", "--upstream",
                           up.url("udp"), "--metrics", "off", "--workers", "2",
                           data_dir=tmp_path) as proc:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT
            while len(pids := workers_of(proc.pid)) < 2:
                assert loop.time() < deadline
                await asyncio.sleep(0.1)
            await wait_answering(port)
            proc.kill()
            # Not proc.wait(): it also waits for the pipes the workers inherited.
            while any(running(pid) for pid in pids.values()):
                assert loop.time() < deadline, "orphaned workers kept running"
                await asyncio.sleep(0.1)
            await asyncio.wait_for(proc.wait(), TIMEOUT)


async def test_workers_with_port_0_are_a_config_error_naming_the_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server: {listen: ['127.0.0.1:0'], workers: 2}\n"
                      "metrics: {listen: null}\n")
    proc = await start_process("serve", "--config", str(config), data_dir=tmp_path)
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert "server.listen[0]: port 0 cannot be shared with server.workers: 2" in err.decode()


async def test_a_taken_port_fails_before_any_worker_starts(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        proc = await start_process("serve", "--listen", f"127.0.0.1:{port}", "--metrics",
                                   "off", "--workers", "2", data_dir=tmp_path)
        _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (UDP)" in err.decode()


async def test_a_secondary_worker_follows_the_lists_worker_0_downloads(tmp_path: Path) -> None:
    """Only worker 0 downloads; the others reload when its new copies have settled."""
    copy = tmp_path / "lists" / "extra.txt"
    copy.parent.mkdir(parents=True)
    copy.write_text("one.example\n")
    config = load_config_data({
        "server": {"listen": ["127.0.0.1:0"]}, "metrics": {"listen": None},
        "upstreams": ["udp://127.0.0.1:9"],
        "lists": {"starter": False, "sources": [{
            "name": "extra", "category": "adult", "url": "https://lists.invalid/extra",
            "format": "domains"}]}})
    app = App(lambda: config, tmp_path, use_store=False, worker=1)
    await app.start()
    try:
        assert app.matcher.match("one.example") and not app.matcher.match("two.example")
        await app.follow_lists()
        assert app.matcher.match("one.example")  # nothing changed: no reload
        copy.write_text("two.example\n")
        os.utime(copy, ns=(1, 1))
        await app.follow_lists()  # changed: one more look, for the download to settle
        assert app.matcher.match("one.example")
        await app.follow_lists()
        assert app.matcher.match("two.example") and not app.matcher.match("one.example")
    finally:
        await app.stop()
