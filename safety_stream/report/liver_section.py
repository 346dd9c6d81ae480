"""The DSMB report's liver-safety section and cumulative-incidence figure, and (closed version
only) the narratives of serious AEs and deaths.

Built from the snapshot's review dataset at the report's cut-off. The *open* version is pooled:
shift tables, eDISH quadrant counts and the eDISH plot with no patient ids (its points carry
values only), the Child-Pugh counts and the cumulative incidence; the per-patient eDISH table,
the Child-Pugh trajectories and the narratives are None, so the template cannot show them. The
*closed* version has everything (plots without links: a report is read away from the board).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from safety_stream.report.snapshot import Snapshot
from safety_stream.review.child_pugh import ChildPughSummary
from safety_stream.review.cumulative import Curve
from safety_stream.review.liver import Edish, ShiftTable
from safety_stream.review.liver_view import liver_safety
from safety_stream.review.narratives import Narrative, narratives
from safety_stream.review_plots import child_pugh_plot, cumulative_incidence_plot, edish_plot


@dataclass(frozen=True, slots=True)
class LiverSection:
    as_of: date
    patients: int
    related_at_least: str
    shifts: tuple[ShiftTable, ...]
    edish: Edish  # open version: the quadrant counts, no points
    edish_svg: str
    child_pugh: ChildPughSummary  # open version: the counts, no trajectories
    curves: tuple[Curve, ...]
    cif_svg: str
    closed: bool
    child_pugh_svg: str | None  # closed only
    narratives: tuple[Narrative, ...] | None  # closed only


def liver_section(snapshot: Snapshot, closed: bool) -> LiverSection:
    """The section at the snapshot's clinical cut-off (else the day of the snapshot)."""
    as_of = snapshot.cutoff or snapshot.moment.date()
    data = snapshot.review()
    liver = liver_safety(data, snapshot.monitor.plan, as_of)
    cp = liver.child_pugh
    return LiverSection(
        as_of=as_of,
        patients=liver.patients,
        related_at_least=liver.related_at_least,
        shifts=liver.shifts,
        edish=liver.edish if closed else replace(liver.edish, points=()),
        edish_svg=edish_plot(liver.edish, link_base=None),
        child_pugh=cp if closed else replace(cp, trajectories=()),
        curves=liver.curves,
        cif_svg=cumulative_incidence_plot(liver.curves),
        closed=closed,
        child_pugh_svg=child_pugh_plot(cp, link_base=None) if closed else None,
        narratives=tuple(narratives(data)) if closed else None,
    )
