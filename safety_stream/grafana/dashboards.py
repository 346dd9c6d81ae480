"""The three safety-stream dashboards, built with grafana-foundation-sdk (Grafana 11.6).

* ``safety-overview``: what the safety officer and the DSMB look at first: the related
  grade >= 3 rate per modality with its 95% interval, every monitoring rule's counted patients
  against its stopping boundary, rule states, exposure, expedited-report clocks, alerts and
  adverse events by modality and grade.
* ``safety-sites``: one site at a time (``$site``): exposure, related grade >= 3, AEs by grade.
* ``safety-pipeline``: for operators: ingest, rejections, store and projection latency and lag,
  alert delivery, scrape health.

Every query goes to the Prometheus data source picked by the ``$datasource`` variable and reads
only the series that safety-stream exports (job ``safety-stream``) plus ``up`` and ``ALERTS``.
``all_dashboards()`` returns exactly the JSON the SDK's encoder produces; ``panel_queries()``
lists a dashboard's PromQL with template variables filled in, for tests and ``promtool``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, prometheus
from grafana_foundation_sdk.models import dashboard as models

JOB = 'job="safety-stream"'
TAGS = ["safety-stream", "clinical-trial-safety"]
REFRESH = "30s"
GRID_WIDTH = 24

# The data source every panel and target uses: whatever ``$datasource`` selects.
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The provisioned data source (deploy/grafana/provisioning/datasources/prometheus.yml).
DEFAULT_DATASOURCE_UID = "prometheus"

# Values Grafana itself gives its built-in variables; panel_queries uses them unless told.
GRAFANA_BUILTINS: Mapping[str, str] = {
    "__rate_interval": "2m",
    "__interval": "30s",
    "__range": "1h",
}

RULE_STATES = ((0, "OK", "green"), (1, "Approached", "orange"), (2, "Crossed", "red"))

NO_SITE_LABEL = (
    "Ingest counters carry no site label, so this panel shows every site together, not only $site."
)


_PanelBuilder = timeseries.Panel | stat.Panel | table.Panel | bargauge.Panel


class _Board:
    """An SDK dashboard builder that numbers panels and keeps every grid line exactly full.

    The SDK places a panel at the current cursor and wraps only once a line reaches 24
    columns, so a line that overflows would overlap; this refuses such a layout instead.
    """

    def __init__(self, builder: dashboard_builders.Dashboard) -> None:
        self.builder = builder
        self._next_id = 1
        self._x = 0

    def _take_id(self) -> int:
        panel_id = self._next_id
        self._next_id += 1
        return panel_id

    def row(self, title: str) -> Self:
        if self._x != 0:
            raise ValueError(f"row {title!r}: the line above it is not full ({self._x}/24)")
        self.builder.with_row(dashboard_builders.Row(title).id(self._take_id()))
        return self

    def add(self, panel: _PanelBuilder) -> Self:
        grid = panel.build().grid_pos
        width = grid.w if grid is not None else models.GridPos().w
        if self._x + width > GRID_WIDTH:
            title = panel.build().title
            raise ValueError(f"panel {title!r} does not fit: {self._x} + {width} > 24 columns")
        self._x = (self._x + width) % GRID_WIDTH
        self.builder.with_panel(panel.id(self._take_id()))
        return self

    def build(self) -> models.Dashboard:
        if self._x != 0:
            raise ValueError(f"the last line is not full ({self._x}/24)")
        return self.builder.build()


# --- small builders --------------------------------------------------------------------------


def _query(
    expr: str,
    legend: str,
    ref_id: str = "A",
    *,
    instant: bool = False,
    table_format: bool = False,
) -> prometheus_builders.Dataquery:
    query = (
        prometheus_builders.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
        .editor_mode(prometheus.QueryEditorMode.CODE)
    )
    if instant:
        query.instant()
    else:
        query.range()
    if table_format:
        query.format(prometheus.PromQueryFormat.TABLE)
    return query


def _thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=color) for value, color in steps])
    )


def _neutral() -> dashboard_builders.ThresholdsConfig:
    return _thresholds((None, "blue"))


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _legend(*, as_table: bool = False) -> common_builders.VizLegendOptions:
    mode = common.LegendDisplayMode.TABLE if as_table else common.LegendDisplayMode.LIST
    legend = (
        common_builders.VizLegendOptions()
        .display_mode(mode)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    if as_table:
        legend.calcs(["lastNotNull", "max"])
    return legend


def _multi_tooltip() -> common_builders.VizTooltipOptions:
    return (
        common_builders.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def _dashed() -> list[models.DynamicConfigValue]:
    style = common_builders.LineStyle().fill("dash").dash([10, 10]).build()
    return [models.DynamicConfigValue(id_val="custom.lineStyle", value=style)]


def _fixed_color(color: str) -> models.DynamicConfigValue:
    field_color = models.FieldColor(mode=models.FieldColorModeId.FIXED, fixed_color=color)
    return models.DynamicConfigValue(id_val="color", value=field_color)


def _rule_state_mappings() -> list[models.ValueMapping]:
    return [
        models.ValueMap(
            options={
                str(value): models.ValueMappingResult(text=text, color=color, index=value)
                for value, text, color in RULE_STATES
            }
        )
    ]


def _timeseries(title: str, description: str, width: int, height: int = 8) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .legend(_legend())
        .tooltip(_multi_tooltip())
        .line_width(2)
        .fill_opacity(10)
    )


def _stat(title: str, description: str, width: int, height: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .reduce_options(_last_value())
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.VALUE)
        .thresholds(_neutral())
        .decimals(0)
    )


def _bargauge(title: str, description: str, width: int, height: int = 8) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .reduce_options(_last_value())
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .min(0)
        .decimals(0)
        .thresholds(_neutral())
    )


def _datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (
        dashboard_builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(models.VariableOption(text="Prometheus", value=DEFAULT_DATASOURCE_UID))
    )


def _label_variable(
    name: str, label: str, query: str, *, multi: bool
) -> dashboard_builders.QueryVariable:
    variable = (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.NATURAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable.current(models.VariableOption(text="All", value="$__all"))
    return variable


def _dashboard(
    uid: str, title: str, description: str, extra_tag: str
) -> dashboard_builders.Dashboard:
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([*TAGS, extra_tag])
        .refresh(REFRESH)
        .readonly()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard_builders.DashboardLink("Safety dashboards")
            .type(models.DashboardLinkType.DASHBOARDS)
            .tags([TAGS[0]])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
        .with_variable(_datasource_variable())
    )


# --- safety overview -------------------------------------------------------------------------


def overview_dashboard() -> models.Dashboard:
    builder = _dashboard(
        "safety-overview",
        "Safety overview",
        "Related grade >= 3 toxicity against the monitoring plan's stopping boundaries, "
        "expedited-report clocks and safety alerts. For the safety officer and the DSMB.",
        "overview",
    ).time("now-30d", "now")
    builder.with_variable(
        _label_variable(
            "rule",
            "Rule",
            f"label_values(safety_stream_rule_state{{{JOB}}}, rule)",
            multi=True,
        )
    )
    board = _Board(builder)

    board.row("Related grade >= 3 toxicity and stopping boundaries")
    board.add(
        _timeseries(
            "Related grade >= 3 rate by modality (95% CI)",
            "Share of the patients exposed to each modality with at least one grade >= 3 "
            "adverse event related to it, with its Clopper-Pearson 95% interval (dashed).",
            12,
            9,
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .with_target(_query(f"safety_stream_related_grade3_rate{{{JOB}}}", "{{modality}}", "A"))
        .with_target(
            _query(
                f"safety_stream_related_grade3_rate_ci95_low{{{JOB}}}",
                "{{modality}} 95% CI low",
                "B",
            )
        )
        .with_target(
            _query(
                f"safety_stream_related_grade3_rate_ci95_high{{{JOB}}}",
                "{{modality}} 95% CI high",
                "C",
            )
        )
        .override_by_regexp(".* 95% CI (low|high)", [*_dashed(), _line_width(1)])
    )
    board.add(
        _timeseries(
            "Counted patients vs stopping boundary, every rule",
            "For each monitoring rule: patients counted against it (x, solid) and the "
            "stopping boundary at the current number of evaluable patients (dashed). "
            "A rule crosses when x reaches the boundary.",
            12,
            9,
        )
        .decimals(0)
        .min(0)
        .legend(_legend(as_table=True))
        .with_target(
            _query(
                f"max by (rule, modality) (safety_stream_rule_counted_patients{{{JOB}}})",
                "{{rule}} counted",
                "A",
            )
        )
        .with_target(
            _query(
                f"max by (rule, modality) (safety_stream_rule_boundary_patients{{{JOB}}})",
                "{{rule}} boundary",
                "B",
            )
        )
        .override_by_regexp(".* boundary", _dashed())
    )

    board.row("Per rule")
    rule = f'{JOB}, rule=~"$rule"'
    board.add(
        _timeseries(
            "$rule: counted patients, boundary and evaluable patients",
            "One panel per selected rule. Counted patients (x), the stopping boundary at the "
            "current evaluable n, the evaluable patients (n) and the planned maximum.",
            24,
            8,
        )
        .repeat("rule")
        .repeat_direction("h")
        .max_per_row(3)
        .decimals(0)
        .min(0)
        .with_target(
            _query(f"max(safety_stream_rule_counted_patients{{{rule}}})", "counted (x)", "A")
        )
        .with_target(
            _query(f"max(safety_stream_rule_boundary_patients{{{rule}}})", "stopping boundary", "B")
        )
        .with_target(
            _query(f"max(safety_stream_rule_evaluable_patients{{{rule}}})", "evaluable (n)", "C")
        )
        .with_target(
            _query(f"max(safety_stream_rule_max_patients{{{rule}}})", "planned maximum", "D")
        )
        .override_by_name("stopping boundary", [*_dashed(), _fixed_color("red")])
        .override_by_name("planned maximum", [*_dashed(), _fixed_color("text")])
    )

    board.row("Rule states")
    board.add(
        _stat(
            "Rule states",
            "0 OK, 1 Approached, 2 Crossed, per rule and kind (bayesian, pocock, sentinel, "
            "expedited_report).",
            10,
            8,
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .mappings(_rule_state_mappings())
        .thresholds(_thresholds((None, "green"), (1, "orange"), (2, "red")))
        .with_target(
            _query(
                f"max by (rule, kind) (safety_stream_rule_state{{{JOB}}})",
                "{{rule}} ({{kind}})",
                instant=True,
            )
        )
    )
    board.add(_rule_table())

    board.row("Patients")
    by_modality = "sum by (modality)"
    board.add(
        _stat("Patients exposed", "Patients exposed to each modality.", 6).with_target(
            _query(
                f"{by_modality} (safety_stream_patients_exposed{{{JOB}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        _stat(
            "Patients evaluable",
            "Patients evaluable for toxicity per modality and observation window.",
            6,
        ).with_target(
            _query(
                f"sum by (modality, window) (safety_stream_patients_evaluable{{{JOB}}})",
                "{{modality}} ({{window}})",
                instant=True,
            )
        )
    )
    board.add(
        _stat(
            "Patients with a related grade >= 3 AE",
            "Patients with at least one grade >= 3 adverse event related to the modality.",
            6,
        ).with_target(
            _query(
                f"{by_modality} (safety_stream_patients_related_grade3{{{JOB}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        _stat(
            "Sentinel events raised",
            "Adverse events that have raised each sentinel rule; anything above 0 needs a "
            "case review.",
            6,
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .thresholds(_thresholds((None, "green"), (1, "red")))
        .with_target(
            _query(
                f"max by (rule) (safety_stream_sentinel_raised{{{JOB}}})",
                "{{rule}}",
                instant=True,
            )
        )
    )

    board.row("Expedited reports and alerts")
    board.add(
        _stat(
            "Expedited report clocks",
            "Open and overdue expedited-report clocks (e.g. SUSAR 7/15-day reports).",
            6,
        )
        .no_value("0")
        .with_target(
            _query(
                f'sum by (state) (safety_stream_report_clocks{{{JOB}, state=~"open|overdue"}})',
                "{{state}}",
                instant=True,
            )
        )
        .override_by_name(
            "overdue",
            [
                models.DynamicConfigValue(
                    id_val="thresholds",
                    value=_thresholds((None, "green"), (1, "red")).build(),
                ),
                models.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            ],
        )
    )
    next_due = f"min(safety_stream_report_clock_next_due_timestamp_seconds{{{JOB}}}) * 1000"
    board.add(
        _stat(
            "Next expedited report due",
            "When the earliest open expedited-report clock runs out.",
            6,
        )
        .text_mode(common.BigValueTextMode.VALUE)
        .no_value("no open clock")
        .unit("dateTimeFromNow")
        .with_target(_query(next_due, "due", "A", instant=True))
        .with_target(_query(next_due, "due at", "B", instant=True))
        .override_by_query("B", [models.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
    )
    board.add(
        _stat(
            "Safety alerts",
            "Current safety alerts by severity and acknowledgement.",
            6,
        )
        .no_value("none")
        .with_target(
            _query(
                f"sum by (severity, state) (safety_stream_alerts{{{JOB}}})",
                "{{severity}} {{state}}",
                instant=True,
            )
        )
        .override_by_regexp(
            ".* unacknowledged",
            [
                models.DynamicConfigValue(
                    id_val="thresholds",
                    value=_thresholds((None, "green"), (1, "orange")).build(),
                ),
                models.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            ],
        )
    )
    board.add(
        _stat(
            "Firing Prometheus alerts",
            "Alerting rules currently firing in Prometheus (the ALERTS series), by name.",
            6,
        )
        .no_value("none firing")
        .thresholds(_thresholds((None, "green"), (1, "red")))
        .with_target(
            _query(
                'count by (alertname, severity) (ALERTS{alertstate="firing"})',
                "{{alertname}} ({{severity}})",
                instant=True,
            )
        )
    )

    board.row("Adverse events")
    board.add(
        _bargauge(
            "Adverse events by modality and grade",
            "Current (non-retracted) adverse events related to each modality, by their current "
            "CTCAE grade.",
            12,
            9,
        ).with_target(
            _query(
                f"sum by (modality, grade) (safety_stream_adverse_events{{{JOB}}})",
                "{{modality}} grade {{grade}}",
                instant=True,
            )
        )
    )
    board.add(
        _timeseries(
            "Adverse events by grade over time",
            "Current (non-retracted) related adverse events by CTCAE grade, stacked.",
            12,
            9,
        )
        .decimals(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(40)
        .with_target(
            _query(
                f"sum by (grade) (safety_stream_adverse_events{{{JOB}}})",
                "grade {{grade}}",
            )
        )
    )
    return board.build()


def _line_width(width: int) -> models.DynamicConfigValue:
    return models.DynamicConfigValue(id_val="custom.lineWidth", value=width)


def _rule_table() -> table.Panel:
    """One row per rule: state, x, n, boundary, margin, posterior probability, maximum."""
    columns = [
        ("A", "safety_stream_rule_state", "State"),
        ("B", "safety_stream_rule_counted_patients", "Counted (x)"),
        ("C", "safety_stream_rule_evaluable_patients", "Evaluable (n)"),
        ("D", "safety_stream_rule_boundary_patients", "Boundary"),
        ("E", "safety_stream_rule_margin_patients", "Margin"),
        ("F", "safety_stream_rule_posterior_probability", "P(rate > theta)"),
        ("G", "safety_stream_rule_max_patients", "Planned maximum"),
    ]
    panel = (
        table.Panel()
        .title("Monitoring rules")
        .description(
            "Every boundary rule of the monitoring plan at the latest evaluation. Margin: the "
            "boundary minus the counted patients. The posterior probability P(rate > theta) "
            "is empty for rules that are not Bayesian."
        )
        .datasource(DATASOURCE)
        .span(14)
        .height(8)
        .decimals(0)
        .with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            models.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {"rule": 0, "modality": 1},
                    "renameByName": {
                        "rule": "Rule",
                        "modality": "Exposed to",
                        **{f"Value #{ref}": name for ref, _, name in columns},
                    },
                },
            )
        )
        .override_by_name(
            "State",
            [
                models.DynamicConfigValue(id_val="mappings", value=_rule_state_mappings()),
                models.DynamicConfigValue(
                    id_val="custom.cellOptions",
                    value=common.TableColoredBackgroundCellOptions(
                        mode=common.TableCellBackgroundDisplayMode.BASIC
                    ),
                ),
            ],
        )
        .override_by_name(
            "P(rate > theta)",
            [
                models.DynamicConfigValue(id_val="decimals", value=1),
                models.DynamicConfigValue(id_val="unit", value="percentunit"),
            ],
        )
    )
    for ref, metric, _ in columns:
        panel.with_target(
            _query(
                f"max by (rule, modality) ({metric}{{{JOB}}})",
                "__auto",
                ref,
                instant=True,
                table_format=True,
            )
        )
    return panel


# --- per site --------------------------------------------------------------------------------


def sites_dashboard() -> models.Dashboard:
    builder = _dashboard(
        "safety-sites",
        "Safety by site",
        "Exposure, related grade >= 3 toxicity and adverse events of one site, and how the "
        "sites compare.",
        "sites",
    ).time("now-30d", "now")
    builder.with_variable(
        _label_variable(
            "site",
            "Site",
            f"label_values(safety_stream_adverse_events{{{JOB}}}, site)",
            multi=False,
        )
    )
    board = _Board(builder)
    site = f'{JOB}, site="$site"'

    board.row("$site")
    board.add(
        _stat("Patients exposed at $site", "Patients exposed to each modality.", 8).with_target(
            _query(
                f"sum by (modality) (safety_stream_site_patients_exposed{{{site}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        _stat(
            "Patients with a related grade >= 3 AE at $site",
            "Patients at the site with at least one grade >= 3 adverse event related to the "
            "modality.",
            8,
        ).with_target(
            _query(
                f"sum by (modality) (safety_stream_site_patients_related_grade3{{{site}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        _stat(
            "Related grade >= 3 among exposed at $site",
            "Share of the site's exposed patients with a related grade >= 3 AE, per "
            "modality; no interval, so read small sites with care. The monitoring rules "
            "work on the whole trial. Modalities without exposed patients are left out.",
            8,
        )
        .unit("percentunit")
        .decimals(1)
        .with_target(
            _query(
                f"sum by (modality) (safety_stream_site_patients_related_grade3{{{site}}})"
                f" / (sum by (modality) (safety_stream_site_patients_exposed{{{site}}}) > 0)",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        _timeseries(
            "Adverse events at $site by grade",
            "Current (non-retracted) related adverse events at the site by CTCAE grade, stacked.",
            12,
            9,
        )
        .decimals(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(40)
        .with_target(
            _query(
                f"sum by (grade) (safety_stream_adverse_events{{{site}}})",
                "grade {{grade}}",
            )
        )
    )
    board.add(
        _bargauge(
            "Adverse events at $site by modality and grade",
            "Current (non-retracted) related adverse events at the site.",
            12,
            9,
        ).with_target(
            _query(
                f"sum by (modality, grade) (safety_stream_adverse_events{{{site}}})",
                "{{modality}} grade {{grade}}",
                instant=True,
            )
        )
    )

    board.row("All sites")
    board.add(
        _bargauge(
            "Patients exposed, by site",
            "Patients exposed to any modality counted once per modality, for every site.",
            8,
            9,
        ).with_target(
            _query(
                f"sum by (site) (safety_stream_site_patients_exposed{{{JOB}}})",
                "{{site}}",
                instant=True,
            )
        )
    )
    board.add(
        _bargauge(
            "Patients with a related grade >= 3 AE, by site",
            "Counted once per modality, for every site.",
            8,
            9,
        ).with_target(
            _query(
                f"sum by (site) (safety_stream_site_patients_related_grade3{{{JOB}}})",
                "{{site}}",
                instant=True,
            )
        )
    )
    board.add(
        _bargauge(
            "Grade >= 3 adverse events, by site",
            "Current (non-retracted) related adverse events of grade 3 to 5, for every site.",
            8,
            9,
        ).with_target(
            _query(
                f'sum by (site) (safety_stream_adverse_events{{{JOB}, grade=~"3|4|5"}})',
                "{{site}}",
                instant=True,
            )
        )
    )

    board.row("Submissions (all sites)")
    board.add(
        _timeseries(
            "Submitted records by outcome (all sites)",
            f"Records received by ingest per second, by outcome. {NO_SITE_LABEL}",
            12,
        )
        .unit("cps")
        .with_target(
            _query(
                f"sum by (outcome) "
                f"(rate(safety_stream_ingest_records_total{{{JOB}}}[$__rate_interval]))",
                "{{outcome}}",
            )
        )
    )
    board.add(
        _timeseries(
            "Rejected records by reason (all sites)",
            f"Rejections per second by validation problem code. {NO_SITE_LABEL} "
            "`safety-stream rejected --site SITE` lists a site's rejected records.",
            12,
        )
        .unit("cps")
        .with_target(
            _query(
                f"sum by (reason) "
                f"(rate(safety_stream_ingest_rejections_total{{{JOB}}}[$__rate_interval]))",
                "{{reason}}",
            )
        )
    )
    return board.build()


# --- pipeline health -------------------------------------------------------------------------


def _with_quantiles(panel: timeseries.Panel, histogram: str) -> timeseries.Panel:
    """Median and 99th percentile of a histogram, over every instance."""
    buckets = f"sum by (le) (rate({histogram}_bucket{{{JOB}}}[$__rate_interval]))"
    for ref, quantile in (("A", 0.5), ("B", 0.99)):
        legend = f"p{round(quantile * 100)}"
        panel.with_target(_query(f"histogram_quantile({quantile}, {buckets})", legend, ref))
    return panel


def pipeline_dashboard() -> models.Dashboard:
    builder = _dashboard(
        "safety-pipeline",
        "Safety pipeline health",
        "Ingest, validation, store, projections and alert delivery of safety-stream. "
        "For operators.",
        "pipeline",
    ).time("now-6h", "now")
    board = _Board(builder)

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
        board.add(_timeseries(title, description, 8).unit("cps").with_target(_query(expr, legend)))

    board.row("Store and projections")
    board.add(
        _with_quantiles(
            _timeseries(
                "Store append latency",
                "Time to validate and commit one ingest submission: median and 99th percentile.",
                6,
            ).unit("s"),
            "safety_stream_store_append_seconds",
        )
    )
    board.add(
        _with_quantiles(
            _timeseries(
                "Ingest to projection latency",
                "From an event's commit to the log until the projections include it: median "
                "and 99th percentile.",
                6,
            ).unit("s"),
            "safety_stream_ingest_to_projection_seconds",
        )
    )
    board.add(
        _timeseries(
            "Projection lag",
            "Events in the log that the projections have not applied yet.",
            6,
        )
        .decimals(0)
        .min(0)
        .with_target(_query(f"max(safety_stream_projection_lag_events{{{JOB}}})", "lag (events)"))
    )
    board.add(
        _timeseries(
            "Log and projection positions",
            "Position of the last event in the log and of the last one projected.",
            6,
        )
        .decimals(0)
        .with_target(_query(f"max(safety_stream_log_position{{{JOB}}})", "log", "A"))
        .with_target(_query(f"max(safety_stream_projection_position{{{JOB}}})", "projection", "B"))
    )

    board.row("Alerts and derived events")
    board.add(
        _timeseries(
            "Alert deliveries by channel and outcome",
            "Delivery attempts per second to email, webhook, Alertmanager and file, by outcome.",
            8,
        )
        .unit("cps")
        .with_target(
            _query(
                f"sum by (channel, outcome) "
                f"(rate(safety_stream_alert_deliveries_total{{{JOB}}}[$__rate_interval]))",
                "{{channel}} {{outcome}}",
            )
        )
        .override_by_regexp(".* failed", [_fixed_color("red")])
    )
    board.add(
        _stat(
            "Failed alert deliveries in range",
            "Deliveries given up after retries, over the dashboard's time range.",
            8,
            8,
        )
        .no_value("0")
        .thresholds(_thresholds((None, "green"), (1, "red")))
        .with_target(
            _query(
                f"sum by (channel) (increase(safety_stream_alert_deliveries_total"
                f'{{{JOB}, outcome="failed"}}[$__range]))',
                "{{channel}}",
                instant=True,
            )
        )
    )
    board.add(
        _timeseries(
            "Derived events by kind",
            "Derived events (boundaries, sentinels, report clocks) concluded per second.",
            8,
        )
        .unit("cps")
        .with_target(
            _query(
                f"sum by (kind) "
                f"(rate(safety_stream_derived_events_total{{{JOB}}}[$__rate_interval]))",
                "{{kind}}",
            )
        )
    )

    board.row("Targets")
    board.add(
        _stat("safety-stream up", "Whether Prometheus can scrape each instance.", 12, 5)
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
        .with_target(_query(f"up{{{JOB}}}", "{{instance}}", instant=True))
    )
    board.add(
        _stat(
            "Firing Prometheus alerts",
            "Alerting rules currently firing in Prometheus (the ALERTS series), by name.",
            12,
            5,
        )
        .no_value("none firing")
        .thresholds(_thresholds((None, "green"), (1, "red")))
        .with_target(
            _query(
                'count by (alertname, severity) (ALERTS{alertstate="firing"})',
                "{{alertname}} ({{severity}})",
                instant=True,
            )
        )
    )
    return board.build()


# --- output ----------------------------------------------------------------------------------

BUILDERS: tuple[Callable[[], models.Dashboard], ...] = (
    overview_dashboard,
    sites_dashboard,
    pipeline_dashboard,
)


def to_json(dashboard: models.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data, exactly as the SDK's encoder writes it."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    return data


def all_dashboards() -> list[dict[str, Any]]:
    """Every dashboard as JSON-ready data, overview first."""
    return [to_json(build()) for build in BUILDERS]


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Fill in ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]``; Grafana's own
    ``$__rate_interval``, ``$__interval`` and ``$__range`` default to GRAFANA_BUILTINS."""
    values = {**GRAFANA_BUILTINS, **variables}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        if name not in values:
            raise KeyError(f"no value given for the template variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def panel_queries(
    dashboard: Mapping[str, Any], variables: Mapping[str, str] | None = None
) -> list[str]:
    """Every panel target's PromQL, in panel order. With ``variables`` (e.g.
    ``{"site": "SITE-01"}``) template variables are substituted and a missing one is a
    KeyError; without, the expressions are returned as stored."""
    exprs: list[str] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets") or []:
            expr = target.get("expr", "")
            exprs.append(expr if variables is None else substitute(expr, variables))
    return exprs
