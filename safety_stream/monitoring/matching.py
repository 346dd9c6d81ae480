"""What a rule counts, decided for one patient or one AE from the projection state.

Pure functions of the state and the monitoring clock (the latest time the log has reached).
Patients are counted, not events: a patient counts for a rule when at least one current AE
matches the rule's filter (or a composite of the plan holds for them) inside the rule's window.
Retracted AEs never count; an AE counts at its current grade and attribution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from uuid import UUID

from safety_stream.events import ATTRIBUTION_RANK, Attribution, Modality
from safety_stream.plan import (
    AdverseEventMatch,
    AllOf,
    AnyOf,
    ChildPughRise,
    Composite,
    Condition,
    EventFilter,
    LabAboveUln,
    LabBelowUln,
    MonitoringPlan,
    NoneOf,
    Population,
    SameDraw,
)
from safety_stream.projections.state import AeState, PatientState
from safety_stream.projections.windows import Span, left_at, window_span

ALL_MODALITIES = tuple(m.value for m in Modality)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One patient under one counting rule.

    ``evaluable`` decides n for whole-patient counting; it never depends on ``counted``: with a
    window, a patient becomes evaluable when the window has fully elapsed (``evaluable_from``),
    event or not. ``left_early`` marks a patient who left before the window's end without a
    counted event: never evaluable, listed as such. ``span`` and ``left_at`` let a
    time-weighted rule weigh the follow-up so far.
    """

    exposed: bool
    evaluable: bool
    counted: tuple[UUID | str, ...]  # evidence: AE ids and "composite:<name>" entries
    evaluable_from: datetime | None  # when the whole window will have been followed
    left_early: bool = False
    span: Span | None = None
    left_at: datetime | None = None

    def weight(self, clock: datetime) -> float:
        """TITE weight at ``clock``: follow-up / window, 1 when complete or at a counted event."""
        if self.counted or self.span is None:
            return 1.0 if self.exposed else 0.0
        end = min(clock, self.span.end, self.left_at or self.span.end)
        length = (self.span.end - self.span.start).total_seconds()
        if length <= 0:
            return 1.0
        return min(1.0, max(0.0, (end - self.span.start).total_seconds() / length))


NOT_EXPOSED = Verdict(False, False, (), None)


def ae_matches(ae: AeState, match: EventFilter) -> bool:
    """Whether a current AE matches a rule's term/SOC, grade, attribution and irAE filter."""
    if ae.status == "retracted" or ae.worst < match.min_grade:
        return False
    if (match.terms or match.socs) and not (ae.ctcae_term in match.terms or ae.soc in match.socs):
        return False
    if match.immune_related is not None and ae.immune_related != match.immune_related:
        return False
    modalities = ALL_MODALITIES if match.related_to == "any" else match.related_to
    threshold = ATTRIBUTION_RANK[match.min_attribution]
    # StrEnum members hash and compare as their values: the rank table takes the stored strings
    return any(ATTRIBUTION_RANK[ae.attribution[m]] >= threshold for m in modalities)


def condition_holds(
    condition: Condition, patient: PatientState, aes: list[AeState], span: Span | None
) -> bool:
    """Whether a composite's condition holds for a patient inside ``span`` (all time if None).

    Baselines are the last value before the span opens (for a window anchored on SBRT: the
    last before the first fraction), by clinical time, whatever order they were logged in.
    """
    inside = span.holds if span is not None else (lambda _moment: True)
    if isinstance(condition, LabAboveUln):
        return _lab_above(condition, patient, span, inside)
    if isinstance(condition, AdverseEventMatch):
        return any(_ae_matches(condition, ae, span) for ae in aes)
    if isinstance(condition, NoneOf):
        return not any(condition_holds(part, patient, aes, span) for part in condition.none_of)
    if isinstance(condition, ChildPughRise):
        return _child_pugh_rose(condition, patient, span, inside)
    if isinstance(condition, LabBelowUln):
        test = condition.lab.value
        return any(
            name == test and ratio < condition.below_uln and inside(when)
            for name, ratio, when in patient.lab_history
        )
    if isinstance(condition, SameDraw):
        return _same_draw(condition, patient, aes, span, inside)
    if isinstance(condition, AllOf):
        return all(condition_holds(part, patient, aes, span) for part in condition.all_of)
    assert isinstance(condition, AnyOf)
    return any(condition_holds(part, patient, aes, span) for part in condition.any_of)


Inside = Callable[[datetime], bool]


def _lab_above(
    condition: LabAboveUln, patient: PatientState, span: Span | None, inside: Inside
) -> bool:
    test = condition.lab.value
    values = sorted((when, ratio) for name, ratio, when in patient.lab_history if name == test)
    threshold = condition.above_uln
    if span is not None and condition.baseline_abnormal_times is not None:
        before = [ratio for when, ratio in values if when < span.start]
        if before and before[-1] > condition.above_uln:
            threshold = before[-1] * condition.baseline_abnormal_times
    return any(ratio > threshold and inside(when) for when, ratio in values)


def _ae_matches(condition: AdverseEventMatch, ae: AeState, span: Span | None) -> bool:
    return (
        ae.status != "retracted"
        and ae.ctcae_term in condition.ae_terms
        and ae.worst >= condition.min_grade
        and (span is None or span.holds_date(ae.onset_date))
        and (condition.immune_related is None or ae.immune_related == condition.immune_related)
        and (condition.related_only_to is None or _related_only_to(ae, condition.related_only_to))
    )


def _child_pugh_rose(
    condition: ChildPughRise, patient: PatientState, span: Span | None, inside: Inside
) -> bool:
    history = sorted((when, score) for score, when in patient.child_pugh_history)
    if span is None:
        baseline, later = (history[0][1], history[1:]) if history else (None, [])
    else:
        earlier = [score for when, score in history if when < span.start]
        baseline = earlier[-1] if earlier else None
        later = [(when, score) for when, score in history if when >= span.start]
    if baseline is None:
        return False  # no assessment before the window: a rise cannot be judged
    return any(
        score - baseline >= condition.child_pugh_rise and inside(when) for when, score in later
    )


def _same_draw(
    condition: SameDraw,
    patient: PatientState,
    aes: list[AeState],
    span: Span | None,
    inside: Inside,
) -> bool:
    """All parts hold on the labs of one day's draw."""
    days = sorted({when.date() for _, _, when in patient.lab_history if inside(when)})
    for day in days:
        drawn = [lab for lab in patient.lab_history if lab[2].date() == day]
        one_draw = replace(patient, lab_history=drawn)
        if all(condition_holds(part, one_draw, aes, span) for part in condition.same_day):
            return True
    return False


def _related_only_to(ae: AeState, modalities: list[Modality]) -> bool:
    """Attributed (possible or stronger) to some of ``modalities`` and to no other."""
    threshold = ATTRIBUTION_RANK[Attribution.POSSIBLE]
    related = {m for m, a in ae.attribution.items() if ATTRIBUTION_RANK[a] >= threshold}
    return bool(related) and related <= set(modalities)


def composite_holds(
    composite: Composite, plan: MonitoringPlan, patient: PatientState, aes: list[AeState]
) -> bool:
    span = None
    if composite.window is not None:
        span = window_span(patient, plan.windows[composite.window])
        if span is None:
            return False
    return condition_holds(composite.when, patient, aes, span)


def exposed(patient: PatientState, population: Population) -> bool:
    if population.exposed_to == "any":
        return bool(patient.exposure)
    # a StrEnum member is its own value as a dict key (and cheaper than .value)
    return population.exposed_to in patient.exposure


def judge_patient(
    plan: MonitoringPlan,
    population: Population,
    counts: EventFilter,
    patient: PatientState,
    matched: Mapping[UUID, date],
    aes: Callable[[], list[AeState]],
    clock: datetime,
) -> Verdict:
    """Exposure, evaluability and counted evidence of one patient for a counting rule.

    ``matched`` are the patient's AEs that match the rule's filter (id -> onset), kept up to
    date by the caller AE by AE; ``aes`` gives all the patient's AEs, for composites only.
    """
    if not exposed(patient, population):
        return NOT_EXPOSED
    span = None
    if population.window is not None:
        span = window_span(patient, plan.windows[population.window])
    if span is None:
        evidence: list[UUID | str] = list(matched)
    else:
        first, last = span.dates()
        evidence = [ae_id for ae_id, onset in matched.items() if first <= onset <= last]
    if counts.composites:
        every_ae = aes()
        for name in counts.composites:
            if composite_holds(plan.composites[name], plan, patient, every_ae):
                evidence.append(f"composite:{name}")
    if population.window is None:
        return Verdict(True, True, tuple(evidence), None)
    if span is None:  # exposed, but not (yet) to what anchors the window
        return Verdict(True, False, tuple(evidence), None)
    left = left_at(patient)
    left_early = left is not None and left < span.end and not evidence
    followed = span.end <= clock
    return Verdict(
        True,
        followed and not left_early,
        tuple(evidence),
        span.end,
        left_early,
        span,
        left,
    )


def counts_by_term(counts: EventFilter) -> bool:
    """Whether a rule counts AEs by their own fields (not only composites)."""
    return not counts.composites or bool(counts.terms or counts.socs)
