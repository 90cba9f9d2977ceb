"""Domain names as parents write them, and the subtree test every parent rule uses.

A parent's ``deny: [example.com]`` means example.com and everything under it, so rules
are stored as a frozenset of names and a query walks its own suffixes: the cost is one
set lookup per label, whatever the size of the list.
"""

from __future__ import annotations

from collections.abc import Container, Iterator

from familydns.blocklists.domains import normalize_domain


def normalise_domain(text: str) -> str:
    """A parent's entry as the matcher spells names; ``*.a.com`` means a.com's subtree.

    Raises ValueError naming the value and the reason (a pasted URL, a bare word), so
    the mistake is reported at load rather than leaving a rule that never matches.
    """
    name = text.strip().removeprefix("*.")
    try:
        return normalize_domain(name)
    except ValueError as exc:
        raise ValueError(f"bad domain {text!r}: {exc}") from None


def suffixes(name: str) -> Iterator[str]:
    """``a.b.com``, ``b.com``, ``com``: the name and every parent domain, longest first."""
    while True:
        yield name
        dot = name.find(".")
        if dot < 0:
            return
        name = name[dot + 1:]


def match_subtree(name: str, domains: Container[str]) -> str | None:
    """The entry of ``domains`` equal to ``name`` or to its nearest parent domain."""
    if not domains:
        return None
    for suffix in suffixes(name):
        if suffix in domains:
            return suffix
    return None
