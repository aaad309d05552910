"""Prometheus metrics of the serving app, per team and adapter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServingMetrics:
    """The counters and histograms one serving process exports on /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, labels = self.registry, ("team", "adapter")
        self.requests = Counter(
            "tailor_serve_requests", "Requests answered.", (*labels, "route", "status"), registry=r
        )
        self.prompt_tokens = Counter(
            "tailor_serve_prompt_tokens", "Prompt tokens read.", labels, registry=r
        )
        self.completion_tokens = Counter(
            "tailor_serve_completion_tokens", "Completion tokens generated.", labels, registry=r
        )
        self.ttft = Histogram(
            "tailor_serve_time_to_first_token_seconds",
            "Seconds from request to the first generated chunk.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "tailor_serve_request_duration_seconds",
            "Seconds from request to its last byte.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.adapter_events = Counter(
            "tailor_serve_adapter_events",
            "Adapter loads and evictions in the engine.",
            ("event", "adapter"),
            registry=r,
        )
        self.in_flight = Gauge("tailor_serve_in_flight", "Requests being answered.", registry=r)
        self.refused = Counter(
            "tailor_serve_refused",
            "Requests refused before they started, costing nothing: `reason` is the rate limit "
            "(requests_per_minute, tokens_per_minute), queue_full or queue_timeout.",
            ("team", "reason"),
            registry=r,
        )

    def adapter_event(self, event: str, key: str) -> None:
        """Count an engine adapter load or eviction (an engine listener)."""
        self.adapter_events.labels(event, key).inc()
