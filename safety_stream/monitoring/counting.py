"""One counting rule (Bayesian or Pocock-type) kept up to date patient by patient.

The rule holds every patient's verdict and the two numbers that matter: n evaluable patients
and x counted among them. A changed patient adjusts n and x by the difference of their old and
new verdicts, and the boundary at n is looked up in a table computed once: O(1) per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from safety_stream.monitoring.boundaries import (
    BoundaryTable,
    bayes_table,
    pocock_table,
    posterior_above,
)
from safety_stream.monitoring.matching import NOT_EXPOSED, Verdict, ae_matches, counts_by_term
from safety_stream.plan import BayesianRule, PocockRule
from safety_stream.projections.state import AeState
from safety_stream.stats import binomial_pmf

OK, APPROACHED, CROSSED = 0, 1, 2
STATUS_NAMES = {OK: "ok", APPROACHED: "approached", CROSSED: "crossed"}

CountingRule = BayesianRule | PocockRule


def table_for(rule: CountingRule) -> BoundaryTable:
    if isinstance(rule, BayesianRule):
        return bayes_table(rule.max_n, rule.theta, rule.cutoff, rule.prior, rule.min_n)
    looks = tuple(rule.looks) if rule.looks is not None else None
    return pocock_table(rule.max_n, rule.p0, rule.alpha, looks)


@dataclass
class CountState:
    rule: CountingRule
    table: BoundaryTable
    index: int  # position among the plan's counting rules
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    # per patient, the AEs matching the rule's filter (id -> onset date), updated AE by AE
    matched: dict[str, dict[UUID, date]] = field(default_factory=dict)
    exposed: int = 0
    n: int = 0
    x: int = 0
    status: int = OK
    transitions: dict[str, int] = field(default_factory=dict)  # kind -> how many emitted
    # the observed path: (n, x) after every change, from (0, 0); what boundary plots draw
    path: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])

    def rematch(self, ae: AeState) -> None:
        """Re-decide whether one AE matches the filter, after it was reported or amended."""
        if not counts_by_term(self.rule.counts):
            return
        if ae_matches(ae, self.rule.counts):
            self.matched.setdefault(ae.patient_id, {})[ae.ae_id] = ae.onset_date
        else:
            self.matched.get(ae.patient_id, {}).pop(ae.ae_id, None)

    def update(self, patient_id: str, verdict: Verdict) -> None:
        old = self.verdicts.get(patient_id, NOT_EXPOSED)
        self.exposed += verdict.exposed - old.exposed
        self.n += verdict.evaluable - old.evaluable
        self.x += (verdict.evaluable and bool(verdict.counted)) - (
            old.evaluable and bool(old.counted)
        )
        if verdict.exposed:
            self.verdicts[patient_id] = verdict
        else:
            self.verdicts.pop(patient_id, None)
        if self.path[-1] != (self.n, self.x):
            self.path.append((self.n, self.x))

    def boundary(self) -> int | None:
        return self.table.at(self.n)

    def assess(self) -> int:
        """Crossed at the boundary; approached when one more counted patient would cross."""
        bound = self.boundary()
        if bound is not None and self.x >= bound:
            return CROSSED
        following = self.table.at(self.n + 1)
        if self.x >= 1 and following is not None and self.x + 1 >= following:
            return APPROACHED
        return OK

    def counted_evidence(self) -> list[str]:
        return sorted(str(i) for v in self.verdicts.values() if v.evaluable for i in v.counted)

    def evidence(self) -> dict[str, Any]:
        """The numbers behind the rule's state, as a DSMB member would want to check them."""
        rule = self.rule
        bound = self.boundary()
        details: dict[str, Any] = {
            "n": self.n,
            "x": self.x,
            "exposed": self.exposed,
            "boundary": bound,
            "margin": None if bound is None else bound - self.x,
            "max_n": rule.max_n,
            "beyond_planned_n": self.n > rule.max_n,
            "status": STATUS_NAMES[self.status],
            "counted_ae_ids": self.counted_evidence(),
        }
        if isinstance(rule, BayesianRule):
            details["posterior_probability"] = posterior_above(
                rule.theta, self.x, self.n, rule.prior
            )
            details["theta"], details["cutoff"] = rule.theta, rule.cutoff
        else:
            details["nominal_level"] = self.table.nominal_level
            details["p_value"] = (
                sum(binomial_pmf(k, self.n, rule.p0) for k in range(self.x, self.n + 1))
                if self.n
                else 1.0
            )
            details["p0"] = rule.p0
        return details
