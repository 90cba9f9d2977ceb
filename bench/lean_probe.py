#!/usr/bin/env python3
"""How fast can a Python forwarder be with familydns's real policy data? A probe.

Not a product: a UDP forwarder in the leanest Python, that judges every name with the
real compiled matcher (1M names) and then, stage by stage (``--stages``), swaps its own
shortcuts for the real familydns pieces. Run it beside ``bench/run.py``'s upstream with
dnsperf, pinned like the benchmark, and the q/s per stage show where a cache miss's time
goes in a live server, which in-process profiles do not (they miss memory effects).

Stages (comma-separated, any subset):

    parse   wire.parse_query (header checks, EDNS, a Query object) instead of the name
            reader alone
    decide  the full decide() (profile, schedules, parent rules, safe search) instead of
            Matcher.match alone
    send    0x20 letter case, wire.make_upstream_query and a timeout timer per query
    reply   wire.parse_reply and Cache.put on the reply, Cache.get and cache.render for
            hits, instead of a dict of reply bytes (needs ``parse``)
    done    the pipeline's _done on answers from upstream (metrics, answer memo; needs
            ``reply``)

    .venv/bin/python bench/lean_probe.py --data-dir DIR --config DIR/config.yaml \\
        --upstream 127.0.0.1:5399 --port 5410 --stages parse,decide

DIR is a familydns data directory whose lists were compiled by a previous start (for
example ``bench/out/latest/1000000-familydns/data`` with that run's config.yaml; the
probe replaces its listen address and turns metrics off). The probe answers blocked names with a bare NXDOMAIN and never times anything
itself: measure it with dnsperf.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from familydns.app import App
from familydns.config import Config, load_config
from familydns.resolver import wire
from familydns.resolver.cache import render
from familydns.resolver.identity import ClientIdentity

STAGES = ("parse", "decide", "send", "reply", "done")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


async def serve(args: argparse.Namespace) -> None:
    stages = set(filter(None, args.stages.split(",")))
    unknown = stages - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stages: {', '.join(sorted(unknown))}")
    if "reply" in stages and "parse" not in stages:
        raise SystemExit("the reply stage needs the parse stage (render needs a Query)")
    if "done" in stages and "reply" not in stages:
        raise SystemExit("the done stage needs the reply stage")

    def config() -> Config:
        cfg = load_config(args.config).with_overrides(listen=("127.0.0.1:0",), metrics="")
        if args.cache_entries is not None:
            cfg = dataclasses.replace(cfg, cache=dataclasses.replace(
                cfg.cache, max_entries=args.cache_entries))
        return cfg

    app = App(config, args.data_dir)
    await app.start()
    assert app.policy is not None and app.resolver is not None
    policy, resolver = app.policy, app.resolver
    matcher, cache = policy.snapshot.matcher, resolver.cache
    loop = asyncio.get_running_loop()
    plain: dict[bytes, tuple[float, bytes]] = {}
    pending: dict[int, tuple[bytes, bytes, Any, bytes, Any, Any]] = {}
    host, port = args.upstream.rsplit(":", 1)
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.connect((host, int(port)))
    up.setblocking(False)
    server: asyncio.DatagramTransport

    def on_reply() -> None:
        while True:
            try:
                data = up.recv(65535)
            except BlockingIOError:
                return
            found = pending.pop(_U16.unpack_from(data, 0)[0], None)
            if found is None:
                continue
            question, key, query, client_id, addr, client = found
            if data[12:12 + len(question)] != question:
                continue
            now = time.time()
            if "reply" in stages:
                entry = cache.put(key, wire.parse_reply(data), now)
                assert entry is not None
                out = render(entry, query, now, 1232)
                if "done" in stages:
                    out = resolver._done(query, out, "answered", now, 512, client, now + 1)
            else:
                an = _U16.unpack_from(data, 6)[0]
                ttl = _U32.unpack_from(data, 12 + len(question) + 6)[0] if an else 0
                plain[key] = (now + ttl, data[2:])
                out = client_id + data[2:]
            server.sendto(out, addr)

    class Listener(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            nonlocal server
            server = transport  # type: ignore[assignment]

        def datagram_received(self, data: bytes, addr: Any) -> None:
            query = None
            if "parse" in stages:
                query = wire.parse_query(data)
                qname, question, key = query.qname, query.question, query.key
            else:
                qname, qend = wire._read_labels(data, 12, len(data))
                question = data[12:qend + 4]
                key = question.lower()
            now = time.time()
            client = None
            if "decide" in stages:
                client = ClientIdentity(addr[0], None, None)
                blocked = policy.decide(client, qname, 1, now).action.value == "block"
            else:
                blocked = bool(matcher.match(qname))
            if blocked:
                server.sendto(data[:2] + b"\x81\x83" + data[4:6] + bytes(6) + question, addr)
                return
            if "reply" in stages and query is not None:
                entry = cache.get(key, now)
                if entry is not None and entry.fresh(now):
                    server.sendto(render(entry, query, now, 1232), addr)
                    return
            else:
                hit = plain.get(key)
                if hit is not None and hit[0] > now:
                    server.sendto(data[:2] + hit[1], addr)
                    return
            qid = int.from_bytes(os.urandom(2), "big")
            while qid in pending:
                qid = int.from_bytes(os.urandom(2), "big")
            if "send" in stages:
                question = wire.randomize_case(question)
                up.send(wire.make_upstream_query(qid, question, False, False, 1232))
                loop.call_later(2.0, pending.pop, qid, None)
            else:
                up.send(_U16.pack(qid) + data[2:12] + question)
            pending[qid] = (question, key, query, data[:2], addr, client)

    loop.add_reader(up.fileno(), on_reply)
    await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", args.port))
    print(f"probe answering on 127.0.0.1:{args.port} with stages: "
          f"{', '.join(sorted(stages)) or 'none'}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of a UDP upstream")
    parser.add_argument("--port", type=int, default=5410)
    parser.add_argument("--stages", default="", help=", ".join(STAGES))
    parser.add_argument("--cache-entries", type=int, help="override cache.max_entries")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
