"""Specification of list loading and refreshing, with a real HTTP server on loopback."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from familydns.blocklists.categories import CATEGORIES
from familydns.blocklists.fetch import FetchError, FetchResult
from familydns.blocklists.formats import ParseTally, iter_rules, parse_list
from familydns.blocklists.matcher import Matcher, MatcherBuilder
from familydns.blocklists.sources import ListLoader, starter_sources
from familydns.config import ListSourceConfig

GOOD = b"# remote list\nalpha.example.com\nbeta.example.com\n"


Source = ListSourceConfig


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Site:
    """What the test server serves, and the requests it saw."""

    routes: dict[str, Callable[[Mapping[str, str]], Reply]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base: str = ""

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]


def serve_list(body: bytes, etag: str) -> Callable[[Mapping[str, str]], Reply]:
    def reply(headers: Mapping[str, str]) -> Reply:
        if headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag, "Content-Length": str(len(body))}, body

    return reply


def fixed(status: int, body: bytes, headers: dict[str, str] | None = None) -> Callable[..., Reply]:
    return lambda _headers: (status, headers or {"Content-Length": str(len(body))}, body)


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = dict(self.headers.items())
            state.requests.append((self.path, headers))
            route = state.routes.get(self.path)
            status, reply_headers, body = route(headers) if route else (404, {}, b"")
            self.send_response(status)
            for name, value in reply_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# --- starter lists -------------------------------------------------------------------


def test_starter_sources_cover_every_category() -> None:
    sources = starter_sources()
    assert [s.category for s in sources] == [c.id for c in CATEGORIES]
    assert all(s.name == f"starter-{s.category}" for s in sources)


@pytest.mark.parametrize("source", starter_sources(), ids=lambda s: s.category)
def test_starter_files_are_small_clean_and_own_work(source: ListSourceConfig) -> None:
    assert source.path is not None
    text = Path(source.path).read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == f"# familydns starter list: {source.category}"
    assert "Written by hand for familydns" in text
    assert len(lines) <= 150
    result = parse_list(text, source.format, source.name, source.scope)
    assert result.bad == ()
    patterns = [rule.pattern for rule in result.rules]
    assert patterns and len(patterns) == len(set(patterns))


def test_starter_lists_load_and_block_their_examples(tmp_path: Path) -> None:
    result = ListLoader(tmp_path).load(starter_sources())
    assert all(status.last_error is None for status in result.statuses)
    for name, category in [
        ("www.pornhub.com", "adult"),
        ("mask.icloud.com", "dns_bypass"),
        ("dns.google", "dns_bypass"),
        ("search.yahoo.com", "unsafe_search"),
        ("pbskids.org", "kids_allowlist"),
    ]:
        assert category in {hit.category for hit in result.matcher.match(name)}


# --- local path sources --------------------------------------------------------------


def test_relative_paths_are_relative_to_the_data_dir(tmp_path: Path) -> None:
    write(tmp_path / "mine" / "gambling.txt", "bet.example.com\n")
    source = Source("own", "gambling", path="mine/gambling.txt")
    result = ListLoader(tmp_path).load([source])
    (status,) = result.statuses
    assert (status.entries, status.last_error, status.from_cache) == (1, None, False)
    assert status.last_updated is not None
    assert result.matcher.match("www.bet.example.com")


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
def test_files_outside_the_data_dir_are_refused(tmp_path: Path, where: str) -> None:
    """A list source must not expose other files (AdGuard CVE-2024-36814): a path that
    leaves the data directory, also through ``..`` or a symlink, is refused and named."""
    outside = write(tmp_path / "elsewhere" / "list.txt", "0.0.0.0 x.example.com\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = {"absolute": str(outside), "dotdot": "../elsewhere/list.txt", "symlink": "link"}[
        where]
    if where == "symlink":
        (data_dir / "link").symlink_to(outside)
    (status,) = ListLoader(data_dir).load([Source("o", "adult", path=path)]).statuses
    assert status.entries == 0
    assert status.last_error is not None and "outside the data directory" in status.last_error


def special_file(tmp_path: Path, kind: str) -> str:
    if kind == "directory":
        (tmp_path / "dir").mkdir()
        return "dir"
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        os.mkfifo(tmp_path / "fifo")
        return "fifo"
    if kind == "symlink-to-device":
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        (tmp_path / "link").symlink_to("/dev/zero")
        return "link"
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    return "/dev/null"


@pytest.mark.parametrize("kind", ["directory", "device", "fifo", "symlink-to-device"])
def test_local_sources_must_be_regular_files(tmp_path: Path, kind: str) -> None:
    """A list path must not expose a directory or device (AdGuard CVE-2024-36814)."""
    path = special_file(tmp_path, kind)
    (status,) = ListLoader(tmp_path).load([Source("x", "adult", path=path)]).statuses
    assert status.last_error is not None
    assert ("not a regular file" in status.last_error
            or "outside the data directory" in status.last_error)
    assert status.entries == 0


@pytest.mark.parametrize(
    ("content", "source_changes", "error"),
    [
        (None, {}, "file not found"),
        (b"a.com\x00\x01\x02", {}, "binary file"),
        (b"a.example.com\n" * 10, {"max_bytes": 50}, "over the 50-byte limit"),
        (b"a.example.com\n", {"category": "porn"}, "unknown category 'porn'"),
        (b"a.example.com\n", {"format": "csv"}, "unknown format"),
        (b"a.example.com\n", {"url": "http://127.0.0.1/x"}, "exactly one of url and path"),
        (b"a.example.com\n", {"name": "../escape"}, "invalid source name"),
    ],
)
def test_a_broken_source_is_reported_and_the_others_still_load(
    tmp_path: Path, content: bytes | None, source_changes: dict[str, Any], error: str
) -> None:
    if content is not None:
        write(tmp_path / "broken.txt", content)
    write(tmp_path / "good.txt", "good.example.com\n")
    broken = dataclasses.replace(Source("broken", "adult", path="broken.txt"), **source_changes)
    result = ListLoader(tmp_path).load([broken, Source("good", "adult", path="good.txt")])
    first, second = result.statuses
    assert first.last_error is not None and error in first.last_error
    assert (first.entries, second.entries, second.last_error) == (0, 1, None)
    assert result.matcher.match("good.example.com")


def test_bad_lines_are_reported_with_source_and_line(tmp_path: Path) -> None:
    write(tmp_path / "l.txt", "ok.example.com\n1.2.3.4\n" + "bad..x\n" * 200)
    result = ListLoader(tmp_path).load([Source("l", "adult", path="l.txt")])
    (status,) = result.statuses
    assert (status.entries, status.bad_lines) == (1, 201)
    assert len(status.bad_examples) == 5
    assert status.bad_examples[0].line == 2 and status.bad_examples[0].source == "l"
    assert len(result.bad) == 100


# --- URL sources: download, revalidate, keep the last good copy ------------------------


async def test_download_then_revalidate_with_etag(tmp_path: Path, site: Site) -> None:
    site.routes["/list.txt"] = serve_list(GOOD, '"v1"')
    clock = Clock()
    loader = ListLoader(tmp_path, clock=clock)
    source = Source("remote", "adult", url=site.url("/list.txt"), refresh=3600)

    (status,) = await loader.refresh([source])
    assert (status.entries, status.from_cache, status.last_error) == (2, False, None)
    assert status.last_updated == clock.now
    assert loader.copy_path("remote").read_bytes() == GOOD
    meta = json.loads((tmp_path / "lists" / "remote.meta.json").read_text())
    assert meta["etag"] == '"v1"' and meta["url"] == source.url

    clock.now += 60
    (status,) = await loader.refresh([source])
    assert len(site.hits("/list.txt")) == 1, "a fresh copy is not downloaded again"
    assert status.from_cache

    clock.now += 3600
    (status,) = await loader.refresh([source])
    assert site.hits("/list.txt")[-1]["If-None-Match"] == '"v1"'
    assert (status.entries, status.from_cache, status.last_updated) == (2, True, clock.now)

    result = loader.load([source])
    assert result.matcher.match("www.alpha.example.com")
    assert result.statuses[0].from_cache and result.statuses[0].last_updated == clock.now


async def test_force_downloads_a_changed_list(tmp_path: Path, site: Site) -> None:
    site.routes["/list.txt"] = serve_list(GOOD, '"v1"')
    loader = ListLoader(tmp_path)
    source = Source("remote", "adult", url=site.url("/list.txt"))
    await loader.refresh([source])
    site.routes["/list.txt"] = serve_list(b"gamma.example.com\n", '"v2"')
    (status,) = await loader.refresh([source], force=True)
    assert (status.entries, status.from_cache) == (1, False)
    assert loader.load([source]).matcher.match("gamma.example.com")


HUGE = b"x.example.com\n" * 200


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (fixed(500, b"oops"), "HTTP 500"),
        (fixed(404, b""), "HTTP 404"),
        (fixed(200, HUGE), "over the 1000-byte limit"),
        (fixed(200, HUGE, {}), "over the 1000-byte limit"),
        (fixed(200, b"a.example.com\n\x00\x00\x00"), "binary content"),
        (fixed(200, b"caf\xe9.example.com\n"), "not UTF-8"),
        (fixed(200, b"<!DOCTYPE html><html>Captive portal</html>"), "HTML page"),
        (fixed(200, b""), "no usable entries"),
        (fixed(200, b"1.2.3.4\n5.6.7.8\n"), "no usable entries"),
        (fixed(302, b"", {"Location": "file:///etc/passwd"}), "is not allowed"),
        (fixed(302, b"", {"Location": "ftp://127.0.0.1/list"}), "only http(s) URLs"),
    ],
    ids=[
        "500",
        "404",
        "huge",
        "huge-no-length",
        "binary",
        "latin1",
        "html",
        "empty",
        "garbage",
        "redirect-to-file",
        "redirect-to-ftp",
    ],
)
async def test_a_failed_refresh_keeps_the_last_good_copy(
    tmp_path: Path, site: Site, reply: Callable[..., Reply], error: str
) -> None:
    site.routes["/list.txt"] = serve_list(GOOD, '"v1"')
    site.routes["/bad"] = reply
    loader = ListLoader(tmp_path)
    good = Source("remote", "adult", url=site.url("/list.txt"), max_bytes=1000)
    await loader.refresh([good])

    bad = dataclasses.replace(good, url=site.url("/bad"))
    (status,) = await loader.refresh([bad])
    assert status.last_error is not None and error in status.last_error
    assert (status.entries, status.from_cache) == (2, True)
    assert loader.copy_path("remote").read_bytes() == GOOD
    assert sorted(p.name for p in (tmp_path / "lists").iterdir()) == [
        "remote.meta.json",
        "remote.txt",
    ], "no temp file is left behind"

    result = loader.load([bad])
    assert result.matcher.match("alpha.example.com")
    (loaded,) = result.statuses
    assert loaded.last_error is not None and error in loaded.last_error
    assert loaded.entries == 2


async def test_an_error_clears_after_a_good_refresh(tmp_path: Path, site: Site) -> None:
    site.routes["/list.txt"] = fixed(500, b"")
    loader = ListLoader(tmp_path)
    source = Source("remote", "adult", url=site.url("/list.txt"))
    (status,) = await loader.refresh([source])
    assert status.last_error == "HTTP 500 Internal Server Error"
    assert status.from_cache is False and status.entries == 0
    site.routes["/list.txt"] = serve_list(GOOD, '"v1"')
    (status,) = await loader.refresh([source])
    assert status.last_error is None
    assert loader.load([source]).statuses[0].last_error is None


def test_offline_start_uses_the_downloaded_copy(tmp_path: Path) -> None:
    write(tmp_path / "lists" / "remote.txt", GOOD)
    write(tmp_path / "lists" / "remote.meta.json", json.dumps({"fetched_at": 1234.5}))

    def offline(
        url: str, headers: Mapping[str, str], sink: BinaryIO, max_bytes: int
    ) -> FetchResult:
        raise FetchError("network is unreachable")

    loader = ListLoader(tmp_path, fetch=offline)
    source = Source("remote", "adult", url="https://lists.example.net/adult.txt")
    result = loader.load([source])
    (status,) = result.statuses
    assert (status.entries, status.from_cache, status.last_updated) == (2, True, 1234.5)
    assert result.matcher.match("beta.example.com")


def test_a_url_source_never_downloaded_is_reported(tmp_path: Path) -> None:
    source = Source("remote", "adult", url="https://lists.example.net/adult.txt")
    (status,) = ListLoader(tmp_path).load([source]).statuses
    assert (status.entries, status.last_error) == (0, "not downloaded yet")


async def test_refresh_uses_the_injected_fetcher_and_skips_local_sources(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, str], int]] = []

    def fake(url: str, headers: Mapping[str, str], sink: BinaryIO, max_bytes: int) -> FetchResult:
        calls.append((url, dict(headers), max_bytes))
        sink.write(b"||fake.example.com^\n")
        return FetchResult(200, etag='"e"')

    loader = ListLoader(tmp_path, fetch=fake)
    remote = Source("r", "ads_tracking", url="https://lists.example.net/a.txt", max_bytes=99)
    local = Source("l", "adult", path="missing.txt")
    statuses = await loader.refresh([remote, local])
    assert [s.name for s in statuses] == ["r"]
    assert calls == [("https://lists.example.net/a.txt", {}, 99)]
    await loader.refresh([remote], force=True)
    assert calls[-1][1] == {"If-None-Match": '"e"'}
    assert loader.load([remote]).matcher.match("x.fake.example.com")


def test_a_restart_reads_the_compiled_lists_instead_of_parsing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "mine.txt", "bet.example.com\n||ads.example.net^\n/^track[0-9]+\\./\n")
    source = Source("own", "gambling", path="mine.txt")
    first = ListLoader(tmp_path).load([source])
    assert ListLoader(tmp_path).compiled_path.is_file()

    def no_parsing(*_args: object) -> None:
        raise AssertionError("parsed again although nothing changed")

    monkeypatch.setattr(ListLoader, "_load_one", no_parsing)
    again = ListLoader(tmp_path).load([source])
    assert again.statuses == first.statuses and again.bad == first.bad
    for name in ("www.bet.example.com", "x.ads.example.net", "track7.example.org", "ok.org"):
        assert again.matcher.match(name) == first.matcher.match(name)
    assert len(again.matcher) == len(first.matcher)


def test_a_changed_list_or_source_is_parsed_again(tmp_path: Path) -> None:
    path = write(tmp_path / "mine.txt", "bet.example.com\n")
    ListLoader(tmp_path).load([Source("own", "gambling", path="mine.txt")])
    path.write_text("bet.example.com\npoker.example.com\n")
    changed = ListLoader(tmp_path).load([Source("own", "gambling", path="mine.txt")])
    assert changed.matcher.match("poker.example.com")
    other = ListLoader(tmp_path).load([Source("own", "adult", path="mine.txt")])
    assert {h.category for h in other.matcher.match("poker.example.com")} == {"adult"}


def test_a_damaged_compiled_file_is_rebuilt(tmp_path: Path) -> None:
    write(tmp_path / "mine.txt", "bet.example.com\n")
    loader = ListLoader(tmp_path)
    loader.load([Source("own", "gambling", path="mine.txt")])
    data = loader.compiled_path.read_bytes()
    loader.compiled_path.write_bytes(data[: len(data) - 20])
    result = ListLoader(tmp_path).load([Source("own", "gambling", path="mine.txt")])
    assert result.matcher.match("bet.example.com")


# --- the bulk parser gives what the line-by-line parser gives -----------------------------

MESSY_LINES = [
    "# header", "ads.example.com", "", "UPPER.Example.COM", "trailing.dot.com.",
    "  padded.example.com ", "bücher.example", "bad_label!.example.com", "intranet",
    "*.wild.example.com", "0.0.0.0 hosts.example.com", "127.0.0.1 localhost",
    "0.0.0.0 localhost.localdomain", "0.0.0.0 a.com b.com # two", "1.2.3.4",
    "/^ads?\\./", "inline.example.com # note", "||adblock.example.com^",
]
MESSY = ("\ufeff" + "\r\n".join(
    line for i in range(300) for line in (f"host{i}.example.com", MESSY_LINES[i % 18],
                                          f"0.0.0.0 h{i}.example.net")
) + "\r\n").encode()


def line_by_line(data: bytes, fmt: str, keep_bad: int | None) -> tuple[Matcher, ParseTally]:
    """Matcher and counts from the per-line parser, the reference for the loader."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="replace",
                            newline=None)
    tally = ParseTally("m", keep_bad=keep_bad)
    builder = MatcherBuilder()
    builder.add(iter_rules(text, fmt, "m", "subtree", tally), "adult", "m")
    return builder.build(), tally


@pytest.mark.parametrize("fmt", ["domains", "hosts", "auto", "adblock"])
def test_a_messy_list_loads_like_the_line_by_line_parser(tmp_path: Path, fmt: str) -> None:
    data = MESSY[:5000] + b"\xff\xfe bad\xe2\x82\r\n" + MESSY[5000:] + b"last.example.com"
    write(tmp_path / "m.txt", data)
    result = ListLoader(tmp_path).load([Source("m", "adult", path="m.txt", format=fmt)])
    expected, tally = line_by_line(data, fmt, keep_bad=100)
    (status,) = result.statuses
    assert result.matcher.to_bytes() == expected.to_bytes()
    assert (status.entries, status.bad_lines, status.skipped) == (
        expected.rule_count("m"), tally.bad_count, tally.skipped)
    assert status.bad_examples == tuple(tally.bad[:5]) and result.bad == tuple(tally.bad)


async def test_a_downloaded_list_is_counted_like_the_line_by_line_parser(tmp_path: Path) -> None:
    def fake(url: str, headers: Mapping[str, str], sink: BinaryIO, max_bytes: int) -> FetchResult:
        sink.write(MESSY)
        return FetchResult(200)

    loader = ListLoader(tmp_path, fetch=fake)
    (status,) = await loader.refresh([Source("m", "adult", url="https://l.example.net/m.txt")])
    expected, tally = line_by_line(MESSY, "auto", keep_bad=5)
    assert (status.entries, status.bad_lines, status.skipped, status.bad_examples) == (
        expected.rule_count("m"), tally.bad_count, tally.skipped, tuple(tally.bad))
