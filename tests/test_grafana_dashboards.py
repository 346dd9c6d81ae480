"""The dashboards as code: structure, layout, drift of the committed JSON, and that every query
reads only metrics (and labels) safety-stream exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from safety_stream.grafana import dashboards as code
from safety_stream.grafana import panels
from safety_stream.grafana.dashboards import all_dashboards, iter_panels, panel_queries
from safety_stream.grafana.push import expected_files, export_dashboards, render

DEPLOY = REPO / "deploy" / "grafana"
EXPORTED = DEPLOY / "dashboards"
UIDS = ["safety-overview", "safety-sites", "safety-pipeline"]
VARIABLES = {"site": "SITE-01", "rule": "grade3-any", "datasource": "prometheus"}

TARGET_LABELS = {"job", "instance"}
# Every series the dashboards may read, with its labels (besides job and instance).
METRICS: dict[str, set[str]] = {
    "safety_stream_ingest_records_total": {"outcome", "event_type"},
    "safety_stream_ingest_rejections_total": {"reason"},
    "safety_stream_store_append_seconds": set(),
    "safety_stream_ingest_to_projection_seconds": set(),
    "safety_stream_log_position": set(),
    "safety_stream_projection_position": set(),
    "safety_stream_projection_lag_events": set(),
    "safety_stream_adverse_events": {"modality", "grade", "site"},
    "safety_stream_patients_exposed": {"modality"},
    "safety_stream_patients_evaluable": {"modality", "window"},
    "safety_stream_patients_related_grade3": {"modality"},
    "safety_stream_related_grade3_rate": {"modality"},
    "safety_stream_related_grade3_rate_ci95_low": {"modality"},
    "safety_stream_related_grade3_rate_ci95_high": {"modality"},
    "safety_stream_site_patients_exposed": {"modality", "site"},
    "safety_stream_site_patients_related_grade3": {"modality", "site"},
    "safety_stream_rule_state": {"rule", "modality", "kind"},
    "safety_stream_rule_counted_patients": {"rule", "modality"},
    "safety_stream_rule_evaluable_patients": {"rule", "modality"},
    "safety_stream_rule_boundary_patients": {"rule", "modality"},
    "safety_stream_rule_margin_patients": {"rule", "modality"},
    "safety_stream_rule_posterior_probability": {"rule", "modality"},
    "safety_stream_rule_max_patients": {"rule", "modality"},
    "safety_stream_sentinel_raised": {"rule"},
    "safety_stream_report_clocks": {"state"},
    "safety_stream_report_clock_next_due_timestamp_seconds": set(),
    "safety_stream_alerts": {"severity", "state"},
    "safety_stream_alert_deliveries_total": {"channel", "outcome"},
    "safety_stream_derived_events_total": {"kind"},
    "up": set(),
    "ALERTS": {"alertname", "alertstate", "severity"},
}
HISTOGRAMS = {"safety_stream_store_append_seconds", "safety_stream_ingest_to_projection_seconds"}
for _histogram in HISTOGRAMS:
    METRICS[f"{_histogram}_bucket"] = {"le"}
    METRICS[f"{_histogram}_sum"] = set()
    METRICS[f"{_histogram}_count"] = set()

PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: what is left once strings, label matchers, range
    selectors, grouping clauses, function calls, numbers and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = GROUPING.sub(" ", text)
    text = re.sub(r"\b[a-zA-Z_]\w*\s*\(", "(", text)
    names = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return names - PROMQL_KEYWORDS


def label_names(expr: str) -> set[str]:
    """Labels an expression matches on or groups by."""
    labels: set[str] = set()
    for _, matchers in SELECTOR.findall(expr):
        labels.update(MATCHER.findall(matchers))
    for _, grouped in GROUPING.findall(expr):
        labels.update(label.strip() for label in grouped.split(",") if label.strip())
    return labels


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return all_dashboards()


def content_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in iter_panels(dashboard) if panel["type"] != "row"]


def test_three_dashboards_with_stable_uids_tags_refresh_and_datasource_variable(
    dashboards: list[dict[str, Any]],
) -> None:
    assert [d["uid"] for d in dashboards] == UIDS
    for dashboard in dashboards:
        assert dashboard["refresh"] == "30s"
        assert "safety-stream" in dashboard["tags"]
        assert dashboard["title"]
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        datasource = variables["datasource"]
        assert datasource["type"] == "datasource"
        assert datasource["query"] == "prometheus"
        assert datasource["current"]["value"] == panels.DEFAULT_DATASOURCE_UID


def test_json_round_trip_is_the_sdk_encoding(dashboards: list[dict[str, Any]]) -> None:
    for dashboard, build in zip(dashboards, code.BUILDERS, strict=True):
        assert json.loads(json.dumps(dashboard)) == dashboard
        encoded = json.dumps(build(), cls=JSONEncoder, sort_keys=True)
        assert encoded == json.dumps(dashboard, sort_keys=True)


@pytest.mark.parametrize("index", range(len(UIDS)), ids=UIDS)
def test_every_panel_has_title_datasource_and_queries(
    dashboards: list[dict[str, Any]], index: int
) -> None:
    panels = content_panels(dashboards[index])
    assert len(panels) >= 8
    for panel in panels:
        assert panel.get("title"), panel
        assert panel.get("description"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        targets = panel.get("targets") or []
        assert targets, panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"]


@pytest.mark.parametrize("index", range(len(UIDS)), ids=UIDS)
def test_panel_ids_unique_and_grid_without_overlap(
    dashboards: list[dict[str, Any]], index: int
) -> None:
    panels = list(iter_panels(dashboards[index]))
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, int) and i > 0 for i in ids)
    boxes = []
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel.get("title")
        boxes.append((panel.get("title"), grid["x"], grid["y"], grid["w"], grid["h"]))
    for i, (title_a, xa, ya, wa, ha) in enumerate(boxes):
        for title_b, xb, yb, wb, hb in boxes[i + 1 :]:
            apart = xa + wa <= xb or xb + wb <= xa or ya + ha <= yb or yb + hb <= ya
            assert apart, f"{title_a!r} overlaps {title_b!r}"


def test_the_layout_helper_refuses_an_overflowing_line() -> None:
    board = panels.Board(panels.new_dashboard("x-test", "x", "x", "x"))
    board.add(panels.stat_panel("a", "a", 16))
    with pytest.raises(ValueError, match="does not fit"):
        board.add(panels.stat_panel("b", "b", 12))
    with pytest.raises(ValueError, match="not full"):
        board.row("next")


def test_committed_json_matches_the_code(dashboards: list[dict[str, Any]]) -> None:
    for dashboard in dashboards:
        path = EXPORTED / f"{dashboard['uid']}.json"
        assert path.read_text(encoding="utf-8") == render(dashboard), (
            f"{path} is stale: run `safety-stream grafana export`"
        )
    assert sorted(p.name for p in EXPORTED.glob("*.json")) == sorted(expected_files())
    assert export_dashboards(EXPORTED, check=True) == []


def test_export_writes_sorted_json_and_check_reports_drift(tmp_path: Path) -> None:
    written = export_dashboards(tmp_path, check=False)
    assert sorted(p.name for p in written) == sorted(f"{uid}.json" for uid in UIDS)
    text = (tmp_path / "safety-sites.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "annotations"')
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert export_dashboards(tmp_path, check=True) == []

    (tmp_path / "safety-sites.json").write_text(text.replace("30s", "5s"), encoding="utf-8")
    (tmp_path / "safety-pipeline.json").unlink()
    (tmp_path / "old.json").write_text("{}\n", encoding="utf-8")
    drifting = export_dashboards(tmp_path, check=True)
    assert sorted(p.name for p in drifting) == [
        "old.json",
        "safety-pipeline.json",
        "safety-sites.json",
    ]


def test_every_query_reads_only_exported_metrics_and_their_labels(
    dashboards: list[dict[str, Any]],
) -> None:
    seen: set[str] = set()
    for dashboard in dashboards:
        for expr in panel_queries(dashboard, VARIABLES):
            names = metric_names(expr)
            assert names, f"no metric in {expr!r}"
            unknown = names - METRICS.keys()
            assert not unknown, f"{expr!r} reads unknown metrics {sorted(unknown)}"
            allowed = TARGET_LABELS.union(*(METRICS[name] for name in names))
            stray = label_names(expr) - allowed
            assert not stray, f"{expr!r} uses labels {sorted(stray)} its metrics do not have"
            seen |= names
    # the dashboards show every family the brief lists (histograms through their buckets)
    families = {name for name in METRICS if not name.endswith(("_bucket", "_sum", "_count"))}
    missing = families - HISTOGRAMS - seen
    assert not missing, f"no panel shows {sorted(missing)}"


def test_the_metric_name_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x", le=~"1|2"}[5m]))) '
        "/ on (rule) group_left (kind) (b offset 5m) * 1000 and bool c"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}
    assert label_names(expr) == {"job", "le", "rule", "kind"}
    assert metric_names('count by (alertname) (ALERTS{alertstate="firing"})') == {"ALERTS"}


def test_template_variables_are_substituted(dashboards: list[dict[str, Any]]) -> None:
    sites = dashboards[1]
    raw = panel_queries(sites)
    assert any('site="$site"' in expr for expr in raw)
    assert any("$__rate_interval" in expr for expr in raw)
    filled = panel_queries(sites, {"site": "SITE-07"})
    assert not any("$" in expr for expr in filled)
    assert any('site="SITE-07"' in expr for expr in filled)
    assert any("[2m]" in expr for expr in filled)
    assert any("[10m]" in e for e in panel_queries(sites, {"site": "S", "__rate_interval": "10m"}))
    with pytest.raises(KeyError, match=r"\$site"):
        panel_queries(sites, {})
    assert code.substitute('a{x=~"${rule:regex}"}[[site]]', {"rule": "r", "site": "s"}) == (
        'a{x=~"r"}s'
    )


def test_sites_dashboard_has_a_site_variable_and_says_ingest_has_no_site(
    dashboards: list[dict[str, Any]],
) -> None:
    sites = dashboards[1]
    variables = {v["name"]: v for v in sites["templating"]["list"]}
    assert variables["site"]["type"] == "query"
    assert variables["site"]["query"] == (
        'label_values(safety_stream_adverse_events{job="safety-stream"}, site)'
    )
    assert variables["site"]["datasource"]["uid"] == "${datasource}"
    for panel in content_panels(sites):
        exprs = " ".join(target["expr"] for target in panel["targets"])
        if "safety_stream_ingest_" in exprs:
            assert "no site label" in panel["description"], panel["title"]
            assert "site=" not in exprs
        elif "$site" in panel["title"]:
            assert 'site="$site"' in exprs, panel["title"]


def test_rule_states_are_mapped_to_ok_approached_crossed_beyond(
    dashboards: list[dict[str, Any]],
) -> None:
    from safety_stream.metrics_state import STATE_VALUES

    expected = {
        "0": {"text": "OK", "color": "green", "index": 0},
        "1": {"text": "Approached", "color": "orange", "index": 1},
        "2": {"text": "Crossed", "color": "red", "index": 2},
        "3": {"text": "Beyond planned n", "color": "blue", "index": 3},
    }
    assert sorted(STATE_VALUES.values()) == [int(k) for k in expected]  # every state is mapped
    panels = {p["title"]: p for p in content_panels(dashboards[0])}
    stat = panels["Rule states"]
    assert stat["fieldConfig"]["defaults"]["mappings"] == [{"type": "value", "options": expected}]
    table = panels["Monitoring rules"]
    state = next(o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "State")
    mappings = next(p["value"] for p in state["properties"] if p["id"] == "mappings")
    assert mappings == [{"type": "value", "options": expected}]
    assert {t["refId"] for t in table["targets"]} == set("ABCDEFG")
    assert all(t["format"] == "table" and t["instant"] for t in table["targets"])


def test_overview_sets_rate_and_ci_next_to_counted_and_boundary(
    dashboards: list[dict[str, Any]],
) -> None:
    panels = {p["title"]: p for p in content_panels(dashboards[0])}
    rate = panels["Related grade >= 3 rate by modality (95% CI)"]
    boundary = panels["Counted patients vs stopping boundary, every rule"]
    assert rate["gridPos"]["y"] == boundary["gridPos"]["y"]
    rate_exprs = " ".join(t["expr"] for t in rate["targets"])
    for metric in ("rate{", "rate_ci95_low{", "rate_ci95_high{"):
        assert f"safety_stream_related_grade3_{metric}" in rate_exprs
    boundary_exprs = " ".join(t["expr"] for t in boundary["targets"])
    assert "safety_stream_rule_counted_patients" in boundary_exprs
    assert "safety_stream_rule_boundary_patients" in boundary_exprs
    per_rule = next(p for p in panels.values() if p.get("repeat") == "rule")
    assert all('rule=~"$rule"' in t["expr"] for t in per_rule["targets"])


def test_pipeline_shows_p50_and_p99_of_both_histograms(dashboards: list[dict[str, Any]]) -> None:
    exprs = panel_queries(dashboards[2])
    for histogram in HISTOGRAMS:
        for quantile in ("0.5", "0.99"):
            assert any(
                e.startswith(f"histogram_quantile({quantile}, ") and f"{histogram}_bucket" in e
                for e in exprs
            ), (histogram, quantile)


def test_provisioning_files_match_the_dashboards() -> None:
    datasources = yaml.safe_load((DEPLOY / "provisioning/datasources/prometheus.yml").read_text())
    (prometheus,) = datasources["datasources"]
    assert prometheus["uid"] == panels.DEFAULT_DATASOURCE_UID
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((DEPLOY / "provisioning/dashboards/safety-stream.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Safety monitoring"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/safety-stream"
