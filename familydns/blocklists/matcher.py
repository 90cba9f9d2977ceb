"""A compact, immutable domain matcher for millions of list entries.

Layout: each domain rule is a stable 64-bit hash of the name in one sorted ``array('Q')``
and a packed record (line, list id, flags) at the same index in a second ``array('Q')``:
16 bytes per rule and no Python object per rule. A small index of bucket starts (by the
top bits of the hash, about 16-32 rules per bucket) narrows each binary search to a few
steps. A lookup hashes each suffix of the query name (``a.b.example.com``,
``b.example.com``, ``example.com``, and ``com`` only if some rule has a single label), so
its cost grows with the number of labels, not with the size of the lists. ``Hit.domain``
is the suffix that matched, so the names themselves never need to be stored.

The hash is BLAKE2b with an 8-byte digest, stable across processes and machines (a
compiled form can be saved later). With 64 bits, a false match needs a collision between
a queried suffix and one of n entries: probability about n / 2**64 per lookup, 5e-14 for
a million entries; negligible, and BLAKE2b makes crafting one impractical.

Regex rules are few; they are kept compiled and tried last, on every query.
"""

from __future__ import annotations

import json
import re
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b

from familydns.blocklists.formats import ParsedRule, RuleKind
from familydns.blocklists.regexes import RegexError, compile_rule_regex

_EXACT_FLAG = 1
_EXCEPTION_FLAG = 2
_IMPORTANT_FLAG = 4
_REGEX_FLAG = 8
_LIST_MASK = (1 << 24) - 1
_MAX_LINE = 0xFFFFFFFF


_from_bytes = int.from_bytes
# Copying a fresh BLAKE2b-64 state is ~30% faster than constructing one with keyword
# arguments; the prototype is never updated, so sharing it between threads is safe.
_new_hasher = blake2b(digest_size=8).copy


def domain_hash(name: str) -> int:
    """Stable 64-bit hash of a normalised name (little-endian BLAKE2b-64 of its UTF-8)."""
    hasher = _new_hasher()
    hasher.update(name.encode("utf-8", "surrogatepass"))
    return _from_bytes(hasher.digest(), "little")


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching rule: which list, which entry, and what kind of rule it was."""

    category: str
    domain: str  # the list entry that matched (a suffix of the name), or the regex source
    kind: RuleKind
    exception: bool
    important: bool
    source: str
    line: int  # 1-based line in that source


class MatcherBuilder:
    """Collects rules list by list, then ``build()`` sorts them into a ``Matcher``.

    Not thread-safe; use one builder per load. If the rule iterable passed to ``add``
    raises (an I/O error halfway through a file), that call's rules are rolled back so the
    list is either fully in or fully out.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._keys = array("Q")
        self._records = array("Q")
        self._regexes: list[tuple[re.Pattern[str], str, int]] = []
        self._lists: list[tuple[str, str]] = []
        self._list_ids: dict[tuple[str, str], int] = {}
        self._counts: dict[str, int] = {}
        self._categories: set[str] = set()
        self._single_label = False

    def add(self, rules: Iterable[ParsedRule], category: str, source: str) -> None:
        """Add the rules of one source, filed under ``category``.

        Raises RegexError for a REGEX rule that does not pass ``compile_rule_regex`` (the
        parsers never produce one).
        """
        base = self._list_id(category, source) << 8
        keys, records, regexes = self._keys, self._records, self._regexes
        mark, regex_mark = len(keys), len(regexes)
        append_key, append_record = keys.frombytes, records.append
        new_hasher = _new_hasher
        exact_kind, regex_kind = RuleKind.EXACT, RuleKind.REGEX
        single_label = False
        try:
            for rule in rules:
                line = min(rule.line, _MAX_LINE)
                record = line << 32 | base
                if rule.exception:
                    record |= _EXCEPTION_FLAG
                if rule.important:
                    record |= _IMPORTANT_FLAG
                pattern, kind = rule.pattern, rule.kind
                if kind is regex_kind:
                    compiled = compile_rule_regex(pattern)
                    regexes.append((compiled, pattern, record | _REGEX_FLAG))
                    continue
                if kind is exact_kind:
                    record |= _EXACT_FLAG
                if "." not in pattern:
                    single_label = True
                hasher = new_hasher()
                hasher.update(pattern.encode())
                append_key(hasher.digest())
                append_record(record)
        except BaseException:
            del keys[mark:]
            del records[mark:]
            del regexes[regex_mark:]
            raise
        self._single_label |= single_label
        added = len(keys) - mark + len(regexes) - regex_mark
        self._counts[source] = self._counts.get(source, 0) + added
        if added:
            self._categories.add(category)

    def rule_count(self, source: str) -> int:
        """Rules (domain and regex) added so far for ``source``."""
        return self._counts.get(source, 0)

    def _list_id(self, category: str, source: str) -> int:
        key = (category, source)
        list_id = self._list_ids.get(key)
        if list_id is None:
            list_id = len(self._lists)
            if list_id > _LIST_MASK:
                raise ValueError("too many (category, source) lists")
            self._lists.append(key)
            self._list_ids[key] = list_id
        return list_id

    def build(self) -> Matcher:
        """Sort the collected rules into an immutable Matcher and empty the builder."""
        keys = self._keys
        if sys.byteorder == "big":
            keys.byteswap()  # frombytes stored the little-endian digests natively
        sorted_keys, sorted_records, starts, shift = _sort_parallel(keys, self._records)
        del keys
        matcher = Matcher(
            _Table(sorted_keys, sorted_records, starts, shift, self._single_label),
            tuple(self._regexes),
            tuple(self._lists),
            dict(self._counts),
            frozenset(self._categories),
        )
        self._reset()
        return matcher


def _sort_parallel(
    keys: array[int], records: array[int]
) -> tuple[array[int], array[int], array[int], int]:
    """Sort ``keys``, permuting ``records`` alike and keeping equal keys in insertion order.

    Returns the sorted arrays, the bucket starts and the shift giving a key's bucket. A
    plain argsort would create two Python ints per rule (about 80 MB for a million); this
    bucket sort on the top bits of the (uniform) hashes needs only the output arrays
    plus small per-bucket sorts.
    """
    count = len(keys)
    bits = max(0, count.bit_length() - 5)  # 16 to 32 rules per bucket on average
    shift = 64 - bits
    starts = array("Q", bytes(8 * ((1 << bits) + 1)))
    for key in keys:
        starts[(key >> shift) + 1] += 1
    total = 0
    for index, size in enumerate(starts):
        total += size
        starts[index] = total
    cursor = array("Q", starts)
    out_keys = array("Q", bytes(8 * count))
    out_records = array("Q", bytes(8 * count))
    for key, record in zip(keys, records):
        bucket = key >> shift
        slot = cursor[bucket]
        out_keys[slot] = key
        out_records[slot] = record
        cursor[bucket] = slot + 1
    del cursor
    low = 0
    for high in starts[1:]:
        if high - low > 1:
            bucket_keys = out_keys[low:high]
            order = sorted(range(high - low), key=bucket_keys.__getitem__)
            bucket_records = out_records[low:high]
            out_keys[low:high] = array("Q", [bucket_keys[i] for i in order])
            out_records[low:high] = array("Q", [bucket_records[i] for i in order])
        low = high
    return out_keys, out_records, starts, shift


@dataclass(frozen=True, slots=True)
class _Table:
    """The sorted hash table of domain rules."""

    keys: array[int]
    records: array[int]
    starts: array[int]  # starts[b]:starts[b + 1] is the slice of bucket b
    shift: int  # bucket of a key = key >> shift
    single_label: bool  # some rule is a single label, so the last label must be looked up


_COMPILED_MAGIC = b"FDNSMAT1"
_EMPTY_TABLE = _Table(array("Q"), array("Q"), array("Q", [0, 0]), 64, False)
_Best = dict[tuple[str, bool], tuple[tuple[bool, bool, int, bool], str, int]]


class Matcher:
    """Immutable set of rules from many lists; safe to share between threads.

    Build with ``MatcherBuilder``; replace the whole matcher to change lists.
    """

    __slots__ = ("_categories", "_counts", "_lists", "_regexes", "_table")

    def __init__(
        self,
        table: _Table,
        regexes: tuple[tuple[re.Pattern[str], str, int], ...],
        lists: tuple[tuple[str, str], ...],
        counts: dict[str, int],
        categories: frozenset[str],
    ) -> None:
        self._table = table
        self._regexes = regexes
        self._lists = lists
        self._counts = counts
        self._categories = categories

    @classmethod
    def empty(cls) -> Matcher:
        return cls(_EMPTY_TABLE, (), (), {}, frozenset())

    def to_bytes(self) -> bytes:
        """The compiled form: a JSON header, then the three arrays as raw bytes, so a
        restart loads a million rules with one read instead of parsing and sorting."""
        table = self._table
        header = json.dumps({
            "byteorder": sys.byteorder,
            "lengths": [len(table.keys), len(table.records), len(table.starts)],
            "shift": table.shift,
            "single_label": table.single_label,
            "regexes": [[source, record] for _p, source, record in self._regexes],
            "lists": [list(pair) for pair in self._lists],
            "counts": self._counts,
            "categories": sorted(self._categories),
        }).encode()
        return b"".join((_COMPILED_MAGIC, len(header).to_bytes(8, "little"), header,
                         table.keys.tobytes(), table.records.tobytes(),
                         table.starts.tobytes()))

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Matcher:
        """Inverse of ``to_bytes``; ValueError when the data is not a compiled matcher."""
        data = memoryview(data)
        magic = len(_COMPILED_MAGIC)
        if bytes(data[:magic]) != _COMPILED_MAGIC or len(data) < magic + 8:
            raise ValueError("not a compiled familydns matcher")
        size = int.from_bytes(data[magic:magic + 8], "little")
        try:
            head = json.loads(bytes(data[magic + 8:magic + 8 + size]))
            if head["byteorder"] != sys.byteorder:
                raise ValueError("compiled on a machine of the other byte order")
            arrays = []
            off = magic + 8 + size
            for length in head["lengths"]:
                part = array("Q")
                part.frombytes(data[off:off + 8 * length])
                if len(part) != length:
                    raise ValueError("truncated compiled matcher")
                arrays.append(part)
                off += 8 * length
            regexes = tuple((compile_rule_regex(src), src, int(rec))
                            for src, rec in head["regexes"])
            table = _Table(arrays[0], arrays[1], arrays[2], int(head["shift"]),
                           bool(head["single_label"]))
            return cls(table, regexes, tuple((c, s) for c, s in head["lists"]),
                       {str(k): int(v) for k, v in head["counts"].items()},
                       frozenset(head["categories"]))
        except (KeyError, TypeError, json.JSONDecodeError, RegexError) as exc:
            raise ValueError(f"damaged compiled matcher: {exc}") from None

    def __len__(self) -> int:
        """Number of domain rules (regex rules not included)."""
        return len(self._table.keys)

    def categories(self) -> frozenset[str]:
        """Categories that have at least one rule."""
        return self._categories

    def rule_count(self, source: str) -> int:
        """Rules (domain and regex) contributed by ``source``; 0 if unknown."""
        return self._counts.get(source, 0)

    def memory_bytes(self) -> int:
        """Bytes held by the rule arrays (the part that grows with list size)."""
        table = self._table
        return sum(
            part.buffer_info()[1] * part.itemsize
            for part in (table.keys, table.records, table.starts)
        )

    def match(self, name: str) -> tuple[Hit, ...]:
        """All hits for ``name``: at most one per (category, exception) pair.

        The name is lowercased and its trailing dot dropped (clients send 0x20 mixed
        case). Within a pair the hit kept is ranked by, in order: ``important`` (so that a
        broad ``$important`` rule is never hidden by a narrower plain one), domain rules
        before regex rules, the longest matching domain, EXACT before SUBTREE on the same
        domain, then list order. Hits come sorted by category, blocks before exceptions.
        """
        name = name.rstrip(".").lower()
        if not name:
            return ()
        best: _Best = {}
        table = self._table
        if table.keys:
            self._match_domains(name, table, best)
        for pattern, source, record in self._regexes:
            if pattern.search(name):
                self._offer(best, record, (bool(record & _IMPORTANT_FLAG), False, 0, False), source)
        if not best:
            return ()
        hits = [self._hit(domain, record) for _, domain, record in best.values()]
        hits.sort(key=_hit_order)
        return tuple(hits)

    def _match_domains(self, name: str, table: _Table, best: _Best) -> None:
        keys, records, starts, shift = table.keys, table.records, table.starts, table.shift
        single_label = table.single_label
        new_hasher = _new_hasher
        data = name.encode("utf-8", "surrogatepass")
        start = 0
        while True:
            dot = data.find(b".", start)
            if dot < 0 and not single_label:
                return
            suffix = data[start:] if start else data
            hasher = new_hasher()
            hasher.update(suffix)
            key = _from_bytes(hasher.digest(), "little")
            bucket = key >> shift
            high = starts[bucket + 1]
            index = bisect_left(keys, key, starts[bucket], high)
            while index < high and keys[index] == key:
                record = records[index]
                index += 1
                exact = bool(record & _EXACT_FLAG)
                if exact and start:
                    continue
                rank = (bool(record & _IMPORTANT_FLAG), True, len(suffix), exact)
                domain = suffix.decode("utf-8", "surrogatepass")
                self._offer(best, record, rank, domain)
            if dot < 0:
                return
            start = dot + 1

    def _offer(
        self, best: _Best, record: int, rank: tuple[bool, bool, int, bool], domain: str
    ) -> None:
        pair = (self._lists[record >> 8 & _LIST_MASK][0], bool(record & _EXCEPTION_FLAG))
        current = best.get(pair)
        if current is None or rank > current[0]:
            best[pair] = (rank, domain, record)

    def _hit(self, domain: str, record: int) -> Hit:
        category, source = self._lists[record >> 8 & _LIST_MASK]
        if record & _REGEX_FLAG:
            kind = RuleKind.REGEX
        elif record & _EXACT_FLAG:
            kind = RuleKind.EXACT
        else:
            kind = RuleKind.SUBTREE
        return Hit(
            category=category,
            domain=domain,
            kind=kind,
            exception=bool(record & _EXCEPTION_FLAG),
            important=bool(record & _IMPORTANT_FLAG),
            source=source,
            line=record >> 32,
        )


def _hit_order(hit: Hit) -> tuple[str, bool]:
    return hit.category, hit.exception
