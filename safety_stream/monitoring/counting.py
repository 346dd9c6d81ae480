"""One counting rule (Bayesian or Pocock-type) kept up to date patient by patient.

The rule holds every patient's verdict and the two numbers that matter: n evaluable patients
and x counted among them. A changed patient adjusts n and x by the difference of their old and
new verdicts, and the boundary at n is looked up in a table computed once. A patient who enters
n last (the usual case) costs O(1); a change to a patient already counted, or one who enters
out of clinical order, makes the first crossing be found again, O(n) once. Time-weighted rules
sum their patients' weights, O(patients), whenever their clock moves.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from safety_stream.boundaries import (
    BoundaryTable,
    bayes_boundary,
    bayes_table,
    pocock_table,
    posterior_above,
    stops,
)
from safety_stream.monitoring.matching import NOT_EXPOSED, Verdict, ae_matches, counts_by_term
from safety_stream.plan import BayesianRule, PocockRule
from safety_stream.projections.state import AeState
from safety_stream.stats import binomial_pmf

OK, APPROACHED, CROSSED, BEYOND = 0, 1, 2, 3
STATUS_NAMES = {OK: "ok", APPROACHED: "approached", CROSSED: "crossed", BEYOND: "beyond_planned_n"}

CountingRule = BayesianRule | PocockRule


def table_for(rule: CountingRule) -> BoundaryTable:
    if isinstance(rule, BayesianRule):
        return bayes_table(rule.max_n, rule.theta, rule.cutoff, rule.prior, rule.min_n)
    looks = tuple(rule.looks) if rule.looks is not None else None
    return pocock_table(rule.max_n, rule.p0, rule.alpha, looks)


@dataclass
class CountState:
    """One rule's n and x, and the order in which patients became evaluable.

    Whole-patient rules (``completed``) are judged at their looks only: a continuous rule has a
    look at every n from its first, a group-sequential one at its listed looks. At look L the
    count is that of the first L patients to become evaluable, so a look is judged on exactly
    the patients it was planned for, whatever arrived after. Between looks the state is that of
    the last look. Past max_n a Pocock rule is ``beyond_planned_n`` (its table ends there); a
    Bayesian rule goes on with the same posterior rule. Time-weighted rules are judged on the
    posterior with n = the sum of the patients' weights at the monitor's clock.
    """

    rule: CountingRule
    table: BoundaryTable
    index: int  # position among the plan's counting rules
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    # per patient, the AEs matching the rule's filter (id -> onset date), updated AE by AE
    matched: dict[str, dict[UUID, date]] = field(default_factory=dict)
    exposed: int = 0
    n: float = 0
    x: int = 0
    left_early: int = 0  # left before the end of the window without a counted event
    status: int = OK
    transitions: dict[str, int] = field(default_factory=dict)  # kind -> how many emitted
    # the observed path: (n, x) after every change, from (0, 0); what boundary plots draw
    path: list[tuple[float, int]] = field(default_factory=lambda: [(0, 0)])
    # evaluable patients in clinical order: (when their window ended, patient id)
    order: list[tuple[datetime, str]] = field(default_factory=list)
    keys: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    crossed_at: int | None = None  # the first look at which the boundary is reached
    stale: bool = False  # a patient already in the order changed: find crossed_at again
    clock: datetime | None = None  # the monitor's clock when patients were last judged
    awaiting_decision: bool = False  # crossed, and the DSMB has not decided on it since

    def __post_init__(self) -> None:
        # the boundary at each look (None where no x stops there); absent: not a look
        self._bounds = dict(zip(self.table.looks, self.table.stop_if_at_least, strict=True))

    @property
    def weighted(self) -> bool:
        return self.rule.population.evaluability == "time_weighted"

    def rematch(self, ae: AeState) -> bool:
        """Re-decide whether one AE matches the filter, after it was reported or amended;
        whether the patient's matching AEs changed."""
        if not counts_by_term(self.rule.counts):
            return False
        mine = self.matched.get(ae.patient_id)
        before = None if mine is None else mine.get(ae.ae_id)
        if ae_matches(ae, self.rule.counts):
            self.matched.setdefault(ae.patient_id, {})[ae.ae_id] = ae.onset_date
            return before != ae.onset_date
        if mine is not None:
            mine.pop(ae.ae_id, None)
        return before is not None

    def update(self, patient_id: str, verdict: Verdict) -> None:
        old = self.verdicts.get(patient_id, NOT_EXPOSED)
        self.exposed += verdict.exposed - old.exposed
        self.left_early += verdict.left_early - old.left_early
        if verdict.exposed:
            self.verdicts[patient_id] = verdict
        else:
            self.verdicts.pop(patient_id, None)
        if self.weighted:
            self.x += (verdict.exposed and bool(verdict.counted)) - (
                old.exposed and bool(old.counted)
            )
            self.reweigh(self.clock)
            return
        self.n += verdict.evaluable - old.evaluable
        self.x += (verdict.evaluable and bool(verdict.counted)) - (
            old.evaluable and bool(old.counted)
        )
        if verdict.evaluable and not old.evaluable:
            self._enter(patient_id, verdict)
        elif old.evaluable and not verdict.evaluable:
            self.order.remove(self.keys.pop(patient_id))
            self.stale = True
        elif verdict.evaluable and bool(verdict.counted) != bool(old.counted):
            self.stale = True
        if self.rule.population.window is None:
            self.stale = True
        self._trace()

    def _enter(self, patient_id: str, verdict: Verdict) -> None:
        """A patient becomes evaluable: in clinical order, usually last (their window ended
        after everyone else's); a late one goes where their window's end puts them."""
        when = verdict.evaluable_from or self.clock or datetime.min.replace(tzinfo=UTC)
        key = (when, patient_id)
        self.keys[patient_id] = key
        if self.order and key < self.order[-1]:
            insort(self.order, key)
            self.stale = True
            return
        self.order.append(key)
        if self.crossed_at is None and not self.stale:
            bound = self.bound_at(len(self.order))
            if bound is not None and self.x >= bound:
                self.crossed_at = len(self.order)

    def bound_at(self, look: int) -> int | None:
        """The boundary if ``look`` patients is a look of the rule (a Bayesian rule looks at
        every n past its planned maximum too, with the same posterior rule)."""
        rule = self.rule
        if isinstance(rule, BayesianRule) and look > rule.max_n:
            return bayes_boundary(look, rule.theta, rule.cutoff, rule.prior)
        return self._bounds.get(look)

    def _first_crossing(self) -> int | None:
        if self.rule.population.window is None:
            # no window, no completed patients: every exposed patient counts at once and can
            # still have the event, so the rule is judged on the current count alone
            n = int(self.n)
            bound = self.bound_at(n)
            return n if bound is not None and self.x >= bound else None
        counted = 0
        for look, (_, patient_id) in enumerate(self.order, 1):
            counted += bool(self.verdicts[patient_id].counted)
            bound = self.bound_at(look)
            if bound is not None and counted >= bound:
                return look
        return None

    def reweigh(self, clock: datetime | None) -> None:
        """Time-weighted rules: n at ``clock`` (the follow-up of every exposed patient)."""
        if not self.weighted or clock is None:
            return
        self.clock = clock
        self.n = round(math.fsum(v.weight(clock) for v in self.verdicts.values()), 6)
        self._trace()

    def _trace(self) -> None:
        if self.path[-1] != (self.n, self.x):
            self.path.append((self.n, self.x))

    def look(self) -> int | None:
        """The last look reached (whole-patient rules), None before the first."""
        n = int(self.n)
        if isinstance(self.rule, BayesianRule) and n > self.rule.max_n:
            return n
        index = bisect_right(self.table.looks, n) - 1
        return None if index < 0 else self.table.looks[index]

    def next_look(self) -> int | None:
        n = int(self.n)
        if isinstance(self.rule, BayesianRule) and n >= self.rule.max_n:
            return n + 1
        index = bisect_right(self.table.looks, n)
        return self.table.looks[index] if index < len(self.table.looks) else None

    def crossing_time(self) -> datetime | None:
        """When the last patient of the crossing look completed their window: when the crossing
        is seen with timely data, however late the data arrived."""
        if self.crossed_at is None or self.crossed_at > len(self.order):
            return None
        return self.order[self.crossed_at - 1][0]

    def counted_among_first(self, look: int) -> int:
        return sum(bool(self.verdicts[p].counted) for _, p in self.order[:look])

    def boundary(self) -> int | None:
        """The boundary of the look in force: the last look reached."""
        if self.weighted:
            return None
        look = self.look()
        return None if look is None else self.bound_at(look)

    def assess(self) -> int:
        """Crossed once the boundary is reached at a look (it stays crossed as n grows, unless
        corrected data undo it); approached when one more counted patient would cross at the
        next look; past max_n without a crossing, a Pocock rule is beyond its planned n."""
        if self.weighted:
            return self._assess_weighted()
        if self.stale:
            self.crossed_at, self.stale = self._first_crossing(), False
        if self.crossed_at is not None:
            return CROSSED
        beyond = self.n > self.rule.max_n
        upcoming = self.next_look()
        following = None if upcoming is None else self.bound_at(upcoming)
        if self.x >= 1 and following is not None and self.x + 1 >= following:
            return APPROACHED
        return BEYOND if beyond else OK

    def _assess_weighted(self) -> int:
        rule = self.rule
        assert isinstance(rule, BayesianRule)
        if self.n + 1e-9 < rule.min_n:
            return OK
        if stops(rule.theta, rule.cutoff, self.x, self.n, rule.prior):
            return CROSSED
        if self.x >= 1 and stops(rule.theta, rule.cutoff, self.x + 1, self.n + 1, rule.prior):
            return APPROACHED
        return BEYOND if self.n > rule.max_n else OK

    def counted_evidence(self) -> list[str]:
        counts = self.weighted
        return sorted(
            str(i) for v in self.verdicts.values() if v.evaluable or counts for i in v.counted
        )

    def evidence(self) -> dict[str, Any]:
        """The numbers behind the rule's state, as a DSMB member would want to check them."""
        rule = self.rule
        bound = self.boundary()
        details: dict[str, Any] = {
            "n": self.n,
            "x": self.x,
            "exposed": self.exposed,
            "evaluability": rule.population.evaluability,
            "not_evaluable_left_early": self.left_early,
            "boundary": bound,
            "margin": None if bound is None else bound - self.x,
            "max_n": rule.max_n,
            "beyond_planned_n": self.n > rule.max_n,
            "crossed_at_n": self.crossed_at,
            # when the crossing look's data were complete: the time it is seen with timely data
            "crossed_with_data_of": _iso(self.crossing_time()),
            "status": STATUS_NAMES[self.status],
            "counted_ae_ids": self.counted_evidence(),
        }
        if not self.weighted and len(self.table.looks) < rule.max_n:
            details["looks"] = list(self.table.looks)
            details["next_look"] = self.next_look()
        if isinstance(rule, BayesianRule):
            details["posterior_probability"] = posterior_above(
                rule.theta, self.x, self.n, rule.prior
            )
            details["theta"], details["cutoff"] = rule.theta, rule.cutoff
        else:
            n = int(self.n)
            details["nominal_level"] = self.table.nominal_level
            details["p_value"] = (
                sum(binomial_pmf(k, n, rule.p0) for k in range(self.x, n + 1)) if n else 1.0
            )
            details["p0"] = rule.p0
        return details


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
