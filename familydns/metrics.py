"""Prometheus metrics, all named ``familydns_*``, on one injectable registry.

Labels stay low-cardinality (query type, result, profile, category, upstream URL): never
a query name or a client address. Label children are cached so the per-query cost is a
dict lookup and an increment.
"""

from __future__ import annotations

from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from familydns.resolver.wire import TYPE_NAMES

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.0, 5.0)
RESULTS = ("answered", "cached", "stale", "blocked", "rewritten", "servfail", "refused",
           "formerr", "nxdomain")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.queries = Counter("familydns_queries_total", "DNS queries answered, by type and "
                               "result", ["qtype", "result"], registry=r)
        self.latency = Histogram("familydns_response_seconds", "Time from query to answer",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.cache_hits = Counter("familydns_cache_hits_total", "Answers served from the cache",
                                  registry=r)
        self.cache_misses = Counter("familydns_cache_misses_total", "Lookups not in the cache",
                                    registry=r)
        self.cache_stale = Counter("familydns_cache_stale_answers_total",
                                   "Expired answers served because upstreams failed",
                                   registry=r)
        self.cache_evictions = Counter("familydns_cache_evictions_total",
                                       "Entries evicted to keep the cache at its size cap",
                                       registry=r)
        self.cache_entries = Gauge("familydns_cache_entries", "Entries in the cache",
                                   registry=r)
        self.upstream_requests = Counter("familydns_upstream_requests_total",
                                         "Queries sent upstream, by upstream and result",
                                         ["upstream", "result"], registry=r)
        self.upstream_latency = Histogram("familydns_upstream_seconds",
                                          "Upstream response time", ["upstream"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_rejected_replies = Counter(
            "familydns_upstream_rejected_replies_total",
            "Datagrams ignored because ID, question or sender did not match (spoofing)",
            ["upstream"], registry=r)
        self.malformed = Counter("familydns_malformed_queries_total",
                                 "Queries that could not be decoded", ["transport"],
                                 registry=r)
        self.dropped = Counter("familydns_dropped_queries_total",
                               "Queries dropped at a resource bound", ["reason"], registry=r)
        self.blocked = Counter("familydns_blocked_total", "Blocked lookups",
                               ["profile", "category"], registry=r)
        self.tcp_connections = Gauge("familydns_tcp_connections", "Open client TCP connections",
                                     registry=r)
        self.reloads = Counter("familydns_reloads_total", "Policy reloads by result",
                               ["result"], registry=r)
        self.list_entries = Gauge("familydns_list_entries", "Domain rules loaded", registry=r)
        self.log_dropped = Counter("familydns_log_dropped_total",
                                   "Log rows dropped because the log queue was full",
                                   registry=r)
        self._query_children: dict[tuple[int, str], Counter] = {}
        self._upstream_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def query_child(self, qtype: int, result: str) -> Counter:
        """The counter for (qtype, result), cached: the memoised path only increments."""
        child = self._query_children.get((qtype, result))
        if child is None:
            label = TYPE_NAMES.get(qtype, "other")
            child = self.queries.labels(label, result)
            self._query_children[(qtype, result)] = child
        return child

    def query(self, qtype: int, result: str, seconds: float) -> None:
        self.query_child(qtype, result).inc()
        self.latency.observe(seconds)

    def upstream_result(self, upstream: str, result: str, seconds: float) -> None:
        key = (upstream, result)
        children = self._upstream_children.get(key)
        if children is None:
            children = self._upstream_children[key] = (
                self.upstream_requests.labels(upstream, result),
                self.upstream_latency.labels(upstream))
        children[0].inc()
        if result == "ok":
            children[1].observe(seconds)

    def upstream_rejected(self, upstream: str) -> None:
        self.upstream_rejected_replies.labels(upstream).inc()

    def track_cache_size(self, size: Callable[[], int]) -> None:
        self.cache_entries.set_function(lambda: float(size()))

    def serve(self, host: str, port: int) -> WSGIServer:
        """Start the HTTP endpoint in a daemon thread; returns the server to shut down."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
