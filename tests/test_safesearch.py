"""Safe search rewrites per engine and host (categories.md §3)."""

from __future__ import annotations

import pytest

from familydns.profiles.safesearch import (
    GOOGLE_TLDS,
    OFFLINE_FALLBACK_V4,
    Rewrite,
    YouTubeMode,
    rewrite_for,
)

STRICT, MODERATE, OFF = YouTubeMode.STRICT, YouTubeMode.MODERATE, YouTubeMode.OFF


@pytest.mark.parametrize(
    ("name", "engine", "cname"),
    [
        ("www.google.com", "Google", "forcesafesearch.google.com"),
        ("www.google.co.uk", "Google", "forcesafesearch.google.com"),
        ("www.google.fr", "Google", "forcesafesearch.google.com"),
        ("www.google.com.br", "Google", "forcesafesearch.google.com"),
        ("www.google.co.jp", "Google", "forcesafesearch.google.com"),
        ("www.google.ru", "Google", "forcesafesearch.google.com"),
        ("www.google.cat", "Google", "forcesafesearch.google.com"),
        ("www.bing.com", "Bing", "strict.bing.com"),
        ("edgeservices.bing.com", "Bing", "strict.bing.com"),
        ("duckduckgo.com", "DuckDuckGo", "safe.duckduckgo.com"),
        ("www.duckduckgo.com", "DuckDuckGo", "safe.duckduckgo.com"),
        ("start.duckduckgo.com", "DuckDuckGo", "safe.duckduckgo.com"),
        ("www.ecosia.org", "Ecosia", "strict-safe-search.ecosia.org"),
        ("pixabay.com", "Pixabay", "safesearch.pixabay.com"),
    ],
)
def test_cname_engines(name: str, engine: str, cname: str) -> None:
    rewrite = rewrite_for(name, OFF, safe_search=True)
    assert rewrite is not None
    assert (rewrite.engine, rewrite.cname) == (engine, cname)
    assert rewrite.addresses_v4 == ()
    assert rewrite_for(name, OFF, safe_search=False) is None


@pytest.mark.parametrize(
    "name",
    ["yandex.ru", "www.yandex.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.uz",
     "yandex.com.tr", "www.yandex.com.tr", "ya.ru", "www.ya.ru",
     "xn--d1acpjx3f.xn--p1ai", "www.xn--d1acpjx3f.xn--p1ai"],
)
def test_yandex_gets_the_family_address_and_no_ipv6(name: str) -> None:
    assert rewrite_for(name, OFF, safe_search=True) == Rewrite(
        "Yandex", None, addresses_v4=("213.180.193.56",), nodata_v6=True
    )


@pytest.mark.parametrize(
    "name",
    [
        "google.com",          # the apex only redirects to www over HTTP
        "mail.google.com",
        "www.google.example",  # not a Google country domain
        "images.google.com",
        "bing.com",
        "ecosia.org",
        "www.pixabay.com",
        "maps.yandex.ru",
        "forcesafesearch.google.com",
        "example.com",
    ],
)
def test_other_names_are_left_alone(name: str) -> None:
    assert rewrite_for(name, STRICT, safe_search=True) is None


YOUTUBE_HOSTS = ["www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                 "youtube.googleapis.com", "www.youtube-nocookie.com"]


@pytest.mark.parametrize("name", YOUTUBE_HOSTS)
@pytest.mark.parametrize(
    ("mode", "cname", "fallback"),
    [
        (STRICT, "restrict.youtube.com", "216.239.38.120"),
        (MODERATE, "restrictmoderate.youtube.com", "216.239.38.119"),
    ],
)
def test_youtube_follows_its_own_mode(
    name: str, mode: YouTubeMode, cname: str, fallback: str
) -> None:
    for safe_search in (True, False):
        rewrite = rewrite_for(name, mode, safe_search)
        assert rewrite is not None
        assert (rewrite.engine, rewrite.cname) == ("YouTube", cname)
        assert rewrite.fallback_v4 == (fallback,)


@pytest.mark.parametrize("name", YOUTUBE_HOSTS + ["youtube.com", "music.youtube.com"])
def test_youtube_off_is_not_rewritten(name: str) -> None:
    assert rewrite_for(name, OFF, safe_search=True) is None


def test_offline_fallbacks_are_googles_documented_addresses() -> None:
    assert OFFLINE_FALLBACK_V4 == {
        "forcesafesearch.google.com": ("216.239.38.120",),
        "restrict.youtube.com": ("216.239.38.120",),
        "restrictmoderate.youtube.com": ("216.239.38.119",),
    }
    google = rewrite_for("www.google.de", OFF, safe_search=True)
    assert google is not None and google.fallback_v4 == ("216.239.38.120",)


def test_the_google_list_covers_the_country_domains() -> None:
    assert len(GOOGLE_TLDS) == len(set(GOOGLE_TLDS)) >= 190
    for tld in GOOGLE_TLDS:
        assert rewrite_for(f"www.google.{tld}", OFF, safe_search=True) is not None
