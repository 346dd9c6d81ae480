"""Lab-driven sentinels: a signal raised once per patient when a lab condition first holds.

For example a potential Hy's law case (ALT or AST > 3 x ULN with total bilirubin > 2 x ULN and
ALP < 2 x ULN in one draw; FDA guidance on drug-induced liver injury, 2009), or immune-mediated
hepatitis by ALT > 5 x ULN (CTCAE grade 3) in a patient on the PD-1 antibody. The derived
event's key is the id of the event that completed the condition, never a patient id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from safety_stream.events.derived import DerivedEvent, derive
from safety_stream.monitoring.matching import condition_holds
from safety_stream.plan import (
    AllOf,
    AnyOf,
    Condition,
    LabAboveUln,
    LabBelowUln,
    LabSentinelRule,
    SameDraw,
)
from safety_stream.projections.state import AeState, PatientState
from safety_stream.projections.windows import Span


class LabSignals:
    def __init__(self, rules: list[LabSentinelRule], plan_version: str) -> None:
        self.rules = rules
        self.version = plan_version
        self.raised: dict[str, list[str]] = {rule.id: [] for rule in rules}
        self._patients: dict[str, set[str]] = {rule.id: set() for rule in rules}
        # per rule, the patient each raised signal is about (in the order of ``raised``)
        self.raised_patients: dict[str, list[str]] = {rule.id: [] for rule in rules}
        self._lab_only = {rule.id for rule in rules if needs_labs(rule.when)}

    def observe(
        self,
        patient: PatientState,
        aes: Callable[[], list[AeState]],
        cause: str,
        clock: datetime,
        position: int,
    ) -> list[DerivedEvent]:
        """Signals that hold for ``patient`` now and were not raised for them before."""
        out = []
        for rule in self.rules:
            done = self._patients[rule.id]
            if patient.patient_id in done or (
                rule.id in self._lab_only and not patient.lab_history
            ):
                continue  # raised once per patient; a lab-only condition needs a lab
            since = _since(patient, rule)
            if since is None or not condition_holds(rule.when, patient, aes(), since):
                continue
            done.add(patient.patient_id)
            self.raised[rule.id].append(cause)
            self.raised_patients[rule.id].append(patient.patient_id)
            details = {"site_id": patient.site_id, "caused_by_event": cause}
            summary = f"{rule.title}: site {patient.site_id}"
            raised = derive(
                "sentinel.raised", rule.id, self.version, cause, clock, position, summary, details
            )
            out.append(raised)
        return out


FOREVER = datetime.max.replace(tzinfo=UTC)


def needs_labs(condition: Condition) -> bool:
    """Whether a condition can only hold for a patient with at least one lab value."""
    if isinstance(condition, LabAboveUln | LabBelowUln | SameDraw):
        return True
    if isinstance(condition, AllOf):
        return any(map(needs_labs, condition.all_of))
    if isinstance(condition, AnyOf):
        return all(map(needs_labs, condition.any_of))
    return False


def _since(patient: PatientState, rule: LabSentinelRule) -> Span | None:
    """From the first exposure the rule asks for (None: not exposed yet); labs drawn before it
    do not count. With no exposure asked for, every lab counts."""
    if rule.exposed_to == "any":
        return Span(datetime.min.replace(tzinfo=UTC), FOREVER)
    exposure = patient.exposure.get(str(rule.exposed_to))
    return None if exposure is None else Span(exposure.first, FOREVER)
