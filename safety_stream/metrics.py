"""Prometheus metrics of ingest, on an injected registry (the metrics issue adds the rest).

Labels come from small closed sets (event type, outcome); never a patient or AE identifier.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from safety_stream.events import EVENT_TYPES

OUTCOMES = ("stored", "duplicate", "rejected", "conflict", "forbidden")


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "safety_stream_ingest_records_total",
            "Records received by ingest, by outcome and event type ('unknown' if unparsable)",
            ["outcome", "event_type"],
            registry=registry,
        )
        self.append_seconds = Histogram(
            "safety_stream_store_append_seconds",
            "Time to validate and commit one ingest submission",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def count(self, outcome: str, event_type: str | None) -> None:
        label = event_type if event_type in EVENT_TYPES else "unknown"
        self.records.labels(outcome=outcome, event_type=label).inc()
