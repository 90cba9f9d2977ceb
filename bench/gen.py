#!/usr/bin/env python3
"""Deterministic benchmark data: a realistic blocklist and dnsperf query files.

Everything comes from one seed, so two runs (or two machines) query the same names.

* The blocklist is a stream of *groups*: one registrable domain under a realistic TLD
  mix, usually listed itself, often with several of its subdomains listed too (``www``,
  ``m``, ``ads``, ``cdn``, hash-like labels, two-level names...), the way real lists
  look. The list of size N is the first N lines of that stream, so the 10k list is a
  prefix of the 100k list, which is a prefix of the 1M list.
* Allowed names come from a second stream. Registrable domains are split between the
  two streams by a stable hash, so no allowed name is ever under a blocked domain,
  whatever the list size; names of the familydns starter lists are left out too.
* Query files (dnsperf format, ``NAME A``, one a line):
  - ``hot.txt``: 1,000 allowed names (repeated by dnsperf: cache hits once warm).
  - ``cold.txt``: 200,000 unique allowed names (misses: the run stops after one pass).
  - ``blocked-N.txt``: listed names and subdomains of listed names (half each).
  - ``realistic-N.txt``: 70 % hot (Zipf-weighted), 20 % cold names not used in any
    other file, 10 % blocked. Also ``latency-N.txt`` and ``reload-N.txt``, built the
    same way with their own unique cold names, for the fixed-rate runs.

Run ``python bench/gen.py --sizes 10000 --out bench/data`` to write the files alone;
``bench/run.py`` calls :func:`ensure_data` itself and reuses files already written.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import random
import string
import sys
import time
from collections.abc import Iterator
from pathlib import Path

GEN_VERSION = 3
DEFAULT_SEED = 20240601

HOT_NAMES = 1_000
COLD_NAMES = 200_000
BLOCKED_QUERIES = 100_000
REALISTIC_QUERIES = 600_000
LATENCY_QUERIES = 60_000    # 2,000 qps for 30 s
RELOAD_QUERIES = 240_000    # 2,000 qps for 120 s
MIX = (0.70, 0.20, 0.10)    # hot, cold, blocked

# Rough share of TLDs in public blocklists (com dominates; cheap gTLDs and ccTLDs follow).
TLDS: tuple[tuple[str, float], ...] = (
    ("com", 44.0), ("net", 7.0), ("org", 4.0), ("ru", 4.0), ("de", 3.0), ("info", 3.0),
    ("xyz", 3.0), ("top", 3.0), ("io", 2.0), ("co.uk", 2.0), ("online", 2.0), ("site", 2.0),
    ("cn", 2.0), ("fr", 1.5), ("nl", 1.5), ("pl", 1.5), ("com.br", 1.5), ("it", 1.0),
    ("es", 1.0), ("in", 1.0), ("co.jp", 0.7), ("tk", 1.0), ("club", 1.0), ("biz", 1.0),
    ("us", 1.0), ("eu", 1.0), ("ca", 0.8), ("com.au", 0.8), ("me", 0.8), ("vip", 0.6),
    ("bet", 0.5), ("casino", 0.3), ("win", 0.5), ("shop", 0.8), ("cc", 0.8), ("app", 0.5),
    ("live", 0.5), ("pro", 0.4), ("ua", 0.6), ("cz", 0.4), ("se", 0.4), ("ch", 0.4),
    ("be", 0.4), ("at", 0.3), ("gr", 0.3), ("ro", 0.4), ("com.tr", 0.4), ("co.za", 0.3),
    ("mx", 0.3), ("ar", 0.2), ("kr", 0.3), ("tv", 0.4), ("ws", 0.2), ("icu", 0.6),
    ("fun", 0.4), ("space", 0.3), ("website", 0.3), ("store", 0.4), ("link", 0.3),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


WORDS = _words(
    "casino bet poker slots lucky win spin jackpot royal vegas bingo odds play gold star "
    "fortune ace club game games sport sports live mega super best top free fast cash money "
    "bonus vip king queen magic dragon tiger crown palace grand golden diamond red black "
    "blue green online web net cloud media news daily world city shop store market deal "
    "deals hub zone spot point link click track ads ad stat stats metric pixel tag data "
    "info home house smart tech digital mobile app apps soft box time life love happy "
    "joy fun party river ocean sun moon sky north south east west alpha beta delta omega "
    "nova prime core max pro plus one first next new old big little green blue fox wolf "
    "bear eagle lion hawk rocket nation global local euro asia africa america express "
    "direct secure safe trust bank pay card loan credit insure health care med pharma "
    "travel tour trip hotel flight car auto moto bike photo video film movie music radio "
    "tube stream cast share social chat meet date match friend kids school learn study"
)
SYLLABLES = _words(
    "ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo ga ge gi go ha he hi ho ka "
    "ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru "
    "sa se si so su ta te ti to tu va ve vi vo za ze zo an en in on ar er ir or ex ix ox "
    "bra bre bri cra cre tri tra pro pre stra ster lan len lin ton tan ven vin mar mor "
    "kel kor nix lex tor zen rax lux vel quo qui"
)
SUBDOMAINS = _words(
    "www m mobile api cdn static img images media ads ad track tracking stats analytics "
    "pixel login secure app mail shop play live bet casino promo affiliate partners "
    "go click t s1 s2 s3 eu us en de fr es it news blog forum support help account "
    "my web ws push notify data log logs metrics tag tags beacon collect sync cdn1 cdn2 "
    "assets files download dl video stream chat game games lobby pay checkout"
)

_ALNUM = string.ascii_lowercase + string.digits


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def is_allowed_registrable(domain: str) -> bool:
    """One registrable domain in five belongs to the allowed stream, the rest to lists."""
    return _stable_hash(domain) % 5 == 0


class NameGen:
    """Registrable domains and subdomain labels that look like real ones."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        total = sum(w for _, w in TLDS)
        self._tld_cum = list(itertools.accumulate(w / total for _, w in TLDS))
        self._tlds = [t for t, _ in TLDS]

    def tld(self) -> str:
        i = bisect.bisect_left(self._tld_cum, self.rng.random())
        return self._tlds[min(i, len(self._tlds) - 1)]

    def _syllables(self, lo: int, hi: int) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(lo, hi)))

    def label(self) -> str:
        r, rng = self.rng.random(), self.rng
        if r < 0.30:
            return rng.choice(WORDS) + rng.choice(("", "", "", "-")) + rng.choice(WORDS)
        if r < 0.55:
            return self._syllables(2, 4)
        if r < 0.70:
            return rng.choice(WORDS) + rng.choice(WORDS) + str(rng.randint(1, 999))
        if r < 0.85:
            return self._syllables(1, 3) + rng.choice(WORDS)
        if r < 0.93:
            return rng.choice(WORDS) + "-" + self._syllables(2, 3)
        return "".join(rng.choice(_ALNUM) for _ in range(rng.randint(6, 14)))

    def registrable(self) -> str:
        return f"{self.label()}.{self.tld()}"

    def sub_label(self) -> str:
        r, rng = self.rng.random(), self.rng
        if r < 0.70:
            return rng.choice(SUBDOMAINS)
        if r < 0.85:
            return "".join(rng.choice(_ALNUM) for _ in range(rng.randint(4, 10)))
        if r < 0.95:
            return rng.choice(SUBDOMAINS) + "." + rng.choice(SUBDOMAINS)
        return rng.choice(SUBDOMAINS) + str(rng.randint(1, 99))


def _group_size(rng: random.Random) -> int:
    """Subdomains listed with a registrable domain (a heavy tail, as in real lists)."""
    r = rng.random()
    if r < 0.50:
        return 0
    if r < 0.70:
        return 1
    if r < 0.85:
        return rng.randint(2, 3)
    if r < 0.95:
        return rng.randint(4, 10)
    return rng.randint(11, 40)


def blocklist_stream(seed: int) -> Iterator[str]:
    """Listed domains, group by group; its prefixes are the lists of every size."""
    rng = random.Random(f"{seed}-blocked")
    gen = NameGen(rng)
    seen: set[str] = set()
    while True:
        reg = gen.registrable()
        if reg in seen or is_allowed_registrable(reg):
            continue
        seen.add(reg)
        subs = _group_size(rng)
        if subs == 0 or rng.random() < 0.85:
            yield reg
        labels: set[str] = set()
        for _ in range(subs):
            sub = gen.sub_label()
            if sub not in labels:
                labels.add(sub)
                yield f"{sub}.{reg}"


def _starter_domains() -> set[str]:
    """Domains of familydns's shipped starter lists (allowed names must avoid them)."""
    out: set[str] = set()
    data = Path(__file__).resolve().parent.parent / "familydns" / "blocklists" / "data"
    for path in sorted(data.glob("*.txt")) if data.is_dir() else ():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip().lower()
            if line and not line.startswith(("#", "!")):
                out.add(line.split()[-1].lstrip("*."))
    return out


def allowed_stream(seed: int) -> Iterator[str]:
    """Unique allowed names (1 to 4 per registrable domain)."""
    rng = random.Random(f"{seed}-allowed")
    gen = NameGen(rng)
    starter = _starter_domains()
    seen_reg: set[str] = set()
    while True:
        reg = gen.registrable()
        if reg in seen_reg or not is_allowed_registrable(reg):
            continue
        parts = reg.split(".")
        if any(".".join(parts[i:]) in starter for i in range(len(parts))):
            continue
        seen_reg.add(reg)
        names = {rng.choice(("www.", "", "www.", "m.", "api.", "cdn.")) + reg}
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            names.add(f"{gen.sub_label()}.{reg}")
        yield from sorted(names)


def _zipf_weights(n: int, s: float = 0.9) -> list[float]:
    return list(itertools.accumulate(1.0 / (i + 1) ** s for i in range(n)))


def _write_queries(path: Path, names: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{n} A\n" for n in names), encoding="ascii")
    tmp.replace(path)


def _write_lines(path: Path, lines: Iterator[str] | list[str]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="ascii") as fh:
        fh.writelines(lines)
    tmp.replace(path)


def _stamp(out: Path, name: str, seed: int) -> Path:
    return out / f".{name}.v{GEN_VERSION}.s{seed}.done"


def ensure_common(out: Path, seed: int) -> None:
    """hot.txt, cold.txt and the cold pools of the mixed files (size independent)."""
    stamp = _stamp(out, "common", seed)
    if stamp.exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    stream = allowed_stream(seed)
    hot = list(itertools.islice(stream, HOT_NAMES))
    cold = list(itertools.islice(stream, COLD_NAMES))
    rng = random.Random(f"{seed}-shuffle")
    rng.shuffle(hot)   # the Zipf head must not be one registrable's names
    rng.shuffle(cold)
    _write_queries(out / "hot.txt", hot)
    _write_queries(out / "cold.txt", cold)
    for kind, total in (("realistic", REALISTIC_QUERIES), ("latency", LATENCY_QUERIES),
                        ("reload", RELOAD_QUERIES)):
        pool = list(itertools.islice(stream, int(total * MIX[1] * 1.05) + 1000))
        rng.shuffle(pool)
        _write_lines(out / f"pool-{kind}.txt", (n + "\n" for n in pool))
    stamp.touch()


def ensure_size(out: Path, seed: int, size: int) -> None:
    """The list of ``size`` names in the three targets' formats and the size's queries."""
    stamp = _stamp(out, f"size{size}", seed)
    if stamp.exists():
        return
    ensure_common(out, seed)
    listed = list(itertools.islice(blocklist_stream(seed), size))
    header = [f"# familydns benchmark list: {size} domains, seed {seed} (synthetic)\n"]
    _write_lines(out / f"list-{size}.txt", header + [d + "\n" for d in listed])
    _write_lines(out / f"unbound-{size}.conf",
                 [f'local-zone: "{d}." always_nxdomain\n' for d in listed])
    _write_lines(out / f"dnsmasq-{size}.conf", [f"address=/{d}/\n" for d in listed])
    (out / f"last-{size}.txt").write_text(listed[-1] + "\n", encoding="ascii")

    rng = random.Random(f"{seed}-queries-{size}")
    gen = NameGen(rng)

    def blocked() -> str:
        name = listed[rng.randrange(size)]
        return name if rng.random() < 0.5 else f"{gen.sub_label()}.{name}"

    _write_queries(out / f"blocked-{size}.txt", [blocked() for _ in range(BLOCKED_QUERIES)])
    hot = [line.split()[0] for line in (out / "hot.txt").read_text().splitlines()]
    cum = _zipf_weights(len(hot))
    top = cum[-1]
    for kind, total in (("realistic", REALISTIC_QUERIES), ("latency", LATENCY_QUERIES),
                        ("reload", RELOAD_QUERIES)):
        pool = iter((out / f"pool-{kind}.txt").read_text().split())
        names = []
        for _ in range(total):
            r = rng.random()
            if r < MIX[0]:
                names.append(hot[bisect.bisect_left(cum, rng.random() * top)])
            elif r < MIX[0] + MIX[1]:
                names.append(next(pool))
            else:
                names.append(blocked())
        _write_queries(out / f"{kind}-{size}.txt", names)
    stamp.touch()


def ensure_data(out: Path, seed: int, sizes: list[int], say=print) -> None:
    for size in sizes:
        if not _stamp(out, f"size{size}", seed).exists():
            t0 = time.monotonic()
            say(f"generating data for {size:,} names (seed {seed})...")
            ensure_size(out, seed, size)
            say(f"  done in {time.monotonic() - t0:.1f} s")
    manifest = {"seed": seed, "version": GEN_VERSION, "sizes": sizes,
                "hot": HOT_NAMES, "cold": COLD_NAMES, "mix": MIX}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    ensure_data(args.out / f"seed{args.seed}", args.seed, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
