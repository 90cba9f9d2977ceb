"""The one network seam of the blocklists package: download a list over HTTP(S).

``Fetcher`` is a small synchronous protocol so that tests and other transports can stand
in; the loader runs it in a worker thread. ``UrllibFetcher`` uses only the standard
library (no new dependency), streams the body into a sink under a byte cap and a total
deadline, follows redirects only to http(s), and turns every failure into FetchError.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

CHUNK_SIZE = 64 * 1024
ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A completed download: ``status`` is 200 (body written to the sink) or 304."""

    status: int
    etag: str | None = None
    last_modified: str | None = None


class FetchError(Exception):
    """A download failed; the message says why, in words fit for a status page."""


class Fetcher(Protocol):
    def __call__(
        self, url: str, headers: Mapping[str, str], sink: BinaryIO, max_bytes: int
    ) -> FetchResult:
        """Write the body of ``url`` to ``sink`` or return a 304; raise FetchError."""
        ...


def check_url(url: str) -> None:
    """Raise FetchError unless ``url`` is http(s) with a host (never file:, ftp:, data:)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        raise FetchError(f"only http(s) URLs with a host are allowed, not {url!r}")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects to other schemes: a list URL must not be bounced to ftp: or file:."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


class UrllibFetcher:
    """Fetcher on ``urllib.request``.

    ``timeout`` bounds each socket operation, ``deadline`` the whole download (a server
    trickling bytes must not hold a worker thread forever).
    """

    def __init__(
        self,
        timeout: float = 30.0,
        deadline: float = 600.0,
        user_agent: str = "familydns (+blocklist refresh)",
    ) -> None:
        self._timeout = timeout
        self._deadline = deadline
        self._user_agent = user_agent
        self._opener = urllib.request.build_opener(_HttpOnlyRedirects())

    def __call__(
        self, url: str, headers: Mapping[str, str], sink: BinaryIO, max_bytes: int
    ) -> FetchResult:
        check_url(url)
        request = urllib.request.Request(url, headers={"User-Agent": self._user_agent, **headers})
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                if response.status != 200:
                    raise FetchError(f"unexpected HTTP status {response.status}")
                _check_length(response.headers.get("Content-Length"), max_bytes)
                _copy(response, sink, max_bytes, started + self._deadline)
                return FetchResult(
                    200, response.headers.get("ETag"), response.headers.get("Last-Modified")
                )
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 304:
                return FetchResult(304, exc.headers.get("ETag"), exc.headers.get("Last-Modified"))
            raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise FetchError(f"cannot fetch {urlsplit(url).hostname}: {exc.reason}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise FetchError(f"download failed: {exc or type(exc).__name__}") from None


def _check_length(header: str | None, max_bytes: int) -> None:
    if header and header.strip().isdigit() and int(header) > max_bytes:
        raise FetchError(f"list is {int(header)} bytes, over the {max_bytes}-byte limit")


def _copy(response: http.client.HTTPResponse, sink: BinaryIO, max_bytes: int, end: float) -> None:
    total = 0
    while chunk := response.read(CHUNK_SIZE):
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"list is over the {max_bytes}-byte limit")
        if time.monotonic() > end:
            raise FetchError("download took too long")
        sink.write(chunk)
