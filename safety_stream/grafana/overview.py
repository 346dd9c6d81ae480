"""The safety overview dashboard: rates, rules against their boundaries, clocks, alerts."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from safety_stream.grafana.panels import (
    DATASOURCE,
    JOB,
    Board,
    bargauge_panel,
    dashed,
    fixed_color,
    label_variable,
    legend,
    new_dashboard,
    query,
    rule_state_mappings,
    stat_panel,
    thresholds,
    timeseries_panel,
)

# --- safety overview -------------------------------------------------------------------------


def overview_dashboard() -> models.Dashboard:
    builder = new_dashboard(
        "safety-overview",
        "Safety overview",
        "Related grade >= 3 toxicity against the monitoring plan's stopping boundaries, "
        "expedited-report clocks and safety alerts. For the safety officer and the DSMB.",
        "overview",
    ).time("now-30d", "now")
    builder.with_variable(
        label_variable(
            "rule",
            "Rule",
            f"label_values(safety_stream_rule_state{{{JOB}}}, rule)",
            multi=True,
        )
    )
    board = Board(builder)

    board.row("Related grade >= 3 toxicity and stopping boundaries")
    board.add(
        timeseries_panel(
            "Related grade >= 3 rate by modality (95% CI)",
            "Share of the patients exposed to each modality with at least one grade >= 3 "
            "adverse event related to it, with its Clopper-Pearson 95% interval (dashed).",
            12,
            9,
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .with_target(query(f"safety_stream_related_grade3_rate{{{JOB}}}", "{{modality}}", "A"))
        .with_target(
            query(
                f"safety_stream_related_grade3_rate_ci95_low{{{JOB}}}",
                "{{modality}} 95% CI low",
                "B",
            )
        )
        .with_target(
            query(
                f"safety_stream_related_grade3_rate_ci95_high{{{JOB}}}",
                "{{modality}} 95% CI high",
                "C",
            )
        )
        .override_by_regexp(".* 95% CI (low|high)", [*dashed(), _line_width(1)])
    )
    board.add(
        timeseries_panel(
            "Counted patients vs stopping boundary, every rule",
            "For each monitoring rule: patients counted against it (x, solid) and the "
            "stopping boundary at the current number of evaluable patients (dashed). "
            "A rule crosses when x reaches the boundary.",
            12,
            9,
        )
        .decimals(0)
        .min(0)
        .legend(legend(as_table=True))
        .with_target(
            query(
                f"max by (rule, modality) (safety_stream_rule_counted_patients{{{JOB}}})",
                "{{rule}} counted",
                "A",
            )
        )
        .with_target(
            query(
                f"max by (rule, modality) (safety_stream_rule_boundary_patients{{{JOB}}})",
                "{{rule}} boundary",
                "B",
            )
        )
        .override_by_regexp(".* boundary", dashed())
    )

    board.row("Per rule")
    rule = f'{JOB}, rule=~"$rule"'
    board.add(
        timeseries_panel(
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
            query(f"max(safety_stream_rule_counted_patients{{{rule}}})", "counted (x)", "A")
        )
        .with_target(
            query(f"max(safety_stream_rule_boundary_patients{{{rule}}})", "stopping boundary", "B")
        )
        .with_target(
            query(f"max(safety_stream_rule_evaluable_patients{{{rule}}})", "evaluable (n)", "C")
        )
        .with_target(
            query(f"max(safety_stream_rule_max_patients{{{rule}}})", "planned maximum", "D")
        )
        .override_by_name("stopping boundary", [*dashed(), fixed_color("red")])
        .override_by_name("planned maximum", [*dashed(), fixed_color("text")])
    )

    board.row("Rule states")
    board.add(
        stat_panel(
            "Rule states",
            "0 OK, 1 Approached, 2 Crossed, per rule and kind (bayesian, pocock, sentinel, "
            "expedited_report).",
            10,
            8,
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .mappings(rule_state_mappings())
        .thresholds(thresholds((None, "green"), (1, "orange"), (2, "red")))
        .with_target(
            query(
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
        stat_panel("Patients exposed", "Patients exposed to each modality.", 6).with_target(
            query(
                f"{by_modality} (safety_stream_patients_exposed{{{JOB}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        stat_panel(
            "Patients evaluable",
            "Patients evaluable for toxicity per modality and observation window.",
            6,
        ).with_target(
            query(
                f"sum by (modality, window) (safety_stream_patients_evaluable{{{JOB}}})",
                "{{modality}} ({{window}})",
                instant=True,
            )
        )
    )
    board.add(
        stat_panel(
            "Patients with a related grade >= 3 AE",
            "Patients with at least one grade >= 3 adverse event related to the modality.",
            6,
        ).with_target(
            query(
                f"{by_modality} (safety_stream_patients_related_grade3{{{JOB}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        stat_panel(
            "Sentinel events raised",
            "Adverse events that have raised each sentinel rule; anything above 0 needs a "
            "case review.",
            6,
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .thresholds(thresholds((None, "green"), (1, "red")))
        .with_target(
            query(
                f"max by (rule) (safety_stream_sentinel_raised{{{JOB}}})",
                "{{rule}}",
                instant=True,
            )
        )
    )

    board.row("Expedited reports and alerts")
    board.add(
        stat_panel(
            "Expedited report clocks",
            "Open and overdue expedited-report clocks (e.g. SUSAR 7/15-day reports).",
            6,
        )
        .no_value("0")
        .with_target(
            query(
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
                    value=thresholds((None, "green"), (1, "red")).build(),
                ),
                models.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            ],
        )
    )
    next_due = f"min(safety_stream_report_clock_next_due_timestamp_seconds{{{JOB}}}) * 1000"
    board.add(
        stat_panel(
            "Next expedited report due",
            "When the earliest open expedited-report clock runs out.",
            6,
        )
        .text_mode(common.BigValueTextMode.VALUE)
        .no_value("no open clock")
        .unit("dateTimeFromNow")
        .with_target(query(next_due, "due", "A", instant=True))
        .with_target(query(next_due, "due at", "B", instant=True))
        .override_by_query("B", [models.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
    )
    board.add(
        stat_panel(
            "Safety alerts",
            "Current safety alerts by severity and acknowledgement.",
            6,
        )
        .no_value("none")
        .with_target(
            query(
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
                    value=thresholds((None, "green"), (1, "orange")).build(),
                ),
                models.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            ],
        )
    )
    board.add(
        stat_panel(
            "Firing Prometheus alerts",
            "Alerting rules currently firing in Prometheus (the ALERTS series), by name.",
            6,
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

    board.row("Adverse events")
    board.add(
        bargauge_panel(
            "Adverse events by modality and grade",
            "Current (non-retracted) adverse events related to each modality, by their current "
            "CTCAE grade.",
            12,
            9,
        ).with_target(
            query(
                f"sum by (modality, grade) (safety_stream_adverse_events{{{JOB}}})",
                "{{modality}} grade {{grade}}",
                instant=True,
            )
        )
    )
    board.add(
        timeseries_panel(
            "Adverse events by grade over time",
            "Current (non-retracted) related adverse events by CTCAE grade, stacked.",
            12,
            9,
        )
        .decimals(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(40)
        .with_target(
            query(
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
                models.DynamicConfigValue(id_val="mappings", value=rule_state_mappings()),
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
            query(
                f"max by (rule, modality) ({metric}{{{JOB}}})",
                "__auto",
                ref,
                instant=True,
                table_format=True,
            )
        )
    return panel
