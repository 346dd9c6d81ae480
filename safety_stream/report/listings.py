"""Patient-level listings: serious AEs, deaths, and expedited-report timeliness.

Pure functions of a snapshot. The listings themselves go in the closed report only; their
summaries (counts) go in both. Rows are sorted on stable keys, so the same log always lists
them in the same order.

Timeliness is judged at the report's cut-off, not at the monitor's clock (the latest time the
log reached): a report due before the cut-off and not submitted by then is overdue, even if no
event arrived after its due time to make the monitor notice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from safety_stream.application.read_models import AeRead, attributed_at_least
from safety_stream.events import Attribution, Seriousness
from safety_stream.monitoring.report_clocks import ReportClock
from safety_stream.projections.state import AeState
from safety_stream.report.snapshot import Snapshot

Timing = Literal["on time", "late", "overdue", "open", "withdrawn", "not reportable"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SaeRow(_Out):
    ae_id: str
    patient_id: str
    site_id: str
    ctcae_term: str
    soc: str
    grade: int
    onset_date: date
    seriousness: list[str]
    expectedness: str
    attribution: dict[str, str]  # modality -> attribution, in modality order
    related_to: list[str]  # modalities attributed at least the plan's "related"
    immune_related: bool
    status: str
    outcome: str | None
    reported_at: datetime
    expedited: Timing | None  # None: no expedited report required

    @classmethod
    def of(cls, ae: AeRead, threshold: Attribution, expedited: Timing | None) -> SaeRow:
        """By field name from the AE's read model; the grade listed is the worst grade."""
        return cls.model_validate(
            ae.fields()
            | {
                "grade": ae.worst_grade,
                "related_to": ae.related_to(threshold),
                "expedited": expedited,
            }
        )


class SaeSummary(_Out):
    events: int
    patients: int
    by_criterion: dict[str, int]  # ICH E2A criterion -> AEs meeting it
    related: int
    unexpected: int
    fatal: int


class DeathRow(_Out):
    patient_id: str
    site_id: str
    death_date: date | None
    cause: str
    fatal_aes: list[str]
    treatment_related: bool
    recorded_as: str  # which events report it


class DeathSummary(_Out):
    patients: int
    treatment_related: int
    grade5_aes: int


class ClockRow(_Out):
    ae_id: str
    patient_id: str
    site_id: str
    ctcae_term: str
    grade: int
    fatal_or_life_threatening: bool
    days: int
    aware_at: datetime
    due: datetime
    submitted_at: datetime | None
    timing: Timing


class Timeliness(_Out):
    fatal_days: int | None
    other_days: int | None
    due: int  # clocks whose due time passed by the cut-off, or already submitted
    on_time: int
    late: int
    overdue: int
    open: int
    withdrawn: int


def related_to(ae: AeState, threshold: Attribution) -> list[str]:
    return attributed_at_least(ae.attribution, threshold)


def serious_aes(snapshot: Snapshot) -> list[AeState]:
    """AEs meeting any ICH E2A seriousness criterion; retracted ones are not AEs any more."""
    found = [a for a in snapshot.state.aes.values() if a.seriousness and a.status != "retracted"]
    return sorted(found, key=lambda a: (a.onset_date, a.patient_id, a.reported_at, str(a.ae_id)))


def timing(clock: ReportClock, ae: AeState | None, cutoff: datetime) -> Timing:
    submitted = ae.safety_report_submitted_at if ae is not None else None
    if submitted is not None:
        return "on time" if submitted <= clock.due else "late"
    if ae is not None and ae.status == "retracted":
        return "withdrawn"
    if clock.reason is not None and clock.reason.startswith("no longer reportable"):
        return "not reportable"
    return "overdue" if cutoff > clock.due else "open"


def sae_rows(snapshot: Snapshot, threshold: Attribution) -> list[SaeRow]:
    clocks = snapshot.monitor.clocks
    rows = []
    for ae in serious_aes(snapshot):
        clock = clocks.get(ae.ae_id)
        expedited = None if clock is None else timing(clock, ae, snapshot.moment)
        rows.append(SaeRow.of(AeRead.of(ae), threshold, expedited))
    return rows


def sae_summary(snapshot: Snapshot, threshold: Attribution) -> SaeSummary:
    serious = serious_aes(snapshot)
    return SaeSummary(
        events=len(serious),
        patients=len({a.patient_id for a in serious}),
        by_criterion={c.value: sum(c.value in a.seriousness for a in serious) for c in Seriousness},
        related=sum(bool(related_to(a, threshold)) for a in serious),
        unexpected=sum(a.expectedness == "unexpected" for a in serious),
        fatal=sum(a.worst == 5 for a in serious),
    )


def _fatal_aes(snapshot: Snapshot) -> dict[str, list[AeState]]:
    fatal: dict[str, list[AeState]] = {}
    for ae in snapshot.state.aes.values():
        if ae.worst == 5 and ae.status != "retracted":
            fatal.setdefault(ae.patient_id, []).append(ae)
    return fatal


def _fatal_label(ae: AeState, threshold: Attribution) -> str:
    related = related_to(ae, threshold)
    attribution = f"related: {', '.join(related)}" if related else "not related"
    return f"{ae.ctcae_term} (grade {ae.worst}; {attribution})"


def death_rows(snapshot: Snapshot, threshold: Attribution) -> list[DeathRow]:
    """Every patient who died: a ``patient.died`` event, a grade 5 AE, or both."""
    fatal = _fatal_aes(snapshot)
    rows = []
    for patient_id in set(fatal) | set(snapshot.deaths):
        aes = sorted(fatal.get(patient_id, []), key=lambda a: (a.onset_date, str(a.ae_id)))
        death = snapshot.deaths.get(patient_id)
        cited = None
        if death is not None and death.related_ae_id is not None:
            cited = snapshot.state.aes.get(death.related_ae_id)
        if cited is not None and cited.status != "retracted" and cited not in aes:
            aes.append(cited)
        sources = []
        if death is not None:
            sources.append("patient.died")
            when: date | None = death.death_date
            cause, site_id = death.primary_cause, death.site_id
        else:
            when = aes[0].end_date or aes[0].onset_date
            cause, site_id = aes[0].ctcae_term, aes[0].site_id
        if patient_id in fatal:
            sources.append("grade 5 AE")
        rows.append(
            DeathRow(
                patient_id=patient_id,
                site_id=site_id,
                death_date=when,
                cause=cause,
                fatal_aes=[_fatal_label(a, threshold) for a in aes],
                treatment_related=any(related_to(a, threshold) for a in aes),
                recorded_as=" and ".join(sources),
            )
        )
    return sorted(rows, key=lambda r: (r.death_date or date.max, r.patient_id))


def death_summary(snapshot: Snapshot, threshold: Attribution) -> DeathSummary:
    rows = death_rows(snapshot, threshold)
    return DeathSummary(
        patients=len(rows),
        treatment_related=sum(r.treatment_related for r in rows),
        grade5_aes=sum(len(aes) for aes in _fatal_aes(snapshot).values()),
    )


def clock_rows(snapshot: Snapshot) -> list[ClockRow]:
    rows = []
    for clock in snapshot.monitor.clocks.values():
        ae = snapshot.state.aes.get(clock.ae_id)
        assert ae is not None  # a clock opens only on an AE the state holds
        rows.append(
            ClockRow(
                ae_id=str(clock.ae_id),
                patient_id=ae.patient_id,
                site_id=clock.site_id,
                ctcae_term=ae.ctcae_term,
                grade=ae.worst,
                fatal_or_life_threatening=clock.severe,
                days=(clock.due - clock.opened_at).days,
                aware_at=clock.opened_at,
                due=clock.due,
                submitted_at=ae.safety_report_submitted_at,
                timing=timing(clock, ae, snapshot.moment),
            )
        )
    return sorted(rows, key=lambda r: (r.due, r.patient_id, r.ae_id))


def timeliness(snapshot: Snapshot) -> Timeliness:
    rule = snapshot.monitor.reporting
    timings = [r.timing for r in clock_rows(snapshot)]
    on_time, late, overdue = (timings.count(t) for t in ("on time", "late", "overdue"))
    return Timeliness(
        fatal_days=rule.fatal_or_life_threatening_days if rule else None,
        other_days=rule.other_serious_days if rule else None,
        due=on_time + late + overdue,
        on_time=on_time,
        late=late,
        overdue=overdue,
        open=timings.count("open"),
        withdrawn=timings.count("withdrawn"),
    )
