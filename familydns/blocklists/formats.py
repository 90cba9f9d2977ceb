"""Parsers for the blocklist formats in the wild, without I/O.

Lines go in, ``ParsedRule`` values and ``BadLine`` reports come out. A bad line never
stops a load: it is reported with its source and line number and the rest of the list is
used. Valid syntax that we cannot honour faithfully (``$dnstype``, URL paths, rewrites) is
*skipped* and counted, never half-applied.

Lists of a million lines are mostly plain names, so ``iter_stream`` reads text in blocks
and, for the domains, wildcard and hosts formats, checks a whole run of such lines with one
C-level regex match and hands it on as a ``NameRun``: one object for thousands of lines
instead of a ``ParsedRule`` each. Any other line goes through the same per-line scanner
as ``iter_rules``, so the rules, line numbers and bad-line reports are the same.

Format semantics (see the categories reference, section 5):

- hosts: ``0.0.0.0 a.com b.com``; every name is an EXACT rule whatever the address
  (Pi-hole semantics); ``localhost`` and friends are skipped.
- domains / wildcard: one name per line; the source's ``scope`` decides SUBTREE or EXACT.
  ``*.a.com`` and ``.a.com`` are always SUBTREE of a.com; ``/re/`` lines are regex rules
  and stray hosts lines are read as hosts.
- adblock: ``||a.com^`` SUBTREE, ``|a.com^`` EXACT, ``@@`` exception, ``$important``;
  any other modifier, cosmetic rule or URL pattern is skipped. A bare ``a.com`` line is
  SUBTREE, the closest DNS reading of an unanchored pattern.
- regex: one pattern per line, with or without the surrounding slashes.
- dnsmasq: ``address=/a.com/[0.0.0.0|::|#|]``, ``local=/a.com/`` and ``server=/a.com/`` block
  a.com's SUBTREE; forwarding (``server=/a.com/1.2.3.4``) and rewrites to real addresses
  are skipped.
- rpz: ``a.com CNAME .`` EXACT, ``*.a.com CNAME .`` SUBTREE (this also covers the apex;
  real zones list both anyway), ``CNAME *.`` and ``rpz-drop.`` block, ``rpz-passthru.`` is
  an exception; rewrites to other names, IP triggers and the zone header are skipped.
"""

from __future__ import annotations

import enum
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from familydns.blocklists.domains import (
    DomainError,
    is_ip_address,
    is_plain_name,
    normalize_domain,
)
from familydns.blocklists.regexes import RegexError, compile_rule_regex
from familydns.frozen import fast_init

FORMATS = frozenset({"auto", "hosts", "domains", "wildcard", "adblock", "regex", "dnsmasq", "rpz"})
SCOPES = frozenset({"subtree", "exact"})
SNIFF_LINES = 200
BAD_TEXT_MAX = 80
BLOCK_CHARS = 1 << 20  # text read at a time by iter_stream: ~50,000 lines, ~1 MB


class RuleKind(enum.Enum):
    SUBTREE = "subtree"  # the domain and all its subdomains
    EXACT = "exact"  # the domain only
    REGEX = "regex"  # a vetted regex searched in the name


@fast_init
@dataclass(frozen=True, slots=True)
class ParsedRule:
    """One rule from a list.

    ``pattern`` is a lowercase ASCII domain without trailing dot, or the regex source.
    """

    pattern: str
    kind: RuleKind
    exception: bool  # allow rule (@@..., rpz-passthru)
    important: bool  # AdBlock $important
    line: int  # 1-based


@dataclass(frozen=True, slots=True)
class NameRun:
    """Consecutive lines that each hold one plain name: many ``ParsedRule`` in one object.

    ``names[i]`` is on line ``first_line + i``: a valid lowercase ASCII name with at least
    one dot, as bytes (ready to hash). Never an exception nor ``$important``.
    """

    names: tuple[bytes, ...]
    kind: RuleKind
    first_line: int

    def rules(self) -> Iterator[ParsedRule]:
        """The same rules one by one, as the per-line scanners would give them."""
        kind, first = self.kind, self.first_line
        for offset, name in enumerate(self.names):
            yield _rule(name.decode("ascii"), kind, False, False, first + offset)


RuleItem = ParsedRule | NameRun


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be used, with where it was and why."""

    source: str
    line: int
    text: str  # truncated to about 80 characters
    reason: str


@dataclass(frozen=True, slots=True)
class ParseResult:
    rules: tuple[ParsedRule, ...]
    bad: tuple[BadLine, ...]
    skipped: int  # comments, blank lines, cosmetic and unsupported rules


class ParseTally:
    """Counters filled while a list is parsed lazily by ``iter_rules``.

    Mutable on purpose: the loader streams rules into the matcher without holding them,
    and reads the counts afterwards. ``keep_bad`` caps the kept examples (None = all).
    """

    __slots__ = ("bad", "bad_count", "keep_bad", "skipped", "source")

    def __init__(self, source: str, keep_bad: int | None = None) -> None:
        self.source = source
        self.keep_bad = keep_bad
        self.bad_count = 0
        self.bad: list[BadLine] = []
        self.skipped = 0

    def add_bad(self, line: int, text: str, reason: str) -> None:
        self.bad_count += 1
        if self.keep_bad is None or len(self.bad) < self.keep_bad:
            if len(text) > BAD_TEXT_MAX:
                text = text[: BAD_TEXT_MAX - 3] + "..."
            self.bad.append(BadLine(self.source, line, text, reason))


_rule = ParsedRule  # positional: (pattern, kind, exception, important, line)
_SUBTREE = RuleKind.SUBTREE
_EXACT = RuleKind.EXACT
_REGEX = RuleKind.REGEX


def parse_list(text: str, fmt: str, source: str, scope: str = "subtree") -> ParseResult:
    """Parse a whole list held in memory; see ``iter_stream`` for the streaming form."""
    tally = ParseTally(source)
    rules: list[ParsedRule] = []
    for item in iter_stream(io.StringIO(text, newline=None), fmt, source, scope, tally):
        if isinstance(item, NameRun):
            rules.extend(item.rules())
        else:
            rules.append(item)
    return ParseResult(tuple(rules), tuple(tally.bad), tally.skipped)


def iter_rules(
    lines: Iterable[str],
    fmt: str,
    source: str,
    scope: str = "subtree",
    tally: ParseTally | None = None,
) -> Iterator[ParsedRule]:
    """Yield the rules of a list lazily, line by line; bad and skipped lines are counted
    in ``tally``.

    ``lines`` may keep their line endings. Raises ValueError at once for an unknown
    ``fmt`` or ``scope`` (a config error, not a list error).
    """
    _check_format(fmt, scope)
    return _iter_rules(lines, fmt, scope, tally if tally is not None else ParseTally(source))


def iter_stream(
    stream: TextIO,
    fmt: str,
    source: str,
    scope: str = "subtree",
    tally: ParseTally | None = None,
) -> Iterator[RuleItem]:
    """Like ``iter_rules`` for a text stream, but runs of plain lines come as ``NameRun``.

    ``stream`` must already translate line endings to ``\n`` (``newline=None``), as
    iterating it line by line would. Raises ValueError at once for an unknown ``fmt`` or
    ``scope``.
    """
    _check_format(fmt, scope)
    return _iter_stream(stream, fmt, scope, tally if tally is not None else ParseTally(source))


def _check_format(fmt: str, scope: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown list format {fmt!r}; valid: {', '.join(sorted(FORMATS))}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid: exact, subtree")


def _iter_rules(
    lines: Iterable[str], fmt: str, scope: str, tally: ParseTally
) -> Iterator[ParsedRule]:
    numbered: Iterator[str] = _strip_bom(iter(lines))
    if fmt == "auto":
        head = list(itertools.islice(numbered, SNIFF_LINES))
        fmt = sniff_format(head)
        numbered = itertools.chain(head, numbered)
    kind = _SUBTREE if scope == "subtree" else _EXACT
    yield from _SCANNERS[fmt](enumerate(numbered, 1), kind, tally)


def _strip_bom(lines: Iterator[str]) -> Iterator[str]:
    for first in lines:
        yield first.lstrip("\ufeff")
        break
    yield from lines


def _iter_stream(stream: TextIO, fmt: str, scope: str, tally: ParseTally) -> Iterator[RuleItem]:
    blocks = _strip_block_bom(_blocks(stream))
    if fmt == "auto":
        fmt, blocks = _sniff_blocks(blocks)
    kind = _SUBTREE if scope == "subtree" else _EXACT
    bulk = _BULK.get(fmt)
    if bulk is None:
        yield from _SCANNERS[fmt](enumerate(_lines(blocks), 1), kind, tally)
        return
    line = 1
    for block in blocks:
        yield from _scan_block(block, line, bulk, kind, tally)
        line += block.count("\n")


def _sniff_blocks(blocks: Iterator[str]) -> tuple[str, Iterator[str]]:
    """The format told by the first ``SNIFF_LINES`` lines, and all the blocks again."""
    head: list[str] = []
    lines = 0
    for block in blocks:
        head.append(block)
        lines += block.count("\n")
        if lines >= SNIFF_LINES:
            break
    fmt = sniff_format(itertools.islice(_lines(head), SNIFF_LINES))
    return fmt, itertools.chain(head, blocks)


def _blocks(stream: TextIO) -> Iterator[str]:
    """The stream's text in blocks of whole lines; only the last may lack its ``\n``."""
    pieces: list[str] = []
    while chunk := stream.read(BLOCK_CHARS):
        cut = chunk.rfind("\n") + 1
        if cut:
            pieces.append(chunk[:cut])
            yield "".join(pieces)
            pieces.clear()
            chunk = chunk[cut:]
        if chunk:
            pieces.append(chunk)
    if pieces:
        yield "".join(pieces)


def _strip_block_bom(blocks: Iterator[str]) -> Iterator[str]:
    """Drop leading U+FEFF as ``_strip_bom`` does from the first line (which, made of
    nothing else, still counts as a line)."""
    for first in blocks:
        yield first.lstrip("\ufeff") or "\n"
        break
    yield from blocks


def _lines(blocks: Iterable[str]) -> Iterator[str]:
    """Split blocks into lines keeping their ``\n``, as iterating the stream would."""
    for block in blocks:
        lines = block.split("\n")
        last = lines.pop()
        for line in lines:
            yield line + "\n"
        if last:
            yield last


@dataclass(frozen=True, slots=True)
class _Bulk:
    """How one format's plain lines are recognised and read in bulk."""

    run: Callable[[str, int], re.Match[str] | None]  # matches the plain lines from a position
    names: Callable[[str], list[bytes]]  # the names of a matched run, lowercased
    kind: RuleKind | None  # the rules' kind, or None for the source's scope
    scanner: Scanner  # the per-line scanner for every other line


# One name of the shape ``is_plain_name`` accepts, in either case, as a whole line or the
# second field of a hosts line. A name parses in one way only, so possessive quantifiers
# change no result; they spare the engine from backtracking into labels (a third faster),
# and ``*+`` makes a run stop at the first other line without retrying the lines before.
_NAME = r"(?:[a-zA-Z0-9_-]{1,63}+\.)++[a-zA-Z][a-zA-Z0-9-]{0,62}+"
_DOMAINS_RUN = re.compile(rf"(?:(?=[^\n]{{1,253}}+\n){_NAME}\n)*+")
_HOSTS_RUN = re.compile(
    r"(?:[ \t]*+(?:0\.0\.0\.0|127\.0\.0\.1|::1?)[ \t]++"
    r"(?!(?i:localhost\.localdomain)[ \t]*\n)"
    rf"(?=[a-zA-Z0-9_.-]{{1,253}}+[ \t]*+\n){_NAME}[ \t]*+\n)*+"
)
_HOSTS_NAME = re.compile(rb"^[ \t]*[0-9.:]+[ \t]+([^ \t\n]+)", re.MULTILINE)


def _domain_run_names(run: str) -> list[bytes]:
    """One name a line; the run regex let only ASCII through."""
    names = run.lower().encode("ascii").split(b"\n")
    names.pop()  # after the run's final newline
    return names


def _hosts_run_names(run: str) -> list[bytes]:
    """The name after the address on each line, in one C-level pass."""
    return _HOSTS_NAME.findall(run.lower().encode("ascii"))


def _scan_block(
    block: str, line: int, bulk: _Bulk, kind: RuleKind, tally: ParseTally
) -> Iterator[RuleItem]:
    """Runs of plain lines as NameRun; each stretch of other lines through the scanner."""
    run, pos, size = bulk.run, 0, len(block)
    run_kind = bulk.kind or kind
    while pos < size:
        match = run(block, pos)
        end = match.end() if match else pos
        if end > pos:
            names = bulk.names(block[pos:end])
            yield NameRun(tuple(names), run_kind, line)
            line += len(names)
            pos = end
            continue
        end = _next_run(block, pos, run)
        lines = block[pos:end].split("\n")
        if not lines[-1]:
            lines.pop()
        yield from bulk.scanner(enumerate(lines, line), kind, tally)
        line += len(lines)
        pos = end


def _next_run(block: str, pos: int, run: Callable[[str, int], re.Match[str] | None]) -> int:
    """Where the lines from ``pos`` that are not plain end: the next plain line or the end."""
    size = len(block)
    while pos < size:
        newline = block.find("\n", pos)
        if newline < 0:
            return size
        pos = newline + 1
        match = run(block, pos)
        if match and match.end() > pos:
            return pos
    return size


def sniff_format(head: Iterable[str]) -> str:
    """Guess a list's format from its first meaningful lines; ``domains`` if nothing tells.

    The first line that is characteristic of one format decides.
    """
    for raw in head:
        line = raw.strip().lstrip("\ufeff").lower()
        if not line or line[0] in "#!;":
            continue
        if line.startswith(("[adblock", "||", "@@", "|")):
            return "adblock"
        if line.startswith(("address=/", "server=/", "local=/")):
            return "dnsmasq"
        if line.startswith(("$ttl", "$origin")):
            return "rpz"
        tokens = line.split()
        if len(tokens) >= 3 and ("soa" in tokens or "cname" in tokens):
            return "rpz"
        if len(tokens) >= 2 and is_ip_address(tokens[0]):
            return "hosts"
    return "domains"


Numbered = Iterator[tuple[int, str]]


def _scan_domains(numbered: Numbered, kind: RuleKind, tally: ParseTally) -> Iterator[ParsedRule]:
    """Plain domains (also ``*.x``, ``.x``, ``/re/`` and hosts lines) with a lean fast path."""
    plain = is_plain_name
    for n, raw in numbered:
        line = raw.strip().lower()
        if plain(line):
            yield _rule(line, kind, False, False, n)
        elif not line or line[0] in "#!":
            tally.skipped += 1
        else:
            yield from _domains_line(raw.strip(), n, kind, tally)


def _domains_line(line: str, n: int, kind: RuleKind, tally: ParseTally) -> Iterator[ParsedRule]:
    try:
        name = normalize_domain(line)
    except DomainError:
        pass
    else:
        yield _rule(name, kind, False, False, n)
        return
    if len(line) > 2 and line[0] == "/" and line[-1] == "/":
        yield from _regex_rule(line[1:-1], n, False, False, line, tally)
        return
    body = _cut_comment(line)
    tokens = body.split()
    if not tokens:
        tally.skipped += 1
        return
    if len(tokens) > 1:
        if is_ip_address(tokens[0]):
            yield from _hosts_names(tokens[1:], n, line, tally)
        else:
            tally.add_bad(n, line, "unexpected text after the domain")
        return
    yield from _domain_rule(tokens[0], n, kind, False, False, line, tally)


_NULL_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1"})


def _scan_hosts(numbered: Numbered, kind: RuleKind, tally: ParseTally) -> Iterator[ParsedRule]:
    plain, nulls, ignored = is_plain_name, _NULL_ADDRESSES, _HOSTS_IGNORED
    for n, raw in numbered:
        tokens = raw.split()
        if len(tokens) == 2 and tokens[0] in nulls:
            name = tokens[1].lower()
            if plain(name) and name not in ignored:
                yield _rule(name, _EXACT, False, False, n)
                continue
        line = raw.strip()
        if not line or line[0] in "#!":
            tally.skipped += 1
            continue
        tokens = _cut_comment(line).split()
        if not tokens:
            tally.skipped += 1
        elif is_ip_address(tokens[0]):
            if len(tokens) == 1:
                tally.add_bad(n, line, "address without a host name")
            else:
                yield from _hosts_names(tokens[1:], n, line, tally)
        elif len(tokens) == 1:
            yield from _domain_rule(tokens[0], n, _EXACT, False, False, line, tally)
        else:
            tally.add_bad(n, line, "hosts line must start with an IP address")


_HOSTS_IGNORED = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",
    }
)


def _hosts_names(names: list[str], n: int, line: str, tally: ParseTally) -> Iterator[ParsedRule]:
    produced = False
    for name in names:
        if name.lower() in _HOSTS_IGNORED:
            continue
        produced = True
        yield from _domain_rule(name, n, _EXACT, False, False, line, tally)
    if not produced:
        tally.skipped += 1


def _scan_adblock(numbered: Numbered, kind: RuleKind, tally: ParseTally) -> Iterator[ParsedRule]:
    plain = is_plain_name
    for n, raw in numbered:
        line = raw.strip()
        if line[:2] == "||" and line[-1:] == "^":
            name = line[2:-1].lower()
            if plain(name):
                yield _rule(name, _SUBTREE, False, False, n)
                continue
        if not line or line[0] in "#!" or (line[0] == "[" and line[-1] == "]"):
            tally.skipped += 1
            continue
        yield from _adblock_line(line, n, tally)


_COSMETIC = ("##", "#@#", "#?#", "#$#", "#%#", "#@$#", "#@%#", "#@?#", "$$", "$@$")
_URL_CHARS = frozenset("/:?=&*^|")


def _adblock_line(line: str, n: int, tally: ParseTally) -> Iterator[ParsedRule]:
    if any(marker in line for marker in _COSMETIC):
        tally.skipped += 1
        return
    exception = line.startswith("@@")
    body = line[2:] if exception else line
    if body[:1].isdigit() or body[:1] == ":":
        tokens = body.split()
        if len(tokens) > 1 and is_ip_address(tokens[0]):
            yield from _hosts_names(tokens[1:], n, line, tally)
            return
    pattern, modifiers = _split_modifiers(body)
    important = False
    for modifier in modifiers:
        if modifier == "important":
            important = True
        else:
            tally.skipped += 1  # $badfilter, $dnstype, $client, ...: not honoured
            return
    if len(pattern) > 2 and pattern[0] == "/" and pattern[-1] == "/":
        yield from _regex_rule(pattern[1:-1], n, exception, important, line, tally)
        return
    kind = _SUBTREE
    if pattern.startswith("||"):
        pattern = pattern[2:]
    elif pattern.startswith("|"):
        kind, pattern = _EXACT, pattern[1:]
    pattern = pattern.removesuffix("|")
    pattern = pattern.removesuffix("^")
    if pattern.startswith("*."):
        kind, pattern = _SUBTREE, pattern[2:]
    if not pattern:
        tally.add_bad(n, line, "empty pattern")
    elif not _URL_CHARS.isdisjoint(pattern):
        tally.skipped += 1  # URL path, port or wildcard pattern: not a DNS rule
    else:
        yield from _domain_rule(pattern, n, kind, exception, important, line, tally)


def _split_modifiers(body: str) -> tuple[str, list[str]]:
    """Split ``pattern$mod1,mod2``; a regex pattern may itself contain ``$``."""
    if body.startswith("/"):
        end = body.rfind("/$")
        if end > 0:
            return body[: end + 1], _modifier_list(body[end + 2 :])
        return body, []
    dollar = body.find("$")
    if dollar < 0:
        return body, []
    return body[:dollar], _modifier_list(body[dollar + 1 :])


def _modifier_list(text: str) -> list[str]:
    return [part.strip().lower() for part in text.split(",")] if text.strip() else ["$"]


def _scan_regex(numbered: Numbered, kind: RuleKind, tally: ParseTally) -> Iterator[ParsedRule]:
    for n, raw in numbered:
        line = raw.strip()
        if not line or line[0] == "#":
            tally.skipped += 1
            continue
        if ";querytype=" in line or line.endswith(";invert"):
            tally.skipped += 1  # Pi-hole regex extensions: not honoured
            continue
        source = line[1:-1] if len(line) > 2 and line[0] == "/" and line[-1] == "/" else line
        yield from _regex_rule(source, n, False, False, line, tally)


_NULL_TARGETS = frozenset({"", "#", "0.0.0.0", "::", "127.0.0.1", "::1"})


def _scan_dnsmasq(numbered: Numbered, kind: RuleKind, tally: ParseTally) -> Iterator[ParsedRule]:
    plain = is_plain_name
    for n, raw in numbered:
        line = raw.strip()
        parts = line.split("/")
        if len(parts) == 3 and plain(parts[1].lower()):
            head, target = parts[0], parts[2]
            if (head == "address=" and target in _NULL_TARGETS) or (
                target == "" and head in ("local=", "server=")
            ):
                yield _rule(parts[1].lower(), _SUBTREE, False, False, n)
                continue
        if not line or line[0] == "#":
            tally.skipped += 1
            continue
        directive, _, rest = line.partition("=")
        directive = directive.strip().lower()
        if directive not in ("address", "server", "local") or not rest.startswith("/"):
            tally.skipped += 1
            continue
        parts = _cut_comment(rest).strip().split("/")
        names, target = parts[1:-1], parts[-1].strip()
        if not names:
            tally.add_bad(n, line, "no domain between slashes")
            continue
        blocks = target in _NULL_TARGETS if directive == "address" else target == ""
        if not blocks:
            tally.skipped += 1  # forwarding or rewriting to a real address
            continue
        for name in names:
            if name in ("", "#"):
                tally.add_bad(n, line, "wildcard for every domain")
            else:
                yield from _domain_rule(name.lstrip("."), n, _SUBTREE, False, False, line, tally)


def _scan_rpz(numbered: Numbered, kind: RuleKind, tally: ParseTally) -> Iterator[ParsedRule]:
    zone = _RpzZone()
    for n, raw in numbered:
        yield from zone.line(raw, n, tally)


_RPZ_TRIGGERS = frozenset({"rpz-ip", "rpz-nsip", "rpz-nsdname", "rpz-client-ip"})
_RPZ_CLASSES = frozenset({"in", "ch", "hs", "cs"})
_RPZ_HEADER_TYPES = frozenset({"soa", "ns"})


class _RpzZone:
    """State of an RPZ zone file being read: origin, open parentheses, last owner."""

    __slots__ = ("depth", "origin", "owner")

    def __init__(self) -> None:
        self.origin: str | None = None
        self.depth = 0
        self.owner: str | None = None

    def line(self, raw: str, n: int, tally: ParseTally) -> Iterator[ParsedRule]:
        if self.depth == 0 and not raw[:1].isspace():
            tokens = raw.split()
            if len(tokens) == 3 and tokens[2] == "." and tokens[1].lower() == "cname":
                name = tokens[0].lower()
                # a relative owner is the policy name itself; rpz-ip & co. are triggers
                if is_plain_name(name) and not name.rpartition(".")[2].startswith("rpz-"):
                    self.owner = tokens[0]
                    yield _rule(name, _EXACT, False, False, n)
                    return
        text = raw.split(";", 1)[0]
        stripped = text.strip()
        if self.depth > 0 or not stripped or stripped[0] == "#":
            self.depth = max(0, self.depth + text.count("(") - text.count(")"))
            tally.skipped += 1
            return
        self.depth = max(0, text.count("(") - text.count(")"))
        if stripped[0] == "$":
            directive = stripped.split()
            if directive[0].lower() == "$origin" and len(directive) > 1:
                self.origin = directive[1].lower().rstrip(".") or None
            tally.skipped += 1  # $TTL, $ORIGIN, $INCLUDE
            return
        tokens = stripped.split()
        if not raw[:1].isspace():
            self.owner = tokens.pop(0)
        if self.owner is None:
            tally.add_bad(n, raw.strip(), "record without an owner name")
            return
        while tokens and (_is_ttl(tokens[0]) or tokens[0].lower() in _RPZ_CLASSES):
            tokens.pop(0)
        if not tokens:
            tally.add_bad(n, raw.strip(), "record without a type")
            return
        rtype, rdata = tokens[0].lower(), tokens[1:]
        if rtype in _RPZ_HEADER_TYPES:
            if rtype == "soa" and self.origin is None and self.owner.endswith("."):
                self.origin = self.owner[:-1].lower()
            tally.skipped += 1
            return
        yield from self._record(self.owner, rtype, rdata, n, raw.strip(), tally)

    def _record(
        self, owner: str, rtype: str, rdata: list[str], n: int, line: str, tally: ParseTally
    ) -> Iterator[ParsedRule]:
        exception = False
        if rtype == "cname" and rdata:
            target = rdata[0].lower()
            if target == "rpz-passthru.":
                exception = True
            elif target not in (".", "*.", "rpz-drop."):
                tally.skipped += 1  # rewrite (safe search, walled garden) or tcp-only
                return
        elif not (rtype in ("a", "aaaa") and rdata and rdata[0] in _NULL_TARGETS):
            tally.skipped += 1
            return
        name = self._relative(owner)
        if name is None:
            tally.add_bad(n, line, f"owner outside the zone {self.origin}")
            return
        if not name or name == "@":
            tally.skipped += 1
            return
        if name.rsplit(".", 1)[-1] in _RPZ_TRIGGERS:
            tally.skipped += 1  # IP, NSDNAME and client-IP triggers are not supported
            return
        kind = _EXACT
        if name.startswith("*."):
            kind, name = _SUBTREE, name[2:]
        yield from _domain_rule(name, n, kind, exception, False, line, tally)

    def _relative(self, owner: str) -> str | None:
        """Strip the zone origin from an absolute owner; relative names are used as is."""
        if owner == "@" or not owner.endswith("."):
            return owner
        name = owner[:-1].lower()
        if self.origin is None:
            return name
        if name == self.origin:
            return ""
        suffix = "." + self.origin
        return name[: -len(suffix)] if name.endswith(suffix) else None


def _is_ttl(token: str) -> bool:
    return token[:1].isdigit() and token.rstrip("smhdwSMHDW").isdigit()


def _cut_comment(line: str) -> str:
    """Drop an inline ``# comment`` (only when preceded by whitespace)."""
    for marker in (" #", "\t#"):
        cut = line.find(marker)
        if cut >= 0:
            line = line[:cut]
    return line


def _domain_rule(
    token: str,
    n: int,
    kind: RuleKind,
    exception: bool,
    important: bool,
    line: str,
    tally: ParseTally,
) -> Iterator[ParsedRule]:
    if token.startswith("*."):
        kind, token = _SUBTREE, token[2:]
    elif token.startswith(".") and len(token) > 1:
        kind, token = _SUBTREE, token[1:]
    try:
        name = normalize_domain(token)
    except DomainError as exc:
        tally.add_bad(n, line, str(exc))
        return
    yield _rule(name, kind, exception, important, n)


def _regex_rule(
    source: str, n: int, exception: bool, important: bool, line: str, tally: ParseTally
) -> Iterator[ParsedRule]:
    try:
        compile_rule_regex(source)
    except RegexError as exc:
        tally.add_bad(n, line, str(exc))
        return
    yield _rule(source, _REGEX, exception, important, n)


Scanner = Callable[[Numbered, RuleKind, ParseTally], Iterator[ParsedRule]]

_SCANNERS: dict[str, Scanner] = {
    "hosts": _scan_hosts,
    "domains": _scan_domains,
    "wildcard": _scan_domains,
    "adblock": _scan_adblock,
    "regex": _scan_regex,
    "dnsmasq": _scan_dnsmasq,
    "rpz": _scan_rpz,
}

_DOMAINS_BULK = _Bulk(_DOMAINS_RUN.match, _domain_run_names, None, _scan_domains)
_BULK: dict[str, _Bulk] = {
    "domains": _DOMAINS_BULK,
    "wildcard": _DOMAINS_BULK,
    "hosts": _Bulk(_HOSTS_RUN.match, _hosts_run_names, _EXACT, _scan_hosts),
}
