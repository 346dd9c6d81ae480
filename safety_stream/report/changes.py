"""What changed between the previous report's cut-off and this one's.

Both sides are snapshots of the same log, so "new" is exact: patients and AEs present now and
not then. Patients can also leave a count (an AE downgraded, re-attributed or retracted); those
are shown separately rather than netted out.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from safety_stream.events import ATTRIBUTION_RANK, Attribution, Modality
from safety_stream.monitoring.status import RuleStatus, rule_statuses
from safety_stream.projections.state import TrialState
from safety_stream.projections.toxicity import SEVERE
from safety_stream.report.listings import SaeRow, death_summary, sae_rows, serious_aes
from safety_stream.report.snapshot import Snapshot


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ModalityChange(_Out):
    modality: str
    exposed_before: int
    exposed_now: int
    severe_before: int  # patients with a related grade >= 3 AE
    severe_now: int
    newly_severe: int
    no_longer_severe: int


class RuleChange(_Out):
    rule_id: str
    title: str
    kind: str
    before: str
    now: str
    n_before: int | None
    x_before: int | None
    n_now: int | None
    x_now: int | None
    raised_before: int | None
    raised_now: int | None

    @property
    def changed(self) -> bool:
        return (self.before, self.n_before, self.x_before, self.raised_before) != (
            self.now,
            self.n_now,
            self.x_now,
            self.raised_now,
        )


class DerivedRow(_Out):
    occurred_at: datetime
    kind: str
    severity: str
    rule_id: str
    summary: str


class DerivedCount(_Out):
    rule_id: str
    kind: str
    count: int


class ReportChanges(_Out):
    since: datetime
    since_position: int
    since_chain_head: str
    enrolled_before: int
    enrolled_now: int
    deaths_before: int
    deaths_now: int
    saes_before: int
    saes_now: int
    new_saes: int
    new_sae_rows: list[SaeRow] | None  # None in the open report
    modalities: list[ModalityChange]
    rules: list[RuleChange]
    derived: list[DerivedRow] | None  # None in the open report (summaries name sites)
    derived_counts: list[DerivedCount]


def severe_patients(state: TrialState, modality: Modality, threshold: Attribution) -> set[str]:
    """Exposed patients with a current, related grade >= 3 AE (as the toxicity tables count)."""
    rank = ATTRIBUTION_RANK[threshold]
    return {
        ae.patient_id
        for ae in state.aes.values()
        if ae.status != "retracted"
        and ae.worst >= SEVERE
        and ATTRIBUTION_RANK[Attribution(ae.attribution[modality.value])] >= rank
        and (patient := state.patients.get(ae.patient_id)) is not None
        and modality.value in patient.exposure
    }


def _exposed(state: TrialState, modality: Modality) -> int:
    return sum(modality.value in p.exposure for p in state.patients.values())


def _rule_change(before: RuleStatus, now: RuleStatus) -> RuleChange:
    return RuleChange(
        rule_id=now.rule_id,
        title=now.title,
        kind=now.kind,
        before=before.status,
        now=now.status,
        n_before=before.n,
        x_before=before.x,
        n_now=now.n,
        x_now=now.x,
        raised_before=before.raised,
        raised_now=now.raised,
    )


def _derived_counts(derived: list[DerivedRow]) -> list[DerivedCount]:
    counts: dict[tuple[str, str], int] = {}
    for row in derived:
        counts[(row.rule_id, row.kind)] = counts.get((row.rule_id, row.kind), 0) + 1
    return [DerivedCount(rule_id=r, kind=k, count=c) for (r, k), c in sorted(counts.items())]


def report_changes(
    before: Snapshot, now: Snapshot, threshold: Attribution, closed: bool
) -> ReportChanges:
    modalities = []
    for modality in Modality:
        then = severe_patients(before.state, modality, threshold)
        current = severe_patients(now.state, modality, threshold)
        modalities.append(
            ModalityChange(
                modality=modality.value,
                exposed_before=_exposed(before.state, modality),
                exposed_now=_exposed(now.state, modality),
                severe_before=len(then),
                severe_now=len(current),
                newly_severe=len(current - then),
                no_longer_severe=len(then - current),
            )
        )
    serious_before = {str(a.ae_id) for a in serious_aes(before)}
    new_rows = [r for r in sae_rows(now, threshold) if r.ae_id not in serious_before]
    old_statuses = {s.rule_id: s for s in rule_statuses(before.monitor)}
    derived = [
        DerivedRow(
            occurred_at=d.occurred_at,
            kind=d.kind,
            severity=d.severity,
            rule_id=d.rule_id,
            summary=d.summary,
        )
        for d in now.derived
        if d.caused_by > before.position
    ]
    return ReportChanges(
        since=before.moment,
        since_position=before.position,
        since_chain_head=before.chain_head,
        enrolled_before=len(before.state.patients),
        enrolled_now=len(now.state.patients),
        deaths_before=death_summary(before, threshold).patients,
        deaths_now=death_summary(now, threshold).patients,
        saes_before=len(serious_before),
        saes_now=len(serious_aes(now)),
        new_saes=len(new_rows),
        new_sae_rows=new_rows if closed else None,
        modalities=modalities,
        rules=[
            _rule_change(old_statuses[s.rule_id], s)
            for s in rule_statuses(now.monitor)
            if s.rule_id in old_statuses
        ],
        derived=derived if closed else None,
        derived_counts=_derived_counts(derived),
    )
