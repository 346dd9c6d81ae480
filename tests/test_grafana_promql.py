"""Every dashboard query against a live Prometheus (Debian's binary, 127.0.0.1).

Each PromQL expression of every panel, with its template variables filled in, must parse for
``promtool query instant`` and for Prometheus's HTTP API. Prometheus also scrapes a synthetic
safety-stream exposition (every metric the dashboards read, with the labels safety-stream
gives them), and every query must then return data: a panel that selects a label value or a
label name no series has would show "No data" for ever.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from realservers import (
    PROMTOOL,
    MetricsTarget,
    RunningServer,
    prometheus_query,
    require_binary,
    start_prometheus,
    wait_for,
)

from safety_stream.grafana.dashboards import all_dashboards, iter_panels, substitute

SITE = "SITE-01"
RULE = "grade3-chemo-bayes"
VARIABLES = {"site": SITE, "rule": RULE, "datasource": "prometheus"}
# Queries that may rightly come back empty with the synthetic data: nothing fires in a
# Prometheus without alerting rules.
MAY_BE_EMPTY = ("ALERTS{",)


def synthetic_exposition() -> str:
    """Every metric the dashboards read, as safety-stream labels them, in text format."""
    registry = CollectorRegistry()

    def gauge(name: str, labels: list[str], *rows: tuple[list[str], float]) -> None:
        family = Gauge(name, name, labels, registry=registry)
        for values, value in rows:
            (family.labels(*values) if labels else family).set(value)

    def counter(name: str, labels: list[str], *rows: tuple[list[str], float]) -> None:
        family = Counter(name, name, labels, registry=registry)
        for values, value in rows:
            family.labels(*values).inc(value)

    counter(
        "safety_stream_ingest_records",
        ["outcome", "event_type"],
        (["stored", "ae.reported"], 40),
        (["rejected", "unknown"], 2),
    )
    counter("safety_stream_ingest_rejections", ["reason"], (["grade_out_of_range"], 2))
    counter(
        "safety_stream_alert_deliveries",
        ["channel", "outcome"],
        (["email", "delivered"], 3),
        (["webhook", "failed"], 1),
    )
    counter("safety_stream_derived_events", ["kind"], (["boundary.crossed"], 1))
    for name in (
        "safety_stream_store_append_seconds",
        "safety_stream_ingest_to_projection_seconds",
    ):
        histogram = Histogram(name, name, registry=registry, buckets=(0.01, 0.1, 1))
        for seconds in (0.004, 0.02, 0.3):
            histogram.observe(seconds)
    gauge("safety_stream_log_position", [], ([], 120))
    gauge("safety_stream_projection_position", [], ([], 118))
    gauge("safety_stream_projection_lag_events", [], ([], 2))
    gauge(
        "safety_stream_adverse_events",
        ["modality", "grade", "site"],
        (["chemotherapy", "3", SITE], 2),
        (["chemotherapy", "1", "SITE-02"], 5),
    )
    modality = (["chemotherapy"], 12)
    gauge("safety_stream_patients_exposed", ["modality"], modality)
    gauge("safety_stream_patients_evaluable", ["modality", "window"], (["chemotherapy", "90d"], 9))
    gauge("safety_stream_patients_related_grade3", ["modality"], (["chemotherapy"], 2))
    for suffix, value in (("", 0.17), ("_ci95_low", 0.02), ("_ci95_high", 0.48)):
        gauge(f"safety_stream_related_grade3_rate{suffix}", ["modality"], (["chemotherapy"], value))
    gauge("safety_stream_site_patients_exposed", ["modality", "site"], (["chemotherapy", SITE], 7))
    gauge(
        "safety_stream_site_patients_related_grade3",
        ["modality", "site"],
        (["chemotherapy", SITE], 2),
    )
    gauge(
        "safety_stream_rule_state",
        ["rule", "modality", "kind"],
        ([RULE, "chemotherapy", "bayesian"], 1),
        (["sentinel-hepatic", "any", "sentinel"], 0),
    )
    for name, value in (
        ("counted_patients", 2),
        ("evaluable_patients", 9),
        ("boundary_patients", 3),
        ("margin_patients", 1),
        ("posterior_probability", 0.71),
        ("max_patients", 40),
    ):
        gauge(f"safety_stream_rule_{name}", ["rule", "modality"], ([RULE, "chemotherapy"], value))
    gauge("safety_stream_sentinel_raised", ["rule"], (["sentinel-hepatic"], 0))
    gauge(
        "safety_stream_report_clocks",
        ["state"],
        (["open"], 1),
        (["overdue"], 0),
        (["closed"], 3),
    )
    gauge("safety_stream_report_clock_next_due_timestamp_seconds", [], ([], 1.9e9))
    gauge(
        "safety_stream_alerts",
        ["severity", "state"],
        (["critical", "unacknowledged"], 1),
        (["warning", "acknowledged"], 2),
    )
    return generate_latest(registry).decode()


@pytest.fixture(scope="module")
def target() -> Iterator[MetricsTarget]:
    with MetricsTarget(synthetic_exposition()) as served:
        yield served


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, target: MetricsTarget
) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with start_prometheus(workdir, [target.address], [], None) as server:
        yield server


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr with variables filled in) for every panel target."""
    found = []
    for dashboard in all_dashboards():
        for panel in iter_panels(dashboard):
            for query in panel.get("targets") or []:
                expr = substitute(query["expr"], VARIABLES)
                found.append((dashboard["uid"], panel["title"], expr))
    return found


def variable_selectors() -> list[tuple[str, str, str]]:
    """(dashboard uid, variable, series selector) of every label_values() variable."""
    found = []
    for dashboard in all_dashboards():
        for variable in dashboard["templating"]["list"]:
            query = variable.get("query")
            if variable["type"] == "query" and isinstance(query, str):
                assert query.startswith("label_values(") and query.endswith(")"), query
                selector, label = query.removeprefix("label_values(")[:-1].rsplit(",", 1)
                found.append((dashboard["uid"], variable["name"], selector.strip()))
                assert label.strip() == variable["name"]
    return found


QUERIES = dashboard_queries()
UIDS = sorted({uid for uid, _, _ in QUERIES})


def test_every_dashboard_has_queries_to_check() -> None:
    assert UIDS == ["safety-overview", "safety-pipeline", "safety-sites"]
    assert len(QUERIES) > 40
    assert not any("$" in expr for _, _, expr in QUERIES)


@pytest.mark.parametrize("uid", UIDS)
def test_promtool_and_prometheus_parse_every_query(prometheus: RunningServer, uid: str) -> None:
    promtool = require_binary(PROMTOOL)
    failures: list[str] = []
    queries = [(title, expr) for dashboard, title, expr in QUERIES if dashboard == uid]
    queries += [
        (f"${name}", sel) for dashboard, name, sel in variable_selectors() if dashboard == uid
    ]
    for title, expr in queries:
        run = subprocess.run(
            [promtool, "query", "instant", prometheus.url, expr],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if run.returncode != 0 or "error" in run.stderr.lower():
            failures.append(f"promtool, {title!r}: {expr}\n  {run.stderr.strip()}")
        try:
            prometheus_query(prometheus.url, expr)
        except RuntimeError as error:
            failures.append(f"HTTP API, {title!r}: {error}")
    assert not failures, "\n".join(failures)


def test_promtool_reports_a_broken_query(prometheus: RunningServer) -> None:
    """The check above can fail: a parse error is a non-zero exit and a RuntimeError."""
    broken = "sum by (le (rate(safety_stream_store_append_seconds_bucket[2m]))"
    run = subprocess.run(
        [require_binary(PROMTOOL), "query", "instant", prometheus.url, broken],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0 and "parse error" in run.stderr
    with pytest.raises(RuntimeError, match="parse error"):
        prometheus_query(prometheus.url, broken)


def _scraped_twice(url: str) -> bool:
    samples = prometheus_query(url, 'count_over_time(up{job="safety-stream"}[5m])')
    return bool(samples) and float(samples[0]["value"][1]) >= 2


@pytest.mark.parametrize("uid", UIDS)
def test_every_query_returns_data_for_a_scraped_safety_stream(
    prometheus: RunningServer, uid: str
) -> None:
    wait_for(lambda: _scraped_twice(prometheus.url), timeout=30, what="two scrapes")
    empty = []
    for dashboard, title, expr in QUERIES:
        if dashboard != uid or any(marker in expr for marker in MAY_BE_EMPTY):
            continue
        result: list[dict[str, Any]] = prometheus_query(prometheus.url, expr)
        if not result:
            empty.append(f"{title!r}: {expr}")
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_the_template_variables_list_the_scraped_values(prometheus: RunningServer) -> None:
    wait_for(lambda: _scraped_twice(prometheus.url), timeout=30, what="two scrapes")
    expected = {"site": [SITE, "SITE-02"], "rule": [RULE, "sentinel-hepatic"]}
    for _, name, selector in variable_selectors():
        response = httpx.get(
            f"{prometheus.url}/api/v1/label/{name}/values",
            params={"match[]": selector},
            timeout=10,
        )
        response.raise_for_status()
        assert sorted(response.json()["data"]) == sorted(expected[name]), name
