"""Category blocklists: taxonomy, list formats, the compact matcher and list loading.

Pure domain code: nothing here imports from the resolver, the store or the app. The only
I/O is in ``sources`` (local files, and downloads through the ``fetch`` seam).
"""

from familydns.blocklists.categories import BY_ID, CATEGORIES, Category, validate_category
from familydns.blocklists.fetch import Fetcher, FetchError, FetchResult, UrllibFetcher
from familydns.blocklists.formats import (
    BadLine,
    ParsedRule,
    ParseResult,
    ParseTally,
    RuleKind,
    iter_rules,
    parse_list,
    sniff_format,
)
from familydns.blocklists.matcher import Hit, Matcher, MatcherBuilder, domain_hash
from familydns.blocklists.sources import (
    ListLoader,
    ListSource,
    ListStatus,
    LoadResult,
    starter_sources,
)

__all__ = [
    "BY_ID",
    "CATEGORIES",
    "BadLine",
    "Category",
    "FetchError",
    "FetchResult",
    "Fetcher",
    "Hit",
    "ListLoader",
    "ListSource",
    "ListStatus",
    "LoadResult",
    "Matcher",
    "MatcherBuilder",
    "ParseResult",
    "ParseTally",
    "ParsedRule",
    "RuleKind",
    "UrllibFetcher",
    "domain_hash",
    "iter_rules",
    "parse_list",
    "sniff_format",
    "starter_sources",
    "validate_category",
]
