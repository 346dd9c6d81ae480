"""Prometheus counters and histograms of the pipeline, on an injected registry.

Labels come from small closed sets (event type, outcome, problem code, channel, kind); never a
patient or AE identifier. The gauges of the trial's state are in ``metrics_state``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from safety_stream.events import EVENT_TYPES
from safety_stream.ingest import IngestReport

OUTCOMES = ("stored", "duplicate", "rejected", "conflict", "forbidden")
CHANNEL_TYPES = ("email", "webhook", "alertmanager", "file")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "safety_stream_ingest_records_total",
            "Records received by ingest, by outcome and event type ('unknown' if unparsable)",
            ["outcome", "event_type"],
            registry=registry,
        )
        self.rejections = Counter(
            "safety_stream_ingest_rejections_total",
            "Rejected records by the code of their first problem",
            ["reason"],
            registry=registry,
        )
        self.append_seconds = Histogram(
            "safety_stream_store_append_seconds",
            "Time to validate and commit one part of a submission (up to 1,000 records)",
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.ingest_to_projection_seconds = Histogram(
            "safety_stream_ingest_to_projection_seconds",
            "From receiving a submission to its events being projected and monitored",
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.deliveries = Counter(
            "safety_stream_alert_deliveries_total",
            "Alert delivery attempts by channel type and outcome (delivered or failed)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.derived = Counter(
            "safety_stream_derived_events_total",
            "Derived events (boundaries, sentinels, report clocks) concluded by this process",
            ["kind"],
            registry=registry,
        )
        for outcome in ("delivered", "failed"):
            for channel in CHANNEL_TYPES:
                self.deliveries.labels(channel=channel, outcome=outcome)

    def count(self, outcome: str, event_type: str | None) -> None:
        label = event_type if event_type in EVENT_TYPES else "unknown"
        self.records.labels(outcome=outcome, event_type=label).inc()

    def count_report(self, report: IngestReport) -> None:
        for outcome in report.outcomes:
            self.count(outcome.status, outcome.event_type)
            if outcome.status == "rejected":
                reason = outcome.problems[0].code if outcome.problems else "unknown"
                self.rejections.labels(reason=reason).inc()

    def delivery(self, channel_type: str, outcome: str) -> None:
        self.deliveries.labels(channel=channel_type, outcome=outcome).inc()
