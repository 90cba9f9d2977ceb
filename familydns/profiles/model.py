"""The frozen values of the policy layer: profiles, overrides, the snapshot, decisions.

A PolicySnapshot holds everything ``decide()`` needs, already compiled. The resolver
keeps one reference to the current snapshot and a reload replaces it in one assignment,
so a query is always judged against one consistent policy.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from familydns.frozen import fast_init
from familydns.profiles.ages import BASELINE_BAND, AgeBand, band_on
from familydns.profiles.devices import DeviceIndex
from familydns.profiles.domains import suffixes
from familydns.profiles.safesearch import Rewrite, YouTubeMode
from familydns.profiles.schedules import Schedule
from familydns.resolver.identity import ClientIdentity

SEVERITY: tuple[str, ...] = (
    "malware", "phishing", "adult", "self_harm", "drugs", "violence", "weapons",
    "hate_extremism", "gambling", "dating", "suggestive", "alcohol_tobacco",
    "dns_bypass", "proxy_vpn", "unsafe_search", "piracy", "hacking_cheating",
    "chat", "social", "ai", "gaming", "streaming", "shopping", "ads_tracking",
    "sex_education", "kids_allowlist",
)
"""Most severe first. When a name is in several blocked categories, the block names the
first: security threats, then harm to the child, then bypasses, then time-wasters."""

ALLOW_OVERRIDES: Mapping[str, frozenset[str]] = {
    "sex_education": frozenset({"adult", "suggestive"}),
    "kids_allowlist": frozenset({"gaming", "streaming"}),
}
"""An allow category the profile does not block lifts these blocked categories: sex
education sites are often also listed as adult, and curated children's games and videos
as gaming or streaming. Never security, contact (chat, social) or bypass categories."""


class HitLike(Protocol):
    """What decide() reads from a blocklist hit (familydns.blocklists.matcher.Hit)."""

    @property
    def category(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def exception(self) -> bool: ...
    @property
    def important(self) -> bool: ...
    @property
    def source(self) -> str: ...
    @property
    def line(self) -> int: ...


class MatcherLike(Protocol):
    """familydns.blocklists.matcher.Matcher: at most one hit per (category, exception)."""

    def match(self, name: str) -> tuple[HitLike, ...]: ...


class Action(enum.Enum):
    ALLOW = "allow"
    BLOCK = "block"
    REWRITE = "rewrite"


class BlockAnswer(enum.Enum):
    """How a block is answered: NXDOMAIN by default; CUSTOM points at a block page."""

    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    ZERO = "zero"
    REFUSED = "refused"
    CUSTOM = "custom"


@fast_init
@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one query, with enough detail to explain it to a parent."""

    action: Action
    profile: str
    reason: str
    """One sentence a parent can read."""
    category: str | None = None
    rule: str | None = None
    """The matched list entry or parent rule, e.g. ``bet365.com``."""
    source: str | None = None
    """The list's source name, or ``parent deny list``, ``schedule bedtime``, ``pause``."""
    line: int | None = None
    schedule: str | None = None
    origin: str | None = None
    """Why the category applies: ``age default 10-12``, ``added by parent``, ..."""
    block_answer: BlockAnswer = BlockAnswer.NXDOMAIN
    block_addresses: tuple[str, ...] = ()
    rewrite: Rewrite | None = None
    ttl: int = 10
    """Short, for synthesised answers, so a schedule or pause change is felt quickly."""
    guard_private: bool = False
    """For ALLOW: the answer must not point a public name at a private address (DNS
    rebinding protection); the resolver checks the upstream's addresses."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One compiled profile. None for a setting means "follow the age band"."""

    name: str
    birthdate: dt.date | None = None
    """None only for the built-in baseline, which has no age."""
    stated_age: int | None = None
    """The ``age:`` the config gave, when the birth date is implied from it."""
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    safe_search: bool | None = None
    youtube: YouTubeMode | None = None
    bypass_protection: bool | None = None
    rebinding_protection: bool | None = None
    allowlist_only: bool = False
    block_answer: BlockAnswer = BlockAnswer.NXDOMAIN
    block_addresses: tuple[str, ...] = ()
    schedules: tuple[Schedule, ...] = ()

    def band_on(self, day: dt.date) -> AgeBand:
        """The age band on ``day``, so a birthday moves the child up with no edit."""
        if self.birthdate is None:
            return BASELINE_BAND
        return band_on(self.birthdate, day)


BASELINE_NAME = "default"


def baseline_profile() -> Profile:
    """For unknown devices when no household.default_profile is set."""
    return Profile(BASELINE_NAME)


class TemporaryAllow(NamedTuple):
    """A parent's "allow this for an hour"; ``until`` is epoch seconds."""

    profile: str
    domain: str
    until: float


@dataclass(frozen=True, slots=True)
class Overrides:
    """Live parent actions from the store: pauses and temporary allows.

    ``pauses`` maps a profile to the epoch second its pause ends, or None for "until
    resumed". Domains must already be normalised (see normalise_domain).
    """

    pauses: Mapping[str, float | None] = field(default_factory=dict)
    allows: tuple[TemporaryAllow, ...] = ()
    allows_by_profile: Mapping[str, Mapping[str, float]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[str, dict[str, float]] = {}
        for profile, domain, until in self.allows:
            domains = index.setdefault(profile, {})
            domains[domain] = max(until, domains.get(domain, until))
        object.__setattr__(self, "allows_by_profile", index)

    def paused(self, profile: str, now: float) -> tuple[bool, float | None]:
        """(paused now, end of the pause or None when it lasts until resumed)."""
        if profile not in self.pauses:
            return False, None
        until = self.pauses[profile]
        return until is None or until > now, until

    def allowed_until(self, profile: str, name: str, now: float) -> tuple[str, float] | None:
        """The unexpired temporary allow covering ``name`` (subtree) and its end."""
        domains = self.allows_by_profile.get(profile)
        if domains:
            for suffix in suffixes(name):
                until = domains.get(suffix)
                if until is not None and until > now:
                    return suffix, until
        return None


NO_OVERRIDES = Overrides()


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """Everything decide() reads, built once per config, list or override change."""

    profiles: Mapping[str, Profile]
    devices: DeviceIndex
    default_profile: str
    matcher: MatcherLike
    tz: dt.tzinfo | None = None
    """The household's zone; None means the system's local time."""
    overrides: Overrides = NO_OVERRIDES
    version: int = 0
    built_at: float = 0.0
    contexts: dict[Any, Any] = field(default_factory=dict, init=False, compare=False,
                                     repr=False)
    """decide()'s memo of per-client, per-minute work (profile, band, schedules): not
    part of the value, and gone with the snapshot."""


SCHEDULE_ORIGIN = "schedule "
"""Prefix of the origin of a category a schedule adds: ``schedule homework``."""


def profile_for(snapshot: PolicySnapshot, client: ClientIdentity) -> Profile:
    """The client's profile, or the default profile for a device no profile claims."""
    name = snapshot.devices.lookup(client)
    return snapshot.profiles[name if name is not None else snapshot.default_profile]


def effective_categories(
    profile: Profile, day: dt.date, schedules: Iterable[Schedule] = ()
) -> dict[str, str]:
    """Blocked categories on ``day`` mapped to their origin, for the active schedules.

    A parent's ``block`` wins as the stated origin, then the age default, then the
    schedule: a parent's ``unblock`` removes an age default but not a schedule's block.
    """
    band = profile.band_on(day)
    result = {c: band.origin for c in band.blocked if c not in profile.removed}
    for schedule in schedules:
        for category in schedule.block:
            result.setdefault(category, SCHEDULE_ORIGIN + schedule.name)
    for category in profile.added:
        result[category] = "added by parent"
    return result
