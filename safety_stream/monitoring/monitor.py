"""The monitor: folds each event (after the projection has applied it) into every rule's state
and returns the derived events that follow.

Time is the log's own: the monitoring clock is the latest ``recorded_at`` seen, so folding the
same log always gives the same conclusions, whenever and however often it runs. Things that
happen because time passes (a patient becomes evaluable when their window has been followed, a
report clock runs out) wait in a timer heap and fire when the clock passes them, in the order of
their times, so patients enter a rule's n one by one in the order their windows end.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

from safety_stream.events import (
    AE_AMENDMENTS,
    AdverseEventReported,
    AdverseEventUpdated,
    AlertTriaged,
    ChildPughAssessed,
    ClockTicked,
    DecisionOutcome,
    DsmbDecision,
    EventBase,
    LabResulted,
    PatientDied,
    PatientLostToFollowUp,
    PatientWithdrawn,
    SafetyReportSubmitted,
    TreatmentAdministered,
)
from safety_stream.events.derived import DerivedEvent, DerivedKind, derive
from safety_stream.monitoring.counting import (
    APPROACHED,
    CROSSED,
    OK,
    STATUS_NAMES,
    CountState,
    table_for,
)
from safety_stream.monitoring.lab_signals import LabSignals
from safety_stream.monitoring.matching import (
    ALL_MODALITIES,
    ae_matches,
    judge_patient,
)
from safety_stream.monitoring.report_clocks import ReportClock, ReportClocks
from safety_stream.monitoring.states import TimerKind
from safety_stream.plan import (
    BayesianRule,
    ExpeditedReportRule,
    LabSentinelRule,
    MonitoringPlan,
    PocockRule,
    SentinelRule,
)
from safety_stream.projections.log import PayloadLog
from safety_stream.projections.projector import Changes, Quarantine
from safety_stream.projections.state import AeAmendment, AeState, PatientState, TrialState

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INTEGRITY_RULE = "integrity"
"""The rule id of what the runtime derives about its own data (a quarantined event)."""
# Which events can change a patient's verdict: exposure (for the rules of that modality), AEs
# and leaving follow-up for every counting rule, labs and Child-Pugh scores only for rules that
# count composites; enrolment for none (a patient counts from their first exposure).
RELEVANT_TO_ALL = frozenset(
    {
        TreatmentAdministered,
        AdverseEventReported,
        *AE_AMENDMENTS,
        PatientWithdrawn,
        PatientDied,
        PatientLostToFollowUp,
    }
)
RELEVANT_TO_COMPOSITES = frozenset({LabResulted, ChildPughAssessed})
LAB_SIGNAL_EVENTS = frozenset(
    {LabResulted, ChildPughAssessed, TreatmentAdministered, AdverseEventReported, *AE_AMENDMENTS}
)


def _modalities_of(plan: MonitoringPlan, counter: CountState) -> set[str]:
    """The modalities whose administration can change a patient's verdict under a rule."""
    population = counter.rule.population
    exposed = str(population.exposed_to)
    found = set(ALL_MODALITIES) if exposed == "any" else {exposed}
    windows = [population.window]
    windows += [plan.composites[c].window for c in counter.rule.counts.composites]
    for name in windows:
        if name is not None and plan.windows[name].modality is not None:
            found.add(str(plan.windows[name].modality))
    return found


class Monitor:
    def __init__(self, plan: MonitoringPlan) -> None:
        self._start(plan)

    def _start(self, plan: MonitoringPlan) -> None:
        self.plan = plan
        self.version = plan.version
        self.clock = EPOCH
        self.counting = [
            CountState(rule, table_for(rule), index)
            for index, rule in enumerate(
                r for r in plan.rules if isinstance(r, BayesianRule | PocockRule)
            )
        ]
        self._composite_rules = [c for c in self.counting if c.rule.counts.composites]
        self._weighted = [c for c in self.counting if c.weighted]
        # which rules a treatment of each modality can change (exposure or a window's anchor)
        self._by_modality = {
            modality: [c for c in self.counting if modality in _modalities_of(plan, c)]
            for modality in ALL_MODALITIES
        }
        self.sentinels = [r for r in plan.rules if isinstance(r, SentinelRule)]
        self.lab_signals = LabSignals(
            [r for r in plan.rules if isinstance(r, LabSentinelRule)], plan.version
        )
        # sentinel id -> what raised it: AE ids, or the event that completed a lab signal
        self.raised: dict[str, list[str]] = {r.id: [] for r in self.sentinels}
        self.raised.update(self.lab_signals.raised)
        self.reporting = next((r for r in plan.rules if isinstance(r, ExpeditedReportRule)), None)
        self.report_clocks = ReportClocks(
            self.reporting, ZoneInfo(plan.trial.time_zone), plan.version
        )
        self._patient_aes: dict[str, list[UUID]] = {}
        self._timers: list[tuple[datetime, int, TimerKind, Any]] = []
        self._sequence = 0
        self._pending: set[tuple[datetime, TimerKind, Any]] = set()
        self.decisions: list[DsmbDecision] = []
        self.enrolment_paused_by: DsmbDecision | None = None
        # sentinel id -> how many of its raises the DSMB had seen at its last decision on it
        self.decided_raises: dict[str, int] = {}
        # log position -> a stored event the fold could not process (see ``quarantine``)
        self.quarantined: dict[int, Quarantine] = {}

    # -- folding ---------------------------------------------------------------------------

    def observe(
        self,
        state: TrialState,
        event: EventBase,
        position: int,
        received_at: datetime | None = None,
    ) -> list[DerivedEvent]:
        """The derived events that follow from ``event`` (already applied to ``state``).

        The clock is the server's: ``received_at`` (when the event was stored), never a time
        the site sent. Offline folds (dry runs, simulations) have no server: their clock is
        the events' ``recorded_at``.
        """
        out: list[DerivedEvent] = []
        moment = (received_at or event.recorded_at).astimezone(UTC)
        out += self.advance(state, moment, position)  # follow-up grew for everyone on study
        kind = type(event)
        if kind is DsmbDecision:
            self._decide(cast(DsmbDecision, event), position, out)
            return out
        if kind is ClockTicked or kind is AlertTriaged:  # time passed (above); nothing else
            return out
        if kind is AdverseEventReported:
            self._patient_aes.setdefault(event.patient_id, []).append(event.event_id)
        ae = self._affected_ae(state, event)
        self._judge_after(state, event, ae, position, out)
        if ae is not None:
            self._sentinels(ae, position, out)
            self._report_clocks_after(ae, event, moment, position, out)
        if self.lab_signals.rules and kind in LAB_SIGNAL_EVENTS:
            patient = state.patients.get(event.patient_id)
            if patient is not None:
                out += self.lab_signals.observe(
                    patient,
                    lambda: self._patient_ae_states(state, event.patient_id),
                    str(event.event_id),
                    self.clock,
                    position,
                )
        # again at the end: a late report can open a clock whose due time the log has passed
        self._fire_timers(state, position, out)
        return out

    def _affected_ae(self, state: TrialState, event: EventBase) -> AeState | None:
        """The AE ``event`` reports, amends or (a death citing it) makes fatal, if any."""
        kind = type(event)
        ae_id = None
        if kind is AdverseEventReported:
            ae_id = event.event_id
        elif kind in AE_AMENDMENTS:
            ae_id = cast(AeAmendment, event).ae_id
        elif kind is PatientDied:  # a death citing its AE makes that AE fatal
            ae_id = cast(PatientDied, event).related_ae_id
        return None if ae_id is None else state.aes.get(ae_id)

    def _judge_after(
        self,
        state: TrialState,
        event: EventBase,
        ae: AeState | None,
        position: int,
        out: list[DerivedEvent],
    ) -> None:
        """Judge the patient under the counting rules ``event`` may change."""
        kind = type(event)
        if ae is not None:
            # only rules whose matching AEs changed, or that look at AEs through composites
            changed = [c for c in self.counting if c.rematch(ae) or c.rule.counts.composites]
            self._judge(state, event.patient_id, position, out, changed)
        elif kind is TreatmentAdministered:
            modality = str(cast(TreatmentAdministered, event).treatment.modality)
            self._judge(state, event.patient_id, position, out, self._by_modality[modality])
        elif kind in RELEVANT_TO_ALL:
            self._judge(state, event.patient_id, position, out, self.counting)
        elif kind in RELEVANT_TO_COMPOSITES:
            self._judge(state, event.patient_id, position, out, self._composite_rules)

    def _report_clocks_after(
        self,
        ae: AeState,
        event: EventBase,
        moment: datetime,
        position: int,
        out: list[DerivedEvent],
    ) -> None:
        """Open, run or close the expedited-report clocks of ``ae`` after ``event``."""
        kind = type(event)
        if kind is SafetyReportSubmitted:
            out += self.report_clocks.on_submitted(
                ae, event.occurred_at.astimezone(UTC), self.clock, position, self._schedule
            )
            return
        out += self.report_clocks.on_ae(ae, moment, self.clock, position, self._schedule)
        # the SAE itself, or an update that makes the AE serious: the site's deadline
        if kind is AdverseEventReported or (
            kind is AdverseEventUpdated and cast(AdverseEventUpdated, event).seriousness
        ):
            recorded = event.recorded_at.astimezone(UTC)
            out += self.report_clocks.site_late(ae, recorded, moment, self.clock, position)

    def advance(self, state: TrialState, moment: datetime, position: int) -> list[DerivedEvent]:
        """Time passes to ``moment`` with no new event: windows complete, clocks run out."""
        out: list[DerivedEvent] = []
        moment = moment.astimezone(UTC)
        if moment > self.clock:
            self.clock = moment
            self._fire_timers(state, position, out)
            for counter in self._weighted:
                counter.reweigh(self.clock)
                self._transition(counter, position, out)
        return out

    def quarantine(
        self, quarantined: Quarantine, received_at: datetime | None
    ) -> list[DerivedEvent]:
        """A stored event the fold could not process: remembered (health, metrics, board) and
        announced to the safety officer, since monitoring did not see all of it."""
        self.quarantined[quarantined.position] = quarantined
        moment = self.clock if received_at is None else max(self.clock, received_at)
        return [
            derive(
                "event.quarantined",
                INTEGRITY_RULE,
                self.version,
                str(quarantined.position),
                moment.astimezone(UTC),
                quarantined.position,
                f"the stored {quarantined.event_type} event at log position "
                f"{quarantined.position} could not be processed ({quarantined.step}): "
                "monitoring goes on without it",
                {
                    "position": quarantined.position,
                    "event_type": quarantined.event_type,
                    "step": quarantined.step,
                    "error": quarantined.error,
                },
            )
        ]

    def rebuild(self, store: PayloadLog, upto: int) -> None:
        """Fold the log up to ``upto`` on a scratch state, discarding what it derives (those
        derived events were stored with the projection the first time)."""
        self._start(self.plan)
        scratch = TrialState()
        changes = Changes()
        for position, payload, stored_at in store.payloads(0, upto):
            changes.fold(scratch, payload, position, self, stored_at)
            changes.derived.clear()

    def _patient_ae_states(self, state: TrialState, patient_id: str) -> list[AeState]:
        return [state.aes[i] for i in self._patient_aes.get(patient_id, ()) if i in state.aes]

    def _judge(
        self,
        state: TrialState,
        patient_id: str,
        position: int,
        out: list[DerivedEvent],
        counters: list[CountState],
    ) -> None:
        patient = state.patients.get(patient_id)
        if patient is None or not counters:
            return
        for counter in counters:
            self._rejudge(state, counter, patient, position, out)

    def _rejudge(
        self,
        state: TrialState,
        counter: CountState,
        patient: PatientState,
        position: int,
        out: list[DerivedEvent],
    ) -> None:
        rule, patient_id = counter.rule, patient.patient_id
        verdict = judge_patient(
            self.plan,
            rule.population,
            rule.counts,
            patient,
            counter.matched.get(patient_id, {}),
            lambda: self._patient_ae_states(state, patient_id),
            self.clock,
        )
        counter.clock = self.clock
        counter.update(patient_id, verdict)
        if (
            verdict.exposed
            and not verdict.evaluable
            and verdict.evaluable_from is not None
            and verdict.evaluable_from > self.clock  # a leaver stays unevaluable: no new timer
        ):
            self._schedule(verdict.evaluable_from, TimerKind.EVALUABLE, (counter.index, patient_id))
        self._transition(counter, position, out)

    def _schedule(self, when: datetime, what: TimerKind, key: Any) -> None:
        if (when, what, key) in self._pending:  # the same patient, judged again: one timer
            return
        self._pending.add((when, what, key))
        self._sequence += 1
        heapq.heappush(self._timers, (when, self._sequence, what, key))

    def _fire_timers(self, state: TrialState, position: int, out: list[DerivedEvent]) -> None:
        while self._timers and self._timers[0][0] <= self.clock:
            when, _, what, key = heapq.heappop(self._timers)
            self._pending.discard((when, what, key))
            if what is TimerKind.EVALUABLE:
                index, patient_id = key
                patient = state.patients.get(patient_id)
                if patient is None:
                    continue
                self._rejudge(state, self.counting[index], patient, position, out)
            elif what is TimerKind.OVERDUE:
                out += self.report_clocks.on_timer(key, when, self.clock, position)

    # -- counting rules ---------------------------------------------------------------------

    def _transition(self, counter: CountState, position: int, out: list[DerivedEvent]) -> None:
        new = counter.assess()
        if counter.awaiting_decision:
            new = CROSSED  # latched: crossed until the DSMB decides, whatever later data do
        old = counter.status
        if new == old:
            return
        counter.status = new
        if new == CROSSED:
            counter.awaiting_decision = True
        kind: DerivedKind | None = None
        if new == CROSSED:
            kind = "boundary.crossed"
        elif old == CROSSED:
            kind = "boundary.cleared"
        elif new == APPROACHED and old == OK:
            kind = "boundary.approached"
        if kind is None:
            return
        ordinal = counter.transitions.get(kind, 0) + 1
        counter.transitions[kind] = ordinal
        rule = counter.rule
        details = counter.evidence()
        bound = details["boundary"]
        verb = {
            "boundary.crossed": "crossed its boundary",
            "boundary.cleared": f"is back under its boundary ({STATUS_NAMES[new]})",
            "boundary.approached": "is one counted patient from its boundary",
        }[kind]
        if counter.weighted:
            n = f"{counter.n:.1f} patient-windows of follow-up"
        else:
            n = f"{int(counter.n)} evaluable patients"
            first = counter.crossed_at
            if first is not None and first < counter.n and new == CROSSED:
                n += f" (reached at n = {first}: {counter.counted_among_first(first)} counted)"
        summary = f"{rule.title}: {verb} - {counter.x} of {n}"
        if bound is not None:
            summary += f" (stop at {bound})"
        timely = counter.crossing_time() if new == CROSSED else None
        if timely is not None and self.clock - timely > timedelta(days=1):  # the data came late
            summary += (
                f"; with timely data it would have been seen on {timely.date()}, the data "
                f"arrived by {self.clock.date()}"
            )
        out.append(
            derive(
                kind, rule.id, self.version, str(ordinal), self.clock, position, summary, details
            )
        )

    # -- DSMB decisions ---------------------------------------------------------------------

    def _decide(self, decision: DsmbDecision, position: int, out: list[DerivedEvent]) -> None:
        """A decision releases the latch of the rules it answers (each then shows its state
        under the current data) and pauses or resumes enrolment."""
        self.decisions.append(decision)
        answered = set(decision.answers)
        for counter in self.counting:
            if counter.rule.id in answered:
                counter.awaiting_decision = False
                self._transition(counter, position, out)
        for rule_id, raised in self.raised.items():
            if rule_id in answered:
                self.decided_raises[rule_id] = len(raised)
        if decision.outcome == DecisionOutcome.PAUSE_ENROLMENT:
            self.enrolment_paused_by = decision
        elif decision.outcome == DecisionOutcome.RESUME_ENROLMENT:
            self.enrolment_paused_by = None

    @property
    def clocks(self) -> dict[UUID, ReportClock]:
        """The expedited-report clock of every qualifying case, by AE id."""
        return self.report_clocks.clocks

    def next_due(self) -> datetime | None:
        """The earliest time something falls due (a window's end, a report deadline)."""
        return self._timers[0][0] if self._timers else None

    def awaiting_decision(self, rule_id: str) -> bool:
        """A crossed rule or a raised sentinel the DSMB has not decided on yet."""
        counter = next((c for c in self.counting if c.rule.id == rule_id), None)
        if counter is not None:
            return counter.awaiting_decision
        return len(self.raised.get(rule_id, ())) > self.decided_raises.get(rule_id, 0)

    def last_decision(self, rule_id: str) -> DsmbDecision | None:
        return next((d for d in reversed(self.decisions) if rule_id in d.answers), None)

    # -- sentinels and report clocks --------------------------------------------------------

    def _sentinels(self, ae: AeState, position: int, out: list[DerivedEvent]) -> None:
        for rule in self.sentinels:
            key = str(ae.ae_id)
            if key in self.raised[rule.id] or not ae_matches(ae, rule.match):
                continue
            self.raised[rule.id].append(key)
            summary = f"{rule.title}: {ae.ctcae_term}, grade {ae.worst}, site {ae.site_id}"
            details = {
                "ae_id": key,
                "ctcae_term": ae.ctcae_term,
                "soc": ae.soc,
                "grade": ae.worst,  # the worst over the AE's course
                "current_grade": ae.grade,
                "site_id": ae.site_id,
                "attribution": dict(ae.attribution),
                "immune_related": ae.immune_related,
                "seriousness": list(ae.seriousness),
            }
            out.append(
                derive(
                    "sentinel.raised",
                    rule.id,
                    self.version,
                    key,
                    self.clock,
                    position,
                    summary,
                    details,
                )
            )
