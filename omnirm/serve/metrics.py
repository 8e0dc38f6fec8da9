"""The Prometheus metrics that ``GET /metrics`` shows (one registry per application)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: The paths counted under their own name; anything else is counted as ``other``.
ENDPOINTS = ("/score", "/openrlhf", "/classify", "/health", "/metrics")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class ServeMetrics:
    """Requests by endpoint and status, their latency, batch sizes, scorer time, queue depth."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    batch_size: Histogram
    batch_seconds: Histogram
    queue_depth: Gauge
    records: Counter

    @classmethod
    def create(cls, max_batch_size: int) -> ServeMetrics:
        registry = CollectorRegistry()
        sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, max_batch_size})
        return cls(
            registry=registry,
            requests=Counter(
                "omnirm_requests",
                "HTTP requests by endpoint and status code.",
                ["endpoint", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "omnirm_request_seconds",
                "Time from request to response, by endpoint.",
                ["endpoint"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            batch_size=Histogram(
                "omnirm_batch_size",
                "Records (or texts) per scorer call.",
                buckets=[s for s in sizes if s <= max_batch_size],
                registry=registry,
            ),
            batch_seconds=Histogram(
                "omnirm_batch_seconds",
                "Time the scorer took per call.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            queue_depth=Gauge(
                "omnirm_queue_depth",
                "Records (or texts) waiting for the scorer.",
                registry=registry,
            ),
            records=Counter(
                "omnirm_records",
                "Records (or texts) scored, by outcome (scored or failed).",
                ["outcome"],
                registry=registry,
            ),
        )

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)
