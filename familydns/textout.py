"""Plain-text tables, bar charts and durations for the parents' terminal."""

from __future__ import annotations

import re
from collections.abc import Sequence

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1h30m``, ``2d``, ``1w`` to seconds; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    pos, total = 0, 0
    for m in _DURATION.finditer(compact):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not compact or pos != len(compact) or total <= 0:
        raise ValueError(f"bad duration {text!r} (examples: 30m, 1h, 1h30m, 2d)")
    return float(total)


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                           for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(r[i], int | float) for r in rows) and bool(rows)
               for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def bars(pairs: Sequence[tuple[str, int]], width: int = 40) -> str:
    """A horizontal bar chart: one labelled line per pair, scaled to the largest."""
    if not pairs:
        return "(nothing)"
    top = max(n for _, n in pairs) or 1
    label_w = max(len(label) for label, _ in pairs)
    lines = []
    for label, n in pairs:
        length = round(n / top * width)
        bar = "#" * length if length or not n else "#"
        lines.append(f"{label.ljust(label_w)}  {bar} {n}")
    return "\n".join(lines)
