"""Shared pieces of the dashboards: the grid layout, panel and query builders, variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
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

RULE_STATES = (
    (0, "OK", "green"),
    (1, "Approached", "orange"),
    (2, "Crossed", "red"),
    (3, "Beyond planned n", "blue"),
)

NO_SITE_LABEL = (
    "Ingest counters carry no site label, so this panel shows every site together, not only $site."
)


PanelBuilder = timeseries.Panel | stat.Panel | table.Panel | bargauge.Panel


class Board:
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

    def add(self, panel: PanelBuilder) -> Self:
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


def query(
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


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=color) for value, color in steps])
    )


def neutral() -> dashboard_builders.ThresholdsConfig:
    return thresholds((None, "blue"))


def last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def legend(*, as_table: bool = False) -> common_builders.VizLegendOptions:
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


def multi_tooltip() -> common_builders.VizTooltipOptions:
    return (
        common_builders.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def dashed() -> list[models.DynamicConfigValue]:
    style = common_builders.LineStyle().fill("dash").dash([10, 10]).build()
    return [models.DynamicConfigValue(id_val="custom.lineStyle", value=style)]


def fixed_color(color: str) -> models.DynamicConfigValue:
    field_color = models.FieldColor(mode=models.FieldColorModeId.FIXED, fixed_color=color)
    return models.DynamicConfigValue(id_val="color", value=field_color)


def rule_state_mappings() -> list[models.ValueMapping]:
    return [
        models.ValueMap(
            options={
                str(value): models.ValueMappingResult(text=text, color=color, index=value)
                for value, text, color in RULE_STATES
            }
        )
    ]


def timeseries_panel(title: str, description: str, width: int, height: int = 8) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .legend(legend())
        .tooltip(multi_tooltip())
        .line_width(2)
        .fill_opacity(10)
    )


def stat_panel(title: str, description: str, width: int, height: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .reduce_options(last_value())
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.VALUE)
        .thresholds(neutral())
        .decimals(0)
    )


def bargauge_panel(title: str, description: str, width: int, height: int = 8) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .reduce_options(last_value())
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .min(0)
        .decimals(0)
        .thresholds(neutral())
    )


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (
        dashboard_builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(models.VariableOption(text="Prometheus", value=DEFAULT_DATASOURCE_UID))
    )


def label_variable(
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


def new_dashboard(
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
        .with_variable(datasource_variable())
    )
