"""The long fuzz run: the CI fuzz targets with many more examples and the 50 ms bound.

Uses hypothesis (already a test dependency) rather than atheris: the same strategies as
``tests/test_fuzz.py`` (structured DNS messages, list lines, config shapes, then
mutated), no native build, and it runs wherever the test suite runs. Failures do not
stop a target: every unexpected exception and every input over the bound is counted,
and the first few are printed with the input, so one run reports everything.

    .venv/bin/python fuzz/run.py                     # 5,000 examples per target
    .venv/bin/python fuzz/run.py -n 50000 -t parse_reply -t config
    make fuzz                                        # the same as the first line (~7 min)

Exit status 1 when any target had an unexpected exception or an input over the bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, settings

from tests.test_fuzz import (
    HOSTILE,
    HOSTILE_BOUND,
    TARGETS,
    Target,
    compression_chain,
)

SHOW = 3
"""Examples of each kind of problem printed per target."""


@dataclass
class Stats:
    """What one target's run saw."""

    tried: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    over_bound: list[tuple[float, str]] = field(default_factory=list)
    slowest: float = 0.0
    slowest_input: str = ""
    total: float = 0.0

    def feed(self, target: Target, value: Any, bound: float) -> None:
        self.tried += 1
        start = time.perf_counter()
        try:
            target.call(value)
        except target.allowed:
            pass
        except Exception as exc:  # noqa: BLE001 - counting them is the point
            self.failures.append((f"{type(exc).__name__}: {exc}"[:200], _show(value)))
        seconds = time.perf_counter() - start
        self.total += seconds
        if seconds > bound:
            seconds = min(seconds, self._retime(target, value))
        if seconds > self.slowest:
            self.slowest, self.slowest_input = seconds, _show(value)
        if seconds > bound:
            self.over_bound.append((seconds, _show(value)))


    @staticmethod
    def _retime(target: Target, value: Any) -> float:
        """Best of two more runs: a GC pause or a first-call import is not the input's."""
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            try:
                target.call(value)
            except Exception:  # noqa: BLE001, S110 - already counted by the first run
                pass
            best = min(best, time.perf_counter() - start)
        return best


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + f"... ({len(text)} chars)"


def fuzz(target: Target, examples: int, bound: float, seed: int | None) -> Stats:
    stats = Stats()

    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def run(value: Any) -> None:
        stats.feed(target, value, bound)

    if seed is not None:
        run = __import__("hypothesis").seed(seed)(run)
    run()
    return stats


def hostile(bound: float) -> Stats:
    """The hand-made hostile corpus, plus the full 64 KB compression chain."""
    by_name = {t.name: t for t in TARGETS}
    stats = Stats()
    corpus = [*HOSTILE, ("parse_reply", "compression chain, 64 KB",
                         compression_chain(65_535, 32_000))]
    for name, what, value in corpus:
        before = len(stats.over_bound)
        stats.feed(by_name[name], value, bound)
        if len(stats.over_bound) > before:
            seconds, _ = stats.over_bound[-1]
            stats.over_bound[-1] = (seconds, f"{name}: {what}")
    return stats


def report(name: str, stats: Stats) -> None:
    mean = stats.total / stats.tried * 1000 if stats.tried else 0.0
    print(f"{name:<12} {stats.tried:>8} {len(stats.failures):>9} {len(stats.over_bound):>6}"
          f" {stats.slowest * 1000:>9.2f} {mean:>8.3f}")
    for message, value in stats.failures[:SHOW]:
        print(f"    FAIL {message}\n         input: {value}")
    for seconds, value in sorted(stats.over_bound, reverse=True)[:SHOW]:
        print(f"    SLOW {seconds * 1000:.1f} ms: {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--examples", type=int, default=5_000,
                        help="examples per target (default 5000)")
    parser.add_argument("-t", "--target", action="append", choices=[t.name for t in TARGETS],
                        help="only these targets (repeatable)")
    parser.add_argument("--bound-ms", type=float, default=HOSTILE_BOUND * 1000,
                        help="time bound per input in ms (default 50)")
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run")
    args = parser.parse_args(argv)
    bound = args.bound_ms / 1000
    chosen = [t for t in TARGETS if not args.target or t.name in args.target]
    print(f"hypothesis, {args.examples} examples per target, bound {args.bound_ms:g} ms/input")
    print(f"{'target':<12} {'examples':>8} {'failures':>9} {'>bound':>6} {'max ms':>9}"
          f" {'mean ms':>8}")
    bad = False
    for target in chosen:
        stats = fuzz(target, args.examples, bound, args.seed)
        report(target.name, stats)
        bad |= bool(stats.failures or stats.over_bound)
    stats = hostile(bound)
    report("hostile", stats)
    bad |= bool(stats.failures or stats.over_bound)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
