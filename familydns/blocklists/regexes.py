"""Vetting of regex rules from untrusted lists.

Every regex runs against every query name, so one pathological pattern would stall the
resolver. Python's ``re`` has no timeout; instead patterns are length-capped and those
with the classic catastrophic-backtracking shape (a repeated group that itself holds a
repetition or an alternation, as in ``(a+)+`` or ``(a|aa)*``) are rejected. Names are at
most 253 characters; together with a cap on the number of unbounded repetitions that
bounds the cost of everything that remains.
"""

from __future__ import annotations

import re
import warnings

MAX_REGEX_LENGTH = 1000
MAX_REPETITIONS = 4


class RegexError(ValueError):
    """A regex rule was rejected; the message is the reason."""


def compile_rule_regex(source: str) -> re.Pattern[str]:
    """Compile a list regex (matched with ``search``, case-insensitively) or raise RegexError."""
    if not source:
        raise RegexError("empty regex")
    if len(source) > MAX_REGEX_LENGTH:
        raise RegexError(f"regex longer than {MAX_REGEX_LENGTH} characters")
    nested, repetitions = _scan(source)
    if nested:
        raise RegexError("nested repetition such as (a+)+ can backtrack catastrophically")
    if repetitions > MAX_REPETITIONS:
        raise RegexError(f"more than {MAX_REPETITIONS} unbounded repetitions")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning on lines like "[[": not ours
            return re.compile(source, re.IGNORECASE | re.ASCII)
    except (re.error, RecursionError, OverflowError) as exc:
        raise RegexError(f"invalid regex: {exc}") from None


def has_nested_repetition(source: str) -> bool:
    """Heuristic: True if a group containing ``*``, ``+``, ``{m,}`` or ``|`` is repeated.

    Deliberately conservative: it may refuse a harmless pattern, never the reverse for
    the shapes it knows. Escapes and character classes are skipped.
    """
    return _scan(source)[0]


def _scan(source: str) -> tuple[bool, int]:
    """Return (has nested repetition, number of unbounded repetitions)."""
    risky: list[bool] = []  # one entry per open group: does it hold a repetition?
    repetitions = 0
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _skip_class(source, i)
            continue
        if char == "(":
            risky.append(False)
        elif char == ")":
            inner = risky.pop() if risky else False
            repeated = _repeats_at(source, i + 1)
            if inner and repeated:
                return True, repetitions
            if risky and (inner or repeated):
                risky[-1] = True
        elif char == "|" or _repeats_at(source, i):
            repetitions += char != "|"
            if risky:
                risky[-1] = True
        i += 1
    return False, repetitions


def _repeats_at(source: str, i: int) -> bool:
    """True if an unbounded-ish quantifier (``*``, ``+``, ``{m,...}``) starts at ``i``."""
    if i >= len(source):
        return False
    char = source[i]
    if char in "*+":
        return True
    if char == "{":
        close = source.find("}", i)
        return close > i and "," in source[i:close]
    return False


def _skip_class(source: str, i: int) -> int:
    """Index just past the character class opening at ``i`` (``]`` first is literal)."""
    j = i + 1
    if j < len(source) and source[j] == "^":
        j += 1
    if j < len(source) and source[j] == "]":
        j += 1
    while j < len(source):
        if source[j] == "\\":
            j += 2
            continue
        if source[j] == "]":
            return j + 1
        j += 1
    return j
