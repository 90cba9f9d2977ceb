"""The per-query counters are plain integers exported at scrape time."""

from familydns.metrics import Histogram, Metrics
from familydns.resolver import wire


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    histogram = Histogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.005, 0.5):
        histogram.observe(seconds)
    assert histogram.buckets() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert abs(histogram.total - 0.5065) < 1e-12


def test_scrape_shows_hot_counters_with_labels() -> None:
    metrics = Metrics()
    metrics.query(wire.T_A, "blocked", 0.0002)
    metrics.query_reused(metrics.query_key(wire.T_A, "blocked"))
    metrics.query(65280, "answered", 0.0002)  # an unnamed type is "other"
    metrics.block("kid", "adult")
    metrics.cache_event("hits")
    metrics.upstream_result("udp://127.0.0.1:53", "ok", 0.003)
    metrics.upstream_result("udp://127.0.0.1:53", "timeout", 2.0)
    value = metrics.registry.get_sample_value
    assert value("familydns_queries_total", {"qtype": "A", "result": "blocked"}) == 2
    assert value("familydns_queries_total", {"qtype": "other", "result": "answered"}) == 1
    assert value("familydns_response_seconds_count") == 2
    assert value("familydns_blocked_total", {"profile": "kid", "category": "adult"}) == 1
    assert value("familydns_cache_hits_total") == 1
    assert value("familydns_cache_misses_total") == 0
    assert value("familydns_upstream_requests_total",
                 {"upstream": "udp://127.0.0.1:53", "result": "timeout"}) == 1
    assert value("familydns_upstream_seconds_count", {"upstream": "udp://127.0.0.1:53"}) == 1
