"""The webhook's Prometheus metrics (``/metrics``), served by ``prometheus-client``.

One :class:`Metrics` per app, each with its own registry, so two apps in
one process (the tests) never share counters.
"""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Latency buckets (seconds): fine below 100 ms where a cached review lands, up to the deadline.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
M = TypeVar("M", Counter, Histogram)


class Metrics:
    """Every metric the webhook exports."""

    def __init__(self) -> None:
        # The *_created series double the exposition for nothing a webhook needs.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[object, tuple[str, ...]], object] = {}
        r = self.registry
        self.reviews = Counter(
            "imggate_admission_reviews", "AdmissionReviews answered, by decision and kind.",
            ("endpoint", "decision", "kind", "dry_run"), registry=r)
        self.latency = Histogram(
            "imggate_admission_review_seconds", "Time to answer an AdmissionReview.",
            ("endpoint",), buckets=_BUCKETS, registry=r)
        self.cache = Counter(
            "imggate_admission_cache_lookups", "Cache lookups by cache, layer and result.",
            ("cache", "layer", "result"), registry=r)
        self.registry_ops = Counter(
            "imggate_admission_registry_operations",
            "Registry operations (resolve, signatures) started for reviews.",
            ("operation",), registry=r)
        self.registry_errors = Counter(
            "imggate_admission_registry_errors",
            "Registry operations that failed (the review was denied).",
            ("operation",), registry=r)
        self.deadline_hits = Counter(
            "imggate_admission_deadline_exceeded",
            "Reviews denied because evidence was not gathered before the deadline.",
            registry=r)
        self.bad_requests = Counter(
            "imggate_admission_bad_requests", "Bodies that were not a usable AdmissionReview.",
            registry=r)
        self.redis_up = Gauge(
            "imggate_admission_redis_up",
            "1 when the shared Redis cache answers, 0 when the local cache is used alone.",
            registry=r)
        self.rules_reloads = Counter(
            "imggate_admission_rules_reloads", "Rules reloads by result.", ("result",),
            registry=r)
        self.rules_loaded = Gauge(
            "imggate_admission_rules_loaded_timestamp_seconds",
            "When the rules in use were loaded.", registry=r)
        self.tls_reloads = Counter(
            "imggate_admission_tls_reloads", "TLS certificate reloads by result.", ("result",),
            registry=r)
        self.pull_secrets = Counter(
            "imggate_admission_pull_secret_reads",
            "Reviews whose pull secrets were gathered, by result (ok; error and timeout "
            "denied the review).", ("result",), registry=r)
        self.shared_resolutions = Counter(
            "imggate_admission_single_flight_joins",
            "Reviews that waited for a resolution another review had started.", registry=r)

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, remembered: the hot path asks for the same few series
        on every review, and ``labels()`` re-validates and locks each time (measured: a
        tenth of a warm review's cost)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found  # type: ignore[return-value]

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
