#!/usr/bin/env python3
"""A fixed-rate DNS-over-UDP load client that records every query's latency.

dnsperf prints only an average and a standard deviation; percentiles need each query.
This client sends queries from a dnsperf-style file (``NAME TYPE`` per line, cycled) at
a fixed rate on a schedule (query i is due at t0 + i/rate, so a slow server does not slow
the sending down; if this client itself gets no CPU for more than 20 ms, the slots it
missed are skipped and counted rather than sent in a burst), matches each reply to its query by id *and* question, and writes:

* latency percentiles (nearest-rank) over the queries answered within the timeout,
* lost queries (no reply within the timeout), late replies and response codes,
* 100 ms buckets (sent, answered, lost, worst latency) and the send times of lost
  queries, so a caller can look at one time window (a reload, say).

Latency is measured from the moment the query was handed to the kernel to the moment
its reply was read, with CLOCK_MONOTONIC (comparable across processes on Linux).

    python bench/dnsload.py --port 5300 --file q.txt --rate 2000 --duration 10 --out r.json

SIGINT or SIGTERM stops sending early; replies still awaited get their full timeout.
The module also has :func:`query_rcode`, a one-shot query used to poll for readiness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import socket
import struct
import sys
import time
from pathlib import Path

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
          "AAAA": 28, "SRV": 33, "HTTPS": 65}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
          5: "REFUSED"}
BUCKET_NS = 100_000_000


def encode_question(name: str, qtype: int) -> bytes:
    """QNAME, QTYPE and QCLASS IN, as they appear after the 12-byte header."""
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    out += struct.pack("!HH", qtype, 1)
    return bytes(out)


def header(qid: int) -> bytes:
    """A query header with RD set and one question."""
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)


def query_rcode(host: str, port: int, name: str, qtype: int = 1,
                timeout: float = 0.25) -> tuple[int, int] | None:
    """(rcode, answer count) of one query, or None when nothing (valid) came back."""
    question = encode_question(name, qtype)
    qid = int(time.monotonic_ns() & 0xFFFF)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            sock.send(header(qid) + question)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = sock.recv(4096)
                if (len(data) >= 12 and int.from_bytes(data[:2], "big") == qid
                        and data[12:12 + len(question)].lower() == question.lower()):
                    return data[3] & 0x0F, int.from_bytes(data[6:8], "big")
    except OSError:  # refused (not listening yet), timeout
        return None
    return None


def load_names(path: Path) -> list[bytes]:
    """Encoded questions of a dnsperf file (lines ``NAME [TYPE]``; ``#`` comments)."""
    out = []
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        qtype = QTYPES[parts[1].upper()] if len(parts) > 1 else 1
        out.append(encode_question(parts[0], qtype))
    if not out:
        raise ValueError(f"{path}: no queries")
    return out


def percentile(sorted_values: list[int], p: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class _Client(asyncio.DatagramProtocol):
    def __init__(self, timeout_ns: int) -> None:
        self.timeout_ns = timeout_ns
        self.pending: dict[int, tuple[int, int, bytes]] = {}  # qid -> (index, sent, question)
        self.latency: list[int] = []   # per query index, ns; -1 lost, -2 not yet known
        self.sent: list[int] = []
        self.rcodes: dict[str, int] = {}
        self.late = 0
        self.stray = 0
        self.errors = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        now = time.monotonic_ns()
        if len(data) < 12:
            self.stray += 1
            return
        qid = int.from_bytes(data[:2], "big")
        entry = self.pending.get(qid)
        if entry is None:
            self.late += 1   # answered after its timeout (or a duplicate)
            return
        index, sent, question = entry
        if data[12:12 + len(question)].lower() != question.lower():
            self.stray += 1
            return
        del self.pending[qid]
        elapsed = now - sent
        if elapsed > self.timeout_ns:
            self.latency[index] = -1
            self.late += 1
            return
        self.latency[index] = elapsed
        rcode = RCODES.get(data[3] & 0x0F, str(data[3] & 0x0F))
        self.rcodes[rcode] = self.rcodes.get(rcode, 0) + 1

    def error_received(self, exc: Exception) -> None:
        self.errors += 1

    def expire(self, now: int) -> None:
        """Pending entries are in send order: drop the expired head as lost."""
        expired = []
        for qid, (index, sent, _q) in self.pending.items():
            if now - sent <= self.timeout_ns:
                break
            expired.append((qid, index))
        for qid, index in expired:
            del self.pending[qid]
            self.latency[index] = -1


async def run_load(host: str, port: int, questions: list[bytes], rate: float,
                   duration: float, timeout: float, stop: asyncio.Event) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    client = _Client(int(timeout * 1e9))
    transport, _ = await loop.create_datagram_endpoint(
        lambda: client, remote_addr=(host, port), family=socket.AF_INET)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass
    total = int(rate * duration)        # send slots: slot k is due at t0 + k / rate
    period_ns = 1e9 / rate
    # When this process gets no CPU for a while (other load on its core), the slots it
    # missed are skipped rather than sent in one burst, which would measure the burst.
    max_backlog = max(1, int(rate * 0.02))
    skipped = stalls = longest_stall = 0
    qid = 0
    max_lag = 0
    t0 = time.monotonic_ns()
    i = k = 0                           # i: queries sent, k: next slot
    next_expire = t0
    while k < total and not stop.is_set():
        now = time.monotonic_ns()
        due = min(total, int((now - t0) / period_ns) + 1)
        if due - k > max_backlog:
            stalls += 1
            longest_stall = max(longest_stall, now - (t0 + int(k * period_ns)))
            skipped += due - k - max_backlog
            k = due - max_backlog
        while k < due:
            qid = (qid + 1) & 0xFFFF
            while qid in client.pending:
                qid = (qid + 1) & 0xFFFF
            question = questions[i % len(questions)]
            sent = time.monotonic_ns()
            max_lag = max(max_lag, sent - (t0 + int(k * period_ns)))
            client.pending[qid] = (i, sent, question)
            client.sent.append(sent)
            client.latency.append(-2)
            transport.sendto(header(qid) + question)
            i += 1
            k += 1
        if now >= next_expire:
            client.expire(now)
            next_expire = now + 50_000_000
        await asyncio.sleep(0.0005)
    send_end = time.monotonic_ns()
    # Wait for the replies still due, each for its full timeout.
    while client.pending:
        now = time.monotonic_ns()
        client.expire(now)
        if not client.pending:
            break
        await asyncio.sleep(0.01)
    transport.close()

    lat = client.latency
    answered = sorted(v for v in lat if v >= 0)
    lost_idx = [k for k, v in enumerate(lat) if v < 0]
    n_buckets = (send_end - t0) // BUCKET_NS + 1
    buckets = [[0, 0, 0, 0] for _ in range(int(n_buckets))]   # sent, answered, lost, max ns
    for k, sent in enumerate(client.sent):
        b = buckets[min(len(buckets) - 1, (sent - t0) // BUCKET_NS)]
        b[0] += 1
        if lat[k] >= 0:
            b[1] += 1
            b[3] = max(b[3], lat[k])
        else:
            b[2] += 1

    def ms(v: int | None) -> float | None:
        return None if v is None else round(v / 1e6, 4)

    sent_n = len(client.sent)
    elapsed = (send_end - t0) / 1e9
    return {
        "server": f"{host}:{port}",
        "rate_target": rate,
        "sent": sent_n,
        "answered": len(answered),
        "lost": len(lost_idx),
        "late": client.late,
        "stray": client.stray,
        "socket_errors": client.errors,
        "rcodes": client.rcodes,
        "send_seconds": round(elapsed, 3),
        "rate_achieved": round(sent_n / elapsed, 1) if elapsed > 0 else None,
        "max_send_lag_ms": ms(max_lag),
        "skipped_slots": skipped,
        "stalls": stalls,
        "longest_stall_ms": ms(longest_stall),
        "p50_ms": ms(percentile(answered, 50)),
        "p90_ms": ms(percentile(answered, 90)),
        "p99_ms": ms(percentile(answered, 99)),
        "p999_ms": ms(percentile(answered, 99.9)),
        "max_ms": ms(answered[-1] if answered else None),
        "mean_ms": ms(int(sum(answered) / len(answered)) if answered else None),
        "t0_monotonic": t0 / 1e9,
        "bucket_seconds": BUCKET_NS / 1e9,
        "buckets": [[b[0], b[1], b[2], round(b[3] / 1e6, 3)] for b in buckets],
        "lost_at": [round((client.sent[k] - t0) / 1e9, 4) for k in lost_idx[:20000]],
    }


async def _main(args: argparse.Namespace) -> dict[str, object]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    questions = load_names(args.file)
    return await run_load(args.server, args.port, questions, args.rate, args.duration,
                          args.timeout, stop)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fixed-rate DNS load with per-query latency.")
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", type=Path, required=True)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--out", type=Path, help="JSON result file (default: stdout)")
    args = ap.parse_args(argv)
    try:
        import uvloop
        result = uvloop.run(_main(args))
    except ImportError:
        result = asyncio.run(_main(args))
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text + "\n")
        summary = {k: v for k, v in result.items() if k not in ("buckets", "lost_at")}
        print(json.dumps(summary))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
