"""Cumulative incidence of the first related grade >= 3 AE, with death as a competing risk.

The Aalen-Johansen estimator (Aalen & Johansen, Scand J Stat 1978;5:141-150), for one event
of interest and one competing event, written out here (no survival library):

    CIF(t) = sum over event times s <= t of  S(s-) * d1(s) / n(s)

with n(s) the patients still at risk at s, d1(s) the events of interest at s and S the overall
Kaplan-Meier survival of the first of either event. Ties: events (of either kind) come before
censorings at the same time, so a patient censored at s is still at risk at s.

Variance: the delta-method (Greenwood-type) estimator given by Collett, *Modelling Survival
Data in Medical Research*, 3rd ed. (2015), p. 411 (the one SAS PROC LIFETEST and lifelines'
AalenJohansenFitter use; without competing events it is Greenwood's variance of 1 - KM):

    Var F(t) = sum_{tj<=t} [F(t)-F(tj)]^2 dj / (nj (nj-dj))
             + sum_{tj<=t} S(tj-)^2 d1j (nj-d1j) / nj^3
             - 2 sum_{tj<=t} [F(t)-F(tj)] S(tj-) d1j / nj^2

(dj: events of either kind; a term with nj = dj is 0, as F no longer changes after it), and a
95 % interval on the log(-log) scale, which stays inside (0, 1).

Time on study is in whole days from the first dose of any modality (day 0). The event is the
onset of the first treatment-emergent AE (onset on or after the first dose, as in ``tables``)
whose worst grade is >= 3 and whose current attribution is at least the plan's "related" (to
any modality, or to one); an AE with onset before the first dose is not an event. Death is the
competing event (a related grade >= 3 AE with onset on the day of death comes first).
Follow-up ends at withdrawal, loss to follow-up or the data cut-off (``as_of``), whichever is
first: those patients are censored there, and anything after it is not counted. Every dosed
patient is in each curve; a patient never dosed is at risk of no treatment-emergent AE and is
in none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from safety_stream.events import ATTRIBUTION_RANK, Attribution, Modality
from safety_stream.projections.state import AeState
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import PatientDetail

CENSORED, EVENT, COMPETING = 0, 1, 2
Z95 = 1.959963984540054
MIN_GRADE = 3


@dataclass(frozen=True, slots=True)
class CifStep:
    """The estimate just after one distinct time (``day``)."""

    day: float
    at_risk: int
    events: int  # of interest
    competing: int
    censored: int
    cif: float
    variance: float
    ci_low: float | None  # None while the estimate is 0 (or 1): no log(-log) interval
    ci_high: float | None


def aalen_johansen(outcomes: Sequence[tuple[float, int]]) -> list[CifStep]:
    """One step per distinct time of ``outcomes`` ((time, CENSORED | EVENT | COMPETING))."""
    for time, kind in outcomes:
        if kind not in (CENSORED, EVENT, COMPETING) or time < 0:
            raise ValueError(
                f"outcome ({time}, {kind}): time must be >= 0 and kind 0 (censored), "
                "1 (event) or 2 (competing)"
            )
    times = sorted({t for t, _ in outcomes})
    at_risk = len(outcomes)
    survival, cif = 1.0, 0.0
    rows: list[tuple[float, int, int, int, int, float, float]] = []  # ..., S(t-), F(t)
    for time in times:
        here = [k for t, k in outcomes if t == time]
        d1, d2, c = here.count(EVENT), here.count(COMPETING), here.count(CENSORED)
        before = survival
        if at_risk:
            cif += before * d1 / at_risk
            survival = before * (1 - (d1 + d2) / at_risk)
        rows.append((time, at_risk, d1, d2, c, before, cif))
        at_risk -= d1 + d2 + c
    return [_with_variance(rows, i) for i in range(len(rows))]


def _with_variance(rows: list[tuple[float, int, int, int, int, float, float]], i: int) -> CifStep:
    time, n, d1, d2, c, _, f_t = rows[i]
    first = second = third = 0.0
    for _, nj, d1j, d2j, _, s_before, f_j in rows[: i + 1]:
        dj = d1j + d2j
        if nj > dj:
            first += (f_t - f_j) ** 2 * dj / (nj * (nj - dj))
        second += s_before**2 * d1j * (nj - d1j) / nj**3
        third += (f_t - f_j) * s_before * d1j / nj**2
    variance = max(0.0, first + second - 2 * third)
    low = high = None
    if 0 < f_t < 1:
        spread = Z95 * math.sqrt(variance) / (f_t * abs(math.log(f_t)))
        centre = math.log(-math.log(f_t))
        bounds = sorted(math.exp(-math.exp(centre + sign * spread)) for sign in (-1, 1))
        low, high = bounds
    return CifStep(time, n, d1, d2, c, f_t, variance, low, high)


@dataclass(frozen=True, slots=True)
class Curve:
    """One cumulative-incidence curve: related to ``modality`` (None: to any modality)."""

    modality: str | None
    label: str
    patients: int
    events: int
    competing: int
    censored: int
    steps: tuple[CifStep, ...]
    pre_dose: int = 0
    """Qualifying AEs not counted: onset before the first dose, or of a patient never dosed."""

    def at(self, day: float) -> float:
        """The estimate at ``day`` (0 before the first event)."""
        value = 0.0
        for step in self.steps:
            if step.day > day:
                break
            value = step.cif
        return value


def _related(ae: AeState, modality: str | None, threshold: Attribution) -> bool:
    rank = ATTRIBUTION_RANK[threshold]
    chosen = [modality] if modality is not None else list(ae.attribution)
    return any(ATTRIBUTION_RANK[ae.attribution.get(m, "unrelated")] >= rank for m in chosen)


def origin(detail: PatientDetail) -> date | None:
    """Day 0: the first dose of any modality (None: never dosed)."""
    first = min((a.given_at for a in detail.administrations), default=None)
    return None if first is None else first.date()


def outcome(
    detail: PatientDetail,
    aes: list[AeState],
    as_of: date,
) -> tuple[int, int] | None:
    """(days, kind) of one patient, from their qualifying AEs' onsets (None: never dosed)."""
    start = origin(detail)
    if start is None:
        return None
    end = as_of
    if detail.exit is not None and detail.exit.kind != "died":
        end = min(end, detail.exit.on)
    onset = min((ae.onset_date for ae in aes if ae.onset_date >= start), default=None)
    died = detail.death.on if detail.death is not None else None
    if onset is not None and onset <= end and (died is None or onset <= died):
        return max(0, (onset - start).days), EVENT
    if died is not None and died <= end:
        return max(0, (died - start).days), COMPETING
    return max(0, (end - start).days), CENSORED


def cumulative_incidence(
    data: ReviewData, threshold: Attribution, as_of: date, modality: str | None = None
) -> Curve:
    """The curve of the first related (to ``modality``, or any) grade >= 3 AE."""
    qualifying: dict[str, list[AeState]] = {}
    for ae, _ in data.aes():
        if ae.worst >= MIN_GRADE and _related(ae, modality, threshold):
            qualifying.setdefault(ae.patient_id, []).append(ae)
    outcomes = []
    pre_dose = 0
    for _, detail in data.patients():
        mine = qualifying.get(detail.patient_id, [])
        start = origin(detail)
        pre_dose += sum(start is None or ae.onset_date < start for ae in mine)
        found = outcome(detail, mine, as_of)
        if found is not None:
            outcomes.append(found)
    kinds = [k for _, k in outcomes]
    label = "any study treatment" if modality is None else modality
    return Curve(
        modality=modality,
        label=label,
        patients=len(outcomes),
        events=kinds.count(EVENT),
        competing=kinds.count(COMPETING),
        censored=kinds.count(CENSORED),
        steps=tuple(aalen_johansen([(float(t), k) for t, k in outcomes])),
        pre_dose=pre_dose,
    )


def cumulative_incidences(data: ReviewData, threshold: Attribution, as_of: date) -> list[Curve]:
    """Related to any modality, then to each modality in turn."""
    modalities: list[str | None] = [None, *(m.value for m in Modality)]
    return [cumulative_incidence(data, threshold, as_of, m) for m in modalities]
