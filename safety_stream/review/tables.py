"""The AE tables a DMC reviews first: the TEAE overview, incidence by SOC and term, AEs of
special interest (the plan's ``aesi`` groups) and AEs leading to discontinuation.

Counting rules (the footnotes print them, as gtreg does):

- Treatment-emergent AEs only (the overview, incidence and AESI tables): onset on or after the
  patient's first dose of any study treatment (UTC date of the first administration). Sites
  report AEs from enrolment: an AE with onset before the first dose, or of a patient never
  dosed, is not counted; each footnote says how many there are (``pre_dose_note``). A retracted
  AE never counts. An AE's grade is its worst over its course (5 once it was fatal), what the
  rules count.
- A patient counts once per row, at the worst grade of the AEs that row counts.
- The denominator is the safety population: every patient with at least one dose of any
  study treatment (a patient never dosed has no treatment-emergent AE to count).
- "Related" means attributed at least the plan's ``related_means_at_least`` to a modality (any
  modality, or the one the column names).
- Dose modification: an AE with action taken ``dose_reduced`` or ``drug_interrupted``.
- Discontinuation: an AE with action taken ``drug_withdrawn``; in the all-causality column also
  a patient whose exit record (the latest) is a withdrawal for reason ``adverse_event``: such a
  withdrawal cites no AE, so it counts in no related column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from safety_stream.events import ATTRIBUTION_RANK, Attribution, Modality
from safety_stream.plan import AesiGroup, MonitoringPlan
from safety_stream.projections.state import AeState
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import AeDetail
from safety_stream.review.table import DmcTable, percent, table_of

MODALITIES = tuple(m.value for m in Modality)
MODIFIED = ("dose_reduced", "drug_interrupted")
WITHDRAWN = "drug_withdrawn"
COMMON_RULES = (
    "Treatment-emergent AEs: onset on or after the patient's first dose of any study "
    "treatment; retracted AEs never count. A patient counts once per row at the worst grade "
    "of the AEs it counts (an AE's worst grade over its course; fatal counts as grade 5). "
    "Percentages of the {n} treated patients (the safety population: at least one dose of "
    "any study treatment)."
)


def related_to(ae: AeState, threshold: Attribution) -> list[str]:
    """The modalities ``ae`` is attributed to at least ``threshold``, in modality order."""
    rank = ATTRIBUTION_RANK[threshold]
    return [m for m in MODALITIES if ATTRIBUTION_RANK[ae.attribution.get(m, "unrelated")] >= rank]


def in_scope(ae: AeState, scope: str, threshold: Attribution) -> bool:
    """``all`` (all-causality), ``related`` (to any modality) or a modality's name."""
    if scope == "all":
        return True
    modalities = related_to(ae, threshold)
    return bool(modalities) if scope == "related" else scope in modalities


def first_dose_dates(data: ReviewData) -> dict[str, date]:
    """Each dosed patient's first administration of any modality, as a (UTC) date."""
    return {
        d.patient_id: min(a.given_at for a in d.administrations).date()
        for _, d in data.patients()
        if d.administrations
    }


def is_treatment_emergent(ae: AeState, first_doses: dict[str, date]) -> bool:
    """Onset on or after the patient's first dose (never dosed: never treatment-emergent)."""
    first = first_doses.get(ae.patient_id)
    return first is not None and ae.onset_date >= first


def treatment_emergent(data: ReviewData) -> list[tuple[AeState, AeDetail]]:
    """The treatment-emergent AEs of ``data`` (retracted ones excluded)."""
    first = first_dose_dates(data)
    return [(ae, d) for ae, d in data.aes() if is_treatment_emergent(ae, first)]


def pre_dose_note(data: ReviewData) -> str:
    """The footnote sentence counting the AEs the treatment-emergent rule leaves out."""
    first = first_dose_dates(data)
    before = [ae for ae, _ in data.aes() if not is_treatment_emergent(ae, first)]
    patients = len({ae.patient_id for ae in before})
    return (
        f"AEs with onset before the first dose (or of a patient never dosed): {len(before)} "
        f"(patients {patients}), not counted."
    )


def safety_population(data: ReviewData) -> int:
    """The denominator of every percentage: patients with at least one dose of any study
    treatment."""
    return sum(1 for _, d in data.patients() if d.administrations)


def withdrawn_for_ae(data: ReviewData) -> set[str]:
    """Treated patients whose latest exit is a withdrawal for reason ``adverse_event``."""
    return {
        d.patient_id
        for _, d in data.patients()
        if d.administrations
        and d.exit is not None
        and d.exit.kind == "withdrawn"
        and d.exit.reason == "adverse_event"
    }


# -- TEAE overview --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverviewRow:
    category: str
    all_n: int
    all_pct: float | None
    related_n: int
    related_pct: float | None
    related_radiotherapy_n: int
    related_radiotherapy_pct: float | None
    related_chemotherapy_n: int
    related_chemotherapy_pct: float | None
    related_immunotherapy_n: int
    related_immunotherapy_pct: float | None


OVERVIEW_CATEGORIES: tuple[tuple[str, Callable[[AeState, AeDetail], bool]], ...] = (
    ("Any AE", lambda ae, d: True),
    ("Grade >= 3", lambda ae, d: ae.worst >= 3),
    ("Serious AE", lambda ae, d: bool(ae.seriousness)),
    ("Leading to dose modification", lambda ae, d: d.action_taken in MODIFIED),
    ("Leading to discontinuation", lambda ae, d: d.action_taken == WITHDRAWN),
    ("Fatal (grade 5)", lambda ae, d: ae.worst == 5),
)
SCOPES = ("all", "related", *MODALITIES)


def teae_overview(data: ReviewData, plan: MonitoringPlan) -> list[OverviewRow]:
    """Patients (n, %) with at least one AE of each category, all-causality and related."""
    threshold = plan.related_means_at_least
    treated = safety_population(data)
    aes = treatment_emergent(data)
    withdrawn = withdrawn_for_ae(data)
    rows = []
    for category, counts in OVERVIEW_CATEGORIES:
        ns = []
        for scope in SCOPES:
            patients = {
                ae.patient_id
                for ae, detail in aes
                if counts(ae, detail) and in_scope(ae, scope, threshold)
            }
            if scope == "all" and category == "Leading to discontinuation":
                patients |= withdrawn
            ns.append(len(patients))
        p = [percent(x, treated) for x in ns]
        rows.append(
            OverviewRow(category, ns[0], p[0], ns[1], p[1], ns[2], p[2], ns[3], p[3], ns[4], p[4])
        )
    return rows


def overview_table(data: ReviewData, plan: MonitoringPlan) -> DmcTable:
    n = safety_population(data)
    return table_of(
        "teae-overview",
        "Treatment-emergent AE overview: patients with at least one AE (n, %)",
        OverviewRow,
        teae_overview(data, plan),
        f"""{COMMON_RULES.format(n=n)} Related: attributed {plan.related_means_at_least.value}
        or stronger to any modality (related) or to the named one. Dose modification: action
        taken dose reduced or drug interrupted. Discontinuation: action taken drug withdrawn,
        or (all-causality only, as it cites no AE) the patient withdrawn for an adverse
        event. Fatal: an AE that was fatal or reached grade 5. {pre_dose_note(data)}""",
    )


# -- incidence by SOC and term ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidenceRow:
    soc: str
    term: str  # "All terms" on the SOC's own row
    g1: int
    g2: int
    g3: int
    g4: int
    g5: int
    any_n: int
    any_pct: float | None
    g3plus_n: int
    g3plus_pct: float | None
    scope: str  # all | related


ALL_TERMS = "All terms"


def _by_worst(worst: dict[str, int], scope: str, soc: str, term: str, n: int) -> IncidenceRow:
    g = [sum(grade == k for grade in worst.values()) for k in range(6)]
    severe = sum(grade >= 3 for grade in worst.values())
    return IncidenceRow(
        soc, term, g[1], g[2], g[3], g[4], g[5],
        len(worst), percent(len(worst), n), severe, percent(severe, n), scope,
    )  # fmt: skip


def _worst_per_patient(aes: Iterable[AeState]) -> dict[str, int]:
    worst: dict[str, int] = {}
    for ae in aes:
        worst[ae.patient_id] = max(worst.get(ae.patient_id, 0), ae.worst)
    return worst


def incidence(data: ReviewData, plan: MonitoringPlan, scope: str) -> list[IncidenceRow]:
    """Patients by worst grade per SOC (its "All terms" row first) and per CTCAE term, SOCs in
    alphabetical order, terms by descending number of patients, then by name."""
    n = safety_population(data)
    threshold = plan.related_means_at_least
    counted = [ae for ae, _ in treatment_emergent(data) if in_scope(ae, scope, threshold)]
    by_soc: dict[str, list[AeState]] = defaultdict(list)
    for ae in counted:
        by_soc[ae.soc].append(ae)
    rows = []
    for soc in sorted(by_soc):
        rows.append(_by_worst(_worst_per_patient(by_soc[soc]), scope, soc, ALL_TERMS, n))
        by_term: dict[str, list[AeState]] = defaultdict(list)
        for ae in by_soc[soc]:
            by_term[ae.ctcae_term].append(ae)
        terms = [_by_worst(_worst_per_patient(a), scope, soc, t, n) for t, a in by_term.items()]
        rows += sorted(terms, key=lambda r: (-r.any_n, r.term))
    return rows


def incidence_table(data: ReviewData, plan: MonitoringPlan, scope: str) -> DmcTable:
    label = "all-causality" if scope == "all" else "related"
    return table_of(
        f"incidence-{label}",
        f"AE incidence by SOC and CTCAE term, {label}: patients by worst grade",
        IncidenceRow,
        incidence(data, plan, scope),
        f"""{COMMON_RULES.format(n=safety_population(data))} A patient with several AEs of a
        SOC counts once on its "All terms" row, at the worst of them. SOCs alphabetically,
        terms by descending frequency. {pre_dose_note(data)}""",
    )


# -- AEs of special interest --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AesiRow:
    group: str
    title: str
    definition: str
    any_n: int
    any_pct: float | None
    g3plus_n: int
    g3plus_pct: float | None


def in_group(ae: AeState, group: AesiGroup) -> bool:
    """The AE is one of the group's terms or SOCs (and immune-related if the group says so)."""
    if group.immune_related is not None and ae.immune_related != group.immune_related:
        return False
    return ae.ctcae_term in group.terms or ae.soc in group.socs


def _definition(group: AesiGroup) -> str:
    parts = [*group.terms, *(f"any term of {soc}" for soc in group.socs)]
    text = "; ".join(parts)
    if group.immune_related is True:
        text += " (marked immune-related)"
    elif group.immune_related is False:
        text += " (not marked immune-related)"
    return text


def aesi(data: ReviewData, plan: MonitoringPlan) -> list[AesiRow]:
    """Patients with an AE of each of the plan's AESI groups, any grade and grade >= 3."""
    n = safety_population(data)
    aes = [ae for ae, _ in treatment_emergent(data)]
    rows = []
    for name, group in plan.aesi.items():
        worst = _worst_per_patient(ae for ae in aes if in_group(ae, group))
        severe = sum(g >= 3 for g in worst.values())
        rows.append(
            AesiRow(
                name, group.title, _definition(group),
                len(worst), percent(len(worst), n), severe, percent(severe, n),
            )
        )  # fmt: skip
    return rows


def aesi_table(data: ReviewData, plan: MonitoringPlan) -> DmcTable:
    return table_of(
        "aesi",
        "AEs of special interest (groups defined in the monitoring plan): patients (n, %)",
        AesiRow,
        aesi(data, plan),
        f"""{COMMON_RULES.format(n=safety_population(data))} All-causality. A group counts the
        AEs whose CTCAE term or SOC it lists; "marked immune-related" counts only AEs the site
        marked immune-related. {pre_dose_note(data)}""",
    )


# -- AEs leading to discontinuation -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscontinuationRow:
    """One patient-level line (closed report, board): an AE with action drug withdrawn, or a
    withdrawal for an adverse event (which cites no AE: its AE fields are empty)."""

    patient_id: str
    site_id: str
    basis: str
    ae_id: str | None
    soc: str | None
    term: str | None
    worst_grade: int | None
    onset_date: date | None
    related_to: str | None
    withdrawn_on: date | None


@dataclass(frozen=True, slots=True)
class DiscontinuationCount:
    """Pooled (open report): patients per term."""

    soc: str
    term: str
    patients: int


AE_BASIS, EXIT_BASIS = "AE: drug withdrawn", "Withdrawn for an adverse event"


def discontinuations(data: ReviewData, plan: MonitoringPlan) -> list[DiscontinuationRow]:
    """Every AE leading to discontinuation, then every withdrawal for an AE, by patient id."""
    threshold = plan.related_means_at_least
    rows = [
        DiscontinuationRow(
            ae.patient_id, ae.site_id, AE_BASIS, str(ae.ae_id), ae.soc, ae.ctcae_term,
            ae.worst, ae.onset_date, ", ".join(related_to(ae, threshold)) or "none", None,
        )
        for ae, detail in data.aes()
        if detail.action_taken == WITHDRAWN
    ]  # fmt: skip
    withdrawn = withdrawn_for_ae(data)
    for _, detail in data.patients():
        if detail.patient_id in withdrawn and detail.exit is not None:
            rows.append(
                DiscontinuationRow(
                    detail.patient_id, detail.site_id, EXIT_BASIS,
                    None, None, None, None, None, None, detail.exit.on,
                )
            )  # fmt: skip
    return sorted(rows, key=lambda r: (r.patient_id, r.basis, str(r.onset_date), r.ae_id or ""))


def discontinuation_counts(data: ReviewData, plan: MonitoringPlan) -> list[DiscontinuationCount]:
    """Patients per SOC and term (a patient once per term), descending; withdrawals for an AE
    last, as their own line."""
    patients: dict[tuple[str, str], set[str]] = defaultdict(set)
    exits: set[str] = set()
    for row in discontinuations(data, plan):
        if row.term is None:
            exits.add(row.patient_id)
        else:
            patients[(row.soc or "", row.term)].add(row.patient_id)
    rows = [DiscontinuationCount(s, t, len(p)) for (s, t), p in patients.items()]
    rows.sort(key=lambda r: (-r.patients, r.soc, r.term))
    if exits:
        rows.append(DiscontinuationCount("", EXIT_BASIS + " (no AE cited)", len(exits)))
    return rows


DISCONTINUATION_RULES = """Action taken drug withdrawn on the AE's report, or the patient's
latest exit a withdrawal for reason adverse event (which cites no AE). Retracted AEs never
count; grades are the worst over the AE's course."""


def discontinuation_tables(data: ReviewData, plan: MonitoringPlan, patient_level: bool) -> DmcTable:
    if patient_level:
        return table_of(
            "discontinuations",
            "AEs leading to discontinuation: patient listing",
            DiscontinuationRow,
            discontinuations(data, plan),
            DISCONTINUATION_RULES,
            patient_level=True,
        )
    return table_of(
        "discontinuations",
        "AEs leading to discontinuation: patients per term",
        DiscontinuationCount,
        discontinuation_counts(data, plan),
        DISCONTINUATION_RULES + " A patient counts once per term.",
    )
