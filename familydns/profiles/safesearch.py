"""Safe search and YouTube restricted mode, enforced by answering for the engine's host.

Search engines offer a "safe" host name; a DNS answer that sends www.google.com to
forcesafesearch.google.com makes the browser talk to the safe front end, whatever the
page's own setting says (categories.md §3). Only the hosts the engines document are
rewritten: Google's apex google.<tld> only redirects to www over HTTP, so it is left alone.

Every rewrite is built once at import; ``rewrite_for`` is two dict lookups.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class YouTubeMode(enum.Enum):
    """YouTube restricted mode: strict up to 12, moderate for 13-17, off for adults."""

    STRICT = "strict"
    MODERATE = "moderate"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Rewrite:
    """How to answer for a search host instead of asking the upstream for it.

    With ``cname`` the resolver answers a CNAME to it and resolves the target upstream
    (the engines move their safe front ends). ``addresses_v4`` is a fixed A answer
    (Yandex documents an address, not a name); ``nodata_v6`` then answers AAAA with
    NODATA so a browser cannot reach the unsafe front end over IPv6. ``fallback_v4`` is
    for the resolver only when the upstream cannot resolve the target (offline use).
    """

    engine: str
    cname: str | None
    addresses_v4: tuple[str, ...] = ()
    nodata_v6: bool = False
    fallback_v4: tuple[str, ...] = ()


GOOGLE_SAFE = "forcesafesearch.google.com"
YOUTUBE_STRICT = "restrict.youtube.com"
YOUTUBE_MODERATE = "restrictmoderate.youtube.com"

OFFLINE_FALLBACK_V4: dict[str, tuple[str, ...]] = {
    GOOGLE_SAFE: ("216.239.38.120",),
    YOUTUBE_STRICT: ("216.239.38.120",),
    YOUTUBE_MODERATE: ("216.239.38.119",),
}
"""Addresses Google documents for its safe front ends; only for when upstreams fail."""

YANDEX_FAMILY_V4 = "213.180.193.56"

GOOGLE_TLDS: tuple[str, ...] = (
    "com", "ad", "ae", "al", "am", "as", "at", "az", "ba", "be", "bf", "bg", "bi", "bj",
    "bs", "bt", "by", "ca", "cat", "cd", "cf", "cg", "ch", "ci", "cl", "cm", "cn", "co",
    "co.ao", "co.bw", "co.ck", "co.cr", "co.id", "co.il", "co.in", "co.jp", "co.ke",
    "co.kr", "co.ls", "co.ma", "co.mz", "co.nz", "co.th", "co.tz", "co.ug", "co.uk",
    "co.uz", "co.ve", "co.vi", "co.za", "co.zm", "co.zw", "com.af", "com.ag", "com.ai",
    "com.ar", "com.au", "com.bd", "com.bh", "com.bn", "com.bo", "com.br", "com.bz",
    "com.co", "com.cu", "com.cy", "com.do", "com.ec", "com.eg", "com.et", "com.fj",
    "com.gh", "com.gi", "com.gt", "com.hk", "com.jm", "com.kh", "com.kw", "com.lb",
    "com.ly", "com.mm", "com.mt", "com.mx", "com.my", "com.na", "com.nf", "com.ng",
    "com.ni", "com.np", "com.om", "com.pa", "com.pe", "com.pg", "com.ph", "com.pk",
    "com.pr", "com.py", "com.qa", "com.sa", "com.sb", "com.sg", "com.sl", "com.sv",
    "com.tj", "com.tr", "com.tw", "com.ua", "com.uy", "com.vc", "com.vn", "cv", "cz",
    "de", "dj", "dk", "dm", "dz", "ee", "es", "fi", "fm", "fr", "ga", "ge", "gg", "gl",
    "gm", "gp", "gr", "gy", "hn", "hr", "ht", "hu", "ie", "im", "iq", "is", "it", "je",
    "jo", "kg", "ki", "kz", "la", "li", "lk", "lt", "lu", "lv", "md", "me", "mg", "mk",
    "ml", "mn", "ms", "mu", "mv", "mw", "ne", "nl", "no", "nr", "nu", "pl", "pn", "ps",
    "pt", "ro", "rs", "ru", "rw", "sc", "se", "sh", "si", "sk", "sm", "sn", "so", "sr",
    "st", "td", "tg", "tk", "tl", "tm", "tn", "to", "tt", "vg", "vu", "ws",
)
"""Google's country domains (www.google.com/supported_domains); www.google.<tld> each."""

YOUTUBE_HOSTS: tuple[str, ...] = (
    "www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
    "youtube.googleapis.com", "www.youtube-nocookie.com",
)

YANDEX_APEXES: tuple[str, ...] = tuple(
    [f"yandex.{tld}" for tld in (
        "ru", "com", "by", "kz", "uz", "com.tr", "ua", "az", "co.il", "com.am", "com.ge",
        "com.ru", "de", "ee", "eu", "fi", "fr", "lt", "lv", "md", "net", "org", "pl",
        "tj", "tm",
    )]
    + ["ya.ru", "xn--d1acpjx3f.xn--p1ai"]
)
"""Yandex search front ends; each is rewritten with its www. variant."""


def _search_rewrites() -> dict[str, Rewrite]:
    """Every host rewritten when safe search is on, mapped to its (shared) Rewrite."""
    def cname(engine: str, target: str) -> Rewrite:
        return Rewrite(engine, target, fallback_v4=OFFLINE_FALLBACK_V4.get(target, ()))

    google = cname("Google", GOOGLE_SAFE)
    bing = cname("Bing", "strict.bing.com")
    ddg = cname("DuckDuckGo", "safe.duckduckgo.com")
    yandex = Rewrite("Yandex", None, addresses_v4=(YANDEX_FAMILY_V4,), nodata_v6=True)
    table = {f"www.google.{tld}": google for tld in GOOGLE_TLDS}
    table.update({"www.bing.com": bing, "edgeservices.bing.com": bing})
    table.update({h: ddg for h in ("duckduckgo.com", "www.duckduckgo.com",
                                   "start.duckduckgo.com")})
    table.update({h: yandex for apex in YANDEX_APEXES for h in (apex, f"www.{apex}")})
    table["www.ecosia.org"] = cname("Ecosia", "strict-safe-search.ecosia.org")
    table["pixabay.com"] = cname("Pixabay", "safesearch.pixabay.com")
    return table


def _youtube_rewrites() -> dict[YouTubeMode, Rewrite]:
    return {
        mode: Rewrite("YouTube", target, fallback_v4=OFFLINE_FALLBACK_V4[target])
        for mode, target in ((YouTubeMode.STRICT, YOUTUBE_STRICT),
                             (YouTubeMode.MODERATE, YOUTUBE_MODERATE))
    }


SEARCH_REWRITES: dict[str, Rewrite] = _search_rewrites()
_YOUTUBE = _youtube_rewrites()
_YOUTUBE_HOSTS = frozenset(YOUTUBE_HOSTS)
REWRITTEN_NAMES = frozenset(SEARCH_REWRITES) | _YOUTUBE_HOSTS
"""Every name ``rewrite_for`` may rewrite, whatever the modes."""


def rewrite_for(name: str, youtube_mode: YouTubeMode, safe_search: bool) -> Rewrite | None:
    """The rewrite for ``name`` (lower-case, no trailing dot), or None to resolve as is.

    YouTube follows ``youtube_mode`` alone; every other engine follows ``safe_search``.
    """
    if name in _YOUTUBE_HOSTS:
        return _YOUTUBE.get(youtube_mode)
    if safe_search:
        return SEARCH_REWRITES.get(name)
    return None
