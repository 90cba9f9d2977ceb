"""familydns as a parent runs it: a real process, signals, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from tests.conftest import rrset_texts
from tests.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@contextlib.asynccontextmanager
async def serving(*args: str, data_dir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A familydns process that is killed on the way out if the test did not stop it."""
    proc = await start_process(*args, data_dir=data_dir)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def start_process(*args: str, data_dir: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "FAMILYDNS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "familydns", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def wait_answering(port: int, timeout: float = 10.0) -> dns.message.Message:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    q = dns.message.make_query("example.org", "A")
    while True:
        try:
            return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=0.3)
        except (dns.exception.Timeout, ConnectionRefusedError, OSError):
            if loop.time() > deadline:
                raise


async def read_until(stream: asyncio.StreamReader, text: str) -> str:
    """Lines of ``stream`` up to and including the first that contains ``text``."""
    seen = ""
    while text not in seen:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"{text!r} never came:\n{seen}")
        seen += line.decode()
    return seen


async def test_serve_answers_reloads_on_sighup_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        up.add("example.org", "A", "192.0.2.1")
        port = free_port()
        async with serving(
                "serve", "--listen", f"127.0.0.1:{port}", "--upstream", up.url("udp"),
                "--metrics", "off", data_dir=tmp_path) as proc:
            reply = await wait_answering(port)
            assert rrset_texts(reply, "A") == ["192.0.2.1"]
            proc.send_signal(signal.SIGHUP)
            for _ in range(20):
                reply = await wait_answering(port)
                assert rrset_texts(reply, "A") == ["192.0.2.1"]
            # The reload runs beside the queries and may take longer than 20 of them.
            assert proc.stderr is not None
            log = await asyncio.wait_for(read_until(proc.stderr, "policy reloaded"), 10)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 10)
        log += (await proc.stderr.read()).decode()
        assert code == 0, log
        assert (tmp_path).is_dir()


async def test_serve_with_a_bad_config_exits_1_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams: ['htp://1.2.3.4']\n")
    proc = await start_process("serve", "--config", str(bad), data_dir=tmp_path)
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert "upstreams[0]: unknown scheme 'htp'" in err.decode()


async def test_a_bad_config_on_sighup_keeps_the_running_policy(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        up.add("example.org", "A", "192.0.2.1")
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"server: {{listen: ['127.0.0.1:{port}']}}\n"
                          f"upstreams: ['{up.url('udp')}']\nmetrics: {{listen: null}}\n")
        async with serving("serve", "--config", str(config), data_dir=tmp_path) as proc:
            await wait_answering(port)
            config.write_text("upstreams: [oops\n")
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            reply = await wait_answering(port)
            assert rrset_texts(reply, "A") == ["192.0.2.1"]
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "reload failed, keeping the previous policy" in log
        assert "invalid YAML" in log


async def test_drops_root_to_the_configured_user_after_binding(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    async with FakeUpstream() as up:
        up.add("example.org", "A", "192.0.2.1")
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"server: {{listen: ['127.0.0.1:{port}'], user: nobody}}\n"
                          f"upstreams: ['{up.url('udp')}']\nmetrics: {{listen: null}}\n")
        async with serving("serve", "--config", str(config),
                           data_dir=tmp_path / "data") as proc:
            reply = await wait_answering(port)
            assert rrset_texts(reply, "A") == ["192.0.2.1"]
            status = Path(f"/proc/{proc.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4
            assert (tmp_path / "data" / "familydns.db").stat().st_uid == nobody.pw_uid
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_profiles_that_cannot_compile_exit_1_without_hanging(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("profiles: [{name: kid, age: 9, block: [candy]}]\n"
                      "metrics: {listen: null}\nserver: {listen: ['127.0.0.1:0']}\n")
    proc = await start_process("serve", "--config", str(config), data_dir=tmp_path / "d")
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert "profiles[0].block[0]" in err.decode()
