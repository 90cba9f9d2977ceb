"""Loading list sources into a Matcher, and refreshing downloaded copies.

``ListLoader.load`` is synchronous and reads only local files: shipped starter lists,
local ``path`` sources, and the on-disk copies of URL sources under
``<data_dir>/lists/<name>.txt`` (with ``<name>.meta.json``), so the resolver starts with
its last good lists even when offline. ``ListLoader.refresh`` is the only async part: it
downloads stale URL sources through an injectable ``Fetcher`` in worker threads.

Failures are per source and never fatal: a missing file, a failed download or a broken
list leaves that source's status with ``last_error`` and, for downloads, the last good
copy in place. A refreshed copy replaces the old one only after it has been checked (size
cap, not binary, not an HTML page, has entries) and then atomically (``os.replace``).

Local ``path`` sources may be absolute or leave the data dir, but must be regular files:
a directory, device or FIFO is refused (AdGuard Home CVE-2024-36814 let a filter "list"
expose arbitrary files).
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO, Protocol

from familydns.blocklists.categories import CATEGORIES, validate_category
from familydns.blocklists.fetch import Fetcher, FetchError, UrllibFetcher, check_url
from familydns.blocklists.formats import (
    FORMATS,
    SCOPES,
    BadLine,
    NameRun,
    ParseTally,
    RuleItem,
    iter_stream,
)
from familydns.blocklists.matcher import Matcher, MatcherBuilder
from familydns.config import ListSourceConfig

log = logging.getLogger("familydns.lists")

STATUS_BAD_EXAMPLES = 5  # BadLine examples kept in each ListStatus
RESULT_BAD_PER_SOURCE = 100  # BadLine reports kept per source in LoadResult.bad
SNIFF_BYTES = 8192
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HTML_STARTS = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not hang the loader


class ListSource(Protocol):
    """The shape of ``familydns.config.ListSourceConfig`` (read-only, duck-typed)."""

    @property
    def name(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def path(self) -> str | None: ...
    @property
    def format(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def refresh(self) -> float: ...
    @property
    def max_bytes(self) -> int: ...


def starter_sources() -> tuple[ListSourceConfig, ...]:
    """One small hand-written list per category, shipped in ``blocklists/data``.

    They give a fresh install a working baseline before any download; the paths are
    absolute, pointing into the installed package.
    """
    data = resources.files("familydns.blocklists").joinpath("data")
    return tuple(
        ListSourceConfig(
            name=f"starter-{category.id}",
            category=category.id,
            path=str(data.joinpath(f"{category.id}.txt")),
            format="domains",
            scope="subtree",
        )
        for category in CATEGORIES
    )


@dataclass(frozen=True, slots=True)
class ListStatus:
    """What a parent's status page shows for one source."""

    name: str
    category: str
    origin: str  # the URL or the path
    entries: int  # rules in use
    bad_lines: int
    bad_examples: tuple[BadLine, ...]  # the first few
    skipped: int  # comments, blank and unsupported lines
    last_updated: float | None  # epoch seconds the content was last confirmed
    last_error: str | None
    from_cache: bool  # rules come from the on-disk copy of a download


@dataclass(frozen=True, slots=True)
class LoadResult:
    matcher: Matcher
    statuses: tuple[ListStatus, ...]
    bad: tuple[BadLine, ...]  # at most RESULT_BAD_PER_SOURCE per source
    signature: str = ""  # of the files read (``ListLoader.signature``)


@dataclass(frozen=True, slots=True)
class _Counts:
    entries: int
    bad_lines: int
    bad: tuple[BadLine, ...]
    skipped: int


@dataclass(frozen=True, slots=True)
class _Meta:
    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float | None = None


class SourceError(Exception):
    """One source cannot be used; the message goes into its status."""


class ListLoader:
    """Loads sources into a Matcher and refreshes the downloaded copies.

    Holds a little state between calls: the last refresh error per source (reported by
    the next ``load``) and the last entry count per source (so a 304 does not re-parse).
    """

    def __init__(
        self,
        data_dir: Path,
        fetch: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
        parallel: int = 4,
    ) -> None:
        self._data_dir = Path(data_dir)
        self._lists_dir = self._data_dir / "lists"
        self._fetch: Fetcher = fetch if fetch is not None else UrllibFetcher()
        self._clock = clock
        self._parallel = parallel
        self._errors: dict[str, str] = {}
        self._counts: dict[str, tuple[tuple[object, ...], _Counts]] = {}

    def copy_path(self, name: str) -> Path:
        """Where the downloaded copy of URL source ``name`` lives."""
        return self._lists_dir / f"{name}.txt"

    def load(self, sources: Iterable[ListSource]) -> LoadResult:
        """Build a Matcher from the local files of ``sources``; never raises for a source.

        The result is also kept compiled in ``<data_dir>/lists/compiled.bin`` under a
        signature of every source's settings and file (path, size, mtime): when nothing
        changed, the next start reads it back in one go instead of parsing and sorting.
        """
        sources = tuple(sources)
        signature = self._signature(sources)
        cached = self._read_compiled(signature)
        if cached is not None:
            return cached
        builder = MatcherBuilder()
        statuses: list[ListStatus] = []
        bad: list[BadLine] = []
        for source in sources:
            status, kept = self._load_one(builder, source)
            statuses.append(status)
            bad.extend(kept)
        result = LoadResult(builder.build(), tuple(statuses), tuple(bad), signature)
        self._write_compiled(signature, result)
        return result

    @property
    def compiled_path(self) -> Path:
        return self._lists_dir / "compiled.bin"

    def signature(self, sources: Iterable[ListSource]) -> str:
        """Changes whenever ``load`` would read something else: a source's settings, or
        its file's size or time. A few ``stat`` calls, so cheap enough to poll."""
        return self._signature(tuple(sources))

    def _signature(self, sources: tuple[ListSource, ...]) -> str:
        parts: list[object] = [_COMPILED_VERSION]
        for source in sources:
            try:
                path = self._local_path(source)
                info = path.stat()
                where: object = [str(path), info.st_size, info.st_mtime_ns]
            except (SourceError, OSError) as exc:
                where = f"unavailable: {exc}"
            parts.append([source.name, source.category, source.url, source.path,
                          source.format, source.scope, source.max_bytes, where])
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def _read_compiled(self, signature: str) -> LoadResult | None:
        try:
            data = self.compiled_path.read_bytes()
        except OSError:
            return None
        try:
            size = int.from_bytes(data[:8], "little")
            head = json.loads(data[8:8 + size])
            if head.get("signature") != signature:
                return None
            matcher = Matcher.from_bytes(memoryview(data)[8 + size:])
            statuses = tuple(_status_from_json(s) for s in head["statuses"])
            bad = tuple(BadLine(**b) for b in head["bad"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the compiled lists (%s); building them again", exc)
            return None
        return LoadResult(matcher, statuses, bad, signature)

    def _write_compiled(self, signature: str, result: LoadResult) -> None:
        head = json.dumps({
            "signature": signature,
            "statuses": [dataclasses.asdict(s) for s in result.statuses],
            "bad": [dataclasses.asdict(b) for b in result.bad],
        }).encode()
        path = self.compiled_path
        # A temp name of its own: worker processes (serve --workers) may compile at once,
        # and a shared name would let one rename the other's half-written file.
        tmp = path.with_name(f".compiled.{os.getpid()}.{os.urandom(4).hex()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("xb") as out:
                out.write(len(head).to_bytes(8, "little"))
                out.write(head)
                out.write(result.matcher.to_bytes())
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot keep the compiled lists in %s: %s", path, exc)
        finally:
            tmp.unlink(missing_ok=True)

    def _load_one(
        self, builder: MatcherBuilder, source: ListSource
    ) -> tuple[ListStatus, tuple[BadLine, ...]]:
        origin = source.url or source.path or ""
        from_cache = source.url is not None
        last_updated: float | None = None
        try:
            _check_source(source)
            path = self._local_path(source)
            if source.url is not None:
                last_updated = _read_meta(self._meta_path(source.name)).fetched_at
            with _open_regular(path, source.max_bytes) as (handle, info):
                if last_updated is None:
                    last_updated = info.st_mtime
                tally = ParseTally(source.name, keep_bad=RESULT_BAD_PER_SOURCE)
                text = _text_lines(handle)
                rules = iter_stream(text, source.format, source.name, source.scope, tally)
                before = builder.rule_count(source.name)
                builder.add(rules, source.category, source.name)
                entries = builder.rule_count(source.name) - before
        except (SourceError, OSError, ValueError) as exc:
            error = _join_errors(self._errors.get(source.name), _describe(exc))
            status = ListStatus(
                source.name, source.category, origin, 0, 0, (), 0, last_updated, error, False
            )
            return status, ()
        counts = _Counts(entries, tally.bad_count, tuple(tally.bad), tally.skipped)
        self._counts[source.name] = (_count_key(source, info), counts)
        status = ListStatus(
            name=source.name,
            category=source.category,
            origin=origin,
            entries=entries,
            bad_lines=tally.bad_count,
            bad_examples=tuple(tally.bad[:STATUS_BAD_EXAMPLES]),
            skipped=tally.skipped,
            last_updated=last_updated,
            last_error=self._errors.get(source.name),
            from_cache=from_cache,
        )
        return status, tuple(tally.bad)

    def _local_path(self, source: ListSource) -> Path:
        if source.url is not None:
            path = self.copy_path(source.name)
            if not path.exists():
                raise SourceError("not downloaded yet")
            return path
        if source.path is None:
            raise SourceError("a source needs exactly one of url and path")
        path = Path(source.path).expanduser()
        path = path if path.is_absolute() else self._data_dir / path
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root) for root in self._allowed_roots()):
            # A "list" naming /etc/shadow would expose it line by line through
            # `familydns explain` and the bad-line report (AdGuard CVE-2024-36814).
            raise SourceError(f"{source.path} is outside the data directory "
                              f"{self._data_dir}: copy the list into it")
        return path

    def _allowed_roots(self) -> tuple[Path, ...]:
        """Where local lists may live: the data directory and the shipped lists."""
        shipped = Path(str(resources.files("familydns.blocklists").joinpath("data")))
        return (self._data_dir.resolve(), shipped.resolve())

    def _meta_path(self, name: str) -> Path:
        return self._lists_dir / f"{name}.meta.json"

    async def refresh(
        self, sources: Iterable[ListSource], force: bool = False
    ) -> tuple[ListStatus, ...]:
        """Download the URL sources whose copy is older than their ``refresh`` (or all).

        Conditional requests (ETag, Last-Modified) make an unchanged list cost one 304.
        Returns one status per URL source (local sources are ignored); call ``load``
        afterwards to use the new copies.
        """
        targets = [source for source in sources if source.url is not None]
        limit = asyncio.Semaphore(self._parallel)

        async def one(source: ListSource) -> ListStatus:
            async with limit:
                return await asyncio.to_thread(self._refresh_one, source, force)

        return tuple(await asyncio.gather(*(one(source) for source in targets)))

    def _refresh_one(self, source: ListSource, force: bool) -> ListStatus:
        copy = self.copy_path(source.name)
        meta_path = self._meta_path(source.name)
        try:
            _check_source(source)
            url = source.url
            if url is None:
                raise SourceError("not a URL source")
            meta = _read_meta(meta_path)
            same_url = meta.url == url and copy.exists()
            now = self._clock()
            fresh = meta.fetched_at is not None and now - meta.fetched_at < source.refresh
            if same_url and fresh and not force:
                return self._copy_status(source, copy, meta, None, True)
            self._lists_dir.mkdir(parents=True, exist_ok=True)
            headers = _conditional_headers(meta) if same_url else {}
            meta, replaced = self._download(source, url, headers, copy, meta, now)
            _write_meta(meta_path, meta)
        except (SourceError, FetchError, OSError, ValueError) as exc:
            error = _describe(exc)
            self._errors[source.name] = error
            return self._copy_status(source, copy, _read_meta(meta_path), error, True)
        self._errors.pop(source.name, None)
        return self._copy_status(source, copy, meta, None, not replaced)

    def _download(
        self,
        source: ListSource,
        url: str,
        headers: dict[str, str],
        copy: Path,
        meta: _Meta,
        now: float,
    ) -> tuple[_Meta, bool]:
        """Fetch into a temp file, check it, and move it over the copy; (meta, replaced)."""
        handle, temp_name = tempfile.mkstemp(dir=self._lists_dir, prefix=f".{source.name}.")
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as sink:
                result = self._fetch(url, headers, sink, source.max_bytes)
                sink.flush()
                os.fsync(sink.fileno())
            if result.status == 304:
                if not copy.exists():
                    raise SourceError("server answered 304 but there is no local copy")
                etag = result.etag or meta.etag
                modified = result.last_modified or meta.last_modified
                return _Meta(url, etag, modified, now), False
            _check_content(temp)
            counts = self._count(source, temp)
            if counts.entries == 0 and (counts.bad_lines or self._copy_entries(source, copy)):
                raise SourceError(
                    f"download has no usable entries ({counts.bad_lines} bad lines); "
                    "keeping the previous copy"
                )
            os.replace(temp, copy)
            self._counts[source.name] = (_count_key(source, copy.stat()), counts)
            return _Meta(url, result.etag, result.last_modified, now), True
        finally:
            temp.unlink(missing_ok=True)

    def _count(self, source: ListSource, path: Path) -> _Counts:
        """Count a file's rules and bad lines without building a matcher.

        The last count per source is remembered with the file's identity, so a 304 or a
        copy that ``load`` already parsed is not parsed again.
        """
        with _open_regular(path, source.max_bytes) as (handle, info):
            key = _count_key(source, info)
            cached = self._counts.get(source.name)
            if cached is not None and cached[0] == key:
                return cached[1]
            tally = ParseTally(source.name, keep_bad=STATUS_BAD_EXAMPLES)
            text = _text_lines(handle)
            entries = _rule_total(iter_stream(text, source.format, source.name, source.scope,
                                              tally))
        return _Counts(entries, tally.bad_count, tuple(tally.bad), tally.skipped)

    def _copy_entries(self, source: ListSource, copy: Path) -> int:
        return self._count(source, copy).entries if copy.exists() else 0

    def _copy_status(
        self,
        source: ListSource,
        copy: Path,
        meta: _Meta,
        error: str | None,
        from_cache: bool,
    ) -> ListStatus:
        counts = _Counts(0, 0, (), 0)
        if copy.exists():
            try:
                counts = self._count(source, copy)
            except (SourceError, OSError) as exc:
                error = _join_errors(error, _describe(exc))
        return ListStatus(
            name=source.name,
            category=source.category,
            origin=source.url or "",
            entries=counts.entries,
            bad_lines=counts.bad_lines,
            bad_examples=counts.bad[:STATUS_BAD_EXAMPLES],
            skipped=counts.skipped,
            last_updated=meta.fetched_at,
            last_error=error,
            from_cache=from_cache and copy.exists(),
        )


_COMPILED_VERSION = 1
"""Bump when the compiled layout or the parsers' output changes."""


def _status_from_json(data: dict[str, object]) -> ListStatus:
    fields = dict(data)
    fields["bad_examples"] = tuple(
        BadLine(**b) for b in fields["bad_examples"])  # type: ignore[attr-defined]
    return ListStatus(**fields)  # type: ignore[arg-type]


def _check_source(source: ListSource) -> None:
    if not _NAME.fullmatch(source.name):
        raise SourceError(f"invalid source name {source.name!r}: use letters, digits, . _ -")
    validate_category(source.category)
    if source.format not in FORMATS:
        raise SourceError(f"unknown format {source.format!r}")
    if source.scope not in SCOPES:
        raise SourceError(f"unknown scope {source.scope!r}")
    if (source.url is None) == (source.path is None):
        raise SourceError("a source needs exactly one of url and path")
    if source.url is not None:
        check_url(source.url)
    if source.max_bytes <= 0:
        raise SourceError("max_bytes must be positive")


@contextmanager
def _open_regular(path: Path, max_bytes: int) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open a regular file for reading; refuse directories, devices, FIFOs, huge or binary
    files. Checks run on the opened descriptor, so a swapped symlink cannot slip by."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK)
    except FileNotFoundError:
        raise SourceError(f"file not found: {path}") from None
    except PermissionError:
        raise SourceError(f"permission denied: {path}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(f"not a regular file: {path}")
        if info.st_size > max_bytes:
            raise SourceError(f"file is {info.st_size} bytes, over the {max_bytes}-byte limit")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        if b"\x00" in handle.read(SNIFF_BYTES):
            raise SourceError(f"binary file, not a list: {path}")
        handle.seek(0)
        yield handle, info


def _text_lines(handle: BinaryIO) -> io.TextIOWrapper:
    """Decode as UTF-8 (BOM dropped); undecodable bytes become U+FFFD and a bad line."""
    return io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline=None)


def _rule_total(items: Iterable[RuleItem]) -> int:
    """How many rules ``items`` hold, counting each name of a NameRun."""
    return sum(len(item.names) if isinstance(item, NameRun) else 1 for item in items)


def _check_content(path: Path) -> None:
    """Reject a download that is binary, not UTF-8, or an HTML page (captive portal)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with path.open("rb") as handle:
        first = True
        while chunk := handle.read(1 << 20):
            if first:
                head = chunk.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
                if head.startswith(_HTML_STARTS):
                    raise SourceError("received an HTML page, not a list")
                first = False
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise SourceError(f"binary content (NUL byte at offset {offset + nul})")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise SourceError(f"not UTF-8 text (offset {offset + exc.start})") from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise SourceError("not UTF-8 text (truncated character at the end)") from None


def _count_key(source: ListSource, info: os.stat_result) -> tuple[object, ...]:
    return (source.name, source.format, source.scope, info.st_mtime_ns, info.st_size, info.st_ino)


def _conditional_headers(meta: _Meta) -> dict[str, str]:
    headers: dict[str, str] = {}
    if meta.etag:
        headers["If-None-Match"] = meta.etag
    if meta.last_modified:
        headers["If-Modified-Since"] = meta.last_modified
    return headers


def _read_meta(path: Path) -> _Meta:
    """Read a copy's metadata; a missing or corrupt file reads as empty (forces a fetch)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _Meta()
    if not isinstance(raw, dict):
        return _Meta()
    fetched_at = raw.get("fetched_at")
    return _Meta(
        url=_str_or_none(raw.get("url")),
        etag=_str_or_none(raw.get("etag")),
        last_modified=_str_or_none(raw.get("last_modified")),
        fetched_at=float(fetched_at) if isinstance(fetched_at, int | float) else None,
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _write_meta(path: Path, meta: _Meta) -> None:
    payload = {
        "url": meta.url,
        "etag": meta.etag,
        "last_modified": meta.last_modified,
        "fetched_at": meta.fetched_at,
    }
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (SourceError, FetchError, ValueError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _join_errors(first: str | None, second: str) -> str:
    return second if first is None or first == second else f"{second}; last download: {first}"
