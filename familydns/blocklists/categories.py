"""The canonical content categories every list source is filed under.

Sources call the same thing by different names (UT1 "drogue", Block List Project "drugs");
profiles and age presets speak only these ids, so a typo in config is caught at load
instead of silently turning a block off.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Category:
    """A category id with a one-line description.

    ``allow`` marks allow categories: their lists grant access (an allowlist for
    allowlist-only mode, or carve-outs such as sex education) rather than block it.
    """

    id: str
    description: str
    allow: bool = False


CATEGORIES: tuple[Category, ...] = (
    Category("adult", "Pornography and nudity."),
    Category("suggestive", "Lingerie, swimwear and other suggestive but non-explicit content."),
    Category("gambling", "Betting, casinos, lotteries and poker."),
    Category("dating", "Dating and hook-up services."),
    Category("violence", "Gore, snuff and graphic violence."),
    Category("hate_extremism", "Hate speech, aggression, extremism and sects."),
    Category("weapons", "Weapons, explosives and dangerous materials."),
    Category("drugs", "Illegal drugs and their sale."),
    Category("alcohol_tobacco", "Alcohol, tobacco and vaping."),
    Category("self_harm", "Encouragement of suicide, self-harm or eating disorders."),
    Category("social", "Social networks and forums."),
    Category("chat", "Chat, messengers and webmail: the main channel for harmful contact."),
    Category("gaming", "Online games and game stores."),
    Category("streaming", "Video and audio streaming."),
    Category("shopping", "Online shops and marketplaces."),
    Category("ai", "AI chat and generation services."),
    Category("piracy", "Warez, torrents and file hosting."),
    Category("proxy_vpn", "VPNs, web proxies, redirectors, link shorteners and remote control."),
    Category("dns_bypass", "Public DoH/DoT resolvers and relays that would bypass this filter."),
    Category("unsafe_search", "Search engines that offer no enforceable safe mode."),
    Category("malware", "Malware, cryptojacking and stalkerware."),
    Category("phishing", "Phishing, fraud and scams."),
    Category("hacking_cheating", "Hacking tools and exam cheating."),
    Category("ads_tracking", "Advertising and tracking."),
    Category("kids_allowlist", "Sites suited to young children, for allowlist-only mode.", True),
    Category("sex_education", "Sex-education sites that adult lists would otherwise catch.", True),
)

BY_ID: dict[str, Category] = {category.id: category for category in CATEGORIES}


def validate_category(category_id: str) -> str:
    """Return ``category_id`` if it is canonical, else raise ``ValueError`` naming it.

    The message lists the valid ids so a config error can be fixed without reading code.
    """
    if category_id in BY_ID:
        return category_id
    valid = ", ".join(category.id for category in CATEGORIES)
    raise ValueError(f"unknown category {category_id!r}; valid categories: {valid}")
