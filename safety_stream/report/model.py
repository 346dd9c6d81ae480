"""The DSMB safety report as data: everything the template shows, built from snapshots.

``build_report`` is a pure function of one snapshot (the cut-off), optionally the previous
report's snapshot, and the version. The *open* report (for everyone, sponsor and investigators
included) holds pooled data only: no listings, no per-site rows, nothing patient-level; those
fields are None or empty in its model, so the template cannot show them by mistake. The
*closed* report (DSMB members only) holds everything.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from safety_stream import __version__
from safety_stream.events import Modality
from safety_stream.monitoring.monitor import EPOCH
from safety_stream.monitoring.status import rule_statuses
from safety_stream.plan import TrialInfo
from safety_stream.projections.toxicity import ModalityTable, toxicity_tables
from safety_stream.report.changes import ReportChanges, report_changes
from safety_stream.report.dmc_tables import DmcSection, dmc_section
from safety_stream.report.listings import (
    ClockRow,
    DeathRow,
    DeathSummary,
    SaeRow,
    SaeSummary,
    Timeliness,
    clock_rows,
    death_rows,
    death_summary,
    sae_rows,
    sae_summary,
    timeliness,
)
from safety_stream.report.liver_section import LiverSection, liver_section
from safety_stream.report.rules import (
    CountingRuleView,
    CrossingRow,
    SentinelView,
    crossing_rows,
    rule_views,
)
from safety_stream.report.snapshot import Snapshot

ReportVersion = Literal["open", "closed"]
STATUSES = ("on_study", "withdrawn", "lost_to_follow_up", "died")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Provenance(_Out):
    """Which log the report came from, so a reader can check it against the store."""

    as_of: datetime  # the snapshot: events stored by then
    cutoff: date | None  # the clinical data cut-off (None: every stored event)
    after_cutoff: int  # events stored by the snapshot but dated after the cut-off
    position: int
    events: int
    chain_head: str
    first_stored_at: datetime | None
    last_stored_at: datetime | None
    monitoring_clock: datetime | None  # the latest recorded_at the log had reached
    plan_version: str
    software: str


class SiteEnrolment(_Out):
    site_id: str
    enrolled: int
    exposed: dict[str, int]
    off_study: int


class Enrolment(_Out):
    planned: int
    enrolled: int
    by_status: dict[str, int]
    exposed: dict[str, int]
    by_site: list[SiteEnrolment] | None  # None in the open report


class Report(_Out):
    version: ReportVersion
    trial: TrialInfo
    illustrative_rules: list[str]
    related_at_least: str
    provenance: Provenance
    enrolment: Enrolment
    toxicity: list[ModalityTable]
    counting: list[CountingRuleView]
    sentinels: list[SentinelView]
    expedited_title: str | None
    timeliness: Timeliness
    clocks: list[ClockRow] | None
    saes: SaeSummary
    sae_rows: list[SaeRow] | None
    deaths: DeathSummary
    death_rows: list[DeathRow] | None
    changes: ReportChanges | None  # None: the first report
    crossings: list[CrossingRow]  # in the period (since the previous report), with decisions
    liver: LiverSection  # liver safety, cumulative incidence; narratives when closed
    dmc: DmcSection  # the DMC tables; listings and per-site rows when closed

    @property
    def closed(self) -> bool:
        return self.version == "closed"


def _enrolment(snapshot: Snapshot, closed: bool) -> Enrolment:
    patients = snapshot.state.patients.values()
    by_site = None
    if closed:
        by_site = [
            SiteEnrolment(
                site_id=site,
                enrolled=sum(p.site_id == site for p in patients),
                exposed={
                    m.value: sum(p.site_id == site and m.value in p.exposure for p in patients)
                    for m in Modality
                },
                off_study=sum(p.site_id == site and p.status != "on_study" for p in patients),
            )
            for site in sorted({p.site_id for p in patients})
        ]
    return Enrolment(
        planned=snapshot.monitor.plan.trial.planned_enrolment,
        enrolled=len(snapshot.state.patients),
        by_status={s: sum(p.status == s for p in patients) for s in STATUSES},
        exposed={m.value: sum(m.value in p.exposure for p in patients) for m in Modality},
        by_site=by_site,
    )


def build_report(now: Snapshot, before: Snapshot | None, version: ReportVersion) -> Report:
    """The report at ``now``'s cut-off; ``before`` is the previous report's snapshot."""
    closed = version == "closed"
    plan = now.monitor.plan
    threshold = plan.related_means_at_least
    tables = toxicity_tables(now.state, now.moment, threshold, plan.windows)
    if not closed:
        tables = [t.model_copy(update={"by_site": []}) for t in tables]
    counting, sentinels = rule_views(now, rule_statuses(now.monitor), closed)
    monitor = now.monitor
    return Report(
        version=version,
        trial=plan.trial,
        illustrative_rules=[r.id for r in plan.rules if r.illustrative],
        related_at_least=threshold.value,
        provenance=Provenance(
            as_of=now.moment,
            cutoff=now.cutoff,
            after_cutoff=now.after_cutoff,
            position=now.position,
            events=now.events,
            chain_head=now.chain_head,
            first_stored_at=now.first_stored_at,
            last_stored_at=now.last_stored_at,
            monitoring_clock=None if monitor.clock == EPOCH else monitor.clock,
            plan_version=plan.version,
            software=f"safety-stream {__version__}",
        ),
        enrolment=_enrolment(now, closed),
        toxicity=tables,
        counting=counting,
        sentinels=sentinels,
        expedited_title=monitor.reporting.title if monitor.reporting else None,
        timeliness=timeliness(now),
        clocks=clock_rows(now) if closed else None,
        saes=sae_summary(now, threshold),
        sae_rows=sae_rows(now, threshold) if closed else None,
        deaths=death_summary(now, threshold),
        death_rows=death_rows(now, threshold) if closed else None,
        changes=None if before is None else report_changes(before, now, threshold, closed),
        crossings=crossing_rows(now, None if before is None else before.moment, closed),
        liver=liver_section(now, closed),
        dmc=dmc_section(now, closed),
    )
