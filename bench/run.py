#!/usr/bin/env python3
"""familydns against unbound and dnsmasq: throughput, latency, start-up, memory, reload.

``make bench`` runs this with the defaults (about 10 minutes); ``bench/README.md`` says
what each number means. Quick run: ``python bench/run.py --sizes 10000 --duration 3``.

Layout of one run (2 cores): each target in turn is pinned to core 0; dnsperf, the
latency client and the upstream (a dnsmasq answering every name from memory) share
core 1; this script pins itself to core 1 too and sleeps while measuring. Every process
started here is stopped at the end, also on Ctrl-C or an error. Raw output of every step
goes to ``bench/out/<run>/``; the summary to ``bench/results/latest.{md,json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import dnsload
import gen

MIXES = ("hot", "cold", "blocked", "realistic")
TARGETS = ("familydns", "unbound", "dnsmasq")
TOOLS = {"dnsperf": "dnsperf", "unbound": "unbound", "dnsmasq": "dnsmasq-base",
         "taskset": "util-linux"}
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
UPSTREAM_ANSWER = "192.0.2.1"
NXDOMAIN = 3


class BenchError(Exception):
    """A step failed; the message says which and where its output is."""


# --------------------------------------------------------------------------- helpers

_LOG: list[Path] = []


def say(msg: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    for path in _LOG:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def ensure_tools(install: bool) -> dict[str, str]:
    """dnsperf, unbound, dnsmasq (and taskset): installed with apt-get when missing."""
    missing = [pkg for tool, pkg in TOOLS.items() if which(tool) is None]
    if missing and install and os.geteuid() == 0 and which("apt-get"):
        pkgs = sorted(set(missing))
        say(f"installing {' '.join(pkgs)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", *pkgs], check=True, env=env)
    paths = {}
    for tool, pkg in TOOLS.items():
        path = which(tool)
        if path is None:
            raise BenchError(f"{tool} is missing: apt-get install {pkg} (as root)")
        paths[tool] = path
    return paths


_USED_PORTS: set[int] = set()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now, never handed out twice."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            if port in _USED_PORTS:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        _USED_PORTS.add(port)
        return port
    raise BenchError("no free port")


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB (empty when it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""Units of the CPU times in /proc/PID/stat per second."""


def read_stat(stat: Path) -> tuple[int, float] | None:
    """(parent pid, user plus system CPU seconds of all its threads) from a
    /proc/PID/stat file; None when the process is gone or the file is garbled."""
    try:
        raw = stat.read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    try:
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process (all its threads) has used so far."""
    found = read_stat(Path(f"/proc/{pid}/stat"))
    return None if found is None else found[1]


def rss_mb(pid: int) -> float | None:
    kb = read_status(pid).get("VmRSS")
    return None if kb is None else round(kb / 1024, 1)


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)

    def version(argv: list[str], pattern: str) -> str:
        try:
            text = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return "?"
        m = re.search(pattern, text.stdout + text.stderr)
        return m.group(1) if m else "?"

    fd_version = "?"
    with contextlib.suppress(Exception):
        fd_version = subprocess.run(
            [familydns_python(), "-c", "import familydns; print(familydns.__version__)"],
            capture_output=True, text=True, timeout=30, cwd=REPO, check=False).stdout.strip() or "?"
    commit = "?"
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(REPO)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "familydns"], capture_output=True,
                               text=True, timeout=10, check=False).stdout.strip()
        if dirty:
            commit += " + uncommitted changes in familydns/"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]
        if Path("/proc/loadavg").exists() else None,
        "dnsperf": version(["dnsperf", "-h"], r"Version ([\d.]+)"),
        "unbound": version([which("unbound") or "unbound", "-V"], r"Version ([\d.]+)"),
        "dnsmasq": version([which("dnsmasq") or "dnsmasq", "--version"],
                           r"version ([\d.]+)"),
        "familydns": fd_version,
        "familydns_commit": commit,
    }


def cpu_busy_share(seconds: float = 1.0) -> float | None:
    """Share of all CPU time that was busy over ``seconds`` (other load on the machine)."""
    def snap() -> tuple[int, int]:
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return idle, sum(vals)
    try:
        i0, t0 = snap()
        time.sleep(seconds)
        i1, t1 = snap()
    except (OSError, ValueError):
        return None
    return round(1 - (i1 - i0) / max(1, t1 - t0), 3)


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far) of every process."""
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            found = read_stat(Path(entry.path, "stat"))
            if found is not None:
                out[int(entry.name)] = found
    return out


class OtherLoad(threading.Thread):
    """CPU used by processes this run did not start (other people's tests, builds...).

    A background thread reads ``/proc/*/stat`` every ``interval`` seconds and adds up the
    CPU time other processes used in between. ``mark()`` takes a reading now; the load
    between two marks is in cores (1.0 = one core fully busy). Kernel threads and
    processes that live less than ``interval`` are not seen: this is a lower bound.
    """

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(name="other-load", daemon=True)
        self.interval = interval
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._prev = self._foreign()
        self._cum = 0.0

    @staticmethod
    def _foreign() -> dict[int, float]:
        table = _proc_table()
        ours = {os.getpid()}
        changed = True
        while changed:   # every descendant of this script is ours
            changed = False
            for pid, (ppid, _cpu) in table.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        kernel = {2} | {pid for pid, (ppid, _c) in table.items() if ppid == 2}
        return {pid: cpu for pid, (_pp, cpu) in table.items()
                if pid not in ours and pid not in kernel}

    def mark(self) -> tuple[float, float]:
        """(monotonic time, CPU seconds other processes used since the start)."""
        with self._lock:
            cur = self._foreign()
            self._cum += sum(max(0.0, cpu - self._prev.get(pid, 0.0))
                             for pid, cpu in cur.items())
            self._prev = cur
            return time.monotonic(), self._cum

    @staticmethod
    def cores(start: tuple[float, float], end: tuple[float, float]) -> float | None:
        elapsed = end[0] - start[0]
        return None if elapsed <= 0 else round((end[1] - start[1]) / elapsed, 2)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            with contextlib.suppress(Exception):
                self.mark()

    def halt(self) -> None:
        self._halt.set()


def familydns_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# --------------------------------------------------------------------------- processes

class Procs:
    """Every process this run started, so all of them are stopped whatever happens."""

    def __init__(self, cores: tuple[str, str] | None) -> None:
        self.cores = cores
        self.live: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}

    def pin(self, argv: list[str], which_core: int) -> list[str]:
        if self.cores is None:
            return argv
        return ["taskset", "-c", self.cores[which_core], *argv]

    def start(self, name: str, argv: list[str], out: Path, core: int | None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        full = self.pin(argv, core) if core is not None else argv
        (out.parent).mkdir(parents=True, exist_ok=True)
        (out.with_suffix(".cmd")).write_text(" ".join(full) + "\n")
        stdout = out.with_suffix(".stdout").open("wb")
        stderr = out.with_suffix(".stderr").open("wb")
        try:
            proc = subprocess.Popen(full, stdout=stdout, stderr=stderr, cwd=cwd,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            stdout.close()
            stderr.close()
        self.live[proc.pid] = (name, proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 15.0,
             sig: int = signal.SIGTERM) -> int | None:
        """Signal the process group we created for it; SIGKILL after ``grace`` seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Anything left in its group (there should be none) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.live.pop(proc.pid, None)
        return proc.returncode

    def stop_all(self) -> None:
        for _pid, (name, proc) in list(self.live.items()):
            with contextlib.suppress(Exception):
                self.stop(proc, grace=5.0)
                say(f"stopped {name} (pid {proc.pid})")

    def run(self, name: str, argv: list[str], out: Path, core: int | None,
            timeout: float) -> tuple[int, str]:
        """Run to completion (killed after ``timeout``); returns (exit code, stdout)."""
        proc = self.start(name, argv, out, core)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc, grace=2.0)
            raise BenchError(f"{name} did not finish in {timeout:.0f} s "
                             f"(see {out.with_suffix('.stderr')})") from None
        self.live.pop(proc.pid, None)
        return proc.returncode, out.with_suffix(".stdout").read_text(errors="replace")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- dnsperf

_DNSPERF_FIELDS = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "run_time_s": r"Run time \(s\):\s+([\d.]+)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "avg_latency_s": r"Average Latency \(s\):\s+([\d.]+)",
    "min_latency_s": r"Average Latency \(s\):\s+[\d.]+\s+\(min\s+([\d.]+)",
    "max_latency_s": r"Average Latency \(s\):\s+[\d.]+\s+\(min\s+[\d.]+,\s+max\s+([\d.]+)\)",
    "stddev_latency_s": r"Latency StdDev \(s\):\s+([\d.]+)",
}


def parse_dnsperf(text: str) -> dict[str, Any]:
    """The statistics block of dnsperf's output, exactly; ValueError when it is absent."""
    out: dict[str, Any] = {}
    for key, rx in _DNSPERF_FIELDS.items():
        m = re.search(rx, text)
        if m:
            out[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
    for key in ("sent", "completed", "lost", "qps"):
        if key not in out:
            raise ValueError(f"dnsperf output has no '{key}' line")
    out["qps"] = float(out["qps"])
    rcodes: dict[str, int] = {}
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        for code, count in re.findall(r"([A-Z0-9]+) (\d+) \(", m.group(1)):
            rcodes[code] = int(count)
    out["rcodes"] = rcodes
    return out


def check_rcodes(mix: str, rcodes: dict[str, int]) -> str | None:
    """A warning when the answers are not what this mix must get (blocking broken, say)."""
    total = sum(rcodes.values())
    if total == 0:
        return "no answers"
    nx = rcodes.get("NXDOMAIN", 0) / total
    ok = rcodes.get("NOERROR", 0) / total
    if mix in ("hot", "cold") and ok < 0.99:
        return f"only {ok:.1%} NOERROR ({rcodes})"
    if mix == "blocked" and nx < 0.99:
        return f"only {nx:.1%} NXDOMAIN ({rcodes})"
    if mix in ("realistic", "latency", "reload") and not 0.07 <= nx <= 0.13:
        return f"{nx:.1%} NXDOMAIN, expected about 10% ({rcodes})"
    return None


def client_starved(load: dict[str, Any]) -> str | None:
    """A warning when the fixed-rate client itself was kept off the CPU (other load)."""
    skipped = load.get("skipped_slots") or 0
    if skipped and skipped >= 0.01 * (load.get("sent", 0) + skipped):
        return (f"the load client got no CPU for up to {load.get('longest_stall_ms')} ms "
                f"and skipped {skipped} of its send slots: other load on its core, these "
                "numbers are unreliable")
    return None


# --------------------------------------------------------------------------- targets

class Target:
    """How to configure and start one resolver for one list size."""

    name = ""
    restart_for_ready = False   # measure a second start on the same data

    def __init__(self, ctx: Run, size: int, work: Path, port: int) -> None:
        self.ctx, self.size, self.work, self.port = ctx, size, work, port

    def prepare(self) -> None: ...

    def argv(self) -> list[str]:
        raise NotImplementedError


class FamilyDNSTarget(Target):
    name = "familydns"
    restart_for_ready = True

    def prepare(self) -> None:
        self.data_dir = self.work / "data"
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        self.metrics_port = free_port()
        # familydns reads local lists only from inside its data directory.
        listed = self.data_dir / "bench" / "gambling.txt"
        listed.parent.mkdir()
        shutil.copyfile(self.ctx.data / f"list-{self.size}.txt", listed)
        config = f"""\
# familydns benchmark config: a child's profile (age 10) is the default profile, so
# profiles, categories, safe search, metrics and the blocked-lookup log are all on.
# All load comes from one address (127.0.0.1), so the per-client limits are lifted;
# unbound and dnsmasq have no such limits by default either.
server:
  listen: ["127.0.0.1:{self.port}"]
  rate_limit: 0
  max_inflight_per_client: 2048
upstreams:
  servers: ["udp://127.0.0.1:{self.ctx.upstream_port}"]
metrics:
  listen: "127.0.0.1:{self.metrics_port}"
household:
  name: bench
  timezone: UTC
  default_profile: kid
profiles:
  - name: kid
    age: 10
log:
  level: info
lists:
  starter: true
  sources:
    - name: bench-gambling
      category: gambling
      path: bench/gambling.txt       # relative to the data directory
      format: domains
      scope: subtree
"""
        self.config = self.work / "config.yaml"
        self.config.write_text(config)

    def argv(self) -> list[str]:
        return [familydns_python(), "-m", "familydns", "--data-dir", str(self.data_dir),
                "--config", str(self.config), "serve"]


class UnboundTarget(Target):
    name = "unbound"

    def prepare(self) -> None:
        zones = self.ctx.data / f"unbound-{self.size}.conf"
        self.conf = self.work / "unbound.conf"
        self.conf.write_text(f"""\
server:
    interface: 127.0.0.1
    port: {self.port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    so-reuseport: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{self.work}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    qname-minimisation: no
    prefetch: no
    msg-cache-size: 64m
    rrset-cache-size: 128m
    num-queries-per-thread: 4096
    outgoing-range: 8192
    include: "{zones}"
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{self.ctx.upstream_port}
""")

    def argv(self) -> list[str]:
        return [self.ctx.tools["unbound"], "-d", "-c", str(self.conf)]


class DnsmasqTarget(Target):
    name = "dnsmasq"

    def argv(self) -> list[str]:
        return [self.ctx.tools["dnsmasq"], "--keep-in-foreground", "--log-facility=-",
                "--pid-file=", f"--port={self.port}", "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts",
                f"--server=127.0.0.1#{self.ctx.upstream_port}",
                "--cache-size=10000", "--dns-forward-max=1000",
                f"--conf-file={self.ctx.data / f'dnsmasq-{self.size}.conf'}"]


TARGET_CLASSES: dict[str, type[Target]] = {
    "familydns": FamilyDNSTarget, "unbound": UnboundTarget, "dnsmasq": DnsmasqTarget}


# --------------------------------------------------------------------------- the run

class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        ncpu = len(os.sched_getaffinity(0))
        self.cores: tuple[str, str] | None = None
        if ncpu >= 2 and which("taskset"):
            allowed = sorted(os.sched_getaffinity(0))
            self.cores = (str(allowed[0]), str(allowed[1]))
        self.procs = Procs(self.cores)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = args.out_dir / stamp
        self.out.mkdir(parents=True, exist_ok=True)
        _LOG.append(self.out / "run.log")
        self.data = args.data_dir / f"seed{args.seed}"
        self.tools: dict[str, str] = {}
        self.upstream_port = 0
        self.results: dict[str, Any] = {"sizes": {}, "notes": [], "complete": False}
        self.other_load = OtherLoad()

    # ---- small steps

    def dnsperf(self, name: str, port: int, qfile: Path, out: Path, *, duration: float,
                once: bool = False, rate: int | None = None) -> dict[str, Any]:
        a = self.args
        argv = [self.tools["dnsperf"], "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
                "-l", f"{duration:g}", "-c", str(a.clients), "-q", str(a.outstanding),
                "-t", f"{a.timeout:g}", "-T", "1"]
        if once:
            argv += ["-n", "1"]
        if rate:
            argv += ["-Q", str(rate)]
        code, text = self.procs.run(f"dnsperf {name}", argv, out, core=1,
                                    timeout=duration + a.timeout + 60)
        try:
            stats = parse_dnsperf(text)
        except ValueError as exc:
            raise BenchError(f"dnsperf {name} (exit {code}): {exc}; see {out}.stdout/.stderr\n"
                             f"{tail(out.with_suffix('.stderr'))}") from None
        stats["exit"] = code
        return stats

    def dnsload(self, port: int, qfile: Path, out: Path, rate: float,
                duration: float) -> subprocess.Popen[bytes]:
        argv = [familydns_python(), str(HERE / "dnsload.py"), "--port", str(port),
                "--file", str(qfile), "--rate", f"{rate:g}", "--duration", f"{duration:g}",
                "--timeout", f"{self.args.timeout:g}", "--out", str(out.with_suffix(".json"))]
        return self.procs.start("dnsload", argv, out, core=1)

    def wait_dnsload(self, proc: subprocess.Popen[bytes], out: Path,
                     timeout: float) -> dict[str, Any]:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.procs.stop(proc, grace=2.0)
            raise BenchError(f"latency client did not finish (see {out}.stderr)") from None
        self.procs.live.pop(proc.pid, None)
        try:
            return json.loads(out.with_suffix(".json").read_text())
        except (OSError, ValueError):
            raise BenchError(f"latency client failed (exit {proc.returncode}):\n"
                             f"{tail(out.with_suffix('.stderr'))}") from None

    def wait_ready(self, proc: subprocess.Popen[bytes], port: int, name: str, t0: float,
                   log: Path) -> float:
        """Seconds from process start until the list's last domain answers NXDOMAIN."""
        deadline = t0 + self.args.ready_timeout
        answering: tuple[float, tuple[int, int]] | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"exited with code {proc.returncode} before it was ready:\n"
                                 f"{tail(log)}")
            answer = dnsload.query_rcode("127.0.0.1", port, name, timeout=0.1)
            if answer is not None and answer[0] == NXDOMAIN:
                return time.monotonic() - t0
            if answer is None:
                time.sleep(0.005)
            else:
                if answering is None:
                    answering = (time.monotonic() - t0, answer)
                time.sleep(0.02)
        why = ""
        if answering is not None:
            code = dnsload.RCODES.get(answering[1][0], answering[1][0])
            why = (f" (answering since {answering[0]:.1f} s, but {name} got {code} with "
                   f"{answering[1][1]} answers instead of NXDOMAIN: is the list loaded?)")
        raise BenchError(f"the last listed name was not blocked after "
                         f"{self.args.ready_timeout:.0f} s{why}:\n{tail(log)}")

    def start_target(self, target: Target, label: str, out: Path, last: str,
                     ) -> tuple[subprocess.Popen[bytes], float]:
        t0 = time.monotonic()
        proc = self.procs.start(target.name, target.argv(), out / label, core=0)
        try:
            ready = self.wait_ready(proc, target.port, last, t0,
                                    (out / label).with_suffix(".stderr"))
        except BaseException:
            self.procs.stop(proc)
            raise
        return proc, ready

    # ---- upstream

    def start_upstream(self) -> None:
        self.upstream_port = free_port()
        argv = [self.tools["dnsmasq"], "--keep-in-foreground", "--log-facility=-",
                "--pid-file=", f"--port={self.upstream_port}", "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--cache-size=0",
                "--local-ttl=3600", f"--address=/#/{UPSTREAM_ANSWER}",
                "--dns-forward-max=1000"]
        self.upstream = self.procs.start("upstream dnsmasq", argv, self.out / "upstream", core=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = dnsload.query_rcode("127.0.0.1", self.upstream_port, "probe.example.com")
            if answer == (0, 1):
                say(f"upstream dnsmasq answering on 127.0.0.1:{self.upstream_port}")
                return
            time.sleep(0.05)
        raise BenchError(f"upstream dnsmasq did not answer:\n"
                         f"{tail((self.out / 'upstream').with_suffix('.stderr'))}")

    # ---- one target at one size

    def bench_target(self, name: str, size: int) -> dict[str, Any]:
        out = self.out / f"{size}-{name}"
        out.mkdir(parents=True, exist_ok=True)
        target = TARGET_CLASSES[name](self, size, out, free_port())
        target.prepare()
        last = (self.data / f"last-{size}.txt").read_text().strip()
        res: dict[str, Any] = {"port": target.port, "mixes": {}, "warnings": []}

        proc, ready = self.start_target(target, "start1", out, last)
        res["ready_s"] = round(ready, 3)
        res["rss_loaded_first_mb"] = rss_mb(proc.pid)
        say(f"{name} @ {size:,}: ready in {ready:.2f} s, RSS {res['rss_loaded_first_mb']} MB")
        if target.restart_for_ready:
            self.procs.stop(proc)
            time.sleep(0.2)
            proc, ready2 = self.start_target(target, "start2", out, last)
            res["ready2_s"] = round(ready2, 3)
            say(f"{name} @ {size:,}: second start (same data dir) ready in {ready2:.2f} s")
        time.sleep(0.5)
        res["rss_loaded_mb"] = rss_mb(proc.pid)
        try:
            self._measure(target, proc, res, out)
        finally:
            code = self.procs.stop(proc)
            res["exit_code"] = code
        return res

    def _warm(self, target: Target, out: Path, label: str) -> None:
        stats = self.dnsperf(f"{target.name} warm", target.port, self.data / "hot.txt",
                             out / label, duration=30, once=True, rate=5000)
        if stats["completed"] < stats["sent"]:
            self.note(f"{target.name} @ {target.size:,}: warming the hot names lost "
                      f"{stats['lost']} of {stats['sent']} queries")

    def _measure(self, target: Target, proc: subprocess.Popen[bytes], res: dict[str, Any],
                 out: Path) -> None:
        a, size, name = self.args, target.size, target.name
        hot_name = (self.data / "hot.txt").read_text().split()[0]
        sanity = dnsload.query_rcode("127.0.0.1", target.port, hot_name, timeout=2.0)
        if sanity is None or sanity[0] != 0 or sanity[1] < 1:
            res["warnings"].append(f"{hot_name} answered {sanity} (expected NOERROR with "
                                   "an address): is the upstream reachable?")
        other = self.other_load.mark()
        self._warm(target, out, "warm")
        files = {"hot": "hot.txt", "cold": "cold.txt", "blocked": f"blocked-{size}.txt",
                 "realistic": f"realistic-{size}.txt"}
        for mix in a.mixes:
            if mix == "realistic":
                self._warm(target, out, "rewarm-realistic")
            mix_other = self.other_load.mark()
            stats = self.dnsperf(f"{name} {mix}", target.port, self.data / files[mix],
                                 out / f"mix-{mix}", duration=a.duration,
                                 once=mix in ("cold", "realistic"))
            stats["other_load_cores"] = OtherLoad.cores(mix_other, self.other_load.mark())
            warn = check_rcodes(mix, stats["rcodes"])
            if warn:
                res["warnings"].append(f"{mix}: {warn}")
            res["mixes"][mix] = stats
            say(f"{name} @ {size:,}: {mix:9s} {stats['qps']:>10,.0f} q/s  "
                f"lost {stats['lost']}  avg {stats.get('avg_latency_s', 0) * 1000:.2f} ms"
                + (f"  WARNING {warn}" if warn else ""))
            if proc.poll() is not None:
                raise BenchError(f"{name} exited (code {proc.returncode}) during the {mix} run")
        if a.latency_duration > 0:
            self._warm(target, out, "rewarm-latency")
            cpu_before = cpu_seconds(proc.pid)
            lp = self.dnsload(target.port, self.data / f"latency-{size}.txt",
                              out / "latency", a.latency_rate, a.latency_duration)
            lat = self.wait_dnsload(lp, out / "latency", a.latency_duration + a.timeout + 60)
            cpu_after = cpu_seconds(proc.pid)
            lat = {k: v for k, v in lat.items() if k not in ("buckets", "lost_at")}
            if cpu_before is not None and cpu_after is not None and lat.get("answered"):
                lat["cpu_us_per_query"] = round(
                    (cpu_after - cpu_before) * 1e6 / lat["answered"], 1)
            warn = check_rcodes("latency", lat["rcodes"])
            if warn:
                res["warnings"].append(f"latency run: {warn}")
            warn = client_starved(lat)
            if warn:
                res["warnings"].append(f"latency run: {warn}")
            res["latency"] = lat
            say(f"{name} @ {size:,}: {a.latency_rate:g} q/s fixed: p50 {lat['p50_ms']} ms, "
                f"p90 {lat['p90_ms']} ms, p99 {lat['p99_ms']} ms, lost {lat['lost']}")
        res["other_load_cores"] = OtherLoad.cores(other, self.other_load.mark())
        if (res["other_load_cores"] or 0) >= 0.1:
            self.note(f"{name} @ {size:,}: other processes used {res['other_load_cores']:.2f} "
                      "cores on average during its runs: its numbers are skewed")
        res["rss_after_mb"] = rss_mb(proc.pid)
        res["hwm_mb"] = round(read_status(proc.pid).get("VmHWM", 0) / 1024, 1) or None
        if name == "familydns" and a.reload:
            res["reload"] = self._reload(target, proc, out)
        if name == "familydns":
            with contextlib.suppress(Exception):
                port = target.metrics_port  # type: ignore[attr-defined]
                url = f"http://127.0.0.1:{port}/metrics"
                body = urllib.request.urlopen(url, timeout=5).read()
                (out / "metrics.txt").write_bytes(body)
                res["metrics_scraped"] = True
        if proc.poll() is not None:
            raise BenchError(f"{name} exited (code {proc.returncode}) during the runs")

    def _reload(self, target: Target, proc: subprocess.Popen[bytes],
                out: Path) -> dict[str, Any]:
        """SIGHUP under a steady realistic load: lost queries, peak RSS vs steady."""
        a = self.args
        log = (out / "start2").with_suffix(".stderr")
        steady_samples = []
        for _ in range(10):
            steady_samples.append(read_status(proc.pid).get("VmRSS", 0))
            time.sleep(0.05)
        lp = self.dnsload(target.port, self.data / f"reload-{target.size}.txt",
                          out / "reload", a.latency_rate, a.reload_timeout + 30)
        samples: list[tuple[float, int]] = []

        def sample_for(seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                samples.append((time.monotonic(), read_status(proc.pid).get("VmRSS", 0)))
                if until():
                    return True
                time.sleep(0.05)
            return False

        sample_for(2.0)
        under_load = [kb for _t, kb in samples]
        offset = log.stat().st_size
        t_hup = time.monotonic()
        os.kill(proc.pid, signal.SIGHUP)
        outcome: dict[str, str] = {}

        def reloaded() -> bool:
            text = log.read_bytes()[offset:].decode(errors="replace")
            m = re.search(r"policy reloaded|reload failed[^\n]*", text)
            if m:
                outcome["line"] = m.group(0)
            return bool(m)

        done = sample_for(a.reload_timeout, reloaded)
        t_done = time.monotonic()
        sample_for(1.0)
        self.procs.stop(lp, grace=a.timeout + 15, sig=signal.SIGINT)
        try:
            load = json.loads((out / "reload").with_suffix(".json").read_text())
        except (OSError, ValueError):
            raise BenchError(f"reload load client failed:\n"
                             f"{tail((out / 'reload').with_suffix('.stderr'))}") from None
        t0 = load["t0_monotonic"]
        w0, w1 = t_hup - t0, t_done - t0 + 0.5
        lost_in = sum(1 for s in load["lost_at"] if w0 <= s <= w1)
        width = load["bucket_seconds"]
        window = [b for k, b in enumerate(load["buckets"]) if w0 - width <= k * width <= w1]
        steady = statistics.median(steady_samples + under_load) / 1024
        peak = max(kb for t, kb in samples if t >= t_hup) / 1024
        res = {
            "completed": done and "failed" not in outcome.get("line", ""),
            "log_line": outcome.get("line"),
            "duration_s": round(t_done - t_hup, 3) if done else None,
            "steady_rss_mb": round(steady, 1),
            "peak_rss_mb": round(peak, 1),
            "peak_over_steady": round(peak / steady, 3) if steady else None,
            "rate": a.latency_rate,
            "sent": load["sent"],
            "lost_total": load["lost"],
            "lost_during_reload": lost_in,
            "sent_during_reload": sum(b[0] for b in window),
            "max_latency_during_reload_ms": max((b[3] for b in window), default=None),
            "p99_ms_whole_run": load["p99_ms"],
            "rcodes": load["rcodes"],
        }
        after = dnsload.query_rcode("127.0.0.1", target.port,
                                    (self.data / f"last-{target.size}.txt").read_text().strip(),
                                    timeout=2.0)
        res["blocking_after_reload"] = bool(after and after[0] == NXDOMAIN)
        res["skipped_slots"] = load.get("skipped_slots")
        res["client_warning"] = client_starved(load)
        say(f"familydns @ {target.size:,}: reload {res['duration_s']} s, lost "
            f"{lost_in} during it ({load['lost']} in the whole run), peak RSS "
            f"{res['peak_rss_mb']} MB = {res['peak_over_steady']}x steady "
            f"{res['steady_rss_mb']} MB, worst latency {res['max_latency_during_reload_ms']} ms")
        return res

    def note(self, text: str) -> None:
        self.results["notes"].append(text)
        say("note: " + text)

    # ---- whole run

    def main(self) -> None:
        a = self.args
        self.tools = ensure_tools(not a.no_install)
        if self.cores is None:
            self.note("fewer than 2 usable cores (or no taskset): nothing is pinned")
        else:
            os.sched_setaffinity(0, {int(self.cores[1])})
        self.results["machine"] = machine_info()
        busy = cpu_busy_share(1.0)
        self.results["machine"]["cpu_busy_before_run"] = busy
        if busy is not None and busy > 0.15:
            self.note(f"the machine was {busy:.0%} busy before the run started: other load "
                      "skews the numbers (run on an idle machine for comparable results)")
        self.results["params"] = {
            "sizes": a.sizes, "mixes": a.mixes, "targets": a.targets, "duration_s": a.duration,
            "clients": a.clients, "outstanding": a.outstanding, "timeout_s": a.timeout,
            "latency_rate": a.latency_rate, "latency_duration_s": a.latency_duration,
            "reload": a.reload, "seed": a.seed,
            "cores": {"targets": self.cores[0] if self.cores else None,
                      "load_and_upstream": self.cores[1] if self.cores else None},
            "out_dir": str(self.out),
        }
        gen.ensure_data(self.data, a.seed, a.sizes, say=say)
        self.other_load.start()
        self.start_upstream()
        if a.ceiling:
            stats = self.dnsperf("upstream cold", self.upstream_port, self.data / "cold.txt",
                                 self.out / "upstream-ceiling", duration=a.duration, once=True)
            self.results["upstream_ceiling"] = stats
            say(f"upstream alone (cold names, same core as dnsperf): {stats['qps']:,.0f} q/s")
        started = time.monotonic()
        for size in a.sizes:
            per = self.results["sizes"].setdefault(str(size), {})
            for name in a.targets:
                say(f"--- {name} with {size:,} listed names")
                try:
                    per[name] = self.bench_target(name, size)
                except BenchError as exc:
                    per[name] = {"error": str(exc)}
                    say(f"{name} @ {size:,} FAILED: {exc}")
                self.save(final=False)
        self.results["elapsed_s"] = round(time.monotonic() - started, 1)
        self.results["complete"] = True

    def save(self, final: bool) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1) + "\n")
        if final:
            md = render_markdown(self.results)
            (self.out / "results.md").write_text(md)
            if self.results.get("complete"):
                res_dir = self.args.results_dir
                res_dir.mkdir(parents=True, exist_ok=True)
                (res_dir / "latest.json").write_text(json.dumps(self.results, indent=1) + "\n")
                (res_dir / "latest.md").write_text(md)
                say(f"results: {res_dir / 'latest.md'} and latest.json; raw logs: {self.out}")
            else:
                say(f"run incomplete: partial results in {self.out} (latest.md left as it was)")


# --------------------------------------------------------------------------- report

def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _ratio(fd: Any, peer: Any) -> float | None:
    if not isinstance(fd, (int, float)) or not isinstance(peer, (int, float)) or peer == 0:
        return None
    return fd / peer


Getter = Callable[[dict[str, Any]], Any]


def _mix_get(mix: str, key: str) -> Getter:
    return lambda r: r.get("mixes", {}).get(mix, {}).get(key)


def _lat_get(key: str) -> Getter:
    return lambda r: (r.get("latency") or {}).get(key)


def _metric_rows(mixes: list[str]) -> list[tuple[str, Getter, int, bool]]:
    """(label, getter, digits, higher is better) of each row of a size's table."""
    rows: list[tuple[str, Getter, int, bool]] = []
    rows += [(f"q/s {mix}", _mix_get(mix, "qps"), 0, True) for mix in mixes]
    rows += [(f"lost {mix} (max rate)", _mix_get(mix, "lost"), 0, False) for mix in mixes]
    rows += [(f"{p} ms @ fixed rate", _lat_get(f"{p}_ms"), 3, False)
             for p in ("p50", "p90", "p99")]
    rows += [
        ("lost @ fixed rate", lambda r: (r.get("latency") or {}).get("lost"), 0, False),
        ("CPU µs per query @ fixed rate", _lat_get("cpu_us_per_query"), 1, False),
        ("ready s, first start", lambda r: r.get("ready_s"), 2, False),
        ("ready s, second start (peers: their only start)",
         lambda r: r.get("ready2_s", r.get("ready_s")), 2, False),
        ("RSS MB after loading", lambda r: r.get("rss_loaded_mb"), 1, False),
        ("RSS MB after the runs", lambda r: r.get("rss_after_mb"), 1, False),
        ("other processes' CPU during the runs (cores)",
         lambda r: r.get("other_load_cores"), 2, False),
    ]
    return rows


def evaluate(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each goal of the issue, at the largest size run."""
    sizes = sorted(int(s) for s in results.get("sizes", {}))
    if not sizes:
        return []
    big, small = sizes[-1], sizes[0]
    at = "" if big == 1_000_000 else f" (at {big:,} names, not 1M)"
    R = results["sizes"][str(big)]
    fd = R.get("familydns", {})
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "NOT MEASURED" if ok is None else ("PASS" if ok else "FAIL")

    def qps(r: dict[str, Any], mix: str) -> Any:
        return r.get("mixes", {}).get(mix, {}).get("qps")

    for peer, mix, need in (("unbound", "realistic", 1.0), ("unbound", "cold", 1.5),
                            ("unbound", "hot", 0.8), ("unbound", "blocked", 0.8),
                            ("dnsmasq", "cold", 10.0), ("dnsmasq", "blocked", 10.0),
                            ("dnsmasq", "realistic", 10.0)):
        ratio = _ratio(qps(fd, mix), qps(R.get(peer, {}), mix))
        rows.append((f"{mix} q/s ≥ {need:g}× {peer}{at}",
                     "—" if ratio is None else f"{ratio:.2f}×",
                     verdict(None if ratio is None else ratio >= need)))
    if len(sizes) >= 2:
        worst = None
        for mix in MIXES:
            lo = qps(results["sizes"][str(small)].get("familydns", {}), mix)
            hi = qps(fd, mix)
            if lo and hi:
                drop = 1 - hi / lo
                if worst is None or drop > worst[0]:
                    worst = (drop, mix)
        label = f"q/s at {big:,} ≤ 10% below {small:,} (worst mix)"
        rows.append((label, "—" if worst is None else f"{-worst[0]:+.1%} q/s ({worst[1]})",
                     verdict(None if worst is None else worst[0] <= 0.10)))
    else:
        rows.append(("q/s at 1M ≤ 10% below 10k", "—", "NOT MEASURED (one size)"))
    rss = [v for v in (fd.get("rss_loaded_mb"), fd.get("rss_after_mb")) if v is not None]
    rows.append((f"RSS ≤ 60 MB{at}", f"{max(rss):.1f} MB" if rss else "—",
                 verdict(max(rss) <= 60 if rss else None)))
    for key, label, limit in (("ready_s", "ready ≤ 2 s, first start", 2.0),
                              ("ready2_s", "ready ≤ 0.5 s, second start (same data dir)", 0.5)):
        v = fd.get(key)
        rows.append((label + at, "—" if v is None else f"{v:.2f} s",
                     verdict(None if v is None else v <= limit)))
    p_fd = (fd.get("latency") or {}).get("p99_ms")
    p_ub = (R.get("unbound", {}).get("latency") or {}).get("p99_ms")
    rate = results.get("params", {}).get("latency_rate", 2000)
    rows.append((f"p99 @ {rate:g} q/s ≤ unbound{at}",
                 "—" if p_fd is None or p_ub is None else f"{p_fd:.3f} vs {p_ub:.3f} ms",
                 verdict(None if p_fd is None or p_ub is None else p_fd <= p_ub)))
    rl = fd.get("reload")
    if rl:
        ratio = rl.get("peak_over_steady")
        rows.append((f"reload peak RSS ≤ 1.5× steady{at}",
                     "—" if ratio is None else f"{ratio:.2f}×",
                     verdict(None if ratio is None else ratio <= 1.5)))
        ok = rl.get("completed") and rl.get("lost_during_reload") == 0
        rows.append((f"reload loses no query{at}",
                     f"{rl.get('lost_during_reload')} lost"
                     + ("" if rl.get("completed") else " (reload did not complete)"),
                     verdict(bool(ok))))
    else:
        rows.append(("reload", "—", "NOT MEASURED"))
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    p = results.get("params", {})
    lines = ["# familydns benchmark: familydns vs unbound vs dnsmasq", ""]
    if not results.get("complete"):
        lines += ["**Incomplete run** (interrupted or failed).", ""]
    lines += [
        f"- Date: {m.get('date')}",
        (f"- CPU: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB RAM; "
        f"kernel {m.get('kernel')}; Python {m.get('python')}"),
        (f"- Versions: familydns {m.get('familydns')} ({m.get('familydns_commit')}), "
        f"unbound {m.get('unbound')}, dnsmasq {m.get('dnsmasq')}, dnsperf {m.get('dnsperf')}"),
        (f"- Machine busy before the run: {_pct(m.get('cpu_busy_before_run'))} of CPU "
        f"(load average {' '.join(m.get('loadavg_at_start') or [])})"),
        (f"- Each target pinned to core {p.get('cores', {}).get('targets')}; dnsperf, the "
        f"latency client and the upstream dnsmasq on core "
        f"{p.get('cores', {}).get('load_and_upstream')}."),
        (f"- Max-rate runs: dnsperf -l {p.get('duration_s'):g} -c {p.get('clients')} "
        f"-q {p.get('outstanding')} -t {p.get('timeout_s'):g}; cold and realistic with -n 1 "
        f"(each name once). Fixed-rate runs: {p.get('latency_rate'):g} q/s for "
        f"{p.get('latency_duration_s'):g} s, realistic mix. Seed {p.get('seed')}."),
        (f"- Sizes: {', '.join(f'{s:,}' for s in p.get('sizes', []))}; mixes: "
        f"{', '.join(p.get('mixes', []))}; run took {_fmt(results.get('elapsed_s'), 0)} s."),
    ]
    ceil = results.get("upstream_ceiling")
    if ceil:
        lines.append(f"- Upstream alone (dnsperf → upstream dnsmasq, cold names): "
                     f"{ceil['qps']:,.0f} q/s: a ceiling for every target's cold numbers.")
    lines.append("")
    mixes = p.get("mixes", list(MIXES))
    for size_s, per in results.get("sizes", {}).items():
        names = [t for t in TARGETS if t in per]
        peers = [t for t in names if t != "familydns"]
        legend = ("Ratios are familydns ÷ peer: for q/s above 1× is better; for latency, "
                  "ready time and RSS below 1× is better.")
        lines += [f"## {int(size_s):,} listed names", "", legend, ""]
        head = ["metric", *names] + [f"familydns ÷ {t}" for t in peers if "familydns" in per]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for label, get, digits, _higher in _metric_rows(mixes):
            vals = [get(per[t]) if "error" not in per[t] else None for t in names]
            row = [label] + [_fmt(v, digits) for v in vals]
            if "familydns" in per:
                fdv = vals[names.index("familydns")]
                for t in peers:
                    r = (None if label.startswith(("lost", "other"))
                         else _ratio(fdv, vals[names.index(t)]))
                    row.append("—" if r is None else f"{r:.2f}×")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        for t in names:
            if "error" in per[t]:
                err = [x.strip() for x in per[t]["error"].splitlines() if x.strip()]
                brief = " / ".join(err[:1] + err[-2:] if len(err) > 3 else err)
                lines.append(f"- **{t} failed**: `{brief[:400]}`")
            for w in per[t].get("warnings", []):
                lines.append(f"- warning ({t}): {w}")
        rl = per.get("familydns", {}).get("reload")
        if rl:
            took = ("did not finish" if rl["duration_s"] is None
                    else f"took {rl['duration_s']:.2f} s")
            lines.append(
                f"- Reload (SIGHUP under {rl['rate']:g} q/s realistic load): {took} "
                f"(`{rl.get('log_line')}`), {rl['lost_during_reload']} queries lost during "
                f"it of {rl['sent_during_reload']:,} sent ({rl['lost_total']} in the whole "
                f"run), worst latency during it {rl['max_latency_during_reload_ms']} ms; "
                f"RSS peak {rl['peak_rss_mb']} MB vs steady {rl['steady_rss_mb']} MB = "
                f"{rl['peak_over_steady']}×; still blocking after: "
                f"{'yes' if rl.get('blocking_after_reload') else 'NO'}."
                + (f" Warning: {rl['client_warning']}." if rl.get("client_warning") else ""))
        lines.append("")
    sizes = list(results.get("sizes", {}))
    if len(sizes) > 1:
        lines += ["## Cost of list size (q/s relative to the smallest list)", ""]
        head = ["target / mix"] + [f"{int(s):,}" for s in sizes]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for t in TARGETS:
            for mix in mixes:
                vals = [results["sizes"][s].get(t, {}).get("mixes", {}).get(mix, {}).get("qps")
                        for s in sizes]
                if not any(vals):
                    continue
                base = vals[0]
                cells = [f"{t} {mix}"] + [
                    "—" if v is None else (f"{v:,.0f}" + (f" ({v / base - 1:+.0%})"
                                                          if base and k else ""))
                    for k, v in enumerate(vals)]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Targets from the issue", "", "| target | measured | verdict |",
              "|---|---|---|"]
    for target, measured, verdict in evaluate(results):
        lines.append(f"| {target} | {measured} | {verdict} |")
    lines.append("")
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines += [("What every number means: bench/README.md. Raw output of this run: "
              f"`{p.get('out_dir')}` (not committed)."), ""]
    return "\n".join(lines)


def _pct(v: Any) -> str:
    return "?" if v is None else f"{v:.0%}"


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Benchmark familydns against unbound and dnsmasq.")
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    help="list sizes to run, comma-separated (default: %(default)s)")
    ap.add_argument("--mixes", default=",".join(MIXES),
                    help="query mixes, run in this order (default: %(default)s)")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="resolvers to run (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=10.0,
                    help="seconds per max-rate dnsperf run (default: %(default)s)")
    ap.add_argument("--latency-rate", type=float, default=2000.0,
                    help="queries/s of the fixed-rate latency and reload runs")
    ap.add_argument("--latency-duration", type=float, default=None,
                    help="seconds of the fixed-rate latency run (default: --duration); 0: skip")
    ap.add_argument("--clients", type=int, default=10, help="dnsperf -c")
    ap.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    ap.add_argument("--timeout", type=float, default=2.0,
                    help="seconds after which a query counts as lost (dnsperf -t)")
    ap.add_argument("--no-reload", dest="reload", action="store_false",
                    help="skip the SIGHUP reload measurement")
    ap.add_argument("--reload-timeout", type=float, default=180.0)
    ap.add_argument("--ready-timeout", type=float, default=120.0,
                    help="seconds a target may take to block the list's last name")
    ap.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                    help="skip measuring the upstream alone")
    ap.add_argument("--seed", type=int, default=gen.DEFAULT_SEED)
    ap.add_argument("--no-install", action="store_true",
                    help="never apt-get install missing tools")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--out-dir", type=Path, default=HERE / "out")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--keep-runs", type=int, default=5,
                    help="raw output of this many runs is kept under --out-dir")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="only print the markdown report of an earlier results JSON")
    args = ap.parse_args(argv)
    try:
        args.sizes = [int(s.strip().replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes takes numbers, e.g. 10000,100000")
    args.mixes = [m.strip() for m in args.mixes.split(",") if m.strip()]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.sizes or any(s < 1 for s in args.sizes):
        ap.error("--sizes needs positive numbers")
    for m in args.mixes:
        if m not in MIXES:
            ap.error(f"unknown mix {m!r} (one of {', '.join(MIXES)})")
    args.mixes = [m for m in MIXES if m in args.mixes]   # always in the order
    for t in args.targets:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r} (one of {', '.join(TARGETS)})")
    if args.latency_duration is None:
        args.latency_duration = args.duration
    return args


def _prune(out_dir: Path, keep: int) -> None:
    runs = sorted((p for p in out_dir.iterdir() if p.is_dir() and re.fullmatch(
        r"\d{8}-\d{6}", p.name)), key=lambda p: p.name)
    for old in runs[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the run through the cleanup (SIGINT too, even when
    it was inherited as ignored, as for a job started with & by a script)."""
    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    old = {s: signal.signal(s, handler)
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(args.render.read_text())), end="")
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    run = Run(args)
    code = 0
    with _signals_raise():
        try:
            run.main()
        except KeyboardInterrupt:
            say("interrupted: stopping everything started")
            code = 130
        except BenchError as exc:
            say(f"FAILED: {exc}")
            code = 1
        finally:
            run.other_load.halt()
            run.procs.stop_all()
            try:
                run.save(final=True)
            except Exception as exc:  # noqa: BLE001 - never hide the real error
                say(f"could not write the results: {exc!r}")
                code = code or 1
            latest = args.out_dir / "latest"
            with contextlib.suppress(OSError):
                if latest.is_symlink() or latest.exists():
                    latest.unlink()
                latest.symlink_to(run.out.name)
            with contextlib.suppress(OSError):
                _prune(args.out_dir, args.keep_runs)
    if code == 0:
        print(render_markdown(run.results))
    return code


if __name__ == "__main__":
    sys.exit(main())
