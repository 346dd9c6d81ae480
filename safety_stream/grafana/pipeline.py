"""The pipeline-health dashboard: ingest, rejections, latency, lag, alert delivery, up."""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from safety_stream.grafana.panels import (
    JOB,
    Board,
    fixed_color,
    new_dashboard,
    query,
    stat_panel,
    thresholds,
    timeseries_panel,
)

# --- pipeline health -------------------------------------------------------------------------


def _with_quantiles(panel: timeseries.Panel, histogram: str) -> timeseries.Panel:
    """Median and 99th percentile of a histogram, over every instance."""
    buckets = f"sum by (le) (rate({histogram}_bucket{{{JOB}}}[$__rate_interval]))"
    for ref, quantile in (("A", 0.5), ("B", 0.99)):
        legend = f"p{round(quantile * 100)}"
        panel.with_target(query(f"histogram_quantile({quantile}, {buckets})", legend, ref))
    return panel


def pipeline_dashboard() -> models.Dashboard:
    builder = new_dashboard(
        "safety-pipeline",
        "Safety pipeline health",
        "Ingest, validation, store, projections and alert delivery of safety-stream. "
        "For operators.",
        "pipeline",
    ).time("now-6h", "now")
    board = Board(builder)

    board.row("Ingest")
    for title, description, expr, legend in (
        (
            "Ingest records by outcome",
            "Records received per second: stored, duplicate, rejected, conflict, forbidden.",
            f"sum by (outcome) "
            f"(rate(safety_stream_ingest_records_total{{{JOB}}}[$__rate_interval]))",
            "{{outcome}}",
        ),
        (
            "Ingest records by event type",
            "Records received per second by event type ('unknown' if unparsable).",
            f"sum by (event_type) "
            f"(rate(safety_stream_ingest_records_total{{{JOB}}}[$__rate_interval]))",
            "{{event_type}}",
        ),
        (
            "Rejections by reason",
            "Rejected records per second by validation problem code.",
            f"sum by (reason) "
            f"(rate(safety_stream_ingest_rejections_total{{{JOB}}}[$__rate_interval]))",
            "{{reason}}",
        ),
    ):
        board.add(
            timeseries_panel(title, description, 8).unit("cps").with_target(query(expr, legend))
        )

    board.row("Store and projections")
    board.add(
        _with_quantiles(
            timeseries_panel(
                "Store append latency",
                "Time to validate and commit one part of a submission (up to 1,000 records):"
                " median and 99th percentile.",
                6,
            ).unit("s"),
            "safety_stream_store_append_seconds",
        )
    )
    board.add(
        _with_quantiles(
            timeseries_panel(
                "Ingest to projection latency",
                "From an event's commit to the log until the projections include it: median "
                "and 99th percentile.",
                6,
            ).unit("s"),
            "safety_stream_ingest_to_projection_seconds",
        )
    )
    board.add(
        timeseries_panel(
            "Projection lag",
            "Events in the log that the projections have not applied yet.",
            6,
        )
        .decimals(0)
        .min(0)
        .with_target(query(f"max(safety_stream_projection_lag_events{{{JOB}}})", "lag (events)"))
    )
    board.add(
        timeseries_panel(
            "Log and projection positions",
            "Position of the last event in the log and of the last one projected.",
            6,
        )
        .decimals(0)
        .with_target(query(f"max(safety_stream_log_position{{{JOB}}})", "log", "A"))
        .with_target(query(f"max(safety_stream_projection_position{{{JOB}}})", "projection", "B"))
    )

    board.row("Alerts and derived events")
    board.add(
        timeseries_panel(
            "Alert deliveries by channel and outcome",
            "Delivery attempts per second to email, webhook, Alertmanager and file, by outcome.",
            8,
        )
        .unit("cps")
        .with_target(
            query(
                f"sum by (channel, outcome) "
                f"(rate(safety_stream_alert_deliveries_total{{{JOB}}}[$__rate_interval]))",
                "{{channel}} {{outcome}}",
            )
        )
        .override_by_regexp(".* failed", [fixed_color("red")])
    )
    board.add(
        stat_panel(
            "Failed alert deliveries in range",
            "Deliveries given up after retries, over the dashboard's time range.",
            8,
            8,
        )
        .no_value("0")
        .thresholds(thresholds((None, "green"), (1, "red")))
        .with_target(
            query(
                f"sum by (channel) (increase(safety_stream_alert_deliveries_total"
                f'{{{JOB}, outcome="failed"}}[$__range]))',
                "{{channel}}",
                instant=True,
            )
        )
    )
    board.add(
        timeseries_panel(
            "Derived events by kind",
            "Derived events (boundaries, sentinels, report clocks) concluded per second.",
            8,
        )
        .unit("cps")
        .with_target(
            query(
                f"sum by (kind) "
                f"(rate(safety_stream_derived_events_total{{{JOB}}}[$__rate_interval]))",
                "{{kind}}",
            )
        )
    )

    board.row("Targets")
    board.add(
        stat_panel("safety-stream up", "Whether Prometheus can scrape each instance.", 12, 5)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .mappings(
            [
                models.ValueMap(
                    options={
                        "0": models.ValueMappingResult(text="Down", color="red", index=0),
                        "1": models.ValueMappingResult(text="Up", color="green", index=1),
                    }
                )
            ]
        )
        .no_value("no target")
        .with_target(query(f"up{{{JOB}}}", "{{instance}}", instant=True))
    )
    board.add(
        stat_panel(
            "Firing Prometheus alerts",
            "Alerting rules currently firing in Prometheus (the ALERTS series), by name.",
            12,
            5,
        )
        .no_value("none firing")
        .thresholds(thresholds((None, "green"), (1, "red")))
        .with_target(
            query(
                'count by (alertname, severity) (ALERTS{alertstate="firing"})',
                "{{alertname}} ({{severity}})",
                instant=True,
            )
        )
    )
    return board.build()
