"""Child-Pugh trajectories around SBRT: each irradiated patient's scores by days from the first
fraction, the worst rise from baseline, and who rose enough to count under the plan.

Baseline is the last score assessed *before* the first SBRT fraction, as the plan's RILD
composite (``monitoring.matching``) takes it. The pooled rise uses the plan's own definition:
the first composite whose condition contains a ``child_pugh_rise`` and that has a window (for
SPARKLE-L: ``rild``, a rise >= 2 points inside ``post_sbrt_90d``, which spans the first fraction
to 90 days after the last). A plan without one gets the QUANTEC default: >= 2 points within 90
days of the last fraction (Pan et al., Int J Radiat Oncol Biol Phys 2010;76(3 Suppl):S94-S100).
Pure functions of a :class:`ReviewData` and the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from safety_stream.events import Modality
from safety_stream.plan import (
    AllOf,
    AnyOf,
    ChildPughRise,
    Condition,
    MonitoringPlan,
    NoneOf,
    SameDraw,
    Window,
)
from safety_stream.projections.state import PatientState
from safety_stream.projections.windows import window_span
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import PatientDetail

SBRT = Modality.RADIOTHERAPY.value
DEFAULT_RISE = 2
DEFAULT_WINDOW = Window(anchor="last_exposure", modality=Modality.RADIOTHERAPY, days=90)
CLASSES = ("A", "B", "C")


@dataclass(frozen=True, slots=True)
class RiseDefinition:
    """What counts as a Child-Pugh rise, and where it comes from."""

    points: int
    window: Window
    source: str  # "composite <name>, window <name>" or the default's citation


@dataclass(frozen=True, slots=True)
class ChildPughPoint:
    day: int  # calendar days from the first SBRT fraction (negative: before it)
    on: date
    score: int
    child_pugh_class: str


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One irradiated patient's Child-Pugh scores around SBRT."""

    patient_id: str
    site_id: str
    first_fraction: date
    last_fraction: date
    fractions: int
    points: tuple[ChildPughPoint, ...]
    baseline: int | None  # the last score before the first fraction
    baseline_class: str | None
    worst_rise: int | None  # highest later score minus baseline (None: cannot be judged)
    worst_class: str | None  # the worst class from the first fraction on
    rose_in_window: bool  # a rise of at least the definition's points inside its window

    @property
    def class_change(self) -> str | None:
        if self.baseline_class is None or self.worst_class is None:
            return None
        return f"{self.baseline_class} -> {self.worst_class}"


@dataclass(frozen=True, slots=True)
class ChildPughSummary:
    definition: RiseDefinition
    irradiated: int  # patients with at least one SBRT fraction
    with_baseline: int
    evaluable: int  # a baseline and at least one score from the first fraction on
    rose: int  # evaluable patients with the rise inside the window
    trajectories: tuple[Trajectory, ...]


def _rise_in(condition: Condition) -> ChildPughRise | None:
    if isinstance(condition, ChildPughRise):
        return condition
    parts: list[Condition] = []
    if isinstance(condition, AllOf):
        parts = condition.all_of
    elif isinstance(condition, AnyOf):
        parts = condition.any_of
    elif isinstance(condition, SameDraw):
        parts = condition.same_day
    elif isinstance(condition, NoneOf):  # a rise that excludes is not the plan's rise
        return None
    for part in parts:
        found = _rise_in(part)
        if found is not None:
            return found
    return None


def rise_definition(plan: MonitoringPlan) -> RiseDefinition:
    """The plan's Child-Pugh rise (points and window), else the QUANTEC default."""
    for name, composite in plan.composites.items():
        rise = _rise_in(composite.when)
        if rise is not None and composite.window is not None:
            return RiseDefinition(
                rise.child_pugh_rise,
                plan.windows[composite.window],
                f"plan composite '{name}', window '{composite.window}'",
            )
    return RiseDefinition(
        DEFAULT_RISE, DEFAULT_WINDOW, "default: QUANTEC liver (Pan et al. 2010), 90 days"
    )


def _worst_class(scores: list[str]) -> str | None:
    return max(scores, key=CLASSES.index) if scores else None


def trajectory(
    state: PatientState, detail: PatientDetail, definition: RiseDefinition
) -> Trajectory | None:
    """The patient's trajectory, or None when they never had an SBRT fraction."""
    fractions = [a.given_at for a in detail.administrations if a.modality == SBRT]
    if not fractions:
        return None
    first, last = min(fractions), max(fractions)
    scores = sorted(detail.child_pugh, key=lambda s: (s.assessed_at, s.position))
    before = [s for s in scores if s.assessed_at < first]
    later = [s for s in scores if s.assessed_at >= first]
    baseline = before[-1] if before else None
    span = window_span(state, definition.window)
    rose = (
        baseline is not None
        and span is not None
        and any(
            s.score - baseline.score >= definition.points and span.holds(s.assessed_at)
            for s in later
        )
    )
    return Trajectory(
        patient_id=detail.patient_id,
        site_id=detail.site_id,
        first_fraction=first.date(),
        last_fraction=last.date(),
        fractions=len(fractions),
        points=tuple(
            ChildPughPoint(
                (s.assessed_at.date() - first.date()).days,
                s.assessed_at.date(),
                s.score,
                s.child_pugh_class,
            )
            for s in scores
        ),
        baseline=None if baseline is None else baseline.score,
        baseline_class=None if baseline is None else baseline.child_pugh_class,
        worst_rise=(max(s.score for s in later) - baseline.score if baseline and later else None),
        worst_class=_worst_class([s.child_pugh_class for s in later]),
        rose_in_window=rose,
    )


def child_pugh_summary(data: ReviewData, plan: MonitoringPlan) -> ChildPughSummary:
    """Every irradiated patient's trajectory (enrolment order) and the pooled counts."""
    definition = rise_definition(plan)
    found = [trajectory(state, detail, definition) for state, detail in data.patients()]
    trajectories = tuple(t for t in found if t is not None)
    return ChildPughSummary(
        definition=definition,
        irradiated=len(trajectories),
        with_baseline=sum(t.baseline is not None for t in trajectories),
        evaluable=sum(t.worst_rise is not None for t in trajectories),
        rose=sum(t.rose_in_window for t in trajectories),
        trajectories=trajectories,
    )
