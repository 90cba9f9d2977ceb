"""decide(): the verdict on one query, a pure function of the snapshot and the clock.

It runs for every query, so everything it reads is precompiled in the snapshot and the
common path (nothing listed, no parent rule) costs one matcher probe and a few set
lookups. The steps, first match wins:

1. Profile: the device's profile, else the default (a built-in baseline when unset).
2. Bypass protection (when on): the canary and relay names get fixed answers (NXDOMAIN,
   NODATA for DDR) whatever the profile's block answer, because the client software
   reads those answers as signals. Other bypass hosts are the dns_bypass category.
3. Pause: "internet off now" blocks every name, the parent's allow lists included.
   To keep some names reachable at night, use a block_all schedule with ``allow``.
4. Parent rules, all subtree (deny, allow, temporary allow): the most specific entry
   wins, so ``deny: [youtube.com]`` with ``allow: [kids.youtube.com]`` does what it
   says. At equal specificity a temporary allow beats deny (a parent just granted it);
   the same name in allow and deny is rejected at load. A winning deny blocks.
5. A winning allow lets the name through, skipping categories and schedule categories.
   A standing allow does not beat an active block_all schedule (bedtime wins) unless the
   schedule's own ``allow`` covers the name; a temporary allow does.
6. An active block_all schedule blocks every name its own ``allow`` does not cover
   (with two such schedules, a name must be in both). Schedules with ``block`` add
   categories to step 7.
7. Categories: the matcher's hits in the effective blocked set (age band - unblock +
   block + active schedules). Per category, a list exception beats a block unless the
   block is important and the exception is not (exception+important > important >
   exception > block). An allow category the profile does not block lifts some blocks
   (ALLOW_OVERRIDES: sex_education lifts adult and suggestive). Several categories:
   the block names the most severe (model.SEVERITY). In allowlist-only mode, a name
   that no block caught still needs a kids_allowlist hit (or the parent allow of
   step 5) to pass.
8. Safe search and YouTube restricted mode: a rewrite, only for names nothing blocked
   (a blocked YouTube stays blocked). Allowed names of step 5 are rewritten too: an
   allow lifts blocks, not safe search.
9. Allow.

Most names meet no parent rule, bypass or safe-search name: when the asker's context
has no pause on record, no active block_all schedule and no allowlist-only mode, a name
outside every parent rule's subtree goes straight to step 7 (``_Context.ruled``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from familydns.profiles.ages import AgeBand
from familydns.profiles.domains import match_subtree
from familydns.profiles.model import (
    ALLOW_OVERRIDES,
    SCHEDULE_ORIGIN,
    SEVERITY,
    Action,
    BlockAnswer,
    Decision,
    HitLike,
    PolicySnapshot,
    Profile,
    effective_categories,
    profile_for,
)
from familydns.profiles.safesearch import REWRITTEN_NAMES, rewrite_for
from familydns.profiles.schedules import Schedule, local_time
from familydns.resolver.identity import ClientIdentity

BYPASS_NAMES: Mapping[str, tuple[BlockAnswer, str]] = {
    "use-application-dns.net": (
        BlockAnswer.NXDOMAIN, "keeps Firefox's automatic DNS-over-HTTPS off"),
    "mask.icloud.com": (BlockAnswer.NXDOMAIN, "turns iCloud Private Relay off"),
    "mask-h2.icloud.com": (BlockAnswer.NXDOMAIN, "turns iCloud Private Relay off"),
    "mask-canary.icloud.com": (BlockAnswer.NXDOMAIN, "turns iCloud Private Relay off"),
    "_dns.resolver.arpa": (BlockAnswer.NODATA, "stops encrypted-DNS discovery (DDR)"),
}
"""Names answered by bypass protection, with the answer and why, in a parent's words."""

_NAMED = frozenset(BYPASS_NAMES) | REWRITTEN_NAMES
"""Names some step before the categories may answer for themselves alone (bypass
protection, safe search): they always take every step."""
_RANK = {category: i for i, category in enumerate(SEVERITY)}
_ALLOWED = "no rule blocks it"


class _Context(NamedTuple):
    """What every step needs about the asker. It stays the same for a client for a whole
    minute (schedules and age bands move in minutes), so it is computed once per client
    and minute and kept in the snapshot's memo; steps that need the exact time take
    ``now`` beside it."""

    snapshot: PolicySnapshot
    profile: Profile
    local: dt.datetime
    """The start of the current minute, household time."""
    band: AgeBand
    active: tuple[Schedule, ...]
    allowed: Decision
    """The verdict for a name no rule touches: one shared value, not one per query."""
    blocked: dict[str, str]
    """Blocked categories right now mapped to their origin (effective_categories)."""
    ruled: frozenset[str] | None
    """The domains under which a parent rule may apply (allow, deny and temporary
    allows), or None when steps 2-6 and allowlist-only mode must run for every name
    (a pause is on record, a block_all schedule is active, allowlist-only mode). A name
    under none of them, and not in ``_NAMED``, skips straight to the categories."""


CONTEXTS_MAX = 4096
"""Clients remembered per snapshot; past it the memo starts over."""


def decide(
    snapshot: PolicySnapshot, client: ClientIdentity, qname: str, qtype: int, now: float
) -> Decision:
    """Judge ``qname`` (lower-case, no trailing dot) for ``client`` at epoch ``now``.

    ``qtype`` does not change the verdict: AAAA and HTTPS are judged exactly like A, so
    no record type is a way around a block.
    """
    q = _context_of(snapshot, client, now)
    ruled = q.ruled
    if ruled is not None and qname not in _NAMED and not (
            ruled and match_subtree(qname, ruled)):
        hits = snapshot.matcher.match(qname)
        if hits:
            return _category_block(q, _resolve(hits), None) or q.allowed
        return q.allowed
    return _steps(q, qname, now)


def _steps(q: _Context, qname: str, now: float) -> Decision:
    """Every step in order; decide() skips to step 7 when q.ruled says none can apply."""
    snapshot, profile = q.snapshot, q.profile
    bypass = profile.bypass_protection
    if bypass if bypass is not None else q.band.bypass_protection:
        found = BYPASS_NAMES.get(qname)
        if found is not None:
            return _bypass(profile, qname, *found)
    paused = _pause(q, now)
    if paused is not None:
        return paused
    bedtime = _schedule_block(q, qname)
    rule = _parent_rule(q, qname, now)
    if rule is not None:
        kind, entry, until = rule
        if kind == "deny":
            return _deny(profile, entry, None)
        if kind == "temporary" or bedtime is None:
            return _rewrite(q, qname) or _allow(q, entry, until)
    if bedtime is not None:
        return bedtime
    hits = snapshot.matcher.match(qname)
    if hits or profile.allowlist_only:
        resolved = _resolve(hits)
        blocked = _category_block(q, resolved, None)
        if blocked is not None:
            return blocked
        if profile.allowlist_only and "kids_allowlist" not in resolved:
            return _block(
                profile,
                f"{qname} is blocked for {profile.name}: allowlist-only mode, and it is on "
                "neither the kids allowlist nor the parent allow list",
                source="allowlist-only mode", origin="allowlist-only mode",
            )
    return _rewrite(q, qname) or q.allowed


def decide_chain(
    snapshot: PolicySnapshot,
    client: ClientIdentity,
    names: Iterable[str],
    qtype: int,
    now: float,
) -> Decision | None:
    """Judge the CNAME targets of an answer (CNAME cloaking); None when all pass.

    ``names`` is the chain as the answer gives it, starting with the query name, which
    decide() already judged and which is not judged again. Targets face the parent deny
    and allow rules and the category blocks (schedule categories included); not pauses,
    block_all schedules, allowlist-only mode or safe search, which are about what the
    child asked for. A query name the parent allows vouches for its whole chain.
    """
    chain = iter(names)
    qname = next(chain, None)
    if qname is None:
        return None
    q = _context_of(snapshot, client, now)
    rule = _parent_rule(q, qname, now)
    if rule is not None and rule[0] != "deny":
        return None
    for target in chain:
        rule = _parent_rule(q, target, now)
        if rule is not None:
            if rule[0] == "deny":
                return _deny(q.profile, rule[1], qname)
            continue
        blocked = _category_block(q, _resolve(snapshot.matcher.match(target)), qname)
        if blocked is not None:
            return blocked
    return None


def _context_of(snapshot: PolicySnapshot, client: ClientIdentity, now: float) -> _Context:
    contexts = snapshot.contexts
    found = contexts.get(client)
    if found is None or not found[0] <= now < found[0] + 60.0:
        start = now - now % 60.0
        if len(contexts) >= CONTEXTS_MAX:
            contexts.clear()
        found = contexts[client] = (start, _context(snapshot, client, start))
    q: _Context = found[1]
    return q


def _context(snapshot: PolicySnapshot, client: ClientIdentity, start: float) -> _Context:
    """The _Context of ``client`` for the minute starting at ``start``."""
    profile = profile_for(snapshot, client)
    local = local_time(start, snapshot.tz)
    active = tuple(s for s in profile.schedules if s.active(local))
    band = profile.band_on(local.date())
    # Rebinding protection: the profile's setting, else on wherever bypass protection is
    # on by age (every minor).
    setting = profile.rebinding_protection
    allowed = Decision(Action.ALLOW, profile.name, _ALLOWED, guard_private=(
        setting if setting is not None else band.bypass_protection))
    ruled: frozenset[str] | None = None
    if (profile.name not in snapshot.overrides.pauses and not profile.allowlist_only
            and not any(s.block_all for s in active)):
        ruled = profile.allow | profile.deny | frozenset(
            snapshot.overrides.allows_by_profile.get(profile.name, ()))
    return _Context(snapshot, profile, local, band, active, allowed,
                    effective_categories(profile, local.date(), active), ruled)


def _block(
    profile: Profile,
    reason: str,
    *,
    source: str,
    origin: str,
    category: str | None = None,
    rule: str | None = None,
    line: int | None = None,
    schedule: str | None = None,
) -> Decision:
    """A block answered the way the profile says (NXDOMAIN, a block page, ...)."""
    return Decision(
        Action.BLOCK, profile.name, reason, category=category, rule=rule, source=source,
        line=line, schedule=schedule, origin=origin, block_answer=profile.block_answer,
        block_addresses=profile.block_addresses,
    )


def _bypass(profile: Profile, qname: str, answer: BlockAnswer, why: str) -> Decision:
    return Decision(
        Action.BLOCK, profile.name,
        f"{qname} is blocked for {profile.name} by bypass protection: it {why}",
        category="dns_bypass", rule=qname, source="bypass protection",
        origin="bypass protection", block_answer=answer,
    )


def _pause(q: _Context, now: float) -> Decision | None:
    paused, until = q.snapshot.overrides.paused(q.profile.name, now)
    if not paused:
        return None
    end = "a parent resumes it" if until is None else _clock(q, until)
    return _block(q.profile, f"internet is paused for {q.profile.name} until {end}",
                  source="pause", origin="pause")


def _clock(q: _Context, epoch: float) -> str:
    """An end time as a parent reads it: ``21:30``, or ``Sat 07:00`` on another day."""
    when = local_time(epoch, q.snapshot.tz)
    return when.strftime("%H:%M" if when.date() == q.local.date() else "%a %H:%M")


def _parent_rule(q: _Context, name: str, now: float) -> tuple[str, str, float | None] | None:
    """The most specific parent rule covering ``name``: (kind, entry, until)."""
    profile = q.profile
    found: list[tuple[int, int, str, str, float | None]] = []
    temporary = q.snapshot.overrides.allowed_until(profile.name, name, now)
    if temporary is not None:
        found.append((len(temporary[0]), 2, "temporary", temporary[0], temporary[1]))
    deny = match_subtree(name, profile.deny)
    if deny is not None:
        found.append((len(deny), 1, "deny", deny, None))
    allow = match_subtree(name, profile.allow)
    if allow is not None:
        found.append((len(allow), 0, "allow", allow, None))
    if not found:
        return None
    _, _, kind, entry, until = max(found)
    return kind, entry, until


def _deny(profile: Profile, entry: str, via: str | None) -> Decision:
    return _block(
        profile, f"{entry} is on the parent deny list for {profile.name}{_via(via)}",
        rule=entry, source="parent deny list", origin="added by parent",
    )


def _via(via: str | None) -> str:
    return f" (reached via CNAME of {via})" if via else ""


def _allow(q: _Context, entry: str, until: float | None) -> Decision:
    name = q.profile.name
    if until is not None:
        reason = f"{entry} is temporarily allowed for {name} until {_clock(q, until)}"
        source = "temporary allow"
    else:
        reason = f"{entry} is on the parent allow list for {name}"
        source = "parent allow list"
    return Decision(Action.ALLOW, name, reason, rule=entry, source=source,
                    origin="added by parent", guard_private=q.allowed.guard_private)


def _schedule_block(q: _Context, name: str) -> Decision | None:
    """The first active block_all schedule whose allow list does not cover ``name``."""
    for schedule in q.active:
        if schedule.block_all and match_subtree(name, schedule.allow) is None:
            label = SCHEDULE_ORIGIN + schedule.name
            return _block(
                q.profile,
                f"everything is blocked for {q.profile.name} during {label} "
                f"({schedule.window})",
                source=label, schedule=schedule.name, origin=label,
            )
    return None


def _resolve(hits: Sequence[HitLike]) -> dict[str, HitLike]:
    """Category -> the hit that lists the name, after its list's exceptions."""
    if len(hits) == 1 and not hits[0].exception:
        return {hits[0].category: hits[0]}
    blocks: dict[str, HitLike] = {}
    exceptions: dict[str, HitLike] = {}
    for hit in hits:
        (exceptions if hit.exception else blocks)[hit.category] = hit
    for category, exception in exceptions.items():
        block = blocks.get(category)
        if block is not None and (exception.important or not block.important):
            del blocks[category]
    return blocks


def _category_block(q: _Context, listed: dict[str, HitLike], via: str | None) -> Decision | None:
    """The block for the most severe listed category the profile blocks right now."""
    if not listed:
        return None
    blocked = q.blocked
    lifted: set[str] = set()
    if len(listed) > 1:  # a lift needs an allow category listed beside the block
        for allow_category, lifts in ALLOW_OVERRIDES.items():
            if allow_category in listed and allow_category not in blocked:
                lifted |= lifts
    candidates = [c for c in listed if c in blocked and c not in lifted]
    if not candidates:
        return None
    category = candidates[0] if len(candidates) == 1 else min(
        candidates, key=lambda c: (_RANK.get(c, len(_RANK)), c))
    hit, origin = listed[category], blocked[category]
    where = f"list {hit.source}" + (f" line {hit.line}" if hit.line else "")
    schedule = origin[len(SCHEDULE_ORIGIN):] if origin.startswith(SCHEDULE_ORIGIN) else None
    return _block(
        q.profile,
        f"{category} is blocked for {q.profile.name} ({origin}); matched {hit.domain} "
        f"in {where}{_via(via)}",
        category=category, rule=hit.domain, source=hit.source, line=hit.line or None,
        schedule=schedule, origin=origin,
    )


def _rewrite(q: _Context, name: str) -> Decision | None:
    """Safe search or YouTube restricted mode for the profile, when ``name`` is a target."""
    profile, band = q.profile, q.band
    safe = profile.safe_search if profile.safe_search is not None else band.safe_search
    youtube = profile.youtube or band.youtube
    rewrite = rewrite_for(name, youtube, safe)
    if rewrite is None:
        return None
    if rewrite.engine == "YouTube":
        what = f"YouTube restricted mode ({youtube.value})"
        chosen = profile.youtube is not None
    else:
        what = f"safe search on {rewrite.engine}"
        chosen = profile.safe_search is not None
    origin = "set by parent" if chosen else band.origin
    return Decision(
        Action.REWRITE, profile.name, f"{what} is enforced for {profile.name} ({origin})",
        rule=name, source="safe search", origin=origin, rewrite=rewrite,
    )

