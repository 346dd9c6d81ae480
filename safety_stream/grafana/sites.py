"""The per-site dashboard: one site at a time, and the sites side by side."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from safety_stream.grafana.panels import (
    JOB,
    NO_SITE_LABEL,
    Board,
    bargauge_panel,
    label_variable,
    new_dashboard,
    query,
    stat_panel,
    timeseries_panel,
)

# --- per site --------------------------------------------------------------------------------


def sites_dashboard() -> models.Dashboard:
    builder = new_dashboard(
        "safety-sites",
        "Safety by site",
        "Exposure, related grade >= 3 toxicity and adverse events of one site, and how the "
        "sites compare.",
        "sites",
    ).time("now-30d", "now")
    builder.with_variable(
        label_variable(
            "site",
            "Site",
            f"label_values(safety_stream_adverse_events{{{JOB}}}, site)",
            multi=False,
        )
    )
    board = Board(builder)
    site = f'{JOB}, site="$site"'

    board.row("$site")
    board.add(
        stat_panel(
            "Patients exposed at $site", "Patients exposed to each modality.", 8
        ).with_target(
            query(
                f"sum by (modality) (safety_stream_site_patients_exposed{{{site}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        stat_panel(
            "Patients with a related grade >= 3 AE at $site",
            "Patients at the site with at least one grade >= 3 adverse event related to the "
            "modality.",
            8,
        ).with_target(
            query(
                f"sum by (modality) (safety_stream_site_patients_related_grade3{{{site}}})",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        stat_panel(
            "Related grade >= 3 among exposed at $site",
            "Share of the site's exposed patients with a related grade >= 3 AE, per "
            "modality; no interval, so read small sites with care. The monitoring rules "
            "work on the whole trial. Modalities without exposed patients are left out.",
            8,
        )
        .unit("percentunit")
        .decimals(1)
        .with_target(
            query(
                f"sum by (modality) (safety_stream_site_patients_related_grade3{{{site}}})"
                f" / (sum by (modality) (safety_stream_site_patients_exposed{{{site}}}) > 0)",
                "{{modality}}",
                instant=True,
            )
        )
    )
    board.add(
        timeseries_panel(
            "Adverse events at $site by grade",
            "Current (non-retracted) related adverse events at the site by CTCAE grade, stacked.",
            12,
            9,
        )
        .decimals(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(40)
        .with_target(
            query(
                f"sum by (grade) (safety_stream_adverse_events{{{site}}})",
                "grade {{grade}}",
            )
        )
    )
    board.add(
        bargauge_panel(
            "Adverse events at $site by modality and grade",
            "Current (non-retracted) related adverse events at the site.",
            12,
            9,
        ).with_target(
            query(
                f"sum by (modality, grade) (safety_stream_adverse_events{{{site}}})",
                "{{modality}} grade {{grade}}",
                instant=True,
            )
        )
    )

    board.row("All sites")
    board.add(
        bargauge_panel(
            "Patients exposed, by site",
            "Patients exposed to any modality counted once per modality, for every site.",
            8,
            9,
        ).with_target(
            query(
                f"sum by (site) (safety_stream_site_patients_exposed{{{JOB}}})",
                "{{site}}",
                instant=True,
            )
        )
    )
    board.add(
        bargauge_panel(
            "Patients with a related grade >= 3 AE, by site",
            "Counted once per modality, for every site.",
            8,
            9,
        ).with_target(
            query(
                f"sum by (site) (safety_stream_site_patients_related_grade3{{{JOB}}})",
                "{{site}}",
                instant=True,
            )
        )
    )
    board.add(
        bargauge_panel(
            "Grade >= 3 adverse events, by site",
            "Current (non-retracted) related adverse events of grade 3 to 5, for every site.",
            8,
            9,
        ).with_target(
            query(
                f'sum by (site) (safety_stream_adverse_events{{{JOB}, grade=~"3|4|5"}})',
                "{{site}}",
                instant=True,
            )
        )
    )

    board.row("Submissions (all sites)")
    board.add(
        timeseries_panel(
            "Submitted records by outcome (all sites)",
            f"Records received by ingest per second, by outcome. {NO_SITE_LABEL}",
            12,
        )
        .unit("cps")
        .with_target(
            query(
                f"sum by (outcome) "
                f"(rate(safety_stream_ingest_records_total{{{JOB}}}[$__rate_interval]))",
                "{{outcome}}",
            )
        )
    )
    board.add(
        timeseries_panel(
            "Rejected records by reason (all sites)",
            f"Rejections per second by validation problem code. {NO_SITE_LABEL} "
            "`safety-stream rejected --site SITE` lists a site's rejected records.",
            12,
        )
        .unit("cps")
        .with_target(
            query(
                f"sum by (reason) "
                f"(rate(safety_stream_ingest_rejections_total{{{JOB}}}[$__rate_interval]))",
                "{{reason}}",
            )
        )
    )
    return board.build()
