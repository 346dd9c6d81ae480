"""Liver safety in one piece, as the board's liver page and the report's liver section show it:
shift tables, the eDISH points, Child-Pugh trajectories around SBRT and the cumulative
incidence of related grade >= 3 AEs (death competing). A pure function of a
:class:`ReviewData`, the plan and the data cut-off; it returns computed rows only (nothing
refers back into the data), so it can leave the review lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from safety_stream.plan import MonitoringPlan
from safety_stream.review.child_pugh import ChildPughSummary, child_pugh_summary
from safety_stream.review.cumulative import Curve, cumulative_incidences
from safety_stream.review.dataset import ReviewData
from safety_stream.review.liver import Edish, ShiftTable, edish, shift_tables


@dataclass(frozen=True, slots=True)
class LiverSafety:
    as_of: date  # the data cut-off (censoring for the cumulative incidence)
    related_at_least: str
    patients: int
    shifts: tuple[ShiftTable, ...]
    edish: Edish
    child_pugh: ChildPughSummary
    curves: tuple[Curve, ...]  # related to any modality, then to each


def liver_safety(data: ReviewData, plan: MonitoringPlan, as_of: date) -> LiverSafety:
    threshold = plan.related_means_at_least
    return LiverSafety(
        as_of=as_of,
        related_at_least=threshold.value,
        patients=len(data.patients()),
        shifts=tuple(shift_tables(data)),
        edish=edish(data),
        child_pugh=child_pugh_summary(data, plan),
        curves=tuple(cumulative_incidences(data, threshold, as_of)),
    )
