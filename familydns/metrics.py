"""Prometheus metrics, all named ``familydns_*``, on one injectable registry.

Labels stay low-cardinality (query type, result, profile, category, upstream URL): never
a query name or a client address.

The counters every query touches (queries, latency, cache, blocks, upstream requests)
are plain integers in dicts, turned into metric families only when Prometheus scrapes:
a ``prometheus_client`` counter takes a lock per increment, which cost more than the
rest of a cache hit. Rare events (drops, reloads, TCP connections) keep the library's
own counters.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from familydns.resolver.wire import TYPE_NAMES

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.0, 5.0)
RESULTS = ("answered", "cached", "stale", "blocked", "rewritten", "servfail", "refused",
           "formerr", "nxdomain")


class Histogram:
    """Bucket counts and a sum; ``observe`` is one bisect and two additions."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``le`` buckets as Prometheus expects them, ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts):
            running += count
            out.append((bound, running))
        return out


class HotCounters(Collector):
    """The per-query counters, exported at scrape time."""

    def __init__(self) -> None:
        self.queries: dict[tuple[str, str], int] = {}
        self.latency = Histogram()
        self.cache = {"hits": 0, "misses": 0, "stale": 0, "evictions": 0}
        self.blocked: dict[tuple[str, str], int] = {}
        self.upstream: dict[tuple[str, str], int] = {}
        self.upstream_latency: dict[str, Histogram] = {}
        self.log_dropped = 0
        """Lookups the log could not keep: under a flood of new blocked names this
        counts once per query, so it is a plain integer, not a locked Counter."""

    def collect(self) -> Iterator[Metric]:
        queries = CounterMetricFamily("familydns_queries", "DNS queries answered, by type "
                                      "and result", labels=["qtype", "result"])
        for (qtype, result), n in dict(self.queries).items():
            queries.add_metric([qtype, result], n)
        yield queries
        latency = HistogramMetricFamily("familydns_response_seconds",
                                        "Time from query to answer")
        latency.add_metric([], self.latency.buckets(), self.latency.total)
        yield latency
        cache = dict(self.cache)
        for key, help_text in (("hits", "Answers served from the cache"),
                               ("misses", "Lookups not in the cache"),
                               ("stale", "Expired answers served because upstreams failed"),
                               ("evictions", "Entries evicted to keep the cache small")):
            name = "stale_answers" if key == "stale" else key
            yield CounterMetricFamily(f"familydns_cache_{name}", help_text, cache[key])
        yield CounterMetricFamily("familydns_log_dropped", "Log rows dropped because the "
                                  "log queue was full", self.log_dropped)
        blocked = CounterMetricFamily("familydns_blocked", "Blocked lookups",
                                      labels=["profile", "category"])
        for (profile, category), n in dict(self.blocked).items():
            blocked.add_metric([profile, category], n)
        yield blocked
        requests = CounterMetricFamily("familydns_upstream_requests", "Queries sent "
                                       "upstream, by upstream and result",
                                       labels=["upstream", "result"])
        for (upstream, result), n in dict(self.upstream).items():
            requests.add_metric([upstream, result], n)
        yield requests
        seconds = HistogramMetricFamily("familydns_upstream_seconds", "Upstream response "
                                        "time", labels=["upstream"])
        for upstream, histogram in dict(self.upstream_latency).items():
            seconds.add_metric([upstream], histogram.buckets(), histogram.total)
        yield seconds


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.hot = HotCounters()
        r.register(self.hot)
        self.cache_entries = Gauge("familydns_cache_entries", "Entries in the cache",
                                   registry=r)
        self.upstream_rejected_replies = Counter(
            "familydns_upstream_rejected_replies_total",
            "Datagrams ignored because ID, question or sender did not match (spoofing)",
            ["upstream"], registry=r)
        self.malformed = Counter("familydns_malformed_queries_total",
                                 "Queries that could not be decoded", ["transport"],
                                 registry=r)
        self.dropped = Counter("familydns_dropped_queries_total",
                               "Queries dropped at a resource bound", ["reason"], registry=r)
        self.tcp_connections = Gauge("familydns_tcp_connections", "Open client TCP connections",
                                     registry=r)
        self.reloads = Counter("familydns_reloads_total", "Policy reloads by result",
                               ["result"], registry=r)
        self.list_entries = Gauge("familydns_list_entries", "Domain rules loaded", registry=r)

    @staticmethod
    def query_key(qtype: int, result: str) -> tuple[str, str]:
        """The (qtype, result) label pair, computed once for answers counted again."""
        return TYPE_NAMES.get(qtype, "other"), result

    def query(self, qtype: int, result: str, seconds: float) -> None:
        queries = self.hot.queries
        key = (TYPE_NAMES.get(qtype, "other"), result)
        queries[key] = queries.get(key, 0) + 1
        self.hot.latency.observe(seconds)

    def query_reused(self, key: tuple[str, str]) -> None:
        """A memoised answer: counted, with no latency worth a bucket."""
        queries = self.hot.queries
        queries[key] = queries.get(key, 0) + 1

    def cache_event(self, kind: str) -> None:
        """``hits``, ``misses``, ``stale`` or ``evictions``."""
        self.hot.cache[kind] += 1

    def log_dropped(self, lookups: int) -> None:
        self.hot.log_dropped += lookups

    def block(self, profile: str, category: str) -> None:
        blocked = self.hot.blocked
        key = (profile, category)
        blocked[key] = blocked.get(key, 0) + 1

    def upstream_result(self, upstream: str, result: str, seconds: float) -> None:
        counts = self.hot.upstream
        key = (upstream, result)
        counts[key] = counts.get(key, 0) + 1
        if result == "ok":
            histogram = self.hot.upstream_latency.get(upstream)
            if histogram is None:
                histogram = self.hot.upstream_latency[upstream] = Histogram()
            histogram.observe(seconds)

    def upstream_rejected(self, upstream: str) -> None:
        self.upstream_rejected_replies.labels(upstream).inc()

    def track_cache_size(self, size: Callable[[], int]) -> None:
        self.cache_entries.set_function(lambda: float(size()))

    def serve(self, host: str, port: int) -> WSGIServer:
        """Start the HTTP endpoint in a daemon thread; returns the server to shut down."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
