"""Toxicity tables per modality, computed from the projection state.

Patients are counted, not events: each exposed patient counts once, at the worst current grade
of the AEs related to the modality (attribution at least "possible" by default). Retracted AEs
never count. Denominators are the patients exposed to the modality; a window narrows them to
the patients evaluable for it, as the stopping rules count them: the window has fully elapsed
(an event does not make a patient evaluable sooner), and a patient who left before its end
without a related grade >= 3 AE in it is not evaluable; only AEs whose onset lies in the window
count there. Intervals are exact (Clopper-Pearson, 95%).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from safety_stream.events import ATTRIBUTION_RANK, Attribution, Modality
from safety_stream.plan import Window
from safety_stream.projections.state import AeState, PatientState, TrialState
from safety_stream.projections.windows import left_at, window_span
from safety_stream.stats import clopper_pearson

SEVERE = 3  # grade >= 3: severe or worse (CTCAE v5.0)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rate(_Out):
    count: int
    n: int
    rate: float | None
    ci95_low: float
    ci95_high: float


def rate(count: int, n: int) -> Rate:
    low, high = clopper_pearson(count, n)
    return Rate(count=count, n=n, rate=count / n if n else None, ci95_low=low, ci95_high=high)


class GradeRow(_Out):
    """Patients by worst grade (keys '1'..'5') for one term, SOC or site."""

    name: str
    soc: str | None = None
    patients: int
    by_worst_grade: dict[str, int]
    grade3_or_worse: int


class SiteRow(_Out):
    site_id: str
    exposed: int
    grade3_or_worse: Rate


class WindowRow(_Out):
    window: str
    days: int
    evaluable: int
    grade3_or_worse: Rate


class ModalityTable(_Out):
    modality: Modality
    exposed: int
    patients_with_related_ae: int
    by_worst_grade: dict[str, int]  # '0' = no related AE, '1'..'5'
    grade3_or_worse: Rate
    by_term: list[GradeRow]
    by_soc: list[GradeRow]
    by_site: list[SiteRow]
    evaluable: list[WindowRow]


def _related(ae: AeState, modality: Modality, threshold: int) -> bool:
    return ae.status != "retracted" and (
        ATTRIBUTION_RANK[Attribution(ae.attribution[modality.value])] >= threshold
    )


def _in_window(
    patient: PatientState, window: Window, as_of: datetime, onsets: list[date]
) -> bool | None:
    """None when not evaluable for the window at ``as_of``; else whether a severe related AE
    began inside it."""
    span = window_span(patient, window)
    if span is None or span.end > as_of:
        return None  # not exposed to its anchor, or not followed for the whole window yet
    counted = any(span.holds_date(onset) for onset in onsets)
    left = left_at(patient)
    if left is not None and left < span.end and not counted:
        return None  # left before the end of the window without the event
    return counted


def _grade_rows(worst: dict[tuple[str, str], int], socs: dict[str, str] | None) -> list[GradeRow]:
    by_name: dict[str, dict[str, int]] = defaultdict(lambda: {str(g): 0 for g in range(1, 6)})
    for (name, _patient), grade in worst.items():
        by_name[name][str(grade)] += 1
    return [
        GradeRow(
            name=name,
            soc=socs.get(name) if socs else None,
            patients=sum(grades.values()),
            by_worst_grade=grades,
            grade3_or_worse=sum(grades[str(g)] for g in range(SEVERE, 6)),
        )
        for name, grades in sorted(
            by_name.items(), key=lambda item: (-sum(item[1].values()), item[0])
        )
    ]


def modality_table(
    state: TrialState,
    modality: Modality,
    as_of: datetime,
    related_at_least: Attribution = Attribution.POSSIBLE,
    windows: dict[str, Window] | None = None,
    site_id: str | None = None,
) -> ModalityTable:
    """The toxicity table of one modality as the state stands at ``as_of``."""
    threshold = ATTRIBUTION_RANK[related_at_least]
    exposed = {
        pid: p
        for pid, p in state.patients.items()
        if modality.value in p.exposure and (site_id is None or p.site_id == site_id)
    }
    worst: dict[str, int] = {}
    worst_by_term: dict[tuple[str, str], int] = {}
    worst_by_soc: dict[tuple[str, str], int] = {}
    socs: dict[str, str] = {}
    severe_onsets: dict[str, list[date]] = defaultdict(list)
    for ae in state.aes.values():
        if ae.patient_id not in exposed or not _related(ae, modality, threshold):
            continue
        if ae.worst >= SEVERE:
            severe_onsets[ae.patient_id].append(ae.onset_date)
        worst[ae.patient_id] = max(ae.worst, worst.get(ae.patient_id, 0))
        key = (ae.ctcae_term, ae.patient_id)
        worst_by_term[key] = max(ae.worst, worst_by_term.get(key, 0))
        soc_key = (ae.soc, ae.patient_id)
        worst_by_soc[soc_key] = max(ae.worst, worst_by_soc.get(soc_key, 0))
        socs[ae.ctcae_term] = ae.soc
    grades = {str(g): 0 for g in range(6)}
    for pid in exposed:
        grades[str(worst.get(pid, 0))] += 1
    severe = {pid for pid, g in worst.items() if g >= SEVERE}
    sites: dict[str, list[str]] = defaultdict(list)
    for pid, patient in exposed.items():
        sites[patient.site_id].append(pid)
    evaluable_rows = []
    for name, window in (windows or {}).items():
        if window.modality not in (None, modality):
            continue
        evaluable, counted = [], 0
        for pid, patient in exposed.items():
            judged = _in_window(patient, window, as_of, severe_onsets.get(pid, []))
            if judged is not None:
                evaluable.append(pid)
                counted += judged
        evaluable_rows.append(
            WindowRow(
                window=name,
                days=window.days,
                evaluable=len(evaluable),
                grade3_or_worse=rate(counted, len(evaluable)),
            )
        )
    return ModalityTable(
        modality=modality,
        exposed=len(exposed),
        patients_with_related_ae=len(worst),
        by_worst_grade=grades,
        grade3_or_worse=rate(len(severe), len(exposed)),
        by_term=_grade_rows(worst_by_term, socs),
        by_soc=_grade_rows(worst_by_soc, None),
        by_site=[
            SiteRow(
                site_id=site,
                exposed=len(pids),
                grade3_or_worse=rate(sum(p in severe for p in pids), len(pids)),
            )
            for site, pids in sorted(sites.items())
        ],
        evaluable=evaluable_rows,
    )


def toxicity_tables(
    state: TrialState,
    as_of: datetime,
    related_at_least: Attribution = Attribution.POSSIBLE,
    windows: dict[str, Window] | None = None,
    site_id: str | None = None,
) -> list[ModalityTable]:
    return [modality_table(state, m, as_of, related_at_least, windows, site_id) for m in Modality]
