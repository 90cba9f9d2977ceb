#!/usr/bin/env python3
"""CPU per query through familydns's resolver chain, in one process: a steady number.

Not the benchmark: ``bench/run.py`` measures the server as clients see it, with dnsperf,
and its max-rate numbers move 20-25% between runs on a shared VM. This feeds the
benchmark's query files straight into ``Resolver.handle`` of a fully started familydns
(profiles, categories, safe search, metrics, the blocked-lookup log, the real compiled
1M-name matcher), 200 queries at a time, with a real upstream (a dnsmasq it starts, as
``run.py`` does), and divides the process's CPU time by the queries answered. Only the
client socket is left out; upstream sockets, the reply path and the log writer are
real. Repeated runs agree within a few percent, so it can judge a change of 5%.

    .venv/bin/python bench/inproc.py --data-dir DIR --config DIR/../config.yaml

DIR is a familydns data directory whose lists were compiled by a previous start (for
example ``bench/out/latest/1000000-familydns/data``); the config's listen address,
upstreams and metrics are replaced. It pins itself to core 0 and the upstream to core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import time
from pathlib import Path

from familydns.app import App
from familydns.config import Config, load_config
from familydns.resolver import wire

HERE = Path(__file__).resolve().parent
MIXES = ("hot", "cold", "blocked", "realistic")
BATCH = 200
"""Queries handed to the resolver before waiting for their answers, like dnsperf -q 200."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    argv = [dnsmasq, "--keep-in-foreground", "--log-facility=-", "--pid-file=",
            f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--cache-size=0", "--local-ttl=3600",
            "--address=/#/192.0.2.1", "--dns-forward-max=1000"]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        argv = ["taskset", "-c", "1", *argv]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def packets(path: Path, limit: int) -> list[bytes]:
    """dnsperf lines (``name TYPE``) as plain queries with RD set."""
    out = []
    with path.open() as lines:
        for i, line in enumerate(lines):
            if i >= limit:
                break
            name, qtype = line.split()[:2]
            code = next(k for k, v in wire.TYPE_NAMES.items() if v == qtype)
            out.append(wire._HDR.pack(i & 0xFFFF, wire.RD, 1, 0, 0, 0)
                       + wire.encode_name(name) + code.to_bytes(2, "big") + b"\x00\x01")
    return out


async def run_mix(app: App, queries: list[bytes]) -> tuple[float, int]:
    """(CPU seconds, queries answered) for one pass over ``queries``."""
    resolver = app.resolver
    assert resolver is not None
    answered = 0
    cpu = time.process_time()
    for i in range(0, len(queries), BATCH):
        results = [resolver.handle(data, "127.0.0.1", "udp") for data in queries[i:i + BATCH]]
        pending = [r for r in results if isinstance(r, asyncio.Future)]
        answered += sum(isinstance(r, bytes) for r in results)
        if pending:
            answered += sum(r is not None for r in await asyncio.gather(*pending))
    return time.process_time() - cpu, answered


async def measure(args: argparse.Namespace) -> None:
    port = free_port()
    upstream = start_upstream(port)
    try:
        await asyncio.sleep(0.3)

        def config() -> Config:
            return load_config(args.config).with_overrides(
                listen=("127.0.0.1:0",), metrics="", upstreams=(f"udp://127.0.0.1:{port}",))

        app = App(config, args.data_dir)
        await app.start()
        try:
            data = args.queries_dir
            files = {"hot": data / "hot.txt", "cold": data / "cold.txt",
                     "blocked": data / f"blocked-{args.size}.txt",
                     "realistic": data / f"realistic-{args.size}.txt"}
            await run_mix(app, packets(files["hot"], 1000))  # warm the cache for hot names
            for mix in args.mixes.split(","):
                per_round = args.queries // args.rounds
                queries = packets(files[mix], per_round * args.rounds)
                costs = []
                for r in range(args.rounds):
                    part = queries if mix == "hot" else queries[r * per_round:(r + 1) * per_round]
                    cpu, answered = await run_mix(app, part[:per_round])
                    costs.append(cpu / max(answered, 1) * 1e6)
                print(f"{mix:10s} CPU us per query: median {statistics.median(costs):6.1f} "
                      f"(rounds: {', '.join(f'{c:.1f}' for c in costs)})", flush=True)
        finally:
            await app.stop()
    finally:
        upstream.terminate()
        upstream.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--queries-dir", type=Path, default=HERE / "data" / "seed20240601",
                        help="bench/gen.py's output (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1_000_000, help="list size of the "
                        "blocked and realistic query files")
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--queries", type=int, default=60_000, help="per mix")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    try:
        import uvloop
    except ImportError:
        asyncio.run(measure(args))
    else:
        uvloop.run(measure(args))


if __name__ == "__main__":
    main()
