"""The hot-path collectors export exactly what prometheus-client's own metric types would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from imggate.admission.metrics import _BUCKETS, LatencyHistogram, Metrics, Tally


def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_created")}


durations = st.lists(st.one_of(st.sampled_from(_BUCKETS),  # exactly on a bound: le
                               st.floats(0, 20, allow_nan=False)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(durations, durations)
def test_latency_histogram_matches_prometheus_clients_histogram(validate: list[float],
                                                                mutate: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LatencyHistogram("review_seconds", "Time.", "endpoint", _BUCKETS)
    ours.register(mine)
    peer = Histogram("review_seconds", "Time.", ("endpoint",), buckets=_BUCKETS,
                     registry=theirs)
    for endpoint, values in (("validate", validate), ("mutate", mutate)):
        for v in values:
            mine.observe(endpoint, v)
            peer.labels(endpoint).observe(v)
        assert mine.count(endpoint) == len(values)
    # The sums are added in the same order on both sides: equal, not just close.
    assert samples(ours) == samples(theirs)


def test_tally_matches_prometheus_clients_counter() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = Tally("lookups", "Lookups.", ("cache", "result"))
    ours.register(mine)
    peer = Counter("lookups", "Lookups.", ("cache", "result"), registry=theirs)
    for labels in [("tag", "hit")] * 3 + [("verdict", "miss")]:
        mine.inc(*labels)
        peer.labels(*labels).inc()
    assert samples(ours) == samples(theirs)
    assert mine.value("tag", "hit") == 3 and mine.value("tag", "miss") == 0


def test_the_review_series_are_in_the_apps_exposition() -> None:
    m = Metrics()
    m.reviews.inc("validate", "deny", "Pod", "false")
    m.latency.observe("validate", 0.004)
    m.cache.inc("verdict", "redis", "hit")
    text = m.render().decode()
    assert ('imggate_admission_reviews_total{decision="deny",dry_run="false",'
            'endpoint="validate",kind="Pod"} 1.0') in text
    assert 'imggate_admission_review_seconds_bucket{endpoint="validate",le="0.005"} 1.0' in text
    assert 'imggate_admission_review_seconds_bucket{endpoint="validate",le="0.0025"} 0.0' in text
    assert ('imggate_admission_cache_lookups_total{cache="verdict",layer="redis",'
            'result="hit"} 1.0') in text
